"""Request middlewares: the error envelope, request counting and fault injection."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from emulator.errors import ApiError, route_not_found
from emulator.routes import Route
from emulator.state import state_of

# Which API method each registered aiohttp route serves (filled by ``create_app``).
ROUTE_OF: web.AppKey[dict[web.AbstractRoute, Route]] = web.AppKey("emulator_route_of")


def error_response(error: ApiError) -> web.Response:
    """The ``{"error": {...}}`` envelope with the error's status and headers."""
    return web.json_response(error.envelope(), status=error.code, headers=dict(error.headers))


@web.middleware
async def envelope_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer API errors, unknown paths and unbound methods with the error envelope.

    Google answers an unbound method on a known path (e.g. ``:cancel`` under v1beta) with 404,
    so 405 becomes 404 here too.
    """
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
        return error_response(route_not_found(request.path))
    except web.HTTPClientError as exc:
        return error_response(ApiError(exc.status, exc.reason))


@web.middleware
async def count_and_inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count each API request by route, and answer a pending fault rule's error if one applies."""
    route = request.app[ROUTE_OF].get(request.match_info.route)
    if route is None:
        return await handler(request)
    state = state_of(request)
    state.requests[f"{request.method} {route.name}"] += 1
    rule = state.faults.take(route.name)
    if rule is not None and not rule.after:
        raise rule.error()
    response = await handler(request)
    if rule is not None:
        raise rule.error()
    return response
