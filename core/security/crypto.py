"""Encryption at rest: AES-GCM under a ring of keys, so keys can rotate.

The keys file (`TUNING_ENCRYPTION_KEYS_FILE`) is a mounted secret:

    {"keys": [{"id": "k2", "key": "<base64 of 32 random bytes>"},
              {"id": "k1", "key": "<base64 of 32 random bytes>"}]}

The first key encrypts; every key decrypts. To rotate, put a new key first: new
ciphertexts use it at once and old ones still decrypt; drop the old key only once
nothing is sealed under it any more (`KeyRing.needs_reseal` says which records are).
The file is read again when it changes, like the tenants file, and like it fails
closed: while its latest version does not load, nothing is sealed or opened (callers
get SECURITY_FILE_UNUSABLE), rather than going on with a ring the operators replaced.

Each ciphertext names its key id and has its own random 12-byte nonce (NIST allows
2**32 random-nonce seals under one key; credentials are written far fewer times, and a
rotation starts the count again). The associated data binds
a ciphertext to what it belongs to (core.security.credential_store binds the tenant, the
key id and the record's version): moved elsewhere, it does not decrypt, and that is an
error, not a crash.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.errors import CannotDecrypt
from core.security.secret_files import ReloadingFile

KEY_BYTES = 32
NONCE_BYTES = 12


@dataclass(frozen=True)
class Sealed:
    """A ciphertext, its nonce and the id of the key that sealed it."""

    key_id: str
    nonce: bytes
    ciphertext: bytes = field(repr=False)


class KeyRing:
    """Named AES-256-GCM keys; the first one seals."""

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise ValueError("the key ring needs at least one key")
        ids = [key_id for key_id, _ in keys]
        if len(set(ids)) != len(ids) or not all(ids):
            raise ValueError("key ids must be non-empty and unique")
        for key_id, key in keys:
            if len(key) != KEY_BYTES:
                raise ValueError(f"key {key_id!r} must be {KEY_BYTES} bytes, not {len(key)}")
        self._primary_id = ids[0]
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys}

    def __repr__(self) -> str:
        return f"KeyRing(ids={list(self._ciphers)})"

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        """The ring in the keys file `path`; OSError or ValueError if it is unusable.

        Error messages never quote the file's content.
        """
        data = json.loads(path.read_text())
        try:
            entries = data["keys"]
            return cls([(str(e["id"]), _decode_key(e["key"])) for e in entries])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a keys file ({type(exc).__name__} {exc})") from None

    @classmethod
    def watch(cls, path: str | Path) -> ReloadingFile[KeyRing]:
        """The ring in `path`, read again when the file changes; a bad file stops the process."""
        path = Path(path)
        try:
            return ReloadingFile(path, cls.load, name="encryption keys")
        except (OSError, ValueError) as exc:
            raise SystemExit(f"cannot load encryption keys file {path}: {exc}") from None

    def current(self) -> KeyRing:
        """A fixed ring is its own source (see `KeyRingSource`)."""
        return self

    def reread(self) -> KeyRing:
        """A fixed ring has no file to look at again (see `KeyRingSource`)."""
        return self

    @property
    def primary_id(self) -> str:
        """The id of the key that seals."""
        return self._primary_id

    def seal(self, plaintext: bytes, associated_data: bytes) -> Sealed:
        """Encrypt and authenticate `plaintext`, bound to `associated_data`."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        ciphertext = self._ciphers[self._primary_id].encrypt(nonce, plaintext, associated_data)
        return Sealed(self._primary_id, nonce, ciphertext)

    def open(self, sealed: Sealed, associated_data: bytes) -> bytes:
        """The plaintext; CannotDecrypt if the key is unknown or anything does not match."""
        cipher = self._ciphers.get(sealed.key_id)
        if cipher is None:
            raise CannotDecrypt(
                f"sealed with key {sealed.key_id!r}, which is not in the encryption keys file "
                f"(it has {', '.join(self._ciphers)})"
            )
        try:
            return cipher.decrypt(sealed.nonce, sealed.ciphertext, associated_data)
        except InvalidTag:
            raise CannotDecrypt(
                f"the ciphertext does not authenticate under key {sealed.key_id!r}: it was "
                "altered, or it belongs to another record"
            ) from None

    def needs_reseal(self, sealed: Sealed) -> bool:
        """True if `sealed` is not under the current primary key."""
        return sealed.key_id != self._primary_id


class KeyRingSource(Protocol):
    """Where the current key ring comes from: a fixed `KeyRing` or a `ReloadingFile`."""

    def current(self) -> KeyRing:
        """The ring in force now."""
        ...

    def reread(self) -> KeyRing:
        """The ring in force after looking at its file now (a key may have just arrived)."""
        ...


def watch_keys(path: str) -> ReloadingFile[KeyRing] | None:
    """The key ring of the keys file `path`, or None when no file is configured."""
    return KeyRing.watch(path) if path else None


def new_key() -> str:
    """A fresh random key, base64-encoded as the keys file holds it."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def _decode_key(raw: object) -> bytes:
    if not isinstance(raw, str):
        raise ValueError("a key must be a base64 string")
    try:
        return base64.b64decode(raw, validate=True)
    except binascii.Error:
        raise ValueError("a key is not valid base64") from None
