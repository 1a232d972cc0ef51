"""Access tokens for upstream calls: `TokenSource`, and one over a google-auth credential.

Every upstream client (the worker's providers, the API's and the worker's Cloud Storage
client) authenticates through a `TokenSource`; `OAuthTokenSource` is the one over any
google-auth `Credentials` (a tenant's `authorized_user` grant, the platform's own
identity, an impersonated service account). It refreshes ahead of expiry (google-auth
counts a token as stale a few minutes before it expires) with at most one refresh in
flight, however many calls ask for a token at once; the refresh, a blocking google-auth
call, runs on a thread.

A credential the token endpoint refused (`invalid_grant`: revoked, expired, or the
password changed) stays refused: every later call fails at once with the same clear
error instead of asking again and again (whoever owns the source replaces it when the
credential changes). Tokens never leave this module except in request headers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

import google.auth.exceptions
from google.auth.credentials import Credentials

from core.errors import CredentialError, Reason, UpstreamRetryable
from core.runtime import logs
from core.security.authorized_user import refusal_kind
from core.security.google_transport import HttpxRequest

TOKEN_ENDPOINT_RETRY_S = 5.0


class TokenSource(Protocol):
    """What an upstream client needs to authenticate its calls."""

    async def headers(self) -> dict[str, str]:
        """Headers to add to an upstream request (refreshing the token if due)."""
        ...

    async def refresh(self) -> None:
        """Get a new access token now (after the upstream refused the current one)."""
        ...


class OAuthTokenSource:
    """One google-auth credential: refreshed ahead of expiry, one refresh at a time.

    `owner` names whose credential it is in errors ("tenant 'a'", "the platform");
    `regrant` says what an operator does when the token endpoint refuses it.
    """

    def __init__(
        self,
        owner: str,
        credentials: Credentials,
        request: HttpxRequest,
        on_refresh: Callable[[str], None] | None = None,
        *,
        regrant: str = "",
    ) -> None:
        self._on_refresh = on_refresh or (lambda _outcome: None)
        self._owner = owner
        self._regrant = regrant
        self._credentials = credentials
        self._request = request
        self._lock = asyncio.Lock()
        self._refused: CredentialError | None = None
        self.refreshes = 0

    async def headers(self) -> dict[str, str]:
        if not self._credentials.valid:
            async with self._lock:
                # Another caller may have refreshed while this one waited for the lock.
                if not self._credentials.valid:
                    await self._refresh_locked()
        headers = {"authorization": f"Bearer {self._credentials.token}"}
        if self._credentials.quota_project_id:
            headers["x-goog-user-project"] = self._credentials.quota_project_id
        return headers

    async def refresh(self) -> None:
        stale = self._credentials.token
        async with self._lock:
            if self._credentials.token == stale:  # Nobody refreshed it while we waited.
                await self._refresh_locked()

    async def _refresh_locked(self) -> None:
        if self._refused is not None:
            raise self._refused
        self.refreshes += 1
        try:
            await asyncio.to_thread(self._credentials.refresh, self._request)
        except google.auth.exceptions.RefreshError as exc:
            self._on_refresh("refused")
            self._refused = self._refusal(exc)
            raise self._refused from None
        except google.auth.exceptions.TransportError as exc:
            self._on_refresh("unreachable")
            raise UpstreamRetryable(
                f"token endpoint unreachable: {type(exc).__name__}",
                retry_after_s=TOKEN_ENDPOINT_RETRY_S,
                reason=Reason.TOKEN_ENDPOINT_UNAVAILABLE,
            ) from None
        # The new access token (and a rotated refresh token) is redacted from logs from now on.
        logs.known_secrets.add(
            self._credentials.token, getattr(self._credentials, "refresh_token", None)
        )
        self._on_refresh("ok")

    def _refusal(self, exc: google.auth.exceptions.RefreshError) -> CredentialError:
        kind = refusal_kind(exc)  # never the error's text: it can carry the response body
        return CredentialError(
            f"the OAuth credential of {self._owner} was refused by the token endpoint "
            f"({kind}): it was revoked, expired or is not valid for this OAuth client. "
            + self._regrant,
            reason=Reason.CREDENTIAL_REFUSED,
        )
