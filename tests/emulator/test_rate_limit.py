"""The request quota (``--rate-limit-rps``): at most N API requests in any sliding second."""

from __future__ import annotations

import httpx
import pytest

from emulator import EmulatorConfig
from emulator.__main__ import config_from_args, parse_args
from tests.clocks import FakeClock
from tests.emulator.helpers import GRANTS, OWNER, detail, emulator_stats, error_of, token_form

RPS = 3
LIST = "/v1beta/tunedModels"


@pytest.fixture
def config() -> EmulatorConfig:
    """The test grants and a quota of three requests per second."""
    return EmulatorConfig(grants=GRANTS, rate_limit_rps=RPS)


async def _statuses(http: httpx.AsyncClient, headers: dict[str, str], count: int) -> list[int]:
    return [(await http.get(LIST, headers=headers)).status_code for _ in range(count)]


async def test_requests_over_the_quota_get_429_with_quota_failure_and_exact_retry_info(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    statuses = []
    for _ in range(RPS):
        statuses += await _statuses(http, owner, 1)
        clock.advance(0.25)  # arrivals at 0, 0.25 and 0.5 s
    refused = await http.get(LIST, headers=owner)  # at 0.75 s: the first leaves at 1.0 s

    assert statuses == [200] * RPS
    assert refused.status_code == 429
    error = error_of(refused)
    assert error["status"] == "RESOURCE_EXHAUSTED"
    assert detail(error, "google.rpc.RetryInfo")["retryDelay"] == "0.250s"
    violation = detail(error, "google.rpc.QuotaFailure")["violations"][0]
    assert violation["quotaId"] == "RequestsPerSecondPerProject"
    assert detail(error, "google.rpc.Help")["links"]


async def test_the_window_slides_a_request_is_admitted_once_the_oldest_leaves_it(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    first = await _statuses(http, owner, 1)
    clock.advance(0.5)
    rest = await _statuses(http, owner, RPS)  # two fit beside the first, one does not
    clock.advance(0.5)  # the first is now exactly one second old: out of (t - 1 s, t]
    after = await _statuses(http, owner, 2)

    assert first + rest == [200, 200, 200, 429]
    assert after == [200, 429]


async def test_refused_requests_do_not_count_against_the_quota(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    await _statuses(http, owner, RPS)
    clock.advance(0.9)
    knocking = await _statuses(http, owner, 20)
    clock.advance(0.1)
    admitted = await _statuses(http, owner, RPS + 1)

    assert set(knocking) == {429}
    assert admitted == [200] * RPS + [429]


async def test_stats_count_admitted_and_refused_and_token_exchanges_are_not_limited(
    http: httpx.AsyncClient, owner: dict[str, str]
) -> None:
    await _statuses(http, owner, RPS + 2)
    tokens = [(await http.post("/token", data=token_form(OWNER))).status_code for _ in range(5)]
    unauthenticated = await http.get(LIST)  # limited before authentication: refused too

    stats = await emulator_stats(http)

    assert tokens == [200] * 5
    assert unauthenticated.status_code == 429
    assert stats["rate_limit"] == {"rps": RPS, "admitted": RPS, "refused": 3}
    assert stats["requests"]["GET tunedModels.list"] == RPS + 3


async def test_a_refused_request_uses_up_no_fault_rule(
    http: httpx.AsyncClient, owner: dict[str, str], clock: FakeClock
) -> None:
    await _statuses(http, owner, RPS)
    rule = {"route": "tunedModels.list", "status": 503}
    await http.post("/_emulator/faults", json={"rules": [rule]})
    refused = await _statuses(http, owner, 1)
    clock.advance(1.0)
    faulted = await _statuses(http, owner, 2)

    assert refused == [429]
    assert faulted == [503, 200]


async def test_the_quota_comes_from_the_flag_or_the_environment() -> None:
    from_flag = config_from_args(parse_args(["--rate-limit-rps", "20"], {}))
    from_env = config_from_args(parse_args([], {"EMULATOR_RATE_LIMIT_RPS": "7"}))
    default = config_from_args(parse_args([], {}))

    assert (from_flag.rate_limit_rps, from_env.rate_limit_rps, default.rate_limit_rps) == (20, 7, 0)


def test_a_negative_quota_is_refused() -> None:
    with pytest.raises(ValueError, match="rate_limit_rps"):
        EmulatorConfig(rate_limit_rps=-1)
