"""The demo: the whole system on real parts, one sample tuning job per provider followed
to the end.

Starts a real redis-server, the emulator (simulated training: see emulator/), the API
and a worker as separate processes (`devstack.launcher.launch`), submits the sample
dataset through the gRPC API as two tenants, `demo-team` on the Gemini API and
`vertex-team` on Vertex AI (its training file staged in the emulated Cloud Storage),
prints both jobs' progress until they end, prints what each upstream reported (the loss
per epoch; Vertex AI's data statistics and checkpoints), and stops everything with
SIGTERM. No Google account is involved: both upstreams are the emulator's.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import grpc
from rich.console import Console

from cli.watch_screen import screen
from core.runtime.settings import Settings
from core.security.authorized_user import CLOUD_PLATFORM_SCOPE
from devstack.launcher import EmulatorOptions, LocalSystem, launch
from devstack.processes import Child
from devstack.tenants import LocalTenant
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


def load_examples(path: Path = SAMPLE_DATASET) -> list[tuning_job_pb2.TrainingExample]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [tuning_job_pb2.TrainingExample(**row) for row in rows]


GEMINI_TENANT = "demo-team"
VERTEX_TENANT = "vertex-team"
VERTEX_PROVIDER = {
    "kind": "vertex",
    "project": "vertex-team-demo",
    "location": "us-central1",
    "staging": "gs://vertex-team-tuning/platform",
}


def demo_tenants() -> list[LocalTenant]:
    """One tenant per provider; the Vertex one's grant has the cloud-platform scope."""
    vertex = LocalTenant(VERTEX_TENANT, scopes=(CLOUD_PLATFORM_SCOPE,), provider=VERTEX_PROVIDER)
    return [LocalTenant(GEMINI_TENANT), vertex]


def _launch(options: DemoOptions) -> AbstractAsyncContextManager[LocalSystem]:
    """Redis, emulator, API and one worker, each a real process, each serving /metrics."""
    return launch(
        tenants=demo_tenants(),
        settings=Settings(poll_min_s=0.5, poll_max_s=1.0),
        emulator=EmulatorOptions(steps_per_second=options.steps_per_second, vertex_pending_s=1.0),
        workers=1,
        serve_metrics=True,
        on_stop=_report_stop,
    )


def _report_stop(child: Child, code: int) -> None:
    print(f"stopped {child.module}: exit code {code}")


async def follow_job(
    system: LocalSystem,
    tenant: str,
    request: tuning_service_pb2.CreateTuningJobRequest,
    *,
    timeout_s: float,
) -> tuning_job_pb2.TuningJob:
    """Submit `request` as `tenant` and print the job's progress until it ends."""
    metadata = system.metadata_of(tenant)
    async with grpc.aio.insecure_channel(system.api_target) as channel:
        client = tuning_service_pb2_grpc.TuningServiceStub(channel)
        job = await client.CreateTuningJob(request, metadata=metadata)
        print(f"{tenant}: created {job.name}: {State.Name(job.state)}")
        last = ""
        async with asyncio.timeout(timeout_s):
            while job.state not in TERMINAL:
                await asyncio.sleep(0.5)
                job = await client.GetTuningJob(
                    tuning_service_pb2.GetTuningJobRequest(name=job.name), metadata=metadata
                )
                line = _progress_line(job)
                if line != last:
                    print(f"{tenant}: {line}")
                    last = line
        return job


def gemini_request(options: DemoOptions) -> tuning_service_pb2.CreateTuningJobRequest:
    """The sample job as the Gemini API takes it: a batch size and a learning rate."""
    hyper = tuning_job_pb2.Hyperparameters(
        epoch_count=options.epochs, batch_size=options.batch_size, learning_rate=0.001
    )
    return _sample_request("models/gemini-1.5-flash-001-tuning", hyper)


def vertex_request(options: DemoOptions) -> tuning_service_pb2.CreateTuningJobRequest:
    """The sample job as Vertex AI takes it: an adapter size, a rate multiplier and a
    system instruction applied to every example."""
    hyper = tuning_job_pb2.Hyperparameters(
        epoch_count=options.epochs, adapter_size=4, learning_rate_multiplier=1.0
    )
    request = _sample_request("gemini-2.5-flash", hyper)
    request.tuning_job.system_instruction = "Answer with the next number only."
    return request


def _sample_request(
    base_model: str, hyper: tuning_job_pb2.Hyperparameters
) -> tuning_service_pb2.CreateTuningJobRequest:
    return tuning_service_pb2.CreateTuningJobRequest(
        request_id=str(uuid.uuid4()),
        tuning_job=tuning_job_pb2.TuningJob(
            display_name="number generator (demo)",
            base_model=base_model,
            hyperparameters=hyper,
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


def _report(tenant: str, job: tuning_job_pb2.TuningJob) -> None:
    provider = tuning_job_pb2.TuningJob.Provider.Name(job.provider)
    print(f"\n{tenant} ({provider}): {job.name} ended {State.Name(job.state)}")
    print(f"  tuned model: {job.tuned_model or '-'}")
    if job.tuned_model_endpoint:
        print(f"  served from: {job.tuned_model_endpoint}")
    if job.error.message:
        print(f"  error: {job.error.message}")
    if job.HasField("tuning_data_stats"):
        stats = job.tuning_data_stats
        print(
            f"  data: {stats.example_count} examples, {stats.total_characters} characters, "
            f"{stats.billable_tokens} billable tokens, {stats.step_count} steps"
        )
    for checkpoint in job.checkpoints:
        print(
            f"  checkpoint {checkpoint.checkpoint_id}: epoch {checkpoint.epoch}, "
            f"step {checkpoint.step}"
        )
    if job.snapshots:
        print("  loss per epoch (mean of the epoch's steps):")
        for epoch, loss in loss_per_epoch(job).items():
            print(f"    epoch {epoch}: {loss:.4f}")
    print_watch_screen(job)


SCREEN_COLUMNS = 100


def print_watch_screen(job: tuning_job_pb2.TuningJob) -> None:
    """The job's last `tunectl jobs watch` screen (docs/cli.md), drawn at a fixed width
    without colours, so the demo's output shows what a person following it saw."""
    console = Console(width=SCREEN_COLUMNS, force_terminal=False, color_system=None)
    print(f"  tunectl jobs watch {job.name}:")
    console.print(screen(job, now_s=time.time(), width=SCREEN_COLUMNS - 2))


async def run_demo(options: DemoOptions) -> int:
    """Run the demo; 0 if both jobs succeeded."""
    async with _launch(options) as system:
        print(f"API {system.api_target}, emulator {system.emulator_url}, {system.redis_url}")
        requests = {GEMINI_TENANT: gemini_request(options), VERTEX_TENANT: vertex_request(options)}
        jobs = await asyncio.gather(
            *(
                follow_job(system, tenant, request, timeout_s=options.timeout_s)
                for tenant, request in requests.items()
            )
        )
        for tenant, job in zip(requests, jobs, strict=True):
            _report(tenant, job)
        if options.serve:
            await _serve_until_interrupted(system)
    return 0 if all(job.state == State.SUCCEEDED for job in jobs) else 1


async def _serve_until_interrupted(system: LocalSystem) -> None:
    print("\nThe system keeps running; call it, for example:")
    print(f"  tenant token: {system.tenant.token}")
    print(
        f"  grpcurl -plaintext -H 'authorization: Bearer {system.tenant.token}' "
        f"{system.api_target} tuning.v1.TuningService/ListTuningJobs"
    )
    for name, url in system.metrics_urls.items():
        print(f"  metrics of the {system.processes.children[name].module}: curl {url}")
    print("Press Ctrl-C to stop.")
    from core.runtime.signals import stop_signals

    async with stop_signals() as stop:
        await stop.wait()
