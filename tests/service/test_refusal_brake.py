"""The refusal brake (service.refusal_brake): a much-refused caller is answered later.

Through a real server: once a tenant has spent its burst of refusals, its next call
waits out the debt before it is read, and answers as it would have; another tenant and
the health check are not held; calls without a token share one brake of their own.
"""

from __future__ import annotations

import time
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from core.domain.job import JOB_NAME_PREFIX, new_job_id
from service.refusal_brake import (
    MAX_WAIT_S,
    REFUSAL_BYTES,
    UNAUTHENTICATED,
    UNAUTHENTICATED_BURST,
    UNAUTHENTICATED_PER_S,
    RefusalBrake,
)
from service.token_buckets import TokenBuckets
from tests.clocks import FakeClock
from tests.conftest import SystemFactory
from tests.rpc_errors import reason
from tuning.v1 import tuning_service_pb2

pytestmark = pytest.mark.timeout(60)
HELD_S = 0.5
"""A call counts as held back if it took this long: the debt it meets is a whole second,
and an unheld call on this server takes milliseconds."""


def test_buckets_refill_at_their_rate_up_to_the_burst_and_cap_their_debt() -> None:
    clock = FakeClock(0.0)
    buckets = TokenBuckets(2.0, 4, max_debt=6, clock=clock)
    buckets.take("a", 4)
    assert buckets.debt_s("a") == 0.0
    buckets.take("a", 3)
    assert buckets.debt_s("a") == pytest.approx(1.5)
    buckets.take("a", 100)
    assert buckets.debt_s("a") == pytest.approx(3.0)  # 6 tokens of debt at 2 a second
    clock.advance(3.0)
    assert buckets.debt_s("a") == 0.0
    assert buckets.debt_s("b") == 0.0  # never seen, never in debt


def test_only_a_callers_mistakes_spend_its_refusals() -> None:
    clock = FakeClock(0.0)
    brake = RefusalBrake(1.0, 1, clock=clock)
    for code in (None, grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.UNAVAILABLE):
        brake.ended("team-a", code, 0)
    assert brake.turn("team-a") is None
    brake.ended("", grpc.StatusCode.NOT_FOUND, 0)  # no principal: not charged here
    brake.ended("team-a", grpc.StatusCode.NOT_FOUND, 0)
    assert brake.turn("team-a") is None  # the burst
    brake.ended("team-a", grpc.StatusCode.INVALID_ARGUMENT, 0)
    assert brake.wait_s("team-a") == pytest.approx(1.0)
    assert brake.wait_s("team-b") == 0.0
    brake.ended("team-c", grpc.StatusCode.INVALID_ARGUMENT, REFUSAL_BYTES)  # 1 + 1 of a burst of 1
    assert brake.wait_s("team-c") == pytest.approx(1.0)
    clock.advance(1.0)
    assert brake.turn("team-a") is None


async def test_a_refused_request_costs_more_the_more_bytes_it_carried(
    make_system: SystemFactory,
) -> None:
    async with make_system(tenant_refusals_per_s=1.0, tenant_refusal_burst=3) as system:
        # One refused 256 KiB name costs 1 + 4 refusals: past the burst of 3 at once.
        big = tuning_service_pb2.GetTuningJobRequest(name="tuningJobs/" + "j" * REFUSAL_BYTES * 4)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await system.stub.GetTuningJob(big, metadata=system.auth())
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError):
            await system.stub.GetTuningJob(big, metadata=system.auth())
        assert time.monotonic() - started >= HELD_S


async def test_the_unauthenticated_share_one_tighter_brake_and_the_wait_is_capped() -> None:
    clock = FakeClock(0.0)
    brake = RefusalBrake(100.0, 100, clock=clock)
    for _ in range(UNAUTHENTICATED_BURST):
        assert brake.unauthenticated() is None
    waiting = brake.unauthenticated()
    assert waiting is not None
    await waiting  # a real half second's sleep: one refusal's debt at 2 a second
    assert brake.wait_s(UNAUTHENTICATED) == pytest.approx(1 / UNAUTHENTICATED_PER_S)
    waits_s = [brake.charge_unauthenticated() for _ in range(100)]
    assert waits_s[-1] == brake.wait_s(UNAUTHENTICATED) == MAX_WAIT_S
    assert brake.wait_s("team-a") == 0.0  # a known principal never waits on strangers
    clock.advance(MAX_WAIT_S + 0.01)  # the debt never exceeds MAX_WAIT_S of waiting
    assert brake.turn(UNAUTHENTICATED) is None


async def test_a_much_refused_tenant_waits_and_others_do_not(make_system: SystemFactory) -> None:
    async with make_system(tenant_refusals_per_s=1.0, tenant_refusal_burst=3) as system:
        never_made = new_job_id("team-a", "never-made")
        missing = tuning_service_pb2.GetTuningJobRequest(name=f"{JOB_NAME_PREFIX}{never_made}")
        for _ in range(4):  # the burst, then one second of debt
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await system.stub.GetTuningJob(missing, metadata=system.auth())
            assert refused.value.code() == grpc.StatusCode.NOT_FOUND
        job = await system.create(tenant="team-b")
        started = time.monotonic()
        assert (await system.get(job.name, tenant="team-b")).name == job.name
        health: Any = health_pb2_grpc.HealthStub(system.channel)  # typed for sync channels
        await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert time.monotonic() - started < HELD_S
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as held:
            await system.stub.GetTuningJob(missing, metadata=system.auth())
        assert time.monotonic() - started >= HELD_S
        assert held.value.code() == grpc.StatusCode.NOT_FOUND  # the same answer, later


async def test_calls_without_a_token_are_refused_more_slowly(make_system: SystemFactory) -> None:
    async with make_system(tenant_refusals_per_s=1.0, tenant_refusal_burst=3) as system:
        request = tuning_service_pb2.ListTuningJobsRequest()
        for _ in range(UNAUTHENTICATED_BURST + 1):  # the burst, then half a second of debt
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await system.stub.ListTuningJobs(request)
            assert reason(refused.value) == "TOKEN_INVALID"
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError):
            await system.stub.ListTuningJobs(request)
        # A closed loop pays one refusal's debt per call: 1 / UNAUTHENTICATED_PER_S.
        assert time.monotonic() - started >= 0.8 / UNAUTHENTICATED_PER_S
        started = time.monotonic()
        await system.stub.ListTuningJobs(request, metadata=system.auth())
        assert time.monotonic() - started < HELD_S
