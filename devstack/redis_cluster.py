"""A real three-node Redis Cluster on loopback, from the same redis-server binary.

The tests run the system on it to prove what core.redis.keys promises: every script's keys
hash to one slot, so the code that runs on one Redis runs on a cluster unchanged.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

import redis

from devstack.redis_server import ManagedServer, find_redis_server, free_port

NODES = 3
BUS_PORT_OFFSET = 10000
READY_TIMEOUT_S = 20.0


class RedisCluster(ManagedServer):
    """Three masters, no replicas, all 16384 slots covered."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="redis-cluster-")
        self._processes: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> Self:
        self.ports = [_free_node_port() for _ in range(NODES)]
        try:
            for port in self.ports:
                self._processes.append(self._launch(port))
            self._wait(lambda c: bool(c.ping()))
            self._create()
            self._wait(lambda c: _info(c).get("cluster_state") == "ok")
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self, port: int) -> subprocess.Popen[bytes]:
        node_dir = Path(self._dir.name) / str(port)
        node_dir.mkdir()
        command = [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1"]
        command += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        command += ["--save", "", "--appendonly", "no", "--loglevel", "warning"]
        with open(node_dir / "redis.log", "ab") as log:
            return subprocess.Popen(command, cwd=node_dir, stdout=log, stderr=subprocess.STDOUT)

    def _create(self) -> None:
        cli = str(Path(find_redis_server()).with_name("redis-cli"))
        nodes = [f"127.0.0.1:{p}" for p in self.ports]
        subprocess.run(
            [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=30,
        )

    def _wait(self, ready: object) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        for port in self.ports:
            client = redis.Redis(port=port, socket_connect_timeout=0.5)
            try:
                while not _answers(client, ready):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"cluster node {port} not ready")
                    time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
        self._dir.cleanup()


def _free_node_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    while True:
        port = free_port()
        if port + BUS_PORT_OFFSET > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + BUS_PORT_OFFSET))
            except OSError:
                continue
        return port


def _info(client: redis.Redis) -> dict[str, object]:
    info = client.execute_command("CLUSTER INFO")  # type: ignore[no-untyped-call]
    if isinstance(info, bytes):
        info = dict(line.split(":", 1) for line in info.decode().split() if ":" in line)
    return dict(info)


def _answers(client: redis.Redis, ready: object) -> bool:
    try:
        return bool(ready(client))  # type: ignore[operator]
    except redis.RedisError:
        return False
