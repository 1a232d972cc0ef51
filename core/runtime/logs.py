"""Structured JSON logs: one object per line, with the request, tenant and job in context.

Secrets are redacted at the logger (a filter on the root handler), not at each call
site: whatever a library or a careless message carries, bearer tokens, access tokens,
refresh tokens and client secrets come out as `[REDACTED]`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from contextvars import ContextVar
from typing import Any

request_id: ContextVar[str] = ContextVar("request_id", default="")
tenant: ContextVar[str] = ContextVar("tenant", default="")
job: ContextVar[str] = ContextVar("job", default="")

_SECRETS = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"ya29\.[A-Za-z0-9._-]+"),
    re.compile(r"1//[A-Za-z0-9._-]{10,}"),  # Google refresh tokens
    re.compile(
        r"(?i)((?:refresh_token|client_secret|access_token|api_key|key)[\"']?\s*[:=]\s*[\"']?)[^\"'\s,&}]+"
    ),
    re.compile(r"AIza[0-9A-Za-z_-]{20,}"),  # API keys
]


def redact(text: str) -> str:
    """`text` with anything that looks like a credential replaced by [REDACTED]."""
    for pattern in _SECRETS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "[REDACTED]", text)
    return text


_CONTEXT = (("request_id", request_id), ("tenant", tenant), ("job", job))


class ContextFilter(logging.Filter):
    """Stamps the context variables onto each record as it is emitted.

    Handlers filter in the emitting task, so the record keeps the request, tenant and
    job it was logged under even if it is formatted later, elsewhere.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _CONTEXT:
            if not hasattr(record, name):
                setattr(record, name, var.get())
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
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str) -> None:
    """Send the root logger's records to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
