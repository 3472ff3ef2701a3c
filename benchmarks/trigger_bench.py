"""What polling triggers cost: API calls per poll and per day, and how fast changes are handed over.

An in-process sandbox (``MockTransport``, no rate limits, manual clock) and a signed-in connector
watch ``crm/Accounts`` with the "New or Updated Record" trigger. Printed:

* calls for an idle poll (nothing changed), with and without the hourly division-move check;
* calls and seconds to hand over 1,000 and 10,000 changes (the sandbox seeded with that many rows,
  read from the beginning), in one poll and in polls of the default 1,000 events;
* the idle daily cost at poll intervals of 60, 300 and 900 seconds: computed by ``budget`` and
  measured by polling a simulated day (each poll acknowledged).

    python benchmarks/trigger_bench.py            # full
    python benchmarks/trigger_bench.py --smoke    # small sizes, one simulated interval (CI)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import list_bench  # the sign-in both benchmarks share (scripts run from this folder)

from exact_connector.budget import poll_cost
from exact_connector.clock import ManualClock
from exact_connector.runtime import Connector
from exact_connector.sandbox import Sandbox

DIVISION = 100001
ENDPOINT = "crm/Accounts"
DAY = 86_400


def signed_in(rows: int, home: Path) -> tuple[ManualClock, Connector, str]:
    """A sandbox with ``rows`` accounts and a connector with an active credential for it."""
    clock = ManualClock()
    sandbox = Sandbox(
        clock=clock, limits=False, auto_consent=True, rows_per_endpoint={ENDPOINT: rows}
    )
    setup = list_bench.signed_in(sandbox, home, "https://start.exactonline.nl", loopback=False)
    return clock, setup.connector, setup.credential


def poll(connector: Connector, credential: str, **inputs: Any) -> tuple[int, int, bool]:
    """One poll, acknowledged: (API calls, events, more waiting)."""
    result = connector.triggers.poll(
        "record_changed", credential, {"division": DIVISION, "endpoint": ENDPOINT, **inputs}
    )
    assert result["ok"], result
    assert connector.triggers.ack(credential, result["data"]["checkpoint"])
    data = result["data"]
    return result["meta"]["api_calls"], len(data["events"]), bool(data["more"])


def idle_rows(home: Path) -> list[tuple[str, int]]:
    clock, connector, credential = signed_in(50, home)
    first, _, _ = poll(connector, credential)  # starts "now": skips the 50 rows, checks the move
    idle, events, _ = poll(connector, credential)
    assert events == 0
    clock.advance(3_600)
    checked, _, _ = poll(connector, credential)
    return [
        ("first poll (start now, 50 rows skipped, move check)", first),
        ("idle poll", idle),
        ("idle poll with the hourly move check", checked),
    ]


def change_rows(changes: int, home: Path) -> list[tuple[str, int, int, float]]:
    found = []
    for label, limit in (("one poll", 10_000), ("polls of 1,000", 1_000)):
        _, connector, credential = signed_in(changes, home / f"{changes}-{limit}")
        started = time.perf_counter()
        calls = events = polls = 0
        more = True
        while more:
            used, got, more = poll(connector, credential, start="beginning", limit=limit)
            calls, events, polls = calls + used, events + got, polls + 1
        elapsed = time.perf_counter() - started
        assert events == changes, (events, changes)
        found.append((f"{changes:,} changes, {label} ({polls} polls)", calls, events, elapsed))
    return found


def day_rows(intervals: list[int], home: Path) -> list[tuple[int, int, int]]:
    found = []
    for interval in intervals:
        clock, connector, credential = signed_in(10, home / f"day-{interval}")
        poll(connector, credential, interval_seconds=interval)
        total = 0
        for _ in range(DAY // interval):
            clock.advance(interval)
            used, _, _ = poll(connector, credential, interval_seconds=interval)
            total += used
        found.append((interval, poll_cost(interval).idle_calls_per_day, total))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small sizes (CI)")
    args = parser.parse_args()
    sizes = [1_000] if args.smoke else [1_000, 10_000]
    intervals = [900] if args.smoke else [60, 300, 900]
    with tempfile.TemporaryDirectory() as temp:
        home = Path(temp)
        print("Polling cost, crm/Accounts via sync/CRM/Accounts (calls per poll)")
        print(f"{'poll':<56} {'calls':>6}")
        for label, calls in idle_rows(home / "idle"):
            print(f"{label:<56} {calls:>6}")
        print()
        print("(calls include the one division-move check of a trigger's first poll)")
        print(f"{'changes handed over':<44} {'calls':>6} {'events':>7} {'events/s':>9}")
        for size in sizes:
            for label, calls, events, seconds in change_rows(size, home / "changes"):
                print(f"{label:<44} {calls:>6} {events:>7} {events / seconds:>9,.0f}")
        print()
        print("Idle daily cost (division budget 5,000 calls a day)")
        print(f"{'interval s':>10} {'budget says':>12} {'measured':>9} {'share':>6}")
        for interval, computed, measured in day_rows(intervals, home / "day"):
            print(f"{interval:>10} {computed:>12} {measured:>9} {measured / 5000:>6.1%}")


if __name__ == "__main__":
    main()
