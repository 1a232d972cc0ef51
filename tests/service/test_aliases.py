"""The AliasService through real gRPC: create, move, roll back and read the history of an
alias; ABORTED on a stale expected revision; whose aliases and jobs a tenant can reach;
what a target must be; and every bound, each naming its field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2

from core.redis.aliases import MAX_ALIASES_PER_TENANT
from tests.harness import VERTEX_TENANT, State, System
from tests.rpc_errors import detail, reason, violations
from tuning.v1 import alias_service_pb2 as pb
from tuning.v1 import alias_service_pb2_grpc, tuning_job_pb2

pytestmark = pytest.mark.timeout(60)
UNKNOWN_JOB = "tuningJobs/j" + "a" * 19


class Aliases:
    """The AliasService as one tenant calls it."""

    def __init__(self, system: System, tenant: str = "team-a") -> None:
        self._stub = alias_service_pb2_grpc.AliasServiceStub(system.channel)
        self._auth = system.auth(tenant)

    async def create(self, alias_id: str, target: str, **fields: Any) -> pb.Alias:
        alias = pb.Alias(target=target, **fields)
        request = pb.CreateAliasRequest(alias_id=alias_id, alias=alias)
        return await self._stub.CreateAlias(request, metadata=self._auth)

    async def get(self, name: str) -> pb.Alias:
        return await self._stub.GetAlias(pb.GetAliasRequest(name=name), metadata=self._auth)

    async def move(self, name: str, target: str, expected: int = 0, **fields: Any) -> pb.Alias:
        alias = pb.Alias(name=name, target=target, **fields)
        request = pb.UpdateAliasRequest(alias=alias, expected_revision=expected)
        return await self._stub.UpdateAlias(request, metadata=self._auth)

    async def rollback(self, name: str, revision: int = 0, expected: int = 0) -> pb.Alias:
        request = pb.RollbackAliasRequest(name=name, revision=revision, expected_revision=expected)
        return await self._stub.RollbackAlias(request, metadata=self._auth)

    async def delete(self, name: str) -> None:
        await self._stub.DeleteAlias(pb.DeleteAliasRequest(name=name), metadata=self._auth)

    async def list(self, **fields: Any) -> pb.ListAliasesResponse:
        return await self._stub.ListAliases(pb.ListAliasesRequest(**fields), metadata=self._auth)

    async def revisions(self, name: str, **fields: Any) -> pb.ListAliasRevisionsResponse:
        request = pb.ListAliasRevisionsRequest(name=name, **fields)
        return await self._stub.ListAliasRevisions(request, metadata=self._auth)


async def refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def trained(system: System, count: int, tenant: str = "team-a", **fields: Any) -> list[str]:
    """`count` SUCCEEDED jobs of the tenant's, by name."""
    jobs = [await system.create(tenant=tenant, **fields) for _ in range(count)]
    for job in jobs:
        done = await system.finish_training(job.name, tenant=tenant)
        assert done.state == State.SUCCEEDED, done.error
    return [job.name for job in jobs]


async def test_an_alias_is_created_moved_rolled_back_and_its_history_listed(
    system: System,
) -> None:
    first, second = await trained(system, 2)
    aliases = Aliases(system)

    created = await aliases.create("prod", first)
    moved = await aliases.move(
        "aliases/prod", second, expected=1, canary_target=first, canary_percent=10
    )
    back = await aliases.rollback("aliases/prod")

    assert (created.name, created.target, created.revision) == ("aliases/prod", first, 1)
    assert created.update_principal == "team-a"
    assert (moved.revision, moved.target, moved.canary_target, moved.canary_percent) == (
        2,
        second,
        first,
        10,
    )
    assert (back.revision, back.target, back.canary_target, back.canary_percent) == (
        3,
        first,
        "",
        0,
    )
    assert back.create_time == created.create_time
    assert await aliases.get("aliases/prod") == back
    history = await aliases.revisions("aliases/prod")
    assert [(r.revision, r.target, r.reason) for r in history.revisions] == [
        (3, first, "rollback to 1"),
        (2, second, "update"),
        (1, first, "create"),
    ]
    assert {r.update_principal for r in history.revisions} == {"team-a"}
    assert history.revisions[0].update_time == back.update_time
    assert [a.name for a in (await aliases.list()).aliases] == ["aliases/prod"]


async def test_pages_of_aliases_and_of_revisions_follow_their_tokens(system: System) -> None:
    (job,) = await trained(system, 1)
    aliases = Aliases(system)
    for name in ("one", "two", "three"):
        await aliases.create(name, job)
    for _ in range(2):
        await aliases.move("aliases/one", job)

    first = await aliases.list(page_size=2)
    rest = await aliases.list(page_size=2, page_token=first.next_page_token)
    newest = await aliases.revisions("aliases/one", page_size=2)
    oldest = await aliases.revisions("aliases/one", page_size=2, page_token=newest.next_page_token)
    crossed = await refused(aliases.list(page_token=newest.next_page_token))

    assert [a.name for a in first.aliases] == ["aliases/three", "aliases/two"]
    assert ([a.name for a in rest.aliases], rest.next_page_token) == (["aliases/one"], "")
    assert [r.revision for r in newest.revisions] == [3, 2]
    assert ([r.revision for r in oldest.revisions], oldest.next_page_token) == ([1], "")
    assert crossed.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in violations(crossed)


async def test_a_stale_expected_revision_is_aborted_and_changes_nothing(system: System) -> None:
    first, second = await trained(system, 2)
    aliases = Aliases(system)
    await aliases.create("prod", first)
    await aliases.move("aliases/prod", second, expected=1)  # another operator's move

    move = await refused(aliases.move("aliases/prod", first, expected=1))
    rollback = await refused(aliases.rollback("aliases/prod", revision=1, expected=1))

    for error in (move, rollback):
        assert error.code() == grpc.StatusCode.ABORTED
        info = detail(error, error_details_pb2.ErrorInfo)
        assert dict(info.metadata) == {"expected_revision": "1", "current_revision": "2"}
    current = await aliases.get("aliases/prod")
    assert (current.revision, current.target) == (2, second)
    assert len((await aliases.revisions("aliases/prod")).revisions) == 2


async def test_another_tenants_alias_is_not_found_like_a_missing_one(system: System) -> None:
    (job,) = await trained(system, 1)
    await Aliases(system).create("prod", job)
    theirs = Aliases(system, "team-b")

    calls: list[Callable[[str], Any]] = [
        theirs.get,
        lambda name: theirs.move(name, job),
        theirs.rollback,
        theirs.delete,
        theirs.revisions,
    ]
    for call in calls:
        other = await refused(call("aliases/prod"))
        missing = await refused(call("aliases/nothing"))
        assert other.code() == missing.code() == grpc.StatusCode.NOT_FOUND
        assert reason(other) == reason(missing)
        assert (other.details() or "").replace("prod", "nothing") == missing.details()
    assert (await theirs.list()).aliases == []
    assert (await Aliases(system).get("aliases/prod")).revision == 1


async def test_another_tenants_job_is_not_found_as_a_target_like_a_missing_one(
    system: System,
) -> None:
    (theirs,) = await trained(system, 1, tenant="team-b")
    aliases = Aliases(system)

    other = await refused(aliases.create("prod", theirs))
    missing = await refused(aliases.create("prod", UNKNOWN_JOB))

    assert other.code() == missing.code() == grpc.StatusCode.NOT_FOUND
    assert (other.details() or "").replace(theirs, UNKNOWN_JOB) == missing.details()
    assert (await aliases.list()).aliases == []


async def test_a_job_that_has_not_succeeded_cannot_be_a_target(system: System) -> None:
    (done,) = await trained(system, 1)
    running = await system.create()
    await system.wait_for(running.name, {State.RUNNING})
    aliases = Aliases(system)
    await aliases.create("prod", done)

    create = await refused(aliases.create("next", running.name))
    move = await refused(aliases.move("aliases/prod", running.name))
    canary = await refused(
        aliases.move("aliases/prod", done, canary_target=running.name, canary_percent=5)
    )

    for error in (create, move, canary):
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "RUNNING" in (error.details() or "")
    assert (await aliases.get("aliases/prod")).revision == 1


async def test_a_deleted_target_is_not_found_on_rollback(system: System) -> None:
    first, second = await trained(system, 2)
    aliases = Aliases(system)
    await aliases.create("prod", first)
    await aliases.move("aliases/prod", second)
    await system.delete(first)

    error = await refused(aliases.rollback("aliases/prod"))

    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert first in (error.details() or "")
    assert (await aliases.get("aliases/prod")).target == second


async def test_a_job_an_alias_points_at_cannot_be_deleted(system: System) -> None:
    first, second, third = await trained(system, 3)
    aliases = Aliases(system)
    await aliases.create("prod", first, canary_target=second, canary_percent=10)

    for held in (first, second):
        error = await refused(system.delete(held))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert reason(error) == "ALIAS_TARGET"
        assert "aliases/prod" in (error.details() or "")
        assert (await system.get(held)).name == held  # nothing was deleted

    await system.delete(third)  # no alias holds it
    await aliases.move("aliases/prod", second)
    await system.delete(first)  # moved off: free to go
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await system.get(first)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_checkpoint_target_must_be_one_the_job_lists(system: System) -> None:
    hyper = tuning_job_pb2.Hyperparameters(epoch_count=2, adapter_size=4)
    fields = {"base_model": "gemini-2.5-flash", "hyperparameters": hyper}
    (job,) = await trained(system, 1, tenant=VERTEX_TENANT, **fields)
    listed = (await system.get(job, tenant=VERTEX_TENANT)).checkpoints[0].checkpoint_id
    aliases = Aliases(system, VERTEX_TENANT)

    made = await aliases.create("prod", f"{job}/checkpoints/{listed}")
    unlisted = await refused(aliases.create("other", f"{job}/checkpoints/99"))

    assert made.target == f"{job}/checkpoints/{listed}"
    assert unlisted.code() == grpc.StatusCode.NOT_FOUND
    assert "has checkpoints" in (unlisted.details() or "")


async def test_rollback_needs_an_earlier_kept_revision(system: System) -> None:
    (job,) = await trained(system, 1)
    aliases = Aliases(system)
    await aliases.create("prod", job)

    nothing_earlier = await refused(aliases.rollback("aliases/prod"))
    not_older = await refused(aliases.rollback("aliases/prod", revision=1))

    assert nothing_earlier.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert not_older.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "revision" in violations(not_older)


async def test_a_tenant_has_at_most_its_cap_of_aliases(system: System) -> None:
    (job,) = await trained(system, 1)
    aliases = Aliases(system)
    for n in range(MAX_ALIASES_PER_TENANT):
        await aliases.create(f"a{n}", job)

    error = await refused(aliases.create("one-more", job))
    await aliases.delete("aliases/a0")
    await aliases.create("one-more", job)

    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    quota = detail(error, error_details_pb2.QuotaFailure)
    assert [v.subject for v in quota.violations] == ["tenant:team-a"]
    assert dict(detail(error, error_details_pb2.ErrorInfo).metadata)["quota"] == "max_aliases"


async def test_a_deleted_alias_is_gone_with_its_history(system: System) -> None:
    (job,) = await trained(system, 1)
    aliases = Aliases(system)
    await aliases.create("prod", job)
    await aliases.move("aliases/prod", job)

    await aliases.delete("aliases/prod")

    for call in (aliases.get, aliases.revisions, aliases.delete):
        assert (await refused(call("aliases/prod"))).code() == grpc.StatusCode.NOT_FOUND
    again = await aliases.create("prod", job)
    assert again.revision == 1
    assert len((await aliases.revisions("aliases/prod")).revisions) == 1


# The bounds: checked before anything is read (no job exists here at all).

JOB = UNKNOWN_JOB
CREATES: list[tuple[str, dict[str, Any], str]] = [
    ("Prod", {"target": JOB}, "alias_id"),
    ("-prod", {"target": JOB}, "alias_id"),
    ("prod-", {"target": JOB}, "alias_id"),
    ("a" * 64, {"target": JOB}, "alias_id"),
    ("", {"target": JOB}, "alias_id"),
    ("prod", {}, "alias.target"),
    ("prod", {"target": "tuningJobs/nope"}, "alias.target"),
    ("prod", {"target": "aliases/other"}, "alias.target"),
    ("prod", {"target": JOB + "/checkpoints/a.b"}, "alias.target"),
    ("prod", {"target": JOB, "canary_target": "x"}, "alias.canary_target"),
    ("prod", {"target": JOB, "canary_target": JOB, "canary_percent": 5}, "alias.canary_target"),
    ("prod", {"target": JOB, "canary_target": JOB + "/checkpoints/1"}, "alias.canary_percent"),
    (
        "prod",
        {"target": JOB, "canary_target": JOB + "/checkpoints/1", "canary_percent": 100},
        "alias.canary_percent",
    ),
    ("prod", {"target": JOB, "canary_percent": 5}, "alias.canary_percent"),
]


@pytest.mark.parametrize(("alias_id", "fields", "field"), CREATES)
async def test_each_create_bound_is_refused_naming_its_field(
    api_without_brake: System, alias_id: str, fields: dict[str, Any], field: str
) -> None:
    stub = alias_service_pb2_grpc.AliasServiceStub(api_without_brake.channel)
    request = pb.CreateAliasRequest(alias_id=alias_id, alias=pb.Alias(**fields))

    error = await refused(stub.CreateAlias(request, metadata=api_without_brake.auth()))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in violations(error), violations(error)


OTHER_CALLS: list[tuple[Callable[[Aliases], Any], str]] = [
    (lambda a: a.get("prod"), "name"),
    (lambda a: a.get("aliases/" + "a" * 64), "name"),
    (lambda a: a.get("aliases/prod/x"), "name"),
    (lambda a: a.move("prod", JOB), "alias.name"),
    (lambda a: a.move("aliases/prod", JOB, expected=-1), "expected_revision"),
    (lambda a: a.rollback("aliases/prod", revision=-1), "revision"),
    (lambda a: a.rollback("aliases/prod", expected=-1), "expected_revision"),
    (lambda a: a.delete("aliases/Prod"), "name"),
    (lambda a: a.revisions("x"), "name"),
    (lambda a: a.revisions("aliases/prod", page_size=-1), "page_size"),
    (lambda a: a.list(page_size=-1), "page_size"),
    (lambda a: a.list(page_token="garbage"), "page_token"),
]


@pytest.mark.parametrize(("call", "field"), OTHER_CALLS)
async def test_each_other_bound_is_refused_naming_its_field(
    api_without_brake: System, call: Callable[[Aliases], Any], field: str
) -> None:
    error = await refused(call(Aliases(api_without_brake)))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in violations(error), violations(error)
