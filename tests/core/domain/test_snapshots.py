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


def as_stored(items: list[Snapshot]) -> Snapshots:
    """`items` as a job's record stores them and reads them back."""
    return Snapshots.from_record(json.loads(json.dumps(Snapshots.of(items).record())))


@given(lists)
def test_the_record_form_is_the_count_and_each_column_as_text(items: list[Snapshot]) -> None:
    stored = json.loads(json.dumps(Snapshots.of(items).record()))
    assert list(stored) == ["count", "step", "epoch", "mean_loss", "compute_time"]
    assert stored["count"] == len(items)
    assert json.loads(stored["compute_time"]) == [s.compute_time for s in items]
    assert as_stored(items) == tuple(items)


@given(lists, lists, st.integers(-40, 40))
def test_read_back_they_are_the_tuple_unparsed_or_not(
    items: list[Snapshot], more: list[Snapshot], index: int
) -> None:
    theirs = tuple(items)
    assert len(as_stored(items)) == len(theirs) and bool(as_stored(items)) == bool(theirs)
    if theirs:
        assert as_stored(items)[-1] == theirs[-1] == as_stored(items)[len(theirs) - 1]
    if -len(theirs) <= index < len(theirs):
        assert as_stored(items)[index] == theirs[index]
    joined = as_stored(items) + more  # appended to the texts, neither side parsed
    assert joined == (*theirs, *more) and list(joined.steps) == [s.step for s in joined]
    again = Snapshots.from_record(json.loads(json.dumps(joined.record())))
    assert again == joined and list(again) == [*theirs, *more]
    assert as_stored(items) == Snapshots.of(items) == as_stored(items)
    assert hash(as_stored(items)) == hash(theirs)


def test_a_record_of_lists_of_numbers_still_loads() -> None:
    older = {"step": [1, 2], "epoch": [0, 1], "mean_loss": [0.5, 0.25], "compute_time": [3.0, None]}
    assert Snapshots.from_record(older) == (Snapshot(1, 0, 0.5, 3.0), Snapshot(2, 1, 0.25))
    assert Snapshots.from_record({name: [] for name in older}) is NO_SNAPSHOTS


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
