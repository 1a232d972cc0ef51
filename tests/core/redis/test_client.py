"""Counting a client's round trips to Redis: a command, a pipeline or a script run is one,
on one Redis and on a cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.redis.client import Redis, connect
from core.redis.scripts import Script, ScriptCall, Scripts
from devstack.redis_cluster import RedisCluster
from devstack.redis_server import RedisServer


class Tally:
    """A round-trip counter: the callable `connect` is given."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture
def tally() -> Tally:
    return Tally()


@pytest.fixture
async def counted(redis_server: RedisServer, tally: Tally) -> AsyncIterator[Redis]:
    """A client counting into `tally`, its connection already open (its setup counted)."""
    client = connect(redis_server.url, round_trips=tally)
    await client.ping()
    assert tally.count >= 1
    tally.count = 0
    yield client
    await client.aclose()


async def test_each_plain_command_is_one_round_trip(
    counted: Redis, tally: Tally, prefix: str
) -> None:
    for n in range(7):
        await counted.set(f"{prefix}:k{n}", n)
    assert await counted.get(f"{prefix}:k6") == b"6"
    assert tally.count == 8


@pytest.mark.parametrize("transaction", [False, True])
async def test_a_pipeline_is_one_round_trip(
    counted: Redis, tally: Tally, prefix: str, transaction: bool
) -> None:
    async with counted.pipeline(transaction=transaction) as pipe:
        for n in range(5):
            pipe.incr(f"{prefix}:n{n}")
        replies = await pipe.execute()
    assert replies == [1, 1, 1, 1, 1]
    assert tally.count == 1


async def test_a_script_run_is_one_round_trip_once_redis_has_the_script(
    counted: Redis, tally: Tally, prefix: str
) -> None:
    # The prefix makes the script new to this server: its first run meets NOSCRIPT.
    script = Script(f"-- {prefix}\nreturn redis.call('INCR', KEYS[1])")
    call = ScriptCall(script, keys=[f"{prefix}:runs"], args=[])
    scripts = Scripts(counted)
    assert await scripts.run(call) == 1
    assert tally.count == 3, "EVALSHA refused (NOSCRIPT), SCRIPT LOAD, EVALSHA"
    assert await scripts.run(call) == 2
    assert tally.count == 4


async def test_a_cluster_client_counts_its_round_trips_on_every_node(
    cluster: RedisCluster, tally: Tally, prefix: str
) -> None:
    client = connect(cluster.url, cluster=True, round_trips=tally)
    try:
        keys = [f"{prefix}:{{t{n}}}" for n in range(12)]  # spread over the primaries
        for key in keys:  # opens a connection to each primary
            await client.set(key, 1)
        tally.count = 0
        for key in keys:
            await client.incr(key)
        assert tally.count == len(keys)
        async with client.pipeline() as pipe:
            for n in range(5):
                pipe.incr(f"{prefix}:{{one}}:n{n}")  # one slot: one node, one round trip
            await pipe.execute()
        assert tally.count == len(keys) + 1
    finally:
        await client.aclose()
