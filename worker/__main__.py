"""`python -m worker`: the worker process."""

from __future__ import annotations

import asyncio

from core.runtime.cli import settings_from_command_line
from worker.process import run_worker


def main() -> None:
    settings = settings_from_command_line(
        "python -m worker",
        "The tuning worker: submits queued jobs upstream, polls them, cancels and cleans up.",
    )
    asyncio.run(run_worker(settings))


if __name__ == "__main__":
    main()
