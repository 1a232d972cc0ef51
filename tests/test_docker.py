"""The Dockerfile, checked statically: there is no Docker engine on these machines."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

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
