"""The alias store's scripts on a real Redis: atomic moves with their records, the
compare-and-set on `expected_revision`, the trimmed history, rollback, the per-tenant cap,
deletion, and the canary split of `resolve`."""

from __future__ import annotations

import asyncio
import random

import pytest

from core.errors import AliasQuotaExceeded, AlreadyExists, NotFound, RevisionMismatch
from core.redis.aliases import (
    MAX_ALIASES_PER_TENANT,
    MAX_REVISIONS_KEPT,
    AliasStore,
    Resolved,
    Route,
    takes_canary,
)
from core.redis.client import Redis, connect
from core.redis.keys import Keys
from devstack.redis_cluster import RedisCluster

pytestmark = pytest.mark.timeout(30)
OLD = Route("tuningJobs/jaaaaaaaaaaaaaaaaaaa")
NEW = Route("tuningJobs/jbbbbbbbbbbbbbbbbbbb")
CANARY = Route(OLD.target, NEW.target, 10)


@pytest.fixture
def store(redis: Redis, prefix: str) -> AliasStore:
    return AliasStore(redis, Keys(prefix), random.Random(7))


async def test_a_move_is_a_new_revision_recorded_with_who_and_why(store: AliasStore) -> None:
    created = await store.create("team-a", "prod", OLD, principal="team-a")
    moved = await store.move("team-a", "prod", CANARY, principal="ops-bot", expected_revision=1)

    assert (created.revision, moved.revision) == (1, 2)
    assert moved.route == CANARY
    assert moved.update_principal == "ops-bot"
    assert moved.create_time == created.create_time <= moved.update_time
    assert await store.get("team-a", "prod") == moved
    history = await store.revisions("team-a", "prod", before_revision=None, count=10)
    assert [(r.revision, r.route, r.change) for r in history] == [
        (2, CANARY, "update"),
        (1, OLD, "create"),
    ]
    assert history[0].update_principal == "ops-bot"
    assert history[0].update_time == moved.update_time


async def test_moves_racing_on_one_expected_revision_let_exactly_one_through(
    store: AliasStore,
) -> None:
    await store.create("team-a", "prod", OLD, principal="team-a")
    routes = [Route(f"tuningJobs/j{n:019d}") for n in range(10)]

    results = await asyncio.gather(
        *(store.move("team-a", "prod", r, principal="team-a", expected_revision=1) for r in routes),
        return_exceptions=True,
    )

    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, RevisionMismatch)]
    assert len(won) == 1 and len(lost) == 9
    assert all(e.metadata["current_revision"] == "2" for e in lost)
    current = await store.get("team-a", "prod")
    assert current is not None and current.route == won[0].route
    history = await store.revisions("team-a", "prod", before_revision=None, count=10)
    assert [r.revision for r in history] == [2, 1]


async def test_a_stale_expected_revision_changes_nothing(store: AliasStore) -> None:
    await store.create("team-a", "prod", OLD, principal="team-a")
    await store.move("team-a", "prod", NEW, principal="team-a", expected_revision=0)

    with pytest.raises(RevisionMismatch) as caught:
        await store.move("team-a", "prod", CANARY, principal="team-a", expected_revision=1)
    with pytest.raises(RevisionMismatch):
        await store.rollback(
            "team-a", "prod", to_revision=1, principal="team-a", expected_revision=1
        )

    assert caught.value.metadata == {"expected_revision": "1", "current_revision": "2"}
    current = await store.get("team-a", "prod")
    assert current is not None and (current.revision, current.route) == (2, NEW)


async def test_the_history_keeps_the_newest_revisions_only(store: AliasStore) -> None:
    await store.create("team-a", "prod", OLD, principal="team-a")
    moves = MAX_REVISIONS_KEPT + 20
    for n in range(moves):
        route = NEW if n % 2 else OLD
        await store.move("team-a", "prod", route, principal="team-a", expected_revision=0)

    history = await store.revisions("team-a", "prod", before_revision=None, count=1000)
    newest = moves + 1

    assert [r.revision for r in history] == list(range(newest, newest - MAX_REVISIONS_KEPT, -1))
    assert await store.revision("team-a", "prod", 5) is None
    with pytest.raises(NotFound):
        await store.rollback(
            "team-a", "prod", to_revision=5, principal="team-a", expected_revision=0
        )


async def test_rollback_takes_an_old_revisions_route_as_a_new_revision(store: AliasStore) -> None:
    await store.create("team-a", "prod", OLD, principal="team-a")
    await store.move("team-a", "prod", CANARY, principal="team-a", expected_revision=1)
    await store.move("team-a", "prod", NEW, principal="team-a", expected_revision=2)

    back = await store.rollback(
        "team-a", "prod", to_revision=2, principal="oncall", expected_revision=3
    )

    assert (back.revision, back.route, back.update_principal) == (4, CANARY, "oncall")
    newest = await store.revisions("team-a", "prod", before_revision=None, count=1)
    assert [(r.revision, r.route, r.change) for r in newest] == [(4, CANARY, "rollback to 2")]
    older = await store.revisions("team-a", "prod", before_revision=4, count=2)
    assert [r.revision for r in older] == [3, 2]


async def test_a_tenant_has_at_most_its_cap_of_aliases(store: AliasStore) -> None:
    for n in range(MAX_ALIASES_PER_TENANT):
        await store.create("team-a", f"a{n}", OLD, principal="team-a")

    with pytest.raises(AliasQuotaExceeded) as caught:
        await store.create("team-a", "one-more", OLD, principal="team-a")
    await store.create("team-b", "one-more", OLD, principal="team-b")  # its own cap
    await store.delete("team-a", "a0")
    await store.create("team-a", "one-more", OLD, principal="team-a")

    assert caught.value.subject == "tenant:team-a"
    assert caught.value.metadata == {"quota": "max_aliases", "limit": "100"}
    page = await store.page("team-a", before_seq=None, count=3)
    assert [a.alias_id for _, a in page if a] == ["one-more", "a99", "a98"]


async def test_an_alias_id_is_created_once(store: AliasStore) -> None:
    await store.create("team-a", "prod", OLD, principal="team-a")

    with pytest.raises(AlreadyExists):
        await store.create("team-a", "prod", NEW, principal="team-a")

    current = await store.get("team-a", "prod")
    assert current is not None and current.route == OLD


async def test_a_deleted_alias_is_gone_with_its_history(
    store: AliasStore, redis: Redis, prefix: str
) -> None:
    await store.create("team-a", "prod", OLD, principal="team-a")
    await store.move("team-a", "prod", NEW, principal="team-a", expected_revision=1)

    await store.delete("team-a", "prod")

    assert await store.get("team-a", "prod") is None
    assert await store.revisions("team-a", "prod", before_revision=None, count=10) == []
    assert await store.page("team-a", before_seq=None, count=10) == []
    with pytest.raises(NotFound):
        await store.resolve("team-a", "prod", "k")
    with pytest.raises(NotFound):
        await store.delete("team-a", "prod")
    with pytest.raises(NotFound):
        await store.move("team-a", "prod", OLD, principal="team-a", expected_revision=0)
    alias_keys = [k async for k in redis.scan_iter(match=f"{prefix}:*alias*")]
    assert alias_keys == []
    again = await store.create("team-a", "prod", NEW, principal="team-a")
    assert again.revision == 1


async def test_another_tenants_alias_does_not_resolve(store: AliasStore) -> None:
    await store.create("team-b", "prod", OLD, principal="team-b")

    with pytest.raises(NotFound) as caught:
        await store.resolve("team-a", "prod", "k")

    assert caught.value.message == "aliases/prod not found"


async def test_resolve_without_a_canary_is_the_target(store: AliasStore) -> None:
    await store.create("team-a", "prod", OLD, principal="team-a")

    assert await store.resolve("team-a", "prod", "k") == Resolved(OLD.target, 1, canary=False)
    assert await store.resolve("team-a", "prod") == Resolved(OLD.target, 1, canary=False)


async def test_resolve_splits_by_request_key_as_takes_canary_says(store: AliasStore) -> None:
    await store.create("team-a", "prod", CANARY, principal="team-a")
    keys = [f"req-{n}" for n in range(200)]

    sides = [await store.resolve("team-a", "prod", k) for k in keys]

    for key, side in zip(keys, sides, strict=True):
        expected = takes_canary("prod", key, 10, random.Random())
        assert side == Resolved(NEW.target if expected else OLD.target, 1, canary=expected)
    assert any(s.canary for s in sides) and not all(s.canary for s in sides)


@pytest.mark.parametrize("percent", [1, 10, 50, 99])
def test_the_split_shares_calls_as_the_percent_says(percent: int) -> None:
    rng = random.Random(1)
    keyed = sum(takes_canary("prod", f"user-{n}", percent, rng) for n in range(10_000))
    unkeyed = sum(takes_canary("prod", "", percent, rng) for _ in range(10_000))

    assert abs(keyed / 100 - percent) <= 2
    assert abs(unkeyed / 100 - percent) <= 2


def test_a_request_key_always_lands_on_the_same_side() -> None:
    rngs = [random.Random(seed) for seed in range(20)]
    for n in range(100):
        key = f"session-{n}"
        assert len({takes_canary("prod", key, 30, rng) for rng in rngs}) == 1
    assert not takes_canary("prod", "any", 0, random.Random())


async def test_the_scripts_run_on_redis_cluster(cluster: RedisCluster, prefix: str) -> None:
    client = connect(cluster.url, cluster=True)
    try:
        store = AliasStore(client, Keys(prefix))
        await store.create("team-a", "prod", OLD, principal="team-a")
        await store.move("team-a", "prod", NEW, principal="team-a", expected_revision=1)
        back = await store.rollback(
            "team-a", "prod", to_revision=1, principal="team-a", expected_revision=2
        )
        assert back.route == OLD
        assert (await store.resolve("team-a", "prod", "k")).target == OLD.target
        assert len(await store.page("team-a", before_seq=None, count=5)) == 1
        await store.delete("team-a", "prod")
        assert await store.get("team-a", "prod") is None
    finally:
        await client.aclose()
