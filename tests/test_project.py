"""The project's own hygiene: generated code fresh, lint and types clean, docs true."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.runtime.settings import markdown_table

ROOT = Path(__file__).resolve().parent.parent


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


@pytest.mark.parametrize("module", ["service", "worker", "emulator", "devstack"])
def test_every_entry_point_has_help(module: str) -> None:
    result = run(sys.executable, "-m", module, "--help", timeout_s=60)
    assert result.returncode == 0, result.stderr
    assert "usage: " in result.stdout
