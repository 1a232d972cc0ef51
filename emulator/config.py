"""Configuration of the emulator: one frozen object, built once by the caller.

Nothing here reads the environment: ``emulator.__main__`` does that and passes the values in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator.catalog import DEFAULT_MODELS, BaseModel
from emulator.faults import FaultRule
from emulator.vertex_catalog import DEFAULT_VERTEX_MODELS, VertexBaseModel


@dataclass(frozen=True)
class Grant:
    """One OAuth refresh-token grant the emulated token endpoint honours.

    Attributes:
        client_id: the OAuth client the refresh token was issued to; it also owns the tuned
            models created with tokens from this grant.
        client_secret: must match on every token exchange.
        refresh_token: the long-lived token exchanged at ``POST /token``.
        scopes: full scope URLs granted to the access tokens issued from this grant.
    """

    client_id: str
    client_secret: str
    refresh_token: str
    scopes: tuple[str, ...]

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Grant:
        """Build a grant from one entry of a grants file."""
        scopes = raw.get("scopes", [])
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise ValueError("grant 'scopes' must be a list of strings")
        return cls(
            client_id=_required_str(raw, "client_id"),
            client_secret=_required_str(raw, "client_secret"),
            refresh_token=_required_str(raw, "refresh_token"),
            scopes=tuple(scopes),
        )


@dataclass(frozen=True)
class ServiceAccount:
    """A service account the emulated IAM Credentials API mints access tokens of.

    Attributes:
        email: the account's email; minted tokens act as an OAuth client of this id, which
            owns what they create.
        impersonators: who holds ``roles/iam.serviceAccountTokenCreator`` on it: OAuth
            client ids of grants, or emails of other service accounts (for delegation
            chains). Anyone else's ``generateAccessToken`` is 403.
    """

    email: str
    impersonators: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ServiceAccount:
        """Build a service account from one entry of a grants file's ``service_accounts``."""
        impersonators = raw.get("impersonators", [])
        if not isinstance(impersonators, list) or not all(
            isinstance(i, str) for i in impersonators
        ):
            raise ValueError("service account 'impersonators' must be a list of strings")
        return cls(email=_required_str(raw, "email"), impersonators=tuple(impersonators))


@dataclass(frozen=True)
class EmulatorConfig:
    """Settings of one emulator instance.

    Attributes:
        steps_per_second: simulated training speed (steps per second of the injected clock);
            default 2.0. Must be positive.
        token_ttl_s: lifetime of issued access tokens, seconds; default 3600.
        grants: the refresh-token grants accepted by ``POST /token``; default none.
        service_accounts: the service accounts ``generateAccessToken`` mints tokens of,
            and who may; default none. Emails must be unique.
        page_size_default: list page size when the caller gives none (or 0); default 10.
        page_size_max: larger requested page sizes are clamped to this; default 1000.
        faults: fault rules pending from the start (``--faults-file``), as if posted to
            ``POST /_emulator/faults`` first; default none.
        rate_limit_rps: a quota on API requests (every route but ``POST /token``): at most
            this many in any sliding second of the injected clock, 429 above it (see
            ``emulator.ratelimit``); default 0, no limit.
        models: the base models ``GET /v1beta/models`` lists, in that order; default
            ``emulator.catalog.DEFAULT_MODELS`` (two tunable, two not). Ids must be unique.
        storage_buckets: the Cloud Storage buckets that exist; default ``None``: every
            well-formed bucket name exists (empty until written). Others answer 404.
        storage_max_object_bytes: the largest object an upload may write, bytes; default
            5 GiB (training files are up to 1 GB). Must be positive.
        vertex_models: the base models Vertex ``tuningJobs.create`` accepts; default
            ``emulator.vertex_catalog.DEFAULT_VERTEX_MODELS``. Ids must be unique.
        vertex_project_numbers: project id -> project number, used in Vertex resource
            names; default none: a number derived from the id (stable across runs).
        vertex_pending_s: how long a new tuning job stays JOB_STATE_PENDING, seconds of the
            injected clock; default 5.0 (the real service takes 2-5 minutes).
        vertex_cancelling_s: how long a cancelled job stays JOB_STATE_CANCELLING, seconds;
            default 1.0.
        head_start_steps: a new Gemini API tuned model's training begins this many steps
            before its create, so that it reports them at once (a long job without the
            wait: bench.tracking's long jobs); default 0. Must be >= 0.
    """

    steps_per_second: float = 2.0
    token_ttl_s: int = 3600
    grants: tuple[Grant, ...] = ()
    service_accounts: tuple[ServiceAccount, ...] = ()
    page_size_default: int = 10
    page_size_max: int = 1000
    faults: tuple[FaultRule, ...] = ()
    rate_limit_rps: int = 0
    models: tuple[BaseModel, ...] = DEFAULT_MODELS
    storage_buckets: frozenset[str] | None = None
    storage_max_object_bytes: int = 5 * 1024**3
    vertex_models: tuple[VertexBaseModel, ...] = DEFAULT_VERTEX_MODELS
    vertex_project_numbers: Mapping[str, int] = field(default_factory=dict)
    vertex_pending_s: float = 5.0
    vertex_cancelling_s: float = 1.0
    head_start_steps: int = 0

    def __post_init__(self) -> None:
        if self.storage_max_object_bytes <= 0:
            raise ValueError("storage_max_object_bytes must be positive")
        if len({model.model_id for model in self.models}) != len(self.models):
            raise ValueError("models must have unique ids")
        if len({model.model_id for model in self.vertex_models}) != len(self.vertex_models):
            raise ValueError("vertex_models must have unique ids")
        if len({account.email for account in self.service_accounts}) != len(self.service_accounts):
            raise ValueError("service_accounts must have unique emails")
        if self.vertex_pending_s < 0 or self.vertex_cancelling_s < 0:
            raise ValueError("vertex_pending_s and vertex_cancelling_s must be >= 0")
        if self.rate_limit_rps < 0:
            raise ValueError("rate_limit_rps must be 0 (no limit) or positive")
        if self.steps_per_second <= 0:
            raise ValueError("steps_per_second must be positive")
        if self.head_start_steps < 0:
            raise ValueError("head_start_steps must be >= 0")
        if self.token_ttl_s <= 0:
            raise ValueError("token_ttl_s must be positive")
        if not 0 < self.page_size_default <= self.page_size_max:
            raise ValueError("need 0 < page_size_default <= page_size_max")


def load_grants(path: str | Path) -> tuple[Grant, ...]:
    """Read grants from a JSON file shaped ``{"grants": [{"client_id": ..., ...}]}``."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    entries = raw.get("grants") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ValueError(f"{path}: expected an object with a 'grants' list of objects")
    return tuple(Grant.from_json(entry) for entry in entries)


def load_service_accounts(path: str | Path) -> tuple[ServiceAccount, ...]:
    """Read the service accounts of a grants file: its optional ``service_accounts`` list,
    ``[{"email": ..., "impersonators": [client id or email, ...]}]``."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    entries = raw.get("service_accounts", []) if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ValueError(f"{path}: 'service_accounts' must be a list of objects")
    return tuple(ServiceAccount.from_json(entry) for entry in entries)


def _required_str(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"grant {key!r} must be a non-empty string")
    return value
