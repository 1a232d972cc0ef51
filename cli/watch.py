"""`tunectl jobs watch JOB`: follow a job live until it ends, reconnecting when the stream drops.

The stream (WatchTuningJob) sends the job at once and on every change, heartbeats while
idle, and ends after a terminal state. It can drop: a replica that shuts down ends its
streams UNAVAILABLE (SERVER_DRAINING, with RetryInfo), a network can cut it, the API can
restart. The `Follower` then reconnects with the last `version` seen as `after_version`,
so it is sent only what changed, after a backoff (the server's RetryInfo when it gives
one, else 0.2 s doubling to 5 s), and gives up after `max_reconnects` failures in a row
(any answer resets the count). A job it cannot follow (NOT_FOUND: deleted, say) is an
error at once.

Exit codes (cli.errors.ExitCode): 0 when the job SUCCEEDED, 3 FAILED, 4 CANCELLED.

What it prints: on a terminal, the screen of cli.watch_screen redrawn by rich's Live; with
`--output json`, or when stdout is not a terminal and `--output text` was not asked for,
one JSON object a line per update (`{"type": "job", "version": ..., "job": {...}}`,
`{"type": "heartbeat", ...}`, `{"type": "reconnecting", ...}`). `--output text` on a
non-terminal prints the final screen once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import click
import grpc
from rich.live import Live

from cli.app import global_options, invocation, resource_name
from cli.connection import Client
from cli.errors import JobEnded, reason_of, retry_after_s
from cli.output import Output, proto_dict
from cli.watch_screen import TERMINAL, screen
from tuning.v1 import tuning_job_pb2, tuning_service_pb2

State = tuning_job_pb2.TuningJob.State
MAX_BACKOFF_S = 5.0
FIRST_BACKOFF_S = 0.2
RETRIED_REASONS = {"TOO_MANY_WATCHES"}
"""RESOURCE_EXHAUSTED reasons worth a reconnect (a slot frees when another watch ends)."""


def backoff_s(attempt: int) -> float:
    """Seconds before reconnect `attempt` (1-based): 0.2, 0.4, 0.8, ... at most 5."""
    return float(min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class Update:
    """One thing the follower saw: a job, a heartbeat, or a reconnect about to happen."""

    kind: str
    """`job`, `heartbeat` or `reconnecting`."""
    version: int
    job: tuning_job_pb2.TuningJob | None = None
    reason: str = ""
    delay_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.kind, "version": self.version}
        if self.job is not None and self.kind == "job":
            data["job"] = proto_dict(self.job)
        if self.kind == "reconnecting":
            data |= {"reason": self.reason, "delay_s": self.delay_s}
        return data


class Follower:
    """Follows one job across stream drops; `updates()` ends after a terminal state."""

    def __init__(
        self,
        client: Client,
        name: str,
        *,
        max_reconnects: int,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._name = name
        self._max_reconnects = max_reconnects
        self._sleep = sleep
        self.version = 0
        self.job: tuning_job_pb2.TuningJob | None = None

    def updates(self) -> Iterator[Update]:
        failures = 0
        while True:
            try:
                for update in self._one_stream():
                    failures = 0
                    yield update
                if self._ended():
                    return
                cause, delay_s = "the stream ended before the job did", None
            except grpc.RpcError as error:
                if not _worth_retrying(error) or failures >= self._max_reconnects:
                    raise
                cause, delay_s = _cause(error), retry_after_s(error)
            failures += 1
            wait_s = delay_s if delay_s is not None else backoff_s(failures)
            yield Update("reconnecting", self.version, self.job, cause, wait_s)
            self._sleep(wait_s)

    def _one_stream(self) -> Iterator[Update]:
        request = tuning_service_pb2.WatchTuningJobRequest(
            name=self._name, after_version=self.version
        )
        for answer in self._client.tuning.WatchTuningJob(request, metadata=self._client.metadata):
            self.version = max(self.version, answer.version)
            if answer.HasField("job"):
                self.job = answer.job
                yield Update("job", self.version, answer.job)
                if self._ended():
                    return
            else:
                yield Update("heartbeat", self.version, self.job)

    def _ended(self) -> bool:
        return self.job is not None and self.job.state in TERMINAL


def _worth_retrying(error: grpc.RpcError) -> bool:
    code = error.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        return True
    return code == grpc.StatusCode.RESOURCE_EXHAUSTED and reason_of(error) in RETRIED_REASONS


def _cause(error: grpc.RpcError) -> str:
    reason = reason_of(error)
    code = error.code().name
    return f"{code} ({reason})" if reason else code


@click.command()
@click.argument("name")
@click.option(
    "--max-reconnects",
    type=click.IntRange(0, 1000),
    default=12,
    show_default=True,
    help="Reconnects in a row, with no answer between, before giving up.",
)
@global_options
def watch(name: str, max_reconnects: int) -> None:
    """Follow job NAME live until it ends: a progress bar with steps, percent and ETA,
    and a loss plot that grows as snapshots arrive. Exits 0 if it SUCCEEDED, 3 if it
    FAILED, 4 if it was CANCELLED."""
    run = invocation()
    follower = Follower(
        run.client(), resource_name("tuningJobs", name), max_reconnects=max_reconnects
    )
    out = run.output()
    lines = out.is_json or (run.format is None and not out.console.is_terminal)
    if lines:
        _print_lines(follower, out)
    else:
        _show_screen(follower, out)
    _exit_by_state(follower.job)


def _print_lines(follower: Follower, out: Output) -> None:
    for update in follower.updates():
        out.json_line(update.to_dict())


def _show_screen(follower: Follower, out: Output) -> None:
    """Redraw on every update; Live also redraws 4 times a second, for the ETA."""
    width = out.console.width

    def draw(status: str = "") -> Any:
        if follower.job is None:
            return f"waiting for {status or 'the first answer'}"
        return screen(follower.job, now_s=time.time(), width=width - 2, status=status)

    with Live(draw(), console=out.console, refresh_per_second=4) as live:
        for update in follower.updates():
            status = "" if update.kind != "reconnecting" else _reconnect_note(update)
            live.update(draw(status), refresh=True)


def _reconnect_note(update: Update) -> str:
    return f"stream lost: {update.reason}; reconnecting in {update.delay_s:.1f} s"


def _exit_by_state(job: tuning_job_pb2.TuningJob | None) -> None:
    if job is None or job.state == State.SUCCEEDED:
        return
    raise JobEnded(job.name, State.Name(job.state), job.error.message)
