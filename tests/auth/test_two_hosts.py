"""Two hosts on one PostgreSQL: one refresh per expiry and one shared rate budget (issue 16).

A "host" here is a group of spawned worker processes with its own ``EXACT_CONNECTOR_HOME``: they
share no file with the other group, only the PostgreSQL that holds the vault, the refresh lease
and the rate governor, and the loopback sandbox they all call. The clock is the sandbox's, run
30 times faster than real time and shared by every process.
"""

from __future__ import annotations

import math
import multiprocessing
import shutil
import time
from collections import Counter
from pathlib import Path

import pg_server
import pytest
from client_harness import (
    LEASE_TTL,
    ChildPlan,
    HandoffClock,
    Recorder,
    add_credential,
    advance,
    get_accounts,
    issue_tokens,
    loopback_world,
    open_vault,
    refresh_then_die,
    run_children,
    store_tokens,
)

from exact_connector.clock import ManualClock
from exact_connector.exceptions import ReauthRequired
from exact_connector.sandbox import Sandbox, serve
from exact_connector.vault.sealing import generate_key

SPAWN = multiprocessing.get_context("spawn")
FACTOR = 30.0  # thirty shared-clock seconds per real second
START = 1_767_225_600.0  # a whole minute, so the sandbox's minute windows are whole minutes
MINUTE = 60.0
LIMIT = 60  # the sandbox's calls per minute per division
TTL = 600.0  # the sandbox's access-token lifetime
WINDOW = 30.0  # the refresh window before expiry (TokenPolicy.declared())


@pytest.fixture
def database(postgres_url: str) -> str:
    """A database of the test's own: an empty vault and an empty governor."""
    return pg_server.create_database(postgres_url)


def _hosts(tmp_path: Path) -> list[Path]:
    homes = [tmp_path / "host-a", tmp_path / "host-b"]
    for home in homes:
        home.mkdir(mode=0o700)
    return homes


def _per_minute(sb: Sandbox) -> list[int]:
    """API calls in each of the sandbox's minute windows, by the time it counted them at."""
    counts = Counter(math.floor(event.time / MINUTE) for event in sb.events if event.kind == "api")
    return [counts[minute] for minute in range(min(counts), max(counts) + 1)]


@pytest.mark.slow
@pytest.mark.e2e
def test_two_hosts_on_one_postgres_refresh_once_per_expiry_and_share_the_rate_limit(
    tmp_path: Path, database: str
) -> None:
    """2 hosts x 4 processes x 2 threads, one credential, across 3 access-token expiries:
    exactly 3 refresh grants, 0 reuse detections, every call 200, 0 x 429, no minute over 60."""
    manual = ManualClock(START)
    handoff = HandoffClock(manual)
    sb = Sandbox(clock=handoff, auto_consent=True)
    recorder = Recorder(sb)
    key = generate_key()
    homes = _hosts(tmp_path)
    with serve(recorder) as base_url:
        vault = open_vault(homes[0], key, manual, database)
        tokens = issue_tokens(sb)
        added = add_credential(vault, sb, base_url, tokens["refresh_token"])
        credential = store_tokens(vault, added.id, tokens, manual.now())
        vault.close()
        issued = manual.now()
        plans = [
            ChildPlan(
                str(home),
                key,
                credential.id,
                FACTOR,
                threads=2,
                until=issued + 3 * TTL - 5,  # three expiries: the refreshes near 570, 1140, 1710
                pause=5.0,
                database_url=database,
            )
            for home in homes
            for _ in range(4)
        ]
        # A minute of the first token left (two real seconds at x30): eight children's first
        # calls land on it even on a loaded machine; ten seconds (a third of one) did not always.
        outcomes = run_children(handoff, plans, start=issued + TTL - WINDOW - 60)
        after = open_vault(homes[1], key, manual, database)
        version = after.get(credential.id).version
        after.close()

    assert len(outcomes) == 8
    statuses = [status for _, child_statuses, _, _ in outcomes for status in child_statuses]
    assert Counter(statuses) == {"200": len(statuses)}, Counter(statuses)
    assert len(statuses) >= 8 * 2 * 3
    assert sb.counters.token_grants["refresh_token"] == 3
    assert sb.counters.refresh_reuse == 0
    assert sum(refreshed for _, _, refreshed, _ in outcomes) == 3
    assert sb.counters.rate_limited == 0
    windows = _per_minute(sb)
    assert max(windows) <= LIMIT, windows
    used = {event.ref for event in sb.events if event.kind == "api"}
    assert used == {"G1-1", "G1-2", "G1-3", "G1-4"}, "calls ran on every token of the run"
    assert version == credential.version + 3


@pytest.mark.slow
@pytest.mark.e2e
def test_two_hosts_with_a_sqlite_vault_each_meet_reuse_detection(tmp_path: Path) -> None:
    """The contrast, and why the PostgreSQL backend exists: two hosts with a copy each of one
    SQLite vault cannot see each other's refresh, so the second refresh of the same token is
    detected as reuse and the grant is revoked. Deterministic: each host refreshes once."""
    manual = ManualClock(START)
    handoff = HandoffClock(manual)
    sb = Sandbox(clock=handoff, auto_consent=True, limits=False)
    recorder = Recorder(sb)
    key = generate_key()
    homes = [tmp_path / "host-a", tmp_path / "host-b"]
    with serve(recorder) as base_url:
        vault = open_vault(homes[0], key, manual)
        tokens = issue_tokens(sb)
        credential = add_credential(vault, sb, base_url, tokens["refresh_token"])
        store_tokens(vault, credential.id, tokens, manual.now())
        vault.close()
        shutil.copytree(homes[0], homes[1])  # the second host's copy of the same credential
        issued = manual.now()
        plans = [
            ChildPlan(str(home), key, credential.id, FACTOR, calls=4, pause=5.0) for home in homes
        ]
        outcomes = run_children(handoff, plans, start=issued + TTL - WINDOW + 1)

    statuses = Counter(status for _, child_statuses, _, _ in outcomes for status in child_statuses)
    assert sb.counters.refresh_reuse == 1
    assert sb.counters.token_grants["refresh_token"] == 1
    assert statuses["ReauthRequired: reauth_required"] >= 1, statuses


@pytest.mark.slow
def test_a_lease_holder_killed_mid_refresh_on_postgres_leads_to_one_clear_reauth(
    tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The holder rotated the token at the sandbox and died (SIGKILL) before its commit. Its lease
    row outlives it until the TTL lapses; the next worker then takes the lease, meets "old token
    used" once and stops with REAUTH_REQUIRED. The other credential is untouched and works."""
    with loopback_world(tmp_path / "v", database_url=database) as world:
        other = world.second_credential()
        other_before = world.vault.get(other)
        advance(world.clock, TTL - WINDOW + 10)
        monkeypatch.setenv("EXACT_CONNECTOR_CRASH_AT", "tokens.before_commit")
        child = SPAWN.Process(
            target=refresh_then_die,
            args=(str(world.home), world.key, world.credential_id, world.clock.now(), database),
        )
        child.start()
        monkeypatch.delenv("EXACT_CONNECTOR_CRASH_AT")
        child.join(60)
        killed_at = time.monotonic()
        assert child.exitcode == 137
        assert world.sb.counters.token_grants["refresh_token"] == 1  # rotated at the sandbox

        client = world.client()
        with pytest.raises(ReauthRequired):
            get_accounts(client)
        waited = time.monotonic() - killed_at
        with pytest.raises(ReauthRequired):
            get_accounts(client)

        assert waited < LEASE_TTL + 5, "the dead holder's lease lapsed after its TTL"
        assert world.sb.counters.refresh_reuse == 1
        assert world.sb.counters.token_calls == 2, "no loop: one call each"
        assert world.credential().status == "needs_reauth"
        assert world.vault.get(other) == other_before
        assert get_accounts(world.client(credential_id=other)).status_code == 200
