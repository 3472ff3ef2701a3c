"""Threads and processes: the refresh lock, fork safety, and the 8x4x200 compare-and-swap run."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from pydantic import SecretStr
from vault_harness import (
    add_credential,
    bracket_worker,
    cas_worker,
    put_tokens,
    secret_values,
    start_child,
)

from exact_connector.exceptions import CredentialNotFound, TokenRefreshInProgress
from exact_connector.vault import Vault
from exact_connector.vault.sealing import KeyRing

HOLD_LOCK = """
from exact_connector.vault import Vault
import sys
vault = Vault.open({home!r})
with vault.lock({cid!r}):
    print("locked", flush=True)
    sys.stdin.read()
"""


def _hold(home: Path, ring: KeyRing, cid: str):  # type: ignore[no-untyped-def]
    child = start_child(
        HOLD_LOCK.format(home=str(home), cid=cid),
        ring=ring,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "locked"
    return child


def _assert_brackets_never_interleave(lines: list[str], expected_pairs: int) -> None:
    assert len(lines) == 2 * expected_pairs
    for opening, closing in zip(lines[::2], lines[1::2], strict=True):
        assert opening.startswith("<") and closing == ">" + opening[1:]


def test_f1_threads_of_one_process_are_serialized_by_the_lock(vault: Vault) -> None:
    """Eight threads x 25 rounds inside lock(): the bracket log never interleaves."""
    credential = add_credential(vault, "a")
    log: list[str] = []

    def work(n: int) -> None:
        for _ in range(25):
            with vault.lock(credential.id):
                log.append(f"<{n}")
                time.sleep(0)
                log.append(f">{n}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _assert_brackets_never_interleave(log, 200)


@pytest.mark.slow
def test_f3_processes_and_threads_are_serialized_by_the_lock(home: Path, ring: KeyRing) -> None:
    """Four spawned processes x 3 threads x 20 rounds: brackets in the shared log never interleave."""
    with Vault.open(home, keys=ring) as vault:
        credential = add_credential(vault, "a")
    args = (str(home), ring.to_text(), credential.id, 3, 20)
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(bracket_worker, [args] * 4)
    _assert_brackets_never_interleave((home / "brackets.log").read_text().splitlines(), 240)


def test_f5_waiting_longer_than_the_timeout_raises_refresh_in_progress(
    home: Path, ring: KeyRing
) -> None:
    """Another process holds the lock: lock(timeout=0.2) raises a retryable TokenRefreshInProgress."""
    with Vault.open(home, keys=ring) as vault:
        credential = add_credential(vault, "a")
        holder = _hold(home, ring, credential.id)
        started = time.monotonic()
        with (
            pytest.raises(TokenRefreshInProgress) as caught,
            vault.lock(credential.id, timeout=0.2),
        ):
            pass
        assert 0.2 <= time.monotonic() - started < 5
        assert caught.value.retryable and caught.value.details["credential_id"] == credential.id
        holder.communicate(input="", timeout=30)
        with vault.lock(credential.id, timeout=5):
            pass


def test_f4_lock_of_a_killed_holder_is_released_by_the_kernel(home: Path, ring: KeyRing) -> None:
    """SIGKILL the holder: the flock goes with it, and the next caller gets the lock at once."""
    with Vault.open(home, keys=ring) as vault:
        credential = add_credential(vault, "a")
        holder = _hold(home, ring, credential.id)
        holder.send_signal(signal.SIGKILL)
        holder.communicate(timeout=30)
        with vault.lock(credential.id, timeout=5):
            assert vault.get(credential.id).version == credential.version


def test_f6_different_credentials_lock_independently(home: Path, ring: KeyRing) -> None:
    """Holding A's lock elsewhere does not delay B's."""
    with Vault.open(home, keys=ring) as vault:
        a, b = add_credential(vault, "a"), add_credential(vault, "b")
        holder = _hold(home, ring, a.id)
        with vault.lock(b.id, timeout=0):  # no waiting allowed: B must be free at once
            pass
        with pytest.raises(TokenRefreshInProgress), vault.lock(a.id, timeout=0):
            pass
        holder.communicate(input="", timeout=30)


def test_lock_rejects_ids_that_are_not_credential_ids(vault: Vault) -> None:
    """A lock name is a UUID: no path tricks reach the lock directory."""
    with pytest.raises(CredentialNotFound), vault.lock("../../etc/passwd"):
        pass


@pytest.mark.sqlite_only
def test_f10_forked_child_opens_its_own_connection(vault: Vault) -> None:
    """A child forked after open reads and writes through its own connection; the parent goes on."""
    credential = add_credential(vault, "a")
    parent_connection = vault._store.connection()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            fresh = vault._store.connection() is not parent_connection
            current = vault.get(credential.id)
            put_tokens(vault, credential.id, current.version, "from-child")
            code = 0 if fresh else 2
        finally:
            os.write(write_end, bytes([code]))
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        assert pipe.read() == bytes([0])
    os.waitpid(pid, 0)
    assert vault._store.connection() is parent_connection
    assert vault.get(credential.id).refresh_token == SecretStr("from-child")


def test_forked_child_leaving_the_lock_does_not_release_the_parents_lock(
    home: Path, ring: KeyRing
) -> None:
    """fork() inside lock(): the child's exit from the block must not unlock the parent's flock."""
    with Vault.open(home, keys=ring) as vault:
        credential = add_credential(vault, "a")
        with vault.lock(credential.id):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child leaves the with-block, then exits
                return_code = 0
                os._exit(return_code)
            os.waitpid(pid, 0)
            probe = start_child(
                f"""
                from exact_connector.exceptions import TokenRefreshInProgress
                from exact_connector.vault import Vault
                vault = Vault.open({str(home)!r})
                try:
                    with vault.lock({credential.id!r}, timeout=0.2):
                        print("acquired")
                except TokenRefreshInProgress:
                    print("blocked")
                """,
                ring=ring,
            )
            out, err = probe.communicate(timeout=30)
            assert out.strip() == "blocked", err


@pytest.mark.slow
def test_cas_8_processes_x_4_threads_x_200_attempts_lose_no_update(
    home: Path, ring: KeyRing
) -> None:
    """6,400 compare-and-swap attempts (200 per thread): final version = 1 + successes, every
    success owns a distinct version, the newest token wins, and no raw SQLite error escapes.

    Failed attempts are ConcurrentUpdate, or VaultBusy when a starved CPU keeps a writer waiting
    past the 5 s busy timeout: both are typed and retryable, and neither may write anything.
    """
    with Vault.open(home, keys=ring) as vault:
        credential = add_credential(vault, "contended")
    args = (str(home), ring.to_text(), credential.id, 4, 200)
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        results = pool.map(cas_worker, [args] * 8)
    successes = [item for result in results for item in result["successes"]]  # type: ignore[attr-defined]
    failures: dict[str, int] = {}
    for result in results:
        for name, count in result["failures"].items():  # type: ignore[attr-defined]
            failures[name] = failures.get(name, 0) + count
    assert set(failures) <= {"ConcurrentUpdate", "VaultBusy"}, failures
    assert len(successes) + sum(failures.values()) == 8 * 4 * 200
    versions = sorted(version for version, _ in successes)
    assert versions == list(range(credential.version + 1, credential.version + 1 + len(successes)))
    with Vault.open(home, keys=ring) as vault:
        final = vault.get(credential.id)
        assert final.version == credential.version + len(successes)
        assert final.refresh_token == SecretStr(max(successes)[1])
        updates = [e for e in vault.audit_log(credential.id) if e.event == "tokens_updated"]
        assert len(updates) == len(successes) + 1  # plus the one made by add_credential
        assert secret_values(final)["client_secret"] == secret_values(credential)["client_secret"]
