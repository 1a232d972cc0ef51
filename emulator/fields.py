"""Typed readers for fields of a decoded (camelCase) JSON body.

Each reader returns the value or raises a 400 INVALID_ARGUMENT naming the field's path.
proto3 JSON allows integers as strings and numbers as strings, so both are accepted.
"""

from __future__ import annotations

import math
from typing import Any

from emulator.errors import JsonObject, invalid_argument


def object_at(body: JsonObject, key: str, path: str) -> JsonObject:
    """A nested object; absent means empty."""
    value = body.get(key, {})
    if not isinstance(value, dict):
        raise invalid_argument(f"{path} must be an object.", path)
    return value


def string_at(body: JsonObject, key: str, path: str, max_chars: int | None = None) -> str:
    """A string; absent means empty."""
    value = body.get(key, "")
    if not isinstance(value, str):
        raise invalid_argument(f"{path} must be a string.", path)
    if max_chars is not None and len(value) > max_chars:
        raise invalid_argument(f"{path} must be at most {max_chars} characters.", path)
    return value


def integer(value: Any, path: str, minimum: int) -> int:
    """An integer (or a string holding one) no smaller than ``minimum``."""
    parsed = _as_integer(value)
    if parsed is None:
        raise invalid_argument(f"{path} must be an integer.", path)
    if parsed < minimum:
        raise invalid_argument(f"{path} must be at least {minimum}.", path)
    return parsed


def number(value: Any, path: str, low: float, high: float = math.inf) -> float:
    """A finite number (or a string holding one) in ``[low, high]``."""
    parsed = _as_number(value)
    if parsed is None:
        raise invalid_argument(f"{path} must be a number.", path)
    if not low <= parsed <= high:
        raise invalid_argument(f"{path} must be in [{low}, {high}].", path)
    return parsed


def positive_number(value: Any, path: str) -> float:
    """A finite number greater than zero."""
    parsed = number(value, path, 0.0)
    if parsed <= 0:
        raise invalid_argument(f"{path} must be positive.", path)
    return parsed


def _as_integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        parsed = float(value)
    elif isinstance(value, str):
        try:
            parsed = float(value)
        except ValueError:
            return None
    else:
        return None
    return parsed if math.isfinite(parsed) else None
