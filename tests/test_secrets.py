"""Secrets: tokens live in Redis only as digests and never reach a log."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import redis

from realtime_visitors.storage import embedded

from .test_live_server import CLI, serve


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("RTV_")}
    return subprocess.run(
        [str(CLI), *args],
        env=env | {"RTV_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        check=True,
    )


def test_a_full_session_logs_no_token_and_stores_only_digests(tmp_path: Path) -> None:
    data = tmp_path / "data"
    live = serve(tmp_path / "serve.log", RTV_DATA_DIR=str(data))
    stderr = []
    try:
        created = cli(data, "sites", "create", "--id", "secret-site", "--json")
        first = json.loads(created.stdout)["token"]
        second_run = cli(data, "tokens", "create", "secret-site", "--json")
        second = json.loads(second_run.stdout)["token"]
        token_id = json.loads(cli(data, "tokens", "list", "secret-site", "--json").stdout)[0][
            "tokenId"
        ]
        stderr += [created.stderr, second_run.stderr]
        with httpx.Client(base_url=live.base_url) as client:
            url = "/api/v1/realtime?websiteId=secret-site"
            client.post("/api/v1/pageview", json={"websiteId": "secret-site"})
            for header in (
                f"Bearer {first}",  # works
                f"Bearer {second}",  # works
                f"Bearer {first}x",  # a near miss
                f"Basic {first}",  # a wrong scheme
                f"Bearer {first} {second}",  # two tokens
            ):
                client.get(url, headers={"Authorization": header})
            client.get(
                "/api/v1/realtime?websiteId=other-site",
                headers={"Authorization": f"Bearer {first}"},
            )
            revoked = cli(data, "tokens", "revoke", "secret-site", token_id)
            stderr.append(revoked.stderr)
            assert client.get(url, headers={"Authorization": f"Bearer {first}"}).status_code == 401
            assert client.get(url, headers={"Authorization": f"Bearer {second}"}).status_code == 200
        # Every key and value of the store: digests only.
        store = redis.Redis(unix_socket_path=str(data / embedded.SOCKET_NAME))
        stored = []
        for key in store.scan_iter(match="*"):
            stored.append(key)
            kind = store.type(key)
            if kind == b"hash":
                stored += [item for pair in store.hgetall(key).items() for item in pair]
            elif kind == b"zset":
                stored += store.zrange(key, 0, -1)
            elif kind == b"string":
                stored.append(store.get(key))
        assert len(stored) > 5
    finally:
        assert live.stop() == 0
    logs = [live.log.read_text(), (data / embedded.LOG_NAME).read_text(), *stderr]
    # The access log was written, and searched.
    assert "GET /api/v1/realtime 401" in logs[0]
    assert "GET /api/v1/realtime 200" in logs[0]
    for token in (first, second):
        secret = token.removeprefix("vt_")
        assert not [text for text in logs if secret in text], "a token reached a log"
        assert not [value for value in stored if secret.encode() in value], (
            "a token is stored in clear"
        )
    # The append-only file holds what Redis was told: digests, never tokens.
    for aof in (data / "appendonlydir").iterdir():
        assert first.removeprefix("vt_").encode() not in aof.read_bytes()
