"""Talking HTTP to a Google API: the machinery every upstream client shares.

One aiohttp `ClientSession` per process (`open_session`) is shared by every call. It is
aiohttp's rather than httpx's because a poll is one small GET and the worker makes
hundreds a second: aiohttp's client costs about a fifth of httpx's CPU per request
(0.25-0.3 ms against 1.5 ms on this project's machines). Answers are read whole into an
`Answer`, a streamed one (`events`) as each server-sent event's JSON the moment it comes;
no caller sees aiohttp's types. Each call authenticates
with the tenant's TokenSource; a 401 earns one token refresh and one retry, no more.
Each request waits at most the caller's remaining deadline (core.runtime.deadline).

A call with an upstream side effect (`effect=True`, said by each client method that
makes one) is fenced by the `Fence` the client was given (the worker's is worker.fence's
`check`, which reads the lease its step holds): the fence is checked after every wait
(token, rate limiter) and immediately before the request leaves, on every attempt, and
the request is given no more time than the fence has left. The API holds no lease; its
clients are built with `UNFENCED`.

Errors are translated here, at the boundary: the HTTP status picks the class (what the
worker does about it: core.errors' `UpstreamError` branch), and the google.rpc envelope's
own `status`, ErrorInfo `reason` and retry delay are kept on the error, for its ErrorInfo
metadata. The reason callers match on is always ours. The Gemini API, Vertex AI and the
Cloud Storage JSON API all answer with this envelope (Cloud Storage names its reason in
`errors[].reason` instead of an ErrorInfo).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Collection,
    Iterator,
    Mapping,
)
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

import aiohttp
import orjson
import yarl
from aiohttp.http_exceptions import LineTooLong
from opentelemetry.trace import Span, SpanKind

from core.errors import (
    Reason,
    UpstreamAlreadyExists,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRejected,
    UpstreamRetryable,
    UpstreamScopeInsufficient,
    UpstreamUnauthenticated,
)
from core.redis.token_bucket import Unlimited
from core.runtime import tracing
from core.runtime.deadline import remaining_s
from core.runtime.metrics import Metrics
from core.security.token_source import TokenSource

Json = dict[str, Any]
_T = TypeVar("_T")

DEFAULT_HOLD_OFF_S = 1.0
"""How long the fleet waits after a 429 that says nothing of when to come back."""
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"


Fence = Callable[[str], float | None]
"""Checks that the caller may still make the side effect `action`: the seconds it has
left to make it (None: no limit), or raises (core.errors.LeaseLost)."""


def unfenced(action: str) -> float | None:
    """The fence of a caller that holds no lease: nothing to check, no time limit."""
    del action
    return None


UNFENCED: Fence = unfenced


CONNECT_MAX_S = 10.0
"""The longest wait for a pooled or new connection, however long a read may take."""


def open_session(*, timeout_s: float, max_connections: int = 100) -> aiohttp.ClientSession:
    """The process's one HTTP client of the upstreams (call within the event loop; close
    it with `await session.close()`).

    No cookie jar: the session is shared by every tenant, and nothing a Google API
    answers for one tenant may ride along on another's request. `timeout_s` bounds each
    read of an answer; the wait for a connection is bounded by it too, and by
    `CONNECT_MAX_S`. At most `max_connections` are open at once.
    """
    connect_s = min(CONNECT_MAX_S, timeout_s)
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=max_connections, limit_per_host=0),
        timeout=aiohttp.ClientTimeout(total=None, connect=connect_s, sock_read=timeout_s),
        cookie_jar=aiohttp.DummyCookieJar(),
        json_serialize=_json_text,
        auto_decompress=True,
        raise_for_status=False,
    )


def _json_text(value: object) -> str:
    return orjson.dumps(value).decode()


@dataclass(frozen=True)
class Answer:
    """An upstream's answer, its body read whole. `headers` match names in any case."""

    status_code: int
    reason_phrase: str
    headers: Mapping[str, str]
    content: bytes

    @property
    def is_error(self) -> bool:
        return self.status_code >= 400

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def json(self) -> Any:
        """The body as JSON; ValueError if it is not."""
        return orjson.loads(self.content)


class Limiter(Protocol):
    async def acquire(self, *, urgent: bool = True) -> None:
        """Wait for the right to send one request (core.redis.token_bucket); a request
        that is not urgent gets only a spare one, or RateLimited at once."""
        ...

    async def hold_off(self, delay_s: float) -> None:
        """Hand out no request before `delay_s` from now: the upstream asked so."""
        ...


_URGENT: ContextVar[bool] = ContextVar("upstream_urgent", default=False)


@contextlib.contextmanager
def urgent() -> Iterator[None]:
    """The upstream requests made in this block go ahead of polls for the fleet's budget:
    creates, uploads, cancels and deletes (anything a caller is waiting on). Requests
    outside such a block (polls, the reconciler's listings) take only spare budget."""
    token = _URGENT.set(True)
    try:
        yield
    finally:
        _URGENT.reset(token)


class UpstreamHttp:
    """Requests to one Google API host, authenticated, rate limited, bounded and fenced.

    `route_of` turns a request path into its metric label, without the ids in it.
    A path may also be a whole URL (a resumable upload's session URI).
    """

    def __init__(
        self,
        http: aiohttp.ClientSession,
        base_url: str,
        route_of: Callable[[str], str],
        limiter: Limiter | None = None,
        metrics: Metrics | None = None,
        *,
        fence: Fence,
        read_s: float | None = None,
    ) -> None:
        """`read_s`: the longest wait for an answer's bytes, instead of the session's (a
        generate may think for minutes); the caller's deadline still shortens it."""
        self._http = http
        self._timeouts = http.timeout
        if read_s is not None:
            own = http.timeout
            self._timeouts = aiohttp.ClientTimeout(
                total=own.total,
                connect=own.connect,
                sock_connect=own.sock_connect,
                sock_read=read_s,
            )
        self._fence = fence
        self._base = base_url.rstrip("/")
        self._route_of = route_of
        self._limiter: Limiter = limiter or Unlimited()
        self._metrics = metrics
        self._counted: dict[tuple[str, str], tuple[Any, Any]] = {}

    async def call(
        self,
        auth: TokenSource,
        method: str,
        path: str,
        *,
        effect: bool = False,
        decode: Callable[[bytes], Json] = orjson.loads,
        **kwargs: Any,
    ) -> Json:
        """One request's JSON answer ({} for an empty one), read by `decode` (ValueError if
        it is not JSON of the shape `decode` expects); `effect`: it changes something
        upstream. An error answer is raised as its `UpstreamError`."""
        response = await self.request(auth, method, path, effect=effect, **kwargs)
        return decode(response.content) if response.content else {}

    async def request(
        self,
        auth: TokenSource,
        method: str,
        path: str,
        *,
        effect: bool = False,
        passing: Collection[int] = (),
        **kwargs: Any,
    ) -> Answer:
        """One request, again once after a 401; an error status in `passing` is answered
        as it came, any other is raised as its `UpstreamError`."""
        return await self._authenticated(
            auth, lambda: self._send(auth, method, path, effect, passing, **kwargs)
        )

    async def _authenticated(self, auth: TokenSource, attempt: Callable[[], Awaitable[_T]]) -> _T:
        """`attempt()`, again once after a 401 and a token refresh."""
        try:
            return await attempt()
        except UpstreamUnauthenticated:
            await auth.refresh()
        try:
            return await attempt()
        except UpstreamUnauthenticated as exc:  # Refused twice: the credential is the problem.
            raise UpstreamRejected(
                f"{exc.message} (again after a token refresh)",
                http_status=401,
                status=exc.status or "UNAUTHENTICATED",
                upstream_reason=exc.upstream_reason,
                reason=Reason.UPSTREAM_UNAUTHENTICATED,
            ) from exc

    async def _send(
        self,
        auth: TokenSource,
        method: str,
        path: str,
        effect: bool,
        passing: Collection[int],
        **kwargs: Any,
    ) -> Answer:
        sending = await self._prepare(auth, method, path, effect, kwargs)
        with self._exchanging(sending) as exchange:
            response = await self._exchange(sending)
            exchange.answered(response.status_code, response.headers)
        if response.is_error and response.status_code not in passing:
            raise await self._failure(response)
        return response

    async def _prepare(
        self, auth: TokenSource, method: str, path: str, effect: bool, kwargs: dict[str, Any]
    ) -> _Sending:
        """The request, ready to leave at once: authenticated, let through by the limiter,
        fenced, its timeouts cut to the deadline and the fence."""
        headers = await auth.headers() | kwargs.pop("headers", {})
        if "content" in kwargs:
            kwargs["data"] = kwargs.pop("content")
        await self._limiter.acquire(urgent=_URGENT.get())
        # Paths come percent-encoded already (object names): they are sent as they are.
        absolute = path.startswith(("http://", "https://"))
        url = yarl.URL(path if absolute else self._base + path, encoded=True)
        label = f"{method} {self._route_of(url.path)}"
        # Nothing is awaited from here until the request leaves.
        fenced_s = self._fence(_action(method, path)) if effect else None
        timeout = _timeout(self._timeouts, fenced_s)
        return _Sending(method, url, headers, timeout, path, label, kwargs)

    def _exchanging(self, sending: _Sending) -> _Exchange:
        """Count the exchange in the block, timed, by its outcome; translate its timeouts
        and transport failures."""
        return _Exchange(self, sending)

    async def _failure(self, response: Answer) -> UpstreamError:
        """The `UpstreamError` of an error answer, the fleet held off after a 429."""
        error = error_from_response(response)
        if error.reason == Reason.UPSTREAM_RESOURCE_EXHAUSTED:
            # A quota is per project, not per job: the whole fleet waits, not one job.
            await self._limiter.hold_off(error.retry_after_s or DEFAULT_HOLD_OFF_S)
        return error

    def _observe(self, label: str, outcome: str, seconds: float) -> None:
        """Count the request and its latency, by route and outcome (both few: their
        metric children are looked up once)."""
        if self._metrics is None:
            return
        counted = self._counted.get((label, outcome))
        if counted is None:
            counted = self._counted[label, outcome] = (
                self._metrics.upstream_requests.labels(label, outcome),
                self._metrics.upstream_latency.labels(label),
            )
        requests, latency = counted
        requests.inc()
        latency.observe(seconds)

    async def _exchange(self, sending: _Sending) -> Answer:
        """Send the request and read its answer whole, the connection back in the pool."""
        async with await self._begin(sending) as response:
            return await _read_whole(response)

    async def _begin(self, sending: _Sending) -> aiohttp.ClientResponse:
        """Send the request; its answer's status and headers have come, its body not yet."""
        return await self._http.request(
            sending.method,
            sending.url,
            headers=sending.headers,
            timeout=sending.timeout,
            allow_redirects=False,
            **sending.body,
        )

    # Streamed answers.

    async def events(
        self, auth: TokenSource, method: str, path: str, **kwargs: Any
    ) -> AsyncGenerator[Json]:
        """The JSON of each server-sent event of a streamed answer (ask for `alt=sse`),
        yielded the moment the event's blank line arrives.

        The request is made as `call`'s (a 401 before the stream begins earns one token
        refresh and one retry) and an error status before the stream begins is raised as
        its `UpstreamError`. Once it has begun, a stream cut short (the connection closed
        before its end) is UpstreamRetryable, after the events that came. The caller's
        deadline bounds the whole stream; the session's read timeout each wait for more.
        The stream, and its connection, are closed when the caller stops iterating
        (`aclose`, or its task cancelled): the upstream sees the request end.
        """
        response = await self._authenticated(
            auth, lambda: self._open(auth, method, path, dict(kwargs))
        )
        action = f"{method} {response.url.path}"
        # The events are read off the connection by a task of their own, the moment each
        # arrives, and handed over: aiohttp's reader refuses the bytes it holds once the
        # connection has failed, so events that came just before a cut, not yet asked
        # for, would be lost with it. The hand-off is bounded (SSE_HANDOFF_EVENTS): past
        # that, the reader waits and the connection's own flow control holds the rest.
        handoff: asyncio.Queue[Json | Exception | None] = asyncio.Queue(SSE_HANDOFF_EVENTS)
        reader = asyncio.create_task(_hand_over(_read_events(response.content, action), handoff))
        try:
            while (event := await handoff.get()) is not None:
                if isinstance(event, Exception):
                    raise event
                yield event
        finally:
            response.close()
            reader.cancel()
            await asyncio.wait([reader])

    async def _open(
        self, auth: TokenSource, method: str, path: str, kwargs: dict[str, Any]
    ) -> aiohttp.ClientResponse:
        """A successful answer's head, its body left to stream; an error answer raised.

        Counted in the metrics as its head arrives (its latency: the time to the stream's
        first byte)."""
        sending = await self._prepare(auth, method, path, False, kwargs)
        with self._exchanging(sending) as exchange:
            response = await self._begin(sending)
            exchange.answered(response.status, response.headers)
            if response.status < 400:
                return response
            async with response:
                answer = await _read_whole(response)
        raise await self._failure(answer)


SSE_EVENT_MAX_BYTES = 1024 * 1024
"""The largest server-sent event read: a streamed answer's event is one chunk of it (a few
tokens per candidate), so one this large is an upstream fault, not an answer to buffer."""


SSE_HANDOFF_EVENTS = 16
"""Events read ahead of a stream's consumer, at most (see `UpstreamHttp.events`)."""


@dataclass(frozen=True)
class _Sending:
    """A request ready to leave: authenticated, let through, fenced, its timeouts set."""

    method: str
    url: yarl.URL
    headers: dict[str, str]
    timeout: aiohttp.ClientTimeout
    path: str
    """As the caller gave it: a path or a whole URL."""
    label: str
    """`METHOD route`, for the metrics."""
    body: dict[str, Any]

    @property
    def action(self) -> str:
        """`METHOD /path`, for messages and the fence."""
        return _action(self.method, self.path)


def _action(method: str, path: str) -> str:
    """`METHOD /path`, for messages and the fence: made only when one needs it (a poll's
    request has no fence, and most never fail)."""
    return f"{method} {yarl.URL(path, encoded=True).path}"


UPSTREAM_REQUEST_ID_HEADERS = ("x-guploader-uploadid", "x-goog-request-id", "x-request-id")
"""Answer headers that name the request upstream, kept on its span: Cloud Storage's upload
id (what Google asks for in a support case about a request), and the request ids a Google
front end or a proxy in between may add."""


class _Exchange:
    """One exchange, in a `with` block (`UpstreamHttp._exchanging`): counted, timed, by
    its `outcome` (its status, once it has one); its timeouts and transport failures
    translated. A class rather than a generator's context manager: a poll makes one, and
    this costs a third as much.

    Inside a traced RPC or visit it is a client span too (core.runtime.tracing), whose
    `traceparent` the request carries upstream."""

    def __init__(self, http: UpstreamHttp, sending: _Sending) -> None:
        self.outcome = "error"
        self._http = http
        self._sending = sending
        self._started = 0.0
        self._span: Span | None = None

    def __enter__(self) -> Self:
        self._started = time.perf_counter()
        if tracing.child_tracer() is not None:
            self._span = _client_span(self._sending)
        return self

    def answered(self, status: int, headers: Mapping[str, str]) -> None:
        """The answer's status and headers have come."""
        self.outcome = str(status)
        if self._span is not None:
            _answered_span(self._span, status, headers)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if isinstance(exc, TimeoutError):
                self.outcome = "timeout"
                raise UpstreamRetryable(
                    f"{self._sending.action} timed out", status="DEADLINE_EXCEEDED"
                ) from exc
            if isinstance(exc, aiohttp.ClientError):
                self.outcome = "transport_error"
                raise UpstreamRetryable(
                    f"{self._sending.action} failed: {type(exc).__name__}", status="UNAVAILABLE"
                ) from exc
        finally:
            seconds = time.perf_counter() - self._started
            self._http._observe(self._sending.label, self.outcome, seconds)
            if self._span is not None:
                if not self.outcome.isdigit():
                    tracing.failed(self._span, self.outcome)
                self._span.end()


def _client_span(sending: _Sending) -> Span | None:
    """A started client span of the request, its traceparent added to the headers."""
    method, _, route = sending.label.partition(" ")
    attributes = {
        "http.request.method": method,
        "url.template": route,
        "server.address": sending.url.host or "",
    }
    span = tracing.start_span(sending.label, kind=SpanKind.CLIENT, attributes=attributes)
    if span is not None:
        sending.headers[tracing.TRACEPARENT] = tracing.traceparent_of_span(span)
    return span


def _answered_span(span: Span, status: int, headers: Mapping[str, str]) -> None:
    span.set_attribute("http.response.status_code", status)
    for name in UPSTREAM_REQUEST_ID_HEADERS:
        if value := headers.get(name):
            span.set_attribute(f"http.response.header.{name}", (value[:128],))
    if status >= 400:
        tracing.failed(span, str(status))


async def _read_whole(response: aiohttp.ClientResponse) -> Answer:
    content = await response.read()
    return Answer(response.status, response.reason or "", response.headers, content)


async def _hand_over(
    events: AsyncGenerator[Json], handoff: asyncio.Queue[Json | Exception | None]
) -> None:
    """Put each of `events` in `handoff` as it comes, then None; or the error that ended
    them, for the consumer to raise."""
    try:
        async with contextlib.aclosing(events):
            async for event in events:
                await handoff.put(event)
    except Exception as exc:  # noqa: BLE001 (not swallowed: handed to the consumer to raise)
        await handoff.put(exc)
    else:
        await handoff.put(None)


async def _read_events(content: aiohttp.StreamReader, action: str) -> AsyncGenerator[Json]:
    """Each event of a server-sent event stream, its `data:` lines joined, as JSON; the
    stream's own failures translated (the HTTP exchange's are `_exchanging`'s)."""
    try:
        data: list[bytes] = []
        while line := await content.readline(max_line_length=SSE_EVENT_MAX_BYTES):
            line = line.rstrip(b"\r\n")
            if line:
                _take_field(line, data)
            elif data:
                yield _event_json(data, action)
                data = []
        if data:  # the last event without its blank line: as google-genai reads it
            yield _event_json(data, action)
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
        raise UpstreamRetryable("the upstream stream ended early", status="UNAVAILABLE") from exc
    except TimeoutError as exc:
        raise UpstreamRetryable(f"{action} timed out", status="DEADLINE_EXCEEDED") from exc
    except aiohttp.ClientError as exc:
        raise UpstreamRetryable(
            f"{action} failed: {type(exc).__name__}", status="UNAVAILABLE"
        ) from exc
    except LineTooLong as exc:
        raise _too_large() from exc


def _too_large() -> UpstreamError:
    return UpstreamError(f"the upstream stream sent an event over {SSE_EVENT_MAX_BYTES} bytes")


def _take_field(line: bytes, data: list[bytes]) -> None:
    """Keep a `data:` line's value; comments and the other fields (`event`, `id`,
    `retry`) say nothing a Google API stream needs."""
    name, _, value = line.partition(b":")
    if name != b"data":
        return
    data.append(value.removeprefix(b" "))
    if sum(len(d) for d in data) > SSE_EVENT_MAX_BYTES:
        raise _too_large()


def _event_json(data: list[bytes], action: str) -> Json:
    """An event's JSON object; an upstream error event is raised as its UpstreamError."""
    try:
        event = orjson.loads(b"\n".join(data))
    except orjson.JSONDecodeError:
        event = None
    if not isinstance(event, dict):
        raise UpstreamError(f"{action}: an event of the stream is not a JSON object")
    error = event.get("error")
    if isinstance(error, dict):  # an error after the stream began: its envelope, as an event
        code = error.get("code")
        status = code if isinstance(code, int) and code >= 400 else 500
        raise error_from_response(Answer(status, "", {}, orjson.dumps(event)))
    return event


def page_params(page_size: int, page_token: str) -> dict[str, str]:
    """The query parameters of one page of a listing (AIP-158)."""
    params = {"pageSize": str(page_size)} if page_size else {}
    return params | ({"pageToken": page_token} if page_token else {})


def _timeout(
    default: aiohttp.ClientTimeout, fenced_s: float | None = None
) -> aiohttp.ClientTimeout:
    """The session's timeouts, shortened to the caller's remaining deadline and, for a
    side effect, to the `fenced_s` its fence has left.

    The wait for a pooled connection and the connect (aiohttp's `connect` covers both)
    come before any byte is sent, so under a fence they share half its time: the request
    has begun to leave before the lease may have passed to another worker. The whole
    exchange (`total`) gets what is left of the deadline and of the fence.
    """
    left = remaining_s()
    if left is not None and left <= 0:
        raise UpstreamRetryable(
            "the caller's deadline passed before the request", status="DEADLINE_EXCEEDED"
        )
    if left is None and fenced_s is None:
        return default
    before_send = fenced_s / 2 if fenced_s is not None else None
    left, before_send = _least(left, fenced_s), _least(left, before_send)
    return aiohttp.ClientTimeout(
        total=_least(default.total, left),
        connect=_least(default.connect, before_send),
        sock_read=_least(default.sock_read, left),
    )


def _least(*limits_s: float | None) -> float | None:
    """The shortest of the limits given (None, or infinity: no limit)."""
    given = [s for s in limits_s if s is not None and s != math.inf]
    return min(given) if given else None


# The error envelope.


def error_from_response(response: Answer) -> UpstreamError:
    """The typed error for a non-2xx answer."""
    error = _envelope(response)
    details = error.get("details") or []
    upstream_reason = _reason(details) or _json_api_reason(error.get("errors"))
    kind = _kind(response.status_code, upstream_reason)
    return kind(
        str(error.get("message") or response.reason_phrase or "no message"),
        http_status=response.status_code,
        status=str(error.get("status") or ""),
        upstream_reason=upstream_reason,
        retry_after_s=_retry_after_s(details, response.headers.get("retry-after")),
        # A 429 is told apart from other transient failures (its own retry metric).
        reason=Reason.UPSTREAM_RESOURCE_EXHAUSTED if response.status_code == 429 else None,
    )


def _kind(http_status: int, upstream_reason: str) -> type[UpstreamError]:
    if http_status == 401:
        return UpstreamUnauthenticated
    if http_status == 404:
        return UpstreamNotFound
    if http_status == 409:
        return UpstreamAlreadyExists
    if http_status in (408, 429) or http_status >= 500:
        return UpstreamRetryable
    # Our reason for it keeps the upstream's name: the tuning guide's own case.
    if upstream_reason == Reason.ACCESS_TOKEN_SCOPE_INSUFFICIENT:
        return UpstreamScopeInsufficient
    return UpstreamRejected


def _envelope(response: Answer) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _reason(details: list[Any]) -> str:
    for detail in details:
        if isinstance(detail, dict) and detail.get("@type") == ERROR_INFO:
            return str(detail.get("reason") or "")
    return ""


def _json_api_reason(errors: object) -> str:
    """The first `errors[].reason` of a Cloud Storage JSON API error, e.g. `conditionNotMet`."""
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("reason") or "")
    return ""


def _retry_after_s(details: list[Any], header: str | None) -> float | None:
    """The longer of RetryInfo.retryDelay and a Retry-After header (seconds form)."""
    delays: list[float] = []
    for detail in details:
        if isinstance(detail, dict) and detail.get("@type") == RETRY_INFO:
            delays.append(parse_duration_s(str(detail.get("retryDelay", "0s"))))
    if header:
        with contextlib.suppress(ValueError):  # An HTTP-date form is ignored.
            delays.append(float(header))
    return max(delays) if delays else None


def answer_text(answer: Json) -> str:
    """The text of a GenerateContentResponse's first candidate (the Gemini API's and
    Vertex AI's endpoints answer the same shape)."""
    candidates = answer.get("candidates", [])
    parts = candidates[0].get("content", {}).get("parts", []) if candidates else []
    return "".join(str(part.get("text", "")) for part in parts)


def parse_time(text: str | None) -> float | None:
    """RFC 3339 with `Z` and up to nanoseconds, as seconds since the epoch."""
    if not text:
        return None
    head, _, fraction = text.rstrip("Z").partition(".")
    stamp = datetime.fromisoformat(head + "+00:00").timestamp()
    return stamp + (float("0." + fraction) if fraction else 0.0)


def parse_duration_s(text: str) -> float:
    """A google.protobuf.Duration in JSON form, e.g. "26s" or "1.5s"."""
    try:
        return float(text.removesuffix("s"))
    except ValueError:
        return 0.0
