"""Sealing secrets at rest: master keys, data keys and the AES-256-GCM blob format.

The vault uses envelope encryption (RELIABILITY.md §4.1)::

    master key (KEK)   EXACT_CONNECTOR_VAULT_KEY, or the key file <home>/vault.key
      └─ wraps  data keys (DEKs): random, per vault, stored wrapped inside the vault
           └─ seals  every secret field as its own blob

A blob is ``version(1) | len(kid)(1) | kid | nonce(12) | ciphertext+tag(16)``. Its associated data
is the header followed by ``exact-connector/v1|<vault id>|<record>|<field>|<bound>``, so a blob
moved to another field, record or vault file, or given another header, fails to open; ``bound`` is
what the record's plain columns must be for its secrets to open (a digest of them: see
:mod:`exact_connector.vault.records`), so an edited plain column fails closed too. Format version 1
(before ``bound``) is still read; every write seals version 2.

Key material is written in one syntax for both sources: entries ``[kid:]base64`` separated by commas
or newlines, primary first; an entry without a kid gets one derived from the key itself. Failures
never quote key material or plaintext, and ``cryptography``'s empty ``InvalidTag`` is replaced by a
message naming the record and field.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from exact_connector.exceptions import (
    VaultCorrupt,
    VaultIntegrityError,
    VaultKeyError,
    VaultLocked,
    VaultUnsupportedFormat,
)

__all__ = [
    "FORMAT_VERSION",
    "KEY_ENV",
    "KEY_FILE_NAME",
    "KeyRing",
    "MasterKey",
    "blob_kid",
    "describe",
    "fingerprint",
    "generate_key",
    "keyed_digest",
    "new_data_kid",
    "open_blob",
    "seal_blob",
]

FORMAT_VERSION = 2
#: Versions this release opens: 1 had no ``bound`` part in its associated data.
_READABLE = frozenset({1, FORMAT_VERSION})
KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
AAD_PREFIX = b"exact-connector/v1"
KEY_ENV = "EXACT_CONNECTOR_VAULT_KEY"
KEY_FILE_NAME = "vault.key"
KID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}", re.ASCII)
_KEY_FILE_HEADER = (
    "# exact-connector vault master keys, one per line as kid:base64, primary first.\n"
    "# Keep this file 0600 and back it up apart from the vault: without it the vault cannot open.\n"
)


def generate_key() -> bytes:
    """32 random bytes: a fresh master or data key."""
    return os.urandom(KEY_SIZE)


def new_data_kid() -> str:
    """A random id for a new data key."""
    return f"dk-{os.urandom(4).hex()}"


def _derived_kid(key: bytes) -> str:
    # A one-way digest of a 256-bit random key reveals nothing usable and makes kids stable.
    return "mk-" + hashlib.sha256(b"exact-connector/master-key-id/v1|" + key).hexdigest()[:8]


class MasterKey:
    """One key-encryption key and its id; ``repr`` shows the id only."""

    __slots__ = ("_key", "kid")

    def __init__(self, kid: str, key: bytes) -> None:
        if not KID_PATTERN.fullmatch(kid):
            # Not repeated: a key list split at the wrong ':' makes a key its id.
            raise VaultKeyError("a master key id is not 1-32 letters, digits, '.', '_', '-'")
        if len(key) != KEY_SIZE:
            raise VaultKeyError(f"master key {kid} is {len(key)} bytes; it must be {KEY_SIZE}")
        self.kid = kid
        self._key = bytes(key)

    @classmethod
    def from_bytes(cls, key: bytes) -> MasterKey:
        """A master key whose id is derived from the key material."""
        if len(key) != KEY_SIZE:
            raise VaultKeyError(f"a master key is {len(key)} bytes; it must be {KEY_SIZE}")
        return cls(_derived_kid(key), key)

    @property
    def key(self) -> bytes:
        """The raw key bytes."""
        return self._key

    def __repr__(self) -> str:
        return f"MasterKey(kid={self.kid!r})"


class KeyRing:
    """Ordered master keys: the first encrypts (wraps), every one may decrypt (unwrap)."""

    def __init__(self, keys: Sequence[MasterKey]) -> None:
        if not keys:
            raise VaultLocked("the key ring is empty: no master key is available")
        kids = [key.kid for key in keys]
        if len(set(kids)) != len(kids):
            raise VaultKeyError("the key ring names the same key id twice")
        self._keys = tuple(keys)

    @classmethod
    def from_bytes(cls, *keys: bytes) -> KeyRing:
        """A ring of raw 32-byte keys with derived ids, primary first."""
        return cls([MasterKey.from_bytes(key) for key in keys])

    @classmethod
    def parse(cls, text: str, *, source: str) -> KeyRing:
        """Parse ``[kid:]base64`` entries (commas or newlines, ``#`` comments), primary first."""
        entries = [
            part.strip()
            for line in text.splitlines()
            if not line.lstrip().startswith("#")
            for part in line.split(",")
            if part.strip()
        ]
        if not entries:
            raise VaultKeyError(f"{source} holds no key", hint=f"Put a base64 key in {source}.")
        return cls(
            [_parse_entry(entry, f"{source} entry {n}") for n, entry in enumerate(entries, 1)]
        )

    @property
    def primary(self) -> MasterKey:
        """The key new wraps are made with."""
        return self._keys[0]

    @property
    def kids(self) -> tuple[str, ...]:
        """Key ids, primary first."""
        return tuple(key.kid for key in self._keys)

    def get(self, kid: str) -> MasterKey | None:
        """The key with this id, if the ring holds it."""
        return next((key for key in self._keys if key.kid == kid), None)

    def with_primary(self, key: MasterKey) -> KeyRing:
        """This ring with ``key`` first (older keys stay for decryption)."""
        return KeyRing([key, *(k for k in self._keys if k.kid != key.kid)])

    def only_primary(self) -> KeyRing:
        """This ring without its older keys."""
        return KeyRing([self.primary])

    def to_text(self) -> str:
        """Key-file text: a comment, then one ``kid:base64`` line per key, primary first."""
        lines = [f"{key.kid}:{base64.b64encode(key.key).decode('ascii')}" for key in self._keys]
        return _KEY_FILE_HEADER + "\n".join(lines) + "\n"

    def __iter__(self) -> Iterator[MasterKey]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"KeyRing(kids={self.kids!r})"


def _parse_entry(entry: str, where: str) -> MasterKey:
    kid, _, encoded = entry.rpartition(":")
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise VaultKeyError(f"{where} is not valid base64") from None
    if len(key) != KEY_SIZE:
        raise VaultKeyError(
            f"{where} decodes to {len(key)} bytes; a vault key is exactly {KEY_SIZE}",
            hint="Use 32 random bytes in base64, e.g. from: openssl rand -base64 32",
        )
    return MasterKey(kid, key) if kid else MasterKey.from_bytes(key)


# --- blobs ---------------------------------------------------------------------------------------


def _aad(header: bytes, vault_id: str, record: str, field: str, bound: str) -> bytes:
    parts = (vault_id, record, field) if header[0] == 1 else (vault_id, record, field, bound)
    return header + b"|".join((AAD_PREFIX, *(p.encode("ascii") for p in parts)))


def seal_blob(
    kid: str,
    key: bytes,
    plaintext: bytes,
    *,
    vault_id: str,
    record: str,
    field: str,
    bound: str = "",
) -> bytes:
    """Encrypt under ``key`` with a fresh random nonce, bound to vault, record, field and
    ``bound`` (ASCII)."""
    encoded_kid = kid.encode("ascii")
    header = bytes((FORMAT_VERSION, len(encoded_kid))) + encoded_kid
    nonce = os.urandom(NONCE_SIZE)
    sealed = AESGCM(key).encrypt(nonce, plaintext, _aad(header, vault_id, record, field, bound))
    return header + nonce + sealed


def blob_kid(blob: bytes, *, subject: Mapping[str, str]) -> str:
    """The key id in a blob's header; rejects empty, truncated and unknown-version blobs."""
    where = describe(subject)
    if not blob:
        raise VaultCorrupt(f"{where} is empty", details=dict(subject))
    if blob[0] not in _READABLE:
        raise VaultUnsupportedFormat(
            f"{where} has format version {blob[0]}; this release reads versions "
            f"{', '.join(map(str, sorted(_READABLE)))}",
            details={**subject, "version": blob[0]},
        )
    size = 2 + (blob[1] if len(blob) > 1 else 0)
    kid = blob[2:size].decode("ascii", errors="replace")
    if len(blob) < size + NONCE_SIZE + TAG_SIZE or not KID_PATTERN.fullmatch(kid):
        raise VaultCorrupt(f"{where} is truncated or has a malformed header", details=dict(subject))
    return kid


def open_blob(
    blob: bytes,
    key_for: Callable[[str], bytes],
    *,
    vault_id: str,
    record: str,
    field: str,
    subject: Mapping[str, str],
    bound: str = "",
) -> bytes:
    """Decrypt a blob; any tampering, swap or move raises :class:`VaultIntegrityError`."""
    kid = blob_kid(blob, subject=subject)
    key = key_for(kid)
    size = 2 + blob[1]
    header, nonce, sealed = blob[:size], blob[size : size + NONCE_SIZE], blob[size + NONCE_SIZE :]
    try:
        return AESGCM(key).decrypt(nonce, sealed, _aad(header, vault_id, record, field, bound))
    except InvalidTag:
        raise VaultIntegrityError(
            f"{describe(subject)} failed authentication: it, or the record's plain fields, "
            "was modified, swapped or moved",
            details={**subject, "kid": kid},
        ) from None


def describe(subject: Mapping[str, str]) -> str:
    """The subject of an error as words: ``credential_id <id> field <name>``."""
    return " ".join(f"{name} {value}" for name, value in subject.items())


def keyed_digest(key: bytes, value: str) -> str:
    """HMAC-SHA256 of a secret, hex: comparable without storing the secret."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def fingerprint(key: bytes, value: str) -> str:
    """A short keyed digest of a secret, for display and audit; never reveals the value."""
    return f"sha256-hmac:{keyed_digest(key, value)[:8]}"
