"""`tunectl datasets ...`: upload (with a progress bar), get, list, delete."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from cli.app import global_options, invocation, resource_name
from cli.errors import InputError
from cli.output import dataset_details, datasets_table, proto_dict
from tuning.v1 import dataset_pb2, tuning_service_pb2

CHUNK_BYTES = 256 * 1024
"""Bytes per UploadDataset message: well under the API's chunk limit (1 MiB by default)."""
MAX_LIST = 1000
FORMATS = {".jsonl": "JSONL", ".csv": "CSV", ".json": "JSON"}
Format = dataset_pb2.Dataset.Format


@click.group()
@global_options
def datasets() -> None:
    """Upload and manage training datasets."""


@datasets.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(sorted(FORMATS.values()), case_sensitive=False),
    help="Default: from the file's extension (.jsonl, .csv, .json).",
)
@click.option("--display-name", default="", help="A name for people.")
@click.option("--input-field", default="", help="Key or column of the inputs (text_input).")
@click.option("--output-field", default="", help="Key or column of the outputs (output).")
@global_options
def upload(
    file: Path, fmt: str | None, display_name: str, input_field: str, output_field: str
) -> None:
    """Upload and validate FILE (JSONL, CSV or JSON). A dataset with problems is refused
    whole, and each problem is printed with its line or row and field."""
    spec = dataset_pb2.Dataset(
        format=Format.Value(_format_of(file, fmt)),
        display_name=display_name,
        input_field=input_field,
        output_field=output_field,
    )
    run = invocation()
    client = run.client()
    out = run.output()
    show_bar = not out.is_json and out.errors.is_terminal
    with _UploadBar(out.errors, show_bar, file.stat().st_size) as advance:
        answer = client.tuning.UploadDataset(
            _messages(spec, file, advance), metadata=client.metadata, timeout=client.timeout_s
        )
    out.emit(proto_dict(answer), dataset_details(answer))


def _format_of(file: Path, fmt: str | None) -> str:
    if fmt:
        return fmt.upper()
    found = FORMATS.get(file.suffix.lower())
    if found is None:
        raise click.UsageError(f"cannot tell the format of {file.name}: pass --format")
    return found


def _messages(
    spec: dataset_pb2.Dataset, file: Path, advance: Callable[[int], None]
) -> Iterator[tuning_service_pb2.UploadDatasetRequest]:
    """The metadata message, then the file in chunks, read as they are sent."""
    yield tuning_service_pb2.UploadDatasetRequest(dataset=spec)
    try:
        with file.open("rb") as content:
            while chunk := content.read(CHUNK_BYTES):
                yield tuning_service_pb2.UploadDatasetRequest(chunk=chunk)
                advance(len(chunk))
    except OSError as exc:
        raise InputError(f"cannot read {file}: {exc.strerror}") from None


class _UploadBar:
    """A byte progress bar on stderr while the upload runs (none when not wanted)."""

    def __init__(self, console: Console, shown: bool, total_bytes: int | None = None) -> None:
        self._progress = Progress(
            TextColumn("uploading"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=console,
            disable=not shown,
        )
        self._total = total_bytes
        self._task = self._progress.add_task("upload", total=total_bytes)

    def __enter__(self) -> Callable[[int], None]:
        self._progress.start()
        return lambda sent: self._progress.advance(self._task, sent)

    def __exit__(self, *_exc: object) -> None:
        self._progress.stop()


@datasets.command()
@click.argument("name")
@global_options
def get(name: str) -> None:
    """Show dataset NAME (datasets/ID or ID): its statistics and warnings."""
    run = invocation()
    client = run.client()
    request = tuning_service_pb2.GetDatasetRequest(name=resource_name("datasets", name))
    answer = client.call(client.tuning.GetDataset, request)
    run.output().emit(proto_dict(answer), dataset_details(answer))


@datasets.command("list")
@click.option("--limit", type=click.IntRange(1, MAX_LIST), default=50, show_default=True)
@global_options
def list_datasets(limit: int) -> None:
    """List the tenant's datasets, newest first."""
    run = invocation()
    client = run.client()
    found, token = client.collect(
        client.tuning.ListDatasets,
        lambda token, room: tuning_service_pb2.ListDatasetsRequest(
            page_size=min(100, room), page_token=token
        ),
        lambda page: page.datasets,
        limit,
    )
    data = {"datasets": [proto_dict(d) for d in found], "next_page_token": token}
    run.output().emit(data, datasets_table(found))


@datasets.command()
@click.argument("name")
@global_options
def delete(name: str) -> None:
    """Delete dataset NAME; jobs made from it keep their copy."""
    run = invocation()
    client = run.client()
    full = resource_name("datasets", name)
    request = tuning_service_pb2.DeleteDatasetRequest(name=full)
    client.call(client.tuning.DeleteDataset, request)
    run.output().emit({"deleted": full}, f"deleted {full}")
