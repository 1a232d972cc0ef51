"""Datasets are checked at the door: every problem names its line, row or index and its field."""

from __future__ import annotations

import csv
import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.domain.job import Example, decode_examples, encode_examples, encode_pairs
from core.errors import FieldViolation
from service.dataset_parsing import (
    DatasetFormat,
    DatasetOptions,
    DatasetReport,
    DatasetWarning,
    parse_dataset,
)

BOM = b"\xef\xbb\xbf"
SMALL = DatasetOptions(min_examples=1, recommended_examples=1)


def pairs(count: int, start: int = 0) -> list[tuple[str, str]]:
    return [(f"question: what is {i} + {i}?", str(2 * i)) for i in range(start, start + count)]


def records(count: int, start: int = 0) -> list[dict[str, object]]:
    return [{"text_input": q, "output": a} for q, a in pairs(count, start)]


def jsonl(rows: list[dict[str, object]]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()


def csv_bytes(rows: list[list[str]], header: tuple[str, ...] = ("text_input", "output")) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def fields(report: DatasetReport) -> list[str]:
    return [violation.field for violation in report.violations]


def describe(report: DatasetReport, field: str) -> str:
    [description] = [v.description for v in report.violations if v.field == field]
    return description


# ---- Happy paths ------------------------------------------------------------------------------


def test_jsonl_with_25_examples_is_accepted_with_a_warning_about_size() -> None:
    report = parse_dataset(jsonl(records(25)), DatasetFormat.JSONL)
    assert report.ok
    assert report.examples == tuple(Example(q, a) for q, a in pairs(25))
    assert report.warnings == (
        DatasetWarning("", "examples", "25 examples; 100 to 500 are recommended"),
    )
    assert report.stats.examples == 25
    assert report.stats.duplicates == 0


def test_csv_with_25_examples_is_accepted() -> None:
    raw = csv_bytes([[q, a, "ignored"] for q, a in pairs(25)], ("text_input", "output", "notes"))
    report = parse_dataset(raw, DatasetFormat.CSV)
    assert report.ok, report.violations
    assert report.examples == tuple(Example(q, a) for q, a in pairs(25))
    assert report.stats.bytes == len(raw)


@pytest.mark.parametrize("shape", ["array", "object"])
def test_json_accepts_both_top_level_shapes(shape: str) -> None:
    rows = records(25)
    document = rows if shape == "array" else {"examples": rows}
    report = parse_dataset(json.dumps(document, indent=2).encode(), DatasetFormat.JSON)
    assert report.ok, report.violations
    assert report.examples == tuple(Example(q, a) for q, a in pairs(25))


def test_stats_count_characters_over_valid_examples() -> None:
    report = parse_dataset(jsonl(records(25)), DatasetFormat.JSONL)
    inputs = [len(q) for q, _ in pairs(25)]
    outputs = [len(a) for _, a in pairs(25)]
    assert report.stats.input_chars == sum(inputs)
    assert report.stats.output_chars == sum(outputs)
    assert report.stats.max_input_chars == max(inputs)
    assert report.stats.max_output_chars == max(outputs)


def test_custom_field_names_are_used_for_reading_and_in_paths() -> None:
    options = DatasetOptions(input_field="prompt", output_field="completion")
    rows: list[dict[str, object]] = [{"prompt": q, "completion": a} for q, a in pairs(25)]
    rows[2] = {"prompt": "question: hi"}
    report = parse_dataset(jsonl(rows), DatasetFormat.JSONL, options)
    assert fields(report) == ["lines[3].completion"]
    assert describe(report, "lines[3].completion").startswith("line 3: completion is missing")
    raw = csv_bytes([[q, a] for q, a in pairs(25)], ("prompt", "completion"))
    assert parse_dataset(raw, DatasetFormat.CSV, options).ok


@pytest.mark.parametrize("fmt", list(DatasetFormat))
def test_a_leading_bom_is_dropped(fmt: DatasetFormat) -> None:
    rows = records(25)
    raw = {
        DatasetFormat.JSONL: jsonl(rows),
        DatasetFormat.CSV: csv_bytes([[q, a] for q, a in pairs(25)]),
        DatasetFormat.JSON: json.dumps(rows).encode(),
    }[fmt]
    report = parse_dataset(BOM + raw, fmt)
    assert report.ok, report.violations
    assert report.examples[0] == Example(*pairs(1)[0])


def test_any_script_is_data_and_counts_as_characters() -> None:
    texts = ["नमस्ते, आप कैसे हैं?", "สวัสดีครับ", "👋🏽 hello 🎉", "你好世界", "안녕하세요"]
    rows: list[dict[str, object]] = [
        {"text_input": texts[i % 5] + str(i), "output": texts[(i + 1) % 5]} for i in range(25)
    ]
    report = parse_dataset(jsonl(rows), DatasetFormat.JSONL)
    assert report.ok, report.violations
    assert report.examples[0].text_input == "नमस्ते, आप कैसे हैं?0"
    assert report.stats.input_chars == sum(len(str(row["text_input"])) for row in rows)
    assert report.stats.output_chars == sum(len(str(row["output"])) for row in rows)


def test_the_length_limit_is_in_characters_not_bytes() -> None:
    options = DatasetOptions(min_examples=1, max_input_chars=10)
    fits = jsonl([{"text_input": "😀" * 10, "output": "ok"}])
    assert parse_dataset(fits, DatasetFormat.JSONL, options).ok
    raw = jsonl([{"text_input": "😀" * 11, "output": "ok"}])
    too_long = parse_dataset(raw, DatasetFormat.JSONL, options)
    assert describe(too_long, "lines[1].text_input") == (
        "line 1: text_input is 11 characters; at most 10 are allowed"
    )


# ---- Encoding and size ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(DatasetFormat))
def test_invalid_utf8_names_the_line_of_the_first_bad_byte(fmt: DatasetFormat) -> None:
    raw = b'{"a": 1}\n\n{"text_input": "caf\xe9"}\n'
    report = parse_dataset(raw, fmt)
    assert report.violations == (
        FieldViolation("lines[3]", "line 3: not valid UTF-8 (byte 0xe9 at offset 29)"),
    )


def test_the_utf8_offset_counts_the_bom() -> None:
    report = parse_dataset(BOM + b"\xff", DatasetFormat.JSONL)
    assert report.violations == (
        FieldViolation("lines[1]", "line 1: not valid UTF-8 (byte 0xff at offset 3)"),
    )


def test_an_oversize_dataset_is_refused_before_reading_it() -> None:
    options = DatasetOptions(max_bytes=100)
    report = parse_dataset(b"\xff" * 101, DatasetFormat.JSONL, options)
    assert report.violations == (
        FieldViolation("content", "the dataset is 101 bytes; at most 100 are accepted"),
    )
    assert report.examples == ()
    assert report.stats.bytes == 101


def test_a_dataset_of_exactly_max_bytes_is_read() -> None:
    raw = jsonl(records(25))
    report = parse_dataset(raw, DatasetFormat.JSONL, DatasetOptions(max_bytes=len(raw)))
    assert report.ok


def test_the_default_cap_is_ai_studios_4_mib() -> None:
    report = parse_dataset(b" " * (4 * 1024 * 1024 + 1), DatasetFormat.JSONL)
    assert fields(report) == ["content"]


# ---- JSONL ------------------------------------------------------------------------------------


def bad_jsonl() -> bytes:
    rows = [json.dumps(row) for row in records(30)]
    rows[1] = ""  # blank lines are skipped but still counted
    rows[3] = '{"text_input": "question: x", "output": '
    rows[4] = '["question: x", "y"]'
    rows[5] = '{"text_input": "question: x"}'
    rows[6] = '{"text_input": "question: x", "output": "   "}'
    rows[7] = '{"text_input": 7, "output": null}'
    rows[8] = json.dumps({"text_input": "q" * 40_001, "output": "y"})
    rows[9] = json.dumps({"text_input": "question: x", "output": "y" * 5_001})
    return "\n".join(rows).encode()


def test_every_bad_jsonl_line_is_named_with_its_1_based_line_number() -> None:
    report = parse_dataset(bad_jsonl(), DatasetFormat.JSONL)
    assert fields(report) == [
        "lines[4]",
        "lines[5]",
        "lines[6].output",
        "lines[7].output",
        "lines[8].text_input",
        "lines[8].output",
        "lines[9].text_input",
        "lines[10].output",
    ]
    # 30 lines, one blank, seven bad: 22 examples, enough, so no count violation.
    assert len(report.examples) == 22


@pytest.mark.parametrize(
    ("field", "description"),
    [
        ("lines[4]", "line 4: not a JSON object: Expecting value (column 41)"),
        ("lines[5]", "line 5: not a JSON object: found an array"),
        ("lines[6].output", "line 6: output is missing (found: text_input)"),
        ("lines[7].output", "line 7: output is empty"),
        ("lines[8].text_input", "line 8: text_input must be a string, not a number"),
        ("lines[8].output", "line 8: output must be a string, not null"),
        (
            "lines[9].text_input",
            "line 9: text_input is 40001 characters; at most 40000 are allowed",
        ),
        ("lines[10].output", "line 10: output is 5001 characters; at most 5000 are allowed"),
    ],
)
def test_each_jsonl_problem_says_what_is_wrong(field: str, description: str) -> None:
    assert describe(parse_dataset(bad_jsonl(), DatasetFormat.JSONL), field) == description


def test_windows_line_endings_are_fine() -> None:
    raw = jsonl(records(25)).replace(b"\n", b"\r\n")
    assert parse_dataset(raw, DatasetFormat.JSONL).ok


def test_a_lone_surrogate_escape_is_refused() -> None:
    rows = records(25)
    raw = jsonl(rows) + b'{"text_input": "bad \\ud800 text", "output": "y"}\n'
    report = parse_dataset(raw, DatasetFormat.JSONL)
    assert fields(report) == ["lines[26].text_input"]
    assert "lone surrogate U+D800 at character 5" in report.violations[0].description


def test_an_escaped_surrogate_pair_is_one_character_not_a_problem() -> None:
    rows = [*records(24), {"text_input": "smile \U0001f642", "output": "\U0001f642"}]
    raw = "".join(json.dumps(row) + "\n" for row in rows).encode()  # \\ud83d\\ude42 escapes
    report = parse_dataset(raw, DatasetFormat.JSONL)
    assert report.ok
    assert report.examples[-1] == Example("smile \U0001f642", "\U0001f642")


@pytest.mark.parametrize(
    ("line", "description"),
    [
        ('{"text_input": "q", "output": "a"} x', "Extra data (column 36)"),
        ('{"text_input": "q", "output": "a"}\x0b', "Extra data (column 35)"),
        ('\ufeff{"text_input": "q", "output": "a"}', "Unexpected UTF-8 BOM"),
        ('{"text_input": "q", "output": "a"}{}', "Extra data (column 35)"),
    ],
)
def test_a_line_is_judged_as_json_loads_judges_it(line: str, description: str) -> None:
    raw = jsonl(records(25)) + line.encode() + b"\n"
    report = parse_dataset(raw, DatasetFormat.JSONL)
    assert fields(report) == ["lines[26]"]
    assert description in describe(report, "lines[26]")


def test_json_whitespace_around_a_line_is_fine() -> None:
    lines = [f" \t{json.dumps(row)} \t " for row in records(25)]
    report = parse_dataset("\n".join(lines).encode(), DatasetFormat.JSONL)
    assert report.ok
    assert report.examples == tuple(Example(q, a) for q, a in pairs(25))


def test_one_field_for_input_and_output_has_the_input_limit() -> None:
    options = DatasetOptions(input_field="text", output_field="text", max_output_chars=5)
    rows: list[dict[str, object]] = [{"text": f"question number {n}"} for n in range(25)]
    report = parse_dataset(jsonl(rows), DatasetFormat.JSONL, options)
    assert report.ok
    assert report.examples[0] == Example("question number 0", "question number 0")


def test_deeply_nested_json_is_a_violation_not_a_crash() -> None:
    report = parse_dataset(b"[" * 100_000, DatasetFormat.JSONL)
    assert fields(report) == ["lines[1]", "examples"]
    report = parse_dataset(b"[" * 100_000, DatasetFormat.JSON)
    assert not report.ok


# ---- CSV --------------------------------------------------------------------------------------


def test_a_csv_header_must_name_both_columns() -> None:
    raw = csv_bytes([[q, a] for q, a in pairs(25)], ("text_input", "answer"))
    report = parse_dataset(raw, DatasetFormat.CSV)
    assert report.violations == (
        FieldViolation(
            "header",
            "header: no column named 'output'; columns found: text_input, answer"
            " (the header must name text_input and output)",
        ),
    )


def test_an_empty_csv_has_no_header() -> None:
    assert fields(parse_dataset(b"", DatasetFormat.CSV)) == ["header"]


def test_multi_line_quoted_fields_keep_row_numbers_right() -> None:
    rows = [[q, a] for q, a in pairs(25)]
    rows[0] = ["question: first\nline two\nline three", "6"]  # rows[2] spans lines 2-4
    rows[1] = ["question: second", ""]  # starts on line 5
    raw = csv_bytes(rows)
    report = parse_dataset(raw, DatasetFormat.CSV)
    assert report.violations == (FieldViolation("rows[5].output", "row 5: output is empty"),)
    assert report.examples[0].text_input == "question: first\nline two\nline three"


def test_blank_csv_lines_are_skipped_and_counted() -> None:
    raw = csv_bytes([[q, a] for q, a in pairs(25)]).replace(b"\n", b"\n\n", 2)
    report = parse_dataset(raw + b"question: short row\n", DatasetFormat.CSV)
    assert fields(report) == ["rows[29].output"]
    assert describe(report, "rows[29].output") == "row 29: output is missing (found: text_input)"


def test_bad_csv_quoting_stops_at_the_row() -> None:
    raw = csv_bytes([[q, a] for q, a in pairs(25)]) + b'"question: x"y,z\n'
    report = parse_dataset(raw, DatasetFormat.CSV)
    assert fields(report) == ["rows[27]"]
    assert report.violations[0].description.startswith("row 27: not valid CSV:")


# ---- JSON -------------------------------------------------------------------------------------


LAYOUTS = (
    'the top level must be an array of examples, an object with an "examples" array,'
    ' or columns {"text_input": [...], "output": [...]}; found '
)


@pytest.mark.parametrize(
    ("document", "found"),
    [
        (42, "a number"),
        ("text", "a string"),
        ({}, "an empty object"),
        ({"data": []}, "an object with the keys data"),
        ({"examples": {"text_input": ["a"], "output": ["b"]}}, "an object with the keys examples"),
    ],
)
def test_json_with_another_top_level_is_refused(document: object, found: str) -> None:
    report = parse_dataset(json.dumps(document).encode(), DatasetFormat.JSON)
    assert report.violations == (FieldViolation("content", LAYOUTS + found),)


def test_json_paths_are_0_based_indexes() -> None:
    rows: list[object] = list(records(25))
    rows[3] = "question: not an object"
    rows[4] = {"text_input": "question: x", "output": 5}
    report = parse_dataset(json.dumps({"examples": rows}).encode(), DatasetFormat.JSON)
    assert report.violations == (
        FieldViolation("examples[3]", "examples[3]: not a JSON object: found a string"),
        FieldViolation("examples[4].output", "examples[4]: output must be a string, not a number"),
    )


def test_json_syntax_errors_name_line_and_column() -> None:
    report = parse_dataset(b'[\n  {"text_input": "a",\n  ]', DatasetFormat.JSON)
    assert report.violations == (
        FieldViolation(
            "lines[3]",
            "line 3, column 3: not valid JSON: Expecting property name enclosed in double quotes",
        ),
    )


def columns(count: int, start: int = 0) -> dict[str, list[object]]:
    """The column layout Google's SDK reads: {"text_input": [...], "output": [...]}."""
    rows = pairs(count, start)
    return {"text_input": [q for q, _ in rows], "output": [a for _, a in rows]}


def test_json_accepts_the_column_layout_and_ignores_other_columns() -> None:
    document: dict[str, object] = {**columns(25), "notes": [1, 2], "examples": "not an array"}
    report = parse_dataset(json.dumps(document).encode(), DatasetFormat.JSON)
    assert report.ok, report.violations
    assert report.examples == tuple(Example(q, a) for q, a in pairs(25))


def test_column_elements_are_checked_as_fields_and_named_by_index() -> None:
    document = columns(25)
    document["output"][3] = 5
    document["output"][4] = "   "
    document["text_input"][5] = None
    document["text_input"][6] = "q" * 40_001
    document["text_input"][7] = "question: \ud800"
    report = parse_dataset(json.dumps(document).encode(), DatasetFormat.JSON)
    assert report.violations == (
        FieldViolation("examples[3].output", "examples[3]: output must be a string, not a number"),
        FieldViolation("examples[4].output", "examples[4]: output is empty"),
        FieldViolation(
            "examples[5].text_input", "examples[5]: text_input must be a string, not null"
        ),
        FieldViolation(
            "examples[6].text_input",
            "examples[6]: text_input is 40001 characters; at most 40000 are allowed",
        ),
        FieldViolation(
            "examples[7].text_input",
            "examples[7]: text_input has a lone surrogate U+D800 at character 11;"
            " it is not valid Unicode",
        ),
    )
    assert len(report.examples) == 20


def test_columns_of_different_lengths_are_refused_naming_both() -> None:
    document = columns(25)
    document["output"].pop()
    report = parse_dataset(json.dumps(document).encode(), DatasetFormat.JSON)
    assert report.violations == (
        FieldViolation(
            "content",
            "text_input has 25 elements but output has 24 elements;"
            " the columns must be the same length",
        ),
    )
    assert report.examples == ()


@pytest.mark.parametrize(
    ("document", "violation"),
    [
        (
            {"text_input": ["question: a"], "answers": ["b"]},
            FieldViolation("output", "the column output is missing (found: text_input, answers)"),
        ),
        (
            {"text_input": "question: a", "output": ["b"]},
            FieldViolation("text_input", "the column text_input must be an array, not a string"),
        ),
    ],
)
def test_a_missing_or_non_array_column_is_named(
    document: dict[str, object], violation: FieldViolation
) -> None:
    report = parse_dataset(json.dumps(document).encode(), DatasetFormat.JSON)
    assert report.violations == (violation,)


def test_columns_count_toward_the_minimum_and_the_size_cap() -> None:
    raw = json.dumps(columns(19)).encode()
    report = parse_dataset(raw, DatasetFormat.JSON)
    assert fields(report) == ["examples"]
    too_big = parse_dataset(raw, DatasetFormat.JSON, DatasetOptions(max_bytes=len(raw) - 1))
    assert fields(too_big) == ["content"]
    assert too_big.examples == ()


def test_columns_take_the_configured_field_names() -> None:
    options = DatasetOptions(input_field="prompt", output_field="completion")
    rows = pairs(25)
    document: dict[str, list[object]] = {
        "prompt": [q for q, _ in rows],
        "completion": [a for _, a in rows],
    }
    assert parse_dataset(json.dumps(document).encode(), DatasetFormat.JSON, options).ok
    document["completion"][2] = ["not", "text"]
    report = parse_dataset(json.dumps(document).encode(), DatasetFormat.JSON, options)
    assert report.violations == (
        FieldViolation(
            "examples[2].completion", "examples[2]: completion must be a string, not an array"
        ),
    )
    sdk_names = parse_dataset(json.dumps(columns(25)).encode(), DatasetFormat.JSON, options)
    assert sdk_names.violations == (
        FieldViolation(
            "content",
            'the top level must be an array of examples, an object with an "examples" array,'
            ' or columns {"prompt": [...], "completion": [...]};'
            " found an object with the keys text_input, output",
        ),
    )


def test_a_field_configured_as_examples_is_a_column() -> None:
    options = DatasetOptions(input_field="examples", output_field="labels")
    rows = pairs(25)
    document = {"examples": [q for q, _ in rows], "labels": [a for _, a in rows]}
    report = parse_dataset(json.dumps(document).encode(), DatasetFormat.JSON, options)
    assert report.ok, report.violations
    assert report.examples == tuple(Example(q, a) for q, a in rows)


# ---- Count ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(DatasetFormat))
def test_fewer_than_20_examples_is_a_violation(fmt: DatasetFormat) -> None:
    raw = {
        DatasetFormat.JSONL: jsonl(records(19)),
        DatasetFormat.CSV: csv_bytes([[q, a] for q, a in pairs(19)]),
        DatasetFormat.JSON: json.dumps(records(19)).encode(),
    }[fmt]
    report = parse_dataset(raw, fmt)
    assert report.violations == (
        FieldViolation(
            "examples", "19 examples; at least 20 are needed (the tuning guide's minimum)"
        ),
    )
    assert not report.ok


@pytest.mark.parametrize(("count", "warned"), [(20, True), (99, True), (100, False)])
def test_fewer_than_100_examples_is_a_warning(count: int, warned: bool) -> None:
    report = parse_dataset(jsonl(records(count)), DatasetFormat.JSONL)
    assert report.ok
    expected = DatasetWarning("", "examples", f"{count} examples; 100 to 500 are recommended")
    assert (expected in report.warnings) is warned


def test_invalid_examples_do_not_count_toward_the_minimum() -> None:
    rows = records(20)
    rows[0] = {"text_input": "question: x", "output": ""}
    report = parse_dataset(jsonl(rows), DatasetFormat.JSONL)
    assert fields(report) == ["lines[1].output", "examples"]
    assert describe(report, "examples").startswith("19 examples;")


# ---- Duplicates -------------------------------------------------------------------------------


def test_repeated_examples_are_warned_and_counted() -> None:
    rows = records(25)
    rows[8] = rows[2]
    rows[20] = rows[2]
    report = parse_dataset(jsonl(rows), DatasetFormat.JSONL)
    assert report.ok
    assert report.stats.duplicates == 2
    assert DatasetWarning("line 9", "", "line 9 repeats line 3") in report.warnings
    assert DatasetWarning("line 21", "", "line 21 repeats line 3") in report.warnings


def test_the_same_input_with_another_output_is_warned() -> None:
    rows = [[q, a] for q, a in pairs(25)]
    rows[10] = [rows[2][0], "a different answer"]
    report = parse_dataset(csv_bytes(rows), DatasetFormat.CSV)
    assert report.ok
    assert report.stats.duplicates == 0
    message = "row 12 has the same input as row 4 but a different output"
    assert DatasetWarning("row 12", "output", message) in report.warnings


# ---- Formatting consistency -------------------------------------------------------------------


def formatted(count: int, layout: str) -> list[dict[str, object]]:
    return [{"text_input": layout.format(i=i), "output": f"answer {i}"} for i in range(count)]


def test_inputs_off_the_common_format_are_warned() -> None:
    rows = formatted(20, "Question: q{i}\nContext: c{i}") + formatted(5, "### Instruction: i{i}")
    report = parse_dataset(jsonl(rows), DatasetFormat.JSONL)
    outliers = [w for w in report.warnings if w.field == "text_input"]
    assert [w.location for w in outliers] == [f"line {n}" for n in range(21, 26)]
    assert outliers[0].message == (
        "line 21: input does not follow the format most examples use (question:, context:)"
    )


def test_labels_are_case_folded_and_may_follow_markdown_hashes() -> None:
    rows = formatted(15, "### Instruction:\ndo {i}\n### Response:") + formatted(
        10, "instruction: do {i}\n  RESPONSE:"
    )
    report = parse_dataset(jsonl(rows), DatasetFormat.JSONL)
    assert not [w for w in report.warnings if w.field == "text_input"]


def test_spaces_in_labels_count_as_one_space() -> None:
    rows = formatted(20, "Question  Text :\nContext: c{i}")
    rows += formatted(5, "question text:\ncontext : c{i}")
    rows += formatted(1, "question text:\nanswer: a{i}")
    report = parse_dataset(jsonl(rows), DatasetFormat.JSONL)
    outliers = [w for w in report.warnings if w.field == "text_input"]
    assert [w.location for w in outliers] == ["line 26"]
    assert outliers[0].message.endswith("(question text:, context:)")


def test_an_input_holding_a_nul_character_still_has_its_labels_read() -> None:
    rows = formatted(20, "question: q{i}\x00\ncontext: c{i}") + formatted(5, "answer: {i}\x00")
    report = parse_dataset(jsonl(rows), DatasetFormat.JSONL)
    outliers = [w for w in report.warnings if w.field == "text_input"]
    assert [w.location for w in outliers] == [f"line {n}" for n in range(21, 26)]


def test_evenly_mixed_formats_are_not_warned() -> None:
    rows = formatted(13, "question: q{i}") + formatted(12, "context: c{i}\nquestion: q{i}")
    report = parse_dataset(jsonl(rows), DatasetFormat.JSONL)
    assert not [w for w in report.warnings if w.field == "text_input"]


def test_plain_inputs_have_no_format_to_follow() -> None:
    rows = formatted(25, "what is {i}? see https://example.com/{i}")
    report = parse_dataset(jsonl(rows), DatasetFormat.JSONL)
    assert not [w for w in report.warnings if w.field == "text_input"]


# ---- Caps -------------------------------------------------------------------------------------


def test_violations_are_capped_with_a_count_of_the_rest() -> None:
    raw = b"not json\n" * 150
    report = parse_dataset(raw, DatasetFormat.JSONL)
    assert len(report.violations) == 101
    assert report.violations[99].field == "lines[100]"
    # 150 bad lines and the too-few-examples violation: 100 listed, 51 summed up.
    assert report.violations[-1] == FieldViolation("content", "... and 51 more problems")


def test_warnings_are_capped_with_a_count_of_the_rest() -> None:
    rows = records(25) + records(30)
    report = parse_dataset(jsonl(rows), DatasetFormat.JSONL, DatasetOptions(max_reported=5))
    assert report.ok
    assert len(report.warnings) == 6
    assert report.warnings[0].field == "examples"
    assert report.warnings[1] == DatasetWarning("line 26", "", "line 26 repeats line 1")
    assert report.warnings[-1] == DatasetWarning("", "content", "... and 21 more warnings")


# ---- Properties -------------------------------------------------------------------------------

formats = st.sampled_from(list(DatasetFormat))
field_names = st.sampled_from(["text_input", "output", "other"])
values = st.one_of(st.text(max_size=20), st.integers(), st.none(), st.booleans())
objects = st.dictionaries(st.one_of(field_names, st.text(max_size=5)), values, max_size=4)
PROPERTY_OPTIONS = DatasetOptions(
    min_examples=1, recommended_examples=3, max_input_chars=12, max_output_chars=8, max_reported=5
)


def assert_consistent(report: DatasetReport, options: DatasetOptions) -> None:
    assert isinstance(report, DatasetReport)
    assert len(report.violations) <= options.max_reported + 1
    assert len(report.warnings) <= options.max_reported + 1
    if report.ok:
        assert report.stats.examples == len(report.examples) >= options.min_examples
        for example in report.examples:
            assert example.text_input.strip()
            assert example.output.strip()
            assert len(example.text_input) <= options.max_input_chars
            assert len(example.output) <= options.max_output_chars
            example.text_input.encode()
            example.output.encode()


@settings(max_examples=200, deadline=None, database=None)
@given(raw=st.binary(max_size=300), fmt=formats)
def test_any_bytes_give_a_report(raw: bytes, fmt: DatasetFormat) -> None:
    assert_consistent(parse_dataset(raw, fmt, PROPERTY_OPTIONS), PROPERTY_OPTIONS)


@settings(max_examples=200, deadline=None, database=None)
@given(text=st.text(max_size=300), fmt=formats)
def test_any_text_gives_a_report(text: str, fmt: DatasetFormat) -> None:
    report = parse_dataset(text.encode(), fmt, PROPERTY_OPTIONS)
    assert_consistent(report, PROPERTY_OPTIONS)


@settings(max_examples=200, deadline=None, database=None)
@given(rows=st.lists(objects, max_size=8), fmt=formats, blank=st.booleans())
def test_any_rows_of_json_objects_give_a_report(
    rows: list[dict[str, object]], fmt: DatasetFormat, blank: bool
) -> None:
    raw = jsonl(rows) + (b"\n" if blank else b"")
    report = parse_dataset(raw, fmt, PROPERTY_OPTIONS)
    assert_consistent(report, PROPERTY_OPTIONS)
    if fmt is DatasetFormat.JSONL and report.ok:
        assert [e.text_input for e in report.examples] == [r["text_input"] for r in rows]


@settings(max_examples=200, deadline=None, database=None)
@given(document=st.dictionaries(field_names, st.one_of(values, st.lists(values, max_size=6))))
def test_any_columns_give_a_report(document: dict[str, object]) -> None:
    report = parse_dataset(json.dumps(document).encode(), DatasetFormat.JSON, PROPERTY_OPTIONS)
    assert_consistent(report, PROPERTY_OPTIONS)
    if report.ok:
        assert [e.text_input for e in report.examples] == document["text_input"]
        assert [e.output for e in report.examples] == document["output"]


@settings(max_examples=200, deadline=None, database=None)
@given(cells=st.lists(st.lists(st.text(max_size=10), min_size=2, max_size=3), max_size=8))
def test_any_csv_rows_give_a_report(cells: list[list[str]]) -> None:
    raw = csv_bytes(cells, ("text_input", "output", "extra"))
    report = parse_dataset(raw, DatasetFormat.CSV, PROPERTY_OPTIONS)
    assert_consistent(report, PROPERTY_OPTIONS)


# ---- Storing ----------------------------------------------------------------------------------


def test_stored_examples_read_back_as_core_job_decodes_them() -> None:
    odd: dict[str, object] = {"text_input": 'नमस्ते "quoted"\n🙂', "output": "\\ and \t"}
    rows = [*records(24), odd]
    report = parse_dataset(jsonl(rows), DatasetFormat.JSONL)
    encoded = encode_pairs(report.inputs, report.outputs)
    assert decode_examples(encoded) == list(report.examples)
    assert decode_examples(encode_examples(list(report.examples))) == list(report.examples)
