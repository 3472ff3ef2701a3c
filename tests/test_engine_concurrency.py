"""An engine embedding the Connector under concurrency: a step cancelled by an async timeout, a
worker forked while another thread is mid-step, two Connectors on one vault home, the Connector
closed while a step runs, and the engine's deadline on every kind of call. Each test failed on
the code before (a review of the engine-facing API reproduced them)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import multiprocessing
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

import httpx
import pytest

import exact_connector.redaction as redaction
import exact_connector.runtime as runtime
from exact_connector.client import ExactClient
from exact_connector.clock import Clock, ManualClock
from exact_connector.exceptions import ExactConnectorError
from exact_connector.runtime import Connector
from exact_connector.sandbox import Sandbox
from exact_connector.testing import EXACT, Connected, _sign_in, connect
from exact_connector.vault import Vault
from exact_connector.vault.sealing import generate_key


class RealWaitClock(ManualClock):
    """A manual clock whose sleep also takes a little real time, so threads really wait."""

    def __init__(self, real_per_sleep: float = 0.3) -> None:
        super().__init__()
        self.real_per_sleep = real_per_sleep

    def sleep(self, seconds: float) -> None:
        target = self.now() + seconds
        time.sleep(self.real_per_sleep)
        self.advance(target - self.now())


@contextlib.contextmanager
def bench(home: Path, *, clock: Clock | None = None, via: str = "memory") -> Iterator[Connected]:
    sb = Sandbox(clock=clock or ManualClock(), auto_consent=True, limits=False)
    with connect(sb, home, via=via, name="eng") as connected:
        yield connected


def time_inputs(c: Connected) -> dict[str, Any]:
    division = c.divisions[0]
    item = next(r for r in c.sandbox.records(division, "logistics/Items") if r["IsTime"])
    project = c.sandbox.records(division, "project/Projects")[0]
    data = {"Project": project["ID"], "Item": item["ID"], "Quantity": 1.5}
    return {"division": division, "data": data}


def count_tt(c: Connected) -> int:
    return len(c.sandbox.records(c.divisions[0], "project/TimeTransactions"))


def fill_minute(c: Connected, endpoint: str) -> None:
    """The minute's calls of the credential's app in each division, used by someone else."""
    client_id = c.connector.credentials.get(c.credential_id).client_id
    governor = c.connector.governor
    for division in c.divisions:
        for _ in range(governor.snapshot(client_id, division).minute_remaining):
            governor.acquire(client_id, division, endpoint, deadline=None)


# -- a cancelled async step sends nothing more ------------------------------------------------


def test_a_cancelled_aexecute_does_not_create_the_record_afterwards(tmp_path: Path) -> None:
    """The create waits for the division's next minute; the engine's wait_for gives up first
    (the task is cancelled, the engine has no id) and runs the step again. The worker thread went
    on and POSTed anyway: two records for one step."""
    clock = RealWaitClock(0.5)  # the minute's wait takes 0.5 s of real time
    with bench(tmp_path / "h", clock=clock) as c:
        before = count_tt(c)
        inputs = time_inputs(c)
        fill_minute(c, "project/TimeTransactions")
        create = "create_project_time_transaction"

        async def engine() -> Any:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(c.connector.aexecute(create, c.credential_id, inputs), 0.1)
                raise AssertionError("expected the engine's timeout to fire first")
            return await asyncio.wait_for(c.connector.aexecute(create, c.credential_id, inputs), 10)

        retried = asyncio.run(engine())
        time.sleep(1.0)  # the cancelled attempt's thread has finished its wait by now
        assert retried["ok"], retried
        assert count_tt(c) == before + 1


# -- a worker forked while another thread is mid-step -----------------------------------------


def _pause_at(
    code: CodeType, lineno: int, inside: threading.Event, go: threading.Event
) -> Callable[..., Any]:
    """A trace function parking the thread at ``code``:``lineno`` (as the OS may deschedule a
    thread on any line)."""

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line" and frame.f_lineno == lineno:
            inside.set()
            go.wait(30)
        return local

    def global_(frame: FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code is code else None

    return global_


def _line(func: Callable[..., Any], text: str) -> int:
    lines, start = inspect.getsourcelines(func)
    return start + next(i for i, line in enumerate(lines) if text in line)


@pytest.mark.parametrize(
    "where",
    [
        (redaction.remember, "_LIVE[secret] = None"),  # every request's bearer header
        (runtime.Connector._channel, "channel.users += 1"),  # every step's channel lease
        (ExactClient._check_request, "check_request_url(request.url"),  # no lock held: control
    ],
    ids=["redaction-registry", "connector-pools-lock", "no-lock"],
)
def test_a_worker_forked_while_another_thread_runs_a_step_can_run_steps(
    tmp_path: Path, where: tuple[Callable[..., Any], str]
) -> None:
    """The child deadlocked on its first step when the parent's other thread held a lock at
    fork(): the secret registry's, or the Connector's pools'."""
    func, text = where
    with bench(tmp_path / "h", via="loopback") as c:
        inputs = {"division": c.divisions[0], "endpoint": "crm/Accounts", "select": ["ID"]}
        inputs["limit"] = 1
        assert c.connector.execute("list_or_get_endpoint", c.credential_id, inputs)["ok"]
        inside, go = threading.Event(), threading.Event()
        tracer = _pause_at(func.__code__, _line(func, text), inside, go)

        def busy_engine_thread() -> None:
            sys.settrace(tracer)
            try:
                c.connector.execute("list_or_get_endpoint", c.credential_id, inputs)
            finally:
                sys.settrace(None)

        thread = threading.Thread(target=busy_engine_thread, daemon=True)
        thread.start()
        assert inside.wait(10)

        def child() -> None:
            result = c.connector.execute("list_or_get_endpoint", c.credential_id, inputs)
            raise SystemExit(0 if result["ok"] else 3)

        process = multiprocessing.get_context("fork").Process(target=child)
        process.start()  # the engine forks a worker while its other thread is mid-step
        go.set()
        thread.join(10)
        process.join(timeout=15)
        hung = process.exitcode is None
        if hung:
            process.kill()
            process.join(5)
        assert not hung, "the forked worker deadlocked on its first step"
        assert process.exitcode == 0


# -- two Connectors on one vault home -----------------------------------------------------------


@pytest.mark.parametrize("second", ["other", "same"])
def test_a_refreshed_pair_the_vault_could_not_store_is_used_by_every_connector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, second: str
) -> None:
    """A rotated pair the vault refused to store is kept in memory for the vault's next steps.
    It was kept per Vault object: a second Connector on the same home sent the spent refresh
    token from the row, and Exact revoked the grant."""
    monkeypatch.setenv("EXACT_CONNECTOR_VAULT_KEY", base64.b64encode(generate_key()).decode())
    clock = ManualClock()
    sb = Sandbox(clock=clock, auto_consent=True, limits=False)
    home = tmp_path / "h"
    transport = httpx.MockTransport(sb)
    vault_a = Vault.open(home, clock=clock, busy_timeout=0.3)
    vault_b = Vault.open(home, clock=clock, busy_timeout=0.3)
    a = Connector(vault=vault_a, transport=transport, clock=clock)
    b = Connector(vault=vault_b, transport=transport, clock=clock)
    try:
        cred = _sign_in(sb, a, EXACT, "eng")
        division = a.credentials.get(cred).allowed_divisions[0]
        inputs = {"division": division, "endpoint": "crm/Accounts", "select": ["ID"], "limit": 1}
        assert a.execute("list_or_get_endpoint", cred, inputs)["ok"]
        assert b.execute("list_or_get_endpoint", cred, inputs)["ok"]
        clock.advance(600)  # the access token expired: the next step refreshes
        blocker = sqlite3.connect(home / "vault.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the vault for a moment
        try:
            first = a.execute("list_or_get_endpoint", cred, inputs)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert first["ok"], first["error"]  # refreshed; the new pair is held, unsaved
        then = (b if second == "other" else a).execute("list_or_get_endpoint", cred, inputs)
        assert then["ok"], then["error"]
        assert b.credentials.get(cred).status == "active"
    finally:
        a.close()
        b.close()
        vault_a.close()
        vault_b.close()


# -- the Connector closed while a step runs ------------------------------------------------------


class GateClock(ManualClock):
    """A manual clock that holds the armed thread inside the rate governor's reservation
    transaction (it reads the clock there) until released."""

    def __init__(self) -> None:
        super().__init__()
        self.armed_thread: threading.Thread | None = None
        self.inside = threading.Event()
        self.go = threading.Event()

    def now(self) -> float:
        moment = super().now()
        here = sys._getframe(1).f_code.co_name
        if threading.current_thread() is self.armed_thread and here == "_reserve":
            self.armed_thread = None
            self.inside.set()
            self.go.wait(10)
        return moment


def test_close_while_a_step_is_in_the_rate_governor_lets_that_step_finish(tmp_path: Path) -> None:
    """close() closed the governor's SQLite connections, the one a running step was using
    included: that step failed with a non-retryable system_error and created nothing."""
    clock = GateClock()
    with bench(tmp_path / "h", clock=clock) as c:
        before = count_tt(c)
        inputs = time_inputs(c)
        out: dict[str, Any] = {}

        def step() -> None:
            clock.armed_thread = threading.current_thread()
            create = "create_project_time_transaction"
            out["result"] = c.connector.execute(create, c.credential_id, inputs)

        thread = threading.Thread(target=step, daemon=True)
        thread.start()
        assert clock.inside.wait(10)
        c.connector.close()  # the engine shuts down while the step runs
        clock.go.set()
        thread.join(10)
        assert not thread.is_alive()
        assert out["result"]["ok"], out["result"]["error"]
        assert count_tt(c) == before + 1


# -- the engine's deadline, on every kind of call ------------------------------------------------


def test_execute_with_no_time_left_does_not_wait_for_the_next_minute(tmp_path: Path) -> None:
    """``deadline_seconds=0`` (what is left of the engine's own timeout) was read as not given,
    and the step waited a minute for the rate limit."""
    with bench(tmp_path / "h") as c:
        fill_minute(c, "crm/Accounts")
        inputs = {"division": c.divisions[0], "endpoint": "crm/Accounts", "limit": 1}
        before = c.sandbox.clock.now()
        result = c.connector.execute(
            "list_or_get_endpoint", c.credential_id, inputs, deadline_seconds=0
        )
        assert c.sandbox.clock.now() - before < 1
        assert not result["ok"]


@pytest.mark.parametrize("call", ["options", "test_connect", "poll"])
def test_the_connectors_deadline_bounds_lookups_test_connect_and_polls(
    tmp_path: Path, call: str
) -> None:
    """Connector(deadline_seconds=5) bounded steps only: a dropdown's lookup, Test Connect and a
    trigger's poll waited 61 s for the next minute."""
    endpoint = {"options": "project/Projects", "test_connect": "system/Divisions"}
    with bench(tmp_path / "h") as c:
        c.connector.deadline_seconds = 5
        fill_minute(c, endpoint.get(call, "sync/CRM/Accounts"))
        before = c.sandbox.clock.now()
        if call == "options":
            with pytest.raises(ExactConnectorError):
                c.connector.options("projects", c.credential_id, division=c.divisions[0])
        elif call == "test_connect":
            assert not c.connector.test_connect(c.credential_id)["ok"]
        else:
            polled = c.connector.triggers.poll(
                "record_changed",
                c.credential_id,
                {"division": c.divisions[0], "endpoint": "crm/Accounts", "start": "beginning"},
            )
            assert not polled["ok"]
        assert c.sandbox.clock.now() - before <= 5
