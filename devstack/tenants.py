"""Made-up tenants with working secrets, for the demo and the tests.

Writes the API's tenants file (token digests only), each tenant's OAuth
`authorized_user` file, and the emulator's grants file that makes those OAuth
credentials valid at the emulated token endpoint. Admins (role admin) get a token and
nothing else. Optionally writes an encryption keys file with a fresh key.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from core.security.authorized_user import CLOUD_PLATFORM_SCOPE, TUNING_SCOPE
from core.security.crypto import new_key
from core.security.tenants import Role, token_digest


@dataclass(frozen=True)
class LocalTenant:
    """A tenant with its bearer token and OAuth user credential, all random."""

    id: str
    token: str = field(default_factory=lambda: "tok-" + secrets.token_urlsafe(24))
    client_id: str = field(default_factory=lambda: secrets.token_hex(8) + ".apps.example")
    client_secret: str = field(default_factory=lambda: "cs-" + secrets.token_urlsafe(18))
    refresh_token: str = field(default_factory=lambda: "rt-" + secrets.token_urlsafe(32))
    scopes: tuple[str, ...] = (TUNING_SCOPE,)
    quota_project: str = ""
    role: Role = Role.TENANT
    quotas: dict[str, float] = field(default_factory=dict)
    provider: str | dict[str, str] = ""
    """The entry's `provider` (core.domain.providers); "" leaves it out: the Gemini API."""
    service_account: str = ""
    """A service account the platform impersonates for the tenant, named by its entry
    instead of a credentials file (core.security.impersonation); "": none."""
    platform_may_impersonate: bool = True
    """Whether the grants file lets the platform's identity impersonate `service_account`
    (holds roles/iam.serviceAccountTokenCreator on it)."""

    def authorized_user(self) -> dict[str, str]:
        info = {
            "type": "authorized_user",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "refresh_token": self.refresh_token,
        }
        if self.quota_project:
            info["quota_project_id"] = self.quota_project
        return info

    def grant(self) -> dict[str, object]:
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "refresh_token": self.refresh_token,
            "scopes": list(self.scopes),
        }

    def service_account_entry(self, platform: LocalTenant) -> dict[str, object]:
        """The emulator's `service_accounts` entry of the tenant's service account."""
        allowed = [platform.client_id] if self.platform_may_impersonate else []
        return {"email": self.service_account, "impersonators": allowed}


PLATFORM_CREDENTIALS_FILE = "platform-oauth.json"
"""The platform's own identity (TUNING_PLATFORM_CREDENTIALS_FILE): it reads and writes the
dataset bucket. Production uses the pod's Workload Identity instead of a file."""


def platform_identity() -> LocalTenant:
    """A made-up OAuth credential for the platform itself, granted cloud-platform."""
    return LocalTenant("platform", scopes=(CLOUD_PLATFORM_SCOPE,))


def write_tenant_files(directory: Path, tenants: list[LocalTenant]) -> tuple[Path, Path]:
    """Write tenants.json (+ one credential file per tenant, and the platform's) and
    grants.json; the paths of tenants.json and grants.json."""
    teams = [t for t in tenants if t.role == Role.TENANT]
    platform = platform_identity()
    for name, owner in [(f"{t.id}-oauth.json", t) for t in teams if not t.service_account] + [
        (PLATFORM_CREDENTIALS_FILE, platform)
    ]:
        credentials = directory / name
        credentials.write_text(json.dumps(owner.authorized_user()))
        credentials.chmod(0o600)
    tenants_file = write_tenants_file(directory, tenants)
    grants_file = directory / "grants.json"
    grants = [t.grant() for t in [*teams, platform]]
    accounts = [t.service_account_entry(platform) for t in teams if t.service_account]
    grants_file.write_text(json.dumps({"grants": grants, "service_accounts": accounts}, indent=2))
    return tenants_file, grants_file


def write_tenants_file(directory: Path, tenants: list[LocalTenant]) -> Path:
    """(Re)write tenants.json for `tenants` at once, as a mounted secret changes: a new
    file renamed over the old one. Its path."""
    entries = [tenants_entry(t) for t in tenants]
    return write_atomically(directory / "tenants.json", json.dumps({"tenants": entries}, indent=2))


def tenants_entry(tenant: LocalTenant) -> dict[str, object]:
    """The tenant's entry in tenants.json."""
    entry: dict[str, object] = {"id": tenant.id, "token_sha256": [token_digest(tenant.token).hex()]}
    if tenant.service_account:
        entry["impersonate_service_account"] = tenant.service_account
    elif tenant.role == Role.TENANT:
        entry["credentials_file"] = f"{tenant.id}-oauth.json"
    else:
        entry["role"] = tenant.role.value
    if tenant.quotas:
        entry["quotas"] = tenant.quotas
    if tenant.provider:
        entry["provider"] = tenant.provider
    return entry


def write_keys_file(path: Path, keys: list[tuple[str, str]]) -> Path:
    """Write an encryption keys file of (id, base64 key) pairs, the first encrypting."""
    content = json.dumps({"keys": [{"id": key_id, "key": key} for key_id, key in keys]})
    return write_atomically(path, content)


def write_atomically(path: Path, content: str) -> Path:
    """Write `content` to a new file and rename it over `path` (readable only by us)."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    temporary.write_text(content)
    temporary.chmod(0o600)
    os.replace(temporary, path)
    return path


def main() -> None:
    """`python -m devstack.tenants DIR TENANT...`: write local secrets, print the tokens."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("directory", type=Path)
    parser.add_argument("tenants", nargs="+")
    parser.add_argument("--admin", action="append", default=[], help="an admin principal")
    parser.add_argument(
        "--keys", action="store_true", help="also write keys.json, one fresh encryption key"
    )
    args = parser.parse_args()
    args.directory.mkdir(parents=True, exist_ok=True)
    tenants = [LocalTenant(t) for t in args.tenants]
    tenants += [LocalTenant(a, role=Role.ADMIN) for a in args.admin]
    write_tenant_files(args.directory, tenants)
    if args.keys:
        write_keys_file(args.directory / "keys.json", [("k1", new_key())])
    for tenant in tenants:
        print(f"{tenant.id} ({tenant.role.value}): bearer token {tenant.token}")


if __name__ == "__main__":
    main()
