"""Request middlewares: the error envelope, request counting, the rate limit and faults."""

from __future__ import annotations

import asyncio
from contextvars import ContextVar

from aiohttp import web
from aiohttp.typedefs import Handler

from emulator.errors import ApiError, resource_exhausted, route_not_found
from emulator.faults import FaultRule
from emulator.routes import OAUTH_TOKEN, Route
from emulator.state import EmulatorState, state_of
from emulator.training import Stop

# Which API method each registered aiohttp route serves (filled by ``create_app``).
ROUTE_OF: web.AppKey[dict[web.AbstractRoute, Route]] = web.AppKey("emulator_route_of")

# The QuotaFailure quotaId of the rate limit's 429 (emulator.ratelimit).
RATE_LIMIT_QUOTA_ID = "RequestsPerSecondPerProject"

# The fault rule applied to the request being handled, whose ``training`` knob the create
# handlers read. A context variable set only around the handler call, so it cannot leak into
# another request; typed request storage would need aiohttp's newest ``RequestKey``.
_FORCED_RULE: ContextVar[FaultRule | None] = ContextVar("emulator_forced_rule", default=None)


def forced_stop() -> Stop | None:
    """The ``training`` stop a fault rule sets for the create being handled, if any."""
    rule = _FORCED_RULE.get()
    return rule.training if rule else None


def forced_rule() -> FaultRule | None:
    """The fault rule of the request being handled; streams read its chunk knobs."""
    return _FORCED_RULE.get()


def forced_endpoint_failure() -> bool:
    """Whether a fault rule makes the tuning job being created fail creating its endpoint."""
    rule = _FORCED_RULE.get()
    return rule.endpoint_failure if rule else False


def error_response(error: ApiError, route: Route | None = None) -> web.Response:
    """The ``{"error": {...}}`` envelope with the error's status and headers.

    The envelope is the route's: the JSON API's for Cloud Storage, ``google.rpc`` otherwise.
    """
    if route and route.json_api_errors:
        body = error.json_api_envelope()
    elif route:
        body = error.envelope(route.service, route.rpc_method)
    else:
        body = error.envelope()
    return web.json_response(body, status=error.code, headers=dict(error.headers))


@web.middleware
async def envelope_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer API errors, unknown paths and unbound methods with the error envelope.

    Google answers an unbound method on a known path (e.g. ``:cancel`` under v1beta) with 404,
    so 405 becomes 404 here too.
    """
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc, request.app[ROUTE_OF].get(request.match_info.route))
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
        return error_response(route_not_found(request.path))
    except web.HTTPClientError as exc:
        return error_response(ApiError(exc.status, exc.reason))


@web.middleware
async def count_and_inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count each API request by route, enforce the rate limit, then apply a fault rule.

    A request the rate limit refuses goes no further: it uses up no fault rule.
    """
    route = request.app[ROUTE_OF].get(request.match_info.route)
    if route is None:
        return await handler(request)
    state = state_of(request)
    state.requests[f"{request.method} {route.name}"] += 1
    if route != OAUTH_TOKEN:
        _enforce_rate_limit(state)
    rule = state.faults.take(route.name)
    if rule is None:
        return await handler(request)
    return await _with_fault(request, handler, rule)


def _enforce_rate_limit(state: EmulatorState) -> None:
    """429 RESOURCE_EXHAUSTED if the request is over the quota (``emulator.ratelimit``)."""
    retry_delay_s = state.rate_limit.admit(state.clock())
    if retry_delay_s is not None:
        raise resource_exhausted(
            f"Quota exceeded: at most {state.rate_limit.rps} requests per second.",
            retry_delay_s,
            quota_id=RATE_LIMIT_QUOTA_ID,
        )


async def _with_fault(
    request: web.Request, handler: Handler, rule: FaultRule
) -> web.StreamResponse:
    """Answer one request as ``rule`` says (the knobs are described in ``emulator.faults``)."""
    if rule.latency_s:
        await asyncio.sleep(rule.latency_s)  # real time on purpose: the caller's timeouts
    error = rule.error()
    if error is not None and not rule.after:
        raise error
    try:
        response = await _handle_with_rule(request, handler, rule)
        if rule.hold_s:
            await asyncio.sleep(rule.hold_s)  # done upstream; the answer waits
    finally:
        if rule.drop:
            _drop_connection(request)
    if error is not None:
        raise error
    return response


async def _handle_with_rule(
    request: web.Request, handler: Handler, rule: FaultRule
) -> web.StreamResponse:
    reset = _FORCED_RULE.set(rule)
    try:
        return await handler(request)
    finally:
        _FORCED_RULE.reset(reset)


def _drop_connection(request: web.Request) -> None:
    """Close the connection before anything is written, so the caller gets no HTTP answer.

    The request has been handled for real. aiohttp then fails to write the response (or the
    error envelope) to the closed transport, which it treats as a client that went away.
    """
    transport = request.transport
    if transport is not None:
        transport.close()
