"""PostgreSQL as an operator runs it: a generated password in the URL, a worker older than the
schema, a server restart, a least-privilege role. Neither the vault nor the governor may leak the
password, a pool or a connection, or fail a call once the server is back."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pg_server
import psycopg
import pytest
from pydantic import SecretStr

from exact_connector import _postgres
from exact_connector.exceptions import (
    ConfigError,
    ExactConnectorError,
    SystemError_,
    TransientError,
    VaultBusy,
)
from exact_connector.limits_pg import PostgresRateGovernor
from exact_connector.vault import Vault
from exact_connector.vault.sealing import KeyRing


@pytest.fixture
def database(postgres_url: str) -> str:
    return pg_server.create_database(postgres_url)


@pytest.fixture
def restartable() -> Iterator[tuple[str, Callable[[], None]]]:
    """A private server of this test's own, and a function that restarts it (fast shutdown)."""
    if pg_server.skip_requested():
        pytest.skip(pg_server.SKIP_REASON)
    with pg_server.postgres_server() as url:

        def restart() -> None:
            pg_server.restart(url)
            # A connection given back within _TRUSTED_IDLE is used without a check (a busy
            # process pays no round trip a call); one idle longer is checked, as here.
            time.sleep(_postgres._TRUSTED_IDLE)

        yield url, restart


def _ours(url: str) -> int:
    """This database's connections opened by exact-connector."""
    dbname = urlsplit(url).path.lstrip("/")
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = %s AND application_name = 'exact-connector'",
            (dbname,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def _from_threads(call: Callable[[], object], threads: int = 4) -> None:
    """Make the pool hold several connections: ``threads`` callers at once, 20 calls each."""
    barrier = threading.Barrier(threads)

    def work() -> None:
        barrier.wait()
        for _ in range(20):
            call()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def _failures(call: Callable[[], object], times: int) -> list[str]:
    failed = []
    for _ in range(times):
        try:
            call()
        except ExactConnectorError as error:
            failed.append(f"{type(error).__name__} retryable={error.retryable}: {error}")
    return failed


def test_a_url_the_driver_cannot_parse_never_puts_its_password_in_the_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A generated password with an unencoded '%': libpq's parser quotes it whole, and the
    pool's workers logged that at WARNING on every retry. The URL is now parsed first."""
    password = "Zq8%vN3-real-db-password"
    url = f"postgresql://app:{password}@/postgres?host={tmp_path}"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ConfigError) as caught:
        Vault.open(
            tmp_path / "home",
            keys=KeyRing.from_bytes(os.urandom(32)),
            database_url=url,
            busy_timeout=1.0,
        )
    assert password not in str(caught.value.to_dict())
    assert "Percent-encode" in (caught.value.hint or "")
    assert password not in "\n".join(record.getMessage() for record in caplog.records)


def test_a_worker_older_than_the_schema_leaks_no_pool_or_connection(database: str) -> None:
    """A newer worker migrated the schema (a rolling upgrade): each failed first use of the
    governor used to leave its pool and a connection open, one more per workflow step."""
    schema = _postgres.DEFAULT_SCHEMA
    with psycopg.connect(database, autocommit=True, options=f"-c search_path={schema}") as conn:
        with conn.transaction():
            _postgres.migrate(conn, schema)
        conn.execute("INSERT INTO schema_migrations (version) VALUES (999)")
    governor = PostgresRateGovernor(database, timeout=2.0)
    for _ in range(5):
        with pytest.raises(SystemError_, match="newer exact-connector"):
            governor.snapshot("app", 1)
    governor.close()
    deadline = time.monotonic() + 5
    while _ours(database) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _ours(database) == 0


def test_the_vault_fails_no_call_after_a_server_restart(
    restartable: tuple[str, Callable[[], None]], tmp_path: Path
) -> None:
    """Every pooled connection was dead after a restart, and the next call on each failed as a
    non-retryable VaultIOError although the server was back: an engine failed those steps."""
    url, restart = restartable
    keys = KeyRing.from_bytes(os.urandom(32))
    with Vault.open(tmp_path / "home", keys=keys, database_url=url) as vault:
        _from_threads(vault.list)
        restart()
        assert _failures(vault.list, 5) == []


def test_the_governor_fails_no_call_after_a_server_restart(
    restartable: tuple[str, Callable[[], None]],
) -> None:
    url, restart = restartable
    governor = PostgresRateGovernor(url, minute_limit=10_000, day_limit=100_000)
    try:
        _from_threads(lambda: governor.snapshot("app", 1))
        restart()
        assert _failures(lambda: governor.snapshot("app", 1), 9) == []
    finally:
        governor.close()


def test_a_role_owning_only_its_provisioned_schema_opens_the_vault(
    database: str, tmp_path: Path
) -> None:
    """Least privilege: the DBA creates the schema for the app's role, which has no CREATE on
    the database. 'CREATE SCHEMA IF NOT EXISTS' checks that privilege first, and was refused."""
    role = f"app_{os.urandom(4).hex()}"
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"CREATE SCHEMA {_postgres.DEFAULT_SCHEMA} AUTHORIZATION {role}")
    app_url = database.replace("postgresql://postgres@", f"postgresql://{role}@", 1)
    keys = KeyRing.from_bytes(os.urandom(32))
    with Vault.open(tmp_path / "home", keys=keys, database_url=app_url) as vault:
        assert vault.list() == []


def test_a_dml_only_role_opens_a_vault_its_dba_migrated(database: str, tmp_path: Path) -> None:
    """Least privilege, further: the DBA runs the migrations, then grants the app's role reads
    and writes on the tables and nothing else. 'CREATE TABLE IF NOT EXISTS' on the migrations
    table checks the CREATE privilege before it looks, and was refused on every open."""
    keys = KeyRing.from_bytes(os.urandom(32))
    with Vault.open(tmp_path / "dba", keys=keys, database_url=database) as vault:
        assert vault.list() == []  # migrated, by the DBA's own role
    governor = PostgresRateGovernor(database)
    governor.snapshot("app", 1)
    governor.close()
    role = f"app_{os.urandom(4).hex()}"
    schema = _postgres.DEFAULT_SCHEMA
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        conn.execute(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}"
        )
        conn.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}")
    app_url = database.replace("postgresql://postgres@", f"postgresql://{role}@", 1)
    with Vault.open(tmp_path / "app", keys=keys, database_url=app_url) as vault:
        credential = vault.begin(
            connector_name="dml only",
            auth_type="oauth2_refresh_token",
            server_url="https://start.exactonline.nl",
            client_id="client",
            client_secret=SecretStr("s" * 12),
            refresh_token=SecretStr("r" * 20),
        )
        assert [c.id for c in vault.list()] == [credential.id]
    governor = PostgresRateGovernor(app_url)
    try:
        assert governor.snapshot("app", 1) is not None
    finally:
        governor.close()


def _cut_our_connections(url: str) -> None:
    """What a failover or an administrator does: end this database's exact-connector sessions."""
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'exact-connector'"
        )


def test_a_connection_cut_while_in_use_is_a_retryable_error_and_the_next_call_works(
    database: str, tmp_path: Path
) -> None:
    """A connection the server ended since its last use (too recently to be checked) fails that
    call: as VaultBusy, which an engine retries, not as a VaultIOError it gives up on."""
    keys = KeyRing.from_bytes(os.urandom(32))
    with Vault.open(tmp_path / "home", keys=keys, database_url=database) as vault:
        assert vault.list() == []
        _cut_our_connections(database)
        with pytest.raises(VaultBusy) as caught:
            vault.list()
        assert caught.value.retryable
        assert "lost its connection" in caught.value.message
        assert vault.list() == []


def test_the_governor_says_a_cut_connection_is_worth_another_try(database: str) -> None:
    governor = PostgresRateGovernor(database, timeout=2.0)
    try:
        governor.snapshot("app", 1)
        _cut_our_connections(database)
        with pytest.raises(TransientError) as caught:
            governor.snapshot("app", 1)
        assert caught.value.retryable
        assert "lost its connection" in caught.value.message
        governor.snapshot("app", 1)
    finally:
        governor.close()
