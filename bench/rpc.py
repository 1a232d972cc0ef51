"""Status read and create throughput, each against a bare gRPC echo of the same size.

Client, servers and Redis share the machine's cores; the baseline shares them too, in
the same run, with the same client code, concurrency and metadata.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc

from bench.figure import Figure, details, figure, table
from bench.load import LoadResult, run_load
from bench.proc import cpu_seconds
from bench.stack import bench_stack
from devstack.launcher import LocalSystem, Processes, ready_field
from tuning.v1 import tuning_job_pb2, tuning_service_pb2

CONCURRENCY = 32
ROUNDS = 3


def raw(channel: grpc.aio.Channel, method: str) -> Any:
    """A call sending and returning bytes as they are."""
    return channel.unary_unary(method, request_serializer=None, response_deserializer=None)


def job_request(examples: int = 20) -> tuning_service_pb2.CreateTuningJobRequest:
    rows = [
        tuning_job_pb2.TrainingExample(text_input=f"{n}", output=f"{n + 1}")
        for n in range(examples)
    ]
    return tuning_service_pb2.CreateTuningJobRequest(
        tuning_job=tuning_job_pb2.TuningJob(
            base_model="models/gemini-1.5-flash-001-tuning", training_examples=rows
        )
    )


@asynccontextmanager
async def echo_channel(
    stack: LocalSystem, response_bytes: int
) -> AsyncIterator[tuple[grpc.aio.Channel, int]]:
    """A channel to a new echo server, and the server's process id."""
    async with Processes(stack.work_dir) as own:
        args = ["--response-bytes", str(response_bytes)]
        echo = await own.start("echo", "bench.echo", ready="ECHO_READY", args=args)
        port = ready_field(echo.ready_line, "port")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel, echo.process.pid


async def load_on(  # noqa: PLR0917
    channel: grpc.aio.Channel,
    method: str,
    request: bytes,
    stack: LocalSystem,
    requests: int,
    server_pid: int,
) -> LoadResult:
    """Closed-loop load on `method`, with the CPU time the server process spent on it."""
    call: Any = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    cpu_before = cpu_seconds(server_pid)
    result = await run_load(
        lambda: call(request, metadata=stack.metadata),
        concurrency=CONCURRENCY,
        requests=requests,
        warmup=requests // 10,
    )
    return dataclasses.replace(result, server_cpu_s=cpu_seconds(server_pid) - cpu_before)


async def against_echo(
    stack: LocalSystem, channel: grpc.aio.Channel, method: str, request: bytes, requests: int
) -> tuple[LoadResult, LoadResult, int]:
    """`method` on the API and an echo answering as many bytes, in alternating rounds;
    the median round of each, and the answer's size."""
    size = len(await raw(channel, method)(request, metadata=stack.metadata))
    api = stack.api.child.process.pid
    async with echo_channel(stack, size) as (echo, echo_pid):
        ours, base = await alternating(
            lambda: load_on(channel, method, request, stack, requests, api),
            lambda: load_on(echo, "/bench.Echo/Echo", request, stack, requests, echo_pid),
        )
    return ours, base, size


async def alternating(
    ours: Callable[[], Awaitable[LoadResult]],
    baseline: Callable[[], Awaitable[LoadResult]],
    rounds: int = ROUNDS,
) -> tuple[LoadResult, LoadResult]:
    """Measure ours and the baseline in turns; the median round of each.

    The machine is shared: a burst of someone else's work during one measurement would
    skew a single pair. Alternating spreads such bursts over both sides.
    """
    mine, theirs = [], []
    for _ in range(rounds):
        mine.append(await ours())
        theirs.append(await baseline())
    return _median(mine), _median(theirs)


def _median(results: list[LoadResult]) -> LoadResult:
    return sorted(results, key=lambda r: r.throughput)[len(results) // 2]


async def running(channel: grpc.aio.Channel, get: bytes, stack: LocalSystem) -> None:
    """Wait until the worker has submitted the job: a RUNNING job's answer is cached."""
    call: Any = channel.unary_unary(
        "/tuning.v1.TuningService/GetTuningJob",
        request_serializer=None,
        response_deserializer=tuning_job_pb2.TuningJob.FromString,
    )
    for _ in range(600):
        if (await call(get, metadata=stack.metadata)).state == tuning_job_pb2.TuningJob.RUNNING:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("the job was not RUNNING after 60 s; is the worker up?")


async def status_read(requests: int = 8_000) -> list[Figure]:
    """GetTuningJob on a job whose status is cached, against the echo."""
    async with bench_stack(workers=1) as stack, grpc.aio.insecure_channel(stack.api_target) as ch:
        create: Any = ch.unary_unary(
            "/tuning.v1.TuningService/CreateTuningJob",
            request_serializer=None,
            response_deserializer=tuning_job_pb2.TuningJob.FromString,
        )
        job = await create(job_request().SerializeToString(), metadata=stack.metadata)
        get = tuning_service_pb2.GetTuningJobRequest(name=job.name).SerializeToString()
        await running(ch, get, stack)
        method = "/tuning.v1.TuningService/GetTuningJob"
        ours, base, size = await against_echo(stack, ch, method, get, requests)
    return [
        figure(
            "status read throughput",
            "req/s",
            ours.throughput,
            base.throughput,
            "ratio >= 0.85",
            lambda r: r >= 0.85,
            response_bytes=size,
            server_cpu_us=ours.server_cpu_us,
            echo_cpu_us=base.server_cpu_us,
        ),
        figure(
            "status read p99 latency",
            "s",
            ours.p99_s,
            base.p99_s,
            "ratio <= 1.5",
            lambda r: r <= 1.5,
        ),
    ]


async def create(requests: int = 3_000) -> list[Figure]:
    """CreateTuningJob (authenticated, validated, stored, queued), against the echo."""
    async with bench_stack() as stack, grpc.aio.insecure_channel(stack.api_target) as ch:
        request = job_request().SerializeToString()
        method = "/tuning.v1.TuningService/CreateTuningJob"
        ours, base, _ = await against_echo(stack, ch, method, request, requests)
    return [
        figure(
            "create throughput",
            "req/s",
            ours.throughput,
            base.throughput,
            "ratio >= 0.5",
            lambda r: r >= 0.5,
            request_bytes=len(request),
            server_cpu_us=ours.server_cpu_us,
            echo_cpu_us=base.server_cpu_us,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("figure", choices=["status_read", "create"])
    chosen = {"status_read": status_read, "create": create}[parser.parse_args().figure]
    figures = asyncio.run(chosen())
    print(table(figures))
    print(details(figures))


if __name__ == "__main__":
    main()
