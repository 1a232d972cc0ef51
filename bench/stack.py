"""The system under measurement: real processes, as in production, on this machine.

`devstack.launcher.launch` starts it; this module only sets what every benchmark wants.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from core.runtime.settings import Settings
from devstack.launcher import EmulatorOptions, LocalSystem, launch
from devstack.tenants import LocalTenant

TENANT = "bench-team"
SLOW_EMULATOR = EmulatorOptions(steps_per_second=1.0)


def bench_settings(**overrides: Any) -> Settings:
    """Quiet processes whose tenant quotas never get in a benchmark's way."""
    base = Settings(
        log_level="WARNING",
        tenant_creates_per_minute=1e9,
        tenant_create_burst=1_000_000,
        tenant_max_running=1_000_000,
        # Checked on every generate (their cost is in the figures), never refusing.
        generate_requests_per_minute=1e9,
        generate_tokens_per_minute=1e12,
        generate_max_concurrent=1_000_000,
    )
    return dataclasses.replace(base, **overrides)


@asynccontextmanager
async def bench_stack(
    *,
    workers: int = 0,
    extra_tenants: Sequence[str] = (),
    emulator: EmulatorOptions = SLOW_EMULATOR,
    **overrides: Any,
) -> AsyncIterator[LocalSystem]:
    """Redis, the emulator, the API and `workers` workers, each its own process.

    Calls authenticate as `TENANT` (`metadata`) or as one of `extra_tenants`
    (`metadata_of`); `overrides` replace fields of the settings every process gets.
    """
    tenants = [LocalTenant(TENANT), *(LocalTenant(name) for name in extra_tenants)]
    async with launch(
        tenants=tenants, settings=bench_settings(**overrides), emulator=emulator, workers=workers
    ) as system:
        yield system
