"""Durability and crash-in-the-middle (RELIABILITY C1-C9): crash points, SIGKILL, full disk, busy."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import signal
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from vault_harness import (
    add_credential,
    files_under,
    find_secrets,
    put_tokens,
    raw_db,
    run_child,
    secret_values,
    start_child,
)

from exact_connector.exceptions import (
    ConcurrentUpdate,
    CredentialNotFound,
    VaultBusy,
    VaultCorrupt,
    VaultIOError,
    VaultPermissions,
)
from exact_connector.vault import Vault
from exact_connector.vault.sealing import KeyRing
from exact_connector.vault.sqlite import sqlite_errors as _sqlite_errors

UPDATE_TOKENS = """
from pydantic import SecretStr
from exact_connector.vault import Vault
vault = Vault.open({home!r})
current = vault.get("a")
vault.update_tokens(current.id, expected_version=current.version,
    access_token=SecretStr("access-new"), refresh_token=SecretStr("refresh-new"),
    issued_at=2.0, expires_at=602.0)
"""


def _child(home: Path, ring: KeyRing, code: str, crash: str = "") -> int:
    env = {"EXACT_CONNECTOR_CRASH_AT": crash} if crash else {}
    result = run_child(code.format(home=str(home)), ring, **env)
    assert result.returncode in (0, 137), result.stderr
    return result.returncode


def _only_vault_files_left(home: Path) -> None:
    # vault.db-gen, the commit signal, holds random bytes and outlives every connection.
    left = {"vault.db", "vault.db-gen", "vault.key", "locks"}
    assert {path.name for path in home.iterdir()} <= left


@pytest.mark.parametrize(
    ("crash", "committed"),
    [("tokens.before_commit", False), ("tokens.after_commit", True)],
)
def test_c1_crash_around_the_token_commit_leaves_old_or_new_never_mixed(
    home: Path, ring: KeyRing, crash: str, committed: bool
) -> None:
    """Killed just before/after COMMIT: the row is exactly the old or exactly the new version."""
    with Vault.open(home, keys=ring) as vault:
        before = add_credential(vault, "a")
    assert _child(home, ring, UPDATE_TOKENS, crash) == 137
    with Vault.open(home, keys=ring) as vault:
        after = vault.get("a")
    if committed:
        assert after.version == before.version + 1
        assert after.refresh_token == SecretStr("refresh-new")
        assert after.access_token == SecretStr("access-new")
    else:
        assert after.version == before.version
        assert secret_values(after) == secret_values(before)
    _only_vault_files_left(home)


@pytest.mark.parametrize(
    ("crash", "exists"), [("begin.before_commit", False), ("begin.after_commit", True)]
)
def test_c1_crash_around_creating_a_credential(
    home: Path, ring: KeyRing, crash: str, exists: bool
) -> None:
    """A credential either exists completely (and decrypts) or not at all."""
    Vault.open(home, keys=ring).close()
    code = """
from pydantic import SecretStr
from exact_connector.vault import Vault
Vault.open({home!r}).begin(connector_name="new", auth_type="oauth2_refresh_token",
    server_url="https://start.exactonline.nl", client_id="c",
    client_secret=SecretStr("client-secret-new"), refresh_token=SecretStr("refresh-new"))
"""
    assert _child(home, ring, code, crash) == 137
    with Vault.open(home, keys=ring) as vault:
        if exists:
            assert vault.get("new").client_secret == SecretStr("client-secret-new")
        else:
            with pytest.raises(CredentialNotFound):
                vault.get("new")


@pytest.mark.slow
def test_c1_sigkill_during_a_stream_of_token_writes(home: Path, ring: KeyRing) -> None:
    """SIGKILL mid-stream: the row matches its version exactly; no plaintext on disk; no leftovers."""
    with Vault.open(home, keys=ring) as vault:
        add_credential(vault, "a")
    prefix = secrets.token_hex(8)
    child = start_child(
        f"""
        from pydantic import SecretStr
        from exact_connector.vault import Vault
        vault = Vault.open({str(home)!r})
        current = vault.get("a")
        while True:
            v = current.version + 1
            current = vault.update_tokens(current.id, expected_version=current.version,
                access_token=SecretStr(f"{prefix}-access-{{v:06d}}"),
                refresh_token=SecretStr(f"{prefix}-refresh-{{v:06d}}"),
                issued_at=float(v), expires_at=float(v + 600))
            print(current.version, flush=True)
        """,
        ring=ring,
    )
    assert child.stdout is not None
    seen = [int(child.stdout.readline()) for _ in range(60)]
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    written = [
        f"{prefix}-{kind}-{v:06d}"
        for v in range(2, seen[-1] + 50)
        for kind in ("access", "refresh")
    ]
    assert find_secrets(files_under(home), written) == []  # db, -wal, -shm as SIGKILL left them
    with Vault.open(home, keys=ring) as vault:
        final = vault.get("a")
    assert final.version >= seen[-1]
    assert final.access_token == SecretStr(f"{prefix}-access-{final.version:06d}")
    assert final.refresh_token == SecretStr(f"{prefix}-refresh-{final.version:06d}")
    assert final.access_token_issued_at == float(final.version)
    _only_vault_files_left(home)


def test_c2_vault_half_crash_before_commit_keeps_the_old_refresh_token(
    home: Path, ring: KeyRing
) -> None:
    """After a lost commit the old token and version remain; marking needs_reauth is a CAS write.

    The server half (the next refresh answers "Old refresh token used" -> REAUTH_REQUIRED) is the
    auth layer's test against the sandbox.
    """
    with Vault.open(home, keys=ring) as vault:
        before = add_credential(vault, "a")
    assert _child(home, ring, UPDATE_TOKENS, "tokens.before_commit") == 137
    with Vault.open(home, keys=ring) as vault:
        restarted = vault.get("a")
        assert restarted.refresh_token == before.refresh_token
        assert restarted.version == before.version
        marked = vault.set_status(
            before.id,
            "needs_reauth",
            reason="Exact said: old refresh token used",
            expected_version=restarted.version,
        )
        assert (marked.status, marked.version) == ("needs_reauth", before.version + 1)
        assert marked.refresh_token == before.refresh_token  # kept until re-auth succeeds
        with pytest.raises(ConcurrentUpdate) as caught:  # a late writer holding the old version
            put_tokens(vault, before.id, restarted.version, "late", issued_at=3.0)
        assert caught.value.details["current_version"] == marked.version


@pytest.fixture
def capped_vault(home: Path, ring: KeyRing) -> Iterator[Vault]:
    vault = Vault.open(home, keys=ring)
    yield vault
    vault.close()


def test_c3_no_space_is_vault_io_and_the_previous_row_survives(
    capped_vault: Vault,
) -> None:
    """SQLITE_FULL (database at its page cap) raises VaultIOError; the old row is intact; retry works."""
    credential = add_credential(capped_vault, "a")
    conn = capped_vault._store.connection()  # the page cap is per connection: the vault's own
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    huge = "x" * 60_000
    with pytest.raises(VaultIOError) as caught:
        put_tokens(capped_vault, credential.id, credential.version, huge, issued_at=5.0)
    assert "no space" in caught.value.message
    assert secret_values(capped_vault.get(credential.id)) == secret_values(credential)
    conn.execute("PRAGMA max_page_count = 1073741823")
    retried = put_tokens(capped_vault, credential.id, credential.version, huge, issued_at=5.0)
    assert retried.version == credential.version + 1


def test_c3_c5_file_size_limit_makes_sqlite_writes_fail_as_vault_io(
    home: Path, ring: KeyRing
) -> None:
    """A real write error inside SQLite (RLIMIT_FSIZE -> EFBIG) is VaultIOError, row intact."""
    with Vault.open(home, keys=ring) as vault:
        before = add_credential(vault, "a")
    code = """
import os, resource, signal
from pydantic import SecretStr
from exact_connector.exceptions import VaultIOError
from exact_connector.vault import Vault
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
vault = Vault.open({home!r})
current = vault.get("a")
files = [f for f in os.listdir({home!r}) if f.startswith("vault.db")]
limit = max(os.path.getsize(os.path.join({home!r}, f)) for f in files) + 8192
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
try:
    vault.update_tokens(current.id, expected_version=current.version,
        access_token=SecretStr("a" * 60000), refresh_token=SecretStr("r" * 60000),
        issued_at=1.0, expires_at=601.0)
except VaultIOError as error:
    print(error.code, error.details["sqlite_error"])
"""
    result = run_child(code.format(home=str(home)), ring=ring)
    assert result.returncode == 0, result.stderr
    code_name, sqlite_error = result.stdout.split()
    assert code_name == "vault_io" and sqlite_error.startswith(("SQLITE_IOERR", "SQLITE_FULL"))
    with Vault.open(home, keys=ring) as vault:
        assert secret_values(vault.get("a")) == secret_values(before)


def _as_nobody(action: Callable[[], object]) -> str:
    """Run ``action`` in a forked child that dropped root for uid/gid 65534; its outcome as text."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        outcome = "ok"
        try:
            os.close(read_end)
            os.setgid(65534)
            os.setuid(65534)
            action()
        except BaseException as error:
            outcome = f"{type(error).__name__}: {error}"
        os.write(write_end, outcome.encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        outcome = pipe.read().decode()
    os.waitpid(pid, 0)
    return outcome


@pytest.fixture
def shared_home() -> Iterator[Path]:
    """A vault home reachable by another user (pytest's tmp_path is 0700 to root)."""
    base = Path(tempfile.mkdtemp(prefix="vault-c4-"))
    base.chmod(0o711)
    yield base / "home"
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("target", ["directory", "database"])
def test_c4_unwritable_vault_fails_at_open_with_vault_permissions(
    shared_home: Path, target: str
) -> None:
    """A read-only vault directory or database file is refused at open, before any refresh."""
    Vault.init(shared_home)
    Vault.open(shared_home).close()
    paths = [shared_home, *shared_home.iterdir()]
    if target == "directory":
        shared_home.chmod(0o500)
    else:
        (shared_home / "vault.db").chmod(0o400)
    if os.geteuid() == 0:  # root writes anywhere: prove it as an ordinary user
        for path in paths:
            os.chown(path, 65534, 65534)
        outcome = _as_nobody(lambda: Vault.open(shared_home))
        assert outcome.startswith("VaultPermissions"), outcome
        assert "not writable" in outcome
    else:
        with pytest.raises(VaultPermissions, match="not writable"):
            Vault.open(shared_home)
    shared_home.chmod(0o700)


def test_c5_fsync_failure_on_the_key_file_is_final(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EIO from fsync: VaultIOError, no key file and no temp file; a later retry writes afresh."""

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(VaultIOError):
        Vault.init(home)
    assert list(home.iterdir()) == []
    monkeypatch.undo()
    assert Vault.init(home).exists()


@pytest.mark.parametrize(
    ("code", "name", "expected"),
    [
        (1034, "SQLITE_IOERR_FSYNC", VaultIOError),
        (778, "SQLITE_IOERR_WRITE", VaultIOError),
        (13, "SQLITE_FULL", VaultIOError),
        (5, "SQLITE_BUSY", VaultBusy),
        (517, "SQLITE_BUSY_SNAPSHOT", VaultBusy),
        (8, "SQLITE_READONLY", VaultPermissions),
        (11, "SQLITE_CORRUPT", VaultCorrupt),
        (26, "SQLITE_NOTADB", VaultCorrupt),
    ],
)
def test_c5_sqlite_result_codes_map_to_vault_errors_without_sqlite_text(
    tmp_path: Path, code: int, name: str, expected: type[Exception]
) -> None:
    """Every SQLite failure family becomes our error; SQLite's own message never travels."""
    error = sqlite3.OperationalError("database is locked / disk I/O error")
    error.sqlite_errorcode = code  # type: ignore[attr-defined]
    error.sqlite_errorname = name  # type: ignore[attr-defined]
    with pytest.raises(expected) as caught, _sqlite_errors(tmp_path / "vault.db"):
        raise error
    assert "database is locked" not in str(caught.value)
    assert caught.value.__suppress_context__ and caught.value.__cause__ is None


@pytest.mark.sqlite_only
def test_c6_every_connection_runs_wal_with_full_sync(vault: Vault) -> None:
    """WAL, synchronous=FULL, busy timeout, in-memory temp store: on every thread's connection."""
    settings: list[tuple[object, ...]] = []

    def inspect() -> None:
        conn = vault._store.connection()
        settings.append(
            tuple(
                conn.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("journal_mode", "synchronous", "busy_timeout", "temp_store")
            )
        )

    inspect()
    thread = threading.Thread(target=inspect)
    thread.start()
    thread.join()
    assert settings == [("wal", 2, 5000, 2)] * 2


def test_c7_writer_holding_the_lock_past_the_busy_timeout_gives_vault_busy(
    home: Path, ring: KeyRing
) -> None:
    """Another process holds a write transaction: VaultBusy (retryable), reads still work."""
    vault = Vault.open(home, keys=ring, busy_timeout=0.3)
    credential = add_credential(vault, "a")
    holder = start_child(
        f"""
        import sqlite3, sys
        conn = sqlite3.connect({str(home / "vault.db")!r}, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        print("holding", flush=True)
        sys.stdin.read()
        """
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    with pytest.raises(VaultBusy) as caught:
        vault.set_status(credential.id, "disabled")
    assert caught.value.retryable
    assert "database is locked" not in str(caught.value.to_dict())
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert vault.get(credential.id).status == "active"  # WAL readers are not blocked
    holder.communicate(input="", timeout=30)
    assert vault.set_status(credential.id, "disabled").status == "disabled"
    vault.close()


def _corrupt(home: Path, page: Callable[[sqlite3.Connection], int]) -> None:
    """Overwrite a page with random bytes (page 1: its 100-byte file header)."""
    with raw_db(home) as conn:
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        number = page(conn)
    with (home / "vault.db").open("r+b") as handle:
        handle.seek((number - 1) * size)
        handle.write(os.urandom(100 if number == 1 else size))


@pytest.mark.parametrize(
    "page",
    [
        lambda conn: 1,
        lambda conn: conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'credentials'"
        ).fetchone()[0],
    ],
    ids=["header", "credentials-table"],
)
def test_c8_random_bytes_in_a_page_is_vault_corrupt_never_recreated(
    home: Path, ring: KeyRing, page: Callable[[sqlite3.Connection], int]
) -> None:
    """A damaged page fails the integrity check at open: VaultCorrupt with path and restore hint."""
    with Vault.open(home, keys=ring) as vault:
        for n in range(3):
            add_credential(vault, f"c{n}")
    _corrupt(home, page)
    damaged = hashlib.sha256((home / "vault.db").read_bytes()).hexdigest()
    with pytest.raises(VaultCorrupt) as caught:
        Vault.open(home, keys=ring)
    assert str(home / "vault.db") in caught.value.message
    assert "backup" in caught.value.hint and "do not delete" in caught.value.hint
    assert hashlib.sha256((home / "vault.db").read_bytes()).hexdigest() == damaged


@pytest.mark.parametrize("row", ["vault_id", "fingerprint_key", "primary_data_key"])
def test_c8_a_vault_missing_a_header_row_is_vault_corrupt(
    home: Path, ring: KeyRing, row: str
) -> None:
    """A meta table that lost a row is VaultCorrupt with a restore hint, not a KeyError traceback."""
    with Vault.open(home, keys=ring) as vault:
        add_credential(vault, "a")
    with sqlite3.connect(home / "vault.db") as conn:
        conn.execute("DELETE FROM meta WHERE name = ?", (row,))
    with pytest.raises(VaultCorrupt) as caught:
        Vault.open(home, keys=ring)
    assert "no readable header" in caught.value.message
    assert "backup" in caught.value.hint


def test_c9_restored_backup_opens_with_its_older_tokens(
    home: Path, ring: KeyRing, tmp_path: Path
) -> None:
    """Rolling the file back is invisible locally: the older version and token come back.

    Only Exact can tell that the refresh token is stale (REAUTH_REQUIRED on the next refresh); that
    half belongs to the auth layer's tests.
    """
    with Vault.open(home, keys=ring) as vault:
        old = add_credential(vault, "a")
    backup = tmp_path / "backup.db"
    shutil.copy2(home / "vault.db", backup)
    with Vault.open(home, keys=ring) as vault:
        newer = put_tokens(
            vault, old.id, old.version, "access-newer", "refresh-newer", issued_at=9.0
        )
    shutil.copy2(backup, home / "vault.db")
    with Vault.open(home, keys=ring) as vault:
        restored = vault.get(old.id)
        assert restored.version == old.version < newer.version
        assert restored.refresh_token == old.refresh_token
        assert not [e for e in vault.audit_log(old.id) if e.detail.get("version") == newer.version]
