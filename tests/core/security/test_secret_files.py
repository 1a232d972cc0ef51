"""Mounted secret files: the keys file, the tenants file with roles, reloading on change."""

from __future__ import annotations

import base64
import json
import logging
import secrets
from pathlib import Path

import pytest

from core.errors import SecurityFileUnusable
from core.security.crypto import KeyRing, new_key
from core.security.secret_files import ReloadingFile
from core.security.tenants import Role, TenantDirectory
from devstack.tenants import write_atomically
from tests.clocks import FakeClock


def keys_file(tmp_path: Path, keys: list[dict[str, str]]) -> Path:
    return write_atomically(tmp_path / "keys.json", json.dumps({"keys": keys}))


def test_the_first_key_seals_and_every_key_opens(tmp_path: Path) -> None:
    old = KeyRing.load(keys_file(tmp_path, [{"id": "k1", "key": new_key()}]))
    sealed_old = old.seal(b"secret", b"team-a")
    k1 = json.loads((tmp_path / "keys.json").read_text())["keys"][0]
    ring = KeyRing.load(keys_file(tmp_path, [{"id": "k2", "key": new_key()}, k1]))
    assert ring.primary_id == "k2"
    assert ring.open(sealed_old, b"team-a") == b"secret"
    assert ring.needs_reseal(sealed_old)
    sealed_new = ring.seal(b"secret", b"team-a")
    assert sealed_new.key_id == "k2" and not ring.needs_reseal(sealed_new)
    assert sealed_new.nonce != ring.seal(b"secret", b"team-a").nonce  # a fresh nonce each time


@pytest.mark.parametrize(
    ("keys", "words"),
    [
        ([], "at least one key"),
        ([{"id": "k1", "key": "not base64!"}], "not valid base64"),
        ([{"id": "k1", "key": base64.b64encode(b"short").decode()}], "must be 32 bytes"),
        ([{"id": "k1", "key": new_key()}, {"id": "k1", "key": new_key()}], "unique"),
        ([{"key": new_key()}], "not a keys file"),
    ],
    ids=["empty", "bad-base64", "short", "duplicate-id", "no-id"],
)
def test_an_unusable_keys_file_stops_the_process_without_quoting_it(
    tmp_path: Path, keys: list[dict[str, str]], words: str
) -> None:
    path = keys_file(tmp_path, keys)
    with pytest.raises(SystemExit) as stopped:
        KeyRing.watch(path)
    assert words in str(stopped.value)
    for key in keys:
        assert key.get("key", "-") not in str(stopped.value)


def test_the_key_ring_never_shows_its_keys(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    assert base64.b64encode(key).decode() not in repr(KeyRing([("k1", key)]))
    assert "k1" in repr(KeyRing([("k1", key)]))


def tenants_file(tmp_path: Path, entries: list[dict[str, object]]) -> Path:
    return write_atomically(tmp_path / "tenants.json", json.dumps({"tenants": entries}))


def test_roles_default_to_tenant_and_admins_are_not_tenants(tmp_path: Path) -> None:
    path = tenants_file(tmp_path, [{"id": "team-a"}, {"id": "ops", "role": "admin"}])
    directory = TenantDirectory.from_file(path)
    assert [(t.id, t.role) for t in directory] == [("team-a", Role.TENANT), ("ops", Role.ADMIN)]
    assert directory.tenant("ops") is None
    assert directory.tenant("team-a") is not None


@pytest.mark.parametrize(
    ("entries", "words"),
    [
        ([{"id": "team-a", "role": "root"}], "role 'root' is not one of tenant, admin"),
        ([{"id": "team-a"}, {"id": "team-a"}], "appears twice"),
        ([{"name": "team-a"}], "not a tenants file"),
    ],
    ids=["unknown-role", "duplicate", "no-id"],
)
def test_a_bad_tenants_file_stops_the_process_at_start(
    tmp_path: Path, entries: list[dict[str, object]], words: str
) -> None:
    with pytest.raises(SystemExit) as stopped:
        TenantDirectory.watch(tenants_file(tmp_path, entries))
    assert words in str(stopped.value)


def test_a_changed_file_is_looked_at_once_per_interval_on_use(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_atomically(tmp_path / "value.json", "1")
    clock = FakeClock(0.0)
    file = ReloadingFile(path, lambda p: int(json.loads(p.read_text())), monotonic=clock)
    write_atomically(path, "2")
    clock.advance(0.9)
    assert file.current() == 1  # not looked at yet
    clock.advance(0.1)
    assert file.current() == 2
    caplog.set_level(logging.ERROR)
    write_atomically(path, "{not json")
    clock.advance(1.0)
    with pytest.raises(SecurityFileUnusable):  # a bad version fails closed
        file.current()
    assert "cannot be loaded" in caplog.text and not file.ok
    write_atomically(path, "3")
    assert file.reread() == 3 and file.ok  # a caller may look at once
    path.unlink()
    clock.advance(1.0)
    assert not file.check()  # so does a vanished file
    with pytest.raises(SecurityFileUnusable):
        file.current()
    write_atomically(path, "4")
    clock.advance(1.0)
    assert file.current() == 4  # a fixed file is taken up again
