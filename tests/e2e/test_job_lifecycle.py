"""Whole-system runs: gRPC call -> Redis -> worker -> emulator over HTTP -> status back."""

from __future__ import annotations

import time

import pytest

from core.domain.loss_curve import advice as advice_rule
from tests.harness import State, System
from tuning.v1 import tuning_job_pb2


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


async def test_a_finished_jobs_loss_curve_comes_with_its_advice(system: System) -> None:
    created = await system.create(hyperparameters=tuning_job_pb2.Hyperparameters(epoch_count=4))
    done = await system.finish_training(created.name)
    means = [
        sum(s.mean_loss for s in done.snapshots if (epoch - 1) * 5 < s.step <= epoch * 5) / 5
        for epoch in range(1, 5)
    ]  # 20 examples, batch 4: five steps an epoch
    advice = done.training_advice
    assert list(advice.epoch_mean_losses) == pytest.approx(means, rel=1e-6)
    assert advice.plateau_threshold == pytest.approx(0.02)
    rule = advice_rule(means)
    assert rule is not None
    assert advice.recommended_epoch_count == rule[0]
    assert advice.basis == tuning_job_pb2.TrainingAdvice.Basis.Value(rule[1])
    assert not advice.checkpoint  # the Gemini API keeps no checkpoints
    queued = await system.create(request_id="fresh")
    assert not queued.HasField("training_advice")


async def test_a_running_job_is_given_its_estimated_end_from_its_step_rate(
    system: System,
) -> None:
    created = await system.create()
    await system.wait_for(created.name, {State.RUNNING})
    system.clock.advance(4)  # the emulator trains a step a second of its clock

    async def four_steps() -> bool:
        return (await system.get(created.name)).progress.completed_steps >= 4

    await system.eventually(four_steps)
    before_s = time.time()
    running = await system.get(created.name)
    after_s = time.time()
    last = running.snapshots[-1]
    rate = (last.step - running.snapshots[0].step) / (
        (last.compute_time.ToNanoseconds() - running.snapshots[0].compute_time.ToNanoseconds())
        / 1e9
    )
    assert rate == pytest.approx(1.0)
    left_s = (10 - last.step) / rate
    # The emulator's clock (the snapshots' times) stands days behind the API's, as a stalled
    # job's last step would: so the estimate is counted from the API's now.
    assert last.compute_time.ToNanoseconds() / 1e9 + left_s < before_s
    estimate_s = running.estimated_end_time.ToNanoseconds() / 1e9
    assert before_s + left_s <= estimate_s <= after_s + left_s
    listed = (await system.list_jobs()).tuning_jobs[0]
    listed_s = listed.estimated_end_time.ToNanoseconds() / 1e9
    assert after_s + left_s <= listed_s <= time.time() + left_s  # every answer has it
    done = await system.finish_training(created.name)
    assert not done.HasField("estimated_end_time")
