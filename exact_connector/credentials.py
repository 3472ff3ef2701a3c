"""``connector.credentials``: the credential form's data in and out of the vault.

Adding a credential, the browser sign-in that gives it tokens, finding it by id or name, and the
check that it may run an action on a division. Every change is written to the audit log.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from exact_connector import forms
from exact_connector.audit import audit
from exact_connector.auth import TokenPolicy, store_grant
from exact_connector.exceptions import (
    ConcurrentUpdate,
    ConfigError,
    CredentialExists,
    CredentialNotActive,
    CredentialNotFound,
    CredentialPending,
    DivisionNotAllowed,
    InputError,
    InvalidServerUrl,
    TransientError,
)
from exact_connector.oauth import TokenService, authorization_url
from exact_connector.odata import canonical_guid
from exact_connector.testconnect import load_divisions
from exact_connector.urls import Origin, parse_server_url
from exact_connector.validation import unsendable
from exact_connector.vault import Credential
from exact_connector.vault.rows import UNREADABLE

if TYPE_CHECKING:
    from exact_connector.oauth import Grant
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
        # Stored and sent as Exact writes it (the form takes braces, upper case, urn:uuid:).
        form_data = {
            **form_data,
            "client_id": canonical_guid(form_data["client_id"], "$.client_id"),
        }
        refresh = form_data.get("refresh_token")
        try:
            credential = self._begin(form_data, origin, refresh)
        except CredentialExists as error:
            raise self._taken(error, form_data, origin) from None
        audit("credential.begin", credential)
        return credential

    def _taken(
        self, error: CredentialExists, form_data: dict[str, Any], origin: Origin
    ) -> CredentialExists:
        """Why the form's connector name is taken, and what to do: a ``pending`` credential of
        that name is finished, not added again, unless the form changes what its sign-in uses."""
        name = form_data["connector_name"]
        try:
            existing = self._vault.get(name)  # that record only: others need not be readable
        except UNREADABLE:
            return CredentialExists(
                f"A credential named {name!r} exists, but its record no longer decrypts.",
                details=error.details,
                hint="Remove that credential and add it again.",
            )
        except CredentialNotFound:
            return error  # removed meanwhile: adding it again is up to the caller
        if existing.status != "pending":
            return error
        changed = _changed_settings(existing, form_data, origin)
        if changed:
            return CredentialPending(
                f"A credential named {name!r} is waiting to be finished, with other settings "
                f"({', '.join(changed)}) than this form's.",
                details={**error.details, "changed": changed},
                hint=(
                    "Finishing it would use its stored settings: remove that credential and add "
                    "it again with these."
                ),
            )
        if existing.refresh_token is None:
            return CredentialPending(
                f"A credential named {name!r} was added, but its sign-in never finished.",
                details=error.details,
            )
        return CredentialPending(
            f"A credential named {name!r} was added, but it was never activated.",
            details=error.details,
            hint="Run Test Connect on that credential and activate it instead of adding it again.",
        )

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
        return self._vault.get(_reference(ref))

    def activate(self, ref: CredentialRef) -> Credential:
        """Mark a credential usable ("Connect & Create")."""
        credential = self._vault.activate(self.get(ref).id)
        audit("credential.activate", credential)
        return credential

    def list(self) -> list[Credential]:
        """Every credential of this workspace that can be read.

        One whose record no longer decrypts is left out rather than hiding every other one (as
        ``credentials list`` does); ``vault.verify()`` names it, and :meth:`remove` deletes it.
        """
        return self._vault.list(readable_only=True)

    def remove(self, ref: CredentialRef) -> None:
        """Delete a credential and its secrets, even one whose record no longer decrypts."""
        key = ref.id if isinstance(ref, Credential) else _reference(ref)
        credential_id, name = self._vault.remove(key)
        # Only what the audit line names: the removed record is not decrypted.
        removed = Credential.model_construct(
            id=credential_id, workspace=self._vault.workspace, connector_name=name
        )
        audit("credential.remove", removed)

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
        taken = self._vault.take_sign_in(credential.id, state)  # None for a non-text state
        if taken is None:
            raise InputError(
                "The sign-in answer does not belong to a sign-in started here; start it again.",
                errors=[{"path": "$.state", "code": "state", "message": "missing or mismatched"}],
            )
        origin = parse_server_url(credential.server_url, allow_sandbox=connector.allow_sandbox)
        service = TokenService(origin, transport=connector.transport, clock=connector.clock)
        try:
            grant = service.exchange_code(credential, code)
        except TransientError as error:
            # Exact's token endpoint did not answer (unreachable, 5xx, 429): the code may still
            # be good, so the same answer may be tried again while the sign-in lasts, unless a
            # newer sign-in started (or finished) meanwhile: its tokens must not be signed over.
            reopened = self._vault.reopen_sign_in(credential.id, state, taken)
            error.hint = _RETRY_SIGN_IN if reopened else _RESTART_SIGN_IN  # type: ignore[misc]
            raise
        finally:
            service.close()
        with self._vault.lock(credential.id, timeout=TokenPolicy.declared().lock_timeout):
            credential = self._store_sign_in(credential.id, grant)
        with connector.client(credential) as client:
            load_divisions(client, self._vault)
        credential = self._vault.get(credential.id)
        audit("credential.authorized", credential)
        return credential

    def _store_sign_in(self, credential_id: str, grant: Grant) -> Credential:
        """Store a sign-in's tokens on the record as it is now, under its lock (no refresh runs).

        The code was spent and Exact issued this pair: it supersedes whatever the record holds, so
        a change made meanwhile (a refresh that finished first, divisions, a status) is read again
        and the pair stored on it, never thrown away. A connection marked ``needs_reauth`` (only
        an active one is) is active again; a ``pending`` one stays so until it is activated.
        """
        for _ in range(5):
            latest = self._vault.get(credential_id, latest=True)
            stored = latest.refresh_token
            try:
                if (
                    stored is None
                    or stored.get_secret_value() != grant.refresh_token.get_secret_value()
                ):
                    latest = store_grant(self._vault, latest, grant)
                if latest.status == "needs_reauth":
                    latest = self._vault.set_status(
                        latest.id, "active", reason=None, expected_version=latest.version
                    )
            except ConcurrentUpdate:
                continue
            return latest
        raise ConcurrentUpdate(
            "The credential kept changing while the sign-in's tokens were being saved.",
            details={"credential_id": credential_id},
        )


_RETRY_SIGN_IN = (
    "Try the same sign-in answer again in a moment (reload the page Exact sent you back to); if "
    "Exact then refuses the code, start the sign-in again."
)
_RESTART_SIGN_IN = (
    "In a moment, start the sign-in again: this answer can no longer be used (another sign-in "
    "was started meanwhile, or its time ran out)."
)


def _reference(ref: object) -> str:
    """A credential's id or connector name as given, if it can be one."""
    if not isinstance(ref, str) or not ref or unsendable(ref):
        raise InputError.at(
            "$.credential", "type", "name a credential by its id or connector name, as text"
        )
    return ref


#: The form fields a pending credential's sign-in (or Test Connect) uses as stored.
_SIGN_IN_SETTINGS = ("auth_type", "client_id", "client_secret", "redirect_uri", "refresh_token")


def _changed_settings(existing: Credential, form_data: dict[str, Any], origin: Origin) -> list[str]:
    """The settings the form gives otherwise than ``existing`` holds them (names, never values)."""
    changed = ["server_url"] if existing.server_url != origin.url else []
    for name in _SIGN_IN_SETTINGS:
        given, stored = form_data.get(name) or None, getattr(existing, name)
        if isinstance(stored, SecretStr):
            stored = stored.get_secret_value()
        if given is not None and not hmac.compare_digest(_utf8(given), _utf8(stored or "")):
            changed.append(name)
    return changed


def _utf8(value: object) -> bytes:
    return str(value).encode("utf-8", "surrogatepass")


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
