"""`python -m devstack`: the README's demo."""

from __future__ import annotations

import argparse
import asyncio
import sys

from devstack.demo import DemoOptions, run_demo


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m devstack",
        description="Run Redis, the emulator, the API and a worker locally and follow one "
        "sample tuning job to the end. Training is simulated by the emulator.",
    )
    parser.add_argument(
        "--steps-per-second",
        type=float,
        default=DemoOptions.steps_per_second,
        help="simulated training speed (default %(default)s)",
    )
    parser.add_argument("--epochs", type=int, default=DemoOptions.epochs)
    parser.add_argument("--batch-size", type=int, default=DemoOptions.batch_size)
    parser.add_argument("--timeout-s", type=float, default=DemoOptions.timeout_s)
    parser.add_argument(
        "--serve", action="store_true", help="keep the system running after the job, until Ctrl-C"
    )
    args = parser.parse_args()
    options = DemoOptions(
        args.steps_per_second, args.epochs, args.batch_size, args.timeout_s, args.serve
    )
    sys.exit(asyncio.run(run_demo(options)))


if __name__ == "__main__":
    main()
