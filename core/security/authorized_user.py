"""OAuth `authorized_user` credentials, the only kind the tuning upstream accepts.

The Gemini API's tuning guide: tuning needs OAuth user credentials granted the
generative-language.tuning scope; an API key is not enough. `gcloud auth
application-default login` writes such a credential as JSON (`type`, `client_id`,
`client_secret`, `refresh_token`, optional `quota_project_id`). This module tells it
apart from what operators paste by mistake (an API key, a service account key) without
ever repeating the pasted text in an error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import google.auth.exceptions
from google.oauth2.credentials import Credentials

from core.errors import FieldViolation, InvalidArgument, Reason

TUNING_SCOPE = "https://www.googleapis.com/auth/generative-language.tuning"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
AUTHORIZED_USER = "authorized_user"
REQUIRED_FIELDS = ("client_id", "client_secret", "refresh_token")
API_KEY_FIELDS = ("api_key", "key")
GUIDE_REASON = (
    "the Gemini API's tuning requires OAuth user credentials with the "
    "generative-language.tuning scope"
)
API_KEY_NOT_ENOUGH = f"an API key is not enough for tuning: {GUIDE_REASON}"
# A bare token of key-like characters: an API key (Google's start with "AIza") or similar.
_BARE_KEY = re.compile(r"[A-Za-z0-9_.\-]{16,}")


@dataclass(frozen=True)
class AuthorizedUser:
    """An OAuth user credential. Its secrets never appear in its repr."""

    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)
    quota_project: str = ""

    @classmethod
    def from_json(cls, text: str, field_name: str) -> AuthorizedUser:
        """Parse `text`; InvalidArgument (on `field_name`) if it is not an authorized_user."""
        data = _json_object(text, field_name)
        return cls.from_info(data, field_name)

    @classmethod
    def from_info(cls, info: Mapping[str, Any], field_name: str) -> AuthorizedUser:
        """From a parsed JSON object; InvalidArgument if it is not an authorized_user."""
        if any(name in info for name in API_KEY_FIELDS):
            raise _refused(field_name, API_KEY_NOT_ENOUGH, Reason.API_KEY_NOT_ENOUGH)
        kind = info.get("type", AUTHORIZED_USER)
        if kind != AUTHORIZED_USER:
            message = f"a {str(kind)[:40]!r} credential is not an OAuth user credential: "
            raise _refused(field_name, message + GUIDE_REASON, Reason.NOT_AUTHORIZED_USER)
        missing = [name for name in REQUIRED_FIELDS if not _text(info.get(name))]
        if missing:
            raise InvalidArgument(
                f"the authorized_user credential lacks {', '.join(missing)}",
                [FieldViolation(f"{field_name}.{name}", "required") for name in missing],
            )
        return cls(
            client_id=_text(info["client_id"]),
            client_secret=_text(info["client_secret"]),
            refresh_token=_text(info["refresh_token"]),
            quota_project=_text(info.get("quota_project_id")),
        )

    def to_json(self) -> bytes:
        """The credential as gcloud writes it (nothing else: no token_uri, no extras)."""
        info = {
            "type": AUTHORIZED_USER,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "refresh_token": self.refresh_token,
        }
        if self.quota_project:
            info["quota_project_id"] = self.quota_project
        return json.dumps(info, separators=(",", ":")).encode()

    def credentials(self, token_uri: str) -> Credentials:
        """A google-auth credential refreshing at `token_uri` (the operator's choice, never
        one named inside a credential), asking for no scopes: the token carries what the
        tenant granted."""
        info = json.loads(self.to_json())
        return Credentials.from_authorized_user_info(info).with_token_uri(token_uri)


def regrant_command() -> str:
    """How a team grants a credential again, as the tuning guide says."""
    return (
        "gcloud auth application-default login --client-id-file=CLIENT_SECRET.json "
        f"--scopes={CLOUD_PLATFORM_SCOPE},{TUNING_SCOPE}"
    )


def refusal_kind(exc: google.auth.exceptions.RefreshError) -> str:
    """The OAuth error code of a refused refresh. The exception's text can carry the
    response body, so only a known code is kept."""
    text = str(exc)
    known = ("invalid_grant", "invalid_client", "unauthorized_client", "invalid_scope")
    return next((kind for kind in known if kind in text), "refresh_failed")


def _json_object(text: str, field_name: str) -> dict[str, Any]:
    stripped = text.strip()
    if not stripped:
        raise InvalidArgument(f"{field_name} is required", [FieldViolation(field_name, "required")])
    try:
        data = json.loads(stripped)
    except ValueError:
        if _BARE_KEY.fullmatch(stripped):
            raise _refused(field_name, API_KEY_NOT_ENOUGH, Reason.API_KEY_NOT_ENOUGH) from None
        raise _refused(
            field_name, "not valid JSON: expected an authorized_user credential", Reason.NOT_JSON
        ) from None
    if isinstance(data, str):
        raise _refused(field_name, API_KEY_NOT_ENOUGH, Reason.API_KEY_NOT_ENOUGH)
    if not isinstance(data, dict):
        message = "expected a JSON object: an authorized_user credential"
        raise _refused(field_name, message, Reason.NOT_JSON)
    return data


def _refused(field_name: str, message: str, reason: Reason) -> InvalidArgument:
    return InvalidArgument(message, [FieldViolation(field_name, message)], reason=reason)


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""
