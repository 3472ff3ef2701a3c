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
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx
from pydantic import SecretStr

from exact_connector import forms
from exact_connector.actions import ACTIONS, Step, iter_list
from exact_connector.auth import store_grant
from exact_connector.client import DEFAULT_DEADLINE, ExactClient, result_meta
from exact_connector.clock import Clock, SystemClock
from exact_connector.dryrun import PlanningClient, first_request
from exact_connector.exceptions import (
    ConfigError,
    CredentialExists,
    CredentialNotActive,
    CredentialPending,
    DivisionNotAllowed,
    ExactConnectorError,
    InputError,
    InvalidServerUrl,
)
from exact_connector.limits import RateGovernor
from exact_connector.manifest import CREDENTIALS, Manifest, load_manifest
from exact_connector.oauth import TokenService, authorization_url
from exact_connector.options import serve_options
from exact_connector.pagination import cursor_key
from exact_connector.progress import Progress
from exact_connector.results import ActionError, ActionResult, Meta
from exact_connector.testconnect import load_divisions, run_test_connect
from exact_connector.triggers import Triggers
from exact_connector.urls import (
    Origin,
    default_transport,
    parse_server_url,
    sandbox_allowed_by_env,
)
from exact_connector.validation import unsendable
from exact_connector.vault import DATABASE_URL_ENV, Credential, Vault
from exact_connector.vault.sealing import KEY_ENV

__all__ = ["Connector", "CredentialRef"]

CredentialRef = Credential | str
"""A credential, or its id or connector name."""

audit_log = logging.getLogger("exact_connector.audit")
T = TypeVar("T")

#: Statuses on which no action runs: a sign-in not finished (or not confirmed by Test Connect and
#: activation), and a credential switched off. ``needs_reauth`` may run: its actions say so.
_NOT_RUNNABLE = frozenset({"pending", "disabled"})


class Credentials:
    """``connector.credentials``: the credential form's data in and out of the vault."""

    def __init__(self, connector: Connector) -> None:
        self._connector = connector

    @property
    def _vault(self) -> Vault:
        return self._connector.vault

    def begin(self, form_data: dict[str, Any]) -> Credential:
        """Validate the credential form and store it encrypted, status ``pending``."""
        manifest = self._connector.manifest
        checked = dict(form_data)
        origin = _server_origin(form_data.get("server_url"), self._connector.allow_sandbox)
        if origin is not None:  # the form lists Exact's regions; a permitted sandbox stands in
            checked["server_url"] = manifest.server_urls[0].url if origin.is_sandbox else origin.url
        elif _names_the_sandbox(form_data.get("server_url")):
            parse_server_url(form_data["server_url"])  # refused, naming the switch that allows it
        errors = forms.validate("credentials", checked, manifest)
        if errors or origin is None:
            raise InputError("The credential form has errors.", errors=errors)
        refresh = form_data.get("refresh_token")
        try:
            credential = self._begin(form_data, origin, refresh)
        except CredentialExists as error:
            existing = self._vault.list()
            name = form_data["connector_name"]
            if any(c.connector_name == name and c.status == "pending" for c in existing):
                raise CredentialPending(
                    f"A credential named {name!r} was added, but its sign-in never finished.",
                    details=error.details,
                ) from None
            raise
        _audit("credential.begin", credential)
        return credential

    def _begin(self, form_data: dict[str, Any], origin: Origin, refresh: Any) -> Credential:
        return self._vault.begin(
            connector_name=form_data["connector_name"],
            auth_type=form_data["auth_type"],
            server_url=origin.url,
            client_id=form_data["client_id"],
            client_secret=SecretStr(form_data["client_secret"]),
            redirect_uri=form_data.get("redirect_uri"),
            refresh_token=SecretStr(refresh) if refresh else None,
        )

    def get(self, ref: CredentialRef) -> Credential:
        """The stored credential by object, id or connector name (this workspace only)."""
        if isinstance(ref, Credential):
            return self._vault.get(ref.id)
        if not isinstance(ref, str) or not ref or unsendable(ref):
            raise InputError.at(
                "$.credential", "type", "name a credential by its id or connector name, as text"
            )
        return self._vault.get(ref)

    def activate(self, ref: CredentialRef) -> Credential:
        """Mark a credential usable ("Connect & Create")."""
        credential = self._vault.activate(self.get(ref).id)
        _audit("credential.activate", credential)
        return credential

    def list(self) -> list[Credential]:
        """Every credential of this workspace."""
        return self._vault.list()

    def remove(self, ref: CredentialRef) -> None:
        """Delete a credential and its secrets."""
        credential = self.get(ref)
        self._vault.remove(credential.id)
        _audit("credential.remove", credential)


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
        # One connection pool per (credential, origin), kept alive across steps and threads;
        # closed by close(), or when the Connector is collected (an engine may never close it).
        self._pools: dict[tuple[str, str], httpx.BaseTransport] = {}
        self._pools_lock = threading.Lock()
        weakref.finalize(self, _close_pools, self._pools)

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
        values: Mapping[str, Any] | None = None,
        search: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The form ``credentials`` or an action id's input form, as ordered fields.

        With a ``credential``, its dynamic options (divisions, projects, …) are resolved for the
        ``values`` chosen so far; ``search`` narrows a live list by source name (``projects``).
        """
        with self._lookup(credential) as lookup:
            return forms.form_spec(name, self.manifest, values=values, lookup=lookup, search=search)

    def rjsf_form(
        self,
        name: str,
        *,
        credential: CredentialRef | None = None,
        values: Mapping[str, Any] | None = None,
        search: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The form for react-jsonschema-form, hydrated as :meth:`form_spec` is.

        ``{schema, uiSchema, errorMessages, warnings}``; what a person submits becomes the
        action's input through ``forms.to_input(name, form_data)``.
        """
        with self._lookup(credential) as lookup:
            return forms.rjsf(name, self.manifest, values=values, lookup=lookup, search=search)

    @contextlib.contextmanager
    def _lookup(self, ref: CredentialRef | None) -> Iterator[forms.Lookup | None]:
        """Option lookups for one form: one client for all of its lists."""
        if ref is None:
            yield None
            return
        credential = self.credentials.get(ref)
        with self._client(credential) as client:
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
        """A client for a credential read from the vault moments ago (it is not read again)."""
        return ExactClient(
            self.vault,
            credential.id,
            transport=self._transport(credential),
            clock=self.clock,
            governor=self.governor,
            allow_sandbox=self.allow_sandbox,
            credential=credential,
        )

    def _transport(self, credential: Credential) -> httpx.BaseTransport:
        if self.transport is not None:
            return self.transport
        key = (credential.id, credential.server_url)
        with self._pools_lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = self._pools[key] = default_transport()
            return pool

    def close(self) -> None:
        """Close the connection pools and the rate-limit state (the vault stays open)."""
        with self._pools_lock:
            _close_pools(self._pools)
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
        credential = self.credentials.get(ref)
        if credential.auth_type != "oauth2_authorization_code" or not credential.redirect_uri:
            raise ConfigError(
                "This credential does not use the browser sign-in.",
                details={"auth_type": credential.auth_type},
            )
        self.vault.begin_sign_in(credential.id, state)
        origin = parse_server_url(credential.server_url, allow_sandbox=self.allow_sandbox)
        return authorization_url(
            origin, credential.client_id, credential.redirect_uri, state, force_login=force_login
        )

    def complete_authorization(
        self, ref: CredentialRef, code: str | SecretStr, state: str
    ) -> Credential:
        """Check ``state``, trade the code for tokens, and store them before anything uses them."""
        secret = SecretStr(code) if isinstance(code, str) else code
        del code  # an error raised below must not find the code in this frame's locals
        credential = self.credentials.get(ref)
        if not isinstance(state, str) or not self.vault.finish_sign_in(credential.id, state):
            raise InputError(
                "The sign-in answer does not belong to a sign-in started here; start it again.",
                errors=[{"path": "$.state", "code": "state", "message": "missing or mismatched"}],
            )
        origin = parse_server_url(credential.server_url, allow_sandbox=self.allow_sandbox)
        service = TokenService(origin, transport=self.transport, clock=self.clock)
        try:
            grant = service.exchange_code(credential, secret)
        finally:
            service.close()
        credential = store_grant(self.vault, credential, grant)
        if credential.status == "needs_reauth":
            credential = self.vault.set_status(credential.id, "active", reason=None)
        with self.client(credential) as client:
            load_divisions(client, self.vault)
        credential = self.vault.get(credential.id)
        _audit("credential.authorized", credential)
        return credential

    # -- work --------------------------------------------------------------------------------

    def test_connect(self, ref: CredentialRef) -> dict[str, Any]:
        """Test Connect: a structured report; a failed check is reported, never raised."""
        with self.client(ref) as client:
            return run_test_connect(client, self.vault).to_dict()

    def options(
        self, source: str, ref: CredentialRef | None = None, **params: Any
    ) -> list[dict[str, Any]]:
        """Choices for a dynamic dropdown (``options_from`` in the form spec)."""
        if ref is None:
            return serve_options(source, None, None, params)
        credential = self.credentials.get(ref)
        with self._client(credential) as client:
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
            deadline = self.clock.now() + (deadline_seconds or self.deadline_seconds)
            with self._client(credential) as client:
                client.progress = progress
                step = Step(client, division, deadline, cursor_key=_cursor_key(credential))
                data = ACTIONS[action](step, inputs)
            if step.warnings:
                data["warnings"] = step.warnings
            if not declared.read_only:
                _audit(f"action.{action}", credential, step, ok=True)
            return ActionResult(ok=True, action=action, data=data, meta=_meta(step, started))
        except ExactConnectorError as error:
            if (
                credential is not None
                and action in ACTIONS
                and not self.manifest.action(action).read_only
            ):
                _audit(f"action.{action}", credential, step, ok=False, code=error.code)
            return ActionResult(
                ok=False,
                action=action,
                error=cast("ActionError", error.to_dict()),
                meta=_meta(step, started),
            )

    def plan(self, action: str, ref: CredentialRef, inputs: dict[str, Any]) -> dict[str, Any]:
        """The first request ``execute`` would send, with the token masked; nothing is sent."""
        credential, division = self.checked(action, ref, inputs)
        client = PlanningClient(
            self.vault,
            credential.id,
            transport=self.transport,
            clock=self.clock,
            allow_sandbox=self.allow_sandbox,
        )
        deadline = self.clock.now() + self.deadline_seconds
        step = Step(client, division, deadline, cursor_key=_cursor_key(credential))
        return first_request(client, lambda: ACTIONS[action](step, inputs))

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
        if action == CREDENTIALS or action not in self.manifest.form_names():
            self.manifest.action(action)
        errors = forms.validate(action, inputs, self.manifest)
        if errors:
            raise InputError("The action input is not valid.", errors=errors)
        credential = self.credentials.get(ref)
        if credential.status in _NOT_RUNNABLE:
            raise CredentialNotActive(
                f"The credential {credential.connector_name} is {credential.status}; actions run "
                "only on an active credential.",
                details={"status": credential.status},
            )
        division = int(inputs["division"])
        if division not in credential.allowed_divisions:
            hint = None if credential.allowed_divisions else "Run Test Connect to load them."
            raise DivisionNotAllowed(
                "This connection was not granted that division.",
                errors=[{"path": "$.division", "code": "not_allowed", "message": "not granted"}],
                details={"allowed": list(credential.allowed_divisions)},
                hint=hint,
            )
        return credential, division

    # -- async twins -------------------------------------------------------------------------

    async def aexecute(
        self, action: str, ref: CredentialRef, inputs: dict[str, Any], **kw: Any
    ) -> ActionResult:
        """:meth:`execute` in a worker thread."""
        return await _in_thread(self.execute, action, ref, inputs, **kw)

    async def atest_connect(self, ref: CredentialRef) -> dict[str, Any]:
        """:meth:`test_connect` in a worker thread."""
        return await _in_thread(self.test_connect, ref)

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
    import asyncio  # only async engines pay for importing it

    return await asyncio.to_thread(func, *args, **kwargs)


def _close_pools(pools: dict[tuple[str, str], httpx.BaseTransport]) -> None:
    while pools:
        pools.popitem()[1].close()


def _names_the_sandbox(value: object) -> bool:
    """Whether ``value`` is the loopback sandbox's address (allowed here or not)."""
    origin = _server_origin(value, allow_sandbox=True)
    return origin is not None and origin.is_sandbox


def _server_origin(value: object, allow_sandbox: bool) -> Origin | None:
    """The canonical origin of a Server URL (RELIABILITY H1: any letter case, a trailing slash),
    by the one rule :func:`parse_server_url`; None when it refuses (the form's check says why)."""
    try:
        return parse_server_url(value, allow_sandbox=allow_sandbox)
    except InvalidServerUrl:
        return None


def _cursor_key(credential: Credential) -> bytes:
    return cursor_key(credential.client_secret, credential.id)


def _meta(step: Step | None, started: float) -> Meta:
    return result_meta(step.client if step is not None else None, started)


def _audit(event: str, credential: Credential, step: Step | None = None, **extra: Any) -> None:
    """One line per write or credential change: who, when, where, which record; never a payload."""
    line: dict[str, Any] = {
        "event": event,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "workspace": credential.workspace,
        "credential_id": credential.id,
        "connector_name": credential.connector_name,
    }
    if step is not None:
        line.update(division=step.division, **step.audit)
        line["request_id"] = step.client.stats.request_id
    line.update(extra)
    audit_log.info(json.dumps(line, sort_keys=True, default=str))
