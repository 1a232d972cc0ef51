"""Google's tuning guide, run as written with its own SDK against the platform.

google-generativeai 0.8.6, unmodified, in its own venv (`.venv-judge/`, bin/_setup.sh:
it needs protobuf<6), runs the guide's tutorial (tests/e2e/guide_tutorial.py) against an
API serving TLS with a test CA, with the tenant's platform token as the API key: list
the tunable base models, create a tuned model from inline examples, watch its operation,
read the model and its snapshots, generate with it, update it, list, create a second one
and cancel it, delete them. Once for a tenant of each provider: team-a on the Gemini API,
team-v on Vertex AI, whose base model is the guide's old name, mapped by
`facade_base_models`. Training ends when this test moves the emulator's clock, the
moment the script says it is waiting.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.domain.job import JOB_NAME_PREFIX, new_job_id
from core.security.tenants import TenantDirectory
from service.gemini_facade.names import request_id_for
from service.process import ApiServer, start_api
from tests.harness import BASE_MODEL, TERMINAL, VERTEX_TENANT, State, System
from tests.service.pki import Authority

pytestmark = pytest.mark.timeout(90)
ROOT = Path(__file__).resolve().parents[2]
JUDGE_PYTHON = ROOT / ".venv-judge" / "bin" / "python"
SCRIPT = Path(__file__).with_name("guide_tutorial.py")
MODEL_ID = "number-adder"
CANCEL_ID = "number-adder-cancelled"
PROMPT = "seven"
EXAMPLES = [{"text_input": str(n), "output": str(n + 1)} for n in range(1, 21)]
EPOCHS, BATCH = 2, 4
HYPERPARAMETERS = {
    "team-a": {"epoch_count": EPOCHS, "batch_size": BATCH, "learning_rate": 0.001},
    # Vertex AI tunes with neither a batch size nor a learning rate (only a multiplier,
    # which the guide's SDK cannot send): the platform refuses them rather than drop
    # them, so a Vertex tenant's copy of the guide leaves them out.
    VERTEX_TENANT: {"epoch_count": EPOCHS},
}
SAMPLING = {"temperature": 0.25, "top_k": 8}
"""The tuned model's default sampling, as the SDK's create_tuned_model takes it."""
GEMINI_STEPS = len(EXAMPLES) * EPOCHS // BATCH
"""The Gemini API's count, which Google's create answers at once (the guide prints it);
a Vertex tenant's create answers an estimate, Vertex AI counting with its own batch size
once it has the job."""
SNAPSHOT_STEPS: dict[str, Callable[[int], list[int]]] = {
    "team-a": lambda steps: list(range(1, steps + 1)),
    VERTEX_TENANT: lambda steps: [],  # Vertex AI reports step counts, not a loss per step
}
"""The steps of the loss table each provider gives, for a model trained `steps` steps."""
TUNED_BASE_MODEL = {"team-a": BASE_MODEL, VERTEX_TENANT: "models/gemini-2.5-flash"}
"""The base model each provider tunes for the guide's old name (Vertex AI: the name's
target in `facade_base_models`), which it lists as tunable."""
RUN_TIMEOUT_S = 45.0


@dataclass
class Run:
    """What the tutorial printed, by step, and how it ended."""

    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    stderr: str = ""
    returncode: int | None = None

    def __getitem__(self, step: str) -> dict[str, Any]:
        assert step in self.steps, f"the tutorial stopped before {step!r}: {self.failure()}"
        return self.steps[step]

    def failure(self) -> str:
        failed = self.steps.get("failed")
        tail = self.stderr[-3000:]
        return f"{failed} (exit {self.returncode})\n{tail}" if failed else tail


@pytest.fixture
async def tls_api(system: System, tmp_path: Path) -> AsyncIterator[tuple[ApiServer, Path]]:
    """A second API of the system, serving TLS with a certificate of a test CA; the CA."""
    ca = Authority()
    cert, key = ca.server().write(tmp_path, "server")
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    settings = dataclasses.replace(system.settings, tls_cert_file=str(cert), tls_key_file=str(key))
    with httpx.Client(timeout=10.0) as token_http:
        server = await start_api(
            settings,
            system.redis,
            TenantDirectory.watch(system.tenants_file),
            listen="127.0.0.1:0",
            token_http=token_http,
        )
        yield server, ca_file
        await server.stop(1.0)


def params(system: System, tenant: str, port: int) -> dict[str, Any]:
    return {
        "endpoint": f"localhost:{port}",
        "api_key": system.tenants[tenant].token,
        "base_model": BASE_MODEL,
        "model_id": MODEL_ID,
        "cancel_id": CANCEL_ID,
        "training_data": EXAMPLES,
        "hyperparameters": HYPERPARAMETERS[tenant],
        "sampling": SAMPLING,
        "prompt": PROMPT,
    }


async def run_tutorial(system: System, tenant: str, api: tuple[ApiServer, Path]) -> Run:
    """Run the script in the judge venv; finish training when it waits on it."""
    assert JUDGE_PYTHON.exists(), f"no judge venv at {JUDGE_PYTHON}: run bin/_setup.sh"
    server, ca_file = api
    # Nothing of this process's environment (no GOOGLE_API_KEY) but where programs are.
    env = {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ}
    env["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"] = str(ca_file)
    child = await asyncio.create_subprocess_exec(
        JUDGE_PYTHON,
        SCRIPT,
        json.dumps(params(system, tenant, server.port)),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    run = Run()
    errors = asyncio.create_task(child.stderr.read())
    try:
        async with asyncio.timeout(RUN_TIMEOUT_S):
            async for line in child.stdout:
                if not line.startswith(b'{"step"'):
                    continue  # not the script's: the SDK's own printing
                said = json.loads(line)
                step = said.pop("step")
                run.steps[step] = said
                if step == "waiting":
                    await finish_training(system, tenant)
            run.returncode = await child.wait()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        run.stderr = (await errors).decode(errors="replace")
    return run


async def finish_training(system: System, tenant: str) -> None:
    """Move the emulator's clock once the tuned model's job runs upstream."""
    job_name = JOB_NAME_PREFIX + new_job_id(tenant, request_id_for(MODEL_ID))
    await system.wait_for(job_name, {State.RUNNING, *TERMINAL}, tenant=tenant, timeout_s=20.0)
    system.clock.advance(3600)


@pytest.mark.parametrize("tenant", ["team-a", VERTEX_TENANT])
async def test_the_guides_tutorial_runs_on_the_platform(
    system: System, tls_api: tuple[ApiServer, Path], tenant: str
) -> None:
    run = await run_tutorial(system, tenant, tls_api)
    name = f"tunedModels/{MODEL_ID}"

    assert TUNED_BASE_MODEL[tenant] in run["base_models"]["names"]
    created = run["create"]
    assert created["tuned_model"] == name
    assert created["operation"].startswith(name + "/operations/")
    assert created["total_steps"] > 0, "a progress bar has its end from the start"
    result = run["result"]
    steps = result["total_steps"]
    assert (result["name"], result["state"]) == (name, "ACTIVE")
    assert result["completed_steps"] == steps > 0
    if tenant == "team-a":
        assert created["total_steps"] == steps == GEMINI_STEPS
    got = run["get"]
    assert (got["name"], got["state"]) == (name, "ACTIVE")
    assert got["source_model"] == got["base_model"] == TUNED_BASE_MODEL[tenant]
    assert got["sampling"] == {"temperature": pytest.approx(0.25), "top_p": None, "top_k": 8}
    assert [row["step"] for row in got["snapshots"]] == SNAPSHOT_STEPS[tenant](steps)
    assert all(row["mean_loss"] > 0 for row in got["snapshots"])
    generated = run["generate"]
    assert f"You said: {PROMPT}" in generated["text"], generated
    assert generated["finish_reason"] == "STOP"
    assert run["update"]["description"] == "counts up by one"
    assert name in run["list"]["names"]
    assert run["cancel"] == {"done": True, "cancelled": True, "state": "FAILED"}
    assert name not in run["delete"]["remaining"]
    assert f"tunedModels/{CANCEL_ID}" not in run["delete"]["remaining"]
    assert run.returncode == 0, run.failure()


def test_the_judge_is_the_guides_sdk_on_its_own_protobuf() -> None:
    """google-generativeai 0.8.6 itself, on the protobuf it needs, not the project's."""
    assert JUDGE_PYTHON.exists(), f"no judge venv at {JUDGE_PYTHON}: run bin/_setup.sh"
    versions = (
        "import google.generativeai as g, google.protobuf as p; print(g.__version__, p.__version__)"
    )
    answer = subprocess.run(
        [JUDGE_PYTHON, "-c", versions], capture_output=True, text=True, check=True, timeout=30
    )
    sdk, protobuf = answer.stdout.split()

    assert sdk == "0.8.6"
    assert int(protobuf.split(".")[0]) < 6
