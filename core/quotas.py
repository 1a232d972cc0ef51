"""What one tenant may use: running jobs at once, and creates per minute."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TenantQuotas:
    """What one tenant may use."""

    max_running: int
    creates_per_minute: float
    create_burst: int
