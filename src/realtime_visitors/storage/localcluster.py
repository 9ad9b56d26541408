"""A real Valkey Cluster on this machine, from the embedded valkey-server binary.

For the test suite (failover and slot-migration tests need real nodes to kill) and for
operators who want to try the service on a cluster: `realtime-visitors cluster`. The
nodes keep no data (no RDB, no append-only file): each start builds a new cluster.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis

from .embedded import server_binary

SLOTS = 16384
HOST = "127.0.0.1"
# The cluster bus listens on this offset from the client port, as Redis does by
# default, when the caller chooses the ports (7000 -> 17000).
BUS_OFFSET = 10000
CONFIG_NAME = "valkey.conf"
LOG_NAME = "valkey.log"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
POLL = 0.05


class LocalClusterError(RuntimeError):
    """The local cluster could not be started or did not become healthy in time."""


@dataclass
class Node:
    port: int
    bus_port: int
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def log(self) -> Path:
        return self.directory / LOG_NAME

    def alive(self) -> bool:
        return self.process.poll() is None


@dataclass(frozen=True)
class _Entry:
    """One line of CLUSTER NODES: a node as another node sees it."""

    node_id: str
    port: int
    flags: frozenset[str]
    primary_id: str | None
    ranges: tuple[tuple[int, int], ...]  # the slots it owns, first to last of each range

    @property
    def slots(self) -> int:
        return sum(last - first + 1 for first, last in self.ranges)

    @property
    def first_slot(self) -> int:
        return min((first for first, _ in self.ranges), default=SLOTS)

    def owns(self, slot: int) -> bool:
        return any(first <= slot <= last for first, last in self.ranges)

    @property
    def serving(self) -> bool:
        return "master" in self.flags and not self.flags & {"fail", "fail?"}  # fail?: PFAIL


@dataclass
class LocalCluster:
    nodes: list[Node]
    seed_count: int  # the first nodes are the primaries the cluster was built with

    @property
    def url(self) -> str:
        seeds = ",".join(f"{HOST}:{node.port}" for node in self.nodes[: self.seed_count])
        return f"redis+cluster://{seeds}"

    def node(self, port: int) -> Node:
        for node in self.nodes:
            if node.port == port:
                return node
        raise LocalClusterError(f"no node of this cluster listens on port {port}")

    def primaries(self) -> list[int]:
        """Ports of the nodes that own slots, in the order of their first slot, as a
        live node sees it: a killed primary stays one until its replica takes over."""
        owners = [e for e in self._view() if "master" in e.flags and e.slots]
        return [e.port for e in sorted(owners, key=lambda e: e.first_slot)]

    def replica_of(self, port: int) -> int:
        """The port of a replica (the lowest) of the primary on `port`."""
        view = self._view()
        primary = next((e for e in view if e.port == port), None)
        if primary is None:
            raise LocalClusterError(f"no node on port {port} in the cluster")
        replicas = sorted(e.port for e in view if e.primary_id == primary.node_id)
        if not replicas:
            raise LocalClusterError(f"the node on port {port} has no replica")
        return replicas[0]

    def kill(self, port: int) -> None:
        """SIGKILL: no goodbye to the other nodes, as when a machine dies."""
        node = self.node(port)
        node.process.kill()
        node.process.wait()

    def restart(self, port: int) -> None:
        """Start a killed node again; its nodes.conf makes it rejoin the cluster."""
        node = self.node(port)
        if node.alive():
            raise LocalClusterError(f"the node on port {port} is running")
        node.process = _spawn(node.directory)
        _wait(lambda: _unanswered([node]), START_TIMEOUT, "the node did not answer")

    def restart_if_down(self, timeout: float = 10.0) -> None:
        """Restart every killed node and wait until it is a replica in sync: the layout
        a later test expects (each primary with its replica, ready to fail over)."""
        for node in self.nodes:
            if not node.alive():
                self.restart(node.port)
        _wait(
            lambda: _unhealthy(self.nodes, replicas_in_sync=True),
            timeout,
            "the restarted nodes did not rejoin",
        )

    def owner_of_slot(self, slot: int) -> int:
        """The port of the primary that serves `slot`, as a live node sees it."""
        for entry in self._view():
            if "master" in entry.flags and entry.owns(slot):
                return entry.port
        raise LocalClusterError(f"no primary serves slot {slot}")

    def migrate_slot(self, slot: int, target: int, timeout: float = 10.0) -> None:
        """Move a slot and its keys to the primary on `target`, the way an operator
        does (CLUSTER SETSLOT ... IMPORTING/MIGRATING, MIGRATE, SETSLOT ... NODE), and
        wait until every live node sees the new owner. Clients meanwhile get ASK for
        keys already moved, and TRYAGAIN for a call whose keys are split."""
        source = self.owner_of_slot(slot)
        if source == target:
            return
        source_id, target_id = _my_id(source), _my_id(target)
        with _client(target) as to, _client(source) as frm:
            to.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
            frm.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
            while keys := frm.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                frm.execute_command("MIGRATE", HOST, target, "", 0, 5000, "KEYS", *keys)
            # The target first: it bumps its epoch, so its claim wins everywhere.
            to.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
            frm.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        for port in self.primaries():
            if port not in (source, target) and self.node(port).alive():
                with _client(port) as client:
                    client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        _wait(
            lambda: _misplaced(self.live(), slot, target),
            timeout,
            "the nodes did not agree on the slot's new owner",
        )

    def wait_healthy(self, timeout: float = 10.0) -> None:
        """Until every live node says cluster_state:ok and sees every slot owned by a
        live primary."""
        _wait(lambda: _unhealthy(self.live()), timeout, "the cluster is not healthy")

    def live(self) -> list[Node]:
        return [node for node in self.nodes if node.alive()]

    def stop(self) -> None:
        for node in self.live():
            node.process.terminate()
        for node in self.nodes:
            try:
                node.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _view(self) -> list[_Entry]:
        for node in self.live():
            try:
                return _entries(node.port)
            except redis.RedisError:
                continue
        raise LocalClusterError("no node of the cluster answers")


def start(
    directory: Path,
    primaries: int = 3,
    replicas: int = 1,
    node_timeout_ms: int = 1000,
    port: int | None = None,
) -> LocalCluster:
    """Start primaries * (1 + replicas) nodes on 127.0.0.1 and build a cluster of them;
    return once it is healthy and every replica is in sync. `port`: the first of
    consecutive ports (bus ports 10000 above); None: free ports."""
    if primaries < 1 or replicas < 0:
        raise LocalClusterError("a cluster needs at least one primary and no negative replicas")
    directory = directory.resolve()  # each node runs in its own folder
    count = primaries * (1 + replicas)
    ports, bus_ports = _choose_ports(count, port)
    cluster = LocalCluster([], primaries)
    try:
        for client_port, bus_port in zip(ports, bus_ports, strict=True):
            node_dir = directory / f"node-{client_port}"
            _configure(node_dir, client_port, bus_port, node_timeout_ms)
            cluster.nodes.append(Node(client_port, bus_port, node_dir, _spawn(node_dir)))
        _wait(lambda: _unanswered(cluster.nodes), START_TIMEOUT, "a node did not start")
        _build(cluster.nodes, primaries, replicas)
        _wait(
            lambda: _unhealthy(cluster.nodes, replicas_in_sync=True),
            START_TIMEOUT,
            "the new cluster did not become healthy",
        )
    except BaseException:
        # Ctrl-C or a failure half-way: no node may outlive the caller.
        cluster.stop()
        raise
    return cluster


def slot_ranges(primaries: int) -> list[tuple[int, int]]:
    """The even split of the slots that start() gives the primaries, first to last."""
    bounds = [SLOTS * j // primaries for j in range(primaries + 1)]
    return [(bounds[j], bounds[j + 1] - 1) for j in range(primaries)]


def _choose_ports(count: int, first: int | None) -> tuple[list[int], list[int]]:
    if first is None:
        # Every socket stays bound until all are chosen, so no port comes twice. The bus
        # ports are chosen too: a free port + 10000 may be taken or above 65535.
        sockets = [socket.socket() for _ in range(2 * count)]
        try:
            for sock in sockets:
                sock.bind((HOST, 0))
            ports = [sock.getsockname()[1] for sock in sockets]
        finally:
            for sock in sockets:
                sock.close()
        return ports[:count], ports[count:]
    ports = list(range(first, first + count))
    bus_ports = [p + BUS_OFFSET for p in ports]
    if bus_ports[-1] > 65535:
        raise LocalClusterError(f"ports {first}+{count} leave no room for the bus ports above them")
    for candidate in ports + bus_ports:
        with socket.socket() as sock:
            # As valkey-server binds: connections of an earlier run in TIME_WAIT on
            # the port do not make it taken.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((HOST, candidate))
            except OSError as exc:
                raise LocalClusterError(f"port {candidate} on {HOST} is taken: {exc}") from exc
    return ports, bus_ports


def _configure(node_dir: Path, port: int, bus_port: int, node_timeout_ms: int) -> None:
    node_dir.mkdir(parents=True, exist_ok=True)
    # A nodes.conf from an earlier run would make the node rejoin that old cluster.
    for stale in ("nodes.conf", LOG_NAME):
        (node_dir / stale).unlink(missing_ok=True)
    lines = [
        f"port {port}",
        f"cluster-port {bus_port}",
        f"bind {HOST}",
        "daemonize no",
        f'dir "{node_dir}"',
        f"logfile {LOG_NAME}",
        "pidfile valkey.pid",
        "cluster-enabled yes",
        "cluster-config-file nodes.conf",
        f"cluster-node-timeout {node_timeout_ms}",
        # Without it, one primary down (before its replica takes over) puts every node
        # in cluster_state:fail and all slots refuse commands; the issue asks that the
        # websites of the other primaries keep being served.
        "cluster-require-full-coverage no",
        # A replica may take over however long it was cut off from its primary: in a
        # test the replica's data is never too old to serve.
        "cluster-replica-validity-factor 0",
        # The layout the tests built stays as built: an orphaned primary does not take a
        # replica away from another one.
        "cluster-allow-replica-migration no",
        'save ""',
        "appendonly no",
        # A replica's first sync starts at once: by default the primary waits 5 s for
        # more replicas to share one diskless transfer, which is most of a test's start.
        "repl-diskless-sync-delay 0",
    ]
    (node_dir / CONFIG_NAME).write_text("\n".join(lines) + "\n")


def _spawn(node_dir: Path) -> subprocess.Popen[bytes]:
    # A session of its own: Ctrl-C in the terminal reaches the command, which then
    # stops the nodes itself (as embedded.py does).
    return subprocess.Popen(  # noqa: S603 (our own argument list, no shell)
        [server_binary(), str(node_dir / CONFIG_NAME)],
        cwd=node_dir,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
    )


def _build(nodes: list[Node], primaries: int, replicas: int) -> None:
    """What `valkey-cli --cluster create` does, with plain commands."""
    seeds = nodes[:primaries]
    for epoch, (node, (first, last)) in enumerate(
        zip(seeds, slot_ranges(primaries), strict=True), 1
    ):
        with _client(node.port) as client:
            # Distinct epochs up front: no collision to resolve, and a failover's
            # election starts from a clean state.
            client.execute_command("CLUSTER", "SET-CONFIG-EPOCH", epoch)
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
    for node in nodes[1:]:
        with _client(node.port) as client:
            client.execute_command("CLUSTER", "MEET", HOST, nodes[0].port, nodes[0].bus_port)
    _wait(lambda: _strangers(nodes), START_TIMEOUT, "the nodes did not meet")
    ids = {node.port: _my_id(node.port) for node in seeds}
    for j, primary in enumerate(seeds):
        for i in range(replicas):
            replica = nodes[primaries + j * replicas + i]
            with _client(replica.port) as client:
                client.execute_command("CLUSTER", "REPLICATE", ids[primary.port])


def _wait(problem: Callable[[], str | None], timeout: float, what: str) -> None:
    """Poll until `problem` finds none; past the deadline, fail with the last one."""
    deadline = time.monotonic() + timeout
    while (found := problem()) is not None:
        if time.monotonic() > deadline:
            raise LocalClusterError(f"{what} within {timeout:g} s: {found}")
        time.sleep(POLL)


def _unanswered(nodes: list[Node]) -> str | None:
    for node in nodes:
        if not node.alive():
            code = node.process.returncode
            raise LocalClusterError(
                f"valkey-server on port {node.port} exited ({code}): {node.log}"
            )
        try:
            with _client(node.port) as client:
                client.ping()
        except redis.RedisError:
            return f"no answer on port {node.port}; its log: {node.log}"
    return None


def _strangers(nodes: list[Node]) -> str | None:
    for node in nodes:
        known = [e for e in _entries(node.port) if not e.flags & {"handshake", "noaddr"}]
        if len(known) < len(nodes):
            return f"the node on port {node.port} knows {len(known)} of {len(nodes)} nodes"
    return None


def _unhealthy(nodes: list[Node], replicas_in_sync: bool = False) -> str | None:
    live = {node.port for node in nodes if node.alive()}
    for node in nodes:
        try:
            problem = _node_problem(node, live, replicas_in_sync)
        except redis.RedisError as exc:
            problem = str(exc)
        if problem:
            return f"node {node.port}: {problem}; its log: {node.log}"
    return None


def _node_problem(node: Node, live: set[int], replicas_in_sync: bool) -> str | None:
    with _client(node.port) as client:
        info = _fields(client.execute_command("CLUSTER", "INFO"))
        if info.get("cluster_state") != "ok":
            return f"cluster_state:{info.get('cluster_state')}"
        served = sum(e.slots for e in _entries(node.port) if e.serving and e.port in live)
        if served != SLOTS:
            return f"{served} of {SLOTS} slots served by live primaries"
        replication = client.info("replication") if replicas_in_sync else {}
        if replication.get("role", "master") != "master":
            link = replication.get("master_link_status")
            if link != "up":
                return f"master_link_status:{link}"
    return None


def _misplaced(nodes: list[Node], slot: int, target: int) -> str | None:
    for node in nodes:
        owners = [e.port for e in _entries(node.port) if "master" in e.flags and e.owns(slot)]
        if owners != [target]:
            return f"node {node.port} sees slot {slot} on {owners}"
    return None


def _entries(port: int) -> list[_Entry]:
    # Two words (not "CLUSTER NODES") keep redis-py's reply parsers away: raw text back.
    with _client(port) as client:
        text = client.execute_command("CLUSTER", "NODES")
    return [_entry(line) for line in text.splitlines() if line.strip()]


def _entry(line: str) -> _Entry:
    # <id> <ip:port@cport[,hostname]> <flags> <primary id or -> <ping> <pong> <epoch>
    # <link> <slot or first-last or [slot->-id] (migrating)>...
    fields = line.split()
    address = fields[1].split("@")[0]
    bounds = [field.partition("-") for field in fields[8:] if not field.startswith("[")]
    ranges = tuple((int(first), int(last or first)) for first, _, last in bounds)
    primary = None if fields[3] == "-" else fields[3]
    port = int(address.rsplit(":", 1)[1])
    return _Entry(fields[0], port, frozenset(fields[2].split(",")), primary, ranges)


def _my_id(port: int) -> str:
    with _client(port) as client:
        return str(client.execute_command("CLUSTER", "MYID"))


def _fields(text: str) -> dict[str, str]:
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key: value.strip() for key, value in pairs}


def _client(port: int) -> redis.Redis:
    return redis.Redis(
        host=HOST, port=port, decode_responses=True, socket_timeout=2, socket_connect_timeout=2
    )
