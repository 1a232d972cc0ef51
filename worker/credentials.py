"""Tenants' OAuth user credentials, held by the worker and refreshed through google-auth.

Each tenant's `authorized_user` JSON becomes one google-auth `Credentials`, wrapped in a
`TokenSource` that refreshes it ahead of expiry with at most one refresh in flight,
however many jobs ask for a token at once. Tokens never leave this module except in
the Authorization header of an upstream request.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Protocol

import google.auth.exceptions
import httpx
from google.oauth2.credentials import Credentials

from core.tenants import TenantDirectory
from worker.google_transport import HttpxRequest
from worker.upstream_errors import CredentialError, UpstreamRetryable

TUNING_SCOPE = "https://www.googleapis.com/auth/generative-language.tuning"


class TokenSource(Protocol):
    """What an upstream client needs to authenticate its calls."""

    async def headers(self) -> dict[str, str]:
        """Headers to add to an upstream request (refreshing the token if due)."""
        ...

    async def refresh(self) -> None:
        """Get a new access token now (after the upstream refused the current one)."""
        ...


class OAuthTokenSource:
    """One tenant's user credential: refreshed ahead of expiry, one refresh at a time."""

    def __init__(self, tenant: str, credentials: Credentials, request: HttpxRequest) -> None:
        self._tenant = tenant
        self._credentials = credentials
        self._request = request
        self._lock = asyncio.Lock()
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
        async with self._lock:
            await self._refresh_locked()

    async def _refresh_locked(self) -> None:
        self.refreshes += 1
        try:
            await asyncio.to_thread(self._credentials.refresh, self._request)
        except google.auth.exceptions.RefreshError as exc:
            raise _refused(self._tenant, exc) from None
        except google.auth.exceptions.TransportError as exc:
            raise UpstreamRetryable(
                f"token endpoint unreachable: {type(exc).__name__}", retry_after_s=5.0
            ) from None


def _refused(tenant: str, exc: google.auth.exceptions.RefreshError) -> CredentialError:
    # The refresh error's text can carry the response body; keep only its error code.
    text = str(exc)
    kind = "invalid_grant" if "invalid_grant" in text else "refresh_failed"
    if "scopes" in text:
        kind = "scope_not_granted"
    return CredentialError(
        f"the OAuth credential of tenant {tenant!r} was refused by the token endpoint "
        f"({kind}); the tenant's credential must be granted again with the "
        f"generative-language.tuning scope",
        reason="CREDENTIAL_REFUSED",
    )


class CredentialSource:
    """Token sources per tenant, loaded from the files named in the tenants file."""

    def __init__(self, tenants: TenantDirectory, token_uri: str, http: httpx.Client) -> None:
        self._tenants = tenants
        self._token_uri = token_uri
        self._request = HttpxRequest(http)
        self._sources: dict[str, OAuthTokenSource] = {}

    def for_tenant(self, tenant_id: str) -> OAuthTokenSource:
        source = self._sources.get(tenant_id)
        if source is None:
            source = OAuthTokenSource(tenant_id, self._load(tenant_id), self._request)
            self._sources[tenant_id] = source
        return source

    def _load(self, tenant_id: str) -> Credentials:
        tenant = self._tenants.get(tenant_id)
        if tenant is None or tenant.credentials_file is None:
            raise CredentialError(
                f"tenant {tenant_id!r} has no OAuth credential configured; "
                "an operator must install one",
                reason="CREDENTIAL_MISSING",
            )
        info = _read_json(tenant.credentials_file, tenant_id)
        try:
            credentials = Credentials.from_authorized_user_info(info, scopes=[TUNING_SCOPE])
            # google-auth ignores a token_uri inside the file (a file must not be able to
            # send a refresh token elsewhere); the operator's setting chooses it.
            return credentials.with_token_uri(self._token_uri)
        except ValueError as exc:
            raise CredentialError(
                f"the OAuth credential of tenant {tenant_id!r} is not an authorized_user "
                f"credential: {exc}",
                reason="CREDENTIAL_INVALID",
            ) from None


def _read_json(path: Path, tenant_id: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CredentialError(
            f"cannot read the OAuth credential of tenant {tenant_id!r}: {type(exc).__name__}",
            reason="CREDENTIAL_UNREADABLE",
        ) from None
    if not isinstance(data, dict):
        raise CredentialError(
            f"the OAuth credential of tenant {tenant_id!r} is not a JSON object",
            reason="CREDENTIAL_INVALID",
        )
    return data
