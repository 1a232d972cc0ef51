"""The demo: the whole system on real parts, one sample tuning job followed to the end.

Starts a real redis-server, the emulator (simulated training: see emulator/), the API
and a worker as separate processes, submits the sample dataset through the gRPC API
as a tenant, prints the job's progress until it ends, prints the loss per epoch, and
stops everything with SIGTERM.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import statistics
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from devstack.processes import Child, start_module
from devstack.redis_server import RedisServer, free_port
from devstack.tenants import LocalTenant, write_tenant_files
from tuning.v1 import tuning_job_pb2, tuning_service_pb2, tuning_service_pb2_grpc

SAMPLE_DATASET = Path(__file__).with_name("sample_dataset.jsonl")
State = tuning_job_pb2.TuningJob.State
TERMINAL = {State.SUCCEEDED, State.FAILED, State.CANCELLED}


@dataclass(frozen=True)
class DemoOptions:
    steps_per_second: float = 4.0
    epochs: int = 5
    batch_size: int = 4
    timeout_s: float = 120.0
    serve: bool = False


@dataclass(frozen=True)
class Stack:
    """Addresses of a running local system."""

    api_target: str
    emulator_url: str
    redis_url: str
    tenant: LocalTenant
    log_dir: Path
    metrics_urls: dict[str, str] = dataclasses.field(default_factory=dict)


def load_examples(path: Path = SAMPLE_DATASET) -> list[tuning_job_pb2.TrainingExample]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [tuning_job_pb2.TrainingExample(**row) for row in rows]


@asynccontextmanager
async def local_stack(options: DemoOptions, work_dir: Path) -> AsyncIterator[Stack]:
    """Redis, emulator, API and worker, each a real process; stopped on exit."""
    tenant = LocalTenant("demo-team")
    tenants_file, grants_file = write_tenant_files(work_dir, [tenant])
    async with AsyncExitStack() as stack:
        redis = stack.enter_context(RedisServer())
        emulator_args = ["--port", "0", "--grants-file", str(grants_file)]
        emulator_args += ["--steps-per-second", str(options.steps_per_second)]
        emulator = await _start(stack, work_dir, "emulator", emulator_args, {}, "EMULATOR_READY")
        emulator_url = emulator.ready_line.split()[1]
        env = {
            "TUNING_REDIS_URL": redis.url,
            "TUNING_TENANTS_FILE": str(tenants_file),
            "TUNING_UPSTREAM_BASE_URL": emulator_url,
            "TUNING_TOKEN_URI": emulator_url + "/token",
            "TUNING_GRPC_LISTEN": "127.0.0.1:0",
            "TUNING_POLL_MIN_S": "0.5",
            "TUNING_POLL_MAX_S": "1.0",
            "TUNING_WORKER_HEALTH_LISTEN": "127.0.0.1:0",
        }
        metrics = {name: f"127.0.0.1:{free_port()}" for name in ("service", "worker")}
        api = await _start(
            stack,
            work_dir,
            "service",
            [],
            env | {"TUNING_METRICS_LISTEN": metrics["service"]},
            "API_READY",
        )
        await _start(
            stack,
            work_dir,
            "worker",
            [],
            env | {"TUNING_METRICS_LISTEN": metrics["worker"]},
            "WORKER_READY",
        )
        port = api.ready_line.split("port=")[1]
        yield Stack(
            f"127.0.0.1:{port}",
            emulator_url,
            redis.url,
            tenant,
            work_dir,
            metrics_urls={n: f"http://{a}/metrics" for n, a in metrics.items()},
        )


async def _start(  # noqa: PLR0917 (one call shape, four call sites)
    stack: AsyncExitStack,
    log_dir: Path,
    module: str,
    args: list[str],
    env: dict[str, str],
    ready: str,
) -> Child:
    """Start `python -m module`, stop it when `stack` closes, wait for its `ready` line."""
    child = await start_module(module, module, args, env, log_dir)
    stack.push_async_callback(_stop, child)
    await child.wait_ready(ready)
    return child


async def _stop(child: Child) -> None:
    code = await child.stop()
    print(f"stopped {child.name}: exit code {code}")


async def follow_job(stack: Stack, options: DemoOptions) -> tuning_job_pb2.TuningJob:
    """Submit the sample job and print its progress until it ends."""
    metadata = (("authorization", f"Bearer {stack.tenant.token}"),)
    async with grpc.aio.insecure_channel(stack.api_target) as channel:
        client = tuning_service_pb2_grpc.TuningServiceStub(channel)
        job = await client.CreateTuningJob(_sample_request(options), metadata=metadata)
        print(f"created {job.name}: {State.Name(job.state)}")
        last = ""
        async with asyncio.timeout(options.timeout_s):
            while job.state not in TERMINAL:
                await asyncio.sleep(0.5)
                job = await client.GetTuningJob(
                    tuning_service_pb2.GetTuningJobRequest(name=job.name), metadata=metadata
                )
                line = _progress_line(job)
                if line != last:
                    print(line)
                    last = line
        return job


def _sample_request(options: DemoOptions) -> tuning_service_pb2.CreateTuningJobRequest:
    return tuning_service_pb2.CreateTuningJobRequest(
        request_id=str(uuid.uuid4()),
        tuning_job=tuning_job_pb2.TuningJob(
            display_name="number generator (demo)",
            base_model="models/gemini-1.5-flash-001-tuning",
            hyperparameters=tuning_job_pb2.Hyperparameters(
                epoch_count=options.epochs, batch_size=options.batch_size, learning_rate=0.001
            ),
            training_examples=load_examples(),
            labels={"purpose": "demo"},
        ),
    )


def _progress_line(job: tuning_job_pb2.TuningJob) -> str:
    p = job.progress
    state = State.Name(job.state)
    line = f"{state:<10} step {p.completed_steps}/{p.total_steps} ({p.completed_percent:.0f}%)"
    if job.snapshots:
        line += f"  loss {job.snapshots[-1].mean_loss:.4f}"
    return line


def loss_per_epoch(job: tuning_job_pb2.TuningJob) -> dict[int, float]:
    """Mean of the step losses of each epoch, numbered from 1.

    A snapshot's `epoch` counts the epochs completed when its step ended (as the
    upstream reports it), so the step that completes epoch k still belongs to epoch k.
    """
    epochs: dict[int, list[float]] = {}
    current = 1
    for s in job.snapshots:
        epochs.setdefault(current, []).append(s.mean_loss)
        if s.epoch >= current:
            current = s.epoch + 1
    return {epoch: statistics.fmean(losses) for epoch, losses in epochs.items()}


def _report(job: tuning_job_pb2.TuningJob) -> None:
    print(f"\n{job.name} ended {State.Name(job.state)}; tuned model: {job.tuned_model or '-'}")
    if job.error.message:
        print(f"error: {job.error.message}")
    print("loss per epoch (mean of the epoch's steps):")
    for epoch, loss in loss_per_epoch(job).items():
        print(f"  epoch {epoch}: {loss:.4f}")


async def run_demo(options: DemoOptions) -> int:
    """Run the demo; 0 if the job succeeded."""
    with tempfile.TemporaryDirectory(prefix="tuning-demo-") as tmp:
        async with local_stack(options, Path(tmp)) as stack:
            print(f"API {stack.api_target}, emulator {stack.emulator_url}, {stack.redis_url}")
            job = await follow_job(stack, options)
            _report(job)
            if options.serve:
                await _serve_until_interrupted(stack)
        return 0 if job.state == State.SUCCEEDED else 1


async def _serve_until_interrupted(stack: Stack) -> None:
    print("\nThe system keeps running; call it, for example:")
    print(f"  tenant token: {stack.tenant.token}")
    print(
        f"  grpcurl -plaintext -H 'authorization: Bearer {stack.tenant.token}' "
        f"{stack.api_target} tuning.v1.TuningService/ListTuningJobs"
    )
    for name, url in stack.metrics_urls.items():
        print(f"  metrics of the {name}: curl {url}")
    print("Press Ctrl-C to stop.")
    from core.runtime.signals import stop_signals

    async with stop_signals() as stop:
        await stop.wait()
