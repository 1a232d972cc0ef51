"""The demo: the whole system on real parts, one sample tuning job followed to the end.

Starts a real redis-server, the emulator (simulated training: see emulator/), the API
and a worker as separate processes (`devstack.launcher.launch`), submits the sample
dataset through the gRPC API as a tenant, prints the job's progress until it ends,
prints the loss per epoch, and stops everything with SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import grpc

from core.runtime.settings import Settings
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


def _launch(options: DemoOptions) -> AbstractAsyncContextManager[LocalSystem]:
    """Redis, emulator, API and one worker, each a real process, each serving /metrics."""
    return launch(
        tenants=[LocalTenant("demo-team")],
        settings=Settings(poll_min_s=0.5, poll_max_s=1.0),
        emulator=EmulatorOptions(steps_per_second=options.steps_per_second),
        workers=1,
        serve_metrics=True,
        on_stop=_report_stop,
    )


def _report_stop(child: Child, code: int) -> None:
    print(f"stopped {child.module}: exit code {code}")


async def follow_job(system: LocalSystem, options: DemoOptions) -> tuning_job_pb2.TuningJob:
    """Submit the sample job and print its progress until it ends."""
    metadata = system.metadata
    async with grpc.aio.insecure_channel(system.api_target) as channel:
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
    async with _launch(options) as system:
        print(f"API {system.api_target}, emulator {system.emulator_url}, {system.redis_url}")
        job = await follow_job(system, options)
        _report(job)
        if options.serve:
            await _serve_until_interrupted(system)
    return 0 if job.state == State.SUCCEEDED else 1


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
