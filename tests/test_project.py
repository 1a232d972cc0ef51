"""The project's own hygiene: generated code fresh, lint and types clean, docs true."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from core.runtime.settings import LIMIT_FIELDS, Settings, limits_table, markdown_table
from service.limits import constants_table

ROOT = Path(__file__).resolve().parent.parent
UNLISTED_LIMITS = {
    "step_timeout_s",
    "upstream_timeout_s",
    "token_timeout_s",
    "poll_max_s",
    "retry_max_s",
    "max_step_attempts",
    "max_unfinished_visits",
    "grpc_max_connection_age_s",
    "status_cache_max_stale_s",
    "visit_timeout_s",
}


def run(*command: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False
    )


def test_generated_code_matches_the_protos(tmp_path: Path) -> None:
    result = run(sys.executable, "scripts/gen_protos.py", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(p.relative_to(ROOT) for p in (ROOT / "tuning").rglob("*") if p.is_file())
    assert generated == [p for p in committed if "__pycache__" not in str(p)]
    stale = [str(p) for p in generated if (tmp_path / p).read_bytes() != (ROOT / p).read_bytes()]
    assert not stale, f"run scripts/gen_protos.py: stale {stale}"


@pytest.mark.timeout(300)
def test_ruff_finds_nothing() -> None:
    lint = run(sys.executable, "-m", "ruff", "check", ".")
    assert lint.returncode == 0, lint.stdout
    fmt = run(sys.executable, "-m", "ruff", "format", "--check", ".")
    assert fmt.returncode == 0, fmt.stdout


@pytest.mark.timeout(600)
def test_mypy_strict_finds_nothing() -> None:
    result = run(sys.executable, "-m", "mypy", timeout_s=600)
    assert result.returncode == 0, result.stdout


def test_operations_configuration_table_matches_the_settings() -> None:
    operations = (ROOT / "docs" / "operations.md").read_text()
    assert markdown_table() in operations, "run `python scripts/docs_tables.py`"


def test_security_lists_every_limit_with_its_setting_and_default() -> None:
    security = (ROOT / "docs" / "security.md").read_text()
    assert limits_table() in security, "run `python scripts/docs_tables.py`"
    assert constants_table() in security, "run `python scripts/docs_tables.py`"
    names = {f.name for f in dataclasses.fields(Settings)}
    assert set(LIMIT_FIELDS) <= names
    for name in ("max", "quota", "limit", "timeout", "retention", "burst", "per_minute"):
        unlisted = {n for n in names if name in n} - set(LIMIT_FIELDS)
        # Settings that sound like limits but bound no caller: the worker's own pacing.
        assert unlisted <= UNLISTED_LIMITS, f"add to LIMIT_FIELDS: {sorted(unlisted)}"


@pytest.mark.parametrize("module", ["service", "worker", "emulator", "devstack"])
def test_every_entry_point_has_help(module: str) -> None:
    result = run(sys.executable, "-m", module, "--help", timeout_s=60)
    assert result.returncode == 0, result.stderr
    assert "usage: " in result.stdout
