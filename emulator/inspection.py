"""Emulator-only endpoints under ``/_emulator/`` (no auth): statistics and fault injection.

Nothing like them exists on the real service. Tests use them to assert what reached the
"upstream" (``GET /_emulator/stats``) and to inject failures (``GET``, ``POST`` and ``DELETE
/_emulator/faults``; the rule knobs are described in ``emulator.faults``), and to time
streams (``GET`` and ``DELETE /_emulator/streams``, ``emulator.stream_stamps``).
"""

from __future__ import annotations

from aiohttp import web

from emulator.errors import invalid_argument
from emulator.faults import InvalidFaultRule, parse_rules
from emulator.handling import ok, raw_json_body
from emulator.state import state_of


async def stats(request: web.Request) -> web.Response:
    """``GET /_emulator/stats``: what reached the emulator.

    ``requests``: counts per ``"<METHOD> <route>"``; ``models``: live models; ``creates``:
    successful creates; ``user_projects``: authenticated API requests per
    ``x-goog-user-project`` value; ``tokens_issued``: successful ``/token`` exchanges;
    ``rate_limit``: the quota (``rps``, 0 for none) and the API requests it ``admitted`` and
    ``refused`` with 429 (``POST /token`` is neither).
    """
    state = state_of(request)
    return ok(
        {
            "requests": dict(sorted(state.requests.items())),
            "models": len(state.models),
            "creates": state.models.creates,
            "user_projects": dict(sorted(state.user_projects.items())),
            "tokens_issued": state.tokens.issued_count,
            "rate_limit": state.rate_limit.stats(),
        }
    )


async def add_faults(request: web.Request) -> web.Response:
    """``POST /_emulator/faults`` with ``{"rules": [...]}``: queue fault rules; 400 if invalid.

    The body is validated as a whole: when one rule is malformed, none is queued.
    """
    state = state_of(request)
    try:
        rules = parse_rules(await raw_json_body(request))
    except InvalidFaultRule as exc:
        raise invalid_argument(str(exc)) from exc
    state.faults.add(rules)
    return ok({"pending": state.faults.pending()})


async def list_faults(request: web.Request) -> web.Response:
    """``GET /_emulator/faults``: the pending rules in order, with the times each has left."""
    return ok({"rules": state_of(request).faults.listing()})


async def clear_faults(request: web.Request) -> web.Response:
    """``DELETE /_emulator/faults``: drop every pending rule."""
    state = state_of(request)
    state.faults.clear()
    return ok({})


async def list_streams(request: web.Request) -> web.Response:
    """``GET /_emulator/streams``: ``{"streams": [{"sent_monotonic_s": [...]}, ...]}``, the
    streams a ``stamp_chunks`` rule applied to, oldest first, each chunk's send moment in
    ``time.monotonic()`` seconds (``emulator.stream_stamps``)."""
    return ok(state_of(request).stream_stamps.listing())


async def clear_streams(request: web.Request) -> web.Response:
    """``DELETE /_emulator/streams``: forget every stamped stream."""
    state_of(request).stream_stamps.clear()
    return ok({})
