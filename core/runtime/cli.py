"""The shared shape of the processes' command lines: `--help` lists the environment."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any

from core.runtime import logs
from core.runtime.settings import Settings, markdown_table


def run_process(
    prog: str, description: str, serve: Callable[[Settings], Coroutine[Any, Any, None]]
) -> None:
    """Parse the command line, build settings from the environment, run `serve` to its end."""
    asyncio.run(serve(settings_from_command_line(prog, description)))


def settings_from_command_line(prog: str, description: str) -> Settings:
    """Parse argv (only --help and --log-level) and build settings from the environment.

    `--log-level` overrides `TUNING_LOG_LEVEL` for this run.
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog="Configured by environment variables:\n\n" + markdown_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--log-level", default=None)
    args = parser.parse_args()
    settings = Settings.from_env(os.environ)
    logs.configure(args.log_level or settings.log_level)
    return settings
