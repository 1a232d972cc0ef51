"""buf on protos/: STANDARD lint rules (with Google AIP exceptions, see buf.yaml) and no
breaking change against the released API, protos/baseline.binpb (see protos/README.md)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUF = ROOT / ".tools" / "node_modules" / ".bin" / "buf"
BASELINE = ROOT / "protos" / "baseline.binpb"


def buf(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    if not BUF.exists():
        # A failure, not a skip: CI has npm, so a missing buf means the setup is broken.
        pytest.fail(
            f"buf is not installed at {BUF.relative_to(ROOT)}: run `bash bin/test`, whose "
            "bin/_setup.sh installs it from npm (@bufbuild/buf) into .tools/ (needs npm)",
            pytrace=False,
        )
    return subprocess.run(
        [str(BUF), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n{result.stdout}{result.stderr}"


def test_buf_lint_finds_nothing() -> None:
    result = buf("lint")
    assert result.returncode == 0, output(result)


def test_protos_have_no_breaking_change_against_the_baseline() -> None:
    assert BASELINE.is_file(), "protos/baseline.binpb is missing: see protos/README.md"
    result = buf("breaking", "protos", "--against", str(BASELINE))
    assert result.returncode == 0, output(result)


def copy_of_the_protos(tmp_path: Path) -> Path:
    for name in ["buf.yaml", "protos", "third_party"]:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name)
        else:
            shutil.copy2(source, tmp_path / name)
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} not found once in {path}"
    path.write_text(text.replace(old, new))


def test_breaking_check_rejects_a_renumbered_field_and_a_removed_rpc(tmp_path: Path) -> None:
    copy = copy_of_the_protos(tmp_path)
    v1 = copy / "protos" / "tuning" / "v1"
    edit(v1 / "tuning_job.proto", "string base_model = 4;", "string base_model = 40;")
    edit(
        v1 / "tuning_service.proto", "  rpc GetDataset(GetDatasetRequest) returns (Dataset);\n", ""
    )
    result = buf("breaking", "protos", "--against", str(BASELINE), cwd=copy)
    shown = output(result)
    assert result.returncode != 0, shown
    assert re.search(r'field "4" with name "base_model" on message "TuningJob"', shown), shown
    assert 'RPC "GetDataset" on service "TuningService" was deleted' in shown, shown


def test_breaking_check_allows_an_added_field(tmp_path: Path) -> None:
    copy = copy_of_the_protos(tmp_path)
    edit(
        copy / "protos" / "tuning" / "v1" / "dataset.proto",
        "  int64 size_bytes = 7;\n",
        "  int64 size_bytes = 7;\n  int32 empty_line_count = 8;\n",
    )
    result = buf("breaking", "protos", "--against", str(BASELINE), cwd=copy)
    assert result.returncode == 0, output(result)
