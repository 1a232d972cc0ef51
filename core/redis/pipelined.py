"""One pipelined connection to a Redis server, for the hottest script calls.

redis-py spends about 150 us of CPU on each command beyond the socket work itself: a pool
checkout, a retry wrapper, a task for the send's timeout, a timeout context for the read,
observability hooks (measured on this project's CREATE: 207 us per EVALSHA through
`execute_command`, 57 us for the same command on a bare asyncio protocol). On the create
path that was the largest share of the API's own CPU (bench/README.md). This connection
packs each command with hiredis into one buffer written once per event-loop turn, and hands
the replies to the callers in order (Redis answers one connection's commands in the order
they were sent), so concurrent callers share one connection and, when their commands meet
in one turn, one write.

It fails as redis-py does, with redis-py's errors (translated by the caller, as for any
command): a connection lost, or a reply later than `timeout_s`, fails every command in
flight with `redis.ConnectionError` or `redis.TimeoutError` and closes the connection; the
next command opens a new one. An error reply is a `redis.ResponseError` (NOSCRIPT a
`NoScriptError`), for its caller alone. Only plain TCP is served (`of` says so): a client
over TLS, a Unix socket or with a credential provider has no pipelined connection.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Sequence
from typing import Any, cast

import hiredis
import redis.asyncio as aioredis
from redis import exceptions as redis_errors

Arg = str | bytes | int | float


class PipelinedConnection:
    """Commands to one server, pipelined on one connection at a time (see the module)."""

    def __init__(
        self,
        host: str,
        port: int,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        *,
        timeout_s: float = 2.0,
        connect_timeout_s: float = 2.0,
        round_trips: Callable[[], None] | None = None,
    ) -> None:
        """`round_trips`, if given, is told of each write: the commands it carries share
        one round trip."""
        self._round_trips = round_trips
        self._address = (host, port)
        self._setup = _setup_commands(db, username, password)
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._link: _Link | None = None
        self._ready = False
        self._connecting = asyncio.Lock()
        self._reader = hiredis.Reader(replyError=redis_errors.ResponseError)
        self._waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self._unsent: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    def of(
        cls, client: aioredis.Redis, round_trips: Callable[[], None] | None = None
    ) -> PipelinedConnection | None:
        """A pipelined connection to `client`'s server, with its credentials and timeouts;
        None unless the client connects over plain TCP (its connection class may be one
        that counts round trips: core.redis.client)."""
        pool = client.connection_pool
        options = pool.connection_kwargs
        kind = pool.connection_class
        plain_tcp = issubclass(kind, aioredis.Connection) and not issubclass(
            kind, aioredis.SSLConnection
        )
        if not plain_tcp or options.get("credential_provider"):
            return None
        return cls(
            options.get("host", "localhost"),
            int(options.get("port", 6379)),
            int(options.get("db", 0) or 0),
            options.get("username"),
            options.get("password"),
            timeout_s=options.get("socket_timeout") or 2.0,
            connect_timeout_s=options.get("socket_connect_timeout") or 2.0,
            round_trips=round_trips,
        )

    async def execute(self, *args: Arg) -> Any:
        """The command's reply; raises its error reply, or the connection's failure."""
        if not self._ready:
            await self._connect()
        reply = await self._send(_packed(args))
        if isinstance(reply, redis_errors.ResponseError):
            if str(reply).startswith("NOSCRIPT"):
                raise redis_errors.NoScriptError(*reply.args)
            raise reply
        return reply

    async def execute_many(self, commands: Sequence[tuple[Arg, ...]]) -> list[Any]:
        """Each command's reply, in order, the commands sent in one write; raises the
        first error reply once all have answered (none is taken back)."""
        if not self._ready:
            await self._connect()
        sent = [self._send(_packed(command)) for command in commands]
        replies = [await reply for reply in sent]
        for reply in replies:
            if isinstance(reply, redis_errors.ResponseError):
                raise reply
        return replies

    async def aclose(self) -> None:
        """Close the connection; commands in flight fail with ConnectionError."""
        self._lost(redis_errors.ConnectionError("the pipelined connection was closed"))

    async def _connect(self) -> None:
        async with self._connecting:
            if self._ready:
                return
            link = self._link = _Link(self)
            try:
                async with asyncio.timeout(self._connect_timeout_s):
                    await asyncio.get_running_loop().create_connection(lambda: link, *self._address)
                for command in self._setup:
                    reply = await self._send(_packed(command))
                    if isinstance(reply, redis_errors.ResponseError):
                        raise redis_errors.AuthenticationError(str(reply))
            except (OSError, TimeoutError) as exc:
                self._lost(redis_errors.ConnectionError(f"cannot connect to Redis: {exc}"))
                raise redis_errors.ConnectionError(f"cannot connect to Redis: {exc}") from exc
            except BaseException as exc:
                self._lost(redis_errors.ConnectionError(f"cannot connect to Redis: {exc!r}"))
                raise
            self._ready = True

    def _send(self, packed: bytes) -> asyncio.Future[Any]:
        if self._link is None or self._link.transport is None:
            raise redis_errors.ConnectionError("the pipelined connection is closed")
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Any] = loop.create_future()
        self._waiting.append((reply, loop.time() + self._timeout_s))
        if self._timer is None:
            self._timer = loop.call_at(loop.time() + self._timeout_s, self._check_timeout)
        if not self._unsent:
            loop.call_soon(self._flush)
        self._unsent.append(packed)
        return reply

    def _flush(self) -> None:
        if self._link is not None and self._link.transport is not None and self._unsent:
            self._link.transport.write(b"".join(self._unsent))
            if self._round_trips is not None:
                self._round_trips()
        self._unsent.clear()

    def _check_timeout(self) -> None:
        """Fail everything if the oldest command in flight is overdue; else look again
        when it will be."""
        self._timer = None
        if not self._waiting:
            return
        loop = asyncio.get_running_loop()
        due = self._waiting[0][1]
        if loop.time() < due:
            self._timer = loop.call_at(due, self._check_timeout)
            return
        self._lost(redis_errors.TimeoutError("Timeout reading from Redis"))

    def _lost(self, error: redis_errors.RedisError) -> None:
        """Drop the connection (a new one is made for the next command) and fail every
        command in flight with `error`."""
        link, self._link = self._link, None
        if link is not None and link.transport is not None:
            link.transport.abort()
        self._ready = False
        self._unsent.clear()
        self._reader = hiredis.Reader(replyError=redis_errors.ResponseError)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiting:
            reply, _ = self._waiting.popleft()
            if not reply.done():
                reply.set_exception(error)

    def _link_lost(self, link: _Link, exc: Exception | None) -> None:
        if link is self._link:
            self._lost(redis_errors.ConnectionError(f"Redis closed the connection ({exc})"))

    def _received(self, link: _Link, data: bytes) -> None:
        if link is not self._link:
            return
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            if not self._waiting:  # a reply to nothing sent: the stream cannot be trusted
                self._lost(redis_errors.ConnectionError("an unexpected reply from Redis"))
                return
            future, _ = self._waiting.popleft()
            if not future.done():  # its caller may have been cancelled
                future.set_result(reply)


class _Link(asyncio.Protocol):
    """One TCP connection of a PipelinedConnection. A link that is no longer the current
    one (it was dropped after a failure, and a new one made) is not listened to."""

    def __init__(self, owner: PipelinedConnection) -> None:
        self._owner = owner
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._owner._link_lost(self, exc)

    def data_received(self, data: bytes) -> None:
        self._owner._received(self, data)


def _setup_commands(db: int, username: str | None, password: str | None) -> list[tuple[Arg, ...]]:
    commands: list[tuple[Arg, ...]] = []
    if password:
        commands.append(("AUTH", username, password) if username else ("AUTH", password))
    if db:
        commands.append(("SELECT", db))
    return commands


def _packed(args: tuple[Arg, ...]) -> bytes:
    """The command in RESP, each argument encoded as redis-py encodes it (a float by its
    repr, so Lua reads the same number).

    hiredis encodes str, bytes, int and float so itself (a float by its repr), four times
    faster than a tuple built first; anything else it refuses (a bool, which redis-py sends
    as `str` does) is encoded here."""
    packed: bytes
    try:
        packed = hiredis.pack_command(cast(Any, args))  # its stub types a 1-tuple
    except TypeError:
        encoded = tuple(
            a if isinstance(a, str | bytes) else repr(a) if isinstance(a, float) else str(a)
            for a in args
        )
        packed = hiredis.pack_command(cast(Any, encoded))
    return packed
