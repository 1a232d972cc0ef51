"""How long a create and a cancel take to reach the upstream while polls saturate its budget.

Run inside the fleet figure's stack (bench/fleet.py), once every job is being polled more
often than the budget allows: one new job at a time is created and timed from the
CreateTuningJob answer until GetTuningJob shows it RUNNING (the upstream has made it);
then running jobs are cancelled one at a time and timed from the CancelTuningJob answer
until they show CANCELLED (the upstream has stopped them). Creates and cancels go ahead of
polls for the fleet's budget (core.upstream_http.urgent), so both stay within BOUND_S
however saturated the budget; the polls absorb the shortage.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from typing import Any

import grpc

from bench.coalescing import SERVICE, create_jobs, get_job_call
from bench.figure import Figure, figure
from tuning.v1 import tuning_job_pb2, tuning_service_pb2

SAMPLES = 10
GAP_S = 0.3
BOUND_S = 3.0
"""The stated bound on both latencies' p99 under a saturated budget."""
POLL_S = 0.05
State = tuning_job_pb2.TuningJob.State


async def until_state(
    channel: grpc.aio.Channel, metadata: Any, name: str, wanted: State.ValueType
) -> float:
    """Seconds until the job shows `wanted` through the API."""
    get, started = get_job_call(channel), time.monotonic()
    request = tuning_service_pb2.GetTuningJobRequest(name=name)
    async with asyncio.timeout(60.0):
        while (await get(request, metadata=metadata)).state != wanted:  # noqa: ASYNC110
            await asyncio.sleep(POLL_S)  # (polling the API, as a caller would, is the point)
    return time.monotonic() - started


async def create_latencies_s(channel: grpc.aio.Channel, metadata: Any) -> list[float]:
    latencies = []
    for _ in range(SAMPLES):
        [name] = await create_jobs(channel, metadata, 1)
        latencies.append(
            await until_state(channel, metadata, name, tuning_job_pb2.TuningJob.RUNNING)
        )
        await asyncio.sleep(GAP_S)
    return latencies


async def cancel_latencies_s(
    channel: grpc.aio.Channel, metadata: Any, names: Sequence[str]
) -> list[float]:
    cancel: Any = channel.unary_unary(
        SERVICE + "CancelTuningJob",
        request_serializer=tuning_service_pb2.CancelTuningJobRequest.SerializeToString,
        response_deserializer=tuning_job_pb2.TuningJob.FromString,
    )
    latencies = []
    for name in names[:SAMPLES]:
        await cancel(tuning_service_pb2.CancelTuningJobRequest(name=name), metadata=metadata)
        latencies.append(await until_state(channel, metadata, name, State.CANCELLED))
        await asyncio.sleep(GAP_S)
    return latencies


def p99(samples: Sequence[float]) -> float:
    """The 99th percentile (of few samples, the largest)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def priority_figures(creates_s: list[float], cancels_s: list[float]) -> list[Figure]:
    return [
        _latency_figure("create to upstream p99 (saturated budget)", creates_s),
        _latency_figure("cancel to upstream p99 (saturated budget)", cancels_s),
    ]


def _latency_figure(name: str, samples_s: list[float]) -> Figure:
    return figure(
        name,
        "s",
        p99(samples_s),
        BOUND_S,
        f"<= {BOUND_S:g} s",
        lambda ratio: ratio <= 1.0,
        p50_s=statistics.median(samples_s),
        samples=float(len(samples_s)),
    )
