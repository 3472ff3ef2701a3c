"""Master keys and rotation (RELIABILITY A7-A9, A11, B1-B6): load, mismatch, rotate, retire."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from pydantic import SecretStr
from vault_harness import (
    add_credential,
    put_tokens,
    raw_db,
    read_blob,
    run_child,
    secret_values,
    start_child,
)

from exact_connector.cli._main import run as cli
from exact_connector.exceptions import (
    ConcurrentUpdate,
    VaultKeyError,
    VaultKeyMismatch,
    VaultKeyUnknown,
    VaultLocked,
)
from exact_connector.vault import Vault
from exact_connector.vault.sealing import KEY_ENV, KeyRing, MasterKey, blob_kid

FIELDS = ("client_secret", "refresh_token", "access_token")


def _digest(home: Path) -> str:
    return hashlib.sha256((home / "vault.db").read_bytes()).hexdigest()


def _kids(home: Path) -> set[str]:
    """The data-key ids named by every stored blob header."""
    with raw_db(home) as conn:
        rows = conn.execute("SELECT client_secret, refresh_token, access_token FROM credentials")
        return {blob_kid(blob, subject={}) for row in rows for blob in row if blob is not None}


# --- loading keys ------------------------------------------------------------------------------


def test_a7_wrong_master_key_is_refused_at_open_and_nothing_is_rewritten(
    home: Path, ring: KeyRing
) -> None:
    """Another key raises VaultKeyMismatch at open; the file is byte-for-byte unchanged."""
    with Vault.open(home, keys=ring) as vault:
        add_credential(vault, "a")
    before = _digest(home)
    with pytest.raises(VaultKeyMismatch) as caught:
        Vault.open(home, keys=KeyRing.from_bytes(os.urandom(32)))
    assert ring.primary.kid in caught.value.message  # names what the vault is sealed under
    assert "init" not in caught.value.hint  # never suggests re-initialising
    assert _digest(home) == before


def test_a7_same_key_id_with_other_key_bytes_is_a_mismatch(home: Path, ring: KeyRing) -> None:
    """A labelled key whose bytes differ from the vault's key of that id is refused."""
    Vault.open(home, keys=ring).close()
    impostor = KeyRing([MasterKey(ring.primary.kid, os.urandom(32))])
    with pytest.raises(VaultKeyMismatch):
        Vault.open(home, keys=impostor)


def test_a8_no_key_anywhere_is_locked_and_creates_nothing(home: Path) -> None:
    """No env key and no key file: VaultLocked with a hint, and no vault file appears."""
    with pytest.raises(VaultLocked) as caught:
        Vault.open(home)
    assert "Vault.init(" in caught.value.hint and "exact-connector" not in caught.value.hint
    assert not (home / "vault.db").exists()


def test_a8_key_file_removed_after_creation_locks_the_vault(home: Path) -> None:
    """A vault whose key file went missing stays closed."""
    key_file = Vault.init(home)
    Vault.open(home).close()
    key_file.unlink()
    with pytest.raises(VaultLocked) as caught:
        Vault.open(home)
    # A new key would not open it (and ``vault init`` refuses there): only its own key does.
    assert caught.value.details == {"vault": str(home / "vault.db")}
    assert caught.value.hint.startswith(f"Restore {key_file} from a backup")


def test_a8_empty_environment_key_is_an_error_not_a_fallback(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EXACT_CONNECTOR_VAULT_KEY set to blanks is refused (never 'no encryption')."""
    Vault.init(home)
    monkeypatch.setenv(KEY_ENV, "  ")
    with pytest.raises(VaultKeyError, match="empty"):
        Vault.open(home)


def test_environment_key_takes_precedence_over_the_key_file(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With both present the env key is used; the key file's key would not match."""
    Vault.init(home)
    env_key = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv(KEY_ENV, env_key)
    Vault.open(home).close()
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(VaultKeyMismatch):
        Vault.open(home)


@pytest.mark.parametrize(
    "value",
    [
        base64.b64encode(os.urandom(16)).decode(),
        base64.b64encode(os.urandom(31)).decode(),
        base64.b64encode(os.urandom(33)).decode(),
        "not base64 at all!",
        "k1:" + base64.b64encode(os.urandom(32)).decode()[:-2],
        "bad kid!:" + base64.b64encode(os.urandom(32)).decode(),
    ],
    ids=["16-bytes", "31-bytes", "33-bytes", "not-base64", "clipped", "bad-kid"],
)
def test_a9_malformed_key_material_is_a_config_error_at_open(
    home: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """Wrong lengths or non-base64 keys raise VaultKeyError without echoing the key."""
    monkeypatch.setenv(KEY_ENV, value)
    with pytest.raises(VaultKeyError) as caught:
        Vault.open(home)
    assert value.rpartition(":")[2][:12] not in str(caught.value.to_dict())
    assert not (home / "vault.db").exists()


def test_a9_key_file_with_a_short_key_is_refused(home: Path) -> None:
    """A key file holding 31 bytes is a configuration error."""
    Vault.init(home)
    (home / "vault.key").write_text(base64.b64encode(os.urandom(31)).decode())
    with pytest.raises(VaultKeyError, match="31 bytes"):
        Vault.open(home)


def test_key_ring_syntax_accepts_kids_comments_commas_and_lines() -> None:
    """``kid:base64`` and bare base64 entries, by comma or line, primary first; repr hides keys."""
    first, second = os.urandom(32), os.urandom(32)
    text = (
        f"# comment\nmain:{base64.b64encode(first).decode()},\n{base64.b64encode(second).decode()}"
    )
    ring = KeyRing.parse(text, source="test")
    assert ring.kids[0] == "main" and ring.primary.key == first
    assert ring.kids[1] == KeyRing.from_bytes(second).primary.kid
    assert base64.b64encode(first).decode() not in repr(ring) + repr(ring.primary)
    assert KeyRing.parse(ring.to_text(), source="round trip").kids == ring.kids


def test_a11_nearest_vault_keeps_reading_older_keys_and_rekey_upgrades(
    tmp_path: Path, ring: KeyRing
) -> None:
    """No passphrase mode: key parameters live in the vault, old wraps read, re-key moves them."""
    home = tmp_path / "old"
    with Vault.open(home, keys=ring) as vault:
        old = add_credential(vault, "old")
    newer = KeyRing([MasterKey.from_bytes(os.urandom(32)), ring.primary])  # new first, old kept
    with Vault.open(home, keys=newer) as vault:  # opens: the old key still unwraps
        assert secret_values(vault.get(old.id)) == secret_values(old)
        report = vault.rewrap(retire_old=True)
    assert report.retired == (ring.primary.kid,)
    with pytest.raises(VaultKeyMismatch):
        Vault.open(home, keys=ring)
    with Vault.open(tmp_path / "other", keys=ring) as other, Vault.open(home, keys=newer) as vault:
        assert other._keys.vault_id != vault._keys.vault_id  # random per vault, like a salt


# --- data-key rotation -------------------------------------------------------------------------


def test_b1_rotation_moves_every_record_to_the_new_key_with_values_unchanged(
    vault: Vault, home: Path
) -> None:
    """After rotate_key every blob names the new data key, values are equal, the old key is gone."""
    credentials = [add_credential(vault, f"c{n}") for n in range(5)]
    other = vault.in_workspace("other")
    credentials.append(add_credential(other, "elsewhere"))
    (old_kid,) = _kids(home)
    report = vault.rotate_key()
    assert report.ok and not report.resumed
    assert (report.reencrypted, report.unchanged, report.retired) == (6, 0, (old_kid,))
    assert _kids(home) == {report.new_kid} != {old_kid}
    for credential in credentials:
        view = vault.in_workspace(credential.workspace)
        assert secret_values(view.get(credential.id)) == secret_values(credential)
        assert view.get(credential.id).version == credential.version  # content did not change
    data_keys = [key for key in vault.key_info() if key.kind == "data"]
    assert [(key.kid, key.records) for key in data_keys] == [(report.new_kid, 6)]


@pytest.fixture
def half_rotated(home: Path, ring: KeyRing) -> dict[str, dict[str, str]]:
    """Six credentials and a rotation killed (exit 137) after its third record."""
    with Vault.open(home, keys=ring) as vault:
        stored = {
            c.id: secret_values(c) for c in (add_credential(vault, f"c{n}") for n in range(6))
        }
    result = run_child(
        f"""
        from exact_connector.vault import Vault
        Vault.open({str(home)!r}).rotate_key()
        """,
        ring=ring,
        EXACT_CONNECTOR_CRASH_AT="rotate.after_commit:3",
    )
    assert result.returncode == 137, result.stderr
    return stored


def test_b2_crash_mid_rotation_leaves_everything_readable_and_resume_finishes(
    home: Path, ring: KeyRing, half_rotated: dict[str, dict[str, str]]
) -> None:
    """Killed at record 3 of 6: all decrypt (mixed keys); a re-run resumes and retires the old key."""
    with Vault.open(home, keys=ring) as vault:
        assert len(_kids(home)) == 2
        assert all(result.ok for result in vault.verify())
        assert {cid: secret_values(vault.get(cid)) for cid in half_rotated} == half_rotated
        report = vault.rotate_key()
        assert report.resumed and report.ok
        assert (report.reencrypted, report.unchanged, len(report.retired)) == (3, 3, 1)
        assert _kids(home) == {report.new_kid}
        assert {cid: secret_values(vault.get(cid)) for cid in half_rotated} == half_rotated


def test_b3_retiring_a_data_key_still_in_use_is_refused_with_the_count(
    home: Path, ring: KeyRing, half_rotated: dict[str, dict[str, str]]
) -> None:
    """retire_key(old) while 3 records still use it: refused, count 3, nothing removed."""
    with Vault.open(home, keys=ring) as vault:
        old = next(key for key in vault.key_info() if key.kind == "data" and not key.primary)
        with pytest.raises(VaultKeyError) as caught:
            vault.retire_key(old.kid)
        assert caught.value.details == {"kid": old.kid, "count": 3}
        assert "3 credential(s)" in caught.value.message
        assert all(result.ok for result in vault.verify())


def test_b3_retiring_the_only_master_key_is_refused(vault: Vault, ring: KeyRing) -> None:
    """The master key every data key depends on cannot be retired."""
    with pytest.raises(VaultKeyError):
        vault.retire_key(ring.primary.kid)


@pytest.mark.slow
def test_b2_sigkill_at_a_random_moment_of_rotation_loses_nothing(home: Path, ring: KeyRing) -> None:
    """SIGKILL during repeated rotations: every record decrypts, and a re-run converges."""
    with Vault.open(home, keys=ring) as vault:
        stored = {
            c.id: secret_values(c) for c in (add_credential(vault, f"c{n}") for n in range(30))
        }
    child = start_child(
        f"""
        from exact_connector.vault import Vault
        vault = Vault.open({str(home)!r})
        print("started", flush=True)
        while True:
            vault.rotate_key()
        """,
        ring=ring,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "started"
    time.sleep(0.3)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    with Vault.open(home, keys=ring) as vault:
        assert {cid: secret_values(vault.get(cid)) for cid in stored} == stored
        report = vault.rotate_key()
        assert report.ok and _kids(home) == {report.new_kid}
        assert {cid: secret_values(vault.get(cid)) for cid in stored} == stored


def test_b4_process_with_the_old_master_key_follows_a_data_key_rotation(
    home: Path, ring: KeyRing
) -> None:
    """P2 rotates the data key under the same master key: P1 reloads the key list and reads on."""
    p1 = Vault.open(home, keys=ring)
    credential = add_credential(p1, "shared")
    result = run_child(
        f"""
        from pydantic import SecretStr
        from exact_connector.vault import Vault
        vault = Vault.open({str(home)!r})
        vault.rotate_key()
        current = vault.get("shared")
        vault.update_tokens(current.id, expected_version=current.version,
            access_token=SecretStr("access-from-p2"), refresh_token=SecretStr("refresh-from-p2"),
            issued_at=1.0, expires_at=601.0)
        """,
        ring=ring,
    )
    assert result.returncode == 0, result.stderr
    assert p1.get(credential.id).refresh_token == SecretStr("refresh-from-p2")
    p1.close()


def test_b4_process_without_the_new_master_key_gets_key_unknown(home: Path, ring: KeyRing) -> None:
    """P2 moves the vault to master key K2 and writes: P1 (K1 only) fails, naming K2."""
    p1 = Vault.open(home, keys=ring)
    credential = add_credential(p1, "shared")
    new_key = os.urandom(32)
    new_ring = KeyRing.from_bytes(new_key)
    result = run_child(
        f"""
        import base64
        from exact_connector.vault import Vault
        vault = Vault.open({str(home)!r})
        vault.rotate_key(base64.b64decode({base64.b64encode(new_key).decode()!r}))
        vault.rewrap(retire_old=True)
        """,
        ring=ring,
    )
    assert result.returncode == 0, result.stderr
    with pytest.raises(VaultKeyUnknown) as caught:
        p1.get(credential.id)
    assert new_ring.primary.kid in caught.value.message
    assert "Distribute the new key" in caught.value.hint
    p1.close()
    with pytest.raises(VaultKeyMismatch):
        Vault.open(home, keys=ring)
    with Vault.open(home, keys=new_ring) as p3:
        assert secret_values(p3.get(credential.id)) == secret_values(credential)


def test_b4_process_reading_the_key_file_takes_a_master_key_rotated_meanwhile(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """P1 opened the vault from its key file; the operator moves it to a new master key with
    ``vault rotate-key --master --retire-old`` and then rotates the data key. P1 reads the key
    file again when it meets a data key sealed under a master key it lacks, and reads and writes
    on (a token refresh landing meanwhile must be able to store its new pair)."""
    Vault.init(home)
    p1 = Vault.open(home)
    credential = add_credential(p1, "shared")
    assert cli(["vault", "rotate-key", "--master", "--retire-old", "--home", str(home)]) == 0
    assert cli(["vault", "rotate-key", "--home", str(home)]) == 0
    capsys.readouterr()

    assert secret_values(p1.get(credential.id, latest=True)) == secret_values(credential)
    written = put_tokens(p1, credential.id, credential.version, "access-2", "refresh-2")
    p1.close()
    with Vault.open(home) as p2:
        stored = p2.get(credential.id)
    assert stored.version == written.version
    assert stored.refresh_token == SecretStr("refresh-2")


def test_b5_refresh_cas_that_read_before_a_rotation_still_commits(vault: Vault, home: Path) -> None:
    """Rotation does not change a record's version, so a refresher's CAS write is not lost."""
    credential = add_credential(vault, "busy")
    read = vault.get(credential.id)
    vault.rotate_key()
    written = put_tokens(
        vault,
        credential.id,
        read.version,
        "access-after-rotation",
        "refresh-after-rotation",
        issued_at=10.0,
    )
    assert written.version == read.version + 1
    assert vault.get(credential.id).refresh_token == SecretStr("refresh-after-rotation")
    assert len(_kids(home)) == 1


def test_b5_concurrent_refreshes_and_rotations_keep_the_newest_token(
    home: Path, ring: KeyRing
) -> None:
    """A refresher loop and a rotation loop on separate connections: newest token, one key."""
    with Vault.open(home, keys=ring) as vault:
        credential = add_credential(vault, "busy")
    refresher, rotator = Vault.open(home, keys=ring), Vault.open(home, keys=ring)
    written: list[tuple[int, str]] = []

    def refresh() -> None:
        for n in range(150):
            current = refresher.get(credential.id)
            try:
                new = refresher.update_tokens(
                    credential.id,
                    expected_version=current.version,
                    access_token=SecretStr(f"access-{n}"),
                    refresh_token=SecretStr(f"refresh-{n}"),
                    issued_at=float(n),
                    expires_at=float(n + 600),
                )
            except ConcurrentUpdate:
                continue
            written.append((new.version, f"refresh-{n}"))

    thread = threading.Thread(target=refresh)
    thread.start()
    rotations = 0
    while thread.is_alive():
        rotator.rotate_key()
        rotations += 1
    thread.join()
    final = rotator.get(credential.id)
    assert rotations >= 1 and written
    assert final.version == credential.version + len(written)
    assert final.refresh_token == SecretStr(max(written)[1])
    assert len(_kids(home)) == 1 and all(result.ok for result in rotator.verify())
    refresher.close()
    rotator.close()


def test_b6_master_key_rotation_rewraps_only_the_data_keys(home: Path, ring: KeyRing) -> None:
    """rewrap(K2) leaves every record blob byte-identical; afterwards K1 can be destroyed."""
    with Vault.open(home, keys=ring) as vault:
        credentials = [add_credential(vault, f"c{n}") for n in range(3)]
        blobs = {(c.id, f): read_blob(home, c.id, f) for c in credentials for f in FIELDS}
        new_key = os.urandom(32)
        report = vault.rewrap(new_key, retire_old=True)
    assert report.kind == "master" and report.retired == (ring.primary.kid,)
    assert {(c.id, f): read_blob(home, c.id, f) for c in credentials for f in FIELDS} == blobs
    with raw_db(home) as conn:
        masters = {row[0] for row in conn.execute("SELECT master_kid FROM key_wraps")}
    assert masters == {report.new_kid}
    with pytest.raises(VaultKeyMismatch):
        Vault.open(home, keys=ring)
    with Vault.open(home, keys=KeyRing.from_bytes(new_key)) as vault:
        assert [secret_values(vault.get(c.id)) for c in credentials] == [
            secret_values(c) for c in credentials
        ]


def test_b6_a_configured_key_with_a_known_kid_but_other_bytes_is_refused(
    home: Path, ring: KeyRing
) -> None:
    """After rewrapping under "next", a ring whose "next" has other bytes fails closed at open."""
    following = KeyRing([MasterKey("next", os.urandom(32)), ring.primary])
    with Vault.open(home, keys=ring) as vault:
        add_credential(vault, "a")
    with Vault.open(home, keys=following) as vault:
        assert vault.rewrap().reencrypted == 2  # the data key and the fingerprint key
    impostor = KeyRing([MasterKey("next", os.urandom(32)), ring.primary])
    with pytest.raises(VaultKeyMismatch):
        Vault.open(home, keys=impostor)
