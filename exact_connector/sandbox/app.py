"""The sandbox: one object that plays Exact Online for tests, the demo and workflow builders.

``Sandbox(...)`` is a plain ``httpx.Request -> httpx.Response`` callable: hand it to
``httpx.MockTransport`` for in-process tests (it answers for any host name, so the runtime can keep
talking to ``https://start.exactonline.nl``), or to :func:`~exact_connector.sandbox.serve` for real
sockets. Every absolute URL it writes (``__next``, ``__metadata.uri``, redirects) is built from the
request's own scheme and host.

A request goes: faults (delay, or an injected answer) -> URL and body size (414, 413) -> OAuth
endpoints, or for the API: access token (401) -> error-budget block (429) -> rate limits (429 +
headers) -> ``Accept`` (415) -> endpoint (404), division grant (403), method (405) -> the REST
handler -> error-budget accounting -> JSON, or Atom unless JSON was asked for -> faults (damage,
drop).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any

import httpx

from exact_connector.catalog import Endpoint, catalog
from exact_connector.clock import Clock, SystemClock
from exact_connector.redaction import remember
from exact_connector.sandbox.counters import Counters, Event
from exact_connector.sandbox.faults import Faults, damage, respond
from exact_connector.sandbox.limits import ERROR_STATUSES, ErrorBudget, RateLimits, oversized
from exact_connector.sandbox.negotiate import accepts_json, as_atom, check_accept
from exact_connector.sandbox.oauth import OAuthServer, SandboxApp, SecretHook
from exact_connector.sandbox.render import Renderer
from exact_connector.sandbox.rest import Rest
from exact_connector.sandbox.routes import Route, resolve, route
from exact_connector.sandbox.seed import (
    FIRST_NAMES,
    LAST_NAMES,
    User,
    World,
    draw,
    guid_from,
    salt_of,
)
from exact_connector.sandbox.store import Row, Store, Table, edm_type, table_spec
from exact_connector.sandbox.webhooks import SandboxWebhooks, webhook_secret
from exact_connector.sandbox.wire import (
    SandboxError,
    empty_response,
    error_body,
    error_response,
    json_response,
)

__all__ = ["DEMO_REDIRECT_URI", "RESET_PATH", "Sandbox"]

#: Where the demo app sends the browser back: the CLI's credential flow listens here.
DEMO_REDIRECT_URI = "http://127.0.0.1:8976/callback"
DEFAULT_DIVISIONS = (100001, 100002, 100003)
#: The sandbox's own route (not Exact's) that resets an app's error budget: POST ?client_id=….
RESET_PATH = "/api/sandbox/reset-limits"
_DIVISION_NAMES = (
    "Sandbox Consultancy B.V.",
    "Sandbox Installatietechniek B.V.",
    "Sandbox Holding B.V.",
    "Sandbox Logistiek B.V.",
)
_ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_MAX_ROWS = 1_000_000
#: Where row versions restart after a division moves database: below every seeded one.
_MOVED_TIMESTAMP_BASE = 500


def _secret(seed: int) -> str:
    """The demo app's client secret: twelve letters and digits, like Exact's, fixed per seed."""
    salt = salt_of(seed, "client_secret")
    return "".join(_ALPHANUMERIC[draw(salt, i) % len(_ALPHANUMERIC)] for i in range(12))


def _user(seed: int) -> User:
    salt = salt_of(seed, "user")
    first = FIRST_NAMES[draw(salt, 1) % len(FIRST_NAMES)]
    last = LAST_NAMES[draw(salt, 2) % len(LAST_NAMES)]
    email = f"{first}.{last.replace(' ', '')}@sandbox.example".lower()
    return User(guid_from(salt, 0), first, last, email)


class Sandbox:
    """An embedded Exact Online: OAuth, the REST API over seeded data, limits and faults.

    ``seed`` fixes every generated value; ``rows`` is the size of each table (per division) and
    ``rows_per_endpoint`` overrides it by endpoint name (a twin names its shared table);
    ``limits`` switches rate limits and the error budget (also at runtime: ``limits_enabled``);
    ``clock`` is the time of everything (default: the system clock); ``auto_consent`` skips the
    consent page, granting every division or the ones listed; ``apps`` replaces the default demo
    app (the first becomes ``demo_app``); ``divisions`` are the administrations' numbers.
    ``revoke_previous_access``, ``refresh_grace`` and ``token_calls_per_day`` are OAuth behaviours
    Exact does not document (see :mod:`~exact_connector.sandbox.oauth`); ``mandatory_filter`` and
    ``bare_arrays`` are REST behaviours the facts leave open (see
    :mod:`~exact_connector.sandbox.rest`). All are off by default but ``revoke_previous_access``.
    ``on_secret`` is told every secret this sandbox mints or holds (tokens, codes, app secrets); by
    default they join the package's redaction registry, where the test scanner also looks.
    ``webhook_transport`` reaches webhook callbacks (default: real HTTP, for loopback callbacks).
    """

    def __init__(
        self,
        seed: int = 1,
        rows: int = 150,
        limits: bool = True,
        clock: Clock | None = None,
        auto_consent: bool | Collection[int] = False,
        apps: Iterable[SandboxApp] | None = None,
        divisions: Iterable[int] | None = None,
        rows_per_endpoint: Mapping[str, int] | None = None,
        *,
        revoke_previous_access: bool = True,
        refresh_grace: bool = False,
        token_calls_per_day: int | None = None,
        mandatory_filter: bool = False,
        bare_arrays: bool = False,
        on_secret: SecretHook | None = remember,
        webhook_transport: httpx.BaseTransport | None = None,
    ) -> None:
        codes = tuple(DEFAULT_DIVISIONS if divisions is None else divisions)
        if not codes or any(not isinstance(c, int) or isinstance(c, bool) or c <= 0 for c in codes):
            raise ValueError("divisions must be positive integers, at least one")
        if not 0 <= rows <= _MAX_ROWS:
            raise ValueError(f"rows must be between 0 and {_MAX_ROWS}")
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.seed = seed
        self.divisions = list(dict.fromkeys(codes))
        self.current_division = self.divisions[0]
        names = {
            code: _DIVISION_NAMES[i]
            if i < len(_DIVISION_NAMES)
            else f"Sandbox Administratie {i + 1}"
            for i, code in enumerate(self.divisions)
        }
        self.world = World(seed, _user(seed), names)
        demo = SandboxApp(
            guid_from(salt_of(seed, "client_id"), 0),
            _secret(seed),
            (DEMO_REDIRECT_URI,),
            "Exact connector demo",
        )
        if not isinstance(auto_consent, bool) and not set(auto_consent) <= set(self.divisions):
            raise ValueError("auto_consent must list divisions the sandbox has")
        self.apps = tuple(apps) if apps is not None else (demo,)
        if not self.apps:
            raise ValueError("at least one app must be registered")
        self.demo_app = self.apps[0]
        for registered in self.apps:
            if on_secret is not None:
                on_secret(registered.client_secret)
        self.counters = Counters()
        self.faults = Faults()
        self.limits_enabled = limits
        self.store = Store(self.world, rows, self._sizes(rows_per_endpoint or {}))
        self.oauth = OAuthServer(
            self.clock,
            self.apps,
            names,
            self.counters,
            auto_consent,
            revoke_previous_access,
            refresh_grace,
            token_calls_per_day,
            on_secret,
        )
        secrets = {app.client_id: webhook_secret(seed, app) for app in self.apps}
        for secret in secrets.values():
            if on_secret is not None:
                on_secret(secret)
        self.webhooks = SandboxWebhooks(self.clock, secrets.get, webhook_transport)
        self.rest = Rest(
            self.store,
            self.clock,
            self.counters,
            self.current_division,
            mandatory_filter=mandatory_filter,
            bare_arrays=bare_arrays,
            webhooks=self.webhooks,
        )
        self.rate_limits = RateLimits(self.clock)
        self.error_budget = ErrorBudget(self.clock)
        self._lock = threading.RLock()
        #: Every request this sandbox answered, in order (its body already read).
        self.requests: list[httpx.Request] = []

    def __repr__(self) -> str:
        return (
            f"Sandbox(seed={self.seed}, divisions={self.divisions}, limits={self.limits_enabled})"
        )

    @staticmethod
    def _sizes(rows_per_endpoint: Mapping[str, int]) -> dict[str, int]:
        sizes = {}
        for name, size in rows_per_endpoint.items():
            if not isinstance(size, int) or not 0 <= size <= _MAX_ROWS:
                raise ValueError(f"rows for {name!r} must be between 0 and {_MAX_ROWS}")
            sizes[table_spec(catalog().lookup(name)).id.lower()] = size
        return sizes

    # -- the app ---------------------------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        """Answer one request, as Exact Online would."""
        request.read()
        fired = self.faults.firing(request.method, request.url.path)
        with self._lock:
            self.requests.append(request)
            for fault in fired:
                self.counters.faults_fired[fault.kind] += 1
                self.counters.log(self.clock.now(), "fault", fault.kind)
        for fault in fired:
            if fault.phase == "delay":
                self.clock.sleep(float(fault.params["seconds"]))
        injected = next((fault for fault in fired if fault.phase == "before"), None)
        with self._lock:
            if injected is not None:
                response, label = respond(injected, self.clock.now()), self._label(request.url.path)
                self.counters.rate_limited += response.status_code == 429
            else:
                response, label = self._dispatch(request)
            self.counters.requests[(label, response.status_code)] += 1
            if "date" not in response.headers:  # the sandbox's time, so resets and Date agree
                response.headers["Date"] = formatdate(self.clock.now(), usegmt=True)
        for fault in fired:
            if fault.phase == "after":
                response = damage(fault, request, response, self.clock.sleep)
        return response

    @staticmethod
    def _label(path: str) -> str:
        where = route(path)
        if where is None:
            return path.removeprefix("/api/").rstrip("/")
        endpoint = catalog().get(where.name)
        return endpoint.id if endpoint is not None else where.name

    def _dispatch(self, request: httpx.Request) -> tuple[httpx.Response, str]:
        path = request.url.path
        refused = oversized(request)
        if refused is not None:
            return error_response(refused), path.removeprefix("/api/").rstrip("/")
        if path.rstrip("/") == "/api/oauth2/auth":
            return self.oauth.authorize(request), "oauth2/auth"
        if path == "/api/oauth2/token":
            return self.oauth.token(request), "oauth2/token"
        if path == RESET_PATH and request.method == "POST":
            return self._reset_errors(request), "sandbox/reset"
        where = route(path)
        if where is None:
            return error_response(SandboxError(404, "The resource cannot be found.")), path
        response, label = self._api(request, where)
        if accepts_json(request):
            return response, label
        return as_atom(response, self.clock.now()), label

    def _reset_errors(self, request: httpx.Request) -> httpx.Response:
        """Not Exact's: forget an app's counted errors and blocks, as a developer may want to."""
        client_id = request.url.params.get("client_id", "")
        if all(app.client_id != client_id for app in self.apps):
            return error_response(SandboxError(400, "client_id is not a registered app."))
        reset = self.error_budget.reset(client_id, request.url.params.get("endpoint") or None)
        self.counters.log(self.clock.now(), "reset", "error budget", client_id)
        return httpx.Response(200, json={"client_id": client_id, "scopes_reset": reset})

    def _api(self, request: httpx.Request, where: Route) -> tuple[httpx.Response, str]:
        label = self._label(request.url.path)
        now = self.clock.now()
        grant = self.oauth.lookup(request.headers.get("authorization"))
        client = grant.family.app.client_id if grant is not None else ""
        scope = (client, where.division or 0, label)
        metered = self.limits_enabled and where.division is not None
        if grant is None or not self.oauth.valid(grant):
            self.counters.log(
                now, "unauthorized", f"{request.method} {label}", grant.grant_id if grant else ""
            )
            if grant is not None and metered:
                self._count_error(scope, 401)
            return empty_response(401, {"WWW-Authenticate": "Bearer"}), label
        self.counters.log(now, "api", f"{request.method} {label}", grant.grant_id)
        headers: dict[str, str] = {}
        if metered:
            until = self.error_budget.blocked_until(scope)
            if until is not None:
                self.counters.rate_limited += 1
                lifted = datetime.fromtimestamp(until, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                message = (
                    f"Too many errors on this endpoint: it is blocked for this app until {lifted}."
                )
                return json_response(429, error_body(message)), label
            verdict = self.rate_limits.take(client, where.division or 0)
            if not verdict.allowed:
                self.counters.rate_limited += 1
                message = f"API rate limit exceeded: the {verdict.scope} limit is used up."
                return json_response(429, error_body(message), verdict.headers), label
            headers = verdict.headers
        try:
            if where.tail != "$count":
                check_accept(request)
            endpoint = resolve(where)
            granted = where.division is None or where.division in grant.family.divisions
            if not granted and endpoint.id.lower() != "system/divisions":
                raise SandboxError(
                    403,
                    "Forbidden: no access to this division.",
                    headers={"Reason": "NoDivisionAccess"},
                )
            response = self.rest.handle(request, where, endpoint, grant)
        except SandboxError as error:
            response = error_response(error)
        response.headers.update(headers)
        if metered:
            self._count_error(scope, response.status_code)
        return response, label

    def _count_error(self, scope: tuple[str, int, str], status: int) -> None:
        if status in ERROR_STATUSES and self.error_budget.record(scope, status):
            self.counters.error_budget_blocks += 1
            self.counters.log(self.clock.now(), "block", scope[2])

    # -- helpers for tests, the demo and the CLI -------------------------------------------------

    @property
    def events(self) -> list[Event]:
        """The ordered event log (see :class:`~exact_connector.sandbox.counters.Event`)."""
        return self.counters.events

    def reset_counters(self) -> None:
        """Zero every counter and empty the event log."""
        with self._lock:
            self.counters.reset()

    def issue_tokens(
        self, app: SandboxApp | None = None, divisions: Sequence[int] | None = None
    ) -> dict[str, str]:
        """A fresh grant without the browser dance (``expires_in`` is the string "600")."""
        chosen = tuple(self.divisions if divisions is None else divisions)
        unknown = set(chosen) - set(self.divisions)
        if unknown or not chosen:
            raise ValueError("divisions must be a non-empty subset of the sandbox's divisions")
        with self._lock:
            return self.oauth.issue(app or self.demo_app, chosen)

    def authorize_url(
        self,
        state: str = "sandbox",
        app: SandboxApp | None = None,
        redirect_uri: str | None = None,
        base_url: str = "https://start.exactonline.nl",
    ) -> str:
        """The URL that starts the authorization-code flow."""
        return self.oauth.authorize_url(
            base_url.rstrip("/"), app or self.demo_app, state, redirect_uri
        )

    def webhook_secret(self, app: SandboxApp | None = None) -> str:
        """The secret an app's webhook deliveries are signed with (the demo app's by default)."""
        return webhook_secret(self.seed, app or self.demo_app)

    def move_division(self, division: int) -> None:
        """Move a division to another database: its ``DivisionMoveDate`` is now and its row
        versions restart lower than any it had (API-FACTS, "Sync feed")."""
        if division not in self.divisions:
            raise ValueError("division must be one of the sandbox's divisions")
        with self._lock:
            self.store.move(division, int(self.clock.now() * 1000), base=_MOVED_TIMESTAMP_BASE)

    def records(self, division: int, endpoint: str) -> list[dict[str, Any]]:
        """Every record of an endpoint in a division, as Exact's JSON without ``__metadata``."""
        with self._lock:
            resolved = catalog().lookup(endpoint)
            table = self.store.table(division, resolved)
            render = self._plain(resolved, table, division)
            return [render(row) for _, row in table.scan(resolved.kind == "sync")]

    def record(self, division: int, endpoint: str, key: Any) -> dict[str, Any] | None:
        """One record by key (a GUID string for most endpoints), or None."""
        with self._lock:
            resolved = catalog().lookup(endpoint)
            table = self.store.table(division, resolved)
            row = table.get(key)
            return None if row is None else self._plain(resolved, table, division)(row)

    def count(self, division: int, endpoint: str) -> int:
        """How many records an endpoint has in a division."""
        with self._lock:
            return len(self.store.table(division, catalog().lookup(endpoint)))

    @staticmethod
    def _plain(endpoint: Endpoint, table: Table, division: int) -> Callable[[Row], dict[str, Any]]:
        base = f"https://start.exactonline.nl/api/v1/{division}/{endpoint.id}"
        render = Renderer(endpoint, table, base, [f.name for f in endpoint.fields if edm_type(f)])
        return lambda row: {k: v for k, v in render(row).items() if k != "__metadata"}
