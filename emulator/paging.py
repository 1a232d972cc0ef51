"""List pagination: page size rules and opaque page tokens.

A token is the base64 of the creation sequence number of the last item served, so pages stay
correct when items are created or deleted between calls. Callers must treat it as opaque.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from emulator import fields
from emulator.errors import invalid_argument

T = TypeVar("T")


@dataclass(frozen=True)
class PageRequest:
    """Which page to serve: at most ``size`` items with sequence numbers above ``after_seq``."""

    size: int
    after_seq: int = 0


def page_request(query: Mapping[str, str], default_size: int, max_size: int) -> PageRequest:
    """Read ``pageSize`` and ``pageToken`` (or their snake_case forms) from a query string."""
    raw_size = query.get("pageSize", query.get("page_size", "0")) or "0"
    size = fields.integer(raw_size, "pageSize", 0)
    token = query.get("pageToken", query.get("page_token", ""))
    return PageRequest(min(size or default_size, max_size), decode_token(token) if token else 0)


def page(
    items: Sequence[T], seq_of: Callable[[T], int], request: PageRequest
) -> tuple[list[T], str | None]:
    """The requested page and the token of the next one (``None`` on the last page)."""
    remaining = [item for item in items if seq_of(item) > request.after_seq]
    chosen = remaining[: request.size]
    if len(remaining) <= request.size:
        return chosen, None
    return chosen, encode_token(seq_of(chosen[-1]))


def encode_token(after_seq: int) -> str:
    """An opaque token for the page after the item with sequence number ``after_seq``."""
    raw = json.dumps({"after": after_seq}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> int:
    """The sequence number inside a token; 400 INVALID_ARGUMENT if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        after = json.loads(raw)["after"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise invalid_argument("Invalid page token.", "pageToken") from exc
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        raise invalid_argument("Invalid page token.", "pageToken")
    return after
