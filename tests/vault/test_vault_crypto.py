"""Vault format and cryptography (RELIABILITY A2-A6, A10, A12): tamper, swap, move, truncate."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import traceback
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vault_harness import (
    add_credential,
    raw_db,
    read_blob,
    seal_worker,
    secret_values,
    write_blob,
)

from exact_connector.exceptions import (
    VaultCorrupt,
    VaultIntegrityError,
    VaultKeyUnknown,
    VaultUnsupportedFormat,
)
from exact_connector.vault import Vault, sealing
from exact_connector.vault.sealing import KeyRing

FIELDS = ["client_secret", "refresh_token", "access_token"]


def _no_fragment(text: str, secrets: dict[str, str]) -> bool:
    """True when no 8-character window of any secret appears in ``text``."""
    return not any(
        value[i : i + 8] in text for value in secrets.values() for i in range(len(value) - 7)
    )


def test_blob_layout_is_version_kid_nonce_ciphertext_tag() -> None:
    """A blob is version 2, the kid with its length, a 12-byte nonce, then ciphertext and tag."""
    key = os.urandom(32)
    blob = sealing.seal_blob("dk-0a1b2c3d", key, b"secret", vault_id="v", record="r", field="f")
    assert blob[0] == 2
    assert blob[2 : 2 + blob[1]] == b"dk-0a1b2c3d"
    assert len(blob) == 2 + 11 + 12 + len(b"secret") + 16
    opened = sealing.open_blob(
        blob, lambda _kid: key, vault_id="v", record="r", field="f", subject={}
    )
    assert opened == b"secret"


@pytest.mark.parametrize(
    "where",
    [("v2", "r", "f"), ("v", "r2", "f"), ("v", "r", "f2")],
    ids=["vault", "record", "field"],
)
def test_a3_a4_aad_binds_vault_record_and_field(where: tuple[str, str, str]) -> None:
    """The same key cannot open a blob under another vault id, record or field."""
    key = os.urandom(32)
    blob = sealing.seal_blob("dk-0a1b2c3d", key, b"secret", vault_id="v", record="r", field="f")
    vault_id, record, field = where
    with pytest.raises(VaultIntegrityError):
        sealing.open_blob(
            blob, lambda _kid: key, vault_id=vault_id, record=record, field=field, subject={}
        )


def test_a2_any_bit_flip_fails_that_field_only(vault: Vault, home: Path) -> None:
    """Flipping any bit of any stored blob fails that credential's field, names it, leaks nothing."""
    victim, bystander = add_credential(vault, "victim"), add_credential(vault, "bystander")
    secrets = secret_values(victim)
    originals = {field: read_blob(home, victim.id, field) for field in FIELDS}

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(field=st.sampled_from(FIELDS), data=st.data())
    def flip(field: str, data: st.DataObject) -> None:
        blob = bytearray(originals[field])
        position = data.draw(st.integers(0, len(blob) - 1), label="byte")
        blob[position] ^= 1 << data.draw(st.integers(0, 7), label="bit")
        write_blob(home, victim.id, field, bytes(blob))
        try:
            with pytest.raises(VaultIntegrityError) as caught:
                vault.get(victim.id)
            assert caught.value.details["credential_id"] == victim.id
            assert caught.value.details["field"] == field
            assert _no_fragment(f"{caught.value!r} {caught.value.details}", secrets)
            assert secret_values(vault.get(bystander.id)) == secret_values(bystander)
        finally:
            write_blob(home, victim.id, field, originals[field])

    flip()
    assert secret_values(vault.get(victim.id)) == secrets


def test_a2_a_failed_read_does_not_modify_the_file(home: Path, ring: KeyRing) -> None:
    """Reading a tampered record changes no byte of the vault file."""
    with Vault.open(home, keys=ring) as vault:
        victim = add_credential(vault, "victim")
        other = add_credential(vault, "other")
    blob = bytearray(read_blob(home, victim.id, "refresh_token"))
    blob[-1] ^= 0x01
    write_blob(home, victim.id, "refresh_token", bytes(blob))
    before = hashlib.sha256((home / "vault.db").read_bytes()).hexdigest()
    with Vault.open(home, keys=ring) as vault:
        with pytest.raises(VaultIntegrityError):
            vault.get(victim.id)
        assert vault.get(other.id).version == other.version
    assert hashlib.sha256((home / "vault.db").read_bytes()).hexdigest() == before
    assert read_blob(home, victim.id, "refresh_token") == bytes(blob)


@pytest.mark.parametrize(
    ("source", "target"),
    [("refresh_token", "refresh_token"), ("refresh_token", "access_token")],
    ids=["same-field", "other-field"],
)
def test_a3_swapped_blob_between_records_is_detected(
    vault: Vault, home: Path, source: str, target: str
) -> None:
    """A's ciphertext pasted into B's row (same or another column) fails on B."""
    a, b = add_credential(vault, "a"), add_credential(vault, "b")
    write_blob(home, b.id, target, read_blob(home, a.id, source))
    with pytest.raises(VaultIntegrityError) as caught:
        vault.get(b.id)
    assert caught.value.details == {**caught.value.details, "credential_id": b.id, "field": target}
    assert secret_values(vault.get(a.id)) == secret_values(a)


def test_a3_blob_moved_to_another_field_of_the_same_record_is_detected(
    vault: Vault, home: Path
) -> None:
    """A record's refresh token pasted into its own access-token column fails."""
    a = add_credential(vault, "a")
    write_blob(home, a.id, "access_token", read_blob(home, a.id, "refresh_token"))
    with pytest.raises(VaultIntegrityError) as caught:
        vault.get(a.id)
    assert caught.value.details["field"] == "access_token"


def test_a4_row_copied_into_another_vault_with_the_same_key_fails(
    tmp_path: Path, ring: KeyRing
) -> None:
    """Another vault file under the same master key cannot read a copied row, even with its keys."""
    first, second = tmp_path / "first", tmp_path / "second"
    with Vault.open(first, keys=ring) as vault:
        stolen = add_credential(vault, "stolen")
    Vault.open(second, keys=ring).close()
    with raw_db(first) as source, raw_db(second) as target:
        row = dict(source.execute("SELECT * FROM credentials").fetchone())
        target.execute(
            f"INSERT INTO credentials ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            tuple(row.values()),
        )
    with Vault.open(second, keys=ring) as vault, pytest.raises(VaultIntegrityError):
        vault.get(stolen.id)  # its data key is unknown here
    with raw_db(first) as source, raw_db(second) as target:  # now copy the data keys along
        for table in ("data_keys", "key_wraps"):
            for key_row in source.execute(f"SELECT * FROM {table}"):
                target.execute(
                    f"INSERT OR IGNORE INTO {table} VALUES ({', '.join('?' * len(key_row))})",
                    tuple(key_row),
                )
    with Vault.open(second, keys=ring) as vault, pytest.raises(VaultIntegrityError):
        vault.get(stolen.id)  # the wrap names the other vault's id


def _header_size(blob: bytes) -> int:
    return 2 + blob[1]


@pytest.mark.parametrize(
    "cut",
    [
        lambda b: b"",
        lambda b: b[:1],
        lambda b: b[:2],
        lambda b: b[: _header_size(b)],
        lambda b: b[: _header_size(b) + 12],
        lambda b: b[: _header_size(b) + 12 + 15],
    ],
    ids=["empty", "version-only", "no-kid", "header-only", "no-ciphertext", "short-tag"],
)
def test_a5_truncated_blob_is_corrupt_never_empty(vault: Vault, home: Path, cut: object) -> None:
    """Structurally short blobs raise VaultCorrupt, never an empty or missing secret."""
    a = add_credential(vault, "a")
    blob = read_blob(home, a.id, "client_secret")
    write_blob(home, a.id, "client_secret", cut(blob))  # type: ignore[operator]
    with pytest.raises(VaultCorrupt) as caught:
        vault.get(a.id)
    assert caught.value.details["field"] == "client_secret"


def test_a5_blob_missing_its_tag_fails_authentication(vault: Vault, home: Path) -> None:
    """Dropping the 16-byte tag of a long secret leaves a blob that fails to authenticate."""
    a = add_credential(vault, "a")
    write_blob(home, a.id, "refresh_token", read_blob(home, a.id, "refresh_token")[:-16])
    with pytest.raises(VaultIntegrityError):
        vault.get(a.id)


@pytest.mark.parametrize(
    ("field", "value"),
    [("client_secret", None), ("refresh_token", None), ("access_token", "text, not a blob")],
)
def test_a5_missing_or_mistyped_secret_is_corrupt(
    vault: Vault, home: Path, field: str, value: object
) -> None:
    """A NULLed client secret, a NULLed refresh token of an active credential, or text: corrupt."""
    a = add_credential(vault, "a")
    write_blob(home, a.id, field, value)
    with pytest.raises(VaultCorrupt) as caught:
        vault.get(a.id)
    assert caught.value.details["field"] == field


def test_a6_unknown_format_version_names_only_the_version(vault: Vault, home: Path) -> None:
    """A blob with format version 3 raises VaultUnsupportedFormat(version=3)."""
    a = add_credential(vault, "a")
    blob = bytearray(read_blob(home, a.id, "refresh_token"))
    blob[0] = 3
    write_blob(home, a.id, "refresh_token", bytes(blob))
    with pytest.raises(VaultUnsupportedFormat) as caught:
        vault.get(a.id)
    assert caught.value.details["version"] == 3
    assert "version 3" in caught.value.message
    assert _no_fragment(caught.value.message, secret_values(a))


def test_a6_key_id_the_vault_never_issued_is_corrupt(vault: Vault, home: Path) -> None:
    """A forged kid is not "unknown key" (no key can fix it): it is VaultCorrupt."""
    a = add_credential(vault, "a")
    blob = read_blob(home, a.id, "access_token")
    forged = blob[:2] + b"dk-ffffffff" + blob[_header_size(blob) :]
    write_blob(home, a.id, "access_token", forged)
    with pytest.raises(VaultCorrupt) as caught:
        vault.get(a.id)
    assert "dk-ffffffff" in caught.value.message


def test_a6_key_id_sealed_under_a_master_key_not_held_is_unknown(home: Path, ring: KeyRing) -> None:
    """A data key wrapped only under a master key this process lacks: VaultKeyUnknown(kid)."""
    stale = Vault.open(home, keys=ring)
    a = add_credential(stale, "a")
    new_master = os.urandom(32)
    with Vault.open(home, keys=ring) as rotator:
        rotator.rewrap(new_master, retire_old=True)
        rotator.rotate_key()
    with pytest.raises(VaultKeyUnknown) as caught:
        stale.get(a.id)
    new_kid = KeyRing.from_bytes(new_master).primary.kid
    assert new_kid in caught.value.message
    assert caught.value.details["credential_id"] == a.id
    stale.close()


def test_a10_nonces_and_ciphertexts_are_unique_across_processes() -> None:
    """10,000 seals of one plaintext under one key in 4 processes: all nonces distinct."""
    key = os.urandom(32)
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        batches = pool.map(seal_worker, [(key, 2500)] * 4)
    blobs = [blob for batch in batches for blob in batch]
    nonces = {blob[13:25] for blob in blobs}
    assert len(blobs) == 10_000
    assert len(set(blobs)) == len(nonces) == 10_000


def test_a12_invalid_tag_is_wrapped_with_a_message_and_no_chain(vault: Vault, home: Path) -> None:
    """cryptography's empty InvalidTag becomes a named error with no cause or context shown."""
    a = add_credential(vault, "a")
    blob = bytearray(read_blob(home, a.id, "client_secret"))
    blob[-3] ^= 0x80
    write_blob(home, a.id, "client_secret", bytes(blob))
    with pytest.raises(VaultIntegrityError) as caught:
        vault.get(a.id)
    error = caught.value
    assert a.id in error.message and "client_secret" in error.message
    assert error.__cause__ is None and error.__suppress_context__
    assert "InvalidTag" not in "".join(traceback.format_exception(error))
