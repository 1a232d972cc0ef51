"""`python -m service`: the gRPC API process."""

from __future__ import annotations

import asyncio

from core.runtime.cli import settings_from_command_line
from service.process import serve


def main() -> None:
    settings = settings_from_command_line(
        "python -m service",
        "The tuning API: gRPC front end that validates, stores and reads tuning jobs.",
    )
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
