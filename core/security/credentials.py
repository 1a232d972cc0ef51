"""Tenants' OAuth user credentials, held by the worker and the API (which calls the
upstream itself for GenerateContent: service.generation) and refreshed through google-auth.

Each tenant's `authorized_user` JSON becomes one google-auth `Credentials`, wrapped in a
`TokenSource` that refreshes it ahead of expiry (google-auth counts a token as stale a
few minutes before it expires) with at most one refresh in flight, however many jobs
ask for a token at once. No scopes are asked for at refresh: the token carries what the
tenant granted, so a grant without the tuning scope meets the upstream's own 403, which
the worker explains (core.errors.UpstreamScopeInsufficient).

A tenant whose entry names `impersonate_service_account` has no credential of its own:
its tokens are minted for that service account with the platform's identity
(core.security.impersonation), whatever Redis holds. Otherwise a tenant's credential
comes from Redis when an operator stored one through the CredentialService (sealed with
AES-GCM, opened here with the key ring), else from the tenant's `credentials_file`.
Redis is looked at again at most every `recheck_s` per tenant (a changed record, told by
its nonce, is used from then on); the file at every use (its modification time and size).
`CredentialSource.for_tenant` answers at once with a per-tenant `TokenSource` that
resolves the current credential when it is asked for headers, so the worker's steps stay
synchronous in choosing it. Both processes build theirs from their settings alike
(`CredentialSource.from_settings`).

A credential the token endpoint refused (`invalid_grant`: revoked, expired, or the
password changed) is remembered as refused until it changes (a new file, a new stored
record), so every job of that tenant fails at once with the same clear error instead of
asking again and again.

Tokens never leave this module except in the Authorization header of a request.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from google.oauth2.credentials import Credentials

from core.errors import CannotDecrypt, CredentialError, Reason, UpstreamRetryable
from core.redis.client import Redis
from core.redis.keys import Keys
from core.runtime import logs
from core.runtime.metrics import Metrics
from core.runtime.settings import Settings
from core.security.authorized_user import AuthorizedUser
from core.security.credential_store import CredentialStore, StoredCredential, unseal
from core.security.crypto import KeyRingSource, watch_keys
from core.security.google_transport import HttpxRequest
from core.security.impersonation import IMPERSONATION_ROLE, Impersonator
from core.security.tenants import Tenant, TenantDirectory
from core.security.token_source import OAuthTokenSource

DEFAULT_RECHECK_S = 5.0
REGRANT = (
    "The tenant's OAuth credential must be granted again (with the scope its provider "
    "needs) and installed on the platform."
)


class TenantTokenSource:
    """A tenant's TokenSource that follows its credential: each call asks the
    CredentialSource which credential is current, then uses that one."""

    def __init__(
        self, tenant_id: str, resolve: Callable[[str], Awaitable[OAuthTokenSource]]
    ) -> None:
        self._tenant_id = tenant_id
        self._resolve = resolve

    async def headers(self) -> dict[str, str]:
        return await (await self._resolve(self._tenant_id)).headers()

    async def refresh(self) -> None:
        await (await self._resolve(self._tenant_id)).refresh()


@dataclass
class _StoredState:
    """What this process last saw of a tenant's credential in Redis."""

    checked_s: float = -math.inf
    version: bytes | None = None
    source: OAuthTokenSource | CredentialError | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class CredentialSource:
    """Token sources per tenant: its service account impersonated (with `impersonator`),
    else the credential stored in Redis, else the tenant's file.

    A stored credential that changes is noticed within `recheck_s`; a file that changes
    (a re-granted credential) is read again on the next use.
    """

    def __init__(
        self,
        tenants: TenantDirectory,
        token_uri: str,
        http: httpx.Client,
        *,
        store: CredentialStore | None = None,
        keys: KeyRingSource | None = None,
        recheck_s: float = DEFAULT_RECHECK_S,
        monotonic: Callable[[], float] = time.monotonic,
        on_refresh: Callable[[str, str], None] | None = None,
        impersonator: Impersonator | None = None,
    ) -> None:
        """`on_refresh(tenant_id, outcome)` is told of each token refresh."""
        self._on_refresh = on_refresh
        self._impersonator = impersonator
        self._impersonated: dict[str, tuple[str, OAuthTokenSource]] = {}
        self._tenants = tenants
        self._token_uri = token_uri
        self._request = HttpxRequest(http)
        self._store = store
        self._keys = keys
        self._recheck_s = recheck_s
        self._monotonic = monotonic
        self._sources: dict[str, tuple[tuple[float, int], OAuthTokenSource]] = {}
        self._stored: dict[str, _StoredState] = {}
        self._handles: dict[str, TenantTokenSource] = {}

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        tenants: TenantDirectory,
        redis: Redis,
        token_http: httpx.Client,
        metrics: Metrics,
    ) -> CredentialSource:
        """A process's credentials, as its settings say: stored ones in Redis (sealed with
        the keys file's ring), the tenants' files, and impersonation with the platform's
        identity; each refresh counted in `metrics`."""
        return cls(
            tenants,
            settings.token_uri,
            token_http,
            store=CredentialStore(redis, Keys(settings.redis_key_prefix)),
            keys=watch_keys(settings.encryption_keys_file),
            recheck_s=settings.credential_recheck_s,
            on_refresh=lambda tenant, outcome: metrics.token_refreshes.labels(
                tenant, outcome
            ).inc(),
            impersonator=Impersonator.from_settings(
                settings.platform_credentials_file,
                settings.token_uri,
                settings.iam_credentials_base_url,
            ),
        )

    def for_tenant(self, tenant_id: str) -> TenantTokenSource:
        """The tenant's token source; which credential it uses is decided at each call."""
        handle = self._handles.get(tenant_id)
        if handle is None:
            handle = self._handles[tenant_id] = TenantTokenSource(tenant_id, self.resolve)
        return handle

    async def resolve(self, tenant_id: str) -> OAuthTokenSource:
        """The tenant's current credential: its service account impersonated, else the one
        stored in Redis, else its file."""
        impersonated = self._impersonating(self._tenants.get(tenant_id))
        if impersonated is not None:
            return impersonated
        stored = await self._from_store(tenant_id)
        if stored is not None:
            return stored
        tenant = self._known(tenant_id)
        return self._impersonating(tenant) or self._from_file(tenant)

    def _impersonating(self, tenant: Tenant | None) -> OAuthTokenSource | None:
        """The source of the tenant's service account, if it names one (one per account)."""
        account = None if tenant is None else tenant.impersonate_service_account
        if tenant is None or account is None:
            return None
        cached = self._impersonated.get(tenant.id)
        if cached is None or cached[0] != account:
            cached = self._impersonated[tenant.id] = (account, self._minting(tenant.id, account))
        return cached[1]

    def _minting(self, tenant_id: str, account: str) -> OAuthTokenSource:
        if self._impersonator is None:
            raise CredentialError(
                f"tenant {tenant_id!r} impersonates {account}, but this process has no "
                "platform identity to impersonate it with",
                reason=Reason.CREDENTIAL_MISSING,
            )
        return OAuthTokenSource(
            f"tenant {tenant_id!r}",
            self._impersonator.credentials(account),
            self._request,
            self._told(tenant_id),
            regrant=f"The tenant must grant the platform's service account {IMPERSONATION_ROLE}.",
        )

    async def _from_store(self, tenant_id: str) -> OAuthTokenSource | None:
        if self._store is None:
            return None
        state = self._stored.setdefault(tenant_id, _StoredState())
        async with state.lock:  # One look at Redis at a time per tenant.
            if self._monotonic() - state.checked_s >= self._recheck_s:
                await self._recheck(self._store, tenant_id, state)
        if isinstance(state.source, CredentialError):
            raise state.source
        return state.source

    async def _recheck(self, store: CredentialStore, tenant_id: str, state: _StoredState) -> None:
        record = await store.get(tenant_id)
        if record is None:
            state.version, state.source = None, None
        elif record.version != state.version or isinstance(state.source, CredentialError):
            # A new record, or one that could not be opened (the key ring may have changed).
            state.version, state.source = record.version, self._open(record)
        # Only once answered: a failed look (Redis, a broken keys file) is tried again at
        # the next use, not taken for "no stored credential" until the interval passes.
        state.checked_s = self._monotonic()

    def _open(self, record: StoredCredential) -> OAuthTokenSource | CredentialError:
        if self._keys is None:
            return _undecryptable(record.tenant, "this process has no encryption keys file")
        try:
            user = _unseal_with(self._keys, record)
        except CannotDecrypt as exc:
            return _undecryptable(record.tenant, exc.message)
        logs.known_secrets.add(user.client_secret, user.refresh_token)
        return self._source(record.tenant, user.credentials(self._token_uri))

    def _from_file(self, tenant: Tenant) -> OAuthTokenSource:
        path = self._path(tenant)
        version = _file_version(path, tenant.id)
        cached = self._sources.get(tenant.id)
        if cached is not None and cached[0] == version:
            return cached[1]
        source = self._source(tenant.id, self._load(path, tenant.id))
        self._sources[tenant.id] = (version, source)
        return source

    def _source(self, tenant_id: str, credentials: Credentials) -> OAuthTokenSource:
        return OAuthTokenSource(
            f"tenant {tenant_id!r}",
            credentials,
            self._request,
            self._told(tenant_id),
            regrant=REGRANT,
        )

    def _told(self, tenant_id: str) -> Callable[[str], None] | None:
        """What a tenant's token source tells of each refresh (its outcome)."""
        told = self._on_refresh
        return None if told is None else functools.partial(told, tenant_id)

    def _known(self, tenant_id: str) -> Tenant:
        tenant = self._tenants.get(tenant_id) or self._tenants.reread().get(tenant_id)
        if tenant is None:
            # The API knew the tenant when it took the job: this worker's copy of the
            # tenants file is behind (a Secret reaches pods at different times).
            raise UpstreamRetryable(
                f"tenant {tenant_id!r} is not in this worker's tenants file yet",
                reason=Reason.TENANT_UNKNOWN_TO_WORKER,
                retry_after_s=5.0,
            )
        return tenant

    def _path(self, tenant: Tenant) -> Path:
        if tenant.credentials_file is None:
            raise CredentialError(
                f"tenant {tenant.id!r} has no OAuth credential configured; an operator "
                "must install one (CredentialService.SetTenantCredential)",
                reason=Reason.CREDENTIAL_MISSING,
            )
        return tenant.credentials_file

    def _load(self, path: Path, tenant_id: str) -> Credentials:
        info = _read_json(path, tenant_id)
        logs.known_secrets.add(*(_text(info.get(k)) for k in ("client_secret", "refresh_token")))
        try:
            credentials = Credentials.from_authorized_user_info(info)
        except ValueError as exc:
            raise CredentialError(
                f"the OAuth credential of tenant {tenant_id!r} is not an authorized_user "
                f"credential: {exc}",
                reason=Reason.CREDENTIAL_INVALID,
            ) from None
        # google-auth ignores a token_uri inside the file (a file must not be able to send
        # a refresh token elsewhere); the operator's setting chooses the endpoint.
        return credentials.with_token_uri(self._token_uri)


def _unseal_with(keys: KeyRingSource, record: StoredCredential) -> AuthorizedUser:
    """The record's credential. One that does not open is tried once more after a look at
    the keys file: a rotation reaches pods at different times, so this process's copy
    may lack the key a re-seal has just used."""
    ring = keys.current()
    try:
        return unseal(ring, record)
    except CannotDecrypt:
        if keys.reread() is ring:
            raise
    return unseal(keys.current(), record)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


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
            reason=Reason.CREDENTIAL_INVALID,
        )
    return data


def _unreadable(tenant_id: str, exc: Exception) -> CredentialError:
    return CredentialError(
        f"cannot read the OAuth credential of tenant {tenant_id!r}: {type(exc).__name__}",
        reason=Reason.CREDENTIAL_UNREADABLE,
    )


def _undecryptable(tenant_id: str, why: str) -> CredentialError:
    return CredentialError(
        f"the OAuth credential stored for tenant {tenant_id!r} cannot be decrypted: {why}. "
        "The encryption keys file must hold the key that sealed it (or the credential "
        "must be set again).",
        reason=Reason.CREDENTIAL_UNDECRYPTABLE,
    )
