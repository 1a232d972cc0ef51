"""Tenants' OAuth credentials in Redis, sealed with AES-GCM (core.security.crypto).

One hash per tenant, in the tenant's hash slot (`Keys.tenant_credential`): the sealed
`authorized_user` JSON (`key_id`, `nonce`, `ciphertext`), the record's `version`, and
metadata that is not secret (client id, granted scopes, quota project, last successful
refresh, update time).

The seal's associated data binds the record to its place: the tenant id, the key id and
the version. Copied into another tenant's hash, relabelled with another key id, or
given another version, it does not open (CannotDecrypt). Versions count the tenant's
writes in `Keys.tenant_credential_version`, which only grows (a delete counts too): a
record whose version is below it is an older record restored over a newer one, and is
refused as well. Every write goes through one script (`put_credential_call`) that
replaces every field at once, and only if the version is still the one the writer read
before sealing, so a re-seal never overwrites a credential set meanwhile.

Records written before versions existed (no `version` field; associated data the
tenant id alone) still open while the tenant has no version yet, that is until the
first versioned write; `reseal` (service.credentials_api) rewrites them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from core.errors import CannotDecrypt
from core.redis.client import Redis, translated_errors
from core.redis.keys import Keys
from core.redis.scripts import Scripts, delete_credential_call, put_credential_call
from core.security.authorized_user import AuthorizedUser
from core.security.crypto import KeyRing, Sealed

SEALED_FIELD = "sealed credential"


@dataclass(frozen=True)
class StoredCredential:
    """A tenant's sealed credential and what may be shown about it."""

    tenant: str
    sealed: Sealed
    client_id: str
    scopes: tuple[str, ...]
    quota_project: str
    last_refresh_time: float
    update_time: float
    record_version: int = 0
    """The write that made it, bound into the seal (0: written before versions)."""
    latest_version: int = 0
    """The tenant's latest write when this was read (not stored in the record)."""

    @property
    def version(self) -> bytes:
        """Changes with every write (the seal's random nonce)."""
        return self.sealed.nonce

    def to_fields(self) -> dict[str, str | bytes]:
        return {
            "version": str(self.record_version),
            "key_id": self.sealed.key_id,
            "nonce": self.sealed.nonce,
            "ciphertext": self.sealed.ciphertext,
            "client_id": self.client_id,
            "scopes": " ".join(self.scopes),
            "quota_project": self.quota_project,
            "last_refresh_time": repr(self.last_refresh_time),
            "update_time": repr(self.update_time),
        }

    @classmethod
    def from_fields(
        cls, tenant: str, fields: dict[bytes, bytes], latest_version: int = 0
    ) -> StoredCredential:
        def text(name: str) -> str:
            return fields.get(name.encode(), b"").decode()

        return cls(
            tenant=tenant,
            sealed=Sealed(text("key_id"), fields[b"nonce"], fields[b"ciphertext"]),
            client_id=text("client_id"),
            scopes=tuple(text("scopes").split()),
            quota_project=text("quota_project"),
            last_refresh_time=float(text("last_refresh_time") or 0),
            update_time=float(text("update_time") or 0),
            record_version=int(text("version") or 0),
            latest_version=latest_version,
        )


def associated_data(tenant: str, key_id: str, version: int) -> bytes:
    """What a sealed credential is bound to; version 0 is the older binding, the tenant alone."""
    if version == 0:
        return tenant.encode()
    return json.dumps(["tuning.v1 credential", tenant, key_id, version]).encode()


def seal(ring: KeyRing, tenant: str, user: AuthorizedUser, version: int = 0) -> Sealed:
    """`user` encrypted under the ring's primary key, bound to `tenant`, that key's id and
    `version` (the record's; 0 only for records written before versions)."""
    return ring.seal(user.to_json(), associated_data(tenant, ring.primary_id, version))


def unseal(ring: KeyRing, record: StoredCredential) -> AuthorizedUser:
    """The credential in `record`; CannotDecrypt if the ring cannot open it where it was
    found, or if it is older than the tenant's latest write (restored over a newer one)."""
    if record.record_version < record.latest_version:
        raise CannotDecrypt(
            f"the stored record is version {record.record_version} but the tenant's "
            f"latest write is version {record.latest_version}: an older record was "
            "restored over a newer one"
        )
    aad = associated_data(record.tenant, record.sealed.key_id, record.record_version)
    plaintext = ring.open(record.sealed, aad)
    return AuthorizedUser.from_json(plaintext.decode(), SEALED_FIELD)


class CredentialStore:
    """Reads and writes tenants' sealed credentials."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = Scripts(redis)

    async def latest_version(self, tenant: str) -> int:
        """The version of the tenant's latest write or delete (0: none yet)."""
        with translated_errors():
            raw = await self._redis.get(self._keys.tenant_credential_version(tenant))
        return int(raw or 0)

    async def put(self, record: StoredCredential, *, expected_version: int | None = None) -> bool:
        """Store `record`, replacing every field of the tenant's previous one at once, if
        the tenant's latest version is still `expected_version` (default: whatever
        precedes `record.record_version`); False if another write came first."""
        expected = record.record_version - 1 if expected_version is None else expected_version
        call = put_credential_call(
            record_key=self._keys.tenant_credential(record.tenant),
            version_key=self._keys.tenant_credential_version(record.tenant),
            expected=max(expected, 0),
            version=record.record_version,
            fields=record.to_fields(),
        )
        return bool(await self._scripts.run(call))

    async def get(self, tenant: str) -> StoredCredential | None:
        """The tenant's stored credential, or None."""
        # The latest version first: a write between the two reads only makes it newer.
        latest = await self.latest_version(tenant)
        with translated_errors():
            fields: dict[Any, Any] = await self._redis.hgetall(self._keys.tenant_credential(tenant))
        if b"ciphertext" not in fields or b"nonce" not in fields:
            return None
        return StoredCredential.from_fields(tenant, fields, latest)

    async def delete(self, tenant: str) -> bool:
        """Remove the tenant's stored credential; False if there was none."""
        call = delete_credential_call(
            record_key=self._keys.tenant_credential(tenant),
            version_key=self._keys.tenant_credential_version(tenant),
        )
        removed = await self._scripts.run(call)
        return bool(removed)
