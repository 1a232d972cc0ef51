"""What commands print: rich tables and panels for people, one JSON document for scripts.

With `--output json` every command prints exactly one JSON value on stdout (the API's
answer with the proto's own field names, as `google.protobuf.json_format` writes them)
and nothing else there; errors go to stderr, as JSON too. `jobs watch` is the exception
that streams: one JSON object a line, one per update.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console, RenderableType
from rich.markup import escape
from rich.table import Column, Table

from tuning.v1 import dataset_pb2, tuning_job_pb2

State = tuning_job_pb2.TuningJob.State
STATE_STYLES = {
    "SUCCEEDED": "green",
    "FAILED": "red",
    "CANCELLED": "yellow",
    "CANCELLING": "yellow",
    "RUNNING": "cyan",
}


class Format(StrEnum):
    TEXT = "text"
    JSON = "json"


def proto_dict(message: Message) -> dict[str, Any]:
    """A message as JSON data, by the proto3 JSON mapping (enums by name, int64 as strings,
    timestamps in RFC 3339) with the proto's own field names, as grpcurl prints them."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


@dataclass
class Output:
    """Where and how a command prints."""

    format: Format
    console: Console
    errors: Console

    @property
    def is_json(self) -> bool:
        return self.format is Format.JSON

    def emit(self, data: Any, text: RenderableType | str) -> None:
        """`data` as JSON, or `text` for a person."""
        if self.is_json:
            self.json_line(data)
        else:
            self.console.print(text)

    def json_line(self, data: Any) -> None:
        # Through the file, not rich: rich would wrap long lines and read markup in values.
        self.console.file.write(json.dumps(data, ensure_ascii=False) + "\n")
        self.console.file.flush()

    def error(self, lines: list[str], data: dict[str, Any]) -> None:
        if self.is_json:
            self.errors.file.write(json.dumps(data, ensure_ascii=False) + "\n")
        else:
            for line in lines:
                self.errors.print(line, markup=False, highlight=False, soft_wrap=True)


def when(stamp: Timestamp) -> str:
    """A timestamp for people: UTC, to the second; '-' if unset."""
    if not stamp.seconds and not stamp.nanos:
        return "-"
    moment = datetime.fromtimestamp(stamp.seconds, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def state_text(state: tuning_job_pb2.TuningJob.State.ValueType) -> str:
    name = State.Name(state)
    style = STATE_STYLES.get(name)
    return f"[{style}]{name}[/]" if style else name


def _name_column() -> Column:
    """Names are for copying: never wrapped (`tuningJobs/` and 20 characters)."""
    return Column("NAME", no_wrap=True, min_width=31)


def jobs_table(jobs: list[tuning_job_pb2.TuningJob]) -> Table:
    table = Table(_name_column(), "DISPLAY NAME", "STATE", "PROGRESS", "BASE MODEL", "CREATED")
    for job in jobs:
        table.add_row(
            job.name,
            escape(job.display_name) or "-",
            state_text(job.state),
            _progress(job.progress),
            job.base_model,
            when(job.create_time),
        )
    return table


def job_details(job: tuning_job_pb2.TuningJob) -> Table:
    """One job, a field a row: what a person looks at first."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for label, value in _job_rows(job):
        grid.add_row(label, value)
    return grid


def _job_rows(job: tuning_job_pb2.TuningJob) -> list[tuple[str, str]]:
    rows = [
        ("name", job.name),
        ("display name", escape(job.display_name) or "-"),
        ("state", state_text(job.state)),
        ("provider", tuning_job_pb2.TuningJob.Provider.Name(job.provider)),
        ("base model", job.base_model),
        ("progress", _progress(job.progress)),
    ]
    optional = [
        ("queue position", str(job.queue_position) if job.queue_position else ""),
        ("waiting", escape(job.waiting_reason)),
        ("dataset", job.dataset),
        ("tuned model", job.tuned_model),
        ("endpoint", job.tuned_model_endpoint),
        ("last loss", f"{job.snapshots[-1].mean_loss:.4f}" if job.snapshots else ""),
        ("advice", advice_text(job)),
        ("estimated end", _when_set(job, "estimated_end_time")),
        ("stalled since", _when_set(job, "stalled_since")),
        ("error", escape(job.error.message)),
        ("labels", ", ".join(f"{k}={v}" for k, v in sorted(job.labels.items()))),
        ("created", when(job.create_time)),
        ("ended", _when_set(job, "end_time")),
    ]
    return rows + [(label, value) for label, value in optional if value]


def _when_set(job: tuning_job_pb2.TuningJob, field: str) -> str:
    return when(getattr(job, field)) if job.HasField(field) else ""  # type: ignore[arg-type]


def advice_text(job: tuning_job_pb2.TuningJob) -> str:
    if not job.HasField("training_advice"):
        return ""
    advice = job.training_advice
    basis = tuning_job_pb2.TrainingAdvice.Basis.Name(advice.basis)
    return f"{advice.recommended_epoch_count} epochs ({basis})"


def _progress(progress: tuning_job_pb2.Progress) -> str:
    if not progress.total_steps:
        return "-"
    done, total = progress.completed_steps, progress.total_steps
    return f"{done}/{total} ({progress.completed_percent:.0f}%)"


def datasets_table(datasets: list[dataset_pb2.Dataset]) -> Table:
    table = Table(_name_column(), "DISPLAY NAME", "FORMAT", "EXAMPLES", "BYTES", "CREATED")
    for dataset in datasets:
        table.add_row(
            dataset.name,
            escape(dataset.display_name) or "-",
            dataset_pb2.Dataset.Format.Name(dataset.format),
            str(dataset.stats.example_count),
            str(dataset.stats.size_bytes),
            when(dataset.create_time),
        )
    return table


def dataset_details(dataset: dataset_pb2.Dataset) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    stats = dataset.stats
    grid.add_row("name", dataset.name)
    grid.add_row("display name", escape(dataset.display_name) or "-")
    grid.add_row("format", dataset_pb2.Dataset.Format.Name(dataset.format))
    grid.add_row("examples", f"{stats.example_count} ({stats.duplicate_count} duplicates)")
    grid.add_row("characters", f"inputs {stats.input_chars}, outputs {stats.output_chars}")
    grid.add_row("bytes", str(stats.size_bytes))
    grid.add_row("created", when(dataset.create_time))
    for warning in dataset.warnings:
        where = " ".join(part for part in (warning.location, warning.field) if part)
        text = f"{where}: {warning.message}" if where else warning.message
        grid.add_row("warning", escape(text))
    return grid
