"""The tenants file's `impersonate_service_account`: bounded, shaped, and never beside a
credentials file (a bad entry refuses the whole file, as other bad entries do)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.security.impersonation import SERVICE_ACCOUNT_MAX_CHARS, generate_access_token_url
from core.security.tenants import load_tenants

SA = "tuning-sa@team-project.iam.gserviceaccount.com"


def tenants_file(tmp_path: Path, **entry: object) -> Path:
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps({"tenants": [{"id": "team-s", **entry}]}))
    return path


def test_an_entry_may_name_a_service_account_instead_of_a_file(tmp_path: Path) -> None:
    tenant = load_tenants(tenants_file(tmp_path, impersonate_service_account=SA))["team-s"]
    assert tenant.impersonate_service_account == SA
    assert tenant.credentials_file is None


def test_a_file_and_a_service_account_together_refuse_the_file(tmp_path: Path) -> None:
    path = tenants_file(
        tmp_path, impersonate_service_account=SA, credentials_file="team-s-oauth.json"
    )
    with pytest.raises(ValueError, match="exclude each other"):
        load_tenants(path)


@pytest.mark.parametrize(
    "account",
    [
        "tuning-sa@team-project.iam.gserviceaccount.com.evil.example",
        "tuning-sa@gmail.com",
        "sa@team-project.iam.gserviceaccount.com",  # account ids have 6 to 30 characters
        "Tuning-SA@team-project.iam.gserviceaccount.com",
        "tuning-sa@team-project.iam.gserviceaccount.com/../x",
        "a" * 60 + "@" + "b" * 20 + ".iam.gserviceaccount.com",
        "",
        42,
        ["tuning-sa@team-project.iam.gserviceaccount.com"],
    ],
)
def test_anything_but_a_service_account_email_refuses_the_file(
    tmp_path: Path, account: object
) -> None:
    with pytest.raises(ValueError, match="team-s: impersonate_service_account") as refused:
        load_tenants(tenants_file(tmp_path, impersonate_service_account=account))
    assert len(str(refused.value)) < SERVICE_ACCOUNT_MAX_CHARS + 150  # the echo is bounded


def test_the_iam_endpoint_follows_the_setting() -> None:
    assert generate_access_token_url("http://127.0.0.1:9/", SA) == (
        f"http://127.0.0.1:9/v1/projects/-/serviceAccounts/{SA}:generateAccessToken"
    )
