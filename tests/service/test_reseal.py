"""Sealed credentials bound to tenant, key id and version; re-sealing after a key rotation.

Issue 12, item 13: a record moved to another tenant, relabelled with another key id, or
an older record restored over a newer one does not open; `ResealCredentials` moves every
stored credential to the ring's first key inside the server, so the old key can go.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import code_pb2

from core.errors import CannotDecrypt
from core.redis.keys import Keys
from core.security.authorized_user import AuthorizedUser
from core.security.credential_store import CredentialStore, StoredCredential, seal, unseal
from core.security.crypto import KeyRing, new_key
from devstack.tenants import write_keys_file
from tests.harness import State, System
from tests.rpc_errors import reason
from tuning.v1 import credential_service_pb2

RESEAL = credential_service_pb2.ResealCredentialsRequest()


def credential_json(system: System, tenant: str) -> str:
    return json.dumps(system.tenants[tenant].authorized_user())


def store_of(system: System) -> CredentialStore:
    return CredentialStore(system.redis, Keys(system.settings.redis_key_prefix))


def record_key(system: System, tenant: str) -> str:
    return Keys(system.settings.redis_key_prefix).tenant_credential(tenant)


async def stored(system: System, tenant: str) -> StoredCredential:
    record = await store_of(system).get(tenant)
    assert record is not None
    return record


async def ring_of(system: System) -> KeyRing:
    return await asyncio.to_thread(KeyRing.load, Path(system.settings.encryption_keys_file))


async def reseal(system: System) -> credential_service_pb2.ResealCredentialsResponse:
    return await system.admin_stub.ResealCredentials(RESEAL, metadata=system.auth("ops"))


async def rotate(system: System, keys: list[tuple[str, str]]) -> None:
    """Write the keys file and wait until the API seals with its first key."""
    write_keys_file(Path(system.settings.encryption_keys_file), keys)

    async def taken_up() -> bool:
        return (await reseal(system)).key_id == keys[0][0]

    await system.eventually(taken_up, timeout_s=5)


async def test_rotate_reseal_drop_the_old_key_and_jobs_still_run(system: System) -> None:
    for tenant in ("team-a", "team-b"):
        await system.set_credential(tenant, credential_json(system, tenant))
        (system.tenants_file.parent / f"{tenant}-oauth.json").unlink()  # stored ones only
    old = json.loads(await asyncio.to_thread(Path(system.settings.encryption_keys_file).read_text))
    k1 = old["keys"][0]["key"]
    await rotate(system, [("k2", new_key()), ("k1", k1)])
    k2 = json.loads(await asyncio.to_thread(Path(system.settings.encryption_keys_file).read_text))
    # `rotate` resealed already; a second call finds everything current.
    again = await reseal(system)
    assert (again.key_id, again.resealed_count, again.current_count) == ("k2", 0, 2)
    assert list(again.failed_tenants) == []
    for tenant in ("team-a", "team-b"):
        assert (await stored(system, tenant)).sealed.key_id == "k2"
        assert (await system.get_credential(tenant)).key_id == "k2"
    # k1 goes: the credentials still open, for the API and for the worker.
    write_keys_file(
        Path(system.settings.encryption_keys_file), [(k["id"], k["key"]) for k in k2["keys"][:1]]
    )
    only_k2 = await ring_of(system)
    assert only_k2.primary_id == "k2" and "k1" not in repr(only_k2)
    for tenant in ("team-a", "team-b"):
        assert unseal(only_k2, await stored(system, tenant)).client_id
    for tenant in ("team-a", "team-b"):
        job = await system.create(tenant)
        done = await system.finish_training(job.name, tenant)
        assert done.state == State.SUCCEEDED, done.error.message


async def test_reseal_counts_what_it_moves_and_names_what_it_cannot_open(
    api_only: System,
) -> None:
    await api_only.set_credential("team-a", credential_json(api_only, "team-a"))
    await api_only.set_credential("team-b", credential_json(api_only, "team-b"))
    # team-b's record is altered: its ciphertext no longer authenticates.
    fields: Any = await api_only.redis.hgetall(record_key(api_only, "team-b"))
    tampered = bytes([fields[b"ciphertext"][0] ^ 1]) + fields[b"ciphertext"][1:]
    await api_only.redis.hset(record_key(api_only, "team-b"), "ciphertext", tampered)
    k1 = json.loads(await asyncio.to_thread(Path(api_only.settings.encryption_keys_file).read_text))
    write_keys_file(
        Path(api_only.settings.encryption_keys_file),
        [("k2", new_key()), ("k1", k1["keys"][0]["key"])],
    )

    async def moved() -> bool:
        answer = await reseal(api_only)
        return answer.key_id == "k2" and answer.resealed_count == 1

    await api_only.eventually(moved, timeout_s=5)
    answer = await reseal(api_only)
    assert (answer.resealed_count, answer.current_count) == (0, 1)
    assert list(answer.failed_tenants) == ["team-b"]
    ring = await ring_of(api_only)
    user = unseal(ring, await stored(api_only, "team-a"))
    assert user.refresh_token == api_only.tenants["team-a"].refresh_token


async def test_only_admins_may_reseal(api_only: System) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api_only.admin_stub.ResealCredentials(RESEAL, metadata=api_only.auth("team-a"))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason(caught.value) == "ADMIN_ROLE_REQUIRED"


async def test_moved_relabelled_renumbered_or_rolled_back_records_do_not_open(
    api_only: System,
) -> None:
    await api_only.set_credential("team-a", credential_json(api_only, "team-a"))
    older = await stored(api_only, "team-a")
    await api_only.set_credential("team-a", credential_json(api_only, "team-a"))
    newer = await stored(api_only, "team-a")
    assert newer.record_version == older.record_version + 1
    k1 = (await ring_of(api_only)).primary_id
    ring = KeyRing([(k1, _key(api_only, 0)), ("k2", _key(api_only, 0))])  # same bytes twice
    assert unseal(ring, newer).client_id == api_only.tenants["team-a"].client_id
    relabelled = dataclasses.replace(newer, sealed=dataclasses.replace(newer.sealed, key_id="k2"))
    cases = {
        "moved": dataclasses.replace(newer, tenant="team-b"),
        "relabelled": relabelled,
        "renumbered": dataclasses.replace(newer, record_version=newer.record_version + 1),
    }
    for what, record in cases.items():
        with pytest.raises(CannotDecrypt, match="belongs to another record"):
            unseal(ring, record)
            pytest.fail(f"a {what} record opened")
    # The older record restored over the newer one, as a backup restore would.
    raw: Any = await api_only.redis.hgetall(record_key(api_only, "team-a"))
    await api_only.redis.delete(record_key(api_only, "team-a"))
    await api_only.redis.hset(record_key(api_only, "team-a"), mapping=dict(older.to_fields()))  # type: ignore[arg-type]
    restored = await stored(api_only, "team-a")
    with pytest.raises(CannotDecrypt, match="restored over a newer one"):
        unseal(ring, restored)
    assert raw[b"version"] == str(newer.record_version).encode()


def _key(system: System, index: int) -> bytes:
    keys = json.loads(Path(system.settings.encryption_keys_file).read_text())["keys"]
    return base64.b64decode(keys[index]["key"])


async def test_a_rolled_back_record_fails_the_tenants_jobs_clearly(system: System) -> None:
    await system.set_credential("team-b", credential_json(system, "team-b"))
    older: Any = await system.redis.hgetall(record_key(system, "team-b"))
    await system.set_credential("team-b", credential_json(system, "team-b"))
    await system.redis.hset(record_key(system, "team-b"), mapping=older)
    job = await system.create("team-b")
    failed = await system.wait_for(job.name, {State.FAILED}, tenant="team-b")
    assert failed.error.code == code_pb2.FAILED_PRECONDITION
    assert "restored over a newer one" in failed.error.message


async def test_records_sealed_before_versions_still_open_and_reseal_upgrades_them(
    api_only: System,
) -> None:
    ring = await ring_of(api_only)
    tenant = api_only.tenants["team-a"]
    user = AuthorizedUser.from_info(tenant.authorized_user(), "test")
    legacy = StoredCredential("team-a", seal(ring, "team-a", user), user.client_id, (), "", 0, 0)
    assert await store_of(api_only).put(legacy)
    assert unseal(ring, await stored(api_only, "team-a")).refresh_token == tenant.refresh_token
    answer = await reseal(api_only)
    assert answer.resealed_count == 1
    upgraded = await stored(api_only, "team-a")
    assert upgraded.record_version == 1
    assert unseal(ring, upgraded).refresh_token == tenant.refresh_token
    # Once versioned, an old-style record restored over it no longer opens.
    assert not await store_of(api_only).put(legacy, expected_version=1)  # never goes back
    await api_only.redis.hset(record_key(api_only, "team-a"), mapping=dict(legacy.to_fields()))  # type: ignore[arg-type]
    with pytest.raises(CannotDecrypt, match="restored over a newer one"):
        unseal(ring, await stored(api_only, "team-a"))
