"""Rate pacing against the sandbox's real limit: threads (one governor) and processes (a shared
state file), on accelerated clocks that the sandbox and the governors share (F9)."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import pytest
from client_harness import (
    ChildPlan,
    HandoffClock,
    Recorder,
    get_accounts,
    make_world,
    run_children,
)

from exact_connector.clock import ManualClock, ScaledClock
from exact_connector.limits import RateGovernor
from exact_connector.sandbox import Sandbox, serve

MINUTE = 60.0
LIMIT = 60  # the sandbox's calls per minute per division
START = 1_767_225_600.0  # a whole minute


def _utilisation(times: list[float], calls: int) -> float:
    """Calls made, as a share of what the minute windows the run touched allowed."""
    windows = math.floor(max(times) / MINUTE) - math.floor(min(times) / MINUTE) + 1
    return calls / (LIMIT * windows)


@pytest.mark.slow
def test_f9_300_calls_from_10_threads_draw_no_429_and_use_the_limit(tmp_path: Path) -> None:
    """10 threads x 30 GETs, one division, the sandbox's 60/min on, one governor: zero 429s and
    at least 90% of the allowed rate used."""
    clock = ScaledClock(60.0, START + 0.5)  # a shared-clock minute is one real second
    world = make_world(tmp_path / "v", clock=clock)
    governor = RateGovernor(clock=clock)
    clients = [world.client(governor=governor) for _ in range(10)]
    statuses: list[int] = []

    def run(index: int) -> None:
        for _ in range(30):
            statuses.append(get_accounts(clients[index], deadline=clock.now() + 600).status_code)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    world.close()
    arrivals = [seen.at for seen in world.app.api_calls()]
    assert statuses == [200] * 300
    assert world.sb.counters.rate_limited == 0
    assert len(arrivals) == 300
    used = _utilisation(arrivals, 300)
    per_minute = 300 / (max(arrivals) - min(arrivals)) * MINUTE
    assert used >= 0.9, f"used {used:.1%} of the allowed rate ({per_minute:.1f} calls/min)"


@pytest.mark.slow
@pytest.mark.e2e
def test_f9_three_processes_share_one_limiter(tmp_path: Path) -> None:
    """3 spawned processes x 40 GETs to one division over loopback, a shared governor file:
    all 120 succeed, no 429, and the run takes at least the minute the limit demands."""
    manual = ManualClock(START)
    handoff = HandoffClock(manual)
    sb = Sandbox(clock=handoff, auto_consent=True)
    recorder = Recorder(sb)
    with serve(recorder) as base_url:
        world = make_world(
            tmp_path / "v", clock=manual, server_url=base_url, sandbox=sb, recorder=recorder
        )
        plan = ChildPlan(
            str(world.home),
            world.key,
            world.credential_id,
            30.0,
            calls=40,
            governor_path=str(tmp_path / "limits.db"),
        )
        outcomes = run_children(handoff, [plan] * 3, start=START + 1)
        world.close()
    statuses = [status for _, child_statuses, _, _ in outcomes for status in child_statuses]
    assert statuses == ["200"] * 120
    assert sb.counters.rate_limited == 0
    arrivals = [seen.at for seen in recorder.api_calls()]
    assert len(arrivals) == 120
    assert max(arrivals) - min(arrivals) >= MINUTE - 2
    assert _utilisation(arrivals, 120) >= 0.9
