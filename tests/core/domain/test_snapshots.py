"""Snapshots kept as columns behave as the tuple of Snapshot objects they stand for."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.domain.snapshots import NO_SNAPSHOTS, Snapshot, Snapshots

snapshot = st.builds(
    Snapshot,
    step=st.integers(0, 10**6),
    epoch=st.integers(0, 1000),
    mean_loss=st.floats(allow_nan=False, allow_infinity=False),
    compute_time=st.none() | st.floats(0, 2e9),
)
lists = st.lists(snapshot, max_size=30)


@given(lists, st.integers(-40, 40), st.integers(-40, 40))
def test_they_read_as_the_tuple_would(items: list[Snapshot], start: int, stop: int) -> None:
    ours, theirs = Snapshots.of(items), tuple(items)
    assert len(ours) == len(theirs) and bool(ours) == bool(theirs)
    assert list(ours) == list(theirs) and ours == theirs and theirs == ours
    assert hash(ours) == hash(theirs)
    assert list(ours[start:stop]) == list(theirs[start:stop])
    for index in (start, stop):
        if -len(theirs) <= index < len(theirs):
            assert ours[index] == theirs[index]
        else:
            with pytest.raises(IndexError):
                ours[index]
    assert (list(ours.steps), list(ours.mean_losses)) == (
        [s.step for s in items],
        [s.mean_loss for s in items],
    )


@given(lists, lists)
def test_adding_more_is_the_tuples_sum(first: list[Snapshot], more: list[Snapshot]) -> None:
    joined = Snapshots.of(first) + more
    assert joined == (*first, *more)
    assert Snapshots.of(first) == tuple(first), "the first ones are left as they were"


@given(lists)
def test_the_record_form_is_columns_and_reads_back(items: list[Snapshot]) -> None:
    ours = Snapshots.of(items)
    stored = json.loads(json.dumps(ours.record()))
    assert list(stored) == ["step", "epoch", "mean_loss", "compute_time"]
    assert stored["compute_time"] == [s.compute_time for s in items]
    assert Snapshots.from_record(stored) == ours


def test_a_record_of_one_object_per_snapshot_still_loads() -> None:
    older = [{"step": 1, "epoch": 0, "mean_loss": 0.5}, {"step": 2, "epoch": 1, "mean_loss": 0.25}]
    assert Snapshots.from_record(older) == (Snapshot(1, 0, 0.5), Snapshot(2, 1, 0.25))


def test_they_are_their_own_snapshots_and_unequal_to_other_things() -> None:
    ours = Snapshots.of([Snapshot(1, 0, 0.5)])
    assert Snapshots.of(ours) is ours
    assert ours != (Snapshot(1, 0, 0.25),) and ours not in (NO_SNAPSHOTS, "x")
    assert NO_SNAPSHOTS == () and not NO_SNAPSHOTS
    with pytest.raises(ValueError, match="differ in length"):
        Snapshots((1,), (), (), ())
