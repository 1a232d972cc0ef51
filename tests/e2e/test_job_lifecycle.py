"""Whole-system runs: gRPC call -> Redis -> worker -> emulator over HTTP -> status back."""

from __future__ import annotations

from tests.harness import State, System


async def test_job_runs_to_success_with_progress_and_snapshots(system: System) -> None:
    created = await system.create(request_id="r-1")
    assert created.state == State.QUEUED
    assert created.name.startswith("tuningJobs/")

    running = await system.wait_for(created.name, {State.RUNNING})
    assert running.tuned_model == f"tunedModels/tj-{created.name.split('/')[1]}"
    assert running.progress.total_steps == 10  # ceil(20 examples * 2 epochs / batch 4)

    done = await system.finish_training(created.name)
    assert done.state == State.SUCCEEDED
    assert done.progress.completed_steps == 10
    assert done.progress.completed_percent == 100.0
    assert [s.step for s in done.snapshots] == list(range(1, 11))
    assert done.snapshots[-1].mean_loss < done.snapshots[0].mean_loss
    assert done.snapshots[-1].epoch == 2
    assert done.HasField("end_time") and done.HasField("status_fetch_time")
    assert not done.training_examples
    assert await system.upstream_requests("tunedModels.create") == 1
