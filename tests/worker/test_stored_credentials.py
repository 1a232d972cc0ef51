"""Workers use the credential stored through the CredentialService, sealed with AES-GCM."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from google.rpc import code_pb2, error_details_pb2

from core.errors import CannotDecrypt
from core.redis.client import Redis
from core.redis.keys import Keys
from core.security.authorized_user import AuthorizedUser
from core.security.credential_store import CredentialStore, StoredCredential, seal, unseal
from core.security.credentials import CredentialSource
from core.security.crypto import KeyRing, new_key
from core.security.tenants import TenantDirectory
from devstack.tenants import write_keys_file
from tests.clocks import FakeClock
from tests.conftest import SystemFactory
from tests.harness import State, System
from tests.worker.conftest import Upstream


def credential_json(system: System, tenant: str, **changes: str) -> str:
    return json.dumps(system.tenants[tenant].authorized_user() | changes)


def credentials_file(system: System, tenant: str) -> Path:
    return system.tenants_file.parent / f"{tenant}-oauth.json"


def credential_key(system: System, tenant: str) -> str:
    return Keys(system.settings.redis_key_prefix).tenant_credential(tenant)


async def stored(system: System, tenant: str) -> StoredCredential:
    store = CredentialStore(system.redis, Keys(system.settings.redis_key_prefix))
    record = await store.get(tenant)
    assert record is not None
    return record


async def user_projects(system: System) -> dict[str, int]:
    projects: dict[str, int] = (await system.upstream_stats())["user_projects"]
    return projects


async def run_job(system: System, tenant: str) -> Any:
    job = await system.create(tenant)
    return await system.finish_training(job.name, tenant)


async def test_a_job_runs_with_the_stored_credential_once_the_file_is_gone(
    system: System,
) -> None:
    await system.set_credential("team-b", credential_json(system, "team-b"))
    credentials_file(system, "team-b").unlink()
    done = await run_job(system, "team-b")
    assert done.state == State.SUCCEEDED, done.error.message
    assert (await user_projects(system)).get("proj-b", 0) > 0


async def test_the_stored_credential_is_preferred_and_its_changes_are_noticed(
    make_system: SystemFactory,
) -> None:
    async with make_system(credential_recheck_s=0.2) as system:
        assert (await run_job(system, "team-b")).state == State.SUCCEEDED  # from the file
        assert "proj-stored" not in await user_projects(system)
        text = credential_json(system, "team-b", quota_project_id="proj-stored")
        await system.set_credential("team-b", text)
        await asyncio.sleep(0.3)  # the recheck interval itself is what is under test
        assert (await run_job(system, "team-b")).state == State.SUCCEEDED
        assert (await user_projects(system)).get("proj-stored", 0) > 0
        # Deleted from Redis: the worker goes back to the file (gone too, so it says so).
        credentials_file(system, "team-b").unlink()
        await system.delete_credential("team-b")
        await asyncio.sleep(0.3)
        job = await system.create("team-b")
        failed = await system.wait_for(job.name, {State.FAILED}, tenant="team-b")
        assert failed.error.code == code_pb2.FAILED_PRECONDITION
        assert "cannot read the OAuth credential of tenant 'team-b'" in failed.error.message


async def test_the_ciphertext_holds_no_secret_and_opens_only_for_its_key_and_tenant(
    api_only: System,
) -> None:
    await api_only.set_credential("team-a", credential_json(api_only, "team-a"))
    tenant = api_only.tenants["team-a"]
    raw: Any = await api_only.redis.hgetall(credential_key(api_only, "team-a"))
    everything = b"\n".join([*raw.keys(), *raw.values()])
    for secret in (tenant.refresh_token, tenant.client_secret):
        assert secret.encode() not in everything
    record = await stored(api_only, "team-a")
    assert record.sealed.key_id == "k1"
    ring = KeyRing.load(Path(api_only.settings.encryption_keys_file))
    user = unseal(ring, record)
    assert (user.refresh_token, user.client_secret) == (tenant.refresh_token, tenant.client_secret)
    wrong_key = KeyRing([("k1", secrets.token_bytes(32))])
    unknown_key = KeyRing([("k9", secrets.token_bytes(32))])
    moved = dataclasses.replace(record, tenant="team-b")
    for other_ring, other_record, words in [
        (wrong_key, record, "does not authenticate"),
        (unknown_key, record, "not in the encryption keys file"),
        (ring, moved, "belongs to another record"),
    ]:
        with pytest.raises(CannotDecrypt, match=words):
            unseal(other_ring, other_record)


async def test_rotation_new_key_first_old_credentials_still_work(system: System) -> None:
    await system.set_credential("team-a", credential_json(system, "team-a"))
    keys_file = Path(system.settings.encryption_keys_file)
    old = json.loads(await asyncio.to_thread(keys_file.read_text))["keys"][0]
    write_keys_file(keys_file, [("k2", new_key()), (old["id"], old["key"])])

    async def sealed_with_k2() -> bool:  # The API reads the keys file again within a second.
        await system.set_credential("team-b", credential_json(system, "team-b"))
        return (await stored(system, "team-b")).sealed.key_id == "k2"

    await system.eventually(sealed_with_k2, timeout_s=5)
    assert (await stored(system, "team-a")).sealed.key_id == "k1"
    for tenant in ("team-a", "team-b"):
        credentials_file(system, tenant).unlink()
        done = await run_job(system, tenant)
        assert done.state == State.SUCCEEDED, done.error.message


async def test_a_ciphertext_moved_to_another_tenant_fails_its_jobs_clearly(system: System) -> None:
    await system.set_credential("team-a", credential_json(system, "team-a"))
    fields: Any = await system.redis.hgetall(credential_key(system, "team-a"))
    await system.redis.hset(credential_key(system, "team-b"), mapping=fields)
    job = await system.create("team-b")
    failed = await system.wait_for(job.name, {State.FAILED}, tenant="team-b")
    assert failed.error.code == code_pb2.FAILED_PRECONDITION
    info = error_details_pb2.ErrorInfo()
    assert failed.error.details[0].Unpack(info)
    assert info.reason == "CREDENTIAL_UNDECRYPTABLE"
    assert "stored for tenant 'team-b' cannot be decrypted" in failed.error.message
    assert (await run_job(system, "team-a")).state == State.SUCCEEDED  # the worker carries on


async def test_redis_is_looked_at_again_only_after_the_recheck_interval(
    upstream: Upstream, redis: Redis, prefix: str, tmp_path: Path
) -> None:
    tenant = upstream.tenants["team-a"]
    user = AuthorizedUser.from_info(tenant.authorized_user(), "test")
    user = dataclasses.replace(user, quota_project="proj-stored")
    ring = KeyRing([("k1", secrets.token_bytes(32))])
    store = CredentialStore(redis, Keys(prefix))
    await store.put(
        StoredCredential("team-a", seal(ring, "team-a", user), user.client_id, (), "", 0.0, 0.0)
    )
    clock = FakeClock(0.0)
    source = CredentialSource(
        TenantDirectory.from_file(tmp_path / "tenants.json"),
        upstream.url + "/token",
        upstream.token_http,
        store=store,
        keys=ring,
        recheck_s=5.0,
        monotonic=clock,
    )
    auth = source.for_tenant("team-a")
    assert (await auth.headers())["x-goog-user-project"] == "proj-stored"
    await store.delete("team-a")
    clock.advance(4.9)
    assert (await auth.headers())["x-goog-user-project"] == "proj-stored"  # not looked yet
    clock.advance(0.1)
    assert "x-goog-user-project" not in await auth.headers()  # back to the file
