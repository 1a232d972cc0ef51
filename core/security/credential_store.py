"""Tenants' OAuth credentials in Redis, sealed with AES-GCM (core.security.crypto).

One hash per tenant, in the tenant's hash slot (`Keys.tenant_credential`): the sealed
`authorized_user` JSON (`key_id`, `nonce`, `ciphertext`) and metadata that is not
secret (client id, granted scopes, quota project, last successful refresh, update
time). The associated data of the seal is the tenant id, so a ciphertext copied into
another tenant's hash does not decrypt. Every write replaces every field in one HSET;
the nonce, new at every write, is the record's version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.redis.client import Redis, translated_errors
from core.redis.keys import Keys
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

    @property
    def version(self) -> bytes:
        """Changes with every write (the seal's random nonce)."""
        return self.sealed.nonce

    def to_fields(self) -> dict[str, str | bytes]:
        return {
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
    def from_fields(cls, tenant: str, fields: dict[bytes, bytes]) -> StoredCredential:
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
        )


def seal(ring: KeyRing, tenant: str, user: AuthorizedUser) -> Sealed:
    """`user` encrypted under the ring's primary key, bound to `tenant`."""
    return ring.seal(user.to_json(), tenant.encode())


def unseal(ring: KeyRing, record: StoredCredential) -> AuthorizedUser:
    """The credential in `record`; CannotDecrypt if the ring cannot open it for its tenant."""
    plaintext = ring.open(record.sealed, record.tenant.encode())
    return AuthorizedUser.from_json(plaintext.decode(), SEALED_FIELD)


class CredentialStore:
    """Reads and writes tenants' sealed credentials."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def put(self, record: StoredCredential) -> None:
        """Store `record`, replacing every field of the tenant's previous one at once."""
        key = self._keys.tenant_credential(record.tenant)
        with translated_errors():
            await self._redis.hset(key, mapping=record.to_fields())  # type: ignore[arg-type]

    async def get(self, tenant: str) -> StoredCredential | None:
        """The tenant's stored credential, or None."""
        with translated_errors():
            fields: dict[Any, Any] = await self._redis.hgetall(self._keys.tenant_credential(tenant))
        if b"ciphertext" not in fields or b"nonce" not in fields:
            return None
        return StoredCredential.from_fields(tenant, fields)

    async def delete(self, tenant: str) -> bool:
        """Remove the tenant's stored credential; False if there was none."""
        with translated_errors():
            removed = await self._redis.delete(self._keys.tenant_credential(tenant))
        return bool(removed)
