"""`python -m worker`: the worker process."""

from __future__ import annotations

from core.runtime.cli import run_process
from worker.process import serve

if __name__ == "__main__":
    run_process(
        "python -m worker",
        "The tuning worker: submits queued jobs upstream, polls them, cancels and cleans up.",
        serve,
    )
