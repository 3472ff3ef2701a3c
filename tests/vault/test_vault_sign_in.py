"""Pending sign-ins: a state started in one process can be finished in another, once, in time."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from vault_harness import add_credential

from exact_connector.clock import ManualClock
from exact_connector.exceptions import CredentialNotFound
from exact_connector.vault import Vault
from exact_connector.vault.sealing import KeyRing

STATE = "st-9Jq2xYwK4vLmN0pR"


def test_a_state_started_by_one_vault_object_is_finished_by_another(
    home: Path, ring: KeyRing
) -> None:
    """Two opens of the same file (two engine workers) share the pending sign-in."""
    with Vault.open(home, keys=ring) as first, Vault.open(home, keys=ring) as second:
        credential = add_credential(first, "a")
        first.begin_sign_in(credential.id, STATE)
        assert second.finish_sign_in(credential.id, STATE) is True


def test_a_state_works_once(vault: Vault) -> None:
    """The callback cannot be replayed: the pending sign-in is used up."""
    credential = add_credential(vault, "a")
    vault.begin_sign_in(credential.id, STATE)
    assert vault.finish_sign_in(credential.id, STATE) is True
    assert vault.finish_sign_in(credential.id, STATE) is False


def test_a_wrong_state_is_refused_and_keeps_the_pending_one(vault: Vault) -> None:
    """A forged callback does not consume the real sign-in."""
    credential = add_credential(vault, "a")
    vault.begin_sign_in(credential.id, STATE)
    assert vault.finish_sign_in(credential.id, STATE + "x") is False
    assert vault.finish_sign_in(credential.id, STATE) is True


def test_an_expired_state_is_refused(home: Path, ring: KeyRing) -> None:
    """A sign-in finished after its time to live fails."""
    clock = ManualClock()
    with Vault.open(home, keys=ring, clock=clock) as vault:
        credential = add_credential(vault, "a")
        vault.begin_sign_in(credential.id, STATE, ttl=60)
        clock.advance(61)
        assert vault.finish_sign_in(credential.id, STATE) is False


def test_a_taken_sign_in_reopens_until_its_own_expiry_only(home: Path, ring: KeyRing) -> None:
    """A sign-in put back (its code exchange went unanswered) is good again, until the time it
    had, not a new time to live; once that has passed it is not put back at all."""
    clock = ManualClock()
    with Vault.open(home, keys=ring, clock=clock) as vault:
        credential = add_credential(vault, "a")
        vault.begin_sign_in(credential.id, STATE, ttl=60)
        first = vault.take_sign_in(credential.id, STATE)
        assert first is not None and first.expires_at == clock.now() + 60
        assert vault.reopen_sign_in(credential.id, STATE, first) is True
        clock.advance(30)
        again = vault.take_sign_in(credential.id, STATE)
        assert again is not None and again.expires_at == first.expires_at
        clock.advance(31)
        assert vault.reopen_sign_in(credential.id, STATE, again) is False
        assert vault.finish_sign_in(credential.id, STATE) is False


def test_a_reopened_sign_in_never_replaces_a_newer_one(vault: Vault) -> None:
    """A sign-in started while the code exchange was out stays the pending one."""
    credential = add_credential(vault, "a")
    vault.begin_sign_in(credential.id, STATE)
    taken = vault.take_sign_in(credential.id, STATE)
    assert taken is not None
    vault.begin_sign_in(credential.id, "a-newer-state-123456")

    assert vault.reopen_sign_in(credential.id, STATE, taken) is False
    assert vault.finish_sign_in(credential.id, STATE) is False
    assert vault.finish_sign_in(credential.id, "a-newer-state-123456") is True


def test_a_taken_sign_in_is_not_reopened_once_a_newer_one_started_and_finished(
    vault: Vault,
) -> None:
    """A sign-in started and finished while the code exchange was out leaves no pending one,
    and the taken one still stays used up: its answer would sign in over the newer one."""
    credential = add_credential(vault, "a")
    vault.begin_sign_in(credential.id, STATE)
    taken = vault.take_sign_in(credential.id, STATE)
    assert taken is not None
    vault.begin_sign_in(credential.id, "a-newer-state-123456")
    assert vault.finish_sign_in(credential.id, "a-newer-state-123456") is True

    assert vault.reopen_sign_in(credential.id, STATE, taken) is False
    assert vault.finish_sign_in(credential.id, STATE) is False


def test_a_sign_in_begun_again_with_the_same_state_is_not_reopened_by_the_earlier_take(
    vault: Vault,
) -> None:
    """Only the take that used the sign-in up may put it back: the same state started and
    finished again meanwhile is another sign-in, with another code."""
    credential = add_credential(vault, "a")
    vault.begin_sign_in(credential.id, STATE)
    taken = vault.take_sign_in(credential.id, STATE)
    assert taken is not None
    vault.begin_sign_in(credential.id, STATE)
    assert vault.finish_sign_in(credential.id, STATE) is True

    assert vault.reopen_sign_in(credential.id, STATE, taken) is False
    assert vault.finish_sign_in(credential.id, STATE) is False


def test_a_reopened_sign_in_taken_again_is_reopened_by_the_later_take_only(vault: Vault) -> None:
    """Once put back and taken by another worker, the sign-in is that worker's to finish or to
    put back; the first worker's take no longer reopens it."""
    credential = add_credential(vault, "a")
    vault.begin_sign_in(credential.id, STATE)
    first = vault.take_sign_in(credential.id, STATE)
    assert first is not None
    assert vault.reopen_sign_in(credential.id, STATE, first) is True
    second = vault.take_sign_in(credential.id, STATE)
    assert second is not None

    assert vault.reopen_sign_in(credential.id, STATE, first) is False
    assert vault.finish_sign_in(credential.id, STATE) is False
    assert vault.reopen_sign_in(credential.id, STATE, second) is True
    assert vault.finish_sign_in(credential.id, STATE) is True


def test_a_new_sign_in_replaces_the_pending_one(vault: Vault) -> None:
    """Starting again invalidates the earlier state."""
    credential = add_credential(vault, "a")
    vault.begin_sign_in(credential.id, STATE)
    vault.begin_sign_in(credential.id, "another-state-123456")
    assert vault.finish_sign_in(credential.id, STATE) is False


def test_the_state_is_stored_only_as_a_keyed_digest(vault: Vault, home: Path) -> None:
    """Neither the database nor its WAL holds the state itself."""
    credential = add_credential(vault, "a")
    vault.begin_sign_in(credential.id, STATE)
    raw = b"".join(p.read_bytes() for p in home.glob("vault.db*") if p.is_file())
    assert STATE.encode() not in raw
    row = sqlite3.connect(home / "vault.db").execute("SELECT state_digest FROM sign_ins").fetchone()
    assert len(row[0]) == 64


def test_another_workspace_cannot_start_or_finish_a_sign_in(vault: Vault) -> None:
    """A credential of one workspace is not found from another."""
    credential = add_credential(vault, "a")
    other = vault.in_workspace("other")
    with pytest.raises(CredentialNotFound):
        other.begin_sign_in(credential.id, STATE)
    vault.begin_sign_in(credential.id, STATE)
    with pytest.raises(CredentialNotFound):
        other.finish_sign_in(credential.id, STATE)


def test_removing_the_credential_removes_its_pending_sign_in(vault: Vault, home: Path) -> None:
    """No orphan rows."""
    credential = add_credential(vault, "a")
    vault.begin_sign_in(credential.id, STATE)
    vault.remove(credential.id)
    count = sqlite3.connect(home / "vault.db").execute("SELECT COUNT(*) FROM sign_ins").fetchone()
    assert count == (0,)


def test_a_vault_made_before_sign_ins_existed_gets_the_table_at_open(
    home: Path, ring: KeyRing
) -> None:
    """Files from the first format version open and work."""
    with Vault.open(home, keys=ring) as vault:
        credential = add_credential(vault, "a")
    with sqlite3.connect(home / "vault.db") as conn:
        conn.execute("DROP TABLE sign_ins")
    with Vault.open(home, keys=ring) as vault:
        vault.begin_sign_in(credential.id, STATE)
        assert vault.finish_sign_in(credential.id, STATE) is True
