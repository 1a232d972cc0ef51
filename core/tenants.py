"""Tenants: the teams that call the service, their token digests and credential files.

The tenants file (TUNING_TENANTS_FILE) is JSON:

    {"tenants": [{"id": "search",
                  "token_sha256": ["<hex sha256 of a bearer token>", ...],
                  "credentials_file": "search-oauth.json"}]}

Only digests of bearer tokens are stored, never the tokens. Several digests per
tenant allow rotation. `credentials_file` is an OAuth `authorized_user` JSON, read by
workers only; a relative path is relative to the tenants file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TENANT_ID = re.compile(r"[a-z][a-z0-9-]{0,62}")


@dataclass(frozen=True)
class Tenant:
    id: str
    token_digests: tuple[bytes, ...]
    credentials_file: Path | None


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TenantDirectory:
    """Who may call, and as which tenant."""

    def __init__(self, tenants: list[Tenant]) -> None:
        self._by_id = {t.id: t for t in tenants}

    @classmethod
    def from_file(cls, path: str | Path) -> TenantDirectory:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            return cls([_tenant(entry, path.parent) for entry in data["tenants"]])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SystemExit(f"cannot load tenants file {path}: {exc}") from None

    def authenticate(self, token: str) -> Tenant | None:
        """The tenant whose token this is. Compares every digest, in constant time each."""
        presented = token_digest(token)
        found: Tenant | None = None
        for tenant in self._by_id.values():
            for digest in tenant.token_digests:
                if hmac.compare_digest(presented, digest):
                    found = tenant
        return found

    def get(self, tenant_id: str) -> Tenant | None:
        return self._by_id.get(tenant_id)

    def __iter__(self) -> Iterator[Tenant]:
        return iter(self._by_id.values())


def _tenant(entry: dict[str, object], base: Path) -> Tenant:
    tenant_id = str(entry["id"])
    if not TENANT_ID.fullmatch(tenant_id):
        raise ValueError(f"tenant id {tenant_id!r} must match {TENANT_ID.pattern}")
    digests = entry.get("token_sha256", [])
    if not isinstance(digests, list):
        raise ValueError(f"tenant {tenant_id}: token_sha256 must be a list")
    creds = entry.get("credentials_file")
    return Tenant(
        id=tenant_id,
        token_digests=tuple(bytes.fromhex(str(d)) for d in digests),
        credentials_file=None if creds is None else base / str(creds),
    )
