"""GenerateContent's refusals: every bound (a BadRequest violation naming its field path,
before any work), whose model it is, the job's state, and the upstream's own failures:
its 429, and a caller's deadline or cancel ending the upstream request."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2

from service.message_limits import GENERATE_CONTENT_MAX_BYTES
from tests.conftest import SystemFactory
from tests.harness import State, System
from tests.rpc_errors import detail, reason, violations
from tuning.v1 import generation_service_pb2 as gen
from tuning.v1 import generation_service_pb2_grpc

pytestmark = pytest.mark.timeout(60)
Request = gen.GenerateContentRequest
UNKNOWN_JOB = "tuningJobs/j" + "a" * 19
GEMINI_ROUTE = "tunedModels.generateContent"


def prompt(model: str = UNKNOWN_JOB, *texts: str, **fields: Any) -> Request:
    """A request of one user turn per text (one "hello" by default)."""
    turns = [gen.Content(role="user", parts=[gen.Part(text=t)]) for t in texts or ("hello",)]
    return Request(model=model, contents=turns, **fields)


async def generate(
    system: System, request: Request, tenant: str = "team-a", timeout_s: float | None = None
) -> gen.GenerateContentResponse:
    stub = generation_service_pb2_grpc.GenerationServiceStub(system.channel)
    return await stub.GenerateContent(request, metadata=system.auth(tenant), timeout=timeout_s)


async def refusal(system: System, request: Request, tenant: str = "team-a") -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await generate(system, request, tenant)
    return caught.value


def config(**fields: Any) -> dict[str, Any]:
    return {"generation_config": gen.GenerationConfig(**fields)}


def turns(count: int) -> list[gen.Content]:
    return [gen.Content(role="user", parts=[gen.Part(text="hi")]) for _ in range(count)]


def with_empty_part(request: Request) -> Request:
    request.contents.extend(turns(3))
    request.contents[3].parts[0].text = ""
    return request


def safety(*pairs: tuple[Any, Any]) -> dict[str, Any]:
    """Safety settings of (category, threshold) pairs (0: unspecified)."""
    settings = [gen.SafetySetting(category=c, threshold=t) for c, t in pairs]
    return {"safety_settings": settings}


HARASSMENT, HATE = gen.HARM_CATEGORY_HARASSMENT, gen.HARM_CATEGORY_HATE_SPEECH
BLOCK_NONE = gen.SafetySetting.BLOCK_NONE

BOUNDS: list[tuple[Callable[[], Request], str]] = [
    (lambda: prompt("tuningJobs/nope"), "model"),
    (lambda: prompt(UNKNOWN_JOB + "/checkpoints/"), "model"),
    (lambda: prompt(UNKNOWN_JOB + "/checkpoints/a.b"), "model"),
    (lambda: prompt(UNKNOWN_JOB + "/checkpoints/" + "1" * 21), "model"),
    (lambda: Request(model=UNKNOWN_JOB), "contents"),
    (lambda: Request(model=UNKNOWN_JOB, contents=turns(101)), "contents"),
    (lambda: Request(model=UNKNOWN_JOB, contents=[gen.Content(role="user")]), "contents[0].parts"),
    (
        lambda: Request(
            model=UNKNOWN_JOB,
            contents=[gen.Content(role="user", parts=[gen.Part(text="x")] * 17)],
        ),
        "contents[0].parts",
    ),
    (lambda: with_empty_part(prompt()), "contents[3].parts[0].text"),
    (
        lambda: Request(model=UNKNOWN_JOB, contents=[gen.Content(role="system", parts=[])]),
        "contents[0].role",
    ),
    (
        lambda: prompt(system_instruction=gen.Content(parts=[gen.Part(text="")])),
        "system_instruction.parts[0].text",
    ),
    (lambda: prompt(**config(candidate_count=0)), "generation_config.candidate_count"),
    (lambda: prompt(**config(candidate_count=9)), "generation_config.candidate_count"),
    (lambda: prompt(**config(max_output_tokens=0)), "generation_config.max_output_tokens"),
    (lambda: prompt(**config(max_output_tokens=65_537)), "generation_config.max_output_tokens"),
    (lambda: prompt(**config(temperature=-0.1)), "generation_config.temperature"),
    (lambda: prompt(**config(temperature=2.1)), "generation_config.temperature"),
    (lambda: prompt(**config(temperature=math.nan)), "generation_config.temperature"),
    (lambda: prompt(**config(top_p=1.5)), "generation_config.top_p"),
    (lambda: prompt(**config(top_k=0)), "generation_config.top_k"),
    (lambda: prompt(**config(top_k=1_001)), "generation_config.top_k"),
    (lambda: prompt(**config(stop_sequences=["."] * 6)), "generation_config.stop_sequences"),
    (lambda: prompt(**config(stop_sequences=["x" * 129])), "generation_config.stop_sequences[0]"),
    (lambda: prompt(**config(stop_sequences=[".", ""])), "generation_config.stop_sequences[1]"),
    (
        lambda: prompt(**safety((HARASSMENT, BLOCK_NONE), (HARASSMENT, BLOCK_NONE))),
        "safety_settings[1].category",
    ),
    (lambda: prompt(**safety((0, BLOCK_NONE))), "safety_settings[0].category"),
    (lambda: prompt(**safety((HATE, 0))), "safety_settings[0].threshold"),
    (lambda: prompt(**safety(*[(HATE, BLOCK_NONE)] * 6)), "safety_settings"),
]


@pytest.fixture
def api_only(api_without_brake: System) -> System:
    """These tests make many refused calls on purpose: without the refusal brake."""
    return api_without_brake


@pytest.mark.parametrize(("make", "field"), BOUNDS)
async def test_each_bound_is_refused_naming_its_field(
    api_only: System, make: Callable[[], Request], field: str
) -> None:
    error = await refusal(api_only, make())

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in violations(error), violations(error)


async def test_bounds_are_checked_before_the_model_is_looked_up(api_only: System) -> None:
    job = await api_only.create()  # QUEUED: a valid request would be FAILED_PRECONDITION

    error = await refusal(api_only, prompt(job.name, **config(top_k=0)))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(violations(error)) == ["generation_config.top_k"]


async def test_a_request_within_every_bound_passes_them(api_only: System) -> None:
    request = prompt(
        UNKNOWN_JOB,
        "one",
        "two",
        system_instruction=gen.Content(parts=[gen.Part(text="be brief")] * 16),
        **config(candidate_count=8, max_output_tokens=65_536, temperature=2.0, top_p=0.0),
        **safety((HARASSMENT, BLOCK_NONE), (HATE, gen.SafetySetting.OFF)),
    )
    request.generation_config.stop_sequences.extend(["x" * 128] * 5)

    error = await refusal(api_only, request)

    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_a_request_over_the_method_limit_is_refused_unread(api_only: System) -> None:
    request = prompt(UNKNOWN_JOB, "x" * GENERATE_CONTENT_MAX_BYTES)

    error = await refusal(api_only, request)

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason(error) == "REQUEST_TOO_LARGE"


async def test_another_tenants_job_is_not_found_like_one_that_does_not_exist(
    api_only: System,
) -> None:
    theirs = await api_only.create(tenant="team-b")

    other = await refusal(api_only, prompt(theirs.name))
    missing = await refusal(api_only, prompt(UNKNOWN_JOB))

    assert other.code() == missing.code() == grpc.StatusCode.NOT_FOUND
    assert reason(other) == reason(missing)
    assert (other.details() or "").replace(theirs.name, UNKNOWN_JOB) == missing.details()


async def test_a_job_that_has_not_succeeded_is_failed_precondition(api_only: System) -> None:
    job = await api_only.create()

    error = await refusal(api_only, prompt(job.name))

    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "QUEUED" in (error.details() or "")
    assert await api_only.upstream_requests(GEMINI_ROUTE) == 0


async def test_a_checkpoint_of_a_gemini_api_job_is_invalid(api_only: System) -> None:
    job = await api_only.create()

    error = await refusal(api_only, prompt(f"{job.name}/checkpoints/1"))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "checkpoints" in violations(error)["model"]


# The upstream's failures, on a job that has SUCCEEDED.


@pytest.fixture
async def succeeded(system: System) -> str:
    """A SUCCEEDED Gemini API job of team-a's; the worker is stopped after (so that no
    connection of its comes or goes while a test watches the emulator's)."""
    job = await system.create()
    done = await system.finish_training(job.name)
    assert done.state == State.SUCCEEDED, done.error
    await system.stop_worker()
    return job.name


@pytest.fixture
async def emulator(system: System) -> AsyncIterator[httpx.AsyncClient]:
    """One client of the emulator's own endpoints, open the whole test: its connection
    stays, so only the API's come and go."""
    async with httpx.AsyncClient(base_url=system.emulator_url, timeout=5.0) as client:
        yield client


async def test_the_upstreams_429_is_resource_exhausted_with_its_retry_delay(
    system: System, succeeded: str, emulator: httpx.AsyncClient
) -> None:
    rule = {"route": GEMINI_ROUTE, "status": 429, "retry_delay_s": 7}
    (await emulator.post("/_emulator/faults", json={"rules": [rule]})).raise_for_status()

    error = await refusal(system, prompt(succeeded))

    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert reason(error) == "UPSTREAM_RESOURCE_EXHAUSTED"
    assert detail(error, error_details_pb2.RetryInfo).retry_delay.seconds == 7


async def test_an_upstream_outage_is_unavailable_with_a_retry_delay(
    system: System, succeeded: str, emulator: httpx.AsyncClient
) -> None:
    rule = {"route": GEMINI_ROUTE, "status": 503}
    (await emulator.post("/_emulator/faults", json={"rules": [rule]})).raise_for_status()

    error = await refusal(system, prompt(succeeded))

    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert reason(error) == "UPSTREAM_UNAVAILABLE"
    assert detail(error, error_details_pb2.RetryInfo).retry_delay.seconds >= 1


async def test_a_deadline_ends_the_upstream_request(
    system: System, succeeded: str, emulator: httpx.AsyncClient
) -> None:
    slow = await _slow_generate(system, emulator)

    started = time.monotonic()
    call = asyncio.create_task(generate(system, prompt(succeeded), timeout_s=0.5))
    await slow.arrived()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    elapsed_s = time.monotonic() - started

    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert elapsed_s < 1.0
    await slow.ended()


async def test_a_cancelled_call_ends_the_upstream_request(
    system: System, succeeded: str, emulator: httpx.AsyncClient
) -> None:
    slow = await _slow_generate(system, emulator)
    stub = generation_service_pb2_grpc.GenerationServiceStub(system.channel)
    call = stub.GenerateContent(prompt(succeeded), metadata=system.auth())
    await slow.arrived()

    call.cancel()

    with pytest.raises(asyncio.CancelledError):
        await call
    await slow.ended()


class _SlowUpstream:
    """A generateContent the emulator holds for LATENCY_S, watched through the emulator's
    own side of its TCP connections (Linux's /proc/net/tcp)."""

    LATENCY_S = 5.0

    def __init__(self, emulator: httpx.AsyncClient, port: int) -> None:
        self._emulator = emulator
        self._port = port
        self._open: set[int] = set()

    async def arrived(self) -> None:
        """Wait until the emulator has the request; note the connections open then."""
        async with asyncio.timeout(2.0):
            while await self._requests() == 0:  # noqa: ASYNC110 (polling is the point)
                await asyncio.sleep(0.01)
        self._open = peers_of(self._port)

    async def ended(self) -> None:
        """Wait (well before the emulator would answer) until a connection open while the
        request was held has closed: the emulator saw the request end."""
        assert self._open, "arrived() first"
        async with asyncio.timeout(2.0):
            while not self._open - peers_of(self._port):  # noqa: ASYNC110 (as above)
                await asyncio.sleep(0.01)

    async def _requests(self) -> int:
        requests = (await self._emulator.get("/_emulator/stats")).json()["requests"]
        return int(requests.get(f"POST {GEMINI_ROUTE}", 0))


async def _slow_generate(system: System, emulator: httpx.AsyncClient) -> _SlowUpstream:
    rule = {"route": GEMINI_ROUTE, "latency_s": _SlowUpstream.LATENCY_S}
    (await emulator.post("/_emulator/faults", json={"rules": [rule]})).raise_for_status()
    port = urlsplit(system.emulator_url).port
    assert port is not None
    return _SlowUpstream(emulator, port)


def peers_of(port: int) -> set[int]:
    """The client ports of the established TCP connections the server on `port` holds."""
    peers = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, state = line.split()[1:4]
        if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
            peers.add(int(remote.rsplit(":", 1)[1], 16))
    return peers


async def test_a_generate_waits_for_the_callers_deadline_not_the_pollers_timeout(
    make_system: SystemFactory,
) -> None:
    # The worker's reads wait 0.3 s (TUNING_UPSTREAM_TIMEOUT_S); a generate thinks 0.8 s.
    async with make_system(upstream_timeout_s=0.3, generate_timeout_s=2.0) as system:
        job = await system.create()
        assert (await system.finish_training(job.name)).state == State.SUCCEEDED
        rule = {"route": GEMINI_ROUTE, "latency_s": 0.8, "times": 2}
        await system.inject_faults(rule)

        answer = await generate(system, prompt(job.name), timeout_s=5.0)
        assert answer.candidates[0].content.parts[0].text  # waited past the 0.3 s

        answer = await generate(system, prompt(job.name))  # no deadline: 2 s at most
        assert answer.candidates[0].content.parts[0].text


async def test_without_a_deadline_a_generate_is_cut_at_the_generate_timeout(
    make_system: SystemFactory,
) -> None:
    async with make_system(generate_timeout_s=0.3) as system:
        job = await system.create()
        assert (await system.finish_training(job.name)).state == State.SUCCEEDED
        await system.inject_faults({"route": GEMINI_ROUTE, "latency_s": 2.0})

        started = time.monotonic()
        error = await refusal(system, prompt(job.name))

        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # the upstream's answer timed out
        assert time.monotonic() - started < 1.5
