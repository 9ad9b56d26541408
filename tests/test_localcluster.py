"""The local cluster launcher: a real 3+3 Valkey Cluster, its failover, its command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

from realtime_visitors.storage import localcluster
from realtime_visitors.storage.localcluster import LocalCluster

CLI = Path(sys.executable).parent / "realtime-visitors"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with localcluster.start(tmp_path_factory.mktemp("cluster")) as running:
        yield running


def client(port: int) -> redis.Redis:
    return redis.Redis(port=port, decode_responses=True, socket_timeout=2)


def cluster_client(cluster: LocalCluster) -> RedisCluster:
    seeds = [ClusterNode("127.0.0.1", port) for port in cluster.primaries()]
    return RedisCluster(startup_nodes=seeds, decode_responses=True)


def key_in(first: int, last: int) -> str:
    """A key whose slot lies in first..last."""
    return next(f"k{i}" for i in range(100_000) if first <= key_slot(f"k{i}".encode()) <= last)


def test_a_healthy_cluster_of_three_primaries_each_with_one_replica(cluster: LocalCluster) -> None:
    assert len(cluster.nodes) == 6
    primaries = cluster.primaries()
    assert len(primaries) == 3
    replicas = {cluster.replica_of(port) for port in primaries}
    assert replicas == {node.port for node in cluster.nodes} - set(primaries)
    seeds = ",".join(f"127.0.0.1:{port}" for port in primaries)
    assert cluster.url == f"redis+cluster://{seeds}"
    for node in cluster.nodes:
        info = client(node.port).execute_command("CLUSTER", "INFO")
        assert "cluster_state:ok" in info
        assert "cluster_slots_ok:16384" in info
        assert "cluster_known_nodes:6" in info


def test_a_key_written_through_a_cluster_client_is_read_back(cluster: LocalCluster) -> None:
    with cluster_client(cluster) as rc:
        for website in ("a", "b", "c", "d"):
            rc.set(f"{{{website}}}:site", website)
        assert [rc.get(f"{{{w}}}:site") for w in "abcd"] == list("abcd")


def test_a_slot_and_its_keys_migrate_to_another_primary_and_back(cluster: LocalCluster) -> None:
    slot = key_slot(b"{moving}")
    source = cluster.owner_of_slot(slot)
    target = next(port for port in cluster.primaries() if port != source)
    with cluster_client(cluster) as rc:
        for n in range(250):  # more than one GETKEYSINSLOT batch
            rc.set(f"{{moving}}:{n}", n, ex=600)
        cluster.migrate_slot(slot, target)
        assert cluster.owner_of_slot(slot) == target
        assert client(target).execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 250
        assert client(source).execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
        assert 0 < client(target).ttl("{moving}:7") <= 600
        cluster.migrate_slot(slot, source)
        assert cluster.owner_of_slot(slot) == source
        assert rc.get("{moving}:249") == "249"  # through a MOVED: the client's map is stale
    cluster.wait_healthy(timeout=5)


def test_a_killed_primary_is_replaced_by_its_replica_and_the_others_keep_serving(
    tmp_path: Path,
) -> None:
    with localcluster.start(tmp_path) as cluster:
        victim, *others = cluster.primaries()
        replica = cluster.replica_of(victim)
        ranges = dict(zip(cluster.primaries(), localcluster.slot_ranges(3), strict=True))
        kept = key_in(*ranges[victim])
        client(victim).set(kept, "before")
        assert client(victim).wait(1, 2000) == 1  # on the replica before the kill

        started = time.monotonic()
        cluster.kill(victim)
        deadline = started + 10
        served = 0
        while replica not in cluster.primaries():
            assert time.monotonic() < deadline, "the replica was not promoted in 10 s"
            # Without cluster-require-full-coverage no, these writes would fail with
            # CLUSTERDOWN until the failover is over.
            for port in others:
                client(port).set(key_in(*ranges[port]), "during")
                served += 1
            time.sleep(0.05)
        took = time.monotonic() - started
        cluster.wait_healthy(timeout=5)
        assert served > 0
        assert took < 8, f"failover took {took:.1f} s"
        assert victim not in cluster.primaries()
        assert client(replica).get(kept) == "before"

        cluster.restart_if_down()  # back as the replica of the node that replaced it
        assert cluster.replica_of(replica) == victim
        with redis.Redis(port=victim, decode_responses=True, single_connection_client=True) as r:
            r.execute_command("READONLY")  # a replica's own copy, not a MOVED
            assert r.get(kept) == "before"
    assert all(node.process.returncode is not None for node in cluster.nodes)


def test_the_cluster_command_prints_its_url_and_stops_every_node_on_sigterm(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("RTV_")}
    process = subprocess.Popen(
        [str(CLI), "cluster", "--dir", str(tmp_path), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = read_line_starting(process, "REDIS_URL=", timeout=20)
        url = line.split()[0].removeprefix("REDIS_URL=")
        assert url.startswith("redis+cluster://127.0.0.1:")
        assert line.endswith(" realtime-visitors serve")
        seeds = url.removeprefix("redis+cluster://").split(",")
        assert len(seeds) == 3
        assert client(int(seeds[0].rsplit(":", 1)[1])).ping()
        pids = [int(pidfile.read_text()) for pidfile in tmp_path.glob("node-*/valkey.pid")]
        assert len(pids) == 6
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0, process.stderr.read() if process.stderr else ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not [pid for pid in pids if running(pid)]


def read_line_starting(process: subprocess.Popen[str], prefix: str, timeout: float) -> str:
    """The first line of its stdout starting with prefix; killed (so EOF) after timeout."""
    assert process.stdout is not None
    watchdog = threading.Timer(timeout, process.kill)
    watchdog.start()
    try:
        for line in process.stdout:
            if line.startswith(prefix):
                return line.strip()
    finally:
        watchdog.cancel()
    stderr = process.stderr.read() if process.stderr else ""
    raise AssertionError(f"no line starting {prefix!r} within {timeout} s; stderr: {stderr}")


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for good: only its exit status waits for its parent.
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())
