"""`tunectl` run as a person runs it: a real process, against the test's real system.

The system (tests/harness.py) serves in the test's own event loop, so the CLI runs as an
asyncio subprocess (or, in a pseudo-terminal, on a thread: see test_watch_pty.py) while
the loop goes on serving it. Its endpoint and token come from the environment, as a
person's shell would give them; TUNECTL_CONFIG points at a file that does not exist, so
no config of the machine's user leaks in.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.harness import System

COMMAND = [sys.executable, "-m", "cli"]
TUNECTL = Path(sys.executable).with_name("tunectl")
"""The console script pip installed from pyproject's [project.scripts]."""


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.code == 0, self.stderr
        return json.loads(self.stdout)

    def json_lines(self) -> list[Any]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


def cli_env(system: System, tmp_path: Path, tenant: str = "team-a") -> dict[str, str]:
    return {
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
        "HOME": str(tmp_path),
        "TUNECTL_ENDPOINT": f"127.0.0.1:{system.api.port}",
        "TUNECTL_TOKEN": system.tenants[tenant].token,
        "TUNECTL_CONFIG": str(tmp_path / "no-config.toml"),
        "COLUMNS": "120",
        "LINES": "50",
    }


async def tunectl(
    env: dict[str, str], *args: str, timeout_s: float = 30.0, command: list[str] | None = None
) -> Result:
    """Run `tunectl args...` to its end."""
    process = await asyncio.create_subprocess_exec(
        *(command or COMMAND),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(timeout_s):
        out, err = await process.communicate()
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


@pytest.fixture
def env(api_only: System, tmp_path: Path) -> dict[str, str]:
    """The environment of a person whose shell points `tunectl` at the API, as team-a."""
    return cli_env(api_only, tmp_path)
