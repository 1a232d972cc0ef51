"""`python -m service`: the gRPC API process."""

from __future__ import annotations

from core.runtime.cli import run_process
from service.process import serve

if __name__ == "__main__":
    run_process(
        "python -m service",
        "The tuning API: gRPC front end that validates, stores and reads tuning jobs.",
        serve,
    )
