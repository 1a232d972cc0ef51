"""Simulated training: nothing is trained, steps advance with the clock.

Progress is a pure function of the plan fixed at creation time, the current time of the
injected clock and (if the operation was cancelled) the time of the cancel. There are no
background tasks or timers: every read computes the state afresh, so a test that moves a fake
clock sees exactly the same steps, snapshots and losses every run.

Step ``k`` (1-based) completes at ``start_s + k / steps_per_second``. Training ends at the final
step: ``total_steps`` normally, or the step of a forced :class:`Stop` (emulator-only: the
``[fail]`` display-name marker, a ``training`` fault rule), or the step reached when a cancel
arrived. A stop that stalls never ends by itself: the run stays RUNNING at its step until it is
cancelled.
"""

from __future__ import annotations

import enum
import hashlib
import math
from dataclasses import dataclass, replace

# Guards ``floor`` against float error: 19.0 s * 2.0 steps/s must give 38 steps, not 37.
_EPSILON = 1e-9


class Outcome(enum.StrEnum):
    """Where a training run stands."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True)
class Stop:
    """A forced end of a run at a given step (emulator-only).

    Attributes:
        step: the last step the run completes (0 stops it before the first).
        fails: true: the run ends FAILED once ``step`` is reached; false: it stalls there,
            RUNNING, until it is cancelled.
    """

    step: int
    fails: bool

    def clamped(self, total_steps: int) -> Stop:
        """The same stop with its step limited to ``[0, total_steps]``."""
        return replace(self, step=min(max(self.step, 0), total_steps))


@dataclass(frozen=True)
class TrainingPlan:
    """Everything fixed when the tuned model is created.

    Attributes:
        seed: makes the loss curve's noise deterministic per model (the model id).
        start_s: when training starts (the creation time), epoch seconds.
        total_steps: ``ceil(example_count * epoch_count / batch_size)``.
        example_count: number of training examples.
        batch_size: examples per step.
        steps_per_second: simulated speed.
        stop: where the run fails or stalls instead of succeeding (step within the total);
            ``None`` for a run that succeeds.
    """

    seed: str
    start_s: float
    total_steps: int
    example_count: int
    batch_size: int
    steps_per_second: float
    stop: Stop | None = None


@dataclass(frozen=True)
class Snapshot:
    """The state after one completed step."""

    step: int
    epoch: int
    mean_loss: float
    compute_time_s: float


@dataclass(frozen=True)
class Progress:
    """The run as seen at one moment.

    Attributes:
        completed_steps: steps finished so far.
        total_steps: steps the run was planned for.
        outcome: RUNNING until the run ends.
        end_s: when the run ended (``None`` while running).
    """

    completed_steps: int
    total_steps: int
    outcome: Outcome
    end_s: float | None

    @property
    def done(self) -> bool:
        """Whether the run has ended, one way or another."""
        return self.outcome is not Outcome.RUNNING

    @property
    def completed_percent(self) -> float:
        """``100 * completed_steps / total_steps``."""
        return 100.0 * self.completed_steps / self.total_steps


def total_steps(example_count: int, epoch_count: int, batch_size: int) -> int:
    """``ceil(examples * epochs / batch_size)`` in exact integer arithmetic."""
    return -(-example_count * epoch_count // batch_size)


def progress(plan: TrainingPlan, now_s: float, cancel_s: float | None = None) -> Progress:
    """The run of ``plan`` as seen at ``now_s``, given the time of a cancel if there was one."""
    outcome, end_step, end_s = _ending(plan, cancel_s)
    if now_s < end_s:
        steps = min(steps_done_by(plan, now_s), end_step)
        return _progress(plan, steps, Outcome.RUNNING, None)
    return _progress(plan, end_step, outcome, end_s)


def steps_done_by(plan: TrainingPlan, now_s: float) -> int:
    """Steps completed by ``now_s`` if nothing stopped the run (capped at the total)."""
    elapsed_s = max(0.0, now_s - plan.start_s)
    return min(plan.total_steps, math.floor(elapsed_s * plan.steps_per_second + _EPSILON))


def step_time_s(plan: TrainingPlan, step: int) -> float:
    """When ``step`` completes, epoch seconds."""
    return plan.start_s + step / plan.steps_per_second


def epoch_of(step: int, batch_size: int, example_count: int) -> int:
    """Whole epochs finished after ``step``: ``(step * batch_size) // example_count``."""
    return (step * batch_size) // example_count


def mean_loss(seed: str, step: int, total: int) -> float:
    """A plausible falling loss: exponential decay toward a floor plus small fixed noise."""
    initial = 2.0 + 1.5 * _unit(seed, "initial")
    floor = 0.05 + 0.1 * _unit(seed, "floor")
    trend = floor + (initial - floor) * math.exp(-4.0 * step / total)
    noise = 0.05 * trend * (2.0 * _unit(seed, str(step)) - 1.0)
    return round(max(0.0, trend + noise), 6)


def _ending(plan: TrainingPlan, cancel_s: float | None) -> tuple[Outcome, int, float]:
    """How the run ends: outcome, final step and end time (infinite for a stall)."""
    outcome, final_step = _planned_end(plan)
    natural_end_s = math.inf if outcome is Outcome.RUNNING else step_time_s(plan, final_step)
    if cancel_s is not None and cancel_s < natural_end_s:
        return Outcome.CANCELLED, min(steps_done_by(plan, cancel_s), final_step), cancel_s
    return outcome, final_step, natural_end_s


def _planned_end(plan: TrainingPlan) -> tuple[Outcome, int]:
    """The outcome and final step without a cancel; RUNNING for a run that stalls."""
    stop = plan.stop
    if stop is None:
        return Outcome.SUCCEEDED, plan.total_steps
    return (Outcome.FAILED if stop.fails else Outcome.RUNNING), stop.step


def _progress(plan: TrainingPlan, steps: int, outcome: Outcome, end_s: float | None) -> Progress:
    return Progress(steps, plan.total_steps, outcome, end_s)


def snapshot(plan: TrainingPlan, step: int) -> Snapshot:
    """The state after ``step`` (1 to the total): the same for a plan whenever it is asked."""
    return Snapshot(
        step=step,
        epoch=epoch_of(step, plan.batch_size, plan.example_count),
        mean_loss=mean_loss(plan.seed, step, plan.total_steps),
        compute_time_s=step_time_s(plan, step),
    )


def _unit(seed: str, salt: str) -> float:
    """A deterministic number in [0, 1) from the seed and a salt."""
    digest = hashlib.blake2b(f"{seed}:{salt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
