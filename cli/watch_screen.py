"""The `jobs watch` screen: the job's state, a progress bar with steps, percent and ETA,
and the loss plot (plotext) that grows as snapshots arrive.

A pure function of the job and the time, so the same screen is drawn live (rich's Live,
cli.watch) and once, at a fixed width, in the demo's output (devstack/demo.py).
"""

from __future__ import annotations

from datetime import timedelta

import plotext  # type: ignore[import-untyped]
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from cli.output import advice_text, state_text
from tuning.v1 import tuning_job_pb2

PLOT_HEIGHT = 14
MIN_PLOT_WIDTH = 30
BAR_WIDTH = 40
State = tuning_job_pb2.TuningJob.State
TERMINAL = frozenset({State.SUCCEEDED, State.FAILED, State.CANCELLED})


def screen(
    job: tuning_job_pb2.TuningJob, *, now_s: float, width: int, status: str = ""
) -> RenderableType:
    """Everything `jobs watch` shows for `job` at `now_s` (Unix seconds)."""
    parts: list[RenderableType] = [_header(job), _bar(job, now_s)]
    notes = _notes(job, status)
    if notes:
        parts.append(Text("\n".join(notes), style="yellow"))
    parts.append(loss_plot(job, width=width) if job.snapshots else Text("no loss reported yet"))
    return Group(*parts)


def _header(job: tuning_job_pb2.TuningJob) -> Text:
    title = f"{job.name}  {escape(job.display_name)}  {state_text(job.state)}"
    return Text.from_markup(title)


def _bar(job: tuning_job_pb2.TuningJob, now_s: float) -> Table:
    progress = job.progress
    total = progress.total_steps
    done = progress.completed_steps
    percent = 100.0 * done / total if total else 0.0
    row = Table.grid(padding=(0, 1))
    row.add_row(
        ProgressBar(total=float(total or 1), completed=float(done), width=BAR_WIDTH),
        f"step {done}/{total or '?'}",
        f"{percent:3.0f}%",
        f"ETA {eta(job, now_s)}",
    )
    return row


def eta(job: tuning_job_pb2.TuningJob, now_s: float) -> str:
    """Time left by the API's estimate (`estimated_end_time`), as h:mm:ss."""
    if job.state in TERMINAL:
        return "done"
    if not job.HasField("estimated_end_time"):
        return "-"
    left_s = max(0, round(job.estimated_end_time.ToNanoseconds() / 1e9 - now_s))
    return str(timedelta(seconds=left_s))


def _notes(job: tuning_job_pb2.TuningJob, status: str) -> list[str]:
    notes = [status] if status else []
    if job.queue_position:
        notes.append(f"queued: place {job.queue_position}")
    if job.waiting_reason:
        notes.append(job.waiting_reason)
    if job.HasField("stalled_since"):
        notes.append("stalled: no progress lately")
    if job.error.message:
        notes.append(f"error: {job.error.message}")
    advice = advice_text(job)
    if advice:
        notes.append(f"advice: {advice}")
    if job.tuned_model and job.state == State.SUCCEEDED:
        notes.append(f"tuned model: {job.tuned_model}")
    return notes


def loss_plot(job: tuning_job_pb2.TuningJob, *, width: int) -> Text:
    """The loss per step as plotext draws it in the terminal, without colours."""
    figure = plotext.figure
    figure.clear()
    signal = figure.signal([s.step for s in job.snapshots], [s.mean_loss for s in job.snapshots])
    signal.lines()
    figure.draw(signal)
    figure.plot_size(max(MIN_PLOT_WIDTH, width), PLOT_HEIGHT)
    figure.title("loss per step")
    figure.label("step", "x")
    return Text(figure.build().string(colorless=True), style="cyan")
