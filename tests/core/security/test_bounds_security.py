"""Broken security files fail closed; credentials files stay confined; secrets are redacted.

Issue 12, items 12 and 15: a tenants file with one token digest under two principals, or
that no longer parses, or that is deleted, must not leave anyone admitted; a keys file
likewise; `credentials_file` cannot point outside the tenants file's directory; and the
secrets the process holds never reach a log line, in any encoding.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import urllib.parse
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from core.runtime import logs
from core.security.credentials import CredentialSource
from core.security.tenants import TenantDirectory, load_tenants, token_digest
from devstack.tenants import LocalTenant, tenants_entry, write_atomically
from tests.harness import ADMIN, System
from tests.rpc_errors import reason
from tuning.v1 import tuning_service_pb2

WAIT_S = 5.0
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def write_entries(path: Path, entries: list[dict[str, object]]) -> Path:
    return write_atomically(path, json.dumps({"tenants": entries}))


async def list_code(system: System, tenant: str = "team-a") -> tuple[grpc.StatusCode, str]:
    try:
        await system.stub.ListTuningJobs(
            tuning_service_pb2.ListTuningJobsRequest(), metadata=system.auth(tenant)
        )
    except grpc.aio.AioRpcError as exc:
        return exc.code(), reason(exc)
    return grpc.StatusCode.OK, ""


async def health(system: System) -> int:
    stub: Any = health_pb2_grpc.HealthStub(system.channel)  # typed for sync channels
    answer = await stub.Check(health_pb2.HealthCheckRequest(service=""))
    return int(answer.status)


def file_ok(system: System, file: str) -> float | None:
    return system.api_metrics.registry.get_sample_value("tuning_security_file_ok", {"file": file})


async def until(system: System, tenant: str, code: grpc.StatusCode, status: int) -> None:
    async def reached() -> bool:
        return (await list_code(system, tenant))[0] == code and await health(system) == status

    await system.eventually(reached, timeout_s=WAIT_S)


# Item 12: one token digest under two principals.


def test_a_digest_shared_by_two_principals_refuses_the_file_naming_both(tmp_path: Path) -> None:
    shared = token_digest("tok-shared").hex()
    path = write_entries(
        tmp_path / "tenants.json",
        [{"id": "team-a", "token_sha256": [shared]}, {"id": "ops", "token_sha256": [shared]}],
    )
    with pytest.raises(ValueError, match="team-a") as refused:
        load_tenants(path)
    assert "ops" in str(refused.value) and shared not in str(refused.value)
    with pytest.raises(SystemExit):
        TenantDirectory.watch(path)


# Item 12: credentials_file confined to the tenants file's directory.


@pytest.mark.parametrize(
    "name", ["../outside.json", "/etc/passwd", "sub/../../outside.json", "escape/x.json"]
)
def test_a_credentials_file_outside_the_tenants_directory_is_refused(
    tmp_path: Path, name: str
) -> None:
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (tmp_path / "outside.json").write_text("{}")
    os.symlink(tmp_path, secrets_dir / "escape")  # a symlink that leaves the directory
    path = write_entries(secrets_dir / "tenants.json", [{"id": "team-a", "credentials_file": name}])
    with pytest.raises(ValueError, match="inside the tenants file's directory"):
        load_tenants(path)


def test_credentials_files_inside_the_directory_are_kept_unresolved(tmp_path: Path) -> None:
    # Kubernetes mounts each file as a symlink into `..data/`: that stays allowed.
    (tmp_path / "..data").mkdir()
    (tmp_path / "..data" / "a.json").write_text("{}")
    os.symlink(tmp_path / "..data" / "a.json", tmp_path / "a.json")
    entries: list[dict[str, object]] = [
        {"id": "team-a", "credentials_file": "a.json"},
        {"id": "team-b", "credentials_file": "sub/b.json"},
    ]
    tenants = load_tenants(write_entries(tmp_path / "tenants.json", entries))
    assert tenants["team-a"].credentials_file == tmp_path / "a.json"
    assert tenants["team-b"].credentials_file == tmp_path / "sub" / "b.json"


# Item 12: through the real server, a broken tenants file fails closed, then recovers.


async def test_a_shared_digest_written_while_running_admits_no_one_until_fixed(
    api_only: System,
) -> None:
    good = list(api_only.tenants.values())
    assert await health(api_only) == SERVING and file_ok(api_only, "tenants") == 1
    # team-b's entry now also carries the admin's token digest.
    entries = [tenants_entry(t) for t in good]
    admin_digest = token_digest(api_only.tenants[ADMIN].token).hex()
    for entry in entries:
        if entry["id"] == "team-b":
            entry["token_sha256"] = [*entry["token_sha256"], admin_digest]  # type: ignore[misc]
    write_entries(api_only.tenants_file, entries)
    await until(api_only, "team-a", grpc.StatusCode.UNAVAILABLE, NOT_SERVING)
    assert await list_code(api_only, "team-b") == (
        grpc.StatusCode.UNAVAILABLE,
        "SECURITY_FILE_UNUSABLE",
    )
    assert file_ok(api_only, "tenants") == 0
    write_entries(api_only.tenants_file, [tenants_entry(t) for t in good])
    await until(api_only, "team-a", grpc.StatusCode.OK, SERVING)
    assert file_ok(api_only, "tenants") == 1


async def test_a_deleted_tenants_file_admits_no_one_until_it_is_back(api_only: System) -> None:
    content = await asyncio.to_thread(api_only.tenants_file.read_text)
    api_only.tenants_file.unlink()
    await until(api_only, "team-a", grpc.StatusCode.UNAVAILABLE, NOT_SERVING)
    assert file_ok(api_only, "tenants") == 0
    write_atomically(api_only.tenants_file, content)
    await until(api_only, "team-a", grpc.StatusCode.OK, SERVING)


async def test_a_credentials_file_escaping_written_while_running_fails_closed(
    api_only: System,
) -> None:
    entries = [tenants_entry(t) for t in api_only.tenants.values()]
    entries[0]["credentials_file"] = "../../etc/passwd"
    write_entries(api_only.tenants_file, entries)
    await until(api_only, "team-b", grpc.StatusCode.UNAVAILABLE, NOT_SERVING)


async def test_a_broken_keys_file_refuses_to_seal_and_reports_not_serving(
    api_only: System,
) -> None:
    keys_file = Path(api_only.settings.encryption_keys_file)
    content = await asyncio.to_thread(keys_file.read_text)
    credential = json.dumps(api_only.tenants["team-a"].authorized_user())
    write_atomically(keys_file, '{"keys": []}')

    async def refused() -> bool:
        try:
            await api_only.set_credential("team-a", credential)
        except grpc.aio.AioRpcError as exc:
            return reason(exc) == "SECURITY_FILE_UNUSABLE" and await health(api_only) == NOT_SERVING
        return False

    await api_only.eventually(refused, timeout_s=WAIT_S)
    assert file_ok(api_only, "keys") == 0
    write_atomically(keys_file, content)

    async def sealing_again() -> bool:
        try:
            await api_only.set_credential("team-a", credential)
        except grpc.aio.AioRpcError:
            return False
        return await health(api_only) == SERVING

    await api_only.eventually(sealing_again, timeout_s=WAIT_S)
    assert file_ok(api_only, "keys") == 1


# Item 15: the secrets the process holds are redacted in every encoding.


def formatted(message: str) -> str:
    record = logging.LogRecord("test", logging.INFO, __file__, 1, message, None, None)
    return str(json.loads(logs.JsonFormatter().format(record))["msg"])


def encoded_forms(secret: str) -> dict[str, str]:
    return {
        "raw": secret,
        "json": json.dumps(secret)[1:-1],
        "json-in-json": json.dumps(json.dumps({"x": secret}))[1:-1],
        "url": urllib.parse.quote(secret, safe=""),
        "form": urllib.parse.urlencode({"x": secret}).partition("=")[2],
    }


async def test_secrets_loaded_by_the_api_are_redacted_in_every_encoding(api_only: System) -> None:
    # A credential set through the CredentialService, its secrets shaped like nothing
    # the patterns know (cs-..., rt-...): only their values can find them.
    user = LocalTenant("team-a").authorized_user()
    assert formatted(user["client_secret"]) == user["client_secret"]  # not known yet
    await api_only.set_credential(
        "team-a", json.dumps(api_only.tenants["team-a"].authorized_user())
    )
    loaded = api_only.tenants["team-a"]
    for secret in (loaded.client_secret, loaded.refresh_token):
        for form, text in encoded_forms(secret).items():
            line = formatted(f"upstream said {text} (done)")
            assert secret not in line and text not in line, f"{form} form leaked"
            assert "[REDACTED]" in line


async def test_secrets_loaded_by_the_worker_are_redacted(api_only: System) -> None:
    # A tenant whose file holds Google-shaped secrets: a GOCSPX- client secret and a
    # refresh token that does not start with 1//.
    path = api_only.tenants_file.parent / "team-a-oauth.json"
    info = json.loads(await asyncio.to_thread(path.read_text))
    info["client_secret"] = "GOCSPX-" + "s3cr3tClientSecretValue"
    info["refresh_token"] = "0AfJohX" + "Refresh/Token+Value=Tail"
    write_atomically(path, json.dumps(info))
    with httpx.Client() as http:
        source = CredentialSource(
            TenantDirectory.from_file(api_only.tenants_file), "http://unused.invalid/token", http
        )
        await source.resolve("team-a")
    for secret in (info["client_secret"], info["refresh_token"]):
        for form, text in encoded_forms(secret).items():
            line = formatted(f'{{"body": "{text}"}}')
            assert secret not in line and text not in line, f"{form} form leaked"


def test_patterns_catch_escaped_and_encoded_secrets_not_yet_loaded() -> None:
    for line in [
        '{\\"refresh_token\\": \\"unknownRefreshValue123\\"}',
        "%7B%22client_secret%22%3A%22unknownSecretValue%22%7D",
        "client GOCSPX-unknownBareClientSecret here",
        "refresh_token=1%2F%2F0gUnknownRefreshTokenValue",
    ]:
        out = formatted(line)
        assert "unknown" not in out.lower(), out
