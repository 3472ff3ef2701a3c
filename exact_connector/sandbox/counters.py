"""What the sandbox saw: request, token and record counters, and an ordered event log.

Tests read these to prove behaviour that responses alone cannot show: that exactly one refresh
happened, that a refresh reached the token endpoint *before* an API call used its token
(``events``), that a lost POST still created its record, how many 429s were sent.
"""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

__all__ = ["Counters", "Event"]


class Event(NamedTuple):
    """One thing that happened, at the sandbox clock's time.

    ``kind`` is ``token`` (detail: the grant type), ``api`` (detail: ``"GET crm/Accounts"``),
    ``consent`` (``allow``/``deny``), ``reuse`` (a used refresh token came back), ``too_early``,
    ``block`` (error budget) or ``fault`` (detail: the fault kind). ``ref`` names a token set,
    ``G<family>-<generation>``: the one an API call used or a token call issued.
    """

    time: float
    kind: str
    detail: str
    ref: str = ""


class Counters:
    """Counters since the sandbox started or since :meth:`reset`."""

    requests: Counter[tuple[str, int]]
    token_calls: int
    token_grants: Counter[str]
    refresh_reuse: int
    too_early: int
    records_created: Counter[str]
    rate_limited: int
    error_budget_blocks: int
    faults_fired: Counter[str]
    events: list[Event]

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start counting from zero (in place, so held references stay live)."""
        self.requests = Counter()
        self.token_calls = 0
        self.token_grants = Counter()
        self.refresh_reuse = 0
        self.too_early = 0
        self.records_created = Counter()
        self.rate_limited = 0
        self.error_budget_blocks = 0
        self.faults_fired = Counter()
        self.events = []

    def calls(self, endpoint: str | None = None, status: int | None = None) -> int:
        """Requests answered, optionally only for one endpoint id and/or one status."""
        return sum(
            count
            for (seen_endpoint, seen_status), count in self.requests.items()
            if (endpoint is None or seen_endpoint.lower() == endpoint.lower())
            and (status is None or seen_status == status)
        )

    def log(self, time: float, kind: str, detail: str, ref: str = "") -> None:
        """Append an event."""
        self.events.append(Event(time, kind, detail, ref))
