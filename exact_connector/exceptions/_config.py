"""config: fix the connector's configuration (the :class:`ConfigError` family)."""

from __future__ import annotations

from exact_connector.exceptions._base import ConfigError, FieldError


class ManifestError(ConfigError):
    """Raised when connector.yaml or a schema is invalid; carries every error with its path."""

    code = "manifest_invalid"
    hint = "Fix each listed problem in the manifest or schema file named by its path."

    def __init__(self, message: str, *, errors: list[FieldError]) -> None:
        super().__init__(message, details={"errors": errors})
        self.errors = errors


class InvalidServerUrl(ConfigError):
    """Raised when a Server URL is not one of Exact Online's regional hosts."""

    code = "invalid_server_url"
    hint = "Choose one of the listed Exact Online regions, e.g. https://start.exactonline.nl."


class HostNotAllowed(ConfigError):
    """Raised before sending a request to a host outside the allow-list."""

    code = "host_not_allowed"
    hint = "Requests only go to the credential's Exact Online region; check the Server URL."


class RedirectNotAllowed(HostNotAllowed):
    """Raised when Exact (or anything posing as it) answers with a redirect."""

    code = "redirect_not_allowed"
    hint = "Redirects are never followed; check the Server URL and whether the token is valid."


class PaginationLinkRejected(HostNotAllowed):
    """Raised when a ``__next`` link points outside the endpoint being listed."""

    code = "pagination_link_rejected"
    hint = "The server sent a paging link to another host or path; the list was stopped."


class InvalidClient(ConfigError):
    """Raised when Exact rejects the client id or client secret (``invalid_client``)."""

    code = "invalid_client"
    hint = "Check the Client ID and Client Secret against the app in Exact's App Center."


class ReauthRequired(ConfigError):
    """Raised when the refresh token is dead; only a new sign-in (consent) can fix it."""

    code = "reauth_required"
    hint = "Sign in again to the credential (re-authorize it; Reconnect in an engine)."


class CredentialNotFound(ConfigError):
    """Raised when no credential with that id or name exists in this workspace."""

    code = "credential_not_found"
    hint = "Check the name or id against the workspace's credentials."


class CredentialExists(ConfigError):
    """Raised when a connector name is already taken in the workspace."""

    code = "credential_exists"
    hint = "Connector names are unique per workspace; choose another name or remove the old one."


class CredentialPending(CredentialExists):
    """Raised when the name belongs to a credential whose sign-in never finished."""

    code = "credential_pending"
    hint = "Finish that credential's sign-in (re-authorize it) instead of adding it again."


class CredentialNotActive(ConfigError):
    """Raised when an action runs on a credential that has not finished sign-in and activation."""

    code = "credential_not_active"
    hint = "Finish the sign-in and Test Connect, then activate the credential (Connect & Create)."


class AccessDenied(ConfigError):
    """Raised when Exact answers 403: scope, licence, blocked user or division not granted."""

    code = "access_denied"
    hint = "Check the app's scopes and the divisions granted at consent; re-authorize if needed."


class VaultKeyError(ConfigError):
    """Base for problems with the vault's master key."""

    code = "vault_key_error"
    hint = "Set EXACT_CONNECTOR_VAULT_KEY, or create the vault's key file first."


class VaultLocked(VaultKeyError):
    """Raised when no master key is available: the vault stays closed (never plaintext)."""

    code = "vault_locked"


class VaultKeyMismatch(VaultKeyError):
    """Raised at open when the key does not decrypt the vault's key-check record."""

    code = "vault_key_mismatch"
    hint = "This is not the key this vault was created with; use the original key."


class VaultKeyUnknown(VaultKeyError):
    """Raised when a blob names a key id this process does not hold."""

    code = "vault_key_unknown"
    hint = "Distribute the new key to every process before rotating (see vault rotate-key)."


class VaultPermissions(ConfigError):
    """Raised when the vault, its directory or the key file is unsafe or unreadable."""

    code = "vault_permissions"
    hint = "The vault directory must be 0700 and its files 0600, owned by this user, no symlinks."
