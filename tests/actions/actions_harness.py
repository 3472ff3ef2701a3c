"""The in-process bench for the action tests: one signed-in connector on a sandbox.

The connector's transport is the sandbox itself (``httpx.MockTransport``), whose request log lets a
test prove that an input was refused before anything reached the network. The sandbox runs without
limits and on a :class:`ManualClock`; the connector's own rate governor stays on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from exact_connector.clock import ManualClock
from exact_connector.sandbox import Sandbox
from exact_connector.testing import Connected, connect


class Bench(Connected):
    """A signed-in, active credential on an in-process sandbox on a manual clock."""

    @property
    def sb(self) -> Sandbox:
        return self.sandbox

    @property
    def clock(self) -> ManualClock:
        clock = self.sandbox.clock
        assert isinstance(clock, ManualClock)
        return clock

    @property
    def calls(self) -> int:
        """How many requests have reached the sandbox so far."""
        return len(self.sandbox.requests)


@contextlib.contextmanager
def signed_in_bench(home: Path) -> Iterator[Bench]:
    """A sandbox without limits, a vault in ``home``, and an active credential signed in."""
    clock = ManualClock()
    sb = Sandbox(clock=clock, auto_consent=True, limits=False)
    with connect(sb, home, name="properties") as connected:
        yield Bench(**vars(connected))


def time_inputs(bench: Bench) -> dict[str, object]:
    """A valid create_project_time_transaction input: 1.5 hours on the first project."""
    division = bench.divisions[0]
    item = next(r for r in bench.sb.records(division, "logistics/Items") if r["IsTime"])
    project = bench.sb.records(division, "project/Projects")[0]
    return {
        "division": division,
        "data": {"Project": project["ID"], "Item": item["ID"], "Quantity": 1.5},
    }
