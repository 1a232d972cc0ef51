"""GenerateContent through an alias: the call goes to the alias's target, a canary's share
goes to the canary (the same request key always to the same side), and an alias moved
while calls flow fails none of them: each is answered by the old target or the new."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from tests.harness import System
from tests.service.test_aliases import Aliases, trained
from tuning.v1 import generation_service_pb2 as gen
from tuning.v1 import generation_service_pb2_grpc

pytestmark = pytest.mark.timeout(120)


def asking(model: str, request_key: str = "") -> gen.GenerateContentRequest:
    turn = gen.Content(role="user", parts=[gen.Part(text="What is 2 + 2?")])
    return gen.GenerateContentRequest(model=model, contents=[turn], request_key=request_key)


def generation(system: System) -> generation_service_pb2_grpc.GenerationServiceAsyncStub:
    return generation_service_pb2_grpc.GenerationServiceStub(system.channel)


async def test_a_call_through_an_alias_is_answered_by_its_target(system: System) -> None:
    (target,) = await trained(system, 1)
    await Aliases(system).create("prod", target)

    answer = await generation(system).GenerateContent(
        asking("aliases/prod"), metadata=system.auth("team-a"), timeout=10
    )

    assert answer.model == "aliases/prod"
    assert (answer.resolved_model, answer.alias_revision, answer.canary) == (target, 1, False)
    assert answer.candidates[0].content.parts[0].text


async def test_a_canary_takes_its_share_and_a_request_key_keeps_its_side(system: System) -> None:
    stable, canary = await trained(system, 2)
    await Aliases(system).create("prod", stable, canary_target=canary, canary_percent=50)
    stub, auth = generation(system), system.auth("team-a")

    async def side(key: str) -> str:
        answer = await stub.GenerateContent(asking("aliases/prod", key), metadata=auth)
        assert answer.canary == (answer.resolved_model == canary)
        return answer.resolved_model

    sides = {key: await side(key) for key in (f"user-{n}" for n in range(24))}

    assert set(sides.values()) == {stable, canary}  # 24 keys at 50%: both sides taken
    assert all([await side(key) == chosen for key, chosen in list(sides.items())[:6]])


async def test_an_alias_moved_while_calls_flow_fails_none_of_them(system: System) -> None:
    old, new = await trained(system, 2)
    aliases = Aliases(system)
    await aliases.create("prod", old)
    stub, auth = generation(system), system.auth("team-a")
    answered: list[str] = []

    async def caller() -> None:
        for _ in range(8):
            answer = await stub.GenerateContent(asking("aliases/prod"), metadata=auth)
            answered.append(answer.resolved_model)

    callers = [asyncio.create_task(caller()) for _ in range(4)]
    await asyncio.sleep(0.05)
    moved = await aliases.move("aliases/prod", new, expected=1)
    await asyncio.gather(*callers)

    assert moved.revision == 2
    assert len(answered) == 32 and set(answered) <= {old, new}
    after = await stub.GenerateContent(asking("aliases/prod"), metadata=auth)
    assert after.resolved_model == new


async def test_another_tenants_alias_and_a_bad_alias_name_are_refused(system: System) -> None:
    (target,) = await trained(system, 1)
    await Aliases(system).create("prod", target)
    stub = generation(system)

    with pytest.raises(grpc.aio.AioRpcError) as theirs:
        await stub.GenerateContent(asking("aliases/prod"), metadata=system.auth("team-b"))
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await stub.GenerateContent(asking("aliases/Prod!"), metadata=system.auth("team-a"))

    assert theirs.value.code() == grpc.StatusCode.NOT_FOUND
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
