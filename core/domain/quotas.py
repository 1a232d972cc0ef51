"""What one tenant may use: running jobs at once, and creates per minute."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class TenantQuotas:
    """What one tenant may use.

    The create quota is a token bucket: `creates_per_minute` refill it, and up to
    `create_burst` (at least 1) may be spent at once.
    """

    max_running: int
    creates_per_minute: float
    create_burst: int

    @property
    def creates_per_s(self) -> float:
        return self.creates_per_minute / 60


QuotasFor = Callable[[str], TenantQuotas]
"""Each tenant's quotas, by tenant id (the tenants file over the settings' defaults)."""


@dataclass(frozen=True)
class QuotaOverrides:
    """A tenant's own quotas from the tenants file; None keeps the default."""

    max_running: int | None = None
    creates_per_minute: float | None = None
    create_burst: int | None = None

    def over(self, defaults: TenantQuotas) -> TenantQuotas:
        """`defaults` with this tenant's own values put in."""
        changes = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        return dataclasses.replace(defaults, **changes)

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
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"quota {name} must be a positive number")
        return cls(**raw)
