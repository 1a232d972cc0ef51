"""Tenants: the teams that call the service, their token digests and credential files.

The tenants file (TUNING_TENANTS_FILE) is JSON:

    {"tenants": [{"id": "search",
                  "token_sha256": ["<hex sha256 of a bearer token>", ...],
                  "credentials_file": "search-oauth.json"}]}

Only digests of bearer tokens are stored, never the tokens. Several digests per
tenant allow rotation; one digest under two principals refuses the whole file (which of
the two would a token name?). `credentials_file` is an OAuth `authorized_user` JSON,
read by workers only; a relative path is relative to the tenants file, and the path,
symlinks resolved, must stay inside the tenants file's directory (a tenants file must
not point a worker at another file of the pod).

Instead of a credentials file, an entry may name a service account of the tenant's
(`"impersonate_service_account": "tuner@team-project.iam.gserviceaccount.com"`): the
platform's own identity then mints short-lived tokens of it, and no secret of the
tenant's is stored (core.security.impersonation). Naming both refuses the file.

An entry may carry `"quotas": {"max_running": 5, "creates_per_minute": 30, "create_burst": 10}`
(any of them, or `validates_per_minute` and `validate_burst` for `validate_only` creates;
core.domain.quotas lists them all) to differ from the defaults in the settings.

An entry may say which upstream tunes the tenant's jobs, `"provider"`: `"gemini_api"` (the
default) or a Vertex AI project, location and staging bucket (core.domain.providers).

Beside `tenants`, the file may bound the tuning jobs each Vertex AI project runs at once,
shared by every tenant whose provider names that project (Vertex AI's own quota of
concurrent tuning jobs per project is small; core.redis.project_slots):

    "upstream_projects": {"acme-ml": {"max_running_jobs": 1}}

A project the file does not list has `TUNING_UPSTREAM_PROJECT_MAX_JOBS` (0: no limit).
`TenantDirectory.project_limit` answers for one project.

An entry may say `"role": "admin"` (default `"tenant"`): an operator who may call the
CredentialService, and nothing else. The file is a mounted secret, read again when it
changes (`TenantDirectory.watch`), so tokens rotate and tenants come and go without a
restart. A version that does not load, or a deleted file, fails closed
(core.security.secret_files): no one is admitted until the file is fixed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from core.domain.providers import PROJECT_ID, ProviderChoice
from core.domain.quotas import QuotaOverrides, TenantQuotas
from core.security.impersonation import service_account
from core.security.secret_files import ReloadingFile

TENANT_ID = re.compile(r"[a-z][a-z0-9-]{0,62}")
MAX_PROJECT_JOBS = 10_000
"""The largest `max_running_jobs` a project of `upstream_projects` may have."""


class Role(StrEnum):
    """What a principal may call: TuningService as a tenant, CredentialService as an admin."""

    TENANT = "tenant"
    ADMIN = "admin"


@dataclass(frozen=True)
class Tenant:
    """A principal of the tenants file (a team, or with role admin an operator)."""

    id: str
    token_digests: tuple[bytes, ...]
    credentials_file: Path | None
    role: Role = Role.TENANT
    quotas: QuotaOverrides = field(default_factory=QuotaOverrides)
    provider: ProviderChoice = field(default_factory=ProviderChoice)
    impersonate_service_account: str | None = None
    """The service account whose tokens the platform mints for the tenant, if it has one
    instead of a credentials file."""


@dataclass(frozen=True)
class TenantsFile:
    """What the tenants file holds: its principals by id, and the `max_running_jobs` of
    each Vertex AI project `upstream_projects` lists."""

    tenants: dict[str, Tenant]
    project_limits: Mapping[str, int] = field(default_factory=dict)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TenantDirectory:
    """Who may call, and as which tenant.

    Built from a list (`from_file`: fixed), or following its file (`watch`): then every
    lookup sees the file's latest content, or raises SecurityFileUnusable while that
    does not load (see core.security.secret_files).
    """

    def __init__(
        self, tenants: list[Tenant], project_limits: Mapping[str, int] | None = None
    ) -> None:
        self._fixed = TenantsFile({t.id: t for t in tenants}, dict(project_limits or {}))
        self._file: ReloadingFile[TenantsFile] | None = None

    @property
    def _content(self) -> TenantsFile:
        return self._fixed if self._file is None else self._file.current()

    @property
    def _by_id(self) -> dict[str, Tenant]:
        return self._content.tenants

    @classmethod
    def from_file(cls, path: str | Path) -> TenantDirectory:
        """The directory in `path`; a file that cannot be loaded stops the process."""
        path = Path(path)
        try:
            loaded = load_tenants_file(path)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"cannot load tenants file {path}: {exc}") from None
        return cls(list(loaded.tenants.values()), loaded.project_limits)

    @classmethod
    def watch(cls, path: str | Path) -> TenantDirectory:
        """The directory of the file `path`, read again when the file changes (while a
        changed file does not load, every lookup raises SecurityFileUnusable: fail
        closed). One that cannot be loaded at start stops the process."""
        path = Path(path)
        directory = cls([])
        try:
            directory._file = ReloadingFile(path, load_tenants_file, name="tenants")
        except (OSError, ValueError) as exc:
            raise SystemExit(f"cannot load tenants file {path}: {exc}") from None
        return directory

    def reread(self) -> TenantDirectory:
        """Look at the file now, whatever the interval (a fixed directory: nothing to do)."""
        if self._file is not None:
            self._file.reread()
        return self

    @property
    def file_ok(self) -> bool:
        """False while a followed file's latest version does not load (no I/O)."""
        return self._file is None or self._file.ok

    def check_file(self) -> bool:
        """Look at a followed file if it is due; whether the directory is usable now."""
        return self._file is None or self._file.check()

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

    def tenant(self, tenant_id: str) -> Tenant | None:
        """The principal `tenant_id` if it is a tenant (not an admin)."""
        found = self._by_id.get(tenant_id)
        return found if found is not None and found.role == Role.TENANT else None

    def __iter__(self) -> Iterator[Tenant]:
        return iter(self._by_id.values())

    def tenant_ids(self) -> list[str]:
        """The ids of the tenants (not admins), as the file says now."""
        return [t.id for t in self._by_id.values() if t.role == Role.TENANT]

    def quotas_for(self, defaults: TenantQuotas) -> Callable[[str], TenantQuotas]:
        """Each tenant's quotas: `defaults` with the tenants file's overrides, read live."""

        def quotas(tenant_id: str) -> TenantQuotas:
            found = self._by_id.get(tenant_id)
            return defaults if found is None else found.quotas.over(defaults)

        return quotas

    def project_limit(self, project: str, default: int) -> int:
        """How many tuning jobs the Vertex AI project `project` may run at once, shared by
        its tenants: the file's `max_running_jobs` for it, else `default` (0: no limit)."""
        return self._content.project_limits.get(project, default)

    def projects(self) -> list[str]:
        """Every Vertex AI project the file names (a tenant's target or pool, or in
        `upstream_projects`), as it says now."""
        named = dict.fromkeys(self._content.project_limits)
        for tenant in self._by_id.values():
            named.update(dict.fromkeys(t.project for t in tenant.provider.targets()))
        return list(named)


def load_tenants(path: Path) -> dict[str, Tenant]:
    """The tenants file's entries by id; OSError or ValueError if it is unusable."""
    return load_tenants_file(path).tenants


def load_tenants_file(path: Path) -> TenantsFile:
    """The tenants file's content; OSError or ValueError if it is unusable."""
    try:
        data = json.loads(path.read_text())
        tenants = [_tenant(entry, path.parent) for entry in data["tenants"]]
        limits = _project_limits(data.get("upstream_projects", {}))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a tenants file: {type(exc).__name__} {exc}") from None
    by_id = {t.id: t for t in tenants}
    if len(by_id) != len(tenants):
        raise ValueError("a tenant id appears twice")
    _refuse_shared_digests(tenants)
    return TenantsFile(by_id, limits)


def _project_limits(raw: object) -> dict[str, int]:
    """`upstream_projects`: each project's `max_running_jobs`; ValueError if malformed."""
    if not isinstance(raw, dict):
        raise ValueError("upstream_projects must be an object of project ids")
    return {str(project): _project_limit(str(project), entry) for project, entry in raw.items()}


def _project_limit(project: str, entry: object) -> int:
    if not PROJECT_ID.fullmatch(project):
        raise ValueError(f"upstream_projects: {project[:40]!r} is not a project id")
    if not isinstance(entry, dict) or entry.keys() != {"max_running_jobs"}:
        raise ValueError(f"upstream_projects.{project}: give exactly max_running_jobs")
    limit = entry["max_running_jobs"]
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_PROJECT_JOBS:
        raise ValueError(
            f"upstream_projects.{project}.max_running_jobs must be 0 to {MAX_PROJECT_JOBS}"
        )
    return limit


def _refuse_shared_digests(tenants: list[Tenant]) -> None:
    """ValueError naming both principals (never the digest) if two share a token digest."""
    owners: dict[bytes, str] = {}
    for tenant in tenants:
        for digest in tenant.token_digests:
            owner = owners.setdefault(digest, tenant.id)
            if owner != tenant.id:
                raise ValueError(
                    f"principals {owner!r} and {tenant.id!r} have the same token digest"
                )


def _tenant(entry: dict[str, object], base: Path) -> Tenant:
    tenant_id = str(entry["id"])
    if not TENANT_ID.fullmatch(tenant_id):
        raise ValueError(f"tenant id {tenant_id!r} must match {TENANT_ID.pattern}")
    digests = entry.get("token_sha256", [])
    if not isinstance(digests, list):
        raise ValueError(f"tenant {tenant_id}: token_sha256 must be a list")
    creds = entry.get("credentials_file")
    account = _impersonated(tenant_id, entry.get("impersonate_service_account"))
    if account is not None and creds is not None:
        raise ValueError(
            f"tenant {tenant_id}: credentials_file and impersonate_service_account exclude "
            "each other"
        )
    return Tenant(
        id=tenant_id,
        token_digests=tuple(bytes.fromhex(str(d)) for d in digests),
        credentials_file=None if creds is None else _confined(tenant_id, base, str(creds)),
        role=_role(tenant_id, entry.get("role", Role.TENANT.value)),
        quotas=_quotas(tenant_id, entry.get("quotas")),
        provider=_provider(tenant_id, entry.get("provider")),
        impersonate_service_account=account,
    )


def _confined(tenant_id: str, base: Path, name: str) -> Path:
    """`base / name`, if that path with its symlinks resolved is inside `base`.

    The unresolved path is kept: a mounted Secret swaps its `..data` symlink at each
    update, so the resolved target of today is deleted tomorrow."""
    path = base / name
    if not path.resolve().is_relative_to(base.resolve()):
        raise ValueError(
            f"tenant {tenant_id}: credentials_file must be inside the tenants file's directory"
        )
    return path


def _impersonated(tenant_id: str, raw: object) -> str | None:
    if raw is None:
        return None
    try:
        return service_account(raw)
    except ValueError as exc:
        raise ValueError(f"tenant {tenant_id}: impersonate_service_account: {exc}") from None


def _quotas(tenant_id: str, raw: object) -> QuotaOverrides:
    try:
        return QuotaOverrides.from_json(raw)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"tenant {tenant_id}: {exc}") from None


def _provider(tenant_id: str, raw: object) -> ProviderChoice:
    try:
        return ProviderChoice.from_json(raw)
    except ValueError as exc:
        raise ValueError(f"tenant {tenant_id}: {exc}") from None


def _role(tenant_id: str, raw: object) -> Role:
    try:
        return Role(str(raw))
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise ValueError(f"tenant {tenant_id}: role {raw!r} is not one of {roles}") from None
