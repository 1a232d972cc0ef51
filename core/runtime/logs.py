"""Structured JSON logs: one object per line, with the request, tenant and job in context.

Secrets are redacted at the logger (the root handler's formatter), not at each call
site: whatever a library or a careless message carries, bearer tokens, access tokens,
refresh tokens and client secrets come out as `[REDACTED]`.

Two nets. Patterns catch what looks like a credential (`Bearer ...`, `ya29.`, `1//`,
`GOCSPX-`, `refresh_token=...` also inside escaped or URL-encoded JSON). And the
secrets this process actually holds are redacted by value, whatever their shape:
whoever loads or refreshes a credential (service.credentials_api, core.security.credentials)
adds its client secret, refresh token and access token to `known_secrets`, which
redacts each of them raw, JSON-escaped and URL-encoded.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
import urllib.parse
from collections import OrderedDict
from contextvars import ContextVar
from typing import Any

from core.runtime.tracing import ids_of_current

request_id: ContextVar[str] = ContextVar("request_id", default="")
tenant: ContextVar[str] = ContextVar("tenant", default="")
job: ContextVar[str] = ContextVar("job", default="")

_QUOTE = r"(?:\\*[\"']|%22)?"  # a quote, maybe JSON-escaped (\" or \\\"), or URL-encoded
_SECRETS = [
    re.compile(r"(?i)(bearer(?:\s|%20|\+)+)[A-Za-z0-9._~+/=%-]+"),
    re.compile(r"ya29\.[A-Za-z0-9._-]+"),
    re.compile(r"1(?://|%2[Ff]%2[Ff])[A-Za-z0-9._%-]{10,}"),  # Google refresh tokens
    re.compile(r"GOCSPX-[A-Za-z0-9_-]{8,}"),  # Google OAuth client secrets
    re.compile(
        r"(?i)((?:refresh_token|client_secret|access_token|id_token|api_key|key)"
        + _QUOTE
        + r"\s*(?::|=|%3A|%3D)\s*"
        + _QUOTE
        + r")[^\"'\s,&}\\]+"
    ),
    re.compile(r"AIza[0-9A-Za-z_-]{20,}"),  # API keys
]

MIN_SECRET_CHARS = 8
"""Shorter values are not registered: redacting them would blank ordinary words."""
MAX_KNOWN_SECRETS = 2048
"""The most secret values remembered (the oldest are forgotten first; a tenant's
refreshed access tokens replace each other roughly hourly)."""


def encodings(secret: str) -> set[str]:
    """The forms a secret takes in a log line: raw, JSON-escaped, URL-encoded."""
    escaped = json.dumps(secret)[1:-1]
    return {
        secret,
        escaped,
        escaped.replace("/", "\\/"),
        json.dumps(escaped)[1:-1],
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote(secret),
        urllib.parse.quote_plus(secret),
    }


class KnownSecrets:
    """The secret values this process holds, redacted from log lines in every encoding.

    Bounded (`max_secrets`, oldest out first); safe to add to from threads (google-auth
    refreshes in a thread)."""

    def __init__(self, max_secrets: int = MAX_KNOWN_SECRETS) -> None:
        self._max_secrets = max_secrets
        self._secrets: OrderedDict[str, None] = OrderedDict()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, *secrets: str | None) -> None:
        """Remember `secrets` (empty, None and short values are ignored)."""
        with self._lock:
            for secret in secrets:
                if secret and len(secret) >= MIN_SECRET_CHARS and secret not in self._secrets:
                    self._secrets[secret] = None
                    self._pattern = None
            while len(self._secrets) > self._max_secrets:
                self._secrets.popitem(last=False)

    def redact(self, text: str) -> str:
        """`text` with every form of every known secret replaced by [REDACTED]."""
        pattern = self._current_pattern()
        return text if pattern is None else pattern.sub("[REDACTED]", text)

    def _current_pattern(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._pattern is None and self._secrets:
                forms = {form for secret in self._secrets for form in encodings(secret)}
                longest_first = sorted(forms, key=len, reverse=True)
                self._pattern = re.compile("|".join(map(re.escape, longest_first)))
            return self._pattern


known_secrets = KnownSecrets()
"""The process's registry, consulted by `redact` (and so by every log line)."""


def redact(text: str) -> str:
    """`text` with the known secrets, and anything that looks like a credential,
    replaced by [REDACTED]."""
    text = known_secrets.redact(text)
    for pattern in _SECRETS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "[REDACTED]", text)
    return text


_CONTEXT = (("request_id", request_id), ("tenant", tenant), ("job", job))


_TRACE_FIELDS = ("trace_id", "span_id")


class ContextFilter(logging.Filter):
    """Stamps the context variables onto each record as it is emitted, and the current
    span's trace and span ids when there is one (core.runtime.tracing).

    Handlers filter in the emitting task, so the record keeps the request, tenant, job
    and span it was logged under even if it is formatted later, elsewhere.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _CONTEXT:
            if not hasattr(record, name):
                setattr(record, name, var.get())
        if not hasattr(record, "trace_id"):
            record.trace_id, record.span_id = ids_of_current() or ("", "")
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the context variables above when they are set."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for name, var in _CONTEXT:
            value = getattr(record, name, None) or var.get()
            if value:
                entry[name] = value
        entry.update(_trace_fields(record))
        audit = getattr(record, "audit", None)  # service.audit's record, as it is stored
        if isinstance(audit, dict):
            entry["audit"] = {k: redact(v) if isinstance(v, str) else v for k, v in audit.items()}
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def _trace_fields(record: logging.LogRecord) -> dict[str, str]:
    """The record's trace and span ids, as stamped (`ContextFilter`) or current now."""
    if hasattr(record, "trace_id"):
        ids = (record.trace_id, getattr(record, "span_id", ""))
    else:
        ids = ids_of_current() or ("", "")
    return {name: value for name, value in zip(_TRACE_FIELDS, ids, strict=True) if value}


def configure(level: str) -> None:
    """Send the root logger's records to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
