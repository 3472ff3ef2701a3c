"""The record API: create, read, compare-and-swap, status, divisions, workspaces, hygiene (J2-J10)."""

from __future__ import annotations

import errno
import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from pydantic import SecretStr, ValidationError
from vault_harness import add_credential, make_secret, put_tokens, raw_db, secret_values

from exact_connector.clock import ManualClock
from exact_connector.exceptions import (
    ConcurrentUpdate,
    ConfigError,
    CredentialExists,
    CredentialNotFound,
    InputError,
    VaultCorrupt,
    VaultIntegrityError,
)
from exact_connector.vault import Credential, Vault
from exact_connector.vault.sealing import KeyRing
from exact_connector.vault.sqlite import SQLiteStore
from exact_connector.vault.store import VaultStore

NEW = {
    "connector_name": "Exact (production)",
    "auth_type": "oauth2_authorization_code",
    "server_url": "https://start.exactonline.nl",
    "client_id": "b81cc4de-d192-400e-bcb4-09254394c52a",
    "redirect_uri": "https://engine.example/callback",
}


def test_begin_stores_a_pending_credential_with_its_secret(vault: Vault) -> None:
    """begin -> status pending, version 1, a uuid4 id, the secret readable back."""
    secret = make_secret("client")
    credential = vault.begin(**NEW, client_secret=SecretStr(secret))
    assert (credential.status, credential.version, credential.workspace) == (
        "pending",
        1,
        "default",
    )
    assert re.fullmatch(r"[0-9a-f-]{36}", credential.id) and credential.id[14] == "4"
    assert vault.get(credential.id) == credential
    assert vault.get(NEW["connector_name"]).client_secret.get_secret_value() == secret


def test_timestamps_come_from_the_injected_clock(home: Path, ring: KeyRing) -> None:
    """created_at/updated_at follow the vault's Clock."""
    clock = ManualClock(1_800_000_000.0)
    with Vault.open(home, keys=ring, clock=clock) as vault:
        credential = vault.begin(**NEW, client_secret=SecretStr("s"))
        clock.advance(60)
        moved = vault.set_status(credential.id, "disabled")
    assert credential.created_at == 1_800_000_000.0
    assert moved.updated_at == 1_800_000_060.0 and moved.created_at == credential.created_at


def test_connector_names_are_unique_per_workspace(vault: Vault) -> None:
    """A duplicate name raises CredentialExists; the same name in another workspace is fine."""
    vault.begin(**NEW, client_secret=SecretStr("s"))
    with pytest.raises(CredentialExists):
        vault.begin(**NEW, client_secret=SecretStr("t"))
    assert vault.in_workspace("team-b").begin(**NEW, client_secret=SecretStr("u")).version == 1


def test_credentials_are_invisible_from_other_workspaces(vault: Vault) -> None:
    """By id or by name, from another workspace: "not found", never "forbidden"."""
    credential = add_credential(vault, "mine")
    other = vault.in_workspace("other")
    for key in (credential.id, "mine"):
        with pytest.raises(CredentialNotFound):
            other.get(key)
    with pytest.raises(CredentialNotFound):
        put_tokens(other, credential.id, credential.version, "a", "r")
    for action in (other.remove, other.activate):
        with pytest.raises(CredentialNotFound):
            action(credential.id)
    assert other.list() == [] and other.verify() == []
    assert [c.id for c in vault.list()] == [credential.id]


def test_list_is_sorted_by_name_within_the_workspace(vault: Vault) -> None:
    """list() returns this workspace's credentials by connector name."""
    for name in ("zeta", "alpha", "mid"):
        add_credential(vault, name)
    add_credential(vault.in_workspace("x"), "beta")
    assert [c.connector_name for c in vault.list()] == ["alpha", "mid", "zeta"]


def test_update_tokens_is_a_compare_and_swap(vault: Vault) -> None:
    """Right version: +1 and the new tokens; stale version: ConcurrentUpdate, nothing written."""
    credential = add_credential(vault, "a")
    new = put_tokens(
        vault, credential.id, credential.version, "access-2", "refresh-2", issued_at=1000.0
    )
    assert new.version == credential.version + 1
    assert (new.access_token_issued_at, new.access_token_expires_at) == (1000.0, 1600.0)
    assert new.refresh_token_issued_at == 1000.0  # a refresh token comes with its access token
    with pytest.raises(ConcurrentUpdate) as caught:
        put_tokens(vault, credential.id, credential.version, "stale", refresh_issued_at=0.5)
    assert caught.value.details == {
        "credential_id": credential.id,
        "expected_version": credential.version,
        "current_version": new.version,
    }
    assert vault.get(credential.id).refresh_token == SecretStr("refresh-2")


def test_set_status_records_a_reason_and_checks_the_version_when_asked(vault: Vault) -> None:
    """needs_reauth with a reason; an expected_version mismatch is ConcurrentUpdate."""
    credential = add_credential(vault, "a")
    with pytest.raises(ConcurrentUpdate):
        vault.set_status(credential.id, "needs_reauth", expected_version=credential.version - 1)
    marked = vault.set_status(credential.id, "needs_reauth", reason="invalid_grant from Exact")
    assert (marked.status, marked.status_reason) == ("needs_reauth", "invalid_grant from Exact")
    assert vault.activate(credential.id).status_reason is None


def test_set_status_rejects_unknown_statuses(vault: Vault) -> None:
    """Only the four statuses exist."""
    credential = add_credential(vault, "a")
    with pytest.raises(InputError) as caught:
        vault.set_status(credential.id, "broken")
    assert [error["path"] for error in caught.value.errors] == ["$.status"]


def test_set_status_keeps_any_reason_as_one_bounded_line(vault: Vault) -> None:
    """A multi-line or huge upstream message never blocks marking needs_reauth."""
    credential = add_credential(vault, "a")
    marked = vault.set_status(
        credential.id, "needs_reauth", reason="Old refresh\r\ntoken\x00 used" * 100
    )
    assert marked.status_reason is not None and len(marked.status_reason) == 500
    assert (
        marked.status_reason.startswith("Old refresh token used")
        and "\n" not in marked.status_reason
    )
    assert vault.set_status(credential.id, "disabled", reason=" \n ").status_reason is None


def test_activate_needs_a_refresh_token(vault: Vault) -> None:
    """An authorization-code credential cannot be activated before its code exchange."""
    credential = vault.begin(**NEW, client_secret=SecretStr("s"))
    with pytest.raises(ConfigError, match="no refresh token"):
        vault.activate(credential.id)
    assert vault.get(credential.id).status == "pending"


def test_set_divisions_validates_and_deduplicates(vault: Vault) -> None:
    """Allowed divisions are positive ints (deduplicated); the default must be one of them."""
    credential = add_credential(vault, "a")
    updated = vault.set_divisions(credential.id, [123, 456, 123], 456)
    assert (updated.allowed_divisions, updated.default_division) == ((123, 456), 456)
    for allowed, default, path in [
        ([123], 999, "$.default_division"),
        ([0], None, "$.allowed_divisions[0]"),
        ([True], None, "$.allowed_divisions[0]"),
        (["123"], None, "$.allowed_divisions[0]"),
    ]:
        with pytest.raises(InputError) as caught:
            vault.set_divisions(credential.id, allowed, default)  # type: ignore[list-item]
        assert caught.value.errors[0]["path"] == path
    assert vault.get(credential.id).allowed_divisions == (123, 456)


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"connector_name": " padded"}, "$.connector_name"),
        ({"connector_name": "tab\there"}, "$.connector_name"),
        ({"connector_name": "0b5c1ee8-3b2d-4f57-9b3a-bd2b4bd7b7ad"}, "$.connector_name"),
        ({"auth_type": "password"}, "$.auth_type"),
        ({"server_url": "https://start.exactonline.nl/ x"}, "$.server_url"),
        ({"redirect_uri": None}, "$.redirect_uri"),
        ({"client_secret": SecretStr("")}, "$.client_secret"),
    ],
)
def test_begin_reports_bad_input_by_path(
    vault: Vault, change: dict[str, object], path: str
) -> None:
    """Invalid fields come back as InputError with their JSON path; nothing is stored."""
    fields: dict[str, object] = {**NEW, "client_secret": SecretStr("s"), **change}
    with pytest.raises(InputError) as caught:
        vault.begin(**fields)  # type: ignore[arg-type]
    assert path in [error["path"] for error in caught.value.errors]
    assert vault.list() == []


def test_refresh_token_auth_type_needs_a_refresh_token(vault: Vault) -> None:
    """oauth2_refresh_token without a refresh token is an input error."""
    fields = {**NEW, "auth_type": "oauth2_refresh_token", "redirect_uri": None}
    with pytest.raises(InputError) as caught:
        vault.begin(**fields, client_secret=SecretStr("s"))  # type: ignore[arg-type]
    assert caught.value.errors[0]["path"] == "$.refresh_token"


def test_remove_deletes_even_an_unreadable_credential(vault: Vault, home: Path) -> None:
    """A credential that no longer decrypts can still be removed; others stay."""
    broken, kept = add_credential(vault, "broken"), add_credential(vault, "kept")
    with raw_db(home) as conn:
        conn.execute("UPDATE credentials SET client_secret = x'00' WHERE id = ?", (broken.id,))
    vault.remove("broken")
    with pytest.raises(CredentialNotFound):
        vault.get(broken.id)
    with pytest.raises(CredentialNotFound):
        vault.remove(broken.id)
    assert [c.id for c in vault.list()] == [kept.id]


@pytest.mark.parametrize(
    ("column", "value", "field"),
    [
        ("status", "hacked", "status"),
        ("allowed_divisions", '["x"]', "allowed_divisions[0]"),
        ("allowed_divisions", "not json", "allowed_divisions"),
        ("version", 0, "version"),
        ("access_token_expires_at", None, "access_token_expires_at"),
    ],
)
def test_stored_fields_are_validated_on_read(
    vault: Vault, home: Path, column: str, value: object, field: str
) -> None:
    """A tampered clear column fails that credential only, as VaultCorrupt naming the field."""
    bad, good = add_credential(vault, "bad"), add_credential(vault, "good")
    with raw_db(home) as conn:
        conn.execute(f"UPDATE credentials SET {column} = ? WHERE id = ?", (value, bad.id))
    with pytest.raises(VaultCorrupt) as caught:
        vault.get(bad.id)
    assert caught.value.details == {**caught.value.details, "credential_id": bad.id, "field": field}
    assert vault.get(good.id) == good
    results = {r.connector_name: (r.ok, r.error_code, r.field) for r in vault.verify()}
    assert results == {"bad": (False, "vault_corrupt", field), "good": (True, None, None)}


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("connector_name", "renamed"),
        ("server_url", "https://start.exactonline.be"),
        ("client_id", "11111111-2222-3333-4444-555555555555"),
        ("allowed_divisions", "[100001, 999999]"),
        ("default_division", 999999),
        ("redirect_uri", "https://evil.example/callback"),
    ],
)
def test_an_edited_plain_column_fails_closed_and_verify_reports_it(
    vault: Vault, home: Path, column: str, value: object
) -> None:
    """Issue 11 item 7: the record's identity and where its tokens go are authenticated."""
    bad, good = add_credential(vault, "bad"), add_credential(vault, "good")
    with raw_db(home) as conn:
        conn.execute(f"UPDATE credentials SET {column} = ? WHERE id = ?", (value, bad.id))

    with pytest.raises(VaultIntegrityError):
        vault.get(bad.id)

    assert vault.get(good.id) == good
    results = {r.id: (r.ok, r.error_code) for r in vault.verify()}
    # vault_corrupt when the edit also breaks a rule of its own (a default outside the divisions)
    assert results[bad.id] in ((False, "vault_integrity"), (False, "vault_corrupt"))
    assert results[good.id] == (True, None)


def test_a_record_moved_to_another_workspace_does_not_open_there(vault: Vault, home: Path) -> None:
    """Editing ``workspace`` moves nothing: the record fails closed where it was moved to."""
    moved = add_credential(vault, "moved")
    with raw_db(home) as conn:
        conn.execute("UPDATE credentials SET workspace = 'other' WHERE id = ?", (moved.id,))

    with pytest.raises(VaultIntegrityError):
        vault.in_workspace("other").get(moved.id)

    assert [r.ok for r in vault.verify(all_workspaces=True)] == [False]


def test_swapping_connector_names_between_rows_fails_both_closed(vault: Vault, home: Path) -> None:
    """Swapping the names of two rows (so a step would run on the other connection) is refused."""
    a, b = add_credential(vault, "a"), add_credential(vault, "b")
    with raw_db(home) as conn:
        for cid, name in ((a.id, "swap"), (b.id, "a"), (a.id, "b")):
            conn.execute("UPDATE credentials SET connector_name = ? WHERE id = ?", (name, cid))

    for name in ("a", "b"):
        with pytest.raises(VaultIntegrityError):
            vault.get(name)
    assert [r.ok for r in vault.verify()] == [False, False]


def test_bytes_that_are_not_utf8_make_only_their_record_unreadable(
    vault: Vault, home: Path
) -> None:
    """Issue 11 item 8: one row with invalid UTF-8 is reported, by field; the rest stay usable."""
    bad, good = add_credential(vault, "bad"), add_credential(vault, "good")
    with raw_db(home) as conn:
        conn.execute(
            "UPDATE credentials SET server_url = CAST(x'68747470ff' AS TEXT) WHERE id = ?",
            (bad.id,),
        )

    with pytest.raises(VaultCorrupt) as caught:
        vault.get(bad.id)

    assert caught.value.details["field"] == "server_url"
    assert vault.get(good.id) == good
    results = {r.connector_name: (r.ok, r.error_code, r.field) for r in vault.verify()}
    assert results == {"bad": (False, "vault_corrupt", "server_url"), "good": (True, None, None)}


# --- secrets hygiene ---------------------------------------------------------------------------


def test_j2_repr_str_and_dumps_never_show_a_secret(vault: Vault, ring: KeyRing) -> None:
    """repr, str, format, vars, model_dump and model_dump_json are masked; so are keys."""
    credential = add_credential(vault, "a")
    shown = " ".join(
        [
            repr(credential),
            str(credential),
            f"{credential}",
            str(vars(credential)),
            str(credential.model_dump()),
            credential.model_dump_json(),
            repr(vault),
            repr(ring),
            repr(ring.primary),
        ]
    )
    for secret in secret_values(credential).values():
        assert secret not in shown
    assert ring.primary.key.hex() not in shown


def test_j3_validation_errors_show_paths_not_values() -> None:
    """A bad Credential reports field paths and types only: the secret is never echoed."""
    secret = make_secret("client")
    with pytest.raises(ValidationError) as caught:
        Credential.model_validate({"client_secret": secret, "status": secret, "version": secret})
    text = str(caught.value) + repr(caught.value.errors(include_url=False, include_input=False))
    assert {error["loc"][0] for error in caught.value.errors()} >= {"status", "version", "id"}
    assert secret not in text


def test_j3_input_errors_from_begin_do_not_echo_secrets(vault: Vault) -> None:
    """An oversized secret is rejected by path without its value."""
    secret = make_secret("x") * 3000
    with pytest.raises(InputError) as caught:
        vault.begin(**NEW, client_secret=SecretStr(secret))
    assert caught.value.errors[0]["path"] == "$.client_secret"
    assert secret[:20] not in json.dumps(caught.value.to_dict())


def test_j5_real_secrets_round_trip_through_a_fresh_open(home: Path, ring: KeyRing) -> None:
    """The stored secret is the real value (model_dump_json would have written '**********')."""
    secret = make_secret("client")
    with Vault.open(home, keys=ring) as vault:
        credential = vault.begin(**NEW, client_secret=SecretStr(secret))
        assert "**********" in credential.model_dump_json()
    with Vault.open(home, keys=ring) as vault:
        assert vault.get(credential.id).client_secret.get_secret_value() == secret


def test_j10_audit_trail_records_lifecycle_with_fingerprints_only(vault: Vault) -> None:
    """Create, token update, reauth, divisions, removal and key rotation are audited; only
    HMAC fingerprints of secrets appear."""
    credential = add_credential(vault, "a")
    vault.set_status(credential.id, "needs_reauth", reason="invalid_grant")
    vault.set_divisions(credential.id, [1, 2], 1)
    vault.rotate_key()
    vault.remove(credential.id)
    log = vault.audit_log()
    events = [entry.event for entry in log]
    assert events[:4] == ["created", "tokens_updated", "activated", "status"]
    assert {"divisions", "data_key_rotated", "key_retired", "removed"} <= set(events)
    updated = next(entry for entry in log if entry.event == "tokens_updated")
    assert updated.detail["refresh_token"] == vault.fingerprint(credential.refresh_token)  # type: ignore[arg-type]
    assert re.fullmatch(r"sha256-hmac:[0-9a-f]{8}", updated.detail["access_token"])
    everything = json.dumps([entry.model_dump() for entry in log])
    for secret in secret_values(credential).values():
        assert secret not in everything
    assert vault.audit_log(credential.id)[-1].event == "removed"


def test_fingerprints_are_stable_per_vault_and_distinct_per_secret(
    vault: Vault, tmp_path: Path, ring: KeyRing
) -> None:
    """Same secret, same fingerprint (even after rotation); another vault fingerprints differently."""
    secret = SecretStr(make_secret("refresh"))
    before = vault.fingerprint(secret)
    vault.rotate_key()
    assert vault.fingerprint(secret) == before != vault.fingerprint(SecretStr("other"))
    with Vault.open(tmp_path / "other", keys=ring) as other:
        assert other.fingerprint(secret) != before


def test_an_unchanged_record_is_unsealed_once_and_every_change_is_seen(
    home: Path, ring: KeyRing
) -> None:
    """get() of an unchanged row returns the credential already unsealed; a write through this
    vault or another handle on the same file is seen at the next get()."""
    with Vault.open(home, keys=ring) as vault, Vault.open(home, keys=ring) as other:
        credential = vault.begin(**NEW, client_secret=SecretStr("s"))
        first = vault.get(credential.id)
        assert vault.get(credential.id) is first
        assert vault.get(NEW["connector_name"]) is first
        changed = vault.set_status(credential.id, "needs_reauth", reason="test")
        assert vault.get(credential.id) == changed != first
        other.set_status(credential.id, "disabled")
        assert vault.get(credential.id).status == "disabled"


# -- reads while nothing changed (the store's version) ---------------------------------------------


def test_a_read_with_nothing_committed_since_does_not_touch_the_rows(
    vault: Vault, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    """SQLite says through ``PRAGMA data_version`` whether anyone committed; PostgreSQL cannot
    say it cheaply, so every read there reads the row."""
    credential = add_credential(vault, "steps")
    assert vault.get(credential.id) == credential
    reads = []
    store_read = vault._keys.read
    monkeypatch.setattr(vault._keys, "read", lambda: reads.append(1) or store_read())
    assert vault.get(credential.id) == credential
    assert vault.get("steps") == credential
    assert len(reads) == (1 if backend == "sqlite" else 2)  # the name's first read, or every one


def test_a_commit_anywhere_is_seen_by_the_next_read(open_vault: Callable[..., Vault]) -> None:
    """Another process (another open vault) refreshing, renaming or removing, and this vault's
    own write, are all read at once."""
    vault, other = open_vault(), open_vault()
    credential = add_credential(vault, "steps")
    assert vault.get("steps").version == credential.version
    refreshed = put_tokens(other, credential.id, credential.version, make_secret("access"))
    assert vault.get("steps").access_token == refreshed.access_token
    mine = put_tokens(vault, credential.id, refreshed.version, make_secret("access"))
    assert vault.get(credential.id).version == mine.version
    other.remove(credential.id)
    with pytest.raises(CredentialNotFound):
        vault.get("steps")


def test_an_unchanged_commit_signal_spares_asking_sqlite(
    home: Path, ring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While no commit was signalled, a read runs no statement at all (not even the pragma)."""
    monkeypatch.setattr(SQLiteStore, "FRESH_FOR", 3600.0)
    with Vault.open(home, keys=ring) as vault:
        credential = add_credential(vault, "steps")
        assert vault.get(credential.id) == credential  # asks SQLite: this thread just wrote
        statements: list[str] = []
        vault._store.connection().set_trace_callback(statements.append)
        assert [vault.get(credential.id) for _ in range(5)] == [credential] * 5
        assert statements == []
        with Vault.open(home, keys=ring) as other:  # a commit elsewhere signals
            other.set_status(credential.id, "needs_reauth", reason="signed out elsewhere")
        assert vault.get(credential.id).status == "needs_reauth"
        assert statements[0] == "PRAGMA data_version"


def test_a_write_that_returned_is_seen_by_every_read_begun_after_it_under_load(
    home: Path, ring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One vault writes 60 token versions while two threads of another (its own connections
    and mapping, as another process has) read: no read begun after a write returned sees an older
    version. The window is an hour, so only the signal can keep the readers current."""
    monkeypatch.setattr(SQLiteStore, "FRESH_FOR", 3600.0)
    with Vault.open(home, keys=ring) as writer, Vault.open(home, keys=ring) as reader:
        credential = add_credential(writer, "steps")
        returned = [credential.version]  # versions whose write has returned, in order
        stale: list[tuple[int, int]] = []
        writing = threading.Event()
        writing.set()

        def write() -> None:
            current = credential
            try:
                for _ in range(60):
                    access = make_secret("access")
                    current = put_tokens(writer, current.id, current.version, access)
                    returned.append(current.version)
            finally:
                writing.clear()

        def read() -> None:
            while writing.is_set():
                floor = returned[-1]
                seen = reader.get("steps").version
                if seen < floor:
                    stale.append((seen, floor))
                time.sleep(0)  # let the writer have the GIL back after its fsync

        threads = [threading.Thread(target=write)] + [
            threading.Thread(target=read) for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert stale == []
        assert len(returned) == 61
        assert reader.get("steps").version == returned[-1]


def test_a_commit_the_signal_missed_is_seen_within_the_window_and_at_once_by_latest(
    home: Path, ring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another program's edit (here: the sqlite3 module) does not signal: a read trusts the
    signal for ``FRESH_FOR`` seconds at most, and ``latest`` reads the row regardless."""
    now = [1000.0]
    monkeypatch.setattr("exact_connector.vault.sqlite.time", _Monotonic(now))
    with Vault.open(home, keys=ring) as vault:
        credential = add_credential(vault, "steps")
        assert vault.get("steps") == credential
        with raw_db(home) as conn:
            conn.execute("DELETE FROM credentials WHERE id = ?", (credential.id,))
        assert vault.get("steps") == credential  # inside the window: the bound, not a wish
        with pytest.raises(CredentialNotFound):
            vault.get("steps", latest=True)
        now[0] += SQLiteStore.FRESH_FOR
        with pytest.raises(CredentialNotFound):
            vault.get("steps")


def test_a_vault_made_before_the_signal_gets_one_and_works_without_one(
    home: Path, ring: KeyRing
) -> None:
    """An older vault has no ``vault.db-gen``: opening makes it (0600). A store that cannot map
    one asks SQLite on every read, as before."""
    Vault.open(home, keys=ring).close()
    (home / "vault.db-gen").unlink()
    with Vault.open(home, keys=ring) as vault:
        assert (home / "vault.db-gen").stat().st_mode & 0o777 == 0o600
        credential = add_credential(vault, "steps")
        vault._store._generation = None
        statements: list[str] = []
        vault._store.connection().set_trace_callback(statements.append)
        assert vault.get("steps") == credential
        assert vault.get("steps") == credential
        assert statements.count("PRAGMA data_version") == 2
        with Vault.open(home, keys=ring) as other:
            put_tokens(other, credential.id, credential.version, make_secret("access"))
        assert vault.get("steps").version == credential.version + 1


def test_a_commit_signal_that_cannot_be_written_leaves_every_read_asking_sqlite(
    home: Path, ring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk when the signal is made: the vault opens and works, asking SQLite each time."""

    def disk_full(fd: int, data: bytes, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("exact_connector.vault.generation.os.pwrite", disk_full)
    with Vault.open(home, keys=ring) as vault:
        assert vault._store._generation is None
        credential = add_credential(vault, "steps")
        assert vault.get("steps") == credential
        with Vault.open(home, keys=ring) as other:
            other.remove(credential.id)
        with pytest.raises(CredentialNotFound):
            vault.get("steps")


class _Monotonic:
    """A stand-in for the ``time`` module whose ``monotonic`` reads ``now[0]``."""

    def __init__(self, now: list[float]) -> None:
        self._now = now

    def monotonic(self) -> float:
        return self._now[0]


class _StoreWithoutVersion:
    """A backend written before ``version`` existed: every other attribute is the SQLite store's."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        if name == "version":
            raise AttributeError(name)
        return getattr(self._store, name)


def test_a_backend_without_a_version_is_read_every_time(home: Path, ring: KeyRing) -> None:
    vault = Vault.on_store(
        lambda init: cast("VaultStore", _StoreWithoutVersion(SQLiteStore.open(home, 5.0, init))),
        home=home,
        keys=ring,
    )
    with vault:
        credential = add_credential(vault, "steps")
        assert vault.get("steps") == credential
        other = Vault.open(home, keys=ring)
        with other:
            refreshed = put_tokens(other, credential.id, credential.version, make_secret("access"))
        assert vault.get("steps").access_token == refreshed.access_token
