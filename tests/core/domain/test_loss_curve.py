"""The loss-curve rule on the curves the issue names: early plateau, none, noisy, rising."""

from __future__ import annotations

import pytest

from core.domain.job import Checkpoint
from core.domain.loss_curve import Basis, advice, epoch_means, job_advice
from core.domain.snapshots import Snapshot


@pytest.mark.parametrize(
    ("losses", "expected"),
    [
        ([2.0, 0.9, 0.895, 0.893, 0.892], (2, Basis.PLATEAU)),  # flat after epoch 2
        ([3.0, 2.0, 1.5, 1.1, 0.8], (5, Basis.STILL_IMPROVING)),  # never flattens
        ([3.0, 2.2, 2.4, 1.6, 1.58, 1.59], (4, Basis.PLATEAU)),  # a bump is not a plateau
        ([3.0, 2.0, 1.5, 1.7, 1.9], (3, Basis.PLATEAU)),  # rises again: its lowest point
        ([1.0, 1.0], (1, Basis.PLATEAU)),  # flat from the start
    ],
)
def test_the_advice_is_the_lowest_point_before_the_curve_flattens(
    losses: list[float], expected: tuple[int, Basis]
) -> None:
    assert advice(losses) == expected


def test_one_epoch_is_too_few_for_advice() -> None:
    assert advice([]) is None
    assert advice([1.0]) is None


def test_a_threshold_decides_what_counts_as_flat() -> None:
    losses = [2.0, 1.9, 1.85]  # 5%, then 2.6% better (7.5% below epoch 1 in all)
    assert advice(losses, threshold=0.02) == (3, Basis.STILL_IMPROVING)
    assert advice(losses, threshold=0.03) == (2, Basis.PLATEAU)
    assert advice(losses, threshold=0.08) == (1, Basis.PLATEAU)


def test_epoch_means_average_each_complete_epochs_steps() -> None:
    snaps = [Snapshot(step, 0, loss) for step, loss in [(1, 4), (2, 2), (3, 1), (4, 1), (5, 9)]]
    # 2 steps an epoch: (4+2)/2, (1+1)/2; step 5 begins an epoch not yet complete
    assert epoch_means(snaps, 2) == [3.0, 1.0]
    assert epoch_means(snaps, 0) == []


def test_a_jobs_advice_names_the_checkpoint_of_its_epoch() -> None:
    losses = [2.0, 0.9, 0.895, 0.894]
    snaps = [
        Snapshot(epoch * 3 + k, epoch, loss) for epoch, loss in enumerate(losses) for k in (1, 2, 3)
    ]
    checkpoints = [Checkpoint(str(e), epoch=e, step=3 * e) for e in range(1, 5)]
    found = job_advice(snaps, total_steps=12, epoch_count=4, checkpoints=checkpoints)
    assert found is not None
    assert (found.recommended_epoch_count, found.basis, found.checkpoint_id) == (
        2,
        Basis.PLATEAU,
        "2",
    )
    assert found.epoch_mean_losses == pytest.approx(losses)
    assert job_advice(snaps[:3], total_steps=12, epoch_count=4) is None  # one epoch so far
    assert job_advice([], total_steps=12, epoch_count=4) is None
    # no epoch count asked for: the snapshots' own epoch counter marks the first epoch's end
    marked = [
        Snapshot(3 * e + k, e + (k == 3), loss) for e, loss in enumerate(losses) for k in (1, 2, 3)
    ]
    assert job_advice(marked, 0, None, checkpoints) == found
