"""`tunectl jobs plot JOB -o loss.png`: the loss curve as a PNG (matplotlib, Agg, no display).

Two panels: the loss of every step, with the epochs' ends dotted; and the mean loss of
each epoch, with the recommended epoch count (the API's `training_advice`) marked. The
per-epoch means are the API's own (`training_advice.epoch_mean_losses`), so this plot and
the advice never disagree; before two epochs have ended there are none, and only the
steps are drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from cli.app import global_options, invocation, resource_name
from cli.errors import CliError
from cli.output import advice_text
from tuning.v1 import tuning_job_pb2, tuning_service_pb2

if TYPE_CHECKING:
    from matplotlib.axes import Axes

SIZE_IN = (10.0, 6.5)
DPI = 100


@click.command()
@click.argument("name")
@click.option(
    "-o",
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=Path("loss.png"),
    show_default=True,
    help="The PNG to write.",
)
@global_options
def plot(name: str, out_file: Path) -> None:
    """Draw job NAME's loss curve, per step and per epoch, to a PNG."""
    run = invocation()
    client = run.client()
    request = tuning_service_pb2.GetTuningJobRequest(name=resource_name("tuningJobs", name))
    job = client.call(client.tuning.GetTuningJob, request)
    if not job.snapshots:
        state = tuning_job_pb2.TuningJob.State.Name(job.state)
        raise CliError(f"{job.name} has no loss reported yet ({state}): nothing to plot")
    width_px, height_px = write_png(job, out_file)
    data = {
        "file": str(out_file),
        "width_px": width_px,
        "height_px": height_px,
        "snapshots": len(job.snapshots),
        "recommended_epoch_count": job.training_advice.recommended_epoch_count or None,
    }
    advice = advice_text(job)
    text = f"wrote {out_file} ({width_px}x{height_px})" + (f"; advice: {advice}" if advice else "")
    run.output().emit(data, text)


def write_png(job: tuning_job_pb2.TuningJob, path: Path) -> tuple[int, int]:
    """Draw and save; the image's size in pixels."""
    # Imported here: matplotlib takes a good part of a second to load, which every
    # other command would pay for nothing.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=SIZE_IN, dpi=DPI, layout="constrained")
    steps_axes, epochs_axes = figure.subplots(2, 1)
    _steps(steps_axes, job)
    _epochs(epochs_axes, job)
    figure.suptitle(f"{job.display_name or job.name}: training loss")
    canvas = FigureCanvasAgg(figure)
    try:
        figure.savefig(path, format="png")
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}") from None
    width, height = canvas.get_width_height()
    return int(width), int(height)


def _steps(axes: Axes, job: tuning_job_pb2.TuningJob) -> None:
    steps = [s.step for s in job.snapshots]
    axes.plot(steps, [s.mean_loss for s in job.snapshots], marker=".", label="loss per step")
    for before, after in zip(job.snapshots, job.snapshots[1:], strict=False):
        if after.epoch > before.epoch:
            axes.axvline(after.step, color="grey", linestyle=":", linewidth=1)
    axes.set_xlabel("step")
    axes.set_ylabel("mean loss")
    axes.legend(loc="upper right")


def _epochs(axes: Axes, job: tuning_job_pb2.TuningJob) -> None:
    advice = job.training_advice
    means = list(advice.epoch_mean_losses)
    if not means:
        axes.text(0.5, 0.5, "per-epoch means come once two epochs have ended", ha="center")
        axes.set_axis_off()
        return
    epochs = list(range(1, len(means) + 1))
    axes.plot(epochs, means, marker="o", label="mean loss per epoch")
    recommended = advice.recommended_epoch_count
    if recommended:
        basis = tuning_job_pb2.TrainingAdvice.Basis.Name(advice.basis)
        axes.axvline(
            recommended, color="red", linestyle="--", label=f"recommended: {recommended} ({basis})"
        )
    axes.set_xticks(epochs)
    axes.set_xlabel("epoch")
    axes.set_ylabel("mean loss")
    axes.legend(loc="upper right")
