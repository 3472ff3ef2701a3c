"""Shared helpers for the client and auth tests: a sandbox, a vault and a credential wired together.

A :class:`World` is one sandbox, one vault and one credential whose tokens the sandbox really
issued. ``world.client()`` makes an :class:`ExactClient` for it, in-process (``MockTransport``) or
over loopback (``serve``). Everything the sandbox hands out (client secret, tokens, codes) passes
through a :class:`Recorder`, which registers it with the suite's secret scanner and keeps a copy of
every request the sandbox received, so tests can assert on what reached the "server".

Kept importable by name so ``multiprocessing`` spawn children can unpickle the worker functions.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import SecretStr

from exact_connector.catalog import Endpoint, catalog
from exact_connector.client import ExactClient
from exact_connector.clock import Clock, ManualClock, ScaledClock
from exact_connector.sandbox import Sandbox, serve
from exact_connector.testing.scanner import register_answer, register_secret, register_sent
from exact_connector.vault import Credential, Vault
from exact_connector.vault.sealing import KeyRing, generate_key

DIVISION = 100001
OTHER_DIVISION = 100002
EXACT = "https://start.exactonline.nl"
ACCOUNTS = "crm/Accounts"
#: The refresh lease of the PostgreSQL tests, real seconds (a killed holder's lease lapses in this).
LEASE_TTL = 3.0
App = Callable[[httpx.Request], httpx.Response]
#: ``tamper(request, call_app)``: an answer to use instead (None: the app's own answer).
Tamper = Callable[[httpx.Request, Callable[[], httpx.Response]], "httpx.Response | None"]

# -- a recording sandbox ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One request as the sandbox received it."""

    method: str
    url: httpx.URL
    headers: httpx.Headers
    body: bytes
    at: float  # the sandbox clock when it arrived

    @property
    def path(self) -> str:
        return self.url.path

    @property
    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode("utf-8", "replace")).items()}


class Recorder:
    """Wraps an app: records every request, registers every secret it hands out, may tamper.

    ``tamper(request, call_app)`` may return another answer (a broken server), or raise an
    ``httpx.TransportError`` (a network failure) after calling the app or instead of it.
    """

    def __init__(self, app: App, clock: Clock | None = None) -> None:
        self.app = app
        self.clock = clock if clock is not None else getattr(app, "clock", None)
        self.seen: list[Seen] = []
        self.tamper: Tamper | None = None
        self.issued: list[tuple[str, str]] = []  # (field, value) of every token answer
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        with self._lock:
            now = self.clock.now() if self.clock is not None else 0.0
            self.seen.append(Seen(request.method, request.url, request.headers, body, now))
        register_sent(body)
        response = self.tamper(request, lambda: self._call(request)) if self.tamper else None
        return response if response is not None else self._call(request)

    def _call(self, request: httpx.Request) -> httpx.Response:
        response = self.app(request)
        self.issued += register_answer(request.url.path, response)
        return response

    def requests(self, path_contains: str = "", method: str | None = None) -> list[Seen]:
        """The requests received whose path contains ``path_contains`` (and of ``method``)."""
        with self._lock:
            return [
                seen
                for seen in self.seen
                if path_contains.lower() in seen.path.lower()
                and (method is None or seen.method == method)
            ]

    def api_calls(self) -> list[Seen]:
        """Requests to the REST API (not OAuth)."""
        return [seen for seen in self.requests("/api/v1/")]


# -- the world ---------------------------------------------------------------------------------------


@dataclass
class World:
    """A sandbox, a vault and one credential the sandbox issued tokens for."""

    clock: Clock
    sb: Sandbox
    app: Recorder
    vault: Vault
    key: bytes
    home: Path
    credential_id: str
    server_url: str = EXACT
    clients: list[ExactClient] = field(default_factory=list)

    @property
    def loopback(self) -> bool:
        return self.server_url != EXACT

    def client(self, credential_id: str | None = None, **options: Any) -> ExactClient:
        """An ExactClient for the credential, on the sandbox (in-process or loopback)."""
        if not self.loopback:
            options.setdefault("transport", httpx.MockTransport(self.app))
        options.setdefault("clock", self.clock)
        options.setdefault("allow_sandbox", self.loopback)
        made = ExactClient(self.vault, credential_id or self.credential_id, **options)
        self.clients.append(made)
        return made

    def credential(self) -> Credential:
        return self.vault.get(self.credential_id)

    def second_credential(self, name: str = "second") -> str:
        """Another credential on the same vault, with its own grant; returns its id."""
        tokens = issue_tokens(self.sb)
        other = add_credential(self.vault, self.sb, self.server_url, tokens["refresh_token"], name)
        store_tokens(self.vault, other.id, tokens, self.clock.now())
        return other.id

    def issue(self, *, age: float = 0.0, expires_in: float = 600.0) -> dict[str, str]:
        """Fresh tokens from the sandbox, stored in the vault, then ``age`` seconds pass."""
        tokens = issue_tokens(self.sb)
        store_tokens(self.vault, self.credential_id, tokens, self.clock.now(), expires_in)
        if age:
            advance(self.clock, age)
        return tokens

    def close(self) -> None:
        for made in self.clients:
            made.close()
        self.vault.close()


def advance(clock: Clock, seconds: float) -> None:
    """Move a manual clock on (every world built for a test that advances time uses one)."""
    assert isinstance(clock, ManualClock), "only a ManualClock can be advanced"
    clock.advance(seconds)


def open_vault(home: Path, key: bytes, clock: Clock, database_url: str | None = None) -> Vault:
    """The vault in ``home``, or on the PostgreSQL of ``database_url`` with its lease there."""
    if database_url is None:
        return Vault.open(home, keys=KeyRing.from_bytes(key), clock=clock)
    from exact_connector.vault.postgres import PostgresStore

    return Vault.on_store(
        lambda init: PostgresStore.open(database_url, init, lease_ttl=LEASE_TTL),
        home=home,
        keys=KeyRing.from_bytes(key),
        clock=clock,
    )


def issue_tokens(sb: Sandbox) -> dict[str, str]:
    """A grant straight from the sandbox (no token call), registered with the scanner."""
    tokens = sb.issue_tokens()
    for value in tokens.values():
        register_secret(value)
    return tokens


def store_tokens(
    vault: Vault, credential_id: str, tokens: dict[str, str], issued_at: float, ttl: float = 600.0
) -> Credential:
    """Put a token pair in the vault as if this process had just received it."""
    return vault.update_tokens(
        credential_id,
        expected_version=vault.get(credential_id).version,
        access_token=SecretStr(tokens["access_token"]),
        refresh_token=SecretStr(tokens["refresh_token"]),
        issued_at=issued_at,
        expires_at=issued_at + ttl,
    )


def spend_refresh_token(world: World) -> dict[str, str]:
    """Someone else (another process) refreshes with the stored refresh token at the in-process
    sandbox; returns the new pair, which Exact now holds and the vault does not yet."""
    refresh = world.credential().refresh_token
    assert refresh is not None
    app = world.sb.demo_app
    with httpx.Client(transport=httpx.MockTransport(world.app), base_url=EXACT) as other:
        answer = other.post(
            "/api/oauth2/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh.get_secret_value(),
                "client_id": app.client_id,
                "client_secret": app.client_secret,
            },
        )
    assert answer.status_code == 200
    return dict(answer.json())


def add_credential(
    vault: Vault, sb: Sandbox, server_url: str, refresh_token: str, name: str = "demo"
) -> Credential:
    """An active credential for the sandbox's demo app holding ``refresh_token``."""
    secret = register_secret(sb.demo_app.client_secret)
    credential = vault.begin(
        connector_name=name,
        auth_type="oauth2_refresh_token",
        server_url=server_url,
        client_id=sb.demo_app.client_id,
        client_secret=SecretStr(secret),
        refresh_token=SecretStr(refresh_token),
    )
    return vault.activate(credential.id)


def make_world(
    home: Path,
    *,
    clock: Clock | None = None,
    server_url: str = EXACT,
    sandbox: Sandbox | None = None,
    recorder: Recorder | None = None,
    age: float | None = 0.0,
    database_url: str | None = None,
    **sandbox_options: Any,
) -> World:
    """A world with a fresh grant; the access token is ``age`` s old (None: only a refresh token).

    The vault is the SQLite file in ``home``, or on the PostgreSQL of ``database_url``.
    """
    clock = clock or (sandbox.clock if sandbox is not None else ManualClock())
    sb = sandbox or Sandbox(clock=clock, auto_consent=True, **sandbox_options)
    key = generate_key()
    vault = open_vault(home, key, clock, database_url)
    tokens = issue_tokens(sb)
    credential = add_credential(vault, sb, server_url, tokens["refresh_token"])
    world = World(clock, sb, recorder or Recorder(sb), vault, key, home, credential.id, server_url)
    if age is not None:
        store_tokens(vault, credential.id, tokens, clock.now())
        if age:
            advance(clock, age)
    return world


@contextlib.contextmanager
def loopback_world(
    home: Path,
    *,
    clock: Clock | None = None,
    age: float | None = 0.0,
    database_url: str | None = None,
    **sandbox_options: Any,
) -> Iterator[World]:
    """A world whose sandbox listens on 127.0.0.1 (the clients use real sockets)."""
    clock = clock or ManualClock()
    sb = Sandbox(clock=clock, auto_consent=True, **sandbox_options)
    recorder = Recorder(sb)
    with serve(recorder) as base_url:
        world = make_world(
            home,
            clock=clock,
            server_url=base_url,
            sandbox=sb,
            recorder=recorder,
            age=age,
            database_url=database_url,
        )
        try:
            yield world
        finally:
            world.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """Sandbox + vault + credential on a manual clock, in-process; the access token is fresh."""
    made = make_world(tmp_path / "vault")
    yield made
    made.close()


@pytest.fixture
def wire(tmp_path: Path) -> Iterator[World]:
    """The same over real loopback sockets."""
    with loopback_world(tmp_path / "vault") as made:
        yield made


def endpoint(name: str = ACCOUNTS) -> Endpoint:
    return catalog().lookup(name)


def get_accounts(client: ExactClient, division: int = DIVISION, **kw: Any) -> httpx.Response:
    """GET the first page of crm/Accounts (ID and Name only)."""
    accounts = endpoint()
    url = client.url(accounts, division, params={"$select": "ID,Name"})
    return client.request("GET", url, endpoint=accounts, division=division, **kw)


def create_account(client: ExactClient, name: str, **kw: Any) -> httpx.Response:
    """POST a crm/Accounts record."""
    accounts = endpoint()
    url = client.url(accounts, DIVISION)
    return client.request(
        "POST", url, endpoint=accounts, division=DIVISION, json={"Name": name}, **kw
    )


class RecordingClock(ManualClock):
    """A manual clock that remembers every sleep (backoff and pacing are read from it)."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        super().__init__(start)
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        super().sleep(seconds)


class OffsetClock:
    """Another process's view of a clock: ``offset`` seconds ahead (skew)."""

    def __init__(self, base: Clock, offset: float) -> None:
        self.base, self.offset = base, offset

    def now(self) -> float:
        return self.base.now() + self.offset

    def sleep(self, seconds: float) -> None:
        self.base.sleep(seconds)


def answer_with(status: int, body: bytes | str, content_type: str = "application/json") -> Tamper:
    """A tamper for the token endpoint: let the sandbox process, then answer ``body`` instead."""
    content = body.encode() if isinstance(body, str) else body

    def tamper(request: httpx.Request, call: Callable[[], httpx.Response]) -> httpx.Response | None:
        if request.url.path != "/api/oauth2/token":
            return None
        call()
        return httpx.Response(status, headers={"Content-Type": content_type}, content=content)

    return tamper


class HandoffClock:
    """Manual time while a test sets up, then a shared :class:`ScaledClock` once it says go.

    The sandbox is built on this; the tokens are issued at a manual moment, then every process
    switches to the same ``ScaledClock(factor, start, anchor)`` for the run.
    """

    def __init__(self, manual: ManualClock) -> None:
        self.target: Clock = manual

    def now(self) -> float:
        return self.target.now()

    def sleep(self, seconds: float) -> None:
        self.target.sleep(seconds)


# -- multi-process workers (spawn children import this module by name) -------------------------------

SPAWN = multiprocessing.get_context("spawn")


@dataclass(frozen=True)
class ChildPlan:
    """What one spawned child does: ``threads`` threads, each with its own client, each making
    ``calls`` GETs (or calling until the shared clock passes ``until``), ``pause`` apart."""

    home: str
    key: bytes
    credential_id: str
    factor: float
    threads: int = 1
    calls: int | None = None
    until: float | None = None
    pause: float = 0.0
    governor_path: str | None = None  # a rate-limit state file shared by every process
    database_url: str | None = None  # PostgreSQL for the vault and the governor (another "host")


def run_children(
    handoff: HandoffClock, plans: list[ChildPlan], start: float
) -> list[tuple[int, list[str], int, float]]:
    """Spawn a child per plan; once all are ready, start the shared clock; collect the results.

    Every process (and the sandbox, through ``handoff``) then reads the same
    ``ScaledClock(factor, start, anchor)``.
    """
    ready, go, results = SPAWN.Queue(), SPAWN.Queue(), SPAWN.Queue()
    children = [SPAWN.Process(target=child_main, args=(plan, ready, go, results)) for plan in plans]
    for child in children:
        child.start()
    try:
        for _ in children:
            ready.get(timeout=120)
        anchor = time.time() + 0.2
        handoff.target = ScaledClock(plans[0].factor, start, anchor)
        for _ in children:
            go.put((start, anchor))
        outcomes = [results.get(timeout=120) for _ in children]
    finally:
        for child in children:
            child.join(30)
            if child.exitcode is None:
                child.kill()
    return outcomes


def child_main(plan: ChildPlan, ready: Any, go: Any, results: Any) -> None:
    """A spawned child: get ready, wait for the shared clock, run the threads, report."""
    from exact_connector.limits import RateGovernor

    clock = HandoffClock(ManualClock())  # everything is built before the shared clock starts
    vault = open_vault(Path(plan.home), plan.key, clock, plan.database_url)
    governor: RateGovernor | None = None
    if plan.database_url is not None:
        from exact_connector.limits_pg import PostgresRateGovernor

        governor = PostgresRateGovernor(plan.database_url, clock=clock)
    elif plan.governor_path is not None:
        governor = RateGovernor(plan.governor_path, clock=clock)
    clients = [
        ExactClient(vault, plan.credential_id, clock=clock, governor=governor, allow_sandbox=True)
        for _ in range(plan.threads)
    ]
    outcomes: queue.Queue[str] = queue.Queue()
    ready.put(os.getpid())
    start, anchor = go.get(timeout=120)
    clock.target = ScaledClock(plan.factor, start, anchor)
    time.sleep(max(0.0, anchor - time.time()))  # everyone begins when the shared clock reads start

    def run(client: ExactClient) -> None:
        made = 0
        while True:
            made += 1
            try:
                status = str(get_accounts(client, deadline=clock.now() + 600).status_code)
            except Exception as error:  # reported to the parent, which fails the test
                status = f"{type(error).__name__}: {getattr(error, 'code', '')}"
            outcomes.put(status)
            if plan.calls is not None and made >= plan.calls:
                return
            if plan.until is not None and clock.now() >= plan.until and made >= 2:
                return
            clock.sleep(plan.pause)

    threads = [threading.Thread(target=run, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = [outcomes.get() for _ in range(outcomes.qsize())]
    refreshed = sum(client.auth.refreshed for client in clients)
    for client in clients:
        client.close()
    if governor is not None:
        governor.close()
    vault.close()
    results.put((os.getpid(), statuses, refreshed, clock.now()))


def refresh_then_die(
    home: str, key: bytes, credential_id: str, now: float, database_url: str | None = None
) -> None:
    """Refresh through the loopback sandbox; the vault's crash hook kills us before the commit."""
    clock = ManualClock(now)
    vault = open_vault(Path(home), key, clock, database_url)
    with ExactClient(vault, credential_id, clock=clock, allow_sandbox=True) as client:
        client.auth.current()
    os._exit(3)  # not reached when the crash hook fires (status 137)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``predicate`` in real time until true or ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()
