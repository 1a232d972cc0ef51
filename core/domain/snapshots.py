"""A job's snapshots: the loss at each completed step (the Gemini API reports them).

A Gemini API job reports a snapshot for every step it has completed, a thousand or more
for a long job, and the worker reads the job's record and writes it back on every poll.
Kept as one `Snapshot` object each, one poll's parsing and record keeping took 0.78 ms
at 1,000 steps (0.02 ms at none; a whole poll of a job with none costs a worker about
1 ms), most of it making those objects from the record and writing them back. A poll
needs only their count and the last of them (`worker/gemini/json_mapping.py`
`snapshots_of`); the API needs them all, once per change, for the answer it caches.

So `Snapshots` keeps them as columns (`step`, `epoch`, `mean_loss`, `compute_time`), and
makes a `Snapshot` only when one is read; the loss curve, the estimated end and the
answers read the columns themselves. The record stores each column as the JSON text of
an array of its numbers, a string within the record, with their count beside them: a
string is read and written without parsing the numbers in it (orjson: 34 us to read a
40 kB record of 1,000 steps, against 140 us with the columns as arrays, on a slow
machine), and a poll reads the count, reads the last snapshot from the end of each
text, and appends the new ones to the texts, so that nothing of the earlier steps is
parsed or written out again (the record's whole cycle, read, append and write: 125 us
at 1,000 steps, against 280 for the read and the write alone before). The columns are
parsed the first time one is read (the API, once per change, for its answer), and the
texts then dropped. Records written before, with lists of numbers or a list of objects,
still load.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast, overload

import orjson


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
    same snapshots (a tuple of them, say).

    Read from a record, the columns stay the JSON text they were stored as until a
    column is read; their count is stored with them, the last snapshot is read from the
    end of each text, and adding snapshots appends to the texts (module docstring)."""

    __slots__ = ("_columns_read", "_count", "_texts")

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
        self._columns_read: _Columns | None = (steps, epochs, losses, times)
        self._texts: _Texts | None = None
        self._count = len(steps)

    @classmethod
    def _of_texts(cls, texts: _Texts, count: int) -> Snapshots:
        if not count:
            return NO_SNAPSHOTS
        made = object.__new__(cls)
        made._columns_read, made._texts, made._count = None, texts, count
        return made

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
        """What `record` wrote; or either form written before it: lists of numbers under
        the same names, or a list of one object per snapshot."""
        if isinstance(stored, list):
            return cls.of(Snapshot(**item) for item in stored)
        if isinstance(stored["step"], str):
            texts = tuple(stored[name] for name in COLUMNS)
            return cls._of_texts(cast(_Texts, texts), stored["count"])
        steps, epochs, losses, times = (tuple(stored[name]) for name in COLUMNS)
        return cls(steps, epochs, losses, times) if steps else NO_SNAPSHOTS

    @property
    def steps(self) -> Sequence[int]:
        """Each snapshot's step, in order: a column, read without making Snapshots."""
        return self._columns()[0]

    @property
    def epochs(self) -> Sequence[int]:
        return self._columns()[1]

    @property
    def mean_losses(self) -> Sequence[float]:
        return self._columns()[2]

    @property
    def compute_times(self) -> Sequence[float | None]:
        return self._columns()[3]

    def record(self) -> dict[str, Any]:
        """The record's form: the count, and each column as the JSON text of an array of
        its numbers, named as in COLUMNS."""
        if self._texts is None:
            self._texts = _texts_of(self._columns())
        return {"count": self._count, **dict(zip(COLUMNS, self._texts, strict=True))}

    def _columns(self) -> _Columns:
        if self._columns_read is None:
            assert self._texts is not None
            steps, epochs, losses, times = (tuple(orjson.loads(t)) for t in self._texts)
            # The texts go: a job cached by the API holds only the columns, as before.
            self._columns_read, self._texts = (steps, epochs, losses, times), None
        return self._columns_read

    def __add__(self, more: Iterable[Snapshot]) -> Snapshots:
        added = Snapshots.of(more)
        if not added:
            return self
        if self._columns_read is None and self._texts is not None:
            # Still as read: the texts grow, and are not parsed (a poll of a long job).
            joined = zip(self._texts, _texts_of(added._columns()), strict=True)
            texts = tuple(f"{mine[:-1]},{theirs[1:]}" for mine, theirs in joined)
            return Snapshots._of_texts(cast(_Texts, texts), self._count + added._count)
        mine, theirs = self._columns(), added._columns()
        return Snapshots(
            mine[0] + theirs[0], mine[1] + theirs[1], mine[2] + theirs[2], mine[3] + theirs[3]
        )

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> Snapshot: ...

    @overload
    def __getitem__(self, index: slice) -> Snapshots: ...

    def __getitem__(self, index: int | slice) -> Snapshot | Snapshots:
        if isinstance(index, slice):
            steps, epochs, losses, times = self._columns()
            return Snapshots(steps[index], epochs[index], losses[index], times[index])
        texts = self._texts
        if texts is not None and self._columns_read is None and index in (-1, self._count - 1):
            # The last one, which a poll compares with the upstream's: read from the
            # texts' ends, without parsing the rest.
            return _made(*(orjson.loads(_last_item(text)) for text in texts))
        steps, epochs, losses, times = self._columns()
        return _made(steps[index], epochs[index], losses[index], times[index])

    def __iter__(self) -> Iterator[Snapshot]:
        # Made afresh on each pass, not kept: a cached job holds only the columns.
        return map(_made, *self._columns())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Snapshots):
            if self._count != other._count:
                return False  # without reading either: a poll's new job against its old
            if self._texts is not None and self._texts == other._texts:
                return True
            return self._columns() == other._columns()
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))  # as a tuple of the same snapshots hashes

    def __repr__(self) -> str:
        return f"Snapshots({list(self)!r})"


_Columns = tuple[tuple[int, ...], tuple[int, ...], tuple[float, ...], tuple[float | None, ...]]
_Texts = tuple[str, str, str, str]


def _texts_of(columns: _Columns) -> _Texts:
    steps, epochs, losses, times = (orjson.dumps(column).decode() for column in columns)
    return steps, epochs, losses, times


def _last_item(text: str) -> str:
    """The last number (or null) of a JSON array of them, as text: after its last comma,
    or its only one."""
    return text[max(text.rfind(","), 0) + 1 : -1]


NO_SNAPSHOTS = Snapshots((), (), (), ())


def _made(step: int, epoch: int, mean_loss: float, compute_time: float | None) -> Snapshot:
    """`Snapshot(...)` without the frozen dataclass's __init__ (four `object.__setattr__`
    calls), as core.domain.job's `_made` builds records; a thousand of them per answer."""
    one = object.__new__(Snapshot)
    one.__dict__.update(step=step, epoch=epoch, mean_loss=mean_loss, compute_time=compute_time)
    return one
