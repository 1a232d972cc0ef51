"""What one tenant may use: running jobs at once, creates per minute, and storage."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_MAX_DATASETS = 50
"""Datasets one tenant may keep stored, unless its settings or tenants file say otherwise."""
DEFAULT_MAX_STORED_BYTES = 2 * 1024 * 1024 * 1024
"""Bytes of training examples one tenant may keep stored (its datasets' and those of its
jobs not yet submitted upstream), unless its settings or tenants file say otherwise."""
DEFAULT_VALIDATES_PER_MINUTE = 60.0
"""`validate_only` creates one tenant may make per minute, unless told otherwise."""
DEFAULT_VALIDATE_BURST = 20
"""`validate_only` creates one tenant may make at once above that rate."""
DEFAULT_GENERATE_REQUESTS_PER_MINUTE = 600.0
"""Generate calls (GenerateContent, StreamGenerateContent) one tenant may make per minute."""
DEFAULT_GENERATE_TOKENS_PER_MINUTE = 1_000_000.0
"""Tokens (prompt and answer, as the upstream counts them) one tenant's generate calls
may use per minute."""
DEFAULT_GENERATE_MAX_CONCURRENT = 16
"""Generate calls one tenant may have in flight at once, across the fleet."""
DEFAULT_BUDGET_WARNING_FRACTION = 0.8
"""Share of a tenant's training token budget past which its creates are warned of."""
ZERO_MEANS_NO_LIMIT = frozenset(
    {
        "generate_requests_per_minute",
        "generate_tokens_per_minute",
        "generate_max_concurrent",
        "training_token_budget",
    }
)
"""The quotas a tenants file may set to 0, for no limit (the others must be positive)."""


@dataclass(frozen=True)
class TenantQuotas:
    """What one tenant may use.

    The create quota is a token bucket: `creates_per_minute` refill it, and up to
    `create_burst` (at least 1) may be spent at once. The storage quotas bound what the
    tenant keeps in Redis: `max_datasets` datasets, and `max_stored_bytes` of examples
    (its datasets', and its jobs' until the upstream has them). `validate_only` creates
    spend a bucket of their own (`validates_per_minute`, `validate_burst`), never the
    create quota: a dry run is as much work to check as a create, so it is bounded too.
    `training_token_budget` bounds the estimated training tokens (core.domain.usage) of
    the jobs created in one UTC month (0: no budget); a create past it is refused, and
    one past `budget_warning_fraction` of it is logged.
    """

    max_running: int
    creates_per_minute: float
    create_burst: int
    max_datasets: int = DEFAULT_MAX_DATASETS
    max_stored_bytes: int = DEFAULT_MAX_STORED_BYTES
    validates_per_minute: float = DEFAULT_VALIDATES_PER_MINUTE
    validate_burst: int = DEFAULT_VALIDATE_BURST
    generate_requests_per_minute: float = DEFAULT_GENERATE_REQUESTS_PER_MINUTE
    generate_tokens_per_minute: float = DEFAULT_GENERATE_TOKENS_PER_MINUTE
    generate_max_concurrent: int = DEFAULT_GENERATE_MAX_CONCURRENT
    training_token_budget: int = 0
    budget_warning_fraction: float = DEFAULT_BUDGET_WARNING_FRACTION

    @property
    def creates_per_s(self) -> float:
        return self.creates_per_minute / 60

    @property
    def validates_per_s(self) -> float:
        return self.validates_per_minute / 60


QuotasFor = Callable[[str], TenantQuotas]
"""Each tenant's quotas, by tenant id (the tenants file over the settings' defaults)."""


@dataclass(frozen=True)
class QuotaOverrides:
    """A tenant's own quotas from the tenants file; None keeps the default."""

    max_running: int | None = None
    creates_per_minute: float | None = None
    create_burst: int | None = None
    max_datasets: int | None = None
    max_stored_bytes: int | None = None
    validates_per_minute: float | None = None
    validate_burst: int | None = None
    generate_requests_per_minute: float | None = None
    generate_tokens_per_minute: float | None = None
    generate_max_concurrent: int | None = None
    training_token_budget: int | None = None

    def over(self, defaults: TenantQuotas) -> TenantQuotas:
        """`defaults` with this tenant's own values put in."""
        return _over(self, defaults)

    @classmethod
    def from_json(cls, raw: object) -> QuotaOverrides:
        """From the tenants file's `quotas` object; ValueError if it is not sensible."""
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise ValueError("quotas must be an object")
        unknown = set(raw) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown quotas {sorted(unknown)}")
        for name, value in raw.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"quota {name} must be a positive number")
            if not value >= 0 or (value == 0 and name not in ZERO_MEANS_NO_LIMIT):  # NaN too
                raise ValueError(f"quota {name} must be a positive number")
        return cls(**raw)


@functools.lru_cache(maxsize=1024)
def _over(overrides: QuotaOverrides, defaults: TenantQuotas) -> TenantQuotas:
    # Asked on every create: both are frozen values, so the answer is kept (a few hundred
    # tenants' worth; a changed tenants file brings new values, and so new entries).
    changes = {k: v for k, v in dataclasses.asdict(overrides).items() if v is not None}
    return dataclasses.replace(defaults, **changes)
