"""The sandbox: an embedded Exact Online simulator, strict where Exact is strict.

What stripe-mock is to Stripe: the demo runs on it, every end-to-end test talks to it, and a user
can build workflows against it before touching a real administration. It imports nothing from the
runtime but the endpoint catalog, the OData helpers and the clock, so it is an independent oracle.
It follows ``API-FACTS.md`` and the recorded answers; where the facts leave a behaviour open, the
module that models it says which choice it made, and the doubtful ones are switches on
:class:`Sandbox`. Like Exact it answers JSON only to ``Accept: application/json``.

    from exact_connector.sandbox import Sandbox, serve
    sb = Sandbox(seed=1, auto_consent=True)
    client = httpx.Client(transport=httpx.MockTransport(sb))   # in-process
    with serve(sb) as base_url: ...                             # or on 127.0.0.1
"""

from __future__ import annotations

from exact_connector.clock import ManualClock
from exact_connector.sandbox.app import DEMO_REDIRECT_URI, Sandbox
from exact_connector.sandbox.counters import Counters, Event
from exact_connector.sandbox.faults import KINDS as FAULT_KINDS
from exact_connector.sandbox.faults import Fault, Faults
from exact_connector.sandbox.oauth import SandboxApp
from exact_connector.sandbox.server import SandboxServer, serve

__all__ = [
    "DEMO_REDIRECT_URI",
    "FAULT_KINDS",
    "Counters",
    "Event",
    "Fault",
    "Faults",
    "ManualClock",
    "Sandbox",
    "SandboxApp",
    "SandboxServer",
    "serve",
]
