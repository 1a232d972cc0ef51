"""Made-up tenants with working secrets, for the demo and the tests.

Writes the API's tenants file (token digests only), each tenant's OAuth
`authorized_user` file, and the emulator's grants file that makes those OAuth
credentials valid at the emulated token endpoint.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from core.tenants import token_digest
from worker.upstream_errors import TUNING_SCOPE


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


def write_tenant_files(directory: Path, tenants: list[LocalTenant]) -> tuple[Path, Path]:
    """Write tenants.json (+ one credential file each) and grants.json; their paths."""
    entries = []
    for tenant in tenants:
        credentials = directory / f"{tenant.id}-oauth.json"
        credentials.write_text(json.dumps(tenant.authorized_user()))
        credentials.chmod(0o600)
        entries.append(
            {
                "id": tenant.id,
                "token_sha256": [token_digest(tenant.token).hex()],
                "credentials_file": credentials.name,
            }
        )
    tenants_file = directory / "tenants.json"
    tenants_file.write_text(json.dumps({"tenants": entries}, indent=2))
    grants_file = directory / "grants.json"
    grants_file.write_text(json.dumps({"grants": [t.grant() for t in tenants]}, indent=2))
    return tenants_file, grants_file


def main() -> None:
    """`python -m devstack.tenants DIR TENANT...`: write local secrets, print the tokens."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("directory", type=Path)
    parser.add_argument("tenants", nargs="+")
    args = parser.parse_args()
    args.directory.mkdir(parents=True, exist_ok=True)
    tenants = [LocalTenant(t) for t in args.tenants]
    write_tenant_files(args.directory, tenants)
    for tenant in tenants:
        print(f"{tenant.id}: bearer token {tenant.token}")


if __name__ == "__main__":
    main()
