"""Injected faults: rules that change how the next N requests of a route are answered.

Rules are posted to ``POST /_emulator/faults`` as ``{"rules": [...]}``, loaded at start from
``--faults-file`` (a file holding the same body), listed by ``GET /_emulator/faults`` and
dropped by ``DELETE /_emulator/faults``. Each request of a route uses up one of the ``times``
of the first pending rule for that route (first in, first out), whatever happens to it.

The knobs of one rule (``route`` is required, and at least one of ``status``, ``latency_s``,
``drop`` or ``training``):

- ``route``: a route name from ``emulator.routes``, e.g. ``"tunedModels.create"``.
- ``times``: how many requests the rule applies to (default 1).
- ``status``: answer this HTTP error (400-599) with the Google error envelope, instead of
  performing the request (nothing happens upstream). ``message`` replaces the canonical
  message; for 429, ``retry_delay_s`` (default 1) is the ``RetryInfo.retryDelay``.
- ``after: true`` (with ``status``): perform the request for real, then answer the error
  anyway: a response lost on the way back (the model was created, the caller saw a 503). If
  the real request fails, its own error is answered.
- ``latency_s``: wait this many seconds of real time (not the injected clock) before handling
  the request. Alone, the request is then answered normally; with ``status``, the error is
  answered after the wait.
- ``hold_s``: perform the request for real, then wait this many seconds of real time before
  answering: the work is done upstream while the caller still waits, so a caller killed in
  that window (the test's SIGKILL) never learns of it.
- ``drop: true``: perform the request for real, then close the connection without sending
  any HTTP response, so the caller sees a connection error (the request happened upstream,
  its answer was lost). A dropped request gets no answer at all, so ``drop`` excludes
  ``status``.
- ``training`` (routes ``tunedModels.create`` and ``tuningJobs.create`` only):
  ``{"fail_at_step": K}`` or ``{"stall_at_step": K}``. The create itself succeeds, but the
  training of the model (or Vertex tuning job) it creates ends FAILED at step K (error 13
  "Tuning failed: emulated training failure at step K.") or stalls at step K for ever (state
  CREATING, operation never done; a tuning job stays JOB_STATE_RUNNING) until it is cancelled
  or deleted. K is clamped to ``[0, totalSteps]``. On ``tuningJobs.create`` only,
  ``{"fail_creating_endpoint": true}``: every step completes and the tuned model is uploaded,
  then the job ends JOB_STATE_FAILED with error 13 "Failed to create endpoint" and
  ``tunedModel.model`` set (no endpoint), as seen from the real service. With ``status``
  ``training`` needs ``after: true``, since otherwise nothing is created.
- ``cut_after_chunks`` (stream routes ``tunedModels.streamGenerateContent`` and
  ``endpoints.streamGenerateContent`` only): a non-negative integer N; the stream's first N
  chunks are sent, then the connection is closed with no terminator (no closing ``]``, no
  final HTTP chunk), so the caller sees a stream broken in the middle.
- ``chunk_delay_s`` (stream routes only): wait this many seconds of real time between two
  chunks, so a caller can cancel while the stream is open. On stream routes ``after`` and
  ``drop`` are refused: the stream has been sent before they would act.
- ``stamp_chunks: true`` (stream routes only): record the moment each chunk is sent, read
  back from ``GET /_emulator/streams`` (``emulator.stream_stamps``); the stream on the wire
  is unchanged. Benchmarks use it to time a chunk from the upstream to a caller.

Example::

    {"rules": [
      {"route": "tunedModels.create", "status": 503, "times": 2},
      {"route": "operations.get", "status": 429, "retry_delay_s": 30},
      {"route": "tunedModels.get", "latency_s": 0.5},
      {"route": "tunedModels.create", "drop": true},
      {"route": "tunedModels.create", "training": {"stall_at_step": 5}, "times": 3},
      {"route": "tuningJobs.create", "training": {"fail_creating_endpoint": true}},
      {"route": "tunedModels.streamGenerateContent", "cut_after_chunks": 2},
      {"route": "endpoints.streamGenerateContent", "chunk_delay_s": 0.5}
    ]}

Unknown keys are refused (400), so a misspelt knob cannot silently do nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulator.errors import ApiError, JsonObject, resource_exhausted
from emulator.routes import MODELS_CREATE, ROUTE_NAMES, STREAM_ROUTES, TUNING_JOBS_CREATE
from emulator.training import Stop

DEFAULT_RETRY_DELAY_S = 1.0
_MESSAGES = {
    429: "Resource has been exhausted (e.g. check quota).",
    500: "Internal error encountered.",
    503: "The service is currently unavailable.",
    504: "Deadline expired before operation could complete.",
}
_KEYS = frozenset(
    {
        "route",
        "status",
        "times",
        "retry_delay_s",
        "after",
        "message",
        "latency_s",
        "hold_s",
        "drop",
        "training",
        "cut_after_chunks",
        "chunk_delay_s",
        "stamp_chunks",
    }
)
_FAIL_AT, _STALL_AT = "fail_at_step", "stall_at_step"
_ENDPOINT_FAILURE = "fail_creating_endpoint"
_TRAINING_ROUTES = (MODELS_CREATE.name, TUNING_JOBS_CREATE.name)
_STREAM_ROUTES = tuple(route.name for route in STREAM_ROUTES)


class InvalidFaultRule(ValueError):
    """A fault rule (or a file of them) is malformed; answered as 400 by the endpoint."""


@dataclass(frozen=True)
class FaultRule:
    """How to answer the next ``times`` requests of ``route`` (see the module docstring).

    Attributes:
        route: a route name from ``emulator.routes`` (``tunedModels.create``).
        status: the HTTP error status to answer (400-599), or ``None`` for no error.
        times: how many matching requests the rule applies to.
        retry_delay_s: for 429, the ``RetryInfo.retryDelay``, seconds.
        after: perform the request, then answer the error anyway.
        message: the error message (a canonical one by default).
        latency_s: real seconds to wait before handling the request.
        hold_s: real seconds to wait after handling the request, before answering.
        drop: perform the request, then close the connection without an answer.
        training: where the created model's training fails or stalls (creates only).
        endpoint_failure: the created tuning job fails creating its endpoint, after its
            model is uploaded (``tuningJobs.create`` only).
        cut_after_chunks: close a stream after this many chunks (stream routes only).
        chunk_delay_s: real seconds to wait between two chunks of a stream.
        stamp_chunks: record each chunk's send time (``emulator.stream_stamps``).
    """

    route: str
    status: int | None = None
    times: int = 1
    retry_delay_s: float = DEFAULT_RETRY_DELAY_S
    after: bool = False
    message: str = ""
    latency_s: float = 0.0
    hold_s: float = 0.0
    drop: bool = False
    training: Stop | None = None
    endpoint_failure: bool = False
    cut_after_chunks: int | None = None
    chunk_delay_s: float = 0.0
    stamp_chunks: bool = False

    @classmethod
    def from_json(cls, raw: Any) -> FaultRule:
        """Validate one rule of a ``POST /_emulator/faults`` body."""
        route = raw.get("route") if isinstance(raw, dict) else None
        if not isinstance(route, str) or route not in ROUTE_NAMES:
            raise InvalidFaultRule(f"Each rule needs a 'route' among {sorted(ROUTE_NAMES)}.")
        unknown = sorted(set(raw) - _KEYS)
        if unknown:
            raise InvalidFaultRule(f"Unknown rule keys {unknown}; known: {sorted(_KEYS)}.")
        rule = cls(
            route=route,
            status=_status(raw.get("status")),
            times=_times(raw.get("times", 1)),
            retry_delay_s=_seconds(raw, "retry_delay_s", DEFAULT_RETRY_DELAY_S),
            after=bool(raw.get("after", False)),
            message=str(raw.get("message", "")),
            latency_s=_seconds(raw, "latency_s", 0.0),
            hold_s=_seconds(raw, "hold_s", 0.0),
            drop=_flag(raw, "drop"),
            training=_training(raw.get("training")),
            endpoint_failure=_endpoint_failure(raw.get("training")),
            cut_after_chunks=_chunk_count(raw.get("cut_after_chunks")),
            chunk_delay_s=_seconds(raw, "chunk_delay_s", 0.0),
            stamp_chunks=_flag(raw, "stamp_chunks"),
        )
        rule.check_combination()
        return rule

    def check_combination(self) -> None:
        """Refuse rules that do nothing or whose knobs contradict each other."""
        effects = (self.latency_s, self.hold_s, self.drop, self.training, self.endpoint_failure)
        if self.status is None and not any(effects) and not self._streams():
            raise InvalidFaultRule(
                "A rule needs a 'status' (an HTTP error code, 400-599), 'latency_s' > 0, "
                "'hold_s' > 0, 'drop', 'training', 'cut_after_chunks', 'chunk_delay_s' > 0 "
                "or 'stamp_chunks'."
            )
        if self.drop and self.status is not None:
            raise InvalidFaultRule("'drop' sends no answer, so it cannot have a 'status'.")
        if self.after and self.status is None:
            raise InvalidFaultRule("'after' needs a 'status' to answer.")
        if self.training is not None or self.endpoint_failure:
            self._check_training()
        if self._streams() and self.route not in _STREAM_ROUTES:
            raise InvalidFaultRule(
                "'cut_after_chunks', 'chunk_delay_s' and 'stamp_chunks' apply to routes "
                f"{_STREAM_ROUTES} only."
            )
        if self.route in _STREAM_ROUTES and (self.after or self.drop):
            raise InvalidFaultRule(
                "On a stream route 'after' and 'drop' are refused: the stream is sent before "
                "they would act. Use 'cut_after_chunks'."
            )

    def _streams(self) -> bool:
        return self.cut_after_chunks is not None or self.chunk_delay_s > 0 or self.stamp_chunks

    def _check_training(self) -> None:
        if self.route not in _TRAINING_ROUTES:
            raise InvalidFaultRule(f"'training' applies to routes {_TRAINING_ROUTES} only.")
        if self.endpoint_failure and self.route != TUNING_JOBS_CREATE.name:
            raise InvalidFaultRule(
                f"'training.{_ENDPOINT_FAILURE}' applies to route {TUNING_JOBS_CREATE.name!r} only."
            )
        if self.status is not None and not self.after:
            raise InvalidFaultRule(
                "'training' with a 'status' needs 'after': true, or no model is created."
            )

    def error(self) -> ApiError | None:
        """The error this rule answers, with the details Google sends for its status."""
        if self.status is None:
            return None
        message = self.message or _MESSAGES.get(self.status, "Emulated fault.")
        if self.status == 429:
            return resource_exhausted(message, self.retry_delay_s)
        return ApiError(self.status, message)

    def to_json(self, times: int) -> JsonObject:
        """The rule as ``POST /_emulator/faults`` takes it, with ``times`` remaining."""
        body: JsonObject = {"route": self.route, "times": times}
        knobs = {
            "status": self.status,
            "after": self.after,
            "message": self.message,
            "latency_s": self.latency_s,
            "hold_s": self.hold_s,
            "drop": self.drop,
            "chunk_delay_s": self.chunk_delay_s,
            "stamp_chunks": self.stamp_chunks,
        }
        body |= {key: value for key, value in knobs.items() if value}
        if self.retry_delay_s != DEFAULT_RETRY_DELAY_S:
            body["retry_delay_s"] = self.retry_delay_s
        if self.training is not None:
            key = _FAIL_AT if self.training.fails else _STALL_AT
            body["training"] = {key: self.training.step}
        if self.endpoint_failure:
            body["training"] = {_ENDPOINT_FAILURE: True}
        if self.cut_after_chunks is not None:
            body["cut_after_chunks"] = self.cut_after_chunks
        return body


@dataclass
class _Pending:
    rule: FaultRule
    remaining: int


class FaultBook:
    """The pending fault rules, consumed first-in first-out per route."""

    def __init__(self, rules: Iterable[FaultRule] = ()) -> None:
        self._pending: list[_Pending] = []
        self.add(rules)

    def add(self, rules: Iterable[FaultRule]) -> None:
        """Queue rules after those already pending."""
        self._pending.extend(_Pending(rule, rule.times) for rule in rules)

    def clear(self) -> None:
        """Drop every pending rule."""
        self._pending.clear()

    def pending(self) -> int:
        """How many faulted requests remain in total."""
        return sum(item.remaining for item in self._pending)

    def listing(self) -> list[JsonObject]:
        """The pending rules in order, each with the times it has left."""
        return [item.rule.to_json(item.remaining) for item in self._pending]

    def take(self, route: str) -> FaultRule | None:
        """The rule that applies to this request of ``route``, using up one of its times."""
        item = next((p for p in self._pending if p.rule.route == route), None)
        if item is None:
            return None
        item.remaining -= 1
        if item.remaining == 0:
            self._pending.remove(item)
        return item.rule


def parse_rules(body: Any) -> list[FaultRule]:
    """The rules of a ``{"rules": [...]}`` body; :class:`InvalidFaultRule` if malformed."""
    rules = body.get("rules") if isinstance(body, dict) else None
    if not isinstance(rules, list):
        raise InvalidFaultRule('Expected a body like {"rules": [...]}.')
    return [FaultRule.from_json(raw) for raw in rules]


def load_fault_rules(path: str | Path) -> tuple[FaultRule, ...]:
    """Read rules from a JSON file holding a ``POST /_emulator/faults`` body."""
    try:
        return tuple(parse_rules(json.loads(Path(path).read_text(encoding="utf-8"))))
    except ValueError as exc:  # also json.JSONDecodeError
        raise InvalidFaultRule(f"{path}: {exc}") from exc


def _status(value: Any) -> int | None:
    if value is None:
        return None
    if not _is_int(value) or not 400 <= value <= 599:
        raise InvalidFaultRule("A rule's 'status' must be an HTTP error code (400-599).")
    return int(value)


def _times(value: Any) -> int:
    if not _is_int(value) or value < 1:
        raise InvalidFaultRule("A rule's 'times' must be a positive integer.")
    return int(value)


def _seconds(raw: JsonObject, key: str, default: float) -> float:
    value = raw.get(key, default)
    valid = isinstance(value, int | float) and not isinstance(value, bool)
    if not valid or not math.isfinite(value) or value < 0:
        raise InvalidFaultRule(f"A rule's {key!r} must be a non-negative number of seconds.")
    return float(value)


def _chunk_count(value: Any) -> int | None:
    if value is None:
        return None
    if not _is_int(value) or value < 0:
        raise InvalidFaultRule("A rule's 'cut_after_chunks' must be a non-negative integer.")
    return int(value)


def _flag(raw: JsonObject, key: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise InvalidFaultRule(f"A rule's {key!r} must be true or false.")
    return value


def _training(value: Any) -> Stop | None:
    """``{"fail_at_step": K}`` or ``{"stall_at_step": K}``, K a non-negative integer."""
    if value is None or _endpoint_failure(value):
        return None
    if not isinstance(value, dict) or len(value) != 1 or not set(value) <= {_FAIL_AT, _STALL_AT}:
        raise InvalidFaultRule(
            f"A rule's 'training' must be {{{_FAIL_AT!r}: K}}, {{{_STALL_AT!r}: K}} or "
            f"{{{_ENDPOINT_FAILURE!r}: true}}."
        )
    key, step = next(iter(value.items()))
    if not _is_int(step) or step < 0:
        raise InvalidFaultRule(f"'training.{key}' must be a non-negative integer.")
    return Stop(int(step), fails=key == _FAIL_AT)


def _endpoint_failure(value: Any) -> bool:
    """Whether ``training`` is ``{"fail_creating_endpoint": true}``."""
    return isinstance(value, dict) and value == {_ENDPOINT_FAILURE: True}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
