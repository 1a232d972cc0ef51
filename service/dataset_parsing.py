"""Training datasets: turn an uploaded file into examples, or say exactly what is wrong with it.

The most common failure of tuning is bad data found hours later, so a dataset is checked at the
door. `parse_dataset` takes the uploaded bytes and returns a `DatasetReport`; it never raises.
Everything that would make tuning fail is a `FieldViolation` whose field points at the line, row
or array index and the field, numbered as an editor or a spreadsheet shows them (`lines[7].output`,
`rows[3].text_input`; JSON arrays and columns keep JSON's 0-based `examples[4]`). Things that
merely make tuning worse (too few examples, duplicates, inputs that do not follow the common
format) are `DatasetWarning`s. A caller refuses the whole dataset if there is any violation.

The module holds no state: the API calls `parse_dataset` in child processes
(service.dataset_checker), so its arguments and the report are plain frozen data that pickle.
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
from typing import Generic, NamedTuple, TypeAlias, TypeVar

import orjson

from core.domain.job import Example
from core.errors import FieldViolation, echo
from core.runtime.settings import Settings

_DEFAULTS = Settings()  # the limits' defaults are the settings' own
RECOMMENDED_MAX_EXAMPLES = 500  # the upper end of the tuning guide's recommended range
CONSISTENCY_PERCENT = 60  # share of examples that makes an input format "the" format

# A label at the start of a line of an input: "question:", "Context:", "### Instruction:".
# "https://..." is text, not a label.
_LABEL_INDENT = r"[ \t]*(?:#+[ \t]*)?"
_LABEL_NAME = r"[A-Za-z][A-Za-z0-9 _-]{0,30}:(?!//)"  # the colon is kept: labels hold none
_LABELS = re.compile(f"^{_LABEL_INDENT}({_LABEL_NAME})", re.MULTILINE)
_END = "\x00"  # ends each input when the labels of many are found at once (see _signatures)
_LABELS_OR_END = re.compile(f"\n{_LABEL_INDENT}({_LABEL_NAME}|{_END})")
_LABEL_SPACES = re.compile(r" +(?=:)|(?<= ) +")  # a label's trailing and repeated spaces
# Without a \uD800-\uDFFF escape in the text, no decoded string can hold a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_PREVIEW_CHARS = 40
_PREVIEW_NAMES = 10


class DatasetFormat(StrEnum):
    """How an uploaded dataset is encoded."""

    JSONL = "JSONL"  # one JSON object per line
    CSV = "CSV"  # a header row naming the columns, then one example per record
    JSON = "JSON"  # one document in a layout `_json_layout_records` accepts


@dataclass(frozen=True)
class DatasetOptions:
    """What `parse_dataset` accepts.

    input_field, output_field: the key (JSON, JSONL) or column (CSV) of each example's input
        and expected output; "text_input" and "output" as in Google's SDK.
    max_bytes: the largest upload accepted, in bytes (AI Studio's cap, 4 MiB).
    min_examples: fewer valid examples is a violation (the tuning guide's minimum, 20).
    max_examples: more valid examples is a violation (Vertex AI's cap, 1M).
    recommended_examples: fewer valid examples is a warning (100).
    max_input_chars, max_output_chars: the longest input and output, in characters
        (Python `str` length: code points, not bytes).
    max_reported: how many violations, and separately how many warnings, are listed; the rest
        are summed up in one last entry.
    """

    input_field: str = "text_input"
    output_field: str = "output"
    max_bytes: int = _DEFAULTS.dataset_max_bytes
    min_examples: int = _DEFAULTS.min_examples
    max_examples: int = _DEFAULTS.max_examples
    recommended_examples: int = 100
    max_input_chars: int = _DEFAULTS.max_input_chars
    max_output_chars: int = _DEFAULTS.max_output_chars
    max_reported: int = _DEFAULTS.max_reported_violations


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
    """What `parse_dataset` found. With violations, the examples may be none or some.

    The valid examples are `inputs[i]`, `outputs[i]`; `examples` makes them `Example`s.
    """

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    stats: DatasetStats
    warnings: tuple[DatasetWarning, ...]
    violations: tuple[FieldViolation, ...]

    @property
    def ok(self) -> bool:
        """True if the dataset can be used for tuning: there is no violation."""
        return not self.violations

    @property
    def examples(self) -> tuple[Example, ...]:
        """The valid examples, made on each call (storing them needs only the strings)."""
        return tuple(map(Example, self.inputs, self.outputs))


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
        violation = FieldViolation("format", f"unknown format {echo(fmt)}; use {known}")
        return _refused(len(raw), violation)
    maybe_surrogates = _SURROGATE_ESCAPE.search(text) is not None
    return _check(parser(text, options), len(raw), options, maybe_surrogates=maybe_surrogates)


# ---- Parsing: bytes to records ---------------------------------------------------------------


class _Numbering(NamedTuple):
    """How a format numbers its examples, as templates for the number."""

    location: str  # as a person reads it: "line {}" makes "line 7"
    path: str  # the start of its violations' fields: "lines[{}]" makes "lines[7]"


_LINES = _Numbering("line {}", "lines[{}]")
_ROWS = _Numbering("row {}", "rows[{}]")
_ELEMENTS = _Numbering("examples[{}]", "examples[{}]")


class _Record(NamedTuple):
    """One would-be example as found in the file, before its fields are checked.

    Its location and path are written out only when a warning or violation needs them.
    """

    numbering: _Numbering
    number: int
    fields: Mapping[str, object]

    @property
    def location(self) -> str:
        """As a person reads it: "line 7", "row 3", "examples[4]"."""
        return self.numbering.location.format(self.number)

    @property
    def path(self) -> str:
        """The start of its violations' fields: "lines[7]", "rows[3]", "examples[4]"."""
        return self.numbering.path.format(self.number)


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
    return DatasetReport((), (), _stats([], [], size_bytes), (), (violation,))


def _decode(raw: bytes, first_line: int = 1, first_offset: int = 0) -> str | FieldViolation:
    """The text of `raw` without a leading BOM, or a violation naming the first bad byte's
    line; `raw` may be a part of the upload, from line `first_line` and byte `first_offset`."""
    body = raw.removeprefix(codecs.BOM_UTF8)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start + len(raw) - len(body)
        line = raw.count(b"\n", 0, offset) + first_line
        where = f"byte 0x{raw[offset]:02x} at offset {offset + first_offset}"
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


def _object_record(numbering: _Numbering, number: int, value: object) -> _Item:
    if isinstance(value, dict):
        return _Record(numbering, number, value)
    location, path = numbering.location.format(number), numbering.path.format(number)
    return FieldViolation(path, f"{location}: not a JSON object: found {_json_type(value)}")


def _jsonl_records(text: str, options: DatasetOptions, first_line: int = 1) -> Iterator[_Item]:
    """One record per non-blank line, the first numbered `first_line`; blank lines still
    count in the numbering.

    A blank line is one `str.strip` would empty. Most lines are one JSON object, which
    `_plain_object` reads fast; any other line goes the long way, through `json.loads` and its
    exact error message.
    """
    for number, line in enumerate(text.split("\n"), start=first_line):
        if line and not line.isspace():
            value = _plain_object(line)
            yield _jsonl_record(number, line) if value is None else _Record(_LINES, number, value)


def _plain_object(line: str) -> dict[str, object] | None:
    """The object `line` holds if orjson reads it as one; else None, for `json.loads` to judge.

    orjson reads JSON three times as fast as `json`, and accepts less: a line it refuses
    (lone surrogate escapes, NaN, numbers beyond a double, nesting past 1024) still gets
    `json.loads`'s verdict and message. Where both accept a line, they agree but for numbers
    beyond 64 bits (orjson: a float; json: an int), and a number is never an example's field.
    """
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return value if type(value) is dict else None


def _jsonl_record(number: int, line: str) -> _Item:
    value = _load_json(line)
    if isinstance(value, _JsonFailure):
        column = f" (column {value.column})" if value.column else ""
        problem = f"line {number}: not a JSON object: {value.message}{column}"
        return FieldViolation(f"lines[{number}]", problem)
    return _object_record(_LINES, number, value)


def _json_records(text: str, options: DatasetOptions) -> Iterator[_Item]:
    """One record per example of the document, in whichever layout it is."""
    document = _load_json(text)
    if isinstance(document, _JsonFailure):
        return iter([_Stop(_json_failure(document))])
    return _json_layout_records(document, options)


def _json_failure(failure: _JsonFailure) -> FieldViolation:
    if failure.line is None:
        return FieldViolation("content", f"not valid JSON: {failure.message}")
    where = f"line {failure.line}, column {failure.column}"
    return FieldViolation(f"lines[{failure.line}]", f"{where}: not valid JSON: {failure.message}")


def _json_layout_records(document: object, options: DatasetOptions) -> Iterator[_Item]:
    """The records of the layouts a JSON dataset may have; the one place that says which.

    An array of examples; an object with an "examples" array; or, as Google's SDK reads a
    dict, an object of columns, `{"text_input": [...], "output": [...]}` under the configured
    field names, of the same length, element i of each making example i (the SDK pairs them
    as `zip` does and makes each a string; here a short column or a non-string is refused).
    Other keys of the object are ignored, as other fields of an example are. A field
    configured as "examples" is a column.
    """
    names = tuple(dict.fromkeys((options.input_field, options.output_field)))  # one if equal
    if isinstance(document, dict) and "examples" not in names:
        examples = document.get("examples")
        document = examples if isinstance(examples, list) else document
    if isinstance(document, list):
        return _element_records(document)
    if isinstance(document, dict) and any(name in document for name in names):
        return _column_records(document, names)
    return iter([_Stop(FieldViolation("content", _bad_top_level(document, options)))])


def _element_records(items: list[object]) -> Iterator[_Item]:
    for index, item in enumerate(items):
        yield _object_record(_ELEMENTS, index, item)


def _column_records(document: dict[str, object], names: tuple[str, ...]) -> Iterator[_Item]:
    """One record per index of the columns, numbered as array elements: `examples[3].output`.

    Each record holds element i of each column, so its fields are checked as a row's are.
    A missing column, one that is not an array, or columns of different lengths stop parsing:
    which elements make an example is then unknown.
    """
    columns = {name: value for name in names if isinstance(value := document.get(name), list)}
    for name in names:
        if name not in columns:
            yield _Stop(FieldViolation(name, _column_problem(document, name)))
    if len(columns) < len(names):
        return
    lengths = {name: len(column) for name, column in columns.items()}
    if len(set(lengths.values())) > 1:
        counts = " but ".join(f"{name} has {_elements(n)}" for name, n in lengths.items())
        yield _Stop(FieldViolation("content", f"{counts}; the columns must be the same length"))
        return
    for index, cells in enumerate(zip(*columns.values(), strict=True)):
        yield _Record(_ELEMENTS, index, dict(zip(names, cells, strict=True)))


def _column_problem(document: dict[str, object], name: str) -> str:
    if name not in document:
        return f"the column {name} is missing (found: {_names(document)})"
    return f"the column {name} must be an array, not {_json_type(document[name])}"


def _elements(count: int) -> str:
    return f"{count} element" if count == 1 else f"{count} elements"


def _bad_top_level(document: object, options: DatasetOptions) -> str:
    found = _json_type(document)
    if isinstance(document, dict):
        found = f"an object with the keys {_names(document)}" if document else "an empty object"
    columns = f'{{"{options.input_field}": [...], "{options.output_field}": [...]}}'
    expected = f'an array of examples, an object with an "examples" array, or columns {columns}'
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
        _header_violation(f"no column named {echo(name)}; columns found: {_names(header)}", options)
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
    return _Record(_ROWS, number, fields)


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


@dataclass
class _Valid:
    """The valid examples' inputs and outputs, each with the number of its record.

    Only strings and numbers are kept, in flat lists, not records or pairs: the collector does
    not track strings and numbers, and tens of thousands of tracked objects that outlive the
    parse make it walk them again and again (a third of the time of a 4 MB dataset).
    """

    options: DatasetOptions
    maybe_surrogates: bool  # whether a string may hold a lone surrogate (see parse_dataset)
    numbering: _Numbering = _LINES  # the records' (one format's records share it)
    numbers: list[int] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    def add(self, record: _Record) -> list[FieldViolation]:
        """Keep `record` if it is a valid example; otherwise return its violations."""
        pair = _plain_pair(record.fields, self.options, self.maybe_surrogates)
        if pair is None:
            problems = _field_violations(record, self.options)
            if problems:
                return problems
            pair = _pair(record, self.options)
        self.numbering = record.numbering
        self.numbers.append(record.number)
        self.inputs.append(pair[0])
        self.outputs.append(pair[1])
        return []

    def location(self, index: int) -> str:
        """Where the `index`th valid example is, as a person reads it."""
        return self.numbering.location.format(self.numbers[index])


def _check(
    items: Iterable[_Item], size_bytes: int, options: DatasetOptions, *, maybe_surrogates: bool
) -> DatasetReport:
    violations = _Capped[FieldViolation](options.max_reported)
    valid = _Valid(options, maybe_surrogates)
    stopped = False
    for item in items:
        if isinstance(item, _Record):
            violations.extend(valid.add(item))
        else:
            stopped = isinstance(item, _Stop)
            violations.extend([item.violation if isinstance(item, _Stop) else item])
    if not stopped:  # after a stop, the number of examples in the file is unknown
        violations.extend(_count_violations(len(valid.inputs), options))
    return DatasetReport(
        inputs=tuple(valid.inputs),
        outputs=tuple(valid.outputs),
        stats=_stats(valid.inputs, valid.outputs, size_bytes),
        warnings=_warnings(valid, options),
        violations=violations.done(_more_problems),
    )


def _more_problems(count: int) -> FieldViolation:
    return FieldViolation("content", f"... and {count} more problems")


def _plain_pair(
    fields: Mapping[str, object], options: DatasetOptions, maybe_surrogates: bool
) -> tuple[str, str] | None:
    """The (input, output) of a record plainly without a problem; None means look closer.

    This is the common case in a few cheap tests: both fields are strings, neither is empty
    nor only what `str.strip` removes (the whitespace `str.isspace` tests for), both are within
    their limits. It is at least as strict as `_field_violations`, which decides the rest.
    """
    text_input = fields.get(options.input_field)
    output = fields.get(options.output_field)
    if type(text_input) is not str or type(output) is not str:
        return None
    if not 0 < len(text_input) <= options.max_input_chars:
        return None
    if not 0 < len(output) <= options.max_output_chars:
        return None
    if text_input.isspace() or output.isspace():
        return None
    if maybe_surrogates and (_unicode_problem(text_input) or _unicode_problem(output)):
        return None
    return text_input, output


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


def _pair(record: _Record, options: DatasetOptions) -> tuple[str, str]:
    """The (input, output) of a record whose fields have been checked."""
    text_input, output = record.fields[options.input_field], record.fields[options.output_field]
    return str(text_input), str(output)


def _names(names: Iterable[str]) -> str:
    shown = [_preview(name) for name in names]
    if not shown:
        return "nothing"
    more = ", ..." if len(shown) > _PREVIEW_NAMES else ""
    return ", ".join(shown[:_PREVIEW_NAMES]) + more


def _preview(text: str) -> str:
    return text if len(text) <= _PREVIEW_CHARS else text[: _PREVIEW_CHARS - 3] + "..."


def _count_violations(count: int, options: DatasetOptions) -> list[FieldViolation]:
    if count > options.max_examples:
        limit = f"at most {options.max_examples} are accepted"
        return [FieldViolation("examples", f"{_examples(count)}; {limit}; split the dataset")]
    if count >= options.min_examples:
        return []
    needed = f"at least {options.min_examples} are needed (the tuning guide's minimum)"
    return [FieldViolation("examples", f"{_examples(count)}; {needed}")]


def _examples(count: int) -> str:
    return f"{count} example" if count == 1 else f"{count} examples"


def _stats(inputs: list[str], outputs: list[str], size_bytes: int) -> DatasetStats:
    input_chars, output_chars = list(map(len, inputs)), list(map(len, outputs))
    return DatasetStats(
        examples=len(inputs),
        input_chars=sum(input_chars),
        output_chars=sum(output_chars),
        max_input_chars=max(input_chars, default=0),
        max_output_chars=max(output_chars, default=0),
        duplicates=_duplicates(inputs, outputs),
        bytes=size_bytes,
    )


def _duplicates(inputs: list[str], outputs: list[str]) -> int:
    """How many examples repeat an earlier one; no input twice means none, found cheaply."""
    if len(set(inputs)) == len(inputs):
        return 0
    return len(inputs) - len(set(zip(inputs, outputs, strict=True)))


# ---- Warnings --------------------------------------------------------------------------------


def _warnings(
    valid: _Valid, options: DatasetOptions, count: int | None = None
) -> tuple[DatasetWarning, ...]:
    """The whole-dataset warning first (for `count` examples: all of `valid`'s if None),
    then each example's in file order."""
    warnings = _Capped[DatasetWarning](options.max_reported)
    warnings.extend(_count_warnings(len(valid.inputs) if count is None else count, options))
    per_example = heapq.merge(
        _duplicate_warnings(valid, options),
        _consistency_warnings(valid, options),
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
    valid: _Valid, options: DatasetOptions
) -> Iterator[tuple[int, DatasetWarning]]:
    """Repeats of an earlier example, and earlier inputs given a different output."""
    if len(set(valid.inputs)) == len(valid.inputs):  # no input twice, so no example twice
        return
    first_example: dict[tuple[str, str], int] = {}
    first_input: dict[str, int] = {}
    for index, pair in enumerate(zip(valid.inputs, valid.outputs, strict=True)):
        example_at = first_example.setdefault(pair, index)
        input_at = first_input.setdefault(pair[0], index)
        location = valid.location(index)
        if example_at != index:
            earlier = valid.location(example_at)
            yield index, DatasetWarning(location, "", f"{location} repeats {earlier}")
        elif input_at != index:
            earlier = valid.location(input_at)
            conflict = f"{location} has the same input as {earlier} but a different output"
            yield index, DatasetWarning(location, options.output_field, conflict)


def _consistency_warnings(
    valid: _Valid, options: DatasetOptions
) -> Iterator[tuple[int, DatasetWarning]]:
    """Inputs whose labels differ from the format most inputs use.

    Production prompts must look like the training inputs, so an input laid out differently
    from the rest (other labels, other order, none at all) is probably a mistake. Only a format
    shared by at least CONSISTENCY_PERCENT of the examples counts as "the" format.
    """
    signatures = _signatures(valid.inputs)
    common = _common_signature(signatures)
    if common is None:
        return
    labels = ", ".join(f"{label}:" for label in common.split(":")[:-1])
    for index, signature in enumerate(signatures):
        if signature != common:
            location = valid.location(index)
            message = f"{location}: input does not follow the format most examples use"
            yield index, DatasetWarning(location, options.input_field, f"{message} ({labels})")


def _signatures(inputs: list[str]) -> list[str]:
    """Each input's signature (see `_signature`), found for all inputs in one regex pass.

    The inputs are joined, each after a newline and all but the last followed by a line holding
    only _END. A label starts a line, so `\n` before it finds what `^` finds in the input alone
    (and lets the regex engine skip to the next newline); `(?!//)` sees what it would see there,
    and a label never spans lines. The matches, in order, are the first input's labels, _END,
    the second input's labels, _END, and so on. An input holding _END itself would break the
    count; then each input is searched on its own.
    """
    joined = "\n" + f"\n{_END}\n".join(inputs)
    if joined.count(_END) != len(inputs) - 1:
        return [_signature(text) for text in inputs]
    return _normalized("".join(_LABELS_OR_END.findall(joined))).split(_END)


def _signature(text: str) -> str:
    """The labels that start lines of `text`, in order, case-folded, each ending in its colon.

    E.g. "question:context:"; a label holds no colon, so equal strings mean equal labels.
    """
    return _normalized("".join(_LABELS.findall(text)))


def _normalized(labels: str) -> str:
    """Labels case-folded (they are ASCII, so that is `lower`), their spaces as `str.split`'s."""
    labels = labels.lower()
    return _LABEL_SPACES.sub("", labels) if "  " in labels or " :" in labels else labels


def _common_signature(signatures: list[str]) -> str | None:
    ranked = Counter(filter(None, signatures)).most_common(1)
    if not ranked:
        return None
    signature, count = ranked[0]
    return signature if count * 100 >= len(signatures) * CONSISTENCY_PERCENT else None
