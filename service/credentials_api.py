"""The CredentialService's behaviour: check, seal and store tenants' OAuth credentials.

Set: the tenant must exist; the text must be an `authorized_user` credential (an API key
is refused with the tuning guide's reason); encryption at rest must be configured; one
refresh at the token endpoint must succeed and grant the tuning scope. Only then is the
credential sealed (AES-GCM, bound to the tenant, the key id and the record's version:
core.security.credential_store) and stored. Get and Delete answer metadata only; no
secret ever leaves this module except sealed.

A tenant whose tenants-file entry names `impersonate_service_account` has no credential
of its own (core.security.impersonation): the workers mint its tokens with the platform's
identity and never read Redis for it, so Set and Get refuse it (IMPERSONATION_CONFIGURED)
rather than store, or describe, a secret nobody would use. Its scope is always
cloud-platform, chosen by the platform, so it meets no scope check here either.

Reseal moves every stored credential onto the key ring's first key, inside this
process: each record is opened and sealed again under a new version, and written only
if nobody wrote it meanwhile. After it reports nothing failed, operators may drop the
old keys from the keys file.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from core.errors import (
    CannotDecrypt,
    Conflict,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Reason,
    echo,
)
from core.runtime import logs
from core.runtime.clock import Clock
from core.security.authorized_user import AuthorizedUser
from core.security.credential_store import CredentialStore, StoredCredential, seal, unseal
from core.security.crypto import KeyRing, KeyRingSource
from core.security.tenants import Tenant, TenantDirectory
from service.oauth_check import TokenEndpoint

log = logging.getLogger(__name__)

CREDENTIAL_FIELD = "authorized_user_json"
WRITE_ATTEMPTS = 3
"""How often a write that lost the race to another write of the same tenant is tried."""


class Origin(StrEnum):
    """Where the workers take a tenant's credential from."""

    REDIS = "redis"
    FILE = "file"


@dataclass(frozen=True)
class CredentialInfo:
    """What may be shown about a tenant's credential: never a secret."""

    tenant: str
    origin: Origin
    client_id: str = ""
    scopes: tuple[str, ...] = ()
    quota_project: str = ""
    last_refresh_time: float | None = None
    update_time: float | None = None
    key_id: str = ""

    @classmethod
    def of_record(cls, record: StoredCredential) -> CredentialInfo:
        return cls(
            tenant=record.tenant,
            origin=Origin.REDIS,
            client_id=record.client_id,
            scopes=record.scopes,
            quota_project=record.quota_project,
            last_refresh_time=record.last_refresh_time,
            update_time=record.update_time,
            key_id=record.sealed.key_id,
        )


@dataclass(frozen=True)
class ResealReport:
    """What a re-seal did: records moved to the primary key, records already under it,
    and the tenants whose record could not be opened (they keep the old key in use)."""

    key_id: str
    resealed: int = 0
    current: int = 0
    failed: tuple[str, ...] = ()


class CredentialsApi:
    """Sets, reads and removes tenants' stored credentials."""

    def __init__(
        self,
        store: CredentialStore,
        tenants: TenantDirectory,
        keys: KeyRingSource | None,
        token_endpoint: TokenEndpoint,
        clock: Clock,
    ) -> None:
        self._store = store
        self._tenants = tenants
        self._keys = keys
        self._token_endpoint = token_endpoint
        self._clock = clock

    async def set(self, tenant_id: str, authorized_user_json: str, *, actor: str) -> CredentialInfo:
        """Check the credential, then seal and store it (replacing any stored one)."""
        scope = _not_impersonating(self._tenant(tenant_id)).provider.kind.required_scope
        user = AuthorizedUser.from_json(authorized_user_json, CREDENTIAL_FIELD)
        ring = self._ring()
        logs.known_secrets.add(user.client_secret, user.refresh_token)
        checked = await self._token_endpoint.check(tenant_id, user, scope)
        logs.known_secrets.add(checked.user.refresh_token)
        now = self._clock()
        record = StoredCredential(
            tenant=tenant_id,
            sealed=seal(ring, tenant_id, checked.user),
            client_id=user.client_id,
            scopes=checked.scopes,
            quota_project=user.quota_project,
            last_refresh_time=now,
            update_time=now,
        )
        record = await self._write(ring, record, checked.user)
        log.info(
            "credential of tenant %s set by %s: client %s, key %s",
            tenant_id,
            actor,
            user.client_id,
            record.sealed.key_id,
        )
        return CredentialInfo.of_record(record)

    async def reseal(self, *, actor: str) -> ResealReport:
        """Seal every stored credential of the tenants file's tenants under the primary key."""
        ring = self._ring()
        resealed, current, failed = 0, 0, []
        for tenant_id in self._tenants.tenant_ids():
            outcome = await self._reseal_one(ring, tenant_id)
            resealed += outcome == "resealed"
            current += outcome == "current"
            if outcome == "failed":
                failed.append(tenant_id)
        log.info(
            "credentials resealed under key %s by %s: %d resealed, %d current, failed: %s",
            ring.primary_id,
            actor,
            resealed,
            current,
            ", ".join(failed) or "none",
        )
        return ResealReport(ring.primary_id, resealed, current, tuple(failed))

    async def _reseal_one(self, ring: KeyRing, tenant_id: str) -> str:
        """What became of the tenant's record: resealed, current (already under the
        primary key), none (no record) or failed."""
        record = await self._store.get(tenant_id)
        if record is None:
            return "none"
        versioned = 0 < record.record_version >= record.latest_version
        if versioned and not ring.needs_reseal(record.sealed):
            return "current"
        try:
            user = unseal(ring, record)
        except CannotDecrypt as exc:
            log.error("credential of tenant %s cannot be resealed: %s", tenant_id, exc.message)
            return "failed"
        try:
            await self._write(ring, record, user)
        except Conflict:
            return "failed"
        return "resealed"

    async def _write(
        self, ring: KeyRing, record: StoredCredential, user: AuthorizedUser
    ) -> StoredCredential:
        """`record` sealed anew (with `user`) under the next version, and stored; Conflict
        if other writes of the tenant keep coming first."""
        for _ in range(WRITE_ATTEMPTS):
            latest = await self._store.latest_version(record.tenant)
            version = latest + 1
            written = dataclasses.replace(
                record,
                sealed=seal(ring, record.tenant, user, version),
                record_version=version,
                latest_version=version,
            )
            if await self._store.put(written, expected_version=latest):
                return written
        raise Conflict(
            f"the credential of tenant {echo(record.tenant)} kept changing while it was "
            "written; try again"
        )

    async def get(self, tenant_id: str) -> CredentialInfo:
        """The credential the workers use: the stored one, else the tenant's file."""
        tenant = _not_impersonating(self._tenant(tenant_id))
        record = await self._store.get(tenant_id)
        if record is not None:
            return CredentialInfo.of_record(record)
        if tenant.credentials_file is None:
            raise NotFound(
                f"tenant {echo(tenant_id)} has no OAuth credential", reason=Reason.NO_CREDENTIAL
            )
        return _file_info(tenant_id, tenant.credentials_file)

    async def delete(self, tenant_id: str, *, actor: str) -> None:
        """Remove the stored credential; the tenant's file, if any, applies again."""
        self._tenant(tenant_id)
        if not await self._store.delete(tenant_id):
            raise NotFound(
                f"tenant {echo(tenant_id)} has no stored OAuth credential",
                reason=Reason.NO_CREDENTIAL,
            )
        log.info("credential of tenant %s deleted by %s", tenant_id, actor)

    def _tenant(self, tenant_id: str) -> Tenant:
        if not tenant_id:
            raise InvalidArgument("tenant is required", [FieldViolation("tenant", "required")])
        tenant = self._tenants.tenant(tenant_id)
        if tenant is None:
            raise NotFound(f"no tenant {echo(tenant_id)}", reason=Reason.TENANT_NOT_FOUND)
        return tenant

    def _ring(self) -> KeyRing:
        if self._keys is None:
            raise FailedPrecondition(
                "encryption at rest is not configured: the operators must set "
                "TUNING_ENCRYPTION_KEYS_FILE before credentials can be stored",
                reason=Reason.ENCRYPTION_NOT_CONFIGURED,
            )
        return self._keys.current()


def _not_impersonating(tenant: Tenant) -> Tenant:
    """`tenant`, unless it impersonates a service account: FailedPrecondition then."""
    if tenant.impersonate_service_account is not None:
        raise FailedPrecondition(
            f"tenant {echo(tenant.id)} impersonates {tenant.impersonate_service_account} "
            "(its tenants file entry): the platform mints its tokens, and no credential is "
            "stored for it",
            reason=Reason.IMPERSONATION_CONFIGURED,
        )
    return tenant


def _file_info(tenant_id: str, path: Path) -> CredentialInfo:
    """Metadata of a credentials file, as far as this process can read it (the file is
    mounted on workers; the API may not see it)."""
    try:
        update_time = path.stat().st_mtime
        info = json.loads(path.read_text())
        user = AuthorizedUser.from_info(info, "credentials_file")
    except (OSError, ValueError, AttributeError, InvalidArgument):
        return CredentialInfo(tenant_id, Origin.FILE)
    return CredentialInfo(
        tenant_id,
        Origin.FILE,
        client_id=user.client_id,
        quota_project=user.quota_project,
        update_time=update_time,
    )
