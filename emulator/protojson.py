"""proto3 JSON conventions: camelCase names, RFC 3339 timestamps, durations.

The API accepts both the JSON (camelCase) and the original proto (snake_case) field names on
input, so request bodies are normalised to camelCase before anything reads them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

_SNAKE_PART = re.compile(r"_([a-z0-9])")


def camel_case(name: str) -> str:
    """``tuning_task`` -> ``tuningTask``; camelCase names are returned unchanged."""
    return _SNAKE_PART.sub(lambda match: match.group(1).upper(), name)


def from_wire(value: Any) -> Any:
    """A decoded JSON value with object keys in camelCase and null fields dropped, recursively.

    proto3 JSON reads ``null`` as "use the default", which is what an absent field means here.
    """
    if isinstance(value, dict):
        return {
            camel_case(str(key)): from_wire(item) for key, item in value.items() if item is not None
        }
    if isinstance(value, list):
        return [from_wire(item) for item in value]
    return value


def timestamp(epoch_s: float) -> str:
    """RFC 3339 UTC with ``Z`` and 0, 3 or 6 fractional digits, as protobuf prints them."""
    moment = datetime.fromtimestamp(epoch_s, tz=UTC)
    base = moment.strftime("%Y-%m-%dT%H:%M:%S")
    micros = moment.microsecond
    if micros == 0:
        return base + "Z"
    if micros % 1000 == 0:
        return f"{base}.{micros // 1000:03d}Z"
    return f"{base}.{micros:06d}Z"


def duration(seconds: float) -> str:
    """A ``google.protobuf.Duration`` in JSON: ``"30s"``, ``"1.500s"``."""
    millis = round(seconds * 1000)
    if millis % 1000 == 0:
        return f"{millis // 1000}s"
    return f"{millis // 1000}.{millis % 1000:03d}s"
