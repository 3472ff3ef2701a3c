"""The engine-facing object: :class:`Connector`.

An engine loads it through the ``workflow_automation.connectors`` entry point, renders its forms,
stores credentials through it, runs Test Connect, and executes actions. ``execute`` never raises
for an Exact Online or input problem: it returns the ActionResult envelope
``{ok, action, data | error, meta}``. It raises only for programming errors.

The core is synchronous and thread-safe; the ``a``-prefixed twins run it in a worker thread for
async engines.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import Any, TypeVar, Unpack, cast

import httpx
from pydantic import SecretStr

from exact_connector import forms
from exact_connector._sqlite import reset_after_fork
from exact_connector.actions import ACTIONS, Step, iter_list
from exact_connector.audit import audit
from exact_connector.auth import ensure_usable
from exact_connector.client import (
    CANCELLED,
    DEFAULT_DEADLINE,
    ExactClient,
    http_client,
    lent,
    result_meta,
)
from exact_connector.clock import Clock, SystemClock
from exact_connector.credentials import CredentialRef, Credentials
from exact_connector.dryrun import PlanningClient, first_request
from exact_connector.exceptions import ExactConnectorError, FieldError, InputError
from exact_connector.limits import RateGovernor
from exact_connector.manifest import CREDENTIALS, Manifest, load_manifest
from exact_connector.options import serve_options
from exact_connector.pagination import cursor_key
from exact_connector.pools import ShardedTransport
from exact_connector.progress import Progress
from exact_connector.results import ActionError, ActionResult, Meta
from exact_connector.testconnect import run_test_connect
from exact_connector.triggers import Triggers
from exact_connector.urls import Origin, default_transport, parse_server_url, sandbox_allowed_by_env
from exact_connector.vault import DATABASE_URL_ENV, Credential, Vault
from exact_connector.vault.sealing import KEY_ENV

__all__ = ["Connector", "CredentialRef"]

T = TypeVar("T")


class Connector:
    """The Exact Online connector as an engine loads it (entry point ``exact-online``)."""

    def __init__(
        self,
        *,
        home: str | os.PathLike[str] | None = None,
        workspace: str = "default",
        vault: Vault | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Clock | None = None,
        allow_sandbox: bool | None = None,
        manifest: Manifest | None = None,
        deadline_seconds: float = DEFAULT_DEADLINE,
    ) -> None:
        self._manifest = manifest
        self._home = Path(home) if home is not None else None
        self._workspace = workspace
        self._vault = vault
        self.transport = transport
        self.clock = clock or SystemClock()
        self.allow_sandbox = sandbox_allowed_by_env() if allow_sandbox is None else allow_sandbox
        self.deadline_seconds = deadline_seconds
        self.credentials = Credentials(self)
        self.triggers = Triggers(self)
        # One connection pool and HTTP client per (credential, origin), kept alive across steps
        # and threads; closed by close(), or when the Connector is collected (an engine may never
        # close it).
        self._pools: dict[tuple[object, ...], _Channel] = {}
        self._pools_lock = threading.Lock()
        weakref.finalize(self, _close_pools, self._pools)
        reset_after_fork(self)
        # Form name -> its input check, looked up once (every step validates its input).
        self._input_checks: dict[str, Callable[[Any], list[FieldError]]] = {}

    def reset_after_fork(self) -> None:
        """In a forked child: the pools' lock afresh (a thread of the parent may have held it at
        fork(), and would hold it in the child for good); the pools reset themselves."""
        self._pools_lock = threading.Lock()

    @classmethod
    def open(
        cls,
        home: str | os.PathLike[str] | None = None,
        *,
        workspace: str = "default",
        create: bool = False,
        allow_sandbox: bool | None = None,
        **options: Any,
    ) -> Connector:
        """A connector on the vault at ``home`` (default: $EXACT_CONNECTOR_HOME or the data dir).

        ``create=True`` makes the vault directory and its key file when neither exists and no
        key is in ``$EXACT_CONNECTOR_VAULT_KEY`` (back the key file up: without it the vault
        cannot be opened). ``allow_sandbox`` lets credentials point at the loopback sandbox
        (default: ``$EXACT_CONNECTOR_ALLOW_SANDBOX``). Other options are the constructor's.
        """
        if create and not os.environ.get(KEY_ENV):
            Vault.init(home)
        connector = cls(home=home, workspace=workspace, allow_sandbox=allow_sandbox, **options)
        _ = connector.vault  # fail now, not at the first action, if the vault cannot be opened
        return connector

    # -- declarations ------------------------------------------------------------------------

    @property
    def manifest(self) -> Manifest:
        """The validated declarations: actions, auth types, regions, token policy."""
        if self._manifest is None:
            self._manifest = load_manifest()
        return self._manifest

    def form_spec(
        self,
        name: str,
        *,
        credential: CredentialRef | None = None,
        **choices: Unpack[forms.Choices],
    ) -> dict[str, Any]:
        """The form ``credentials`` or an action id's input form, as ordered fields.

        With a ``credential``, its dynamic options (divisions, projects, …) are resolved for the
        ``values`` chosen so far; ``search`` narrows a live list by source name (``projects``).
        """
        with self._lookup(credential) as lookup:
            return forms.form_spec(name, self.manifest, lookup=lookup, **choices)

    def rjsf_form(
        self,
        name: str,
        *,
        credential: CredentialRef | None = None,
        **choices: Unpack[forms.Choices],
    ) -> dict[str, Any]:
        """The form for react-jsonschema-form, hydrated as :meth:`form_spec` is.

        ``{schema, uiSchema, errorMessages, warnings}``; what a person submits becomes the
        action's input through ``forms.to_input(name, form_data)``.
        """
        with self._lookup(credential) as lookup:
            return forms.rjsf(name, self.manifest, lookup=lookup, **choices)

    @contextlib.contextmanager
    def _lookup(self, ref: CredentialRef | None) -> Iterator[forms.Lookup | None]:
        """Option lookups for one form: one client for all of its lists."""
        if ref is None:
            yield None
            return
        credential = self.credentials.get(ref)
        with self._client(credential) as client:
            client.deadline = self.clock.now() + self.deadline_seconds
            yield lambda source, params: serve_options(source, client, credential, params)

    # -- state -------------------------------------------------------------------------------

    @property
    def vault(self) -> Vault:
        """The credential store, opened on first use."""
        if self._vault is None:
            self._vault = Vault.open(self._home, workspace=self._workspace, clock=self.clock)
        return self._vault

    @cached_property
    def governor(self) -> RateGovernor:
        """Rate and error budgets shared by every process using this vault's directory, or by
        every worker on every host on the PostgreSQL of ``EXACT_CONNECTOR_DATABASE_URL``."""
        url = os.environ.get(DATABASE_URL_ENV)
        if url and url.startswith(("postgresql://", "postgres://")):
            from exact_connector.limits_pg import PostgresRateGovernor

            return PostgresRateGovernor(url, clock=self.clock)
        return RateGovernor(self.vault.home / "limits.db", clock=self.clock)

    def client(self, ref: CredentialRef) -> ExactClient:
        """An :class:`ExactClient` for one credential (close it, or use it as a context manager).

        Its connections come from the Connector's pool for the credential's origin, which stays
        open when the client closes (keep-alive across steps) until :meth:`close`.
        """
        return self._client(self.credentials.get(ref))

    def _client(self, credential: Credential) -> ExactClient:
        """A client for a credential read from the vault moments ago (it is not read again).

        The client holds a lease on its channel until it is closed: :meth:`close` retires a
        channel in use and the last client to leave it closes it, so a step running when the
        Connector is closed finishes on the connections it started on."""
        channel = self._channel(credential)
        client = ExactClient(
            self.vault,
            credential.id,
            transport=channel.transport,
            clock=self.clock,
            governor=self.governor,
            allow_sandbox=self.allow_sandbox,
            credential=credential,
            http=channel.http,
            origin=channel.origin,
            on_close=partial(self._release, channel),
        )
        client.filter_required = channel.filter_required
        return client

    def _channel(self, credential: Credential) -> _Channel:
        given = self.transport
        key = (credential.id, credential.server_url, self.allow_sandbox, given)
        with self._pools_lock:
            channel = self._pools.get(key)
            if channel is None:
                origin = parse_server_url(credential.server_url, allow_sandbox=self.allow_sandbox)
                channel = self._pools[key] = _Channel.open(origin, given)
            channel.users += 1
            return channel

    def _release(self, channel: _Channel) -> None:
        """A client of ``channel`` closed: close the channel too if it was its last, and
        :meth:`close` retired it meanwhile."""
        with self._pools_lock:
            channel.users -= 1
            last = channel.retired and channel.users == 0
        if last:
            channel.close()

    def close(self) -> None:
        """Close the connection pools and the rate-limit state (the vault stays open). A pool a
        running step uses is closed when that step ends; later steps open new ones."""
        with self._pools_lock:
            idle = []
            while self._pools:
                channel = self._pools.popitem()[1]
                channel.retired = True
                if channel.users == 0:
                    idle.append(channel)
        for channel in idle:
            channel.close()
        if "governor" in self.__dict__:
            self.governor.close()

    def __enter__(self) -> Connector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- sign-in -----------------------------------------------------------------------------

    def authorization_url(
        self, ref: CredentialRef, state: str, *, force_login: bool = False
    ) -> str:
        """Where to send the person to sign in and consent (authorization-code credentials)."""
        return self.credentials.sign_in_url(ref, state, force_login=force_login)

    def complete_authorization(
        self, ref: CredentialRef, code: str | SecretStr, state: str
    ) -> Credential:
        """Check ``state``, trade the code for tokens, and store them before anything uses them."""
        secret = SecretStr(code) if isinstance(code, str) else code
        del code  # an error raised below must not find the code in this frame's locals
        return self.credentials.finish_sign_in(ref, secret, state)

    # -- work --------------------------------------------------------------------------------

    def test_connect(
        self, ref: CredentialRef, *, deadline_seconds: float | None = None
    ) -> dict[str, Any]:
        """Test Connect: a structured report; a failed check is reported, never raised.

        ``deadline_seconds`` (default: the Connector's, as for a step) bounds its waits (the
        minute's rate limit, another worker's refresh): a check that would wait longer fails at
        once with the time to test again."""
        seconds = self.deadline_seconds if deadline_seconds is None else deadline_seconds
        with self.client(ref) as client:
            return run_test_connect(client, self.vault, deadline_seconds=seconds).to_dict()

    def options(
        self, source: str, ref: CredentialRef | None = None, **params: Any
    ) -> list[dict[str, Any]]:
        """Choices for a dynamic dropdown (``options_from`` in the form spec)."""
        if ref is None:
            return serve_options(source, None, None, params)
        credential = self.credentials.get(ref)
        with self._client(credential) as client:
            client.deadline = self.clock.now() + self.deadline_seconds  # the engine's, as a step's
            return serve_options(source, client, credential, params)

    def execute(
        self,
        action: str,
        ref: CredentialRef,
        inputs: dict[str, Any],
        *,
        deadline_seconds: float | None = None,
        progress: Progress | None = None,
    ) -> ActionResult:
        """Run one action; the ActionResult envelope for success and for every expected failure.

        ``progress`` hears of every call, page and rate-limit wait as it happens
        (:mod:`exact_connector.progress`).
        """
        started = time.monotonic()
        step: Step | None = None
        credential: Credential | None = None
        try:
            declared = self.manifest.action(action)
            credential, division = self.checked(action, ref, inputs)
            seconds = self.deadline_seconds if deadline_seconds is None else deadline_seconds
            deadline = self.clock.now() + seconds
            with self._client(credential) as client:
                client.progress = progress
                step = Step(client, division, deadline, cursor_key=_cursor_key(credential))
                data = ACTIONS[action](step, inputs)
            if step.warnings:
                data["warnings"] = step.warnings
            if not declared.read_only:
                audit(f"action.{action}", credential, step, ok=True)
            return ActionResult(ok=True, action=action, data=data, meta=_meta(step, started))
        except ExactConnectorError as error:
            if (
                credential is not None
                and action in ACTIONS
                and not self.manifest.action(action).read_only
            ):
                audit(f"action.{action}", credential, step, ok=False, code=error.code)
            return ActionResult(
                ok=False,
                action=action,
                error=cast("ActionError", error.to_dict()),
                meta=_meta(step, started),
            )

    def plan(self, action: str, ref: CredentialRef, inputs: dict[str, Any]) -> dict[str, Any]:
        """The first request ``execute`` would send, with the token masked; nothing is sent.

        What the run refuses before sending is refused here too: a credential that must sign in
        again, an endpoint the error budget holds. A warning the run would give (an endpoint not
        in the catalog, called as typed) comes with the request, as ``warnings``.
        """
        self.manifest.action(action)  # a trigger's id passes the input check, not this
        credential, division = self.checked(action, ref, inputs)
        ensure_usable(credential)
        client = PlanningClient(
            self.vault,
            credential.id,
            transport=self.transport,
            clock=self.clock,
            allow_sandbox=self.allow_sandbox,
        )
        client.held_by = self.governor
        client.filter_required = set(self._learnt_filters(credential))
        deadline = self.clock.now() + self.deadline_seconds
        step = Step(client, division, deadline, cursor_key=_cursor_key(credential))
        planned = first_request(client, lambda: ACTIONS[action](step, inputs))
        if step.warnings:
            planned["warnings"] = step.warnings
        return planned

    def _learnt_filters(self, credential: Credential) -> set[str]:
        """The endpoints whose lists the credential's connection learnt need a filter (a run
        goes to their sync feed at once), without opening a connection to ask."""
        with self._pools_lock:
            for key, channel in self._pools.items():
                if key[0] == credential.id and key[1] == credential.server_url:
                    return channel.filter_required
        return set()

    def stream(
        self,
        ref: CredentialRef,
        inputs: dict[str, Any],
        *,
        deadline_seconds: float | None = None,
        progress: Progress | None = None,
    ) -> Iterator[dict[str, Any]]:
        """``list_or_get_endpoint``'s records one at a time, for lists too large to hold.

        Typed errors are raised, not enveloped. Without ``deadline_seconds`` for the whole stream,
        each page request has its own: a long list is paced by Exact's 60 calls a minute, and the
        consumer's time between pages is not the stream's to spend. ``progress`` is as for
        :meth:`execute`.
        """
        credential, division = self.checked("list_or_get_endpoint", ref, inputs)
        deadline = self.clock.now() + deadline_seconds if deadline_seconds is not None else None
        with self._client(credential) as client:
            client.progress = progress
            yield from iter_list(
                Step(client, division, deadline, cursor_key=_cursor_key(credential)), inputs
            )

    def checked(
        self, action: str, ref: CredentialRef, inputs: dict[str, Any]
    ) -> tuple[Credential, int]:
        """Validate an action's or trigger's input before anything is sent, and the division
        against the credential."""
        check = self._input_checks.get(action)
        if check is None:
            if action == CREDENTIALS or action not in self.manifest.form_names():
                self.manifest.action(action)  # raises: not an action or trigger
            check = self._input_checks[action] = forms.input_check(action, self.manifest)
        errors = check(inputs)
        if errors:
            raise InputError("The action input is not valid.", errors=errors)
        division = int(inputs["division"])
        return self.credentials.runnable(ref, division), division

    # -- async twins -------------------------------------------------------------------------

    async def aexecute(
        self, action: str, ref: CredentialRef, inputs: dict[str, Any], **kw: Any
    ) -> ActionResult:
        """:meth:`execute` in a worker thread."""
        return await _in_thread(self.execute, action, ref, inputs, **kw)

    async def atest_connect(
        self, ref: CredentialRef, *, deadline_seconds: float | None = None
    ) -> dict[str, Any]:
        """:meth:`test_connect` in a worker thread."""
        return await _in_thread(self.test_connect, ref, deadline_seconds=deadline_seconds)

    async def aoptions(
        self, source: str, ref: CredentialRef | None = None, **params: Any
    ) -> list[dict[str, Any]]:
        """:meth:`options` in a worker thread."""
        return await _in_thread(self.options, source, ref, **params)

    async def acomplete_authorization(
        self, ref: CredentialRef, code: str | SecretStr, state: str
    ) -> Credential:
        """:meth:`complete_authorization` in a worker thread."""
        return await _in_thread(self.complete_authorization, ref, code, state)

    def __repr__(self) -> str:
        return f"Connector(id={self.manifest.id!r}, workspace={self._workspace!r})"


async def _in_thread(func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``func`` in a worker thread. If the awaiting task is cancelled (an engine's timeout), the
    thread goes on to its next wait's end but sends no call after that (:data:`CANCELLED`): a
    write the engine gave up on is not made behind its back while it runs the step again."""
    import asyncio  # only async engines pay for importing it

    cancelled = threading.Event()
    token = CANCELLED.set(cancelled)  # the thread runs in a copy of this context
    try:
        return await asyncio.to_thread(func, *args, **kwargs)
    except asyncio.CancelledError:
        cancelled.set()
        raise
    finally:
        CANCELLED.reset(token)


@dataclass(slots=True, eq=False)
class _Channel:
    """What a credential's steps share: its parsed origin, its connections (the Connector's own
    pools, one per thread up to :data:`~exact_connector.pools.SHARDS`, or the transport it was
    given), the HTTP client on them, and the endpoints Exact requires it to filter lists of."""

    origin: Origin
    transport: httpx.BaseTransport
    http: httpx.Client
    owned: bool
    filter_required: set[str] = field(default_factory=set)
    #: Clients leasing it now, and whether close() retired it (closed when the last one leaves).
    users: int = 0
    retired: bool = False

    @classmethod
    def open(cls, origin: Origin, given: httpx.BaseTransport | None) -> _Channel:
        transport = (
            given if given is not None else ShardedTransport(partial(default_transport, origin))
        )
        return cls(origin, transport, http_client(lent(transport)), owned=given is None)

    def close(self) -> None:
        self.http.close()
        if self.owned:
            self.transport.close()


def _close_pools(pools: dict[tuple[object, ...], _Channel]) -> None:
    while pools:
        pools.popitem()[1].close()


def _cursor_key(credential: Credential) -> bytes:
    return cursor_key(credential.client_secret, credential.id)


def _meta(step: Step | None, started: float) -> Meta:
    return result_meta(step.client if step is not None else None, started)
