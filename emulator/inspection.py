"""Emulator-only endpoints under ``/_emulator/`` (no auth): statistics and fault injection.

Nothing like them exists on the real service. Tests use them to assert what reached the
"upstream" (``GET /_emulator/stats``) and to inject failures (``/_emulator/faults``).
"""

from __future__ import annotations

from aiohttp import web

from emulator.faults import parse_rules
from emulator.handling import ok, raw_json_body
from emulator.state import state_of


async def stats(request: web.Request) -> web.Response:
    """``GET /_emulator/stats``: request counts per route, live models, successful creates."""
    state = state_of(request)
    return ok(
        {
            "requests": dict(sorted(state.requests.items())),
            "models": len(state.models),
            "creates": state.models.creates,
        }
    )


async def add_faults(request: web.Request) -> web.Response:
    """``POST /_emulator/faults`` with ``{"rules": [...]}``: queue fault rules."""
    state = state_of(request)
    state.faults.add(parse_rules(await raw_json_body(request)))
    return ok({"pending": state.faults.pending()})


async def clear_faults(request: web.Request) -> web.Response:
    """``DELETE /_emulator/faults``: drop every pending rule."""
    state = state_of(request)
    state.faults.clear()
    return ok({})
