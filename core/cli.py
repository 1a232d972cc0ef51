"""The shared shape of the processes' command lines: `--help` lists the environment."""

from __future__ import annotations

import argparse
import os

from core import logs
from core.settings import Settings, markdown_table


def settings_from_command_line(prog: str, description: str) -> Settings:
    """Parse argv (only --help and --log-level) and build settings from the environment."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog="Configured by environment variables:\n\n" + markdown_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--log-level", default=os.environ.get("TUNING_LOG_LEVEL", "INFO"))
    args = parser.parse_args()
    logs.configure(args.log_level)
    return Settings.from_env(os.environ)
