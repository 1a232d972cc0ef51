"""Validating a 4 MB JSONL dataset through UploadDataset, against parsing its lines with json.loads.

`ours` is the whole UploadDataset call as a client sees it: the metadata message, the content in
64 KiB chunks over a real channel to the real API process, validation, storage in Redis and the
answer. `baseline` is `json.loads` on every line of the same bytes, in this process. Both are the
median of the same number of runs, taken in turn, after a warm-up upload.
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import grpc

from bench.figure import Figure, figure, table
from bench.stack import bench_stack
from service.dataset_parsing import DatasetFormat, DatasetOptions, parse_dataset
from tuning.v1 import dataset_pb2, tuning_service_pb2, tuning_service_pb2_grpc

TARGET_BYTES = 4 * 1024 * 1024 - 1024
CHUNK_BYTES = 64 * 1024
GOAL_RATIO = 3.0


def dataset(target_bytes: int = TARGET_BYTES) -> bytes:
    """JSONL examples with labelled inputs, just under `target_bytes`."""
    lines, size, n = [], 0, 0
    while size < target_bytes - 400:
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


def upload_parts(content: bytes) -> Iterator[tuning_service_pb2.UploadDatasetRequest]:
    """The metadata message, then `content` in CHUNK_BYTES chunks, as a client sends them."""
    spec = dataset_pb2.Dataset(format=dataset_pb2.Dataset.JSONL, display_name="bench")
    yield tuning_service_pb2.UploadDatasetRequest(dataset=spec)
    for start in range(0, len(content), CHUNK_BYTES):
        yield tuning_service_pb2.UploadDatasetRequest(chunk=content[start : start + CHUNK_BYTES])


async def upload_s(stub: Any, metadata: Any, content: bytes) -> tuple[float, dataset_pb2.Dataset]:
    """Seconds for one whole UploadDataset call, and its answer (from a collected heap)."""
    gc.collect()
    started = time.perf_counter()
    answer = await stub.UploadDataset(upload_parts(content), metadata=metadata)
    return time.perf_counter() - started, answer


def elapsed_s(work: Callable[[], object]) -> float:
    """Seconds `work()` takes, from a collected heap: no garbage of earlier work is swept in it."""
    gc.collect()
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def bare_parse(content: bytes) -> list[Any]:
    """The baseline: every line through json.loads, nothing checked."""
    return [json.loads(line) for line in content.decode().splitlines()]


@dataclass
class Timings:
    """Seconds per run of each thing timed."""

    upload: list[float] = field(default_factory=list)
    bare_parse: list[float] = field(default_factory=list)
    parse: list[float] = field(default_factory=list)  # parse_dataset, in this process


async def timed_runs(stub: Any, metadata: Any, content: bytes, runs: int) -> Timings:
    """`runs` rounds of an upload, the bare parse and parse_dataset, taken in turn.

    Interleaving them makes all three meet the same load from whatever else the machine runs.
    """
    options = DatasetOptions(max_bytes=len(content))
    timings = Timings()
    for _ in range(runs):
        timings.upload.append((await upload_s(stub, metadata, content))[0])
        timings.bare_parse.append(elapsed_s(lambda: bare_parse(content)))
        check = partial(parse_dataset, content, DatasetFormat.JSONL, options)
        timings.parse.append(elapsed_s(check))
    return timings


async def ameasure(runs: int = 9, target_bytes: int = TARGET_BYTES) -> list[Figure]:
    """The figure, measured against a fresh bench stack; medians of `runs` after a warm-up."""
    content = dataset(target_bytes)
    async with (
        bench_stack() as stack,
        grpc.aio.insecure_channel(stack.api_target) as channel,
    ):
        stub = tuning_service_pb2_grpc.TuningServiceStub(channel)
        _, answer = await upload_s(stub, stack.metadata, content)  # warm up
        timings = await timed_runs(stub, stack.metadata, content, runs)
    return [
        figure(
            f"dataset validation ({len(content) / 2**20:.2g} MB)",
            "s",
            statistics.median(timings.upload),
            statistics.median(timings.bare_parse),
            f"ratio <= {GOAL_RATIO:g}",
            lambda ratio: ratio <= GOAL_RATIO,
            examples=answer.stats.example_count,
            bytes=answer.stats.size_bytes,
            warnings=len(answer.warnings),
            best_s=min(timings.upload),
            baseline_best_s=min(timings.bare_parse),
            # Checking alone, in this process: the rest of `ours` is transport, encoding the
            # examples and storing them.
            parse_s=statistics.median(timings.parse),
        )
    ]


def measure(runs: int = 9, target_bytes: int = TARGET_BYTES) -> list[Figure]:
    """`ameasure` on its own event loop, so it also works when called from a running one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, ameasure(runs, target_bytes)).result()


def main() -> None:
    figures = measure()
    print(table(figures))
    for each in figures:
        print(each.name, each.details)


if __name__ == "__main__":
    main()
