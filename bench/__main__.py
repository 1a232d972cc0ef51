"""`python -m bench`: every figure, then the table, also written as JSON.

`python -m bench status_read create ...` runs the named figures only.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable

from bench import (
    admission,
    coalescing,
    dataset_stream,
    dataset_validation,
    fleet,
    generate,
    list_scale,
    machine,
    noisy_neighbour,
    redis_memory,
    rpc,
    tracking,
    watch,
)
from bench.figure import Figure, crashed, details, table, write_json

FIGURES: dict[str, Callable[[], Awaitable[list[Figure]]]] = {
    "status_read": rpc.status_read,
    "create": rpc.create,
    "coalescing": coalescing.measure,
    "list_scale": list_scale.measure,
    "tracking": tracking.measure,
    "long_jobs": tracking.measure_long,
    "dataset_validation": dataset_validation.ameasure,
    "dataset_stream": dataset_stream.ameasure,
    "fleet": fleet.measure,
    "admission": admission.measure,
    "noisy_neighbour": noisy_neighbour.measure,
    "generate": generate.measure,
    "watch": watch.measure,
    "redis_memory": redis_memory.measure,
}


async def measure(names: list[str]) -> list[Figure]:
    figures: list[Figure] = []
    for name in names:
        print(f"measuring {name} ...", flush=True)
        try:
            figures += await FIGURES[name]()
        except Exception as exc:  # noqa: BLE001 (a figure that fails must not lose the others)
            print(f"{name} failed: {type(exc).__name__}: {exc}", flush=True)
            figures.append(crashed(name))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("figures", nargs="*", help=f"any of {', '.join(FIGURES)} (default: all)")
    names = parser.parse_args().figures or list(FIGURES)
    unknown = sorted(set(names) - set(FIGURES))
    if unknown:
        parser.error(f"unknown figures: {', '.join(unknown)}")
    before_ns = machine.ns_per_addition()
    print(f"machine: {before_ns:.0f} ns per Python addition (bench/machine.py)", flush=True)
    figures = asyncio.run(measure(names))
    after_ns = machine.ns_per_addition()
    print(table(figures))
    print(details(figures))
    print(
        f"machine: {before_ns:.0f} ns per Python addition before the figures, {after_ns:.0f}"
        " after (absolute bounds scale with it)"
    )
    speed = {"ns_per_addition_before": before_ns, "ns_per_addition_after": after_ns}
    print(f"written to {write_json(figures, machine=speed)}")


if __name__ == "__main__":
    main()
