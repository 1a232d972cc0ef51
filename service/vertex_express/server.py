"""The facade's HTTP server: authentication, bounds and errors around every route.

Each request, in order: a request id (the caller's `x-request-id`, or a new one, as the
gRPC API's: service.observability); the caller, from `x-goog-api-key` (where
google-genai puts its API key, here the tenant's platform token) or `Authorization:
Bearer`, and under mutual TLS the client certificate's Common Name, checked by
service.auth exactly as for gRPC, before anything else is read; the refusal brake's
turn (service.refusal_brake, shared with the gRPC API); the route, from the path alone
(service.vertex_express.names); then the body, read only up to the limit of the gRPC
method that serves the route (service.message_limits: CreateTuningJob's for a create,
GenerateContent's for a generate, the small-request limit otherwise), refused as
REQUEST_TOO_LARGE beyond it, before it is parsed, and charged to the tenant's receive
budget, the gRPC API's own (service.receive_budget: a tenant in debt is held back before
its body is read). Errors are Google's JSON envelope (service.vertex_express.errors)
naming the request id, never a stack trace. Creates and cancels, refused or not (at
authentication too: the route tried is known from the path's shape), are recorded in the
audit trail (service.audit `AuditTrail.record`, `AUDITED_ROUTES`). With tracing on, each
request is a server span (core.runtime.tracing), a child of its `traceparent` header.

TLS follows the gRPC listener's settings (service.tls): the same certificate, and with
a client CA every client must present a certificate it signed; the facade never falls
back to plaintext when TLS is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, Awaitable
from dataclasses import dataclass
from typing import Any

import grpc
from aiohttp import web
from google.rpc import code_pb2
from opentelemetry.trace import Span, SpanKind

from core.errors import (
    DeadlineExceeded,
    FieldViolation,
    InvalidArgument,
    NotFound,
    TuningError,
    echo,
    to_status,
)
from core.runtime import logs, tracing
from core.runtime.deadline import within
from core.runtime.metrics import Metrics
from core.runtime.settings import Settings
from core.security.tenants import Role, TenantDirectory
from service.audit import AuditTrail, Call
from service.auth import authenticate, authorize, bearer_token
from service.errors import internal_status, status_code
from service.message_limits import (
    CREATE_TUNING_JOB,
    GENERATE_CONTENT,
    Limit,
    MessageLimits,
    too_large,
)
from service.observability import RequestIds
from service.refusal_brake import RefusalBrake
from service.vertex_express.errors import HTTP_STATUS, envelope, error_response
from service.vertex_express.facade import ExpressFacade
from service.vertex_express.names import API_VERSION, Route, Target, route_of, target_of

log = logging.getLogger(__name__)

SSE_EVENT = "data: {}\r\n\r\n"
"""One server-sent event, as Google frames `streamGenerateContent?alt=sse`."""
_VERSION_PREFIX = f"/{API_VERSION}/"
_ROUTES: dict[tuple[str, Route], str] = {
    ("POST", Route.JOBS): "tuningJobs.create",
    ("GET", Route.JOBS): "tuningJobs.list",
    ("GET", Route.JOB): "tuningJobs.get",
    ("POST", Route.CANCEL): "tuningJobs.cancel",
    ("POST", Route.GENERATE): "endpoints.generateContent",
    ("POST", Route.STREAM): "endpoints.streamGenerateContent",
}
"""The facade's routes: (HTTP method, path kind) -> the Vertex AI method served."""
METRIC_PREFIX = "/vertex_express/"
"""The `method` label of the facade's requests in `tuning_rpcs` and its latency
histogram: this and the Vertex AI method (`/vertex_express/tuningJobs.create`), or
`unrouted` for a request refused before its route was known."""
MAX_SERVER_TIMEOUT_CHARS = 7
SPAN_PATH_CHARS = 256
"""The most of a request's path a span keeps (`url.path`)."""
AUDITED_ROUTES = {"tuningJobs.create": "create_job", "tuningJobs.cancel": "cancel_job"}
"""The state-changing routes, recorded in the audit trail (service.audit) with the gRPC
API's action verbs, the job named as tuning.v1 names it (`tuningJobs/{id}`)."""


class ExpressApp:
    """The aiohttp handler of every request to the facade."""

    def __init__(
        self,
        facade: ExpressFacade,
        tenants: TenantDirectory,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        brake: RefusalBrake | None = None,
        audit: AuditTrail | None = None,
        limits: MessageLimits | None = None,
    ) -> None:
        """`limits`: the gRPC API's (service.message_limits), so that a tenant's bodies
        here are charged to the receive budget its RPCs are (default: a budget of its own)."""
        self._audit = audit
        self._facade = facade
        self._tenants = tenants
        self._mutual_tls = bool(settings.tls_client_ca_file)
        self._idle_s = settings.upload_idle_timeout_s
        self._metrics = metrics
        self._brake = brake
        self._ids = RequestIds()
        limits = limits or MessageLimits.from_settings(settings)
        self._budget = limits.budget
        self._limits: dict[Route, Limit] = {
            Route.JOBS: limits.of(CREATE_TUNING_JOB),
            Route.GENERATE: limits.of(GENERATE_CONTENT),
            Route.STREAM: limits.of(GENERATE_CONTENT),
        }
        self._small = limits.default

    def application(self) -> web.Application:
        """One catch-all route: the paths are matched by names.target_of alone."""
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Every request: see the module's docstring for the order of the checks."""
        headers = [(k.lower(), v) for k, v in request.headers.items()]
        span = _server_span(request, headers)  # None while tracing is off
        with tracing.current(span):
            return await self._handled(request, headers, span)

    async def _handled(
        self, request: web.Request, headers: list[tuple[str, str]], span: Span | None
    ) -> web.StreamResponse:
        request_id = self._ids.of(headers)
        # A connection's requests share one task: what one request set must not be the
        # next one's (a stranger's log lines naming the previous caller).
        reset_id, reset_tenant = logs.request_id.set(request_id), logs.tenant.set("")
        call = _Call(time.perf_counter(), http_method=request.method)
        try:
            return await self._served(request, headers, call)
        except TuningError as exc:
            call.code = exc.code
            if not call.tenant and self._brake is not None:
                await _maybe(self._brake.unauthenticated())
            return error_response(to_status(exc), request_id)
        except Exception:
            log.exception("unexpected error in the Vertex AI express facade")
            call.code = code_pb2.INTERNAL
            return error_response(internal_status(), request_id)
        finally:
            self._ended(call, span)
            logs.request_id.reset(reset_id)
            logs.tenant.reset(reset_tenant)

    async def _served(
        self, request: web.Request, headers: list[tuple[str, str]], call: _Call
    ) -> web.StreamResponse:
        call.tried = _tried(request)  # so that a create or cancel refused here is recorded
        call.tenant = await self._admitted(request, headers, call)
        target = _target(request, call.tenant)
        call.method = _ROUTES[(request.method, target.route)]
        call.received, body = await self._body(request, target.route, call)
        with _caller_deadline(request):
            return await self._answer(request, target, call, body)

    async def _admitted(
        self, request: web.Request, headers: list[tuple[str, str]], call: _Call
    ) -> str:
        """The caller, a tenant (service.auth), once its brake lets it in; who it proved
        to be, even if then refused, is noted on `call` for the audit trail."""
        common_name = _peer_common_name(request) if self._mutual_tls else None
        principal = authenticate(self._tenants, bearer_token(headers), common_name)
        call.principal, call.role = principal.id, principal.role.value
        authorize(principal, Role.TENANT)
        logs.tenant.set(principal.id)
        if self._brake is not None:
            await _maybe(self._brake.turn(principal.id))
        return principal.id

    async def _body(self, request: web.Request, route: Route, call: _Call) -> tuple[int, object]:
        """The request's JSON (None for a GET), read up to the route's limit, each chunk
        within the upload idle timeout (a body that stalls holds nothing for long), and
        charged to the tenant's receive budget: a tenant in debt is held back before any
        of it is read, as its RPCs are (service.receive_budget)."""
        if request.method == "GET":
            return 0, None
        limit = self._limits.get(route, self._small)
        name = f"Vertex AI {call.method}"
        declared = request.content_length
        if declared is not None and declared > limit.max_bytes:
            raise too_large(name, declared, limit)
        await _maybe(self._budget.turn(call.tenant))
        raw = bytearray()
        while chunk := await self._next_chunk(request):
            raw += chunk
            if len(raw) > limit.max_bytes:
                raise too_large(name, len(raw), limit)
        self._budget.charge(call.tenant, len(raw))
        return len(raw), _json(bytes(raw))

    async def _next_chunk(self, request: web.Request) -> bytes:
        try:
            async with asyncio.timeout(self._idle_s):
                return await request.content.readany()
        except TimeoutError:
            raise DeadlineExceeded(
                f"the request body paused longer than {self._idle_s:g} s "
                "(TUNING_UPLOAD_IDLE_TIMEOUT_S); send it without pauses"
            ) from None

    async def _answer(
        self, request: web.Request, target: Target, call: _Call, body: object
    ) -> web.StreamResponse:
        facade, tenant = self._facade, call.tenant
        match target.route:
            case Route.STREAM:
                return await _streamed(request, facade.stream(tenant, target, body))
            case Route.JOBS if request.method == "POST":
                answer = await facade.create(tenant, body)
                call.resource = "tuningJobs/" + str(answer.get("name", "")).rpartition("/")[2]
            case Route.JOBS:
                answer = await facade.list(tenant, request.query)
            case Route.JOB:
                answer = await facade.get(tenant, target)
            case Route.CANCEL:
                call.resource = target.job_name
                answer = await facade.cancel(tenant, target)
            case Route.GENERATE:
                answer = await facade.generate(tenant, target, body)
        return web.json_response(answer)

    def _ended(self, call: _Call, span: Span | None) -> None:
        """Tell the brake how the call ended, count it, and end its span's record."""
        code = status_code(call.code) if call.code else None
        if span is not None:
            _span_ended(span, call, code)
        if self._brake is not None and call.tenant:
            self._brake.ended(call.tenant, code, call.received)
        if self._audit is not None and (call.method or call.tried) in AUDITED_ROUTES:
            self._audit.record(_audited(call, (code or grpc.StatusCode.OK).name))
        if self._metrics is not None:
            method = METRIC_PREFIX + (call.method or "unrouted")
            self._metrics.rpcs.labels(method, (code or grpc.StatusCode.OK).name).inc()
            self._metrics.rpc_latency.labels(method).observe(time.perf_counter() - call.started)


@dataclass
class _Call:
    """What is known of a request as it is served: for the brake and the metrics."""

    started: float
    http_method: str = ""
    tried: str = ""
    """The Vertex AI method the path has the shape of (`method` is the one routed to,
    once the caller is known)."""
    principal: str = ""
    """Who the caller proved to be (a tenant, or an admin refused here); "" if no one."""
    role: str = ""
    tenant: str = ""
    method: str = ""
    received: int = 0
    code: int = 0
    resource: str = ""


def _server_span(request: web.Request, headers: list[tuple[str, str]]) -> Span | None:
    """The request's server span, a child of its `traceparent` if it sent a usable one;
    named by the HTTP method until its route is known (`_span_ended`)."""
    if tracing.tracer() is None:
        return None
    attributes = {
        "http.request.method": request.method,
        "url.path": request.path[:SPAN_PATH_CHARS],
    }
    return tracing.start_span(
        request.method,
        kind=SpanKind.SERVER,
        parent=tracing.parent_from(headers),
        attributes=attributes,
    )


def _span_ended(span: Span, call: _Call, code: grpc.StatusCode | None) -> None:
    """Name the span by its route (`POST tuningJobs.create`), with the answer's HTTP
    status and gRPC code; a refusal marks it failed, by the code's name only."""
    if call.method:
        span.update_name(f"{call.http_method} {call.method}")
    value = code.value[0] if code is not None else 0
    span.set_attribute("rpc.grpc.status_code", value)
    span.set_attribute("http.response.status_code", HTTP_STATUS.get(value, 500) if value else 200)
    if code is not None and code is not grpc.StatusCode.OK:
        tracing.failed(span, code.name)


def _tried(request: web.Request) -> str:
    """The Vertex AI method the request's HTTP method and path have the shape of, before
    its caller is known; "" for none."""
    path = request.path
    route = route_of(path[len(_VERSION_PREFIX) :]) if path.startswith(_VERSION_PREFIX) else None
    return "" if route is None else _ROUTES.get((request.method, route), "")


def _audited(call: _Call, outcome: str) -> Call:
    """The audit trail's record of a create or cancel, refused or not: by whom it was
    tried ("" for a caller who proved no one: logged, not stored, as for gRPC)."""
    method = call.method or call.tried
    return Call(
        method=METRIC_PREFIX + method,
        action=AUDITED_ROUTES[method],
        principal=call.principal,
        role=call.role,
        tenant=call.tenant,
        resource=call.resource,
        outcome=outcome,
    )


def _caller_deadline(request: web.Request) -> contextlib.AbstractContextManager[None]:
    """The upstream requests made inside end by the caller's `X-Server-Timeout` (seconds,
    which google-genai sends when its call has a timeout), if it sent a usable one."""
    text = request.headers.get("X-Server-Timeout", "")
    if not (0 < len(text) <= MAX_SERVER_TIMEOUT_CHARS and text.isdigit() and int(text) > 0):
        return contextlib.nullcontext()
    return within(float(text))


def _target(request: web.Request, tenant: str) -> Target:
    """The route the request's method and path name; NotFound for any other."""
    path = request.path
    target = (
        target_of(path[len(_VERSION_PREFIX) :], tenant)
        if path.startswith(_VERSION_PREFIX)
        else None
    )
    if target is None or (request.method, target.route) not in _ROUTES:
        raise NotFound(f"{echo(request.method)} {echo(path)} is not served here")
    return target


def _json(raw: bytes) -> object:
    """The body as JSON; an empty body is an empty object (a cancel's)."""
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidArgument(
            "Invalid JSON payload received",
            [FieldViolation("request", "the body is not JSON (UTF-8)")],
        ) from None


async def _streamed(request: web.Request, chunks: AsyncGenerator[Any]) -> web.StreamResponse:
    """Server-sent events, one per chunk. An error before the first chunk is an ordinary
    error answer; one after it, an event of Google's error envelope, which ends the stream
    (google-genai raises it)."""
    async with contextlib.aclosing(chunks):
        first = await anext(chunks, None)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            if first is not None:
                await response.write(SSE_EVENT.format(json.dumps(first)).encode())
            async for chunk in chunks:
                await response.write(SSE_EVENT.format(json.dumps(chunk)).encode())
        except TuningError as exc:
            await response.write(SSE_EVENT.format(json.dumps(envelope(to_status(exc)))).encode())
        except Exception:
            log.exception("unexpected error in a streamGenerateContent of the express facade")
            await response.write(SSE_EVENT.format(json.dumps(envelope(internal_status()))).encode())
        await response.write_eof()
        return response


def _peer_common_name(request: web.Request) -> str | None:
    """The subject Common Name of the client's verified certificate, if any."""
    transport = request.transport
    cert = transport.get_extra_info("peercert") if transport is not None else None
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


async def _maybe(wait: Awaitable[None] | None) -> None:
    if wait is not None:
        await wait
