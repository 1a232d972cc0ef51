"""ListTuningJobs bounds: filters are read in linear time under a length bound, and page
tokens are opaque, signed for one tenant and filter, and refused cleanly otherwise."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import grpc
import httpx
import pytest

from core.errors import InvalidArgument
from core.redis.keys import Keys
from core.security.tenants import TenantDirectory
from service import listing
from service.process import start_api
from tests.harness import System
from tests.rpc_errors import violations
from tuning.v1 import tuning_service_pb2, tuning_service_pb2_grpc

ATTACK_CHARS = 60_000
"""Under the request size bound (TUNING_GRPC_SMALL_REQUEST_MAX_BYTES), so the filter's
own bound is what refuses these; at this size the old regex took ~5 s a request."""

ATTACKS = {
    "spaces before junk": "state = RUNNING" + " " * ATTACK_CHARS + "x",
    "spaces around AND": "state = RUNNING" + " AND " * (ATTACK_CHARS // 5) + "x",
    "unterminated string": 'labels.a = "' + "x" * ATTACK_CHARS,
    "many terms": "state = RUNNING AND " * (ATTACK_CHARS // 20) + "state = RUNNING",
}


async def refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


@pytest.mark.parametrize("text", ATTACKS.values(), ids=list(ATTACKS))
async def test_an_overlong_filter_is_refused_naming_it(api_only: System, text: str) -> None:
    error = await refused(api_only.list_jobs(filter=text))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "2048" in violations(error)["filter"]


async def test_the_issues_attack_is_invalid_argument(api_only: System) -> None:
    error = await refused(api_only.list_jobs(filter="state = RUNNING" + " " * 200_000 + "x"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations(error).keys() & {"filter", "request"}


async def _get_s(system: System, name: str) -> float:
    started = time.perf_counter()
    assert (await system.get(name, tenant="team-b")).name == name
    return time.perf_counter() - started


async def test_other_tenants_are_served_while_filters_attack(api_only: System) -> None:
    job = await api_only.create(tenant="team-b")
    alone_s = min([await _get_s(api_only, job.name) for _ in range(3)])
    # Under the length bound too: adversarial text the parser itself must refuse fast.
    near_bound = "state = RUNNING" + " " * 2000 + "x"
    texts = [*ATTACKS.values(), near_bound, *[ATTACKS["spaces before junk"]] * 6]
    attacks = [asyncio.create_task(api_only.list_jobs(filter=t)) for t in texts]
    # The old parser held the event loop ~5 s per attack; the victim waited for all.
    attacked_s = await _get_s(api_only, job.name)
    answers = await asyncio.gather(*attacks, return_exceptions=True)
    assert attacked_s < 100 * max(alone_s, 0.005)
    for answer in answers:
        assert isinstance(answer, grpc.aio.AioRpcError)
        assert answer.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "filter" in violations(answer)


async def test_terms_are_bounded(api_only: System) -> None:
    await api_only.create()
    most = " AND ".join(["state = QUEUED"] * listing.MAX_FILTER_TERMS)
    assert len((await api_only.list_jobs(filter=most)).tuning_jobs) == 1
    error = await refused(api_only.list_jobs(filter=most + " AND state = QUEUED"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "terms" in violations(error)["filter"]


async def test_the_filter_bound_is_a_setting(make_system: Any) -> None:
    async with make_system(with_worker=False, max_filter_chars=20) as system:
        await system.list_jobs(filter="state = RUNNING")
        error = await refused(system.list_jobs(filter='labels.team = "search"'))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "20" in violations(error)["filter"]


def _fastest_parse_s(text: str, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        with contextlib.suppress(InvalidArgument):
            listing.parse_terms(text)
        best = min(best, time.perf_counter() - started)
    return best


SHAPES: dict[str, Callable[[int], str]] = {
    "spaces before junk": lambda n: "state = RUNNING" + " " * n + "x",
    "spaced valid term": lambda n: "state" + " " * (n // 2) + "=" + " " * (n // 2) + "RUNNING",
    "long label value": lambda n: 'labels.a = "' + "v" * n + '"',
    "unterminated string": lambda n: 'labels.a = "' + " x" * (n // 2),
}


@pytest.mark.parametrize("shape", SHAPES.values(), ids=list(SHAPES))
def test_the_parser_is_linear(shape: Callable[[int], str]) -> None:
    # 20 times the text: linear work takes ~20 times as long, quadratic ~400 times.
    small, large = _fastest_parse_s(shape(4_000)), _fastest_parse_s(shape(80_000))
    assert large < 100 * max(small, 1e-5)


# Page tokens


async def three_jobs_and_a_token(system: System, filter_text: str = "") -> str:
    for _ in range(3):
        await system.create()
    token = (await system.list_jobs(page_size=1, filter=filter_text)).next_page_token
    assert token
    return token


def _seq_of(token: str) -> int:
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    return int.from_bytes(raw[1:9], "big")


def _flip(token: str, at: int) -> str:
    return token[:at] + ("A" if token[at] != "A" else "B") + token[at + 1 :]


BAD_TOKENS: dict[str, Callable[[str], str]] = {
    "tampered cursor": lambda t: _flip(t, 5),
    "tampered signature": lambda t: _flip(t, 30),
    "truncated": lambda t: t[:-4],
    "extended": lambda t: t + "AAAA",
    "not base64": lambda t: "!!!" + t[3:],
    "not ascii": lambda t: "\u00e9" * len(t),
    "json with Infinity": lambda t: base64.urlsafe_b64encode(b'{"s": Infinity, "f": "x"}').decode(),
    "json with a huge number": lambda t: base64.urlsafe_b64encode(b'{"s": 1e999}').decode(),
    "another key": lambda t: listing.sign_token(os.urandom(32), "team-a", "", _seq_of(t)),
    "long": lambda t: "A" * 60_000,
}


@pytest.mark.parametrize("forge", BAD_TOKENS.values(), ids=list(BAD_TOKENS))
async def test_a_bad_token_is_invalid_argument(
    api_only: System, forge: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    token = await three_jobs_and_a_token(api_only)
    error = await refused(api_only.list_jobs(page_size=1, page_token=forge(token)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in violations(error)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_token_is_good_only_for_its_tenant_and_filter(api_only: System) -> None:
    await api_only.create(tenant="team-b")
    token = await three_jobs_and_a_token(api_only, "state = QUEUED")
    for tenant, filter_text in [("team-b", "state = QUEUED"), ("team-a", "")]:
        call = api_only.list_jobs(tenant, page_size=1, page_token=token, filter=filter_text)
        assert "page_token" in violations(await refused(call))
    page = await api_only.list_jobs(page_size=1, page_token=token, filter="state = QUEUED")
    assert len(page.tuning_jobs) == 1


async def test_tokens_are_signed_with_the_key_kept_in_redis(api_only: System) -> None:
    token = await three_jobs_and_a_token(api_only, "state = QUEUED")
    secret = await api_only.redis.get(Keys(api_only.settings.redis_key_prefix).page_token_key())
    assert isinstance(secret, bytes)
    assert len(secret) == 32
    assert listing.sign_token(secret, "team-a", "state = QUEUED", _seq_of(token)) == token
    assert len(token) <= listing.MAX_PAGE_TOKEN_CHARS


async def test_replicas_accept_each_others_tokens(api_only: System) -> None:
    created = [(await api_only.create()).name for _ in range(4)]
    with httpx.Client() as token_http:
        tenants = TenantDirectory.watch(api_only.tenants_file)
        other = await start_api(
            api_only.settings, api_only.redis, tenants, listen="127.0.0.1:0", token_http=token_http
        )
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{other.port}") as channel:
                stub = tuning_service_pb2_grpc.TuningServiceStub(channel)

                async def on_other(token: str) -> tuning_service_pb2.ListTuningJobsResponse:
                    request = tuning_service_pb2.ListTuningJobsRequest(
                        page_size=1, page_token=token
                    )
                    return await stub.ListTuningJobs(request, metadata=api_only.auth())

                # Both replicas need the key at once: whichever creates it, both agree.
                first, first_other = await asyncio.gather(
                    api_only.list_jobs(page_size=1), on_other("")
                )
                assert first.next_page_token == first_other.next_page_token
                second = await on_other(first.next_page_token)
                third = await api_only.list_jobs(page_size=1, page_token=second.next_page_token)
        finally:
            await other.stop(1.0)
    walked = [p.tuning_jobs[0].name for p in (first, second, third)]
    assert walked == created[::-1][:3]
