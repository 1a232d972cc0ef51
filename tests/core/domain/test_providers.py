"""A tenant's provider, as the tenants file names it (core.domain.providers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.domain.providers import ProviderChoice, ProviderKind, VertexTarget
from core.security.authorized_user import CLOUD_PLATFORM_SCOPE, TUNING_SCOPE
from core.security.tenants import load_tenants

VERTEX = {
    "kind": "vertex",
    "project": "acme-ml",
    "location": "us-central1",
    "staging": "gs://acme-tuning/platform/",
}


def test_the_gemini_api_is_the_default() -> None:
    for raw in (None, "gemini_api", {"kind": "gemini_api"}):
        choice = ProviderChoice.from_json(raw)
        assert choice.kind == ProviderKind.GEMINI_API and choice.vertex is None
    assert ProviderKind.GEMINI_API.required_scope == TUNING_SCOPE


def test_a_vertex_tenant_names_its_project_location_and_staging_bucket() -> None:
    choice = ProviderChoice.from_json(VERTEX)
    assert choice.kind == ProviderKind.VERTEX
    assert choice.vertex == VertexTarget("acme-ml", "us-central1", "acme-tuning", "platform")
    assert choice.vertex.staging_uri == "gs://acme-tuning/platform"
    assert choice.vertex.staged_object("j123", "training.jsonl") == "platform/j123/training.jsonl"
    assert ProviderKind.VERTEX.required_scope == CLOUD_PLATFORM_SCOPE
    bare = ProviderChoice.from_json(VERTEX | {"staging": "gs://acme-tuning"}).vertex
    assert bare is not None and bare.staged_object("j1", "t.jsonl") == "j1/t.jsonl"


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"kind": "sagemaker"}, "not gemini_api or vertex"),
        ({"project": "Acme ML"}, "project"),
        ({"location": "us central"}, "location"),
        ({"staging": "s3://acme/x"}, "staging"),
        ({"staging": "gs://acme-tuning/../other"}, "staging"),
        ({"staging": "gs://A/x"}, "staging"),
        ({"region": "us"}, "unknown keys"),
    ],
)
def test_a_wrong_provider_refuses_the_file_saying_what_is_wrong(
    tmp_path: Path, change: dict[str, str], complaint: str
) -> None:
    path = tmp_path / "tenants.json"
    entry = {"id": "team-v", "token_sha256": [], "provider": VERTEX | change}
    path.write_text(json.dumps({"tenants": [entry]}))
    with pytest.raises(ValueError, match=complaint) as refused:
        load_tenants(path)
    assert "team-v" in str(refused.value)


def test_the_tenants_file_carries_each_tenants_provider(tmp_path: Path) -> None:
    path = tmp_path / "tenants.json"
    entries = [{"id": "team-a"}, {"id": "team-v", "provider": VERTEX}]
    path.write_text(json.dumps({"tenants": entries}))
    tenants = load_tenants(path)
    assert tenants["team-a"].provider.kind == ProviderKind.GEMINI_API
    assert tenants["team-v"].provider.kind == ProviderKind.VERTEX
