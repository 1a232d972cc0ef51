"""Training datasets: turn an uploaded file into examples, or say exactly what is wrong with it.

The most common failure of tuning is bad data found hours later, so a dataset is checked at the
door. `parse_dataset` takes the uploaded bytes and returns a `DatasetReport`; it never raises.
Everything that would make tuning fail is a `FieldViolation` whose field points at the line, row
or array index and the field, numbered as an editor or a spreadsheet shows them (`lines[7].output`,
`rows[3].text_input`; JSON arrays keep JSON's 0-based `examples[4]`). Things that merely make
tuning worse (too few examples, duplicates, inputs that do not follow the common format) are
`DatasetWarning`s. A caller refuses the whole dataset if there is any violation.
"""

from __future__ import annotations

import codecs
import csv
import heapq
import io
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeAlias, TypeVar

from core.errors import FieldViolation
from core.job import Example

RECOMMENDED_MAX_EXAMPLES = 500  # the upper end of the tuning guide's recommended range
CONSISTENCY_PERCENT = 60  # share of examples that makes an input format "the" format

# A label at the start of a line of an input: "question:", "Context:", "### Instruction:".
# "https://..." is text, not a label.
_LABEL = re.compile(r"^[ \t]*(?:#+[ \t]*)?([A-Za-z][A-Za-z0-9 _-]{0,30}):(?!//)", re.MULTILINE)
_PREVIEW_CHARS = 40
_PREVIEW_NAMES = 10


class DatasetFormat(StrEnum):
    """How an uploaded dataset is encoded."""

    JSONL = "JSONL"  # one JSON object per line
    CSV = "CSV"  # a header row naming the columns, then one example per record
    JSON = "JSON"  # an array of objects, or an object with an "examples" array


@dataclass(frozen=True)
class DatasetOptions:
    """What `parse_dataset` accepts.

    input_field, output_field: the key (JSON, JSONL) or column (CSV) of each example's input
        and expected output; "text_input" and "output" as in Google's SDK.
    max_bytes: the largest upload accepted, in bytes (AI Studio's cap, 4 MiB).
    min_examples: fewer valid examples is a violation (the tuning guide's minimum, 20).
    recommended_examples: fewer valid examples is a warning (100).
    max_input_chars, max_output_chars: the longest input and output, in characters
        (Python `str` length: code points, not bytes).
    max_reported: how many violations, and separately how many warnings, are listed; the rest
        are summed up in one last entry.
    """

    input_field: str = "text_input"
    output_field: str = "output"
    max_bytes: int = 4 * 1024 * 1024
    min_examples: int = 20
    recommended_examples: int = 100
    max_input_chars: int = 40_000
    max_output_chars: int = 5_000
    max_reported: int = 100


@dataclass(frozen=True)
class DatasetWarning:
    """Something that makes tuning worse but does not stop it.

    `location` is where, as a person reads it ("line 7", "row 3", "examples[4]"), or "" for
    the whole dataset; `field` is the field concerned, or "" for a whole example.
    """

    location: str
    field: str
    message: str


@dataclass(frozen=True)
class DatasetStats:
    """Sizes over the valid examples (characters), and the size of the upload (bytes)."""

    examples: int
    input_chars: int
    output_chars: int
    max_input_chars: int
    max_output_chars: int
    duplicates: int  # examples identical to an earlier one
    bytes: int


@dataclass(frozen=True)
class DatasetReport:
    """What `parse_dataset` found. With violations, `examples` may be empty or partial."""

    examples: tuple[Example, ...]
    stats: DatasetStats
    warnings: tuple[DatasetWarning, ...]
    violations: tuple[FieldViolation, ...]

    @property
    def ok(self) -> bool:
        """True if the dataset can be used for tuning: there is no violation."""
        return not self.violations


def parse_dataset(
    raw: bytes, fmt: DatasetFormat, options: DatasetOptions = DatasetOptions()
) -> DatasetReport:
    """Check an uploaded dataset and return its examples with every problem found.

    Never raises for any `raw`: whatever is wrong with the bytes is a violation in the report.
    """
    if len(raw) > options.max_bytes:
        size = f"the dataset is {len(raw)} bytes; at most {options.max_bytes} are accepted"
        return _refused(len(raw), FieldViolation("content", size))
    text = _decode(raw)
    if isinstance(text, FieldViolation):
        return _refused(len(raw), text)
    parser = _PARSERS.get(fmt)
    if parser is None:
        known = ", ".join(DatasetFormat)
        return _refused(len(raw), FieldViolation("format", f"unknown format {fmt!r}; use {known}"))
    return _check(parser(text, options), len(raw), options)


# ---- Parsing: bytes to records ---------------------------------------------------------------


@dataclass(frozen=True)
class _Record:
    """One would-be example as found in the file, before its fields are checked."""

    location: str  # as a person reads it: "line 7", "row 3", "examples[4]"
    path: str  # the start of its violations' fields: "lines[7]", "rows[3]", "examples[4]"
    fields: Mapping[str, object]


@dataclass(frozen=True)
class _Stop:
    """A problem that ends parsing (a bad header, top level or syntax): it is the last item."""

    violation: FieldViolation


_Item: TypeAlias = "_Record | FieldViolation | _Stop"
_Parser: TypeAlias = "Callable[[str, DatasetOptions], Iterator[_Item]]"


@dataclass(frozen=True)
class _JsonFailure:
    """Why some text is not JSON, and where (1-based; line None when unknown)."""

    message: str
    line: int | None = None
    column: int | None = None


def _refused(size_bytes: int, violation: FieldViolation) -> DatasetReport:
    return DatasetReport((), _stats([], size_bytes), (), (violation,))


def _decode(raw: bytes) -> str | FieldViolation:
    """The text of `raw` without a leading BOM, or a violation naming the first bad byte's line."""
    body = raw.removeprefix(codecs.BOM_UTF8)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start + len(raw) - len(body)
        line = raw.count(b"\n", 0, offset) + 1
        where = f"byte 0x{raw[offset]:02x} at offset {offset}"
        return FieldViolation(f"lines[{line}]", f"line {line}: not valid UTF-8 ({where})")


def _load_json(text: str) -> object:
    """The JSON value of `text`, or a `_JsonFailure`."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        return _JsonFailure(exc.msg, exc.lineno, exc.colno)
    except ValueError as exc:  # e.g. an integer longer than Python converts
        return _JsonFailure(str(exc))
    except RecursionError:
        return _JsonFailure("nested too deeply")


def _json_type(value: object) -> str:
    """The JSON name of a decoded value's type, with its article."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _object_record(location: str, path: str, value: object) -> _Item:
    if isinstance(value, dict):
        return _Record(location, path, value)
    return FieldViolation(path, f"{location}: not a JSON object: found {_json_type(value)}")


def _jsonl_records(text: str, options: DatasetOptions) -> Iterator[_Item]:
    """One record per non-blank line; blank lines still count in the numbering."""
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            yield _jsonl_record(number, line)


def _jsonl_record(number: int, line: str) -> _Item:
    value = _load_json(line)
    if isinstance(value, _JsonFailure):
        column = f" (column {value.column})" if value.column else ""
        problem = f"line {number}: not a JSON object: {value.message}{column}"
        return FieldViolation(f"lines[{number}]", problem)
    return _object_record(f"line {number}", f"lines[{number}]", value)


def _json_records(text: str, options: DatasetOptions) -> Iterator[_Item]:
    """One record per element of the top-level array or of the top-level `examples` array."""
    document = _load_json(text)
    if isinstance(document, _JsonFailure):
        yield _Stop(_json_failure(document))
        return
    items = _json_examples(document)
    if items is None:
        yield _Stop(FieldViolation("content", _bad_top_level(document)))
        return
    for index, item in enumerate(items):
        yield _object_record(f"examples[{index}]", f"examples[{index}]", item)


def _json_failure(failure: _JsonFailure) -> FieldViolation:
    if failure.line is None:
        return FieldViolation("content", f"not valid JSON: {failure.message}")
    where = f"line {failure.line}, column {failure.column}"
    return FieldViolation(f"lines[{failure.line}]", f"{where}: not valid JSON: {failure.message}")


def _json_examples(document: object) -> list[object] | None:
    """The examples of both shapes Google's SDK accepts, or None for anything else."""
    if isinstance(document, dict):
        document = document.get("examples")
    return document if isinstance(document, list) else None


def _bad_top_level(document: object) -> str:
    found = _json_type(document)
    if isinstance(document, dict):
        found = 'an object without an "examples" array'
    expected = 'an array of examples or an object with an "examples" array'
    return f"the top level must be {expected}; found {found}"


def _csv_records(text: str, options: DatasetOptions) -> Iterator[_Item]:
    """One record per CSV record after the header; extra columns are ignored."""
    rows = _csv_rows(text)
    first = next(rows, None)
    if first is None:
        yield _Stop(_header_violation("the file is empty", options))
        return
    if isinstance(first, _Stop):
        yield first
        return
    header = [name.strip() for name in first[1]]
    missing = _missing_columns(header, options)
    if missing:
        yield from map(_Stop, missing)
        return
    for row in rows:
        yield row if isinstance(row, _Stop) else _csv_record(header, *row)


def _missing_columns(header: list[str], options: DatasetOptions) -> list[FieldViolation]:
    return [
        _header_violation(f"no column named {name!r}; columns found: {_names(header)}", options)
        for name in (options.input_field, options.output_field)
        if name not in header
    ]


def _csv_rows(text: str) -> Iterator[tuple[int, list[str]] | _Stop]:
    """Non-empty records with the line each starts on, or a violation for the first bad one."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield _Stop(FieldViolation(f"rows[{start}]", f"row {start}: not valid CSV: {exc}"))
            return
        if any(cells):
            yield start, cells
        start = reader.line_num + 1


def _csv_record(header: list[str], number: int, cells: list[str]) -> _Record:
    fields: dict[str, object] = {}
    for name, cell in zip(header, cells, strict=False):
        fields.setdefault(name, cell)  # a repeated column name: the first one counts
    return _Record(f"row {number}", f"rows[{number}]", fields)


def _header_violation(problem: str, options: DatasetOptions) -> FieldViolation:
    needed = f"{options.input_field} and {options.output_field}"
    return FieldViolation("header", f"header: {problem} (the header must name {needed})")


_PARSERS: dict[DatasetFormat, _Parser] = {
    DatasetFormat.JSONL: _jsonl_records,
    DatasetFormat.CSV: _csv_records,
    DatasetFormat.JSON: _json_records,
}


# ---- Checking: records to examples, violations and warnings ----------------------------------

_T = TypeVar("_T")


@dataclass
class _Capped(Generic[_T]):
    """Keeps the first `limit` items and counts the rest, so a huge bad file stays cheap."""

    limit: int
    kept: list[_T] = field(default_factory=list)
    dropped: int = 0

    def extend(self, items: Iterable[_T]) -> None:
        for item in items:
            if len(self.kept) < self.limit:
                self.kept.append(item)
            else:
                self.dropped += 1

    def done(self, summary: Callable[[int], _T]) -> tuple[_T, ...]:
        """The kept items, then one made by `summary(dropped)` if any were dropped."""
        return (*self.kept, summary(self.dropped)) if self.dropped else tuple(self.kept)


@dataclass(frozen=True)
class _Found:
    """A valid example and where it is."""

    location: str
    example: Example


def _check(items: Iterable[_Item], size_bytes: int, options: DatasetOptions) -> DatasetReport:
    violations = _Capped[FieldViolation](options.max_reported)
    found: list[_Found] = []
    stopped = False
    for item in items:
        stopped = isinstance(item, _Stop)
        problems = _item_violations(item, options)
        violations.extend(problems)
        if not problems and isinstance(item, _Record):
            found.append(_Found(item.location, _example(item, options)))
    if not stopped:  # after a stop, the number of examples in the file is unknown
        violations.extend(_count_violations(len(found), options))
    return DatasetReport(
        examples=tuple(each.example for each in found),
        stats=_stats([each.example for each in found], size_bytes),
        warnings=_warnings(found, options),
        violations=violations.done(_more_problems),
    )


def _item_violations(item: _Item, options: DatasetOptions) -> list[FieldViolation]:
    if isinstance(item, _Record):
        return _field_violations(item, options)
    return [item.violation if isinstance(item, _Stop) else item]


def _more_problems(count: int) -> FieldViolation:
    return FieldViolation("content", f"... and {count} more problems")


def _field_violations(record: _Record, options: DatasetOptions) -> list[FieldViolation]:
    limits = {options.input_field: options.max_input_chars}
    limits.setdefault(options.output_field, options.max_output_chars)
    return [
        FieldViolation(f"{record.path}.{name}", f"{record.location}: {name} {problem}")
        for name, limit in limits.items()
        if (problem := _field_problem(record.fields, name, limit)) is not None
    ]


def _field_problem(fields: Mapping[str, object], name: str, limit_chars: int) -> str | None:
    if name not in fields:
        return f"is missing (found: {_names(fields)})"
    value = fields[name]
    if not isinstance(value, str):
        return f"must be a string, not {_json_type(value)}"
    if not value.strip():
        return "is empty"
    if len(value) > limit_chars:
        return f"is {len(value)} characters; at most {limit_chars} are allowed"
    return _unicode_problem(value)


def _unicode_problem(value: str) -> str | None:
    """JSON's \\ud800 escapes can make strings that no UTF-8 request can carry."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = f"U+{ord(value[exc.start]):04X}"
        return f"has a lone surrogate {code} at character {exc.start + 1}; it is not valid Unicode"
    return None


def _example(record: _Record, options: DatasetOptions) -> Example:
    """The example of a record whose fields have been checked."""
    text_input, output = record.fields[options.input_field], record.fields[options.output_field]
    return Example(str(text_input), str(output))


def _names(names: Iterable[str]) -> str:
    shown = [_preview(name) for name in names]
    if not shown:
        return "nothing"
    more = ", ..." if len(shown) > _PREVIEW_NAMES else ""
    return ", ".join(shown[:_PREVIEW_NAMES]) + more


def _preview(text: str) -> str:
    return text if len(text) <= _PREVIEW_CHARS else text[: _PREVIEW_CHARS - 3] + "..."


def _count_violations(count: int, options: DatasetOptions) -> list[FieldViolation]:
    if count >= options.min_examples:
        return []
    needed = f"at least {options.min_examples} are needed (the tuning guide's minimum)"
    return [FieldViolation("examples", f"{_examples(count)}; {needed}")]


def _examples(count: int) -> str:
    return f"{count} example" if count == 1 else f"{count} examples"


def _stats(examples: list[Example], size_bytes: int) -> DatasetStats:
    inputs = [len(example.text_input) for example in examples]
    outputs = [len(example.output) for example in examples]
    return DatasetStats(
        examples=len(examples),
        input_chars=sum(inputs),
        output_chars=sum(outputs),
        max_input_chars=max(inputs, default=0),
        max_output_chars=max(outputs, default=0),
        duplicates=len(examples) - len(set(examples)),
        bytes=size_bytes,
    )


# ---- Warnings --------------------------------------------------------------------------------


def _warnings(found: list[_Found], options: DatasetOptions) -> tuple[DatasetWarning, ...]:
    """The whole-dataset warning first, then each example's in file order."""
    warnings = _Capped[DatasetWarning](options.max_reported)
    warnings.extend(_count_warnings(len(found), options))
    per_example = heapq.merge(
        _duplicate_warnings(found, options),
        _consistency_warnings(found, options),
        key=lambda indexed: indexed[0],
    )
    warnings.extend(warning for _, warning in per_example)
    return warnings.done(lambda n: DatasetWarning("", "content", f"... and {n} more warnings"))


def _count_warnings(count: int, options: DatasetOptions) -> list[DatasetWarning]:
    if not options.min_examples <= count < options.recommended_examples:
        return []
    wanted = f"at least {options.recommended_examples}"
    if options.recommended_examples < RECOMMENDED_MAX_EXAMPLES:
        wanted = f"{options.recommended_examples} to {RECOMMENDED_MAX_EXAMPLES}"
    return [DatasetWarning("", "examples", f"{_examples(count)}; {wanted} are recommended")]


def _duplicate_warnings(
    found: list[_Found], options: DatasetOptions
) -> Iterator[tuple[int, DatasetWarning]]:
    """Repeats of an earlier example, and earlier inputs given a different output."""
    first_example: dict[Example, str] = {}
    first_input: dict[str, str] = {}
    for index, each in enumerate(found):
        example_at = first_example.setdefault(each.example, each.location)
        input_at = first_input.setdefault(each.example.text_input, each.location)
        if example_at != each.location:
            yield index, DatasetWarning(each.location, "", f"{each.location} repeats {example_at}")
        elif input_at != each.location:
            conflict = f"{each.location} has the same input as {input_at} but a different output"
            yield index, DatasetWarning(each.location, options.output_field, conflict)


def _consistency_warnings(
    found: list[_Found], options: DatasetOptions
) -> Iterator[tuple[int, DatasetWarning]]:
    """Inputs whose labels differ from the format most inputs use.

    Production prompts must look like the training inputs, so an input laid out differently
    from the rest (other labels, other order, none at all) is probably a mistake. Only a format
    shared by at least CONSISTENCY_PERCENT of the examples counts as "the" format.
    """
    signatures = [_signature(each.example.text_input) for each in found]
    common = _common_signature(signatures)
    if common is None:
        return
    labels = ", ".join(f"{label}:" for label in common)
    for index, (each, signature) in enumerate(zip(found, signatures, strict=True)):
        if signature != common:
            message = f"{each.location}: input does not follow the format most examples use"
            yield index, DatasetWarning(each.location, options.input_field, f"{message} ({labels})")


def _signature(text: str) -> tuple[str, ...]:
    """The labels that start lines of `text`, in order, case-folded."""
    return tuple(" ".join(label.split()).casefold() for label in _LABEL.findall(text))


def _common_signature(signatures: list[tuple[str, ...]]) -> tuple[str, ...] | None:
    ranked = Counter(signature for signature in signatures if signature).most_common(1)
    if not ranked:
        return None
    signature, count = ranked[0]
    return signature if count * 100 >= len(signatures) * CONSISTENCY_PERCENT else None
