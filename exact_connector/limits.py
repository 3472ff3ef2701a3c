"""Rate governor: Exact's minute and day call budgets and its hourly error budget, per division.

Exact Online allows 60 calls per clock minute and 5,000 per UTC day for each app and division, and
blocks the app's key for an hour once an endpoint has drawn 10 errors (400/401/403/404) within an
hour. :class:`RateGovernor` keeps all three budgets locally, so a call waits for the next minute
instead of drawing a 429, fails fast with ``retry_at`` when the day is spent, and is refused before
the lockout could trigger.

Windows are aligned like Exact's (clock minutes, UTC days) and reconciled with the ``X-RateLimit-*``
headers of every response (read by :mod:`exact_connector.ratelimit_headers`; the arithmetic is
:mod:`exact_connector._rate_windows`). A 429 whose reset has already passed (our clock runs ahead)
backs off briefly.

State is a small SQLite database: ``:memory:`` for one process, or a file shared by every process on
the host, where ``BEGIN IMMEDIATE`` makes each reservation atomic. It holds only counters, so
deleting it is always safe.

A write transaction costs some 25-50 µs, as much as the rest of a step's own work. Where the
budget is large (the sandbox with its limits off, a governor given higher limits) a reservation
takes a few calls at once (:func:`lease_size`: a 64th of what is left of the minute and the day,
at most ``LEASE_MAX``) and the process hands the rest out from memory to the same endpoint, until
the minute's last second. Only an endpoint with no counted error in the hour gets a lease; an
error or a 429 on the division ends its leases, and unused calls go back to the window (also at
:meth:`close`). The price: another process's errors on that endpoint are seen up to
``LEASE_MAX - 1`` calls late, and a process that stops calling an endpoint mid-minute leaves up
to a 64th of the minute unused. At Exact's 60 calls a minute a 64th is nothing: every call is
reserved alone, as the budget is too small to lend from (and a 40 µs transaction is nothing
beside a minute's pacing), unless the caller says more calls follow at once: a list read quickly
announces its next pages (``ahead``), so one reservation covers up to ``LEASE_MAX`` of them even
at 60 a minute, and the list gives back what it did not use when it ends (:meth:`release`).

The error budget counts answered errors; calls still under way may fail too. A call the client
acquires with ``board`` counts as in flight until it lands (:meth:`RateGovernor.land`, after its
answer is observed), and an endpoint's next call waits while its counted errors plus its calls in
flight reach the stop: eleven workers sending a bad filter at once send eight, not eleven. The
count of calls in flight is this process's: workers in several processes each keep their own.

A 401 that the auth flow resolved (a resend with a token refreshed here or by another worker)
does not count toward the error budget: with many workers, one rotation makes every other worker's
cached token draw one, and counting those locked endpoints for an hour. A 401 left unresolved
counts; whether Exact counts the resolved ones is unknown (RELIABILITY.md Q8).
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from exact_connector import _sqlite
from exact_connector._rate_windows import (
    DAY,
    MINUTE,
    RESET_MARGIN,
    Window,
    next_boundary,
    plausible,
    utc,
)
from exact_connector.clock import Clock, SystemClock
from exact_connector.exceptions import (
    DailyRateLimited,
    ErrorBudgetExhausted,
    ExactConnectorError,
    RateLimited,
    RequestTimeout,
    SystemError_,
    TransientError,
)
from exact_connector.ratelimit_headers import RateHeaders, parse_rate_headers
from exact_connector.retries import MAX_RETRY_AFTER, clamp_wait, retry_after

__all__ = ["RateGovernor", "RateHeaders", "RateSnapshot", "lease_size", "parse_rate_headers"]

ERROR_WINDOW = 3_600.0
#: A call in flight longer than this (real seconds) no longer holds back the error budget.
FLIGHT_EXPIRY = 600.0
#: How long (real seconds) a call waiting for calls in flight to land sleeps between checks.
_LANDING_POLL = 0.5
LEASE_MAX = 8  # calls one reservation may take at most
LEASE_SHARE = 64  # ... and at most this fraction of what is left of the minute and the day
PAST_RESET_BACKOFF = 1.0  # a 429 whose reset already passed: wait this long, then try again
BUSY_TIMEOUT = 30.0
WAL_WAIT = 2.0  # how long to retry the switch to WAL while another process opens the file

COUNTED_ERRORS = frozenset({400, 401, 403, 404})  # what Exact counts toward its lockout
RETRY_AFTER_STATUSES = frozenset({429, 503})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS windows (
    client_id TEXT NOT NULL, division INTEGER NOT NULL, kind TEXT NOT NULL,
    end_at REAL NOT NULL, used INTEGER NOT NULL, carry INTEGER NOT NULL, lim INTEGER NOT NULL,
    PRIMARY KEY (client_id, division, kind));
CREATE TABLE IF NOT EXISTS errors (
    client_id TEXT NOT NULL, division INTEGER NOT NULL, endpoint TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS errors_by_endpoint ON errors (client_id, division, endpoint, at);
"""


def lease_size(minute: Window, day: Window, ahead: int = 0) -> int:
    """How many calls one reservation takes: 1, or a few while both windows have room to spare,
    or the ``ahead`` calls the caller announced (at most ``LEASE_MAX`` in all, and what is left)."""
    room = min(minute.limit - minute.used, day.limit - day.used)
    return max(1, min(LEASE_MAX, room, max(room // LEASE_SHARE, 1 + ahead)))


@dataclass(slots=True)
class _Lease:
    """Calls reserved in the state and not yet made, for one endpoint of one division."""

    left: int
    until: float  # the last second of the windows they were reserved in starts here
    minute_end: float
    day_end: float


@dataclass(frozen=True, slots=True)
class _NoCall:
    """Why a reservation made no call: the day is spent, calls in flight fill what the error
    budget leaves (``crowded``: the errors counted), or the minute is (``opens``)."""

    spent_day: DailyRateLimited | None
    crowded: int | None
    opens: float | None
    now: float
    minute: Window
    landings: int  # calls landed when it looked (see _InFlight.landings)


@dataclass(frozen=True, slots=True)
class RateSnapshot:
    """One division's budgets right now, for Test Connect's rate-limit headroom."""

    minute_limit: int
    minute_remaining: int
    minute_reset: datetime
    day_limit: int
    day_remaining: int
    day_reset: datetime


_Key = tuple[str, int, str]


class _InFlight:
    """Calls sent and not yet answered, per endpoint of a division, in this process.

    The error budget counts errors already answered; calls in flight may all fail too, so a call
    boards only while the errors counted plus those in flight stay below the stop. Each boarding
    gets a ticket, and landing takes off that very call: a call that never lands (its process lost
    the thread) stops counting after :data:`FLIGHT_EXPIRY`, and when it lands later after all,
    no call still under way is taken off for it. Every call boards and lands, so both take one
    plain lock and wake nobody unless someone waits.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._landed = threading.Condition(self._lock)
        self._flying: dict[_Key, dict[int, float]] = {}  # ticket: when it boarded, oldest first
        self._tickets = itertools.count(1)
        self._waiting = 0
        #: Calls landed so far: a caller that found no room reads it first, and does not wait if
        #: a call landed in between (its wake-up came before it waited).
        self.landings = 0

    def board(self, key: _Key, room: int | None) -> int | None:
        """Count one call in flight if fewer than ``room`` are (None: whatever the number); its
        ticket, or None when there is no room."""
        now = time.monotonic()
        with self._lock:
            flying = self._flying.get(key)
            if flying is None:
                flying = self._flying[key] = {}
            while flying:
                oldest = next(iter(flying))
                if flying[oldest] >= now - FLIGHT_EXPIRY:
                    break
                del flying[oldest]
            if room is not None and len(flying) >= room:
                return None
            ticket = next(self._tickets)
            flying[ticket] = now
            return ticket

    def count(self, key: _Key) -> int:
        with self._lock:
            return len(self._flying.get(key, ()))

    def land(self, key: _Key, ticket: int | None) -> None:
        """The call of ``ticket`` is answered (None: the call that boarded first)."""
        with self._lock:
            flying = self._flying.get(key)
            if flying:
                if ticket is None:
                    del flying[next(iter(flying))]
                else:
                    flying.pop(ticket, None)  # expired already: nothing to take off
            if not flying:
                self._flying.pop(key, None)
            self.landings += 1
            if self._waiting:
                self._landed.notify_all()

    def wait(self, seconds: float, seen: int) -> None:
        """Until a call lands, or ``seconds`` (real time) have passed; not at all if one landed
        since ``landings`` read ``seen``."""
        with self._lock:
            if self.landings != seen:
                return
            self._waiting += 1
            try:
                self._landed.wait(seconds)
            finally:
                self._waiting -= 1


class RateGovernor:
    """Paces calls per ``(client_id, division)`` and guards each endpoint's hourly error budget."""

    def __init__(
        self,
        state_path: str | os.PathLike[str] | None = None,
        *,
        clock: Clock | None = None,
        minute_limit: int = 60,
        day_limit: int = 5000,
        error_limit: int = 10,
        error_margin: int = 2,
    ) -> None:
        self._path = Path(state_path) if state_path is not None else None
        self._clock: Clock = clock or SystemClock()
        self._limits = {"minute": (MINUTE, minute_limit), "day": (DAY, day_limit)}
        self._error_limit = error_limit
        self._error_stop = max(1, error_limit - error_margin)
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, int], list[tuple[float, RateHeaders]]] = {}
        self._pending_lock = threading.Lock()
        self._leases: dict[tuple[str, int, str], _Lease] = {}
        self._lease_lock = threading.Lock()
        self._flights = _InFlight()
        self._db: sqlite3.Connection | None = None  # the in-memory state's one connection
        self._idle: list[sqlite3.Connection] = []  # a state file's: one per concurrent caller
        self._opened: list[sqlite3.Connection] = []
        _sqlite.reset_after_fork(self)

    def acquire(
        self,
        client_id: str,
        division: int,
        endpoint: str,
        *,
        deadline: float | None,
        on_wait: Callable[[float], None] | None = None,
        ahead: int = 0,
        board: bool = False,
    ) -> int | None:
        """Reserve one call, waiting for the minute to refill; raise if the wait is not possible.

        ``on_wait`` hears when (epoch seconds) the wait will end, before each wait. ``ahead``: how
        many more calls to the endpoint the caller expects to make at once (the next pages of a
        list); they may be reserved now, as a lease that :meth:`release` gives back if unused.
        ``board``: the call counts as in flight until :meth:`land`, and waits while the
        endpoint's counted errors plus its calls in flight (this process's) reach the stop: if
        they all failed, Exact would block the app. Returns the call's ticket for :meth:`land`
        (None without ``board``).
        """
        lease_key = (client_id, division, endpoint.lower())
        while True:
            landings = self._flights.landings
            if self._take_leased(lease_key):
                if not board:
                    return None
                # A lease exists only while the endpoint has no error counted: the stop is the
                # room. Calls in flight fill it: the call goes back to the lease until one lands.
                ticket = self._flights.board(lease_key, self._error_stop)
                if ticket is not None:
                    return ticket
                self._give_back_leased(lease_key)
                self._wait_for_landing(lease_key, 0, endpoint, deadline, landings)
                continue
            held = self._reserve(lease_key, endpoint, ahead, board)
            if not isinstance(held, _NoCall):
                return held
            if held.spent_day is not None:
                raise held.spent_day
            if held.crowded is not None:
                self._wait_for_landing(lease_key, held.crowded, endpoint, deadline, held.landings)
                continue
            opens, now, minute = held.opens, held.now, held.minute
            if opens is None:  # not reached: an open day and minute took the call
                continue
            if deadline is not None and opens > deadline:
                raise RateLimited(
                    f"Division {division} used its {minute.limit} calls for this minute; the next "
                    f"window opens at {utc(opens).isoformat(timespec='seconds')}, after the "
                    "step's deadline.",
                    details={"division": division, "endpoint": endpoint, "limit": minute.limit},
                    retry_at=utc(opens),
                )
            if on_wait is not None:
                on_wait(opens)
            self._clock.sleep(opens - now)

    def _reserve(self, key: _Key, endpoint: str, ahead: int, board: bool) -> _NoCall | int | None:
        """One transaction of :meth:`acquire`: the call reserved (its ticket if it boarded, else
        None), or why it was not."""
        client_id, division, _ = key
        ticket = None
        landings = self._flights.landings
        try:
            with self._transaction() as db:
                self._lock_division(db, client_id, division)  # before reading the clock
                now = self._clock.now()
                errors = self._check_error_budget(db, client_id, division, endpoint, now)
                windows = self._load(db, client_id, division, now)
                minute, day = windows["minute"], windows["day"]
                day_opens, opens = day.opens_at(), minute.opens_at()
                open_now = day_opens is None and opens is None
                if open_now and board:
                    ticket = self._flights.board(key, self._error_stop - errors)
                if open_now and (ticket is not None or not board):
                    until = min(minute.end, day.end) - RESET_MARGIN
                    taken = lease_size(minute, day, ahead) if errors == 0 and now < until else 1
                    for _ in range(taken):
                        minute.reserve(now)
                        day.reserve(now)
                    self._save(db, client_id, division, windows)
                    if taken > 1:
                        self._add_lease(key, _Lease(taken - 1, until, minute.end, day.end))
                    return ticket
                # No call now; the server counts the load folded in are kept all the same.
                self._save(db, client_id, division, windows)
        except BaseException:
            if ticket is not None:  # no call will be made, so none will land
                self._flights.land(key, ticket)
            raise
        spent_day = None
        if day_opens is not None:
            spent_day = DailyRateLimited(
                f"Division {division} used all {day.limit} API calls for today; Exact resets "
                f"the count at {utc(day_opens).isoformat(timespec='seconds')}.",
                details={"division": division, "endpoint": endpoint, "limit": day.limit},
                retry_at=utc(day_opens),
            )
        return _NoCall(spent_day, errors if open_now else None, opens, now, minute, landings)

    def in_flight(self, client_id: str, division: int, endpoint: str) -> int:
        """How many calls to the endpoint this process acquired with ``board`` and not landed."""
        return self._flights.count((client_id, division, endpoint.lower()))

    def land(self, client_id: str, division: int, endpoint: str, ticket: int | None = None) -> None:
        """A call acquired with ``board`` is answered, or failed: it is no longer in flight
        (``ticket``: what :meth:`acquire` returned; None takes off the endpoint's oldest call).
        Its answer is observed first, so a call waiting for it sees the error it drew."""
        self._flights.land((client_id, division, endpoint.lower()), ticket)

    def _wait_for_landing(
        self, key: _Key, errors: int, endpoint: str, deadline: float | None, landings: int
    ) -> None:
        if deadline is not None and self._clock.now() >= deadline:
            flying = self._flights.count(key)
            if errors == 0:
                raise RequestTimeout(
                    f"{flying} calls to {endpoint} are under way at once, as many as this "
                    "connector sends to one endpoint together (were they all to fail, Exact would "
                    f"block the app at {self._error_limit} errors an hour); this call waited for "
                    "one to be answered, and the step's time ran out.",
                    details={"division": key[1], "endpoint": endpoint, "in_flight": flying},
                    hint="Exact Online is answering slowly; retry the step, or give it more time.",
                )
            raise ErrorBudgetExhausted(
                f"{errors} calls to {endpoint} failed in the last hour and {flying} more are "
                f"under way; Exact blocks the app at {self._error_limit} errors an hour, so this "
                "call waited for them to be answered, and the step's time ran out.",
                details={"division": key[1], "endpoint": endpoint, "errors": errors},
            )
        self._flights.wait(_LANDING_POLL, landings)

    def observe(
        self,
        client_id: str,
        division: int,
        endpoint: str,
        status: int,
        headers: Mapping[str, str],
        *,
        resolved: bool = False,
        parsed: RateHeaders | None = None,
    ) -> None:
        """Reconcile with a response's rate-limit headers; count client errors toward the budget
        (not one the caller ``resolved``: a 401 the auth flow answered with a resend).
        ``parsed``: the headers as the caller already read them.

        A success's headers are kept in memory and folded into the division's next reservation
        (or :meth:`snapshot`, or :meth:`close`): one SQLite transaction per call instead of two.
        They can only matter to a later reservation, and a late one is recognised as such by
        :meth:`Window.reconcile`. Errors and 429s are written at once, for every process to see.
        """
        parsed = parsed if parsed is not None else parse_rate_headers(headers)
        now = self._clock.now()
        if status not in COUNTED_ERRORS and status != 429:
            if parsed.seen:
                with self._pending_lock:
                    self._pending.setdefault((client_id, division), []).append((now, parsed))
            return
        with self._transaction() as db:
            self._lock_division(db, client_id, division)
            now = self._clock.now()
            if status in COUNTED_ERRORS and not resolved:
                self._record_error(db, (client_id, division, endpoint.lower()), now)
            windows = self._load(db, client_id, division, now)
            self._give_back(self._drop_leases(client_id, division), windows)
            self._reconcile(windows, parsed, now, [])  # leases given back above
            if status == 429:
                windows["minute"].spend(self._throttled_until(now, parsed, headers))
            self._save(db, client_id, division, windows)

    def release(self, client_id: str, division: int, endpoint: str) -> None:
        """Give the endpoint's leased calls not made back to the windows they were reserved in
        (a list that ended before the pages it reserved ahead). Best effort: where the state
        cannot be written, the calls stay counted until their windows end."""
        key = (client_id, division, endpoint.lower())
        with self._lease_lock:
            lease = self._leases.get(key)
            if lease is None or lease.left == 0 or self._clock.now() >= lease.until:
                self._leases.pop(key, None)
                return
        try:
            with self._transaction() as db:
                self._lock_division(db, client_id, division)
                # Loaded while the lease is held: a server count folded in here counts its calls.
                windows = self._load(db, client_id, division, self._clock.now())
                with self._lease_lock:
                    lease = self._leases.pop(key, None)
                self._give_back([lease] if lease is not None else [], windows)
                self._save(db, client_id, division, windows)
        except ExactConnectorError:
            pass

    def retry_after(self, status: int, headers: Mapping[str, str]) -> float | None:
        """Seconds to wait before retrying a 429/503, from Retry-After or the minutely reset."""
        if status not in RETRY_AFTER_STATUSES:
            return None
        now = self._clock.now()
        delay = retry_after(headers, now)
        if delay is None and status == 429:
            reset = plausible(parse_rate_headers(headers).minute_reset, now, MINUTE)
            delay = None if reset is None else reset + RESET_MARGIN - now
        return None if delay is None else clamp_wait(delay)

    def snapshot(self, client_id: str, division: int) -> RateSnapshot:
        """The division's limits, what is left of them, and when each resets."""
        with self._transaction() as db:
            self._lock_division(db, client_id, division)
            windows = self._load(db, client_id, division, self._clock.now())
            self._save(db, client_id, division, windows)  # the server counts folded in are kept
        self._give_back(self._held(client_id, division), windows)  # reserved is not spent
        minute, day = windows["minute"], windows["day"]
        return RateSnapshot(
            minute_limit=minute.limit,
            minute_remaining=max(0, minute.limit - minute.used),
            minute_reset=utc(minute.end),
            day_limit=day.limit,
            day_remaining=max(0, day.limit - day.used),
            day_reset=utc(day.end),
        )

    def check_error_budget(self, client_id: str, division: int, endpoint: str) -> None:
        """Raise :class:`ErrorBudgetExhausted` if calls to ``endpoint`` are held now, as
        :meth:`acquire` would; nothing is reserved (a dry run asks, to refuse what a run would)."""
        with self._transaction() as db:
            self._check_error_budget(db, client_id, division, endpoint, self._clock.now())

    def reset_errors(self, client_id: str, endpoint: str | None = None) -> int:
        """Forget the app's counted errors (on one endpoint, or all); returns how many.

        For development: after a run of mistyped filters the hold lasts an hour. Exact's own
        count is not reset by this, so in production waiting for ``retry_at`` is the safe way.
        """
        with self._transaction() as db:
            return self._delete_errors(db, client_id, endpoint.lower() if endpoint else None)

    def close(self) -> None:
        """Write what was observed and close the state database; in-memory state is dropped, a
        file is reopened on next use."""
        with self._pending_lock:
            divisions = set(self._pending)
        with self._lease_lock:
            divisions |= {(client_id, division) for client_id, division, _ in self._leases}
        for client_id, division in sorted(divisions):
            with self._transaction() as db:
                windows = self._load(db, client_id, division, self._clock.now())
                self._give_back(self._drop_leases(client_id, division), windows)
                self._save(db, client_id, division, windows)
        # The connections not in use now; one in another thread's transaction (a step still
        # running) is closed when that transaction ends (see _transaction).
        with self._lock:
            idle = [*self._idle, *([self._db] if self._db is not None else [])]
            self._db, self._idle, self._opened = None, [], []
        for db in idle:
            db.close()

    # -- leases -----------------------------------------------------------------------------

    def _take_leased(self, key: tuple[str, int, str]) -> bool:
        """One of the endpoint's leased calls, if its windows have not reached their last second."""
        with self._lease_lock:
            lease = self._leases.get(key)
            if lease is None:
                return False
            if lease.left > 0 and self._clock.now() < lease.until:
                lease.left -= 1
                return True
            del self._leases[key]  # spent, or its windows are ending: the state decides again
            return False

    def _give_back_leased(self, key: tuple[str, int, str]) -> None:
        """Return a call :meth:`_take_leased` gave out and that is not made (if the lease is
        still there; else it stays counted until its windows end)."""
        with self._lease_lock:
            lease = self._leases.get(key)
            if lease is not None:
                lease.left += 1

    def _add_lease(self, key: tuple[str, int, str], lease: _Lease) -> None:
        with self._lease_lock:
            held = self._leases.get(key)
            if held is not None and held.minute_end == lease.minute_end:
                held.left += lease.left  # threads that reserved at once: keep every call
            else:
                self._leases[key] = lease

    def _held(self, client_id: str, division: int) -> list[_Lease]:
        with self._lease_lock:
            return [
                lease for key, lease in self._leases.items() if key[:2] == (client_id, division)
            ]

    def _drop_leases(self, client_id: str, division: int) -> list[_Lease]:
        with self._lease_lock:
            keys = [key for key in self._leases if key[:2] == (client_id, division)]
            return [self._leases.pop(key) for key in keys]

    @staticmethod
    def _give_back(leases: list[_Lease], windows: dict[str, Window]) -> None:
        """Unused leased calls go back to the windows they were reserved in, if still current."""
        for lease in leases:
            for window, end in (
                (windows["minute"], lease.minute_end),
                (windows["day"], lease.day_end),
            ):
                if window.end == end:
                    window.used = max(0, window.used - lease.left)

    def _throttled_until(
        self, now: float, parsed: RateHeaders, headers: Mapping[str, str]
    ) -> float:
        reset = plausible(parsed.minute_reset, now, MINUTE)
        if reset is None:
            until = next_boundary(now, MINUTE)
        else:
            until = reset if reset > now else now + PAST_RESET_BACKOFF
        explicit = retry_after(headers, now)
        if explicit is not None:
            until = max(until, now + min(explicit, MAX_RETRY_AFTER))
        return until

    # The storage hooks below (``db`` is the transaction's connection) are all the SQL there is;
    # exact_connector.limits_pg overrides them for PostgreSQL.

    def _lock_division(self, db: Any, client_id: str, division: int) -> None:
        """Serialize this transaction with the division's others (SQLite: BEGIN IMMEDIATE did)."""

    def _record_error(self, db: Any, key: tuple[str, int, str], now: float) -> None:
        db.execute("INSERT INTO errors VALUES (?, ?, ?, ?)", (*key, now))
        db.execute("DELETE FROM errors WHERE at <= ?", (now - ERROR_WINDOW,))

    def _delete_errors(self, db: Any, client_id: str, endpoint: str | None) -> int:
        query, args = "DELETE FROM errors WHERE client_id = ?", [client_id]
        if endpoint is not None:
            query, args = f"{query} AND endpoint = ?", [client_id, endpoint]
        return int(db.execute(query, args).rowcount)

    def _error_times(self, db: Any, key: tuple[str, int, str], since: float) -> list[float]:
        query = (
            "SELECT at FROM errors WHERE client_id = ? AND division = ? AND endpoint = ?"
            " AND at > ? ORDER BY at"
        )
        return [float(at) for (at,) in db.execute(query, (*key, since))]

    def _window_rows(self, db: Any, client_id: str, division: int) -> list[tuple[Any, ...]]:
        query = (
            "SELECT kind, end_at, used, carry, lim FROM windows"
            " WHERE client_id = ? AND division = ?"
        )
        return [tuple(row) for row in db.execute(query, (client_id, division))]

    def _check_error_budget(
        self, db: Any, client_id: str, division: int, endpoint: str, now: float
    ) -> int:
        """The endpoint's counted errors in the last hour; raises when they reach the stop."""
        times = self._error_times(db, (client_id, division, endpoint.lower()), now - ERROR_WINDOW)
        if len(times) < self._error_stop:
            return len(times)
        retry_at = utc(times[len(times) - self._error_stop] + ERROR_WINDOW)
        raise ErrorBudgetExhausted(
            f"{len(times)} errors on {endpoint} in the last hour; Exact blocks the app at "
            f"{self._error_limit}, so calls to it are held until "
            f"{retry_at.isoformat(timespec='seconds')}.",
            details={"division": division, "endpoint": endpoint, "errors": len(times)},
            retry_at=retry_at,
        )

    def _reconcile(
        self, windows: dict[str, Window], parsed: RateHeaders, now: float, held: list[_Lease]
    ) -> None:
        """``held``: this process's leases, whose calls are counted and not made yet (those of the
        window being reconciled, that is: an expired lease's calls count in no window now)."""
        for kind, window in windows.items():
            reserved = sum(
                lease.left
                for lease in held
                if (lease.minute_end if kind == "minute" else lease.day_end) == window.end
            )
            window.reconcile(*parsed.group(kind), now, self._limits[kind][1], reserved)

    def _load(self, db: Any, client_id: str, division: int, now: float) -> dict[str, Window]:
        """The division's windows as stored, with the successes observed since folded in."""
        with self._pending_lock:
            pending = self._pending.pop((client_id, division), [])
        windows = {kind: Window(length, limit) for kind, (length, limit) in self._limits.items()}
        for kind, end, used, carry, limit in self._window_rows(db, client_id, division):
            if (window := windows.get(kind)) is not None:
                window.end, window.used, window.carry = float(end), int(used), int(carry)
                window.limit = min(window.limit, int(limit))
        held = self._held(client_id, division) if pending else []
        for at, parsed in pending:
            for window in windows.values():
                window.roll(at)
            self._reconcile(windows, parsed, at, held)
        for window in windows.values():
            window.roll(now)
        return windows

    def _save(self, db: Any, client_id: str, division: int, windows: dict[str, Window]) -> None:
        db.executemany(
            "INSERT OR REPLACE INTO windows VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (client_id, division, kind, w.end, w.used, w.carry, w.limit)
                for kind, w in windows.items()
            ],
        )

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        """One ``BEGIN IMMEDIATE`` transaction. On a state file each caller uses a connection of its
        own and SQLite's file lock alone makes the transactions take turns: no lock of ours is held
        while SQLite works (and waits for the GIL), so threads do not queue behind one another's
        I/O. The in-memory state has one connection, used in turn."""
        with _sqlite.translated(self._storage_error, (sqlite3.Error, OSError)):
            if self._path is None:
                with self._lock:
                    db = self._db = self._db or self._connect()
                    with _sqlite.immediate(db):
                        yield db
                return
            db = self._checkout()
            try:
                with _sqlite.immediate(db):
                    yield db
            finally:
                with self._lock:
                    kept = db in self._opened  # not given up by close() meanwhile
                    if kept:
                        self._idle.append(db)
                if not kept:
                    db.close()

    def _checkout(self) -> sqlite3.Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        db = self._connect()
        with self._lock:
            self._opened.append(db)
        return db

    def reset_after_fork(self) -> None:
        """In a forked child: fresh locks, and connections of its own on next use."""
        _sqlite.abandon([*self._opened, *([self._db] if self._db is not None else [])])
        self._lock, self._db, self._idle, self._opened = threading.Lock(), None, [], []
        self._pending_lock, self._pending = threading.Lock(), {}
        self._lease_lock, self._leases = threading.Lock(), {}  # the parent's calls, not ours
        self._flights = _InFlight()

    def _connect(self) -> sqlite3.Connection:
        if self._path is None:
            db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        else:
            self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not _sqlite.create_private_file(self._path) and self._path.is_symlink():
                raise _sqlite.symlink_error(self._path)
            db = sqlite3.connect(
                self._path, timeout=BUSY_TIMEOUT, check_same_thread=False, isolation_level=None
            )
            try:
                _sqlite.enable_wal(db, WAL_WAIT)
            except sqlite3.OperationalError as error:  # still busy: the old journal works, slower
                if _sqlite.error_code(error) != sqlite3.SQLITE_BUSY:
                    raise
            db.execute("PRAGMA synchronous=NORMAL")  # counters only: losing the last few is fine
        db.executescript(_SCHEMA)
        return db

    def _storage_error(self, error: Exception) -> ExactConnectorError:
        where = str(self._path) if self._path is not None else "memory"
        if getattr(error, "sqlite_errorname", "") in {"SQLITE_BUSY", "SQLITE_LOCKED"}:
            return TransientError(
                f"The rate-limit state ({where}) stayed locked by another process."
            )
        return SystemError_(
            f"The rate-limit state ({where}) could not be used: {type(error).__name__}.",
            hint="It holds only call counters: delete the file and run the step again.",
        )
