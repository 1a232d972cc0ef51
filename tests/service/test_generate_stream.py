"""StreamGenerateContent: each provider's chunks, sent as they come, join to the unary
answer; the request is bounded exactly as GenerateContent's; a caller's cancel and its
deadline end the upstream stream; the upstream's cut and its 429 come back as the status
they mean."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2

from tests.conftest import SystemFactory
from tests.e2e.test_generate import trained
from tests.e2e.test_vertex_tenant import vertex_fields
from tests.harness import VERTEX_TENANT, System
from tests.rpc_errors import detail, reason, violations
from tests.service.test_generate import BOUNDS, peers_of, prompt
from tuning.v1 import generation_service_pb2 as gen
from tuning.v1 import generation_service_pb2_grpc

pytestmark = pytest.mark.timeout(60)
GEMINI_STREAM = "tunedModels.streamGenerateContent"
QUESTION = "Please count slowly from one to twenty, one number at a time, and then stop."
"""Long enough that the emulator's reply (it echoes it) comes in several chunks."""
Chunks = list[gen.GenerateContentResponse]


def stub_of(system: System) -> generation_service_pb2_grpc.GenerationServiceAsyncStub:
    return generation_service_pb2_grpc.GenerationServiceStub(system.channel)


async def stream(
    system: System, request: gen.GenerateContentRequest, tenant: str = "team-a", **call: Any
) -> tuple[Chunks, grpc.aio.AioRpcError | None]:
    """The chunks the call answered, and the error that ended it (None: it ended OK)."""
    chunks: Chunks = []
    try:
        async for chunk in stub_of(system).StreamGenerateContent(
            request, metadata=system.auth(tenant), **call
        ):
            chunks.append(chunk)
    except grpc.aio.AioRpcError as error:
        return chunks, error
    return chunks, None


def text_of(*answers: gen.GenerateContentResponse) -> str:
    """The first candidate's text, over the answers (chunks) given."""
    return "".join(part.text for a in answers for part in a.candidates[0].content.parts)


@pytest.fixture
async def succeeded(system: System) -> str:
    """A SUCCEEDED Gemini API job of team-a's; the worker is stopped after (so that no
    connection of its comes or goes while a test watches the emulator's)."""
    job = await trained(system)
    await system.stop_worker()
    return job.name


@pytest.fixture
async def emulator(system: System) -> AsyncIterator[httpx.AsyncClient]:
    """One client of the emulator's own endpoints, open the whole test: its connection
    stays, so only the API's come and go."""
    async with httpx.AsyncClient(base_url=system.emulator_url, timeout=5.0) as client:
        yield client


async def faults(emulator: httpx.AsyncClient, **rule: Any) -> None:
    rules = [{"route": GEMINI_STREAM, **rule}]
    (await emulator.post("/_emulator/faults", json={"rules": rules})).raise_for_status()


def emulator_port(system: System) -> int:
    port = urlsplit(system.emulator_url).port
    assert port is not None
    return port


async def closed_within(port: int, open_peers: set[int], timeout_s: float) -> None:
    """Wait until one of the connections `open_peers` to the emulator has closed."""
    async with asyncio.timeout(timeout_s):
        while not open_peers - peers_of(port):  # noqa: ASYNC110 (polling is the point)
            await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    ("tenant", "fields", "route"),
    [
        ("team-a", {}, GEMINI_STREAM),
        (VERTEX_TENANT, vertex_fields(), "endpoints.streamGenerateContent"),
    ],
    ids=["gemini_api", "vertex_ai"],
)
async def test_each_provider_streams_the_unary_answer_in_chunks(
    system: System, tenant: str, fields: dict[str, Any], route: str
) -> None:
    job = await trained(system, tenant, **fields)
    request = prompt(job.name, QUESTION)
    whole = await stub_of(system).GenerateContent(request, metadata=system.auth(tenant))

    chunks, error = await stream(system, request, tenant)

    assert error is None
    assert len(chunks) >= 3
    assert text_of(*chunks) == text_of(whole)
    assert QUESTION[:40] in text_of(*chunks)
    *first, last = chunks
    assert not any(c.HasField("usage_metadata") for c in first)
    assert last.usage_metadata == whole.usage_metadata
    assert last.candidates[0].finish_reason == gen.Candidate.STOP
    assert {c.model for c in chunks} == {job.name}
    assert await system.upstream_requests(route) == 1


@pytest.mark.parametrize("method", ["GenerateContent", "StreamGenerateContent"])
async def test_both_methods_refuse_each_bound_naming_its_field(
    api_without_brake: System, method: str
) -> None:
    call = getattr(stub_of(api_without_brake), method)
    for make, field in BOUNDS:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            answer = call(make(), metadata=api_without_brake.auth())
            if method == "StreamGenerateContent":
                _ = [chunk async for chunk in answer]
            else:
                await answer

        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert field in violations(caught.value), (field, violations(caught.value))


async def test_a_job_that_has_not_succeeded_is_refused_before_any_upstream_call(
    api_without_brake: System,
) -> None:
    job = await api_without_brake.create()

    chunks, error = await stream(api_without_brake, prompt(job.name))

    assert chunks == []
    assert error is not None and error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert await api_without_brake.upstream_requests(GEMINI_STREAM) == 0


async def test_a_cancel_after_the_first_chunk_ends_the_upstream_stream(
    system: System, succeeded: str, emulator: httpx.AsyncClient
) -> None:
    await faults(emulator, chunk_delay_s=5.0)
    port = emulator_port(system)
    call = stub_of(system).StreamGenerateContent(
        prompt(succeeded, QUESTION), metadata=system.auth()
    )
    started = time.monotonic()

    first = await call.read()
    arrived_s = time.monotonic() - started
    open_peers = peers_of(port)
    call.cancel()

    assert isinstance(first, gen.GenerateContentResponse) and text_of(first)
    assert arrived_s < 2.0  # sent as it came, not held for the 5 s gaps after it
    await closed_within(port, open_peers, timeout_s=2.0)


async def test_a_deadline_shorter_than_the_stream_ends_it_after_the_first_chunks(
    system: System, succeeded: str, emulator: httpx.AsyncClient
) -> None:
    await faults(emulator, chunk_delay_s=1.0)
    port = emulator_port(system)
    call = stub_of(system).StreamGenerateContent(
        prompt(succeeded, QUESTION), metadata=system.auth(), timeout=1.5
    )
    chunks: Chunks = []

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for chunk in call:
            if not chunks:
                open_peers = peers_of(port)
            chunks.append(chunk)

    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert 1 <= len(chunks) <= 2
    # The API's upstream stream ends with the deadline, not with the emulator's last chunk.
    await closed_within(port, open_peers, timeout_s=1.0)


async def test_a_stream_the_upstream_cuts_ends_unavailable_after_its_chunks(
    system: System, succeeded: str, emulator: httpx.AsyncClient
) -> None:
    whole = await stub_of(system).GenerateContent(
        prompt(succeeded, QUESTION), metadata=system.auth()
    )
    await faults(emulator, cut_after_chunks=2)

    chunks, error = await stream(system, prompt(succeeded, QUESTION))

    assert len(chunks) == 2
    assert text_of(whole).startswith(text_of(*chunks))
    assert error is not None and error.code() == grpc.StatusCode.UNAVAILABLE
    assert reason(error) == "UPSTREAM_UNAVAILABLE"
    assert "ended early" in (error.details() or "")
    assert detail(error, error_details_pb2.RetryInfo).retry_delay.seconds >= 1


async def test_the_upstreams_429_before_the_stream_is_resource_exhausted_with_retry_info(
    system: System, succeeded: str, emulator: httpx.AsyncClient
) -> None:
    await faults(emulator, status=429, retry_delay_s=7)

    chunks, error = await stream(system, prompt(succeeded))

    assert chunks == []
    assert error is not None and error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert reason(error) == "UPSTREAM_RESOURCE_EXHAUSTED"
    assert detail(error, error_details_pb2.RetryInfo).retry_delay.seconds == 7


async def test_a_401_before_the_stream_is_retried_once_with_a_fresh_token(
    system: System, succeeded: str, emulator: httpx.AsyncClient
) -> None:
    await faults(emulator, status=401)

    chunks, error = await stream(system, prompt(succeeded, QUESTION))

    assert error is None
    assert len(chunks) >= 3
    assert await system.upstream_requests(GEMINI_STREAM) == 2


async def test_a_gap_between_chunks_over_the_read_timeout_ends_the_stream(
    make_system: SystemFactory,
) -> None:
    # A generate's reads wait TUNING_GENERATE_TIMEOUT_S (the worker's own 30 s are
    # TUNING_UPSTREAM_TIMEOUT_S).
    async with make_system(generate_timeout_s=0.5) as system:
        job = await trained(system)
        await system.inject_faults({"route": GEMINI_STREAM, "chunk_delay_s": 3.0})
        started = time.monotonic()

        chunks, error = await stream(system, prompt(job.name, QUESTION))

        assert len(chunks) == 1
        assert error is not None and error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "timed out" in (error.details() or "")
        assert time.monotonic() - started < 2.0
