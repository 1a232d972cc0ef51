"""`python -m bench`: every implemented figure, then the table, also written as JSON."""

from __future__ import annotations

import asyncio

from bench import dataset_validation, list_scale, rpc
from bench.figure import Figure, table, write_json

NOT_YET = (
    "coalescing (1,000 pollers x 50 jobs)",
    "tracking 10,000 jobs (memory, request rate)",
    "fleet under quota (4 workers, 429 share)",
)


async def measure_all() -> list[Figure]:
    figures = [*await rpc.status_read(), *await rpc.create(), *await list_scale.measure()]
    return [*figures, *dataset_validation.measure()]


def main() -> None:
    figures = asyncio.run(measure_all())
    print(table(figures))
    print(f"\nnot measured yet: {'; '.join(NOT_YET)}")
    print(f"written to {write_json(figures)}")


if __name__ == "__main__":
    main()
