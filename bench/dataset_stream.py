"""A 1 GB JSONL dataset through UploadDataset, against parsing its lines with orjson.

`ours` is the upload's throughput as a client sees it, in MB/s: the metadata message, then
the file from disk in 1 MiB chunks over a real channel to the real API process, which
checks it in its checking processes as it streams and writes it to the emulator's Cloud
Storage (a resumable upload), until the answer. `baseline` is the throughput of a bare
`orjson.loads` of every line of the same file, read from disk in this process. The
figure's ratio is ours over the baseline (goal: >= 0.5). A second figure is the API's
peak resident memory growth during the upload, the API process and its checking
processes together, over what they held just before it (goal: <= 64 MB).

Two settings differ from the defaults: the tenant
receive budget is off (TUNING_TENANT_RECEIVE_BYTES_PER_S=0: it slows one tenant's uploads
to 16 MiB/s on purpose), and a tenant may use both checking processes at once
(TUNING_TENANT_MAX_VALIDATIONS=2), as an operator expecting large uploads would set. The
details give each process's CPU seconds during the upload: on a 2-core machine the
pipeline (client, API, checking processes, emulator) is CPU-bound.

`DATASET_STREAM_MB` sets the file's size in MB (default 1000: Vertex AI's 1 GB).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import orjson

from bench.figure import Figure, figure, table
from bench.proc import cpu_seconds, memory_bytes, tree_cpu_seconds, tree_rss_bytes
from bench.stack import bench_stack
from tuning.v1 import dataset_pb2, tuning_service_pb2, tuning_service_pb2_grpc

CHUNK_BYTES = 1024 * 1024
UNIQUE_BYTES = 32 * 1024 * 1024
"""The file repeats this many bytes of distinct examples (the warnings look at 8 MB)."""
GOAL_RATIO = 0.5
GOAL_GROWTH_MB = 64.0
SAMPLE_S = 0.05
MB = 1e6


def write_dataset(path: Path, total_bytes: int) -> int:
    """A JSONL file of labelled examples of about 1 KB each (a 1 GB file holds about
    Vertex AI's most, 1M examples), of about `total_bytes`; its size."""
    lines, size, n = [], 0, 0
    while size < min(UNIQUE_BYTES, total_bytes):
        line = orjson.dumps(
            {
                "text_input": f"question: what follows {n}?\ncontext: counting, example {n}",
                "output": f"{n + 1}, which is the number after {n}. " * 24,
            }
        )
        lines.append(line)
        size += len(line) + 1
        n += 1
    unique = b"\n".join(lines) + b"\n"
    with path.open("wb") as out:
        for _ in range(max(1, total_bytes // len(unique))):
            out.write(unique)
    return path.stat().st_size


def file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(CHUNK_BYTES):
            yield chunk


def bare_parse_s(path: Path) -> float:
    """Seconds to orjson.loads every line of the file, read in chunks as the upload reads it."""
    started, rest = time.perf_counter(), b""
    for chunk in file_chunks(path):
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        for line in lines:
            if line:
                orjson.loads(line)
    if rest:
        orjson.loads(rest)
    return time.perf_counter() - started


def upload_parts(path: Path) -> Iterator[tuning_service_pb2.UploadDatasetRequest]:
    spec = dataset_pb2.Dataset(format=dataset_pb2.Dataset.JSONL, display_name="stream bench")
    yield tuning_service_pb2.UploadDatasetRequest(dataset=spec)
    for chunk in file_chunks(path):
        yield tuning_service_pb2.UploadDatasetRequest(chunk=chunk)


class PeakRss:
    """The largest resident size of a process tree, sampled every SAMPLE_S."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PeakRss:
        self.peak = tree_rss_bytes(self._pid)
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.peak = max(self.peak, tree_rss_bytes(self._pid))

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, tree_rss_bytes(self._pid))
            await asyncio.sleep(SAMPLE_S)


async def upload(stub: Any, metadata: Any, path: Path) -> tuple[float, dataset_pb2.Dataset]:
    started = time.perf_counter()
    answer = await stub.UploadDataset(upload_parts(path), metadata=metadata)
    return time.perf_counter() - started, answer


async def ameasure() -> list[Figure]:
    total_bytes = int(float(os.environ.get("DATASET_STREAM_MB", "1000")) * MB)
    with tempfile.TemporaryDirectory(prefix="dataset-stream-") as directory:
        path = Path(directory) / "dataset.jsonl"
        size = write_dataset(path, total_bytes)
        small = Path(directory) / "small.jsonl"
        write_dataset(small, 8 * 2**20)
        async with (
            bench_stack(
                upload_max_s=3600.0,
                upload_idle_timeout_s=60.0,
                tenant_receive_bytes_per_s=0,
                tenant_max_validations=2,
            ) as stack,
            grpc.aio.insecure_channel(stack.api_target) as channel,
        ):
            stub = tuning_service_pb2_grpc.TuningServiceStub(channel)
            await upload(stub, stack.metadata, small)  # warm up: the checking processes start
            api_pid = stack.pids["api"]
            before = tree_rss_bytes(api_pid)
            hwm_before = memory_bytes(api_pid)["VmHWM"]
            cpu_before = _cpu(stack.pids)
            async with PeakRss(api_pid) as rss:
                upload_s, answer = await upload(stub, stack.metadata, path)
            api_hwm = memory_bytes(api_pid)["VmHWM"]
            cpu = {name: round(s - cpu_before[name], 2) for name, s in _cpu(stack.pids).items()}
        baseline_s = bare_parse_s(path)
    growth_mb = (rss.peak - before) / MB
    return [
        figure(
            f"dataset stream ({size / 1e9:.2g} GB JSONL), throughput",
            "MB/s",
            size / upload_s / MB,
            size / baseline_s / MB,
            f"ratio >= {GOAL_RATIO:g}",
            lambda ratio: ratio >= GOAL_RATIO,
            examples=answer.stats.example_count,
            bytes=answer.stats.size_bytes,
            upload_s=round(upload_s, 2),
            **{f"cpu_s_{name}": spent for name, spent in cpu.items()},
            bare_parse_s=round(baseline_s, 2),
        ),
        figure(
            "dataset stream: API peak RSS growth",
            "MB",
            growth_mb,
            GOAL_GROWTH_MB,
            f"<= {GOAL_GROWTH_MB:g} MB",
            lambda ratio: ratio <= 1.0,
            api_rss_before_mb=round(before / MB, 1),
            api_process_peak_mb=round(api_hwm / MB, 1),
            api_process_peak_before_mb=round(hwm_before / MB, 1),
            api_rss_peak_mb=round(rss.peak / MB, 1),
        ),
    ]


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each process of the stack (with its children: the API's
    checking processes), and of this one, the client."""
    spent = {name: tree_cpu_seconds(pid) for name, pid in pids.items()}
    alone = {f"{name}_process": cpu_seconds(pid) for name, pid in pids.items() if name == "api"}
    return spent | alone | {"client": time.process_time()}


def main() -> None:
    figures = asyncio.run(ameasure())
    print(table(figures))
    for each in figures:
        print(each.name, each.details)


if __name__ == "__main__":
    main()
