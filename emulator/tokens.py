"""Access tokens issued for refresh-token grants or minted for service accounts, and their
lookup.

Expired tokens are remembered so that a call with one can be told ``ACCESS_TOKEN_EXPIRED``
rather than ``CREDENTIALS_MISSING``.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from emulator.config import Grant


class OAuthError(Exception):
    """A token-endpoint failure, answered as ``{"error": ..., "error_description": ...}``."""

    def __init__(self, error: str, description: str, http_status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.http_status = http_status


@dataclass(frozen=True)
class AccessToken:
    """An issued bearer token.

    Attributes:
        value: the opaque token string.
        client_id: the OAuth client it was issued to (the owner of what it creates).
        scopes: the granted scopes.
        expires_s: expiry time, epoch seconds of the injected clock.
    """

    value: str
    client_id: str
    scopes: frozenset[str]
    expires_s: float


class TokenBook:
    """Exchanges refresh tokens for access tokens and looks access tokens up."""

    def __init__(self, grants: tuple[Grant, ...], token_ttl_s: int) -> None:
        self._grants = {grant.refresh_token: grant for grant in grants}
        self._token_ttl_s = token_ttl_s
        self._issued: dict[str, AccessToken] = {}

    @property
    def token_ttl_s(self) -> int:
        """Lifetime of issued tokens, seconds."""
        return self._token_ttl_s

    def exchange(self, form: Mapping[str, str], now_s: float) -> AccessToken:
        """Handle a ``grant_type=refresh_token`` request; raise :class:`OAuthError` if refused."""
        grant_type = form.get("grant_type", "")
        if grant_type != "refresh_token":
            raise OAuthError("unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        for required in ("client_id", "refresh_token"):
            if not form.get(required):
                raise OAuthError("invalid_request", f"Missing required parameter: {required}")
        grant = self._grant_for(form)
        return self._issue(grant, _granted_scopes(grant, form.get("scope", "")), now_s)

    @property
    def issued_count(self) -> int:
        """How many access tokens were issued (successful exchanges)."""
        return len(self._issued)

    def lookup(self, value: str) -> AccessToken | None:
        """The token with this value, expired or not; ``None`` if never issued."""
        return self._issued.get(value)

    def _grant_for(self, form: Mapping[str, str]) -> Grant:
        grant = self._grants.get(form["refresh_token"])
        if grant is None or grant.client_id != form["client_id"]:
            raise OAuthError("invalid_grant", "Bad Request")
        if not secrets.compare_digest(grant.client_secret, form.get("client_secret", "")):
            raise OAuthError("invalid_grant", "Bad Request")
        return grant

    def mint(self, client_id: str, scopes: frozenset[str], expires_s: float) -> AccessToken:
        """A token acting as ``client_id`` (a service account's email, for
        ``generateAccessToken``), valid until ``expires_s``; no grant is checked here."""
        value = "ya29.emulated-" + secrets.token_urlsafe(32)
        token = AccessToken(value, client_id, scopes, expires_s)
        self._issued[value] = token
        return token

    def _issue(self, grant: Grant, scopes: frozenset[str], now_s: float) -> AccessToken:
        return self.mint(grant.client_id, scopes, now_s + self._token_ttl_s)


def _granted_scopes(grant: Grant, requested: str) -> frozenset[str]:
    """All of the grant's scopes, or the requested subset; asking for more is refused."""
    wanted = frozenset(requested.split())
    if not wanted:
        return frozenset(grant.scopes)
    extra = wanted - frozenset(grant.scopes)
    if extra:
        listed = ", ".join(sorted(extra))
        raise OAuthError(
            "invalid_scope", f"Some requested scopes were invalid. {{invalid=[{listed}]}}"
        )
    return wanted
