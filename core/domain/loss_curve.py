"""Advice from a job's loss curve: how many epochs were worth training.

The tuning guide's advice is to read the loss curve and stop at the epoch where it
plateaus: the lowest point before it flattens. Written as a rule, on the mean training
loss of each epoch `L[1..n]`:

- the curve is *flat from* epoch `e` when no later epoch improves on `L[e]` by more than
  `PLATEAU_THRESHOLD` of it (relative): `min(L[e+1:]) >= L[e] * (1 - threshold)`;
- the advice is the first such `e` (PLATEAU). A curve whose last epoch still improved by
  more than the threshold has not flattened: the advice is every epoch, and more may help
  (STILL_IMPROVING);
- fewer than two epochs: no advice yet (a trend needs two points).

Per-epoch means, not single steps, carry the rule: a step's loss is noisy (one batch), an
epoch's mean is not much. And comparing with the *lowest* later loss, not the next one,
makes the rule hold through a noisy epoch: a bump then a drop is not a plateau, and a
rise after the minimum (overfitting shows so) leaves the advice at the minimum's epoch.

Vertex AI's v1 reports no loss, so its jobs get no advice; where the upstream saved a
checkpoint at the advised epoch, the advice names it, to be called in place of the last.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from core.domain.job import Checkpoint
from core.domain.snapshots import Snapshot, Snapshots

PLATEAU_THRESHOLD = 0.02
"""Relative improvement below which the curve counts as flat (2%)."""


class Basis(StrEnum):
    PLATEAU = "PLATEAU"
    STILL_IMPROVING = "STILL_IMPROVING"


@dataclass(frozen=True)
class Advice:
    recommended_epoch_count: int
    basis: Basis
    epoch_mean_losses: tuple[float, ...]
    threshold: float = PLATEAU_THRESHOLD
    checkpoint_id: str = ""


def advice(
    losses: Sequence[float], threshold: float = PLATEAU_THRESHOLD
) -> tuple[int, Basis] | None:
    """The advised epoch count for per-epoch mean losses (the rule above), or None."""
    n = len(losses)
    if n < 2:
        return None
    for e in range(1, n):  # 1-based epoch e is losses[e - 1]
        if min(losses[e:]) >= losses[e - 1] * (1 - threshold):
            return e, Basis.PLATEAU
    return n, Basis.STILL_IMPROVING


def epoch_means(snapshots: Sequence[Snapshot], steps_per_epoch: float) -> list[float]:
    """The mean loss of each complete epoch (an epoch's steps: those up to its last)."""
    if steps_per_epoch <= 0 or not snapshots:
        return []
    columns = Snapshots.of(snapshots)
    sums: dict[int, list[float]] = {}
    for step, loss in zip(columns.steps, columns.mean_losses, strict=True):
        epoch = max(1, math.ceil(step / steps_per_epoch - 1e-9))
        sums.setdefault(epoch, []).append(loss)
    last_step = max(columns.steps)
    complete = int(last_step / steps_per_epoch + 1e-9)
    return [sum(sums[e]) / len(sums[e]) for e in range(1, complete + 1) if e in sums]


def job_advice(
    snapshots: Sequence[Snapshot],
    total_steps: int,
    epoch_count: int | None,
    checkpoints: Sequence[Checkpoint] = (),
) -> Advice | None:
    """The advice for a job's snapshots so far, or None (too few epochs, or no loss).

    An epoch's steps are `total_steps / epoch_count`; with no epoch count asked for (the
    upstream's default applied), the step at which the snapshots' completed-epoch count
    first reached 1."""
    if not snapshots:
        return None
    if epoch_count and total_steps > 0:
        steps_per_epoch = total_steps / epoch_count
    else:
        columns = Snapshots.of(snapshots)
        pairs = zip(columns.steps, columns.epochs, strict=True)
        steps_per_epoch = next((step for step, epoch in pairs if epoch >= 1), 0)
    losses = epoch_means(snapshots, steps_per_epoch)
    found = advice(losses)
    if found is None:
        return None
    epochs, basis = found
    at = next((c.checkpoint_id for c in checkpoints if c.epoch == epochs), "")
    return Advice(epochs, basis, tuple(losses), checkpoint_id=at)
