"""A project-wide request quota: at most N requests in any sliding window of one second.

The real service enforces per-project quotas and answers 429 ``RESOURCE_EXHAUSTED`` above
them. The emulator's knob (``--rate-limit-rps N``) imitates one such quota precisely, so that a
benchmark can tell whether a fleet of workers stays under it:

- A request arriving at time ``t`` (the emulator's injected clock) is **admitted** when fewer
  than N admitted requests arrived in the half-open window ``(t - 1 s, t]``; otherwise it is
  **refused** with 429.
- Refused requests do not count against the quota (a client that keeps knocking is not locked
  out for longer), and nothing else happens for them: no fault rule is used up, no model is
  touched.
- The refusal's ``RetryInfo.retryDelay`` is exact: the time until the oldest admitted request
  of the window leaves it, rounded up to the millisecond, so a request sent after that delay
  is admitted (unless others took the slot first).

A sliding window is the strictest reading of "N per second": unlike a per-clock-second count
it has no boundary at which 2N requests can pass within one second, and unlike a token bucket
it grants no burst. Every route except ``POST /token`` (and the ``/_emulator/`` endpoints,
which are not API routes) is limited, before authentication, as one quota shared by all
callers.
"""

from __future__ import annotations

import math
from collections import deque

WINDOW_S = 1.0


class SlidingWindowLimit:
    """At most ``rps`` admitted requests in any ``(t - 1 s, t]``; counts what it decides.

    Attributes:
        rps: the quota, requests per sliding second; 0 means no limit.
        admitted: requests admitted so far (all of them when there is no limit).
        refused: requests refused with 429 so far.
    """

    def __init__(self, rps: int) -> None:
        if rps < 0:
            raise ValueError("rate limit must be 0 (none) or a positive number of requests")
        self.rps = rps
        self.admitted = 0
        self.refused = 0
        self._recent_s: deque[float] = deque()

    def admit(self, now_s: float) -> float | None:
        """Admit a request arriving at ``now_s``: None, or seconds until a slot frees."""
        if self.rps:
            self._forget_before(now_s - WINDOW_S)
            if len(self._recent_s) >= self.rps:
                self.refused += 1
                return _ceil_ms(self._recent_s[0] + WINDOW_S - now_s)
            self._recent_s.append(now_s)
        self.admitted += 1
        return None

    def stats(self) -> dict[str, int]:
        """``{"rps", "admitted", "refused"}`` for ``GET /_emulator/stats``."""
        return {"rps": self.rps, "admitted": self.admitted, "refused": self.refused}

    def _forget_before(self, horizon_s: float) -> None:
        """Drop admitted arrivals at or before ``horizon_s``: outside ``(horizon, now]``."""
        while self._recent_s and self._recent_s[0] <= horizon_s:
            self._recent_s.popleft()


def _ceil_ms(seconds: float) -> float:
    """Round up to a whole millisecond (at least one), as the retry delay is written."""
    return max(math.ceil(round(seconds * 1000, 6)), 1) / 1000
