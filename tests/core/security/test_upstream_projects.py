"""The tenants file's quota pools (a Vertex provider's `pools`) and the per-project limit of
concurrent tuning jobs (`upstream_projects`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.domain.providers import ProviderChoice, VertexTarget
from core.security.tenants import TenantDirectory, load_tenants, load_tenants_file

VERTEX = {
    "kind": "vertex",
    "project": "acme-ml",
    "location": "us-central1",
    "staging": "gs://acme-tuning/platform",
}
POOL = {"project": "acme-ml-two", "location": "europe-west4", "staging": "gs://acme-two"}


def write(tmp_path: Path, provider: object, **top: Any) -> Path:
    path = tmp_path / "tenants.json"
    entries = [{"id": "team-v", "token_sha256": [], "provider": provider}]
    path.write_text(json.dumps({"tenants": entries, **top}))
    return path


def test_a_job_may_be_placed_on_the_main_target_or_a_pool_in_that_order() -> None:
    choice = ProviderChoice.from_json(VERTEX | {"pools": [POOL]})
    main, pool = (
        VertexTarget("acme-ml", "us-central1", "acme-tuning", "platform"),
        VertexTarget("acme-ml-two", "europe-west4", "acme-two"),
    )
    assert choice.targets() == (main, pool)
    placed = choice.placed_on(pool)
    assert placed.targets() == (pool,) and placed.kind == choice.kind
    assert ProviderChoice.from_json("gemini_api").targets() == ()


@pytest.mark.parametrize(
    ("pools", "complaint"),
    [
        ({"project": "acme-ml-two"}, "pools must be a list"),
        ([POOL | {"region": "eu"}], "unknown keys"),
        ([POOL | {"staging": "s3://x"}], "staging"),
        ([POOL | {"project": "acme-ml"}], "appears twice"),
        ([POOL | {"project": f"acme-ml-{n}"} for n in range(17)], "at most 16 pools"),
    ],
)
def test_a_wrong_pool_refuses_the_file_saying_what_is_wrong(
    tmp_path: Path, pools: object, complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint) as refused:
        load_tenants(write(tmp_path, VERTEX | {"pools": pools}))
    assert "team-v" in str(refused.value)


def test_each_listed_project_has_its_limit_and_the_others_the_default(tmp_path: Path) -> None:
    limits = {"acme-ml": {"max_running_jobs": 1}, "shared-ml": {"max_running_jobs": 0}}
    path = write(tmp_path, VERTEX | {"pools": [POOL]}, upstream_projects=limits)
    assert load_tenants_file(path).project_limits == {"acme-ml": 1, "shared-ml": 0}
    directory = TenantDirectory.from_file(path)
    assert directory.project_limit("acme-ml", 5) == 1
    assert directory.project_limit("shared-ml", 5) == 0
    assert directory.project_limit("acme-ml-two", 5) == 5
    assert directory.projects() == ["acme-ml", "shared-ml", "acme-ml-two"]


@pytest.mark.parametrize(
    "limits",
    [
        [],
        {"Acme ML": {"max_running_jobs": 1}},
        {"acme-ml": 1},
        {"acme-ml": {"max_running_jobs": -1}},
        {"acme-ml": {"max_running_jobs": True}},
        {"acme-ml": {"max_running_jobs": 10_001}},
        {"acme-ml": {"max_running_jobs": 1, "max_queued": 3}},
    ],
)
def test_a_wrong_project_limit_refuses_the_file(tmp_path: Path, limits: object) -> None:
    with pytest.raises(ValueError, match="upstream_projects"):
        load_tenants(write(tmp_path, VERTEX, upstream_projects=limits))
