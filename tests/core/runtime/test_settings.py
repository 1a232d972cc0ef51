"""Settings round-trip through the environment, and refuse nonsense with a clear message."""

from __future__ import annotations

import dataclasses

import pytest

from core.runtime.settings import Settings, to_env


def test_settings_survive_the_environment() -> None:
    custom = dataclasses.replace(
        Settings(), redis_cluster=True, base_models=("models/a", "models/b"), job_lease_s=2.5
    )
    assert Settings.from_env(to_env(custom)) == custom


def test_a_bad_value_names_the_variable() -> None:
    with pytest.raises(SystemExit, match="TUNING_JOB_LEASE_S"):
        Settings.from_env({"TUNING_JOB_LEASE_S": "soon"})
