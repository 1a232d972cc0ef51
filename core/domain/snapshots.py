"""A job's snapshots: the loss at each completed step (the Gemini API reports them).

A Gemini API job reports a snapshot for every step it has completed, a thousand or more
for a long job, and the worker reads the job's record and writes it back on every poll.
Kept as one `Snapshot` object each, one poll's parsing and record keeping took 0.78 ms
at 1,000 steps (0.02 ms at none; a whole poll of a job with none costs a worker about
1 ms), most of it making those objects from the record and writing them back. A poll
needs only their count and the last of them (`worker/gemini/json_mapping.py`
`snapshots_of`); the API needs them all, once per change, for the answer it caches.

So `Snapshots` keeps them as the record stores them, four columns of numbers (`step`,
`epoch`, `mean_loss`, `compute_time`), and makes a `Snapshot` only when one is read; the
loss curve, the estimated end and the answers read the columns themselves. The record
holds the columns too (33 kB at 1,000 steps, against 77 kB as one object each), and the
poll of 1,000 steps takes 0.33 ms in-process (end to end: `python -m bench long_jobs`).
A record written before them, with a list of objects, still loads.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload


@dataclass(frozen=True)
class Snapshot:
    step: int
    epoch: int
    mean_loss: float
    compute_time: float | None = None


COLUMNS = ("step", "epoch", "mean_loss", "compute_time")
"""The record's names of the columns: Snapshot's fields, in order."""


class Snapshots(Sequence[Snapshot]):
    """An immutable sequence of snapshots, kept as columns; equal to any sequence of the
    same snapshots (a tuple of them, say)."""

    __slots__ = ("_epochs", "_losses", "_steps", "_times")

    # Tuples, and one shared empty value: reading a job without snapshots allocates
    # nothing for them, as when they were a tuple of objects, and the collector stops
    # tracking a tuple of numbers. With four new lists per job read, the watch figure's
    # write-to-watcher p99 (5,000 watchers re-reading 1,000 jobs) went from 8-16 ms to
    # 200-230 ms in three runs of three; more objects for the garbage collector to track
    # and collect is the likely cause. As tuples: 9-13 ms.
    def __init__(
        self,
        steps: tuple[int, ...],
        epochs: tuple[int, ...],
        losses: tuple[float, ...],
        times: tuple[float | None, ...],
    ) -> None:
        if not len(steps) == len(epochs) == len(losses) == len(times):
            raise ValueError("the columns of snapshots differ in length")
        self._steps, self._epochs, self._losses, self._times = steps, epochs, losses, times

    @classmethod
    def of(cls, snapshots: Iterable[Snapshot]) -> Snapshots:
        """`snapshots` as Snapshots (themselves, if they are already)."""
        if isinstance(snapshots, Snapshots):
            return snapshots
        items = tuple(snapshots)
        if not items:
            return NO_SNAPSHOTS
        return cls(
            tuple([s.step for s in items]),
            tuple([s.epoch for s in items]),
            tuple([s.mean_loss for s in items]),
            tuple([s.compute_time for s in items]),
        )

    @classmethod
    def from_record(cls, stored: Any) -> Snapshots:
        """What `record` wrote; or a list of one object per snapshot, as written before."""
        if isinstance(stored, dict):
            steps, epochs, losses, times = (tuple(stored[name]) for name in COLUMNS)
            return cls(steps, epochs, losses, times) if steps else NO_SNAPSHOTS
        return cls.of(Snapshot(**item) for item in stored)

    @property
    def steps(self) -> Sequence[int]:
        """Each snapshot's step, in order: a column, read without making Snapshots."""
        return self._steps

    @property
    def epochs(self) -> Sequence[int]:
        return self._epochs

    @property
    def mean_losses(self) -> Sequence[float]:
        return self._losses

    @property
    def compute_times(self) -> Sequence[float | None]:
        return self._times

    def record(self) -> dict[str, tuple[Any, ...]]:
        """The record's form: one array per column, named as in COLUMNS."""
        return dict(zip(COLUMNS, self._columns(), strict=True))

    def _columns(self) -> tuple[tuple[Any, ...], ...]:
        return self._steps, self._epochs, self._losses, self._times

    def __add__(self, more: Iterable[Snapshot]) -> Snapshots:
        added = Snapshots.of(more)
        return Snapshots(
            self._steps + added._steps,
            self._epochs + added._epochs,
            self._losses + added._losses,
            self._times + added._times,
        )

    def __len__(self) -> int:
        return len(self._steps)

    @overload
    def __getitem__(self, index: int) -> Snapshot: ...

    @overload
    def __getitem__(self, index: slice) -> Snapshots: ...

    def __getitem__(self, index: int | slice) -> Snapshot | Snapshots:
        if isinstance(index, slice):
            return Snapshots(
                self._steps[index], self._epochs[index], self._losses[index], self._times[index]
            )
        return _made(
            self._steps[index], self._epochs[index], self._losses[index], self._times[index]
        )

    def __iter__(self) -> Iterator[Snapshot]:
        # Made afresh on each pass, not kept: a cached job holds only the columns.
        return map(_made, self._steps, self._epochs, self._losses, self._times)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Snapshots):
            return self._columns() == other._columns()
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))  # as a tuple of the same snapshots hashes

    def __repr__(self) -> str:
        return f"Snapshots({list(self)!r})"


NO_SNAPSHOTS = Snapshots((), (), (), ())


def _made(step: int, epoch: int, mean_loss: float, compute_time: float | None) -> Snapshot:
    """`Snapshot(...)` without the frozen dataclass's __init__ (four `object.__setattr__`
    calls), as core.domain.job's `_made` builds records; a thousand of them per answer."""
    one = object.__new__(Snapshot)
    one.__dict__.update(step=step, epoch=epoch, mean_loss=mean_loss, compute_time=compute_time)
    return one
