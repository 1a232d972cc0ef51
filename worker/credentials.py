"""Tenants' OAuth user credentials, held by the worker and refreshed through google-auth.

Each tenant's `authorized_user` JSON becomes one google-auth `Credentials`, wrapped in a
`TokenSource` that refreshes it ahead of expiry (google-auth counts a token as stale a
few minutes before it expires) with at most one refresh in flight, however many jobs
ask for a token at once. No scopes are asked for at refresh: the token carries what the
tenant granted, so a grant without the tuning scope meets the upstream's own 403, which
the worker explains (worker.upstream_errors.UpstreamScopeInsufficient).

A credential the token endpoint refused (`invalid_grant`: revoked, expired, or the
password changed) is remembered as refused until its file changes, so every job of
that tenant fails at once with the same clear error instead of asking again and again.

Tokens never leave this module except in the Authorization header of a request.
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
            self._refused = _refused(self._tenant, exc)
            raise self._refused from None
        except google.auth.exceptions.TransportError as exc:
            raise UpstreamRetryable(
                f"token endpoint unreachable: {type(exc).__name__}", retry_after_s=5.0
            ) from None


def _refused(tenant: str, exc: google.auth.exceptions.RefreshError) -> CredentialError:
    # The refresh error's text can carry the response body; keep only its error code.
    text = str(exc)
    known = ("invalid_grant", "invalid_client", "unauthorized_client", "invalid_scope")
    kind = next((k for k in known if k in text), "refresh_failed")
    return CredentialError(
        f"the OAuth credential of tenant {tenant!r} was refused by the token endpoint "
        f"({kind}): it was revoked, expired or is not valid for this OAuth client. "
        "The tenant's OAuth credential must be granted again (with the "
        "generative-language.tuning scope) and installed on the platform.",
        reason="CREDENTIAL_REFUSED",
    )


class CredentialSource:
    """Token sources per tenant, from the files named in the tenants file.

    A file that changes (a re-granted credential) is read again on the next use.
    """

    def __init__(self, tenants: TenantDirectory, token_uri: str, http: httpx.Client) -> None:
        self._tenants = tenants
        self._token_uri = token_uri
        self._request = HttpxRequest(http)
        self._sources: dict[str, tuple[tuple[float, int], OAuthTokenSource]] = {}

    def for_tenant(self, tenant_id: str) -> OAuthTokenSource:
        path = self._path(tenant_id)
        version = _file_version(path, tenant_id)
        cached = self._sources.get(tenant_id)
        if cached is not None and cached[0] == version:
            return cached[1]
        source = OAuthTokenSource(tenant_id, self._load(path, tenant_id), self._request)
        self._sources[tenant_id] = (version, source)
        return source

    def _path(self, tenant_id: str) -> Path:
        tenant = self._tenants.get(tenant_id)
        if tenant is None or tenant.credentials_file is None:
            raise CredentialError(
                f"tenant {tenant_id!r} has no OAuth credential configured; "
                "an operator must install one",
                reason="CREDENTIAL_MISSING",
            )
        return tenant.credentials_file

    def _load(self, path: Path, tenant_id: str) -> Credentials:
        info = _read_json(path, tenant_id)
        try:
            credentials = Credentials.from_authorized_user_info(info)
        except ValueError as exc:
            raise CredentialError(
                f"the OAuth credential of tenant {tenant_id!r} is not an authorized_user "
                f"credential: {exc}",
                reason="CREDENTIAL_INVALID",
            ) from None
        # google-auth ignores a token_uri inside the file (a file must not be able to send
        # a refresh token elsewhere); the operator's setting chooses the endpoint.
        return credentials.with_token_uri(self._token_uri)


def _file_version(path: Path, tenant_id: str) -> tuple[float, int]:
    try:
        stat = path.stat()
    except OSError as exc:
        raise _unreadable(tenant_id, exc) from None
    return stat.st_mtime, stat.st_size


def _read_json(path: Path, tenant_id: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise _unreadable(tenant_id, exc) from None
    if not isinstance(data, dict):
        raise CredentialError(
            f"the OAuth credential of tenant {tenant_id!r} is not a JSON object",
            reason="CREDENTIAL_INVALID",
        )
    return data


def _unreadable(tenant_id: str, exc: Exception) -> CredentialError:
    return CredentialError(
        f"cannot read the OAuth credential of tenant {tenant_id!r}: {type(exc).__name__}",
        reason="CREDENTIAL_UNREADABLE",
    )
