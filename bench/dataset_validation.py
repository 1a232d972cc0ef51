"""Validating a 4 MB JSONL dataset, against parsing the same lines with json.loads alone."""

from __future__ import annotations

import json
import time

from bench.figure import Figure, figure, table
from core.datasets import DatasetFormat, DatasetOptions, parse_dataset

TARGET_BYTES = 4 * 1024 * 1024 - 1024


def dataset() -> bytes:
    lines, size, n = [], 0, 0
    while size < TARGET_BYTES - 400:
        line = json.dumps(
            {
                "text_input": f"question: what follows {n}?\ncontext: counting, example {n}",
                "output": f"{n + 1}, which is the number after {n}. " * 3,
            },
            ensure_ascii=False,
        )
        lines.append(line)
        size += len(line) + 1
        n += 1
    return ("\n".join(lines) + "\n").encode()


def best_of(runs: int, work: object) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return min(times)


def measure(runs: int = 5) -> list[Figure]:
    raw = dataset()
    options = DatasetOptions(max_bytes=len(raw) + 1)
    report = parse_dataset(raw, DatasetFormat.JSONL, options)
    assert report.ok, report.violations[:3]
    ours = best_of(runs, lambda: parse_dataset(raw, DatasetFormat.JSONL, options))
    base = best_of(runs, lambda: [json.loads(line) for line in raw.decode().splitlines()])
    return [
        figure(
            "dataset validation (4 MB)",
            "s",
            ours,
            base,
            "ratio <= 3",
            lambda r: r <= 3,
            examples=report.stats.examples,
            bytes=len(raw),
        )
    ]


if __name__ == "__main__":
    print(table(measure()))
