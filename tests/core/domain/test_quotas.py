"""A tenants file's own quotas: the generate limits may be 0 (no limit), no other may."""

from __future__ import annotations

import math

import pytest

from core.domain.quotas import QuotaOverrides, TenantQuotas

DEFAULTS = TenantQuotas(max_running=20, creates_per_minute=60, create_burst=20)


def test_a_generate_limit_of_zero_is_no_limit_for_that_tenant() -> None:
    raw = {"generate_requests_per_minute": 0, "generate_max_concurrent": 4}

    quotas = QuotaOverrides.from_json(raw).over(DEFAULTS)

    assert quotas.generate_requests_per_minute == 0
    assert quotas.generate_max_concurrent == 4
    assert quotas.generate_tokens_per_minute == DEFAULTS.generate_tokens_per_minute


@pytest.mark.parametrize(
    "raw",
    [
        {"max_running": 0},
        {"generate_tokens_per_minute": -1},
        {"generate_max_concurrent": math.nan},
        {"generate_max_concurrent": True},
        {"generate_requests_per_minute": "600"},
    ],
)
def test_other_values_are_refused(raw: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="positive number"):
        QuotaOverrides.from_json(raw)
