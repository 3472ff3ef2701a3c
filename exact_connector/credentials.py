"""``connector.credentials``: the credential form's data in and out of the vault.

Adding a credential, the browser sign-in that gives it tokens, finding it by id or name, and the
check that it may run an action on a division. Every change is written to the audit log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from exact_connector import forms
from exact_connector.audit import audit
from exact_connector.auth import store_grant
from exact_connector.exceptions import (
    ConfigError,
    CredentialExists,
    CredentialNotActive,
    CredentialPending,
    DivisionNotAllowed,
    InputError,
    InvalidServerUrl,
)
from exact_connector.oauth import TokenService, authorization_url
from exact_connector.testconnect import load_divisions
from exact_connector.urls import Origin, parse_server_url
from exact_connector.validation import unsendable
from exact_connector.vault import Credential

if TYPE_CHECKING:
    from exact_connector.runtime import Connector
    from exact_connector.vault import Vault

__all__ = ["CredentialRef", "Credentials"]

CredentialRef = Credential | str
"""A credential, or its id or connector name."""

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
        audit("credential.begin", credential)
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
        audit("credential.activate", credential)
        return credential

    def list(self) -> list[Credential]:
        """Every credential of this workspace."""
        return self._vault.list()

    def remove(self, ref: CredentialRef) -> None:
        """Delete a credential and its secrets."""
        credential = self.get(ref)
        self._vault.remove(credential.id)
        audit("credential.remove", credential)

    def runnable(self, ref: CredentialRef, division: int) -> Credential:
        """The credential, if it may run an action on ``division`` now."""
        credential = self.get(ref)
        if credential.status in _NOT_RUNNABLE:
            raise CredentialNotActive(
                f"The credential {credential.connector_name} is {credential.status}; actions run "
                "only on an active credential.",
                details={"status": credential.status},
            )
        if division not in credential.allowed_divisions:
            hint = None if credential.allowed_divisions else "Run Test Connect to load them."
            raise DivisionNotAllowed(
                "This connection was not granted that division.",
                errors=[{"path": "$.division", "code": "not_allowed", "message": "not granted"}],
                details={"allowed": list(credential.allowed_divisions)},
                hint=hint,
            )
        return credential

    # -- the browser sign-in -----------------------------------------------------------------

    def sign_in_url(self, ref: CredentialRef, state: str, *, force_login: bool = False) -> str:
        """Where to send the person to sign in and consent (authorization-code credentials)."""
        credential = self.get(ref)
        if credential.auth_type != "oauth2_authorization_code" or not credential.redirect_uri:
            raise ConfigError(
                "This credential does not use the browser sign-in.",
                details={"auth_type": credential.auth_type},
            )
        self._vault.begin_sign_in(credential.id, state)
        origin = parse_server_url(
            credential.server_url, allow_sandbox=self._connector.allow_sandbox
        )
        return authorization_url(
            origin, credential.client_id, credential.redirect_uri, state, force_login=force_login
        )

    def finish_sign_in(self, ref: CredentialRef, code: SecretStr, state: str) -> Credential:
        """Check ``state``, trade the code for tokens, and store them before anything uses them."""
        connector = self._connector
        credential = self.get(ref)
        if not isinstance(state, str) or not self._vault.finish_sign_in(credential.id, state):
            raise InputError(
                "The sign-in answer does not belong to a sign-in started here; start it again.",
                errors=[{"path": "$.state", "code": "state", "message": "missing or mismatched"}],
            )
        origin = parse_server_url(credential.server_url, allow_sandbox=connector.allow_sandbox)
        service = TokenService(origin, transport=connector.transport, clock=connector.clock)
        try:
            grant = service.exchange_code(credential, code)
        finally:
            service.close()
        credential = store_grant(self._vault, credential, grant)
        if credential.status == "needs_reauth":
            credential = self._vault.set_status(credential.id, "active", reason=None)
        with connector.client(credential) as client:
            load_divisions(client, self._vault)
        credential = self._vault.get(credential.id)
        audit("credential.authorized", credential)
        return credential


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
