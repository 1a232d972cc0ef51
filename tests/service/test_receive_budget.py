"""Each tenant's request bytes per replica (service.receive_budget), through a real server.

A tenant that sends more bytes than its rate is refused on its metadata, before its next
request is read, with RetryInfo and a QuotaFailure naming it; its uploads are slowed to the
rate; another tenant reads on untouched.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2

from core.errors import ReceiveRateExceeded
from service.receive_budget import ReceiveBudget
from tests.clocks import FakeClock
from tests.conftest import SystemFactory
from tests.rpc_errors import detail, reason
from tuning.v1 import tuning_service_pb2

MB = 1024 * 1024
pytestmark = pytest.mark.timeout(60)


def test_a_tenant_in_debt_is_refused_until_the_rate_pays_it() -> None:
    clock = FakeClock(0.0)
    budget = ReceiveBudget(1000, 2000, clock=clock)
    budget.admit("team-a")
    budget.charge("team-a", 2500)  # one message may take it into debt
    with pytest.raises(ReceiveRateExceeded) as refused:
        budget.admit("team-a")
    assert refused.value.retry_after_s == pytest.approx(0.5)
    assert refused.value.subject == "tenant:team-a"
    budget.admit("team-b")  # a bucket of its own
    clock.advance(0.6)
    budget.admit("team-a")
    clock.advance(100)
    budget.charge("team-a", 2000)  # the burst is the most it saves up
    with pytest.raises(ReceiveRateExceeded):
        budget.charge("team-a", 1)
        budget.admit("team-a")


def test_no_rate_no_limit() -> None:
    budget = ReceiveBudget(0, 1)
    budget.charge("team-a", 10**12)
    budget.admit("team-a")


async def test_a_tenant_over_its_rate_is_refused_before_its_request_is_read(
    make_system: SystemFactory,
) -> None:
    # Without the refusal brake, whose waits for these refusals would let the rate pay.
    async with make_system(
        tenant_receive_bytes_per_s=MB // 8, grpc_max_message_bytes=2 * MB, tenant_refusals_per_s=0
    ) as system:
        big = tuning_service_pb2.GetTuningJobRequest(name="tuningJobs/" + "j" * MB)
        codes = []
        # 6 MB against a burst of 4 MB: refused by size, then (after MAX_WAIT_S held back:
        # the debt takes 8 s to pay) by rate.
        for _ in range(6):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await system.stub.GetTuningJob(big, metadata=system.auth())
            codes.append(reason(refused.value))
        assert codes[:4] == ["REQUEST_TOO_LARGE"] * 4
        assert codes[-1] == "RECEIVE_RATE_EXCEEDED"
        spent = refused.value
        assert spent.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert detail(spent, error_details_pb2.QuotaFailure).violations[0].subject == (
            "tenant:team-a"
        )
        assert detail(spent, error_details_pb2.RetryInfo).retry_delay.ToTimedelta().seconds >= 1
        # Refused on its metadata: a call whose request never comes is answered all the same.
        never = asyncio.Event()

        async def no_request() -> AsyncIterator[bytes]:
            await never.wait()
            yield b""  # pragma: no cover - never reached

        get: Any = grpc.aio.insecure_channel(f"127.0.0.1:{system.api.port}")
        async with get as channel:
            call: Any = channel.stream_unary("/tuning.v1.TuningService/GetTuningJob")
            with pytest.raises(grpc.aio.AioRpcError) as unread:
                await call(no_request(), metadata=system.auth(), timeout=5)
            assert reason(unread.value) == "RECEIVE_RATE_EXCEEDED", unread.value
        # Another tenant is untouched.
        job = await system.create(tenant="team-b")
        assert (await system.get(job.name, tenant="team-b")).name == job.name


async def test_an_upload_over_the_rate_is_slowed_not_refused(make_system: SystemFactory) -> None:
    async with make_system(
        tenant_receive_bytes_per_s=MB // 2, grpc_max_message_bytes=MB // 2
    ) as system:
        row = json.dumps({"text_input": "q" * 400, "output": "a"}) + "\n"
        content = (row * 4000).encode()  # 1.6 MB: a burst of 1 MB, then half a MB a second
        assert len(content) > 1.5 * MB
        started = time.monotonic()
        dataset = await system.upload(content, chunk_bytes=64 * 1024)
        took_s = time.monotonic() - started
        assert dataset.name.startswith("datasets/")
        assert took_s >= (len(content) - MB) / (MB // 2) * 0.8


async def test_the_express_facades_bodies_spend_the_same_budget(make_system: SystemFactory) -> None:
    async with make_system(
        tenant_receive_bytes_per_s=MB // 8,
        grpc_max_message_bytes=2 * MB,
        tenant_refusals_per_s=0,
        express_listen="127.0.0.1:0",
    ) as system:
        url = f"http://127.0.0.1:{system.api.express_port}"
        key = {"x-goog-api-key": system.tenants["team-a"].token}
        junk = b"{" + b" " * (19 * MB // 10)  # read whole, charged, then refused as not JSON
        async with httpx.AsyncClient(base_url=url, headers=key, timeout=30) as http:
            statuses = [(await http.post("/v1beta1/tuningJobs", content=junk)).status_code]
            statuses += [(await http.post("/v1beta1/tuningJobs", content=junk)).status_code]
            statuses += [(await http.post("/v1beta1/tuningJobs", content=junk)).status_code]
            # 5.7 MB against a burst of 4 MB (13 s to pay): its next body is not read...
            spent = await http.post("/v1beta1/tuningJobs", content=b"{}")
        assert statuses == [400, 400, 400]
        assert spent.status_code == 429
        assert spent.json()["error"]["details"][0]["reason"] == "RECEIVE_RATE_EXCEEDED"
        # ...nor its next RPC: one budget per tenant per replica.
        small = tuning_service_pb2.GetTuningJobRequest(name="tuningJobs/j" + "a" * 19)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await system.stub.GetTuningJob(small, metadata=system.auth())
        assert reason(refused.value) == "RECEIVE_RATE_EXCEEDED"
        job = await system.create(tenant="team-b")  # another tenant is untouched
        assert (await system.get(job.name, tenant="team-b")).name == job.name
