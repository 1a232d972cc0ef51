"""The Gemini client against the emulator: every call, paging, auth retries, typed errors."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from collections.abc import Sequence

import pytest
from google.oauth2.credentials import Credentials

from core.domain.snapshots import Snapshot
from core.domain.upstream import UpstreamRef
from core.errors import (
    UpstreamAlreadyExists,
    UpstreamNotFound,
    UpstreamRejected,
    UpstreamRetryable,
    UpstreamScopeInsufficient,
)
from core.security.authorized_user import TUNING_SCOPE
from core.security.google_transport import HttpxRequest
from core.security.token_source import OAuthTokenSource
from tests.worker.conftest import Upstream, fenced
from worker.gemini.json_mapping import status_from_operation

BASE = "models/gemini-1.5-flash-001-tuning"


def body(display_name: str = "numbers", examples: int = 20) -> dict[str, object]:
    pairs = [{"textInput": str(n), "output": str(n + 1)} for n in range(examples)]
    return {
        "baseModel": BASE,
        "displayName": display_name,
        "tuningTask": {
            "hyperparameters": {"epochCount": 2, "batchSize": 4},
            "trainingData": {"examples": {"examples": pairs}},
        },
    }


async def test_create_get_generate_delete(upstream: Upstream) -> None:
    auth, client = upstream.auth(), upstream.client
    with fenced():
        op = await client.create_tuned_model(auth, "tj-one", body())
    assert op["metadata"]["totalSteps"] == 10
    with fenced(), pytest.raises(UpstreamAlreadyExists):
        await client.create_tuned_model(auth, "tj-one", body())
    upstream.clock.advance(60)
    ref = UpstreamRef("tunedModels/tj-one", op["name"])
    status = status_from_operation(await client.get_operation(auth, op["name"]), ref)
    assert status.state == "SUCCEEDED" and len(status.snapshots) == 10
    answer = await client.generate_content(auth, "tunedModels/tj-one", "7")
    assert answer["candidates"][0]["content"]["parts"][0]["text"]
    with fenced():
        await client.delete_tuned_model(auth, "tunedModels/tj-one")
    with pytest.raises(UpstreamNotFound):
        await client.get_tuned_model(auth, "tunedModels/tj-one")


async def test_a_poll_parses_only_the_snapshots_it_has_not_seen(upstream: Upstream) -> None:
    auth, client = upstream.auth(), upstream.client
    with fenced():
        op = await client.create_tuned_model(auth, "tj-steps", body(examples=40))
    ref = UpstreamRef("tunedModels/tj-steps", op["name"])

    async def polled(known: Sequence[Snapshot] = ()) -> Sequence[Snapshot]:
        return status_from_operation(
            await client.get_operation(auth, op["name"]), ref, known
        ).snapshots

    upstream.clock.advance(5)
    earlier = await polled()
    upstream.clock.advance(10)
    fresh, reused = await polled(), await polled(earlier)
    assert 0 < len(earlier) < len(fresh) and reused == fresh
    assert await polled(fresh) is fresh  # nothing new: the job's own snapshots
    # Only the last known one is compared: what comes before it is the job's, not parsed.
    first = dataclasses.replace(earlier[0], mean_loss=-2.0)
    kept = await polled([first, *earlier[1:]])
    assert kept[0] == first and list(kept[1:]) == list(fresh[1:])
    altered = (*earlier[:-1], dataclasses.replace(earlier[-1], mean_loss=-1.0))
    assert await polled(altered) == fresh  # not the list the job saw: all of it is read


async def test_list_operations_finds_each_models_own(upstream: Upstream) -> None:
    auth = upstream.auth()
    with fenced():
        for n in range(3):
            await upstream.client.create_tuned_model(auth, f"tj-m{n}", body(f"m{n}"))
    ops, _ = await upstream.client.list_operations(auth, "tunedModels/tj-m0")
    assert len(ops) == 1 and ops[0]["name"].startswith("tunedModels/tj-m0/operations/")


async def test_a_401_earns_one_refresh_and_one_retry(upstream: Upstream) -> None:
    auth = upstream.auth()
    with fenced():
        await upstream.client.create_tuned_model(auth, "tj-x", body())
    refreshes = await upstream.requests("oauth.token")
    await upstream.faults({"route": "tunedModels.get", "status": 401, "times": 1})
    model = await upstream.client.get_tuned_model(auth, "tunedModels/tj-x")
    assert model["name"] == "tunedModels/tj-x"
    assert await upstream.requests("oauth.token") == refreshes + 1

    await upstream.faults({"route": "tunedModels.get", "status": 401, "times": 5})
    with pytest.raises(UpstreamRejected) as caught:
        await upstream.client.get_tuned_model(auth, "tunedModels/tj-x")
    assert caught.value.http_status == 401
    assert await upstream.requests("oauth.token") == refreshes + 2  # one more, no loop
    assert await upstream.requests("tunedModels.get") == 4


async def test_fifty_concurrent_calls_with_an_expired_token_refresh_once(
    upstream: Upstream,
) -> None:
    tenant = upstream.tenants["team-a"]
    expired = Credentials(  # type: ignore[no-untyped-call]
        token="ya29.old",
        refresh_token=tenant.refresh_token,
        client_id=tenant.client_id,
        client_secret=tenant.client_secret,
        token_uri=upstream.url + "/token",
        expiry=datetime.datetime(2020, 1, 1),
    )
    with HttpxRequest.session(timeout_s=10.0) as request:
        source = OAuthTokenSource("team-a", expired, request)
        headers = await asyncio.gather(*(source.headers() for _ in range(50)))
    assert await upstream.requests("oauth.token") == 1
    assert len({h["authorization"] for h in headers}) == 1
    assert headers[0]["authorization"] != "Bearer ya29.old"


async def test_a_grant_without_the_tuning_scope_is_explained(upstream: Upstream) -> None:
    with fenced(), pytest.raises(UpstreamScopeInsufficient) as caught:
        await upstream.client.create_tuned_model(upstream.auth("team-ro"), "tj-ro", body())
    error = caught.value.job_error()
    assert TUNING_SCOPE in error.message
    assert "must be granted again" in error.message
    assert error.reason == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"


async def test_429_carries_the_retry_delay(upstream: Upstream) -> None:
    await upstream.faults(
        {"route": "tunedModels.create", "status": 429, "retry_delay_s": 26, "times": 1}
    )
    with fenced(), pytest.raises(UpstreamRetryable) as caught:
        await upstream.client.create_tuned_model(upstream.auth(), "tj-q", body())
    assert caught.value.retry_after_s == 26
    assert caught.value.status == "RESOURCE_EXHAUSTED"
