"""The pipelined connection (core.redis.pipelined): answers in order, errors to their
callers, failures as redis-py's, and a reconnect after them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis import exceptions as redis_errors

from core.domain.job import Job
from core.domain.quotas import TenantQuotas
from core.errors import CreateQuotaSpent, Unavailable
from core.redis.client import PipelinedRedis, connect
from core.redis.job_store import JobStore
from core.redis.keys import Keys
from core.redis.pipelined import PipelinedConnection
from core.redis.scripts import Script, ScriptCall, Scripts
from devstack.redis_server import RedisServer


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[PipelinedRedis]:
    made = connect(redis_server.url)
    assert isinstance(made, PipelinedRedis)
    yield made
    await made.aclose()


def pipelined(client: PipelinedRedis) -> PipelinedConnection:
    connection = client.pipelined
    assert connection is not None, "a plain TCP client has a pipelined connection"
    return connection


async def test_concurrent_commands_each_get_their_own_reply(
    client: PipelinedRedis, prefix: str
) -> None:
    connection = pipelined(client)
    replies = await asyncio.gather(
        *(connection.execute("SET", f"{prefix}:k{n}", n, "GET") for n in range(50))
    )
    assert replies == [None] * 50
    values = await asyncio.gather(*(connection.execute("GET", f"{prefix}:k{n}") for n in range(50)))
    assert values == [str(n).encode() for n in range(50)]


async def test_an_error_reply_fails_only_its_own_command(
    client: PipelinedRedis, prefix: str
) -> None:
    connection = pipelined(client)
    await client.set(f"{prefix}:text", "abc")
    outcomes = await asyncio.gather(
        connection.execute("INCR", f"{prefix}:n"),
        connection.execute("INCR", f"{prefix}:text"),
        connection.execute("INCR", f"{prefix}:n"),
        return_exceptions=True,
    )
    assert outcomes[0] == 1 and outcomes[2] == 2
    assert isinstance(outcomes[1], redis_errors.ResponseError)


async def test_a_create_on_the_pipelined_connection_is_stored_and_found_again(
    client: PipelinedRedis, prefix: str
) -> None:
    store = JobStore(client, Keys(prefix))
    job = Job(id="j1", tenant="team-a", base_model="models/x", request_hash="h1")
    quotas = TenantQuotas(max_running=5, creates_per_minute=60, create_burst=1)
    assert await store.create(job, b"[]", quotas=quotas) == (job, True, 1)
    assert await store.create(job, b"[]", quotas=quotas) == (job, False, 1)  # a retry: free
    with pytest.raises(CreateQuotaSpent):
        await store.create(job.replace(id="j2"), b"[]", quotas=quotas)
    assert (await store.read("team-a", "j1")) is not None


async def test_floats_reach_lua_as_redis_py_sends_them(client: PipelinedRedis) -> None:
    script = Script("return tostring(tonumber(ARGV[1]) * 3)")
    call = ScriptCall(script, keys=[], args=[1e9 / 60])
    scripts = Scripts(client)
    # The same script through redis-py's own path, which encodes a float by its repr.
    assert await scripts.run(call) == await client.eval(script.source, 0, 1e9 / 60)


async def test_a_script_new_to_the_server_is_loaded_and_run(
    client: PipelinedRedis, prefix: str
) -> None:
    script = Script(f"-- {prefix}\nreturn redis.call('INCR', KEYS[1])")
    call = ScriptCall(script, keys=[f"{prefix}:runs"], args=[])
    scripts = Scripts(client)
    assert await scripts.run(call) == 1
    assert await scripts.run(call) == 2


async def test_the_url_database_and_password_are_used() -> None:
    with RedisServer() as server:
        plain = connect(server.url)
        await plain.config_set("requirepass", "s3cret")
        await plain.aclose()
        url = f"redis://:s3cret@127.0.0.1:{server.port}/3"
        client = connect(url)
        try:
            assert isinstance(client, PipelinedRedis)
            assert await pipelined(client).execute("SET", "where", "db3") == b"OK"
            assert await client.get("where") == b"db3"  # redis-py's own, on database 3
            other = connect(f"redis://:s3cret@127.0.0.1:{server.port}/0")
            assert await other.get("where") is None
            await other.aclose()
        finally:
            await client.aclose()


async def test_a_lost_server_fails_the_call_and_a_restarted_one_is_reconnected() -> None:
    with RedisServer() as server:
        client = connect(server.url)
        assert isinstance(client, PipelinedRedis)
        scripts = Scripts(client)
        call = ScriptCall(Script("return redis.call('INCR', KEYS[1])"), keys=["n"], args=[])
        try:
            assert await scripts.run(call) == 1
            server.crash()
            with pytest.raises(Unavailable):
                await scripts.run(call)
            server.restart()
            assert await pipelined(client).execute("INCR", "n") == 1  # a new, empty server
        finally:
            await client.aclose()


async def test_a_server_that_never_answers_times_out() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    connection = PipelinedConnection("127.0.0.1", port, timeout_s=0.2)
    try:
        async with asyncio.timeout(5):
            with pytest.raises(redis_errors.TimeoutError):
                await connection.execute("PING")
            # A new connection: the old one's late close does not cut it short.
            with pytest.raises(redis_errors.TimeoutError):
                await connection.execute("PING")
        assert len(accepted) == 2
    finally:
        await connection.aclose()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_nothing_to_connect_to_is_a_connection_error() -> None:
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    connection = PipelinedConnection("127.0.0.1", port)
    with pytest.raises(redis_errors.ConnectionError):
        await connection.execute("PING")
    await connection.aclose()


async def test_a_round_trip_counting_client_counts_each_write_of_its_pipeline(
    redis_server: RedisServer,
) -> None:
    counted: list[int] = []
    client = connect(redis_server.url, round_trips=lambda: counted.append(1))
    assert isinstance(client, PipelinedRedis)
    scripts, call = Scripts(client), ScriptCall(Script("return 1"), keys=[], args=[])
    await scripts.run(call)  # the script's first run: loaded, then run again
    before = len(counted)
    # Ten calls in one turn of the loop go in one write: one round trip.
    assert await asyncio.gather(*(scripts.run(call) for _ in range(10))) == [1] * 10
    assert len(counted) - before == 1
    await client.aclose()


async def test_a_batch_is_answered_in_order_and_an_error_reply_raised_after_all_ran(
    client: PipelinedRedis, prefix: str
) -> None:
    connection = pipelined(client)
    replies = await connection.execute_many([("INCR", f"{prefix}:b"), ("INCR", f"{prefix}:b")])
    assert replies == [1, 2]
    await client.set(f"{prefix}:word", "abc")
    with pytest.raises(redis_errors.ResponseError):
        await connection.execute_many([("INCR", f"{prefix}:word"), ("INCR", f"{prefix}:b")])
    assert await client.get(f"{prefix}:b") == b"3"  # the command after the error ran
