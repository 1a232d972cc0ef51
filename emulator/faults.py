"""Injected faults: make the next N requests of a route answer an error.

A rule either answers instead of the request (the default: nothing happens upstream), or with
``after`` performs the request for real and then answers the error anyway, which simulates a
response lost on the way back (e.g. the model was created but the caller saw a 503). If the
real request fails, its own error is answered and the rule is used up all the same.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from emulator.errors import SERVICE, TYPE_PREFIX, ApiError, JsonObject, invalid_argument
from emulator.protojson import duration
from emulator.routes import ROUTE_NAMES

DEFAULT_RETRY_DELAY_S = 1.0
_MESSAGES = {
    429: "Resource has been exhausted (e.g. check quota).",
    500: "Internal error encountered.",
    503: "The service is currently unavailable.",
    504: "Deadline expired before operation could complete.",
}


@dataclass
class FaultRule:
    """Answer ``status`` to the next ``times`` requests of ``route``.

    Attributes:
        route: a route name from ``emulator.routes`` (``tunedModels.create``).
        status: the HTTP status to answer (400-599).
        times: how many matching requests remain to be failed.
        retry_delay_s: for 429, the ``RetryInfo.retryDelay``.
        after: perform the request, then answer the error anyway.
        message: the error message (a canonical one by default).
    """

    route: str
    status: int
    times: int = 1
    retry_delay_s: float = DEFAULT_RETRY_DELAY_S
    after: bool = False
    message: str = ""

    @classmethod
    def from_json(cls, raw: Any) -> FaultRule:
        """Validate one rule of a ``POST /_emulator/faults`` body; 400 if malformed."""
        if not isinstance(raw, dict) or raw.get("route") not in ROUTE_NAMES:
            raise invalid_argument(f"Each rule needs a 'route' among {sorted(ROUTE_NAMES)}.")
        status, times = raw.get("status"), raw.get("times", 1)
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise invalid_argument("A rule's 'status' must be an HTTP error code (400-599).")
        if not isinstance(times, int) or times < 1:
            raise invalid_argument("A rule's 'times' must be a positive integer.")
        delay_s = raw.get("retry_delay_s", DEFAULT_RETRY_DELAY_S)
        if not isinstance(delay_s, int | float) or delay_s < 0:
            raise invalid_argument("A rule's 'retry_delay_s' must be a non-negative number.")
        after, message = bool(raw.get("after", False)), str(raw.get("message", ""))
        return cls(raw["route"], status, times, float(delay_s), after, message)

    def error(self) -> ApiError:
        """The error this rule answers, with the details Google sends for its status."""
        message = self.message or _MESSAGES.get(self.status, "Emulated fault.")
        details = _quota_details(self.retry_delay_s) if self.status == 429 else ()
        return ApiError(self.status, message, details=details)


class FaultBook:
    """The pending fault rules, consumed first-in first-out per route."""

    def __init__(self) -> None:
        self._rules: deque[FaultRule] = deque()

    def add(self, rules: list[FaultRule]) -> None:
        """Queue rules after those already pending."""
        self._rules.extend(rules)

    def clear(self) -> None:
        """Drop every pending rule."""
        self._rules.clear()

    def pending(self) -> int:
        """How many faulted requests remain in total."""
        return sum(rule.times for rule in self._rules)

    def take(self, route: str) -> FaultRule | None:
        """The rule that applies to this request of ``route``, using up one of its times."""
        rule = next((r for r in self._rules if r.route == route), None)
        if rule is None:
            return None
        rule.times -= 1
        if rule.times == 0:
            self._rules.remove(rule)
        return rule


def parse_rules(body: JsonObject) -> list[FaultRule]:
    """The rules of a ``{"rules": [...]}`` body."""
    rules = body.get("rules")
    if not isinstance(rules, list):
        raise invalid_argument('Expected a body like {"rules": [...]}.')
    return [FaultRule.from_json(raw) for raw in rules]


def _quota_details(retry_delay_s: float) -> tuple[JsonObject, ...]:
    """QuotaFailure, Help and RetryInfo, as the real 429 carries them."""
    violation = {
        "quotaMetric": f"{SERVICE}/generate_requests_per_model",
        "quotaId": "RequestsPerMinutePerProjectPerModel",
        "quotaDimensions": {"location": "global"},
    }
    link = {
        "description": "Learn more about Gemini API quotas",
        "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
    }
    return (
        {"@type": TYPE_PREFIX + "google.rpc.QuotaFailure", "violations": [violation]},
        {"@type": TYPE_PREFIX + "google.rpc.Help", "links": [link]},
        {"@type": TYPE_PREFIX + "google.rpc.RetryInfo", "retryDelay": duration(retry_delay_s)},
    )
