"""Noisy neighbour: one tenant attacks the API while another reads its own job.

The victim reads its one job with GetTuningJob, one call at a time, for `seconds`
quietly and then for `seconds` while the attacker runs the worst of the attacks issue 12
names, all at once, from a process of its own at the lowest CPU priority (in production
the attacker is another team's machine; here it may only use the CPU the API, Redis and
the victim leave): filters built to make a parser backtrack, 1 MB names, 100,000
labels, unauthenticated creates as large as the server lets in, 4 MB invalid uploads,
upload streams that never finish, and crafted page tokens. Two figures:

- the victim's p99 read latency under attack against its quiet p99, measured in the
  same run (goal: at most 2x);
- the API's resident memory at its peak during the attack, the API process and any
  children it has (a validation pool) together, against the pod's memory limit in
  deploy/base/api-deployment.yaml (goal: under it).

`python -m bench.noisy_neighbour` runs it alone; `attack` is the attacker's entry point.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import secrets
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import yaml

from bench.figure import Figure, details, figure, table
from bench.proc import tree_rss_bytes
from bench.rpc import job_request, raw
from bench.stack import bench_stack
from core.runtime.settings import Settings
from tuning.v1 import dataset_pb2, tuning_service_pb2, tuning_service_pb2_grpc

ATTACKER = "noisy-team"
API_DEPLOYMENT = Path(__file__).resolve().parent.parent / "deploy/base/api-deployment.yaml"
SAMPLE_S = 0.05
READ_TIMEOUT_S = 10.0
TOKEN_ENV = "NOISY_NEIGHBOUR_TOKEN"  # noqa: S105 (a variable's name: the token stays off argv)
ONLY_ENV = "NOISY_NEIGHBOUR_ONLY"
"""Set to one attack's name to run it alone (for finding which one hurts)."""
CRAFTED_TOKEN = "eyJzIjogSW5maW5pdHl9"  # noqa: S105 (base64 of {"s": Infinity}, not a secret)
UNITS = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}


def pod_memory_limit_bytes(path: Path = API_DEPLOYMENT) -> int:
    """The API container's memory limit, as the Deployment sets it (e.g. 512Mi)."""
    deployment = yaml.safe_load(path.read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    text = str(container["resources"]["limits"]["memory"])
    for suffix, factor in UNITS.items():
        if text.endswith(suffix):
            return int(float(text.removesuffix(suffix)) * factor)
    return int(text)


async def victim_reads(stub: Any, name: str, metadata: Any, seconds: float) -> list[float]:
    """Latencies of back-to-back GetTuningJob calls for `seconds`."""
    request = tuning_service_pb2.GetTuningJobRequest(name=name)
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        try:
            await stub.GetTuningJob(request, metadata=metadata, timeout=READ_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
        # A read that timed out counts as its timeout: the figure fails, it is not lost.
        latencies.append(time.perf_counter() - started)
    return latencies


class PeakRss:
    """Samples a process tree's resident memory every SAMPLE_S, quiet and loud alike: the
    sampling runs in the victim's process, so it must cost the victim the same in both
    phases, or it would show up as the attack's doing. `peak` counts from `reset`."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self.peak = 0
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._sample())

    def reset(self) -> None:
        self.peak = tree_rss_bytes(self._pid)

    async def stop(self) -> int:
        self._stop.set()
        await self._task
        return max(self.peak, tree_rss_bytes(self._pid))

    async def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_bytes(self._pid))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), SAMPLE_S)


def p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100)[98]


async def measure(seconds: float = 8.0) -> list[Figure]:
    async with (
        bench_stack(workers=1, extra_tenants=[ATTACKER]) as stack,
        grpc.aio.insecure_channel(stack.api_target) as channel,
    ):
        stub = tuning_service_pb2_grpc.TuningServiceStub(channel)
        job = await stub.CreateTuningJob(job_request(), metadata=stack.metadata)
        rss = PeakRss(stack.pids["api"])
        await victim_reads(stub, job.name, stack.metadata, 1.0)  # warm-up
        quiet = await victim_reads(stub, job.name, stack.metadata, seconds)
        rss.reset()
        attacker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.noisy_neighbour",
            "attack",
            stack.api_target,
            str(seconds + 2.0),
            env=os.environ | {TOKEN_ENV: stack.tenant_files.tenants[ATTACKER].token},
            preexec_fn=_lowest_priority,
            stdout=asyncio.subprocess.PIPE,
        )
        await asyncio.sleep(1.0)  # let every attack get going
        loud = await victim_reads(stub, job.name, stack.metadata, seconds)
        sent, _ = await attacker.communicate()
        peak = await rss.stop()
    calls = {f"attacker_{name}_calls": float(n) for name, n in json.loads(sent or b"{}").items()}
    limit = pod_memory_limit_bytes()
    return [
        figure(
            "noisy neighbour: victim p99 read",
            "s",
            p99(loud),
            p99(quiet),
            "ratio <= 2",
            lambda r: r <= 2.0,
            quiet_p50_s=statistics.median(quiet),
            attacked_p50_s=statistics.median(loud),
            quiet_reads=len(quiet),
            attacked_reads=len(loud),
        ),
        figure(
            "noisy neighbour: API peak RSS",
            "MB",
            peak / 1e6,
            limit / 1e6,
            "ratio < 1.0",
            lambda r: r < 1.0,
            attacker_exit_code=float(attacker.returncode or 0),
            **calls,
        ),
    ]


def _lowest_priority() -> None:
    """The attacker runs at nice 19: in production it is another team's machine, so here
    it may use only the CPU the API, Redis and the victim leave."""
    os.nice(19)


# The attacker's side, run in its own process.

Attack = Callable[[], Awaitable[object]]


async def attack(target: str, token: str, seconds: float, only: str = "") -> dict[str, int]:
    """Run every attack at once for `seconds`; every refusal is expected and ignored.
    Returns how many calls each attack made.

    Each attack's request is built once and sent as bytes again and again: a real
    attacker's machine is its own, so the attacker here spends as little as it can of the
    CPU it shares with the API, and the figure measures what the API does with them.
    """
    metadata = (("authorization", f"Bearer {token}"),)
    options = [("grpc.max_send_message_length", -1)]
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        stub = tuning_service_pb2_grpc.TuningServiceStub(channel)
        create, get, list_jobs = (
            raw(channel, f"/tuning.v1.TuningService/{name}")
            for name in ("CreateTuningJob", "GetTuningJob", "ListTuningJobs")
        )
        names = itertools.cycle(
            tuning_service_pb2.GetTuningJobRequest(
                name="tuningJobs/" + secrets.token_hex(500_000)
            ).SerializeToString()
            for _ in range(8)
        )
        backtracking = tuning_service_pb2.ListTuningJobsRequest(
            filter="state = RUNNING" + " " * 150_000 + "x"
        ).SerializeToString()
        crafted = tuning_service_pb2.ListTuningJobsRequest(
            page_token=CRAFTED_TOKEN
        ).SerializeToString()
        labels = _many_labels().SerializeToString()
        largest = Settings().grpc_max_message_bytes - 1024  # what the server lets in
        unauthenticated = os.urandom(largest)
        invalid_upload = _invalid_upload()
        every: dict[str, Attack] = {
            "filter": lambda: list_jobs(backtracking, metadata=metadata),
            "long_name": lambda: get(next(names), metadata=metadata),
            "labels": lambda: create(labels, metadata=metadata),
            "unauthenticated": lambda: create(unauthenticated),
            "invalid_upload": lambda: stub.UploadDataset(iter(invalid_upload), metadata=metadata),
            "invalid_upload_2": lambda: stub.UploadDataset(iter(invalid_upload), metadata=metadata),
            "page_token": lambda: list_jobs(crafted, metadata=metadata),
        }
        attacks = {name: a for name, a in every.items() if not only or name.startswith(only)}
        stalled = 0 if only and only != "stalled" else 50
        async with _stalled_uploads(stub, metadata, count=stalled):
            deadline = time.monotonic() + seconds
            counts = await asyncio.gather(*(_repeat(a, deadline) for a in attacks.values()))
    return dict(zip(attacks, counts, strict=True))


async def _repeat(attack_once: Attack, deadline: float) -> int:
    calls = 0
    while time.monotonic() < deadline:
        calls += 1
        with contextlib.suppress(grpc.aio.AioRpcError):
            await attack_once()
    return calls


def _many_labels() -> tuning_service_pb2.CreateTuningJobRequest:
    request = job_request()
    request.tuning_job.labels.update({f"k{n}": "v" for n in range(100_000)})
    return request


def _invalid_upload() -> list[tuning_service_pb2.UploadDatasetRequest]:
    """A 4 MB upload whose every line is refused (its output must be text)."""
    spec = dataset_pb2.Dataset(format=dataset_pb2.Dataset.Format.JSONL)
    line = b'{"text_input": "' + b"x" * 1000 + b'", "output": 7}\n'
    chunk = tuning_service_pb2.UploadDatasetRequest(chunk=line * 1000)
    return [tuning_service_pb2.UploadDatasetRequest(dataset=spec), *[chunk] * 4]


@contextlib.asynccontextmanager
async def _stalled_uploads(stub: Any, metadata: Any, *, count: int) -> AsyncIterator[None]:
    """`count` UploadDataset streams that send their metadata, then nothing."""
    never = asyncio.Event()

    async def stalled() -> AsyncIterator[tuning_service_pb2.UploadDatasetRequest]:
        spec = dataset_pb2.Dataset(format=dataset_pb2.Dataset.Format.JSONL)
        yield tuning_service_pb2.UploadDatasetRequest(dataset=spec)
        await never.wait()

    calls = [stub.UploadDataset(stalled(), metadata=metadata) for _ in range(count)]
    try:
        yield
    finally:
        for call in calls:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("attack")
    run.add_argument("target")
    run.add_argument("seconds", type=float)
    parser.add_argument("--seconds", type=float, default=8.0, help="each phase's length")
    args = parser.parse_args()
    if args.command == "attack":
        only = os.environ.get(ONLY_ENV, "")
        counts = asyncio.run(attack(args.target, os.environ[TOKEN_ENV], args.seconds, only))
        print(json.dumps(counts))
        return
    figures = asyncio.run(measure(args.seconds))
    print(table(figures))
    print(details(figures))


if __name__ == "__main__":
    main()
