"""Tuned model and operation ids: the validation rule and the generated forms."""

from __future__ import annotations

import re
import secrets
import string

MODEL_ID_MAX_CHARS = 40
SUFFIX_CHARS = 12
_ALPHABET = string.ascii_lowercase + string.digits
_MODEL_ID = re.compile(r"[a-z]([a-z0-9-]{0,38}[a-z0-9])?")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def is_valid_model_id(model_id: str) -> bool:
    """At most 40 chars of ``[a-z0-9-]``, starting with a letter, not ending with ``-``."""
    return _MODEL_ID.fullmatch(model_id) is not None


def random_suffix(length: int = SUFFIX_CHARS) -> str:
    """Random lowercase letters and digits (operation ids and generated model ids)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def slug(display_name: str) -> str:
    """Lowercase words of the display name joined by ``-``, starting with a letter.

    Trimmed so that the slug, a ``-`` and the random suffix fit in 40 characters; ``model``
    when nothing usable is left.
    """
    words = _NOT_SLUG.sub("-", display_name.lower()).lstrip("-0123456789")
    trimmed = words[: MODEL_ID_MAX_CHARS - SUFFIX_CHARS - 1].rstrip("-")
    return trimmed or "model"


def generated_model_id(display_name: str) -> str:
    """The id used when the caller gives none, e.g. ``number-generator-model-dzlmi0gswwqb``."""
    return f"{slug(display_name)}-{random_suffix()}"
