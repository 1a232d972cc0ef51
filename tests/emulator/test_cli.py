"""``python -m emulator`` as a process: help, the ready line, serving, SIGTERM."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from tests.emulator.helpers import OWNER, error_of, token_form

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 20.0


def test_help_exits_zero() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "emulator", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 0
    flags = ("--host", "--port", "--steps-per-second", "--grants-file", "--token-ttl-s")
    for flag in (*flags, "--faults-file"):
        assert flag in result.stdout


@asynccontextmanager
async def _emulator_process(
    args: list[str], env: dict[str, str]
) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "emulator",
        *args,
        cwd=REPO_ROOT,
        env=os.environ | env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def _ready_url(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), STARTUP_TIMEOUT_S)
    match = re.fullmatch(r"EMULATOR_READY (http://127\.0\.0\.1:(\d+))\n", line.decode())
    assert match, line
    assert int(match.group(2)) > 0
    return match.group(1)


async def test_serves_on_a_free_port_and_stops_on_sigterm(tmp_path: Path) -> None:
    grants_file = tmp_path / "grants.json"
    grants_file.write_text(json.dumps({"grants": [dataclasses.asdict(OWNER)]}))

    async with _emulator_process(
        ["--port", "0"], {"EMULATOR_GRANTS_FILE": str(grants_file)}
    ) as process:
        url = await _ready_url(process)
        async with httpx.AsyncClient(base_url=url) as http:
            token = await http.post("/token", data=token_form(OWNER))
        process.send_signal(signal.SIGTERM)
        exit_code = await asyncio.wait_for(process.wait(), STARTUP_TIMEOUT_S)

    assert token.status_code == 200
    assert exit_code == 0


async def test_port_can_come_from_the_environment() -> None:
    async with _emulator_process([], {"EMULATOR_PORT": "0"}) as process:
        url = await _ready_url(process)
        async with httpx.AsyncClient(base_url=url) as http:
            stats = await http.get("/_emulator/stats")
        process.send_signal(signal.SIGINT)
        exit_code = await asyncio.wait_for(process.wait(), STARTUP_TIMEOUT_S)

    assert stats.json()["models"] == 0
    assert exit_code == 0


def _grants_file(tmp_path: Path) -> Path:
    path = tmp_path / "grants.json"
    path.write_text(json.dumps({"grants": [dataclasses.asdict(OWNER)]}))
    return path


async def test_faults_file_rules_are_pending_at_start(tmp_path: Path) -> None:
    faults_file = tmp_path / "faults.json"
    rule = {"route": "tunedModels.list", "status": 503, "times": 2}
    faults_file.write_text(json.dumps({"rules": [rule]}))
    args = ["--port", "0", "--faults-file", str(faults_file)]

    async with _emulator_process(
        args, {"EMULATOR_GRANTS_FILE": str(_grants_file(tmp_path))}
    ) as process:
        url = await _ready_url(process)
        async with httpx.AsyncClient(base_url=url) as http:
            listed = (await http.get("/_emulator/faults")).json()
            token = (await http.post("/token", data=token_form(OWNER))).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            statuses = [
                (await http.get("/v1beta/tunedModels", headers=headers)).status_code
                for _ in range(3)
            ]
            first = await http.get("/_emulator/stats")
        process.send_signal(signal.SIGTERM)
        exit_code = await asyncio.wait_for(process.wait(), STARTUP_TIMEOUT_S)

    assert listed == {"rules": [rule]}
    assert statuses == [503, 503, 200]
    assert first.json()["requests"]["GET tunedModels.list"] == 3
    assert exit_code == 0


async def test_faults_file_can_come_from_the_environment(tmp_path: Path) -> None:
    faults_file = tmp_path / "faults.json"
    faults_file.write_text(json.dumps({"rules": [{"route": "oauth.token", "status": 500}]}))
    env = {"EMULATOR_PORT": "0", "EMULATOR_FAULTS_FILE": str(faults_file)}

    async with _emulator_process([], env) as process:
        url = await _ready_url(process)
        async with httpx.AsyncClient(base_url=url) as http:
            refused = await http.post("/token", data=token_form(OWNER))
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), STARTUP_TIMEOUT_S)

    assert refused.status_code == 500
    assert error_of(refused)["status"] == "INTERNAL"


def test_a_malformed_faults_file_is_refused_at_start(tmp_path: Path) -> None:
    faults_file = tmp_path / "faults.json"
    faults_file.write_text(json.dumps({"rules": [{"route": "tunedModels.get", "drop": "yes"}]}))

    result = subprocess.run(
        [sys.executable, "-m", "emulator", "--port", "0", "--faults-file", str(faults_file)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 2
    assert "faults.json" in result.stderr
    assert "'drop' must be true or false" in result.stderr
    assert "EMULATOR_READY" not in result.stdout
