"""One child process of the local system: started, awaited until ready, stopped with SIGTERM.

`devstack.launcher` is the only place that starts these (`Processes.start`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0


class Child:
    """A running `python -m <module>` whose output goes to a log file."""

    def __init__(
        self, name: str, module: str, process: asyncio.subprocess.Process, log_path: Path
    ) -> None:
        self.name = name
        self.module = module
        self.process = process
        self.log_path = log_path
        self.ready_line = ""
        self._pump: asyncio.Task[None] | None = None

    @classmethod
    async def spawn(
        cls,
        name: str,
        module: str,
        *,
        args: Sequence[str],
        env: Mapping[str, str],
        log_dir: Path,
    ) -> Self:
        """Start `python -m module args` with `env` added to this process's environment.

        Its stderr goes to `log_dir/<name>.log`; so does its stdout, from `wait_ready` on.
        """
        log_path = log_dir / f"{name}.log"
        stderr = log_path.open("ab")
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                module,
                *args,
                env={**os.environ, **env},
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        finally:
            stderr.close()
        return cls(name, module, process, log_path)

    async def wait_ready(self, prefix: str) -> str:
        """Read stdout until a line starting with `prefix`; the rest of output goes to the log."""
        assert self.process.stdout is not None
        async with asyncio.timeout(READY_TIMEOUT_S):
            while True:
                raw = await self.process.stdout.readline()
                if not raw:
                    raise RuntimeError(f"{self.name} exited early; see {self.log_path}")
                line = raw.decode().strip()
                self._log(line)
                if line.startswith(prefix):
                    self.ready_line = line
                    break
        self._pump = asyncio.create_task(self._copy_rest())
        return self.ready_line

    def _log(self, line: str) -> None:
        with self.log_path.open("a") as log:
            log.write(line + "\n")

    async def _copy_rest(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self._log(raw.decode().rstrip())

    async def stop(self) -> int:
        """SIGTERM, wait, SIGKILL if it will not go; the exit code. Safe to call again."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._pump is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        return int(self.process.returncode or 0)
