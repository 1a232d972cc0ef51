"""No secret leaks: not in logs, not in Redis, not in any gRPC response of a full run."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from google.protobuf.message import Message

from tests.harness import State, System


async def redis_contents(system: System) -> bytes:
    """Every value of every key this test wrote, concatenated."""
    chunks: list[Any] = []
    for key in await system.keys():
        kind: Any = await system.redis.type(key)
        if kind == b"hash":
            chunks += [part for pair in (await system.redis.hgetall(key)).items() for part in pair]
        elif kind == b"string":
            chunks.append(await system.redis.get(key) or b"")
        elif kind == b"zset":
            chunks += await system.redis.zrange(key, 0, -1)
        else:
            pytest.fail(f"unexpected key type {kind} for {key!r}")
    return b"\n".join(chunks)


async def full_run(system: System) -> list[Message]:
    """Success, cancel, a scope failure, reads: every answer the callers got."""
    answers: list[Message] = []
    ok = await system.create(request_id="ok")
    answers += [ok, await system.finish_training(ok.name)]
    running = await system.create(request_id="cancel-me")
    await system.wait_for(running.name, {State.RUNNING})
    answers += [await system.cancel(running.name)]
    answers += [await system.wait_for(running.name, {State.CANCELLED})]
    scoped = await system.create("team-ro")
    answers += [await system.wait_for(scoped.name, {State.FAILED}, tenant="team-ro")]
    answers += [await system.list_jobs(), await system.list_jobs("team-ro")]
    return answers


async def test_no_token_or_secret_appears_anywhere(
    system: System, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answers = await full_run(system)
    haystacks = {
        "logs": caplog.text.encode(),
        "redis": await redis_contents(system),
        "grpc": b"\n".join(m.SerializeToString() for m in answers),
    }
    assert len(haystacks["logs"]) > 0 and len(haystacks["redis"]) > 0
    secrets = [
        s for t in system.tenants.values() for s in (t.refresh_token, t.client_secret, t.token)
    ]
    for where, haystack in haystacks.items():
        for secret in secrets:
            assert secret.encode() not in haystack, f"a secret leaked into {where}"
        assert not re.search(rb"ya29\.", haystack), f"an access token leaked into {where}"
