"""The Dockerfile, checked statically: there is no Docker engine on these machines."""

from __future__ import annotations

import ast
import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "docker" / "Dockerfile").read_text()


def test_base_images_are_pinned_to_a_patch_version() -> None:
    images = re.findall(r"^FROM\s+(\S+)", DOCKERFILE, flags=re.MULTILINE)
    assert images, "no FROM line"
    for image in images:
        assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", image), image


def test_the_final_stage_runs_as_a_non_root_user() -> None:
    final_stage = DOCKERFILE.rsplit("FROM", 1)[1]
    users = re.findall(r"^USER\s+(\S+)", final_stage, flags=re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert "gcc" not in final_stage and "build-essential" not in final_stage


def test_the_entry_commands_exist() -> None:
    default = re.search(r'^CMD \["(\w+)"\]', DOCKERFILE, flags=re.MULTILINE)
    assert default is not None
    for module in (default.group(1), "worker", "emulator"):
        assert importlib.util.find_spec(f"{module}.__main__") is not None, module


def test_every_package_the_processes_import_is_copied() -> None:
    copied = set(re.findall(r"^COPY (\w+) \1$", DOCKERFILE, flags=re.MULTILINE))
    assert {"core", "service", "worker", "tuning"} <= copied


def _stage(name: str) -> str:
    match = re.search(rf"^FROM \S+ AS {name}\n(.*?)(?=^FROM |\Z)", DOCKERFILE, re.M | re.S)
    assert match is not None, f"no stage {name}"
    return match.group(1)


def test_the_production_image_holds_no_emulator_or_devstack() -> None:
    build, final = _stage("build"), DOCKERFILE.rsplit("FROM", 1)[1]
    for stage in (build, final):
        assert not re.search(r"^COPY (emulator|devstack)\b", stage, flags=re.MULTILINE)
    assert "[emulator]" not in build and "build-emulator" not in final


def test_the_upstream_http_client_is_a_runtime_dependency() -> None:
    # aiohttp is the upstream client of core/upstream_http.py (and the emulator's server):
    # the production image must have it, not only the emulator's.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert [d for d in project["dependencies"] if d.startswith("aiohttp")]


@pytest.mark.parametrize("package", ["core", "service", "worker"])
def test_production_code_imports_nothing_of_the_emulator(package: str) -> None:
    forbidden = ("emulator", "devstack", "tests", "bench")
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path}: imports {name}"
