"""Checking a JSONL dataset as it streams: line-complete blocks, each checked on its own.

A JSONL upload may be 1 GB; it is never held whole. `LineBlocks` cuts the received chunks
into blocks of about BLOCK_BYTES that end at a newline (a line never spans two blocks),
numbering each block's first line and byte. `check_block` checks one block exactly as
`parse_dataset` checks a JSONL file's lines (the same functions, so the same verdicts and
messages), in a child process of the API (service.dataset_checker), and returns only
numbers and at most `max_reported` violations. `StreamCheck` adds the blocks' reports up,
in order, into the dataset's report.

What needs the whole dataset at once is bounded instead: the duplicate and format
consistency warnings, and the `duplicates` count, look at the examples of the blocks that
begin within the first WARNING_WINDOW_BYTES of the upload (for a dataset up to that size,
all of it, as `parse_dataset` does); the blocks' examples themselves come back only for
that window. Every line is still checked: a dataset with a bad line anywhere is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from operator import itemgetter

import orjson

from core.errors import FieldViolation
from service.dataset_parsing import (
    _SURROGATE_ESCAPE,
    DatasetOptions,
    DatasetReport,
    DatasetStats,
    _Capped,
    _count_violations,
    _decode,
    _duplicates,
    _jsonl_records,
    _more_problems,
    _plain_pair,
    _Record,
    _Stop,
    _Valid,
    _warnings,
)

BLOCK_BYTES = 1024 * 1024
"""About how much of an upload one child checks at once (a block ends at a newline)."""
WARNING_WINDOW_BYTES = 8 * 1024 * 1024
"""The first bytes of an upload whose examples the dataset-wide warnings look at."""


@dataclass(frozen=True)
class Block:
    """Whole lines of an upload: `data` begins at line `first_line`, byte `first_byte`."""

    data: bytes
    first_line: int
    first_byte: int


@dataclass(frozen=True)
class BlockReport:
    """What `check_block` found in one block; `numbers`, `inputs` and `outputs` are the
    valid examples, given only for a block of the warning window."""

    examples: int
    input_chars: int
    output_chars: int
    max_input_chars: int
    max_output_chars: int
    violations: tuple[FieldViolation, ...]
    more_violations: int
    numbers: tuple[int, ...] = ()
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()


class LineBlocks:
    """Chunks in, blocks of whole lines out; a line longer than `max_line_bytes` is an
    error as soon as it is known to be (OverlongLine), so nothing grows without bound."""

    def __init__(self, *, block_bytes: int = BLOCK_BYTES, max_line_bytes: int) -> None:
        self._block_bytes = block_bytes
        self._max_line_bytes = max_line_bytes
        self._parts: list[bytes] = []
        self._held = 0
        self._line = 1
        self._byte = 0

    def feed(self, chunk: bytes) -> Iterator[Block]:
        """The blocks `chunk` completes (none, usually)."""
        self._parts.append(chunk)
        self._held += len(chunk)
        if self._held < self._block_bytes:
            return
        cut = chunk.rfind(b"\n") + 1  # the block ends in this chunk, most likely
        if not cut:
            data = b"".join(self._parts)
            if b"\n" not in data:
                if len(data) > self._max_line_bytes:
                    raise OverlongLine(self._line, self._max_line_bytes)
                self._parts = [data]
                return
            cut = data.rfind(b"\n") + 1
            self._parts, self._held = [data[cut:]], len(data) - cut
            yield self._block(data[:cut])
            return
        block = b"".join([*self._parts[:-1], memoryview(chunk)[:cut]])  # one copy
        self._parts, self._held = [chunk[cut:]], len(chunk) - cut
        yield self._block(block)

    def finish(self) -> Iterator[Block]:
        """The last block: what follows the last newline."""
        data = b"".join(self._parts)
        self._parts, self._held = [], 0
        if data:
            if len(data) > self._max_line_bytes and b"\n" not in data:
                raise OverlongLine(self._line, self._max_line_bytes)
            yield self._block(data)

    def _block(self, data: bytes) -> Block:
        block = Block(data, self._line, self._byte)
        self._line += data.count(b"\n")
        self._byte += len(data)
        return block


class OverlongLine(Exception):
    """A line longer than any valid example can be."""

    def __init__(self, line: int, max_bytes: int) -> None:
        super().__init__(line, max_bytes)
        self.violation = FieldViolation(
            f"lines[{line}]",
            f"line {line}: longer than {max_bytes} bytes, more than any valid "
            "example can be (is the file JSONL, one example per line?)",
        )


def max_line_bytes(options: DatasetOptions) -> int:
    """The longest line a valid example may need: every character escaped (`\\uXXXX`),
    plus room for its keys and other fields."""
    return 6 * (options.max_input_chars + options.max_output_chars) + 64 * 1024


def check_block(block: Block, options: DatasetOptions, keep: bool) -> BlockReport:
    """Check one block's lines as `parse_dataset` checks a JSONL file's; with `keep`, the
    valid examples come back too. Runs in a child process: a module-level function of
    picklable arguments.

    Most blocks are all plain examples: `_plain_block` finds that in one tight pass over
    the bytes. Any other block is checked the long way, line by line through the same
    functions as `parse_dataset`, for its exact verdicts and messages.
    """
    plain = _plain_block(block, options, keep)
    return plain if plain is not None else _checked_block(block, options, keep)


def _plain_block(block: Block, options: DatasetOptions, keep: bool) -> BlockReport | None:
    """The report of a block whose every line is blank or a plain example; else None.

    A plain example is a line orjson reads as an object (orjson also checks the UTF-8, and
    refuses lone surrogate escapes) whose two fields are strings within their limits and
    not blank: what `_plain_pair` accepts. This is the upload's hot path, so each test
    runs over the whole block at once (`map`, `min`, `max`: loops in C, not Python), and
    nothing is kept of an example unless `keep`.
    """
    if keep:
        return _plain_block_kept(block, options)
    lines = filter(None, block.data.split(b"\n"))  # a line of spaces fails to load
    try:
        values = list(map(orjson.loads, lines))
        inputs = list(map(itemgetter(options.input_field), values))
        outputs = list(map(itemgetter(options.output_field), values))
        # `join` refuses anything but strings, and its length is the sum of theirs.
        in_chars, out_chars = len("".join(inputs)), len("".join(outputs))
    except (orjson.JSONDecodeError, TypeError, KeyError):
        return None  # not JSON, not an object, a field missing or not a string
    in_lengths, out_lengths = list(map(len, inputs)), list(map(len, outputs))
    longest_in, longest_out = max(in_lengths, default=0), max(out_lengths, default=0)
    if longest_in > options.max_input_chars or longest_out > options.max_output_chars:
        return None
    if values and (0 in in_lengths or 0 in out_lengths):
        return None
    if any(map(str.isspace, inputs)) or any(map(str.isspace, outputs)):
        return None
    return BlockReport(len(values), in_chars, out_chars, longest_in, longest_out, (), 0)


def _plain_block_kept(block: Block, options: DatasetOptions) -> BlockReport | None:
    """`_plain_block`, keeping the examples (a block of the warnings' window)."""
    inputs: list[str] = []
    outputs: list[str] = []
    numbers: list[int] = []
    for index, line in enumerate(block.data.split(b"\n")):
        if not line or line.isspace():
            continue
        try:
            fields = orjson.loads(line)
        except orjson.JSONDecodeError:
            return None
        pair = _plain_pair(fields, options, False) if type(fields) is dict else None
        if pair is None:
            return None
        inputs.append(pair[0])
        outputs.append(pair[1])
        numbers.append(block.first_line + index)
    return _report(inputs, outputs, (), 0, numbers)


def _report(
    inputs: list[str],
    outputs: list[str],
    violations: tuple[FieldViolation, ...],
    more_violations: int,
    numbers: list[int] | None,
) -> BlockReport:
    input_lengths, output_lengths = list(map(len, inputs)), list(map(len, outputs))
    kept = numbers is not None
    return BlockReport(
        examples=len(inputs),
        input_chars=sum(input_lengths),
        output_chars=sum(output_lengths),
        max_input_chars=max(input_lengths, default=0),
        max_output_chars=max(output_lengths, default=0),
        violations=violations,
        more_violations=more_violations,
        numbers=tuple(numbers) if numbers is not None else (),
        inputs=tuple(inputs) if kept else (),
        outputs=tuple(outputs) if kept else (),
    )


def _checked_block(block: Block, options: DatasetOptions, keep: bool) -> BlockReport:
    text = _decode(block.data, block.first_line, block.first_byte)
    if isinstance(text, FieldViolation):
        return BlockReport(0, 0, 0, 0, 0, (text,), 0)
    maybe_surrogates = _SURROGATE_ESCAPE.search(text) is not None
    violations = _Capped[FieldViolation](options.max_reported)
    valid = _Valid(options, maybe_surrogates)
    for item in _jsonl_records(text, options, block.first_line):
        if isinstance(item, _Record):
            violations.extend(valid.add(item))
        else:
            violations.extend([item.violation if isinstance(item, _Stop) else item])
    numbers = valid.numbers if keep else None
    kept = tuple(violations.kept)
    return _report(valid.inputs, valid.outputs, kept, violations.dropped, numbers)


def in_window(block: Block) -> bool:
    """Whether the dataset-wide warnings look at this block's examples."""
    return block.first_byte < WARNING_WINDOW_BYTES


@dataclass
class StreamCheck:
    """The blocks' reports added up, in upload order, into the dataset's report."""

    options: DatasetOptions
    violations: _Capped[FieldViolation] = field(init=False)
    window: _Valid = field(init=False)
    examples: int = 0
    input_chars: int = 0
    output_chars: int = 0
    max_input_chars: int = 0
    max_output_chars: int = 0

    def __post_init__(self) -> None:
        self.violations = _Capped[FieldViolation](self.options.max_reported)
        self.window = _Valid(self.options, maybe_surrogates=False)

    @property
    def refused(self) -> bool:
        return bool(self.violations.kept)

    @property
    def full(self) -> bool:
        """As many violations are known as an answer lists: reading on would tell no more."""
        return len(self.violations.kept) >= self.options.max_reported

    def add(self, report: BlockReport) -> None:
        self.violations.extend(report.violations)
        self.violations.dropped += report.more_violations
        self.examples += report.examples
        if self.examples > self.options.max_examples >= self.examples - report.examples:
            self.violations.extend(_count_violations(self.examples, self.options))
        self.input_chars += report.input_chars
        self.output_chars += report.output_chars
        self.max_input_chars = max(self.max_input_chars, report.max_input_chars)
        self.max_output_chars = max(self.max_output_chars, report.max_output_chars)
        self.window.numbers.extend(report.numbers)
        self.window.inputs.extend(report.inputs)
        self.window.outputs.extend(report.outputs)

    def refuse(self, violation: FieldViolation) -> None:
        """A problem found outside the blocks (a line too long, the stream too large)."""
        self.violations.extend([violation])

    def report(self, size_bytes: int, *, complete: bool) -> DatasetReport:
        """The dataset's report; `complete`: every line was checked (else the count of
        examples is unknown, and too few is not said)."""
        if complete and self.examples <= self.options.max_examples:  # (else said in `add`)
            self.violations.extend(_count_violations(self.examples, self.options))
        window = self.window
        stats = DatasetStats(
            examples=self.examples,
            input_chars=self.input_chars,
            output_chars=self.output_chars,
            max_input_chars=self.max_input_chars,
            max_output_chars=self.max_output_chars,
            duplicates=_duplicates(window.inputs, window.outputs),
            bytes=size_bytes,
        )
        return DatasetReport(
            inputs=(),
            outputs=(),
            stats=stats,
            warnings=_warnings(window, self.options, self.examples),
            violations=self.violations.done(_more_problems),
        )
