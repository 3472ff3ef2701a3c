"""F1-F8, F10: one refresh per credential across threads, coroutines and processes."""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from client_harness import (
    OTHER_DIVISION,
    ChildPlan,
    HandoffClock,
    Recorder,
    World,
    advance,
    get_accounts,
    issue_tokens,
    loopback_world,
    make_world,
    open_vault,
    refresh_then_die,
    run_children,
    spend_refresh_token,
    store_tokens,
)
from pydantic import SecretStr

from exact_connector.auth import TokenPolicy
from exact_connector.clock import ManualClock
from exact_connector.exceptions import ReauthRequired, TokenRefreshInProgress
from exact_connector.sandbox import Sandbox, serve
from exact_connector.vault.sqlite import SQLiteStore

SPAWN = multiprocessing.get_context("spawn")


def _run_threads(count: int, work: Callable[[int], int]) -> list[int | BaseException]:
    """Start ``count`` threads at once (a barrier), return each one's result or exception."""
    barrier = threading.Barrier(count)
    results: list[int | BaseException] = [0] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work(index)
        except BaseException as error:  # reported by the assertions below
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


# -- F1, F2 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("shared", [True, False], ids=["one-client", "a-client-each"])
def test_f1_fifty_threads_on_an_expired_token_make_one_refresh(world: World, shared: bool) -> None:
    """50 threads, token past expiry: exactly one token call, every call 200, no reuse."""
    advance(world.clock, 700)
    one = world.client()
    clients = [one if shared else world.client() for _ in range(50)]
    results = _run_threads(50, lambda i: get_accounts(clients[i]).status_code)
    assert results == [200] * 50
    assert world.sb.counters.token_calls == 1
    assert world.sb.counters.refresh_reuse == 0


def test_f2_a_hundred_coroutines_make_one_refresh(world: World) -> None:
    """The runtime is sync; async engines call it through worker threads: still one refresh."""
    advance(world.clock, 590)
    client = world.client()

    async def engine() -> list[int]:
        calls = [asyncio.to_thread(lambda: get_accounts(client).status_code) for _ in range(100)]
        return list(await asyncio.gather(*calls))

    assert asyncio.run(engine()) == [200] * 100
    assert world.sb.counters.token_calls == 1


# -- F3 ---------------------------------------------------------------------------------------------

FACTOR = 10.0  # ten shared-clock seconds per real second


@pytest.mark.slow
def test_f3_8_processes_x_6_threads_cross_the_expiry_with_one_refresh(tmp_path: Path) -> None:
    """8 spawned processes x 6 threads, a client each, one credential, one loopback sandbox, one
    accelerated clock started 10 s before the refresh window: 1 refresh grant, 0 reuse
    detections, every call 200."""
    manual = ManualClock()
    handoff = HandoffClock(manual)
    sb = Sandbox(clock=handoff, auto_consent=True, limits=False)
    recorder = Recorder(sb)
    with serve(recorder) as base_url:
        world = make_world(
            tmp_path / "v", clock=manual, server_url=base_url, sandbox=sb, recorder=recorder
        )
        issued = manual.now()
        before = world.credential().version
        plan = ChildPlan(
            str(world.home),
            world.key,
            world.credential_id,
            FACTOR,
            threads=6,
            until=issued + 592,  # past the window's start (570) and close to expiry (600)
            pause=2.0,
        )
        outcomes = run_children(handoff, [plan] * 8, start=issued + 560)
        assert len(outcomes) == 8
        statuses = [status for _, child_statuses, _, _ in outcomes for status in child_statuses]
        assert len(statuses) >= 8 * 6 * 2
        assert set(statuses) == {"200"}, sorted(set(statuses))
        assert sum(refreshed for _, _, refreshed, _ in outcomes) == 1
        assert sb.counters.token_grants["refresh_token"] == 1
        assert sb.counters.token_calls == 1
        assert sb.counters.refresh_reuse == 0
        used = {event.ref for event in sb.events if event.kind == "api"}
        assert used == {"G1-1", "G1-2"}, "calls ran on both sides of the refresh"
        assert world.credential().version == before + 1
        world.close()


# -- F4 ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_f4_a_refresher_killed_before_its_commit_leads_to_one_clear_reauth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sandbox rotated, the holder died before the vault commit (the kernel frees the flock):
    the next worker gets the lock, meets "old token used" once, and stops with REAUTH_REQUIRED."""
    with loopback_world(tmp_path / "v") as world:
        advance(world.clock, 590)
        monkeypatch.setenv("EXACT_CONNECTOR_CRASH_AT", "tokens.before_commit")
        child = SPAWN.Process(
            target=refresh_then_die,
            args=(str(world.home), world.key, world.credential_id, world.clock.now()),
        )
        child.start()
        monkeypatch.delenv("EXACT_CONNECTOR_CRASH_AT")
        child.join(60)
        assert child.exitcode == 137
        assert world.sb.counters.token_grants["refresh_token"] == 1  # rotated at the sandbox
        client = world.client()
        with pytest.raises(ReauthRequired):
            get_accounts(client)
        with pytest.raises(ReauthRequired):
            get_accounts(client)
        assert world.sb.counters.refresh_reuse == 1
        assert world.sb.counters.token_calls == 2, "no loop: one call each"
        assert world.credential().status == "needs_reauth"


def test_f4_a_refresh_whose_writer_died_before_its_commit_signal_is_read_under_the_lock(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process refreshed and committed, then died before it signalled the commit: this
    process's reads may trust their cache for the freshness window, but the refresh re-reads the
    row under the lock and uses the new pair, never spending the old refresh token (which would
    cost the user's consent)."""
    monkeypatch.setattr(SQLiteStore, "FRESH_FOR", 3600.0)
    client = world.client()
    assert get_accounts(client).status_code == 200  # this thread has read the current pair
    advance(world.clock, 590)
    current = world.credential()
    tokens = spend_refresh_token(world)
    other = open_vault(world.home, world.key, world.clock)
    other._store._generation = None  # type: ignore[attr-defined]  # its signal never comes
    store_tokens(other, world.credential_id, tokens, world.clock.now())
    other.close()
    assert world.vault.get(world.credential_id) == current, "the cache trusts its window"
    assert get_accounts(client).status_code == 200
    assert world.sb.counters.token_grants["refresh_token"] == 1, "only the other process's"
    assert world.sb.counters.refresh_reuse == 0
    assert client.auth.refreshed == 0
    assert world.vault.get(world.credential_id, latest=True).status == "active"


# -- F5, F6 -----------------------------------------------------------------------------------------


def test_f5_a_lock_held_too_long_makes_waiters_fail_without_refreshing(world: World) -> None:
    """Holder hangs past the lock timeout: TOKEN_REFRESH_IN_PROGRESS (retryable); no token call."""
    advance(world.clock, 590)
    policy = dataclasses.replace(TokenPolicy.declared(), lock_timeout=0.2)
    client = world.client(policy=policy)
    with world.vault.lock(world.credential_id):
        [outcome] = _run_threads(1, lambda _: get_accounts(client).status_code)
    assert isinstance(outcome, TokenRefreshInProgress) and outcome.retryable
    assert world.sb.counters.token_calls == 0
    assert world.app.api_calls() == []


def test_f5_a_step_waits_for_another_workers_refresh_no_longer_than_its_deadline(
    world: World,
) -> None:
    """The lock timeout is 30 s, the step has 0.3 s left: it fails retryable while the holder
    still holds the lock (before, it waited for the holder and went on past its deadline)."""
    advance(world.clock, 590)
    client = world.client()
    held, done = threading.Event(), threading.Event()
    still_held: list[bool] = []

    def holder() -> None:
        with world.vault.lock(world.credential_id):
            held.set()
            done.wait(timeout=10)  # the old code took the lock after this and went on
            still_held.append(done.is_set())

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(timeout=10)
    try:
        [outcome] = _run_threads(
            1, lambda _: get_accounts(client, deadline=world.clock.now() + 0.3).status_code
        )
    finally:
        done.set()
        thread.join()
    assert isinstance(outcome, TokenRefreshInProgress) and outcome.retryable
    assert still_held == [True]
    assert world.sb.counters.token_calls == 0
    assert world.app.api_calls() == []


def test_f6_two_connections_refresh_independently(world: World) -> None:
    """A's refresh lock is held; B refreshes at once, unblocked."""
    second = world.second_credential()
    advance(world.clock, 590)
    other = world.client(credential_id=second)
    with world.vault.lock(world.credential_id), ThreadPoolExecutor(1) as pool:
        status = pool.submit(lambda: get_accounts(other, division=OTHER_DIVISION).status_code)
        assert status.result(timeout=5) == 200
    assert other.auth.refreshed == 1


# -- F7 ---------------------------------------------------------------------------------------------


def _during_token_call(world: World, action: Callable[[], None]) -> None:
    def tamper(request: httpx.Request, call: Callable[[], httpx.Response]) -> None:
        if request.url.path == "/api/oauth2/token":
            action()

    world.app.tamper = tamper


def test_f7_a_version_bump_by_another_writer_is_retried_not_lost(world: World) -> None:
    """Divisions change mid-refresh: the CAS misses, re-reads, and stores the new tokens on top."""
    advance(world.clock, 590)
    _during_token_call(world, lambda: world.vault.set_divisions(world.credential_id, [7, 8], 8))
    client = world.client()
    assert get_accounts(client).status_code == 200
    credential = world.credential()
    assert credential.allowed_divisions == (7, 8), "the other writer's change survives"
    assert credential.access_token_issued_at == world.clock.now(), "and so do the new tokens"
    assert client.auth.refreshed == 1


def _store_elsewhere(world: World, fresh: dict[str, str]) -> Callable[[], None]:
    """A writer that takes no refresh lock (a sign-in on an older release, a lapsed lease)
    stores another pair."""

    def store() -> None:
        current = world.credential()
        world.vault.update_tokens(
            current.id,
            expected_version=current.version,
            access_token=SecretStr(fresh["access_token"]),
            refresh_token=SecretStr(fresh["refresh_token"]),
            issued_at=world.clock.now(),
            expires_at=world.clock.now() + 600,
        )

    return store


def test_f7_tokens_written_meanwhile_are_never_overwritten_with_ours(world: World) -> None:
    """A new sign-in stores other tokens mid-refresh: those are kept, ours are not written over."""
    advance(world.clock, 590)
    fresh = issue_tokens(world.sb)
    _during_token_call(world, _store_elsewhere(world, fresh))
    assert get_accounts(world.client()).status_code == 200
    stored = world.credential().refresh_token
    assert stored is not None and stored.get_secret_value() == fresh["refresh_token"]
    assert world.app.api_calls()[-1].headers["authorization"] == f"Bearer {fresh['access_token']}"


def test_f7_a_refused_refresh_does_not_mark_tokens_stored_meanwhile_needs_reauth(
    world: World,
) -> None:
    """Exact refuses the old, idle refresh token while a new pair is stored: the refusal concerns
    a token nobody holds any more, so the new pair is used and the connection stays active."""
    advance(world.clock, 31 * 86_400.0)
    fresh = issue_tokens(world.sb)
    _during_token_call(world, _store_elsewhere(world, fresh))
    assert get_accounts(world.client()).status_code == 200
    credential = world.credential()
    assert credential.status == "active" and credential.status_reason is None
    stored = credential.refresh_token
    assert stored is not None and stored.get_secret_value() == fresh["refresh_token"]
    assert world.app.api_calls()[-1].headers["authorization"] == f"Bearer {fresh['access_token']}"


def test_f7_a_refusal_during_another_change_is_still_marked_on_the_new_version(
    world: World,
) -> None:
    """Divisions change while Exact refuses the refresh token: the compare-and-swap misses, the
    record is read again (same refresh token) and marked needs_reauth, keeping the change."""
    advance(world.clock, 31 * 86_400.0)
    _during_token_call(world, lambda: world.vault.set_divisions(world.credential_id, [7, 8], 8))
    with pytest.raises(ReauthRequired):
        get_accounts(world.client())
    credential = world.credential()
    assert credential.status == "needs_reauth"
    assert credential.allowed_divisions == (7, 8)


# -- F8 ---------------------------------------------------------------------------------------------


def test_f8_threads_sharing_one_vault_are_serialized_by_the_mutex(world: World) -> None:
    """flock is per open file, so threads rely on the in-process mutex: brackets never interleave."""
    log: list[str] = []

    def work(index: int) -> int:
        for _ in range(20):
            with world.vault.lock(world.credential_id):
                log.append(f"<{index}")
                log.append(f">{index}")
        return 0

    assert _run_threads(8, work) == [0] * 8
    assert len(log) == 8 * 20 * 2
    for opening, closing in zip(log[::2], log[1::2], strict=True):
        assert opening[0] == "<" and closing == ">" + opening[1:]


# -- F10 --------------------------------------------------------------------------------------------


def _forked_refresh(world: World) -> None:
    """In a forked child: refresh through the inherited vault object, then exit by status."""
    try:
        client = world.client()
        status = get_accounts(client).status_code
        os._exit(0 if status == 200 and client.auth.refreshed == 1 else 1)
    except BaseException:
        os._exit(2)


@pytest.mark.slow
def test_f10_a_forked_worker_uses_its_own_vault_connection(world: World) -> None:
    """Vault opened and used before fork; the child refreshes and commits through its own
    connection; the parent then reads the child's tokens."""
    assert get_accounts(world.client()).status_code == 200
    before = world.credential().version
    advance(world.clock, 590)
    child = multiprocessing.get_context("fork").Process(target=_forked_refresh, args=(world,))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert world.credential().version == before + 1
    assert world.sb.counters.token_calls == 0, "the child's sandbox was its own copy"


def spawned_call(home: str, key: bytes, credential_id: str, now: float) -> None:
    """In a spawned child: open the vault afresh and make one call over loopback."""
    from client_harness import open_vault

    from exact_connector.client import ExactClient
    from exact_connector.clock import ManualClock

    clock = ManualClock(now)
    vault = open_vault(Path(home), key, clock)
    with ExactClient(vault, credential_id, clock=clock, allow_sandbox=True) as client:
        ok = get_accounts(client).status_code == 200 and client.auth.refreshed == 1
    vault.close()
    os._exit(0 if ok else 1)


@pytest.mark.slow
def test_f10_a_spawned_worker_opens_the_vault_itself(tmp_path: Path) -> None:
    """A spawned child (no inherited state) opens the vault, refreshes, and the parent sees it."""
    with loopback_world(tmp_path / "v") as world:
        advance(world.clock, 590)
        child = SPAWN.Process(
            target=spawned_call,
            args=(str(world.home), world.key, world.credential_id, world.clock.now()),
        )
        child.start()
        child.join(60)
        assert child.exitcode == 0
        assert world.sb.counters.token_grants["refresh_token"] == 1
        assert get_accounts(world.client()).status_code == 200
        assert world.sb.counters.token_calls == 1, "the parent uses the child's new token"
