"""`jobs create --examples FILE`: a local file of examples, sent inline in the request.

Only the file's shape is checked here (JSON that parses, the two fields present); what
the examples say is the API's to judge, and its field violations name the example
(`tuning_job.training_examples[3].output`). For a large dataset, upload it
(`tunectl datasets upload`) and pass `--dataset`.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from cli.errors import InputError
from tuning.v1 import tuning_job_pb2

MAX_BYTES = 16 * 1024 * 1024
"""The API's largest CreateTuningJob request (`TUNING_GRPC_MAX_MESSAGE_BYTES`)."""
FIELDS = ("text_input", "output")


def read_examples(path: Path) -> list[tuning_job_pb2.TrainingExample]:
    text = _read(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = list(csv.DictReader(io.StringIO(text)))
    elif suffix == ".json":
        rows = _json_rows(path, text)
    else:
        rows = _jsonl_rows(path, text)
    return [_example(path, number, row) for number, row in enumerate(rows, start=1)]


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_BYTES:
            raise InputError(f"{path} is larger than {MAX_BYTES} bytes: upload it as a dataset")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None


def _jsonl_rows(path: Path, text: str) -> list[Any]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}, line {number}: not JSON: {exc.msg}") from None
    return rows


def _json_rows(path: Path, text: str) -> list[Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}, line {exc.lineno}: not JSON: {exc.msg}") from None
    if isinstance(data, dict) and isinstance(data.get("examples"), list):
        data = data["examples"]
    if not isinstance(data, list):
        raise InputError(f'{path}: expected an array of examples or {{"examples": [...]}}')
    return data


def _example(path: Path, number: int, row: Any) -> tuning_job_pb2.TrainingExample:
    if not isinstance(row, dict) or not all(isinstance(row.get(f), str) for f in FIELDS):
        raise InputError(f"{path}, example {number}: needs text fields text_input and output")
    return tuning_job_pb2.TrainingExample(text_input=row["text_input"], output=row["output"])
