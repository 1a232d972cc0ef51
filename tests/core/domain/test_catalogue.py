"""The base models' retirement dates: what "retiring" means, and the setting's format."""

from __future__ import annotations

import datetime

import pytest

from core.domain.catalogue import Catalogue, Retirement, earliest
from core.runtime.settings import Settings

DAY_S = 86_400
JUNE_17 = datetime.datetime(2027, 6, 17, tzinfo=datetime.UTC).timestamp()


def catalogue(warning_days: float = 90) -> Catalogue:
    return Catalogue.from_entries(
        ["gemini-2.5-pro=2027-06-17", " gemini-2.5-flash-lite = 2027-07-22 "],
        warning_days=warning_days,
    )


@pytest.mark.parametrize(
    ("days_before", "retiring"),
    [(91, False), (90, True), (1, True), (0, True), (-400, True)],
)
def test_a_model_is_retiring_from_the_window_before_its_date_and_ever_after(
    days_before: float, retiring: bool
) -> None:
    found = catalogue().retirement("gemini-2.5-pro", JUNE_17 - days_before * DAY_S)
    assert found == Retirement(JUNE_17, retiring)


def test_a_model_without_a_date_is_never_retiring() -> None:
    assert catalogue().retirement("gemini-3.5-flash", JUNE_17) is None
    assert catalogue().retired_on("gemini-3.5-flash", JUNE_17) is None
    assert "gemini-3.5-flash" not in catalogue().retiring_models(JUNE_17 + 1_000 * DAY_S)


def test_a_model_is_retired_once_its_day_has_begun() -> None:
    assert catalogue().retired_on("gemini-2.5-pro", JUNE_17 - 1) is None
    assert catalogue().retired_on("gemini-2.5-pro", JUNE_17) == "2027-06-17"


def test_the_filter_selects_the_models_retiring_now() -> None:
    now = JUNE_17 - 10 * DAY_S
    assert catalogue().retiring_models(now) == {"gemini-2.5-pro", "gemini-2.5-flash-lite"}
    assert catalogue(warning_days=20).retiring_models(now) == {"gemini-2.5-pro"}


def test_an_alias_takes_the_earliest_date_and_any_flag() -> None:
    first, later = Retirement(100.0, False), Retirement(200.0, True)
    assert earliest([None, later, first]) == Retirement(100.0, True)
    assert earliest([None]) is None


@pytest.mark.parametrize(
    "entry", ["gemini-2.5-pro", "=2027-01-01", "gemini-2.5-pro=June 2027", "m=2027-13-01"]
)
def test_a_bad_entry_is_a_configuration_error_naming_the_setting(entry: str) -> None:
    with pytest.raises(SystemExit, match="TUNING_BASE_MODEL_RETIREMENTS"):
        Settings.from_env({"TUNING_BASE_MODEL_RETIREMENTS": entry}).catalogue()


def test_the_defaults_date_the_vertex_2_5_family_only() -> None:
    dated = Settings().catalogue().retire_times_s
    assert set(dated) == {"gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite"}
    assert set(Settings().base_models).isdisjoint(dated)  # still tunable in every test
