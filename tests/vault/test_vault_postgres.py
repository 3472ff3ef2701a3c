"""The PostgreSQL store: selection, migration, sealing at rest, the lease row, errors and fork."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pg_server
import psycopg
import pytest
from pydantic import SecretStr
from vault_harness import add_credential, encodings, secret_values, start_child

from exact_connector import _postgres
from exact_connector.exceptions import (
    ConfigError,
    TokenRefreshInProgress,
    VaultCorrupt,
    VaultIntegrityError,
    VaultIOError,
)
from exact_connector.vault import Vault
from exact_connector.vault.postgres import PostgresStore
from exact_connector.vault.sealing import KeyRing

HOLD_LEASE = """
import sys
from exact_connector.vault.postgres import PostgresStore
store = PostgresStore({url!r}, lease_ttl={ttl!r})
with store.lease({cid!r}, 5):
    print("leased", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def database(postgres_url: str) -> str:
    """A database of the test's own, so the default schema name is free."""
    return pg_server.create_database(postgres_url)


def _hold(url: str, cid: str, ttl: float):  # type: ignore[no-untyped-def]
    child = start_child(HOLD_LEASE.format(url=url, cid=cid, ttl=ttl))
    assert child.stdout is not None and child.stdout.readline().strip() == "leased"
    return child


def test_the_database_url_selects_postgres(
    database: str, home: Path, ring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The argument or EXACT_CONNECTOR_DATABASE_URL picks PostgreSQL; no vault.db is made."""
    with Vault.open(home, keys=ring, database_url=database) as vault:
        assert isinstance(vault._store, PostgresStore)
        credential = add_credential(vault, "a")
    monkeypatch.setenv("EXACT_CONNECTOR_DATABASE_URL", database)
    with Vault.open(home, keys=ring) as vault:
        assert isinstance(vault._store, PostgresStore)
        assert vault.get("a") == credential
    assert not (home / "vault.db").exists()


def test_a_url_that_is_not_postgres_is_a_config_error(home: Path, ring: KeyRing) -> None:
    with pytest.raises(ConfigError, match="postgresql://"):
        Vault.open(home, keys=ring, database_url="mysql://db/x")


def test_migration_is_versioned_and_idempotent(database: str, home: Path, ring: KeyRing) -> None:
    """Opening again applies nothing twice and keeps the header; a newer schema is refused."""
    with Vault.open(home, keys=ring, database_url=database) as vault:
        add_credential(vault, "a")
    with Vault.open(home, keys=ring, database_url=database) as vault:
        assert [c.connector_name for c in vault.list()] == ["a"]
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f"SET search_path = {_postgres.DEFAULT_SCHEMA}")
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
        assert [v for (v,) in rows] == [v for v, _ in _postgres.MIGRATIONS]
        conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (999,))
    with pytest.raises(VaultCorrupt, match="newer"):
        Vault.open(home, keys=ring, database_url=database)


def test_the_database_never_sees_a_plaintext_secret(
    database: str, home: Path, ring: KeyRing
) -> None:
    """Every column of every table, dumped as text, holds no secret in any trivial encoding."""
    with Vault.open(home, keys=ring, database_url=database) as vault:
        credential = add_credential(vault, "a")
        vault.begin_sign_in(credential.id, "state-value-that-is-secret")
        plaintexts = [*secret_values(credential).values(), "state-value-that-is-secret"]
    dump = b""
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f"SET search_path = {_postgres.DEFAULT_SCHEMA}")
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (_postgres.DEFAULT_SCHEMA,),
        ).fetchall()
        for (table,) in tables:
            for row in conn.execute(f"SELECT * FROM {table}"):
                for value in row:
                    dump += bytes(value) if isinstance(value, bytes) else str(value).encode()
    assert len(dump) > 1000
    for secret in plaintexts:
        assert not any(form in dump for form in encodings(secret))


def test_a_sealed_row_moved_between_records_fails(database: str, home: Path, ring: KeyRing) -> None:
    """The AAD binds the record: a refresh token copied onto another row does not decrypt there."""
    with Vault.open(home, keys=ring, database_url=database) as vault:
        a, b = add_credential(vault, "a"), add_credential(vault, "b")
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute(f"SET search_path = {_postgres.DEFAULT_SCHEMA}")
            conn.execute(
                "UPDATE credentials SET refresh_token ="
                " (SELECT refresh_token FROM credentials WHERE id = %s) WHERE id = %s",
                (a.id, b.id),
            )
        with pytest.raises(VaultIntegrityError):
            vault.get(b.id)
        assert vault.get(a.id) == a


def test_a_killed_lease_holder_blocks_until_its_lease_expires(
    database: str, home: Path, ring: KeyRing
) -> None:
    """SIGKILL the holder: waiters time out honestly until the row expires, then take it."""
    with Vault.open(home, keys=ring, database_url=database) as vault:
        credential = add_credential(vault, "a")
        holder = _hold(database, credential.id, ttl=1.5)
        holder.send_signal(signal.SIGKILL)
        holder.communicate(timeout=30)
        killed_at = time.monotonic()
        with pytest.raises(TokenRefreshInProgress), vault.lock(credential.id, timeout=0.2):
            pass
        with vault.lock(credential.id, timeout=10):
            waited = time.monotonic() - killed_at
            assert vault.get(credential.id) == credential
        assert 0.2 <= waited < 10


def test_a_live_holder_keeps_its_lease_past_the_ttl(
    database: str, home: Path, ring: KeyRing
) -> None:
    """The heartbeat renews the row: a holder busy for 3 TTLs is never overtaken."""
    Vault.open(home, keys=ring, database_url=database).close()  # creates the schema
    store = PostgresStore(database, lease_ttl=0.5)
    other = PostgresStore(database, lease_ttl=0.5)
    try:
        with store.lease("c1", 1):
            ends = time.monotonic() + 1.5
            while time.monotonic() < ends:
                with pytest.raises(TokenRefreshInProgress), other.lease("c1", 0):
                    pass
                time.sleep(0.1)
        with other.lease("c1", 0):  # released on exit, not left to expire
            pass
    finally:
        store.close()
        other.close()


def test_an_unreachable_server_is_vault_io_without_the_password(
    home: Path, ring: KeyRing, tmp_path: Path
) -> None:
    url = f"postgresql://someone:hunter2-secret@/postgres?host={tmp_path}&connect_timeout=1"
    with pytest.raises(VaultIOError) as caught:
        Vault.open(home, keys=ring, database_url=url, busy_timeout=1.0)
    shown = f"{caught.value} {caught.value.details} {caught.value.hint}"
    assert "hunter2" not in shown and "someone@" in shown
    assert caught.value.__cause__ is None


def test_a_forked_child_uses_a_pool_of_its_own(database: str, home: Path, ring: KeyRing) -> None:
    """A child forked after open writes through its own connections; the parent goes on."""
    with Vault.open(home, keys=ring, database_url=database) as vault:
        credential = add_credential(vault, "a")
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                vault.update_tokens(
                    credential.id,
                    expected_version=credential.version,
                    access_token=SecretStr("from-child"),
                    refresh_token=SecretStr("from-child"),
                    issued_at=1.0,
                    expires_at=601.0,
                )
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert vault.get(credential.id).refresh_token == SecretStr("from-child")
        add_credential(vault, "b")  # the parent's pool still works


def test_children_on_one_database_share_the_vault(database: str, home: Path, ring: KeyRing) -> None:
    """Another process with its own home but the same URL and key reads the same records."""
    with Vault.open(home, keys=ring, database_url=database) as vault:
        add_credential(vault, "shared")
    other_home = home.parent / "other-home"
    child = start_child(
        f"""
        from exact_connector.vault import Vault
        with Vault.open({str(other_home)!r}) as vault:
            print(vault.get("shared").connector_name)
        """,
        ring=ring,
        EXACT_CONNECTOR_DATABASE_URL=database,
    )
    out, err = child.communicate(timeout=60)
    assert out.strip() == "shared", err
