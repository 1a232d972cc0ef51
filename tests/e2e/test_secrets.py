"""No secret leaks: not in logs, not in Redis, not in any gRPC response of a full run."""

from __future__ import annotations

import base64
import json
import logging
import re
from pathlib import Path
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
        elif kind == b"set":
            chunks += list(await system.redis.smembers(key))
        elif kind == b"stream":  # a job's events (Keys.job_events)
            entries: Any = await system.redis.xrange(key)
            chunks += [value for _, fields in entries for value in fields.values()]
        elif kind == b"none":
            continue  # emptied since it was listed (the worker runs): nothing left to read
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
    answers += await stored_credential_run(system)
    return answers


async def stored_credential_run(system: System) -> list[Message]:
    """An admin stores team-b's credential (its file then goes); a job runs with it."""
    info = system.tenants["team-b"].authorized_user()
    answers: list[Message] = [await system.set_credential("team-b", json.dumps(info))]
    (system.tenants_file.parent / "team-b-oauth.json").unlink()
    answers += [await system.get_credential("team-b")]
    job = await system.create("team-b")
    done = await system.finish_training(job.name, "team-b")
    assert done.state == State.SUCCEEDED, done.error.message
    return [*answers, job, done]


def encryption_keys(system: System) -> list[str]:
    """The keys file's keys, base64 as in the file and as raw bytes in latin-1 form."""
    keys = json.loads(Path(system.settings.encryption_keys_file).read_text())["keys"]
    return [k["key"] for k in keys] + [base64.b64decode(k["key"]).decode("latin-1") for k in keys]


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
    assert any(key.endswith(b":credential") for key in await system.keys())  # scanned too
    secrets = [
        s for t in system.tenants.values() for s in (t.refresh_token, t.client_secret, t.token)
    ]
    for where, haystack in haystacks.items():
        for secret in secrets:
            assert secret.encode() not in haystack, f"a secret leaked into {where}"
        for key in encryption_keys(system):
            assert key.encode("latin-1") not in haystack, f"an encryption key leaked into {where}"
        assert not re.search(rb"ya29\.", haystack), f"an access token leaked into {where}"
