"""Fixtures: a real emulator on port 0 with a fake clock, and an httpx client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from emulator import EmulatorConfig, running_emulator
from tests.clocks import FakeClock
from tests.emulator.helpers import GRANTS, OTHER, OWNER, bearer


@pytest.fixture
def clock() -> FakeClock:
    """The emulator's clock, moved by the test."""
    return FakeClock()


@pytest.fixture
def config() -> EmulatorConfig:
    """Default settings with the test grants."""
    return EmulatorConfig(grants=GRANTS)


@pytest.fixture
async def emulator_url(config: EmulatorConfig, clock: FakeClock) -> AsyncIterator[str]:
    """Base URL of a fresh emulator listening on a free port."""
    async with running_emulator(config, clock) as url:
        yield url


@pytest.fixture
async def http(emulator_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the emulator."""
    async with httpx.AsyncClient(base_url=emulator_url, timeout=10.0) as client:
        yield client


@pytest.fixture
async def owner(http: httpx.AsyncClient) -> dict[str, str]:
    """Authorization header of the main test client (scope generative-language.tuning)."""
    return await bearer(http, OWNER)


@pytest.fixture
async def other(http: httpx.AsyncClient) -> dict[str, str]:
    """Authorization header of a second OAuth client."""
    return await bearer(http, OTHER)
