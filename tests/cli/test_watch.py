"""`tunectl jobs watch`, as a person sees it in a real pseudo-terminal (pexpect), the
screen read back through a terminal emulator (pyte); and as a script reads it, one JSON
line an update, across a restart of the API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pexpect
import pyte
import pytest

from core.security.tenants import TenantDirectory
from service.process import start_api
from tests.cli.conftest import cli_env
from tests.harness import State, System

pytestmark = pytest.mark.timeout(60)
ROWS, COLUMNS = 50, 120


def screen_of(output: str) -> str:
    """What a terminal of ROWS x COLUMNS shows after `output` was written to it."""
    screen = pyte.Screen(COLUMNS, ROWS)
    pyte.Stream(screen).feed(output)
    return "\n".join(line.rstrip() for line in screen.display)


def spawn_watch(env: dict[str, str], name: str) -> pexpect.spawn[str]:
    return pexpect.spawn(
        sys.executable,
        ["-m", "cli", "jobs", "watch", name],
        env={**env, "TERM": "xterm-256color"},
        dimensions=(ROWS, COLUMNS),
        encoding="utf-8",
        timeout=20,
    )


async def expect(child: pexpect.spawn[str], pattern: Any) -> str:
    """Wait (on a thread: the API serves on this loop) for `pattern`; everything so far."""
    await asyncio.to_thread(child.expect, pattern)
    return str(child.before) + (child.after if isinstance(child.after, str) else "")


async def test_the_watch_screen_follows_a_job_to_100_percent_and_exits_0(
    system: System, tmp_path: Path
) -> None:
    created = await system.create()  # 10 steps
    await system.wait_for(created.name, {State.RUNNING})
    child = spawn_watch(cli_env(system, tmp_path), created.name)
    try:
        seen = await expect(child, "RUNNING")
        system.clock.advance(4)  # the emulator trains a step a second of its clock
        seen += await expect(child, r"step 4/10")
        seen += await expect(child, "loss per step")  # the rest of that frame
        midway = screen_of(seen)
        assert "loss per step" in midway  # the plot, drawn as snapshots arrived
        assert " 40%" in midway

        await system.finish_training(created.name)
        seen += await expect(child, pexpect.EOF)
    finally:
        child.close()
    final = screen_of(seen)
    assert child.exitstatus == 0, final
    assert created.name in final and "SUCCEEDED" in final
    assert "step 10/10" in final and "100%" in final and "ETA done" in final
    assert "━" * 20 in final  # the bar, full
    assert "tuned model: tunedModels/" in final


async def read_line(stream: asyncio.StreamReader) -> dict[str, object]:
    async with asyncio.timeout(20):
        line = await stream.readline()
    assert line, "the watch ended early"
    answer: dict[str, object] = json.loads(line)
    return answer


@contextlib.asynccontextmanager
async def watching(env: dict[str, str], name: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """`tunectl jobs watch NAME` with its stdout a pipe: JSON lines."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "jobs", "watch", name,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_cancelled_job_ends_the_watch_with_exit_4(api_only: System, tmp_path: Path) -> None:
    created = await api_only.create()
    async with watching(cli_env(api_only, tmp_path), created.name) as process:
        assert process.stdout is not None and process.stderr is not None
        first = await read_line(process.stdout)
        assert first["type"] == "job" and first["job"]["state"] == "QUEUED"  # type: ignore[index]
        await api_only.cancel(created.name)
        last = await read_line(process.stdout)
        assert last["job"]["state"] == "CANCELLED"  # type: ignore[index]
        async with asyncio.timeout(20):
            code = await process.wait()
        stderr = (await process.stderr.read()).decode()
    assert code == 4
    assert stderr.startswith(f"error: {created.name} ended CANCELLED")


async def test_the_watch_reconnects_when_the_api_restarts_and_resumes(
    api_only: System, tmp_path: Path
) -> None:
    created = await api_only.create()
    port = api_only.api.port
    async with watching(cli_env(api_only, tmp_path), created.name) as process:
        assert process.stdout is not None
        first = await read_line(process.stdout)
        assert first["type"] == "job"
        await api_only.api.stop(1.0)  # a rolling restart: streams end SERVER_DRAINING
        dropped = await read_line(process.stdout)
        assert dropped["type"] == "reconnecting"
        assert "UNAVAILABLE" in str(dropped["reason"])
        with httpx.Client(timeout=10.0) as token_http:
            api = await start_api(
                api_only.settings,
                api_only.redis,
                TenantDirectory.watch(api_only.tenants_file),
                listen=f"127.0.0.1:{port}",
                token_http=token_http,
            )
            try:
                await api_only.cancel(created.name)
                updates: list[dict[str, Any]] = []
                while not updates or updates[-1].get("type") != "job":
                    updates.append(await read_line(process.stdout))
                async with asyncio.timeout(20):
                    code = await process.wait()
            finally:
                await api.stop(1.0)
    assert updates[-1]["job"]["state"] == "CANCELLED"
    assert code == 4
