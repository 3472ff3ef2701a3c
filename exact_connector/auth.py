"""OAuth2 with Exact Online: the refresh policy, and the auth flow that applies it.

Exact's refresh tokens work once, and a new access token may not be requested until 570 s after
the last one was issued. So a refresh happens only inside a short window before expiry (or after a
401 proved the token dead), exactly once per credential across threads and processes: take the
vault lock, re-read the record, refresh only if still needed, persist the new pair with a
compare-and-swap, and only then use the new access token.

A rotated refresh token exists nowhere but in Exact's answer, so a vault that cannot store it (disk
full, locked, read-only) must not lose it (RELIABILITY C3): the pair is kept in memory and used,
the persist is retried with backoff on later calls, and no token call is made while it is unsaved.
It is kept for the vault, not for the client that refreshed: a step's client ends with its step,
and the next step's must use (and save) the pair, not send the spent refresh token from the row.

:class:`ExactAuth` is the ``httpx.Auth`` flow the client uses; the client itself never mentions
tokens.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Generator, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING

import httpx
from pydantic import SecretStr

from exact_connector import redaction
from exact_connector.clock import Clock, SystemClock
from exact_connector.exceptions import (
    ConcurrentUpdate,
    CredentialNotActive,
    ReauthRequired,
    TokenResponseInvalid,
    TransientError,
    VaultBusy,
    VaultIOError,
    VaultPermissions,
)
from exact_connector.manifest import load_manifest
from exact_connector.oauth import TOKEN_TEXT, Grant, TokenService, TooEarly

if TYPE_CHECKING:
    from exact_connector.vault import Credential, Vault

__all__ = ["DEADLINE", "ExactAuth", "TokenPolicy", "ensure_usable", "store_grant"]

#: The request extension that carries the step's deadline (on the client's clock) to the flow.
DEADLINE = "exact_connector.deadline"

#: How long to leave the token endpoint alone after a refusal or an outage, when it gave no hint.
_PAUSE = 5.0
#: Vault failures that must not cost a rotated refresh token; the first and last persist waits.
_STORAGE_ERRORS = (VaultIOError, VaultBusy, VaultPermissions)
_PERSIST_WAITS = (1.0, 60.0)


@dataclass(slots=True)
class _Unsaved:
    """A refreshed pair the vault refused to store: the record it replaces, the grant, and when
    to try storing it again."""

    replaces: Credential
    grant: Grant
    retry_at: float
    wait: float = _PERSIST_WAITS[0]

    def credential(self) -> Credential:
        """The record as it will be once stored: the new pair in place of the spent one."""
        grant = self.grant
        return self.replaces.model_copy(
            update={
                "access_token": grant.access_token,
                "refresh_token": grant.refresh_token,
                "access_token_issued_at": grant.issued_at,
                "access_token_expires_at": grant.expires_at,
                "refresh_token_issued_at": grant.issued_at,
            }
        )


#: Unsaved pairs by the store a vault reads (its file or database schema: every client of every
#: Vault object on it in this process sees them) and credential id.
_UNSAVED: dict[Hashable, dict[str, _Unsaved]] = {}
_UNSAVED_LOCK = threading.Lock()


def _after_fork() -> None:
    # A thread of the parent holding the lock at fork() would hold it in the child for good.
    global _UNSAVED_LOCK
    _UNSAVED_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


#: What brings back a connection whose refresh token Exact refused, where signing in again (the
#: class hint of ReauthRequired) cannot: a pasted refresh token has no browser sign-in.
_REAUTH_HINTS = {
    "oauth2_refresh_token": (
        "A pasted refresh token cannot be renewed by signing in: remove the credential and add "
        "it again with a new refresh token."
    ),
}
_REAUTH_REMEDIES = {"oauth2_refresh_token": "it needs a new refresh token"}
_SIGN_IN_NOT_FINISHED = (
    "Finish the credential's sign-in first (open the sign-in address and consent; re-authorize "
    "it to start again), then run Test Connect."
)


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    """Exact's token rules in seconds, as the manifest declares them (see :meth:`declared`)."""

    access_ttl: float
    min_refresh_age: float
    refresh_window: float
    refresh_idle_ttl: float
    refresh_warning: float
    lock_timeout: float = 30.0

    @classmethod
    @cache
    def declared(cls) -> TokenPolicy:
        """The token policy of ``connector.yaml`` (read once: the declarations do not change)."""
        policy = load_manifest().token_policy
        return cls(
            access_ttl=policy.access_ttl,
            min_refresh_age=policy.min_refresh_age,
            refresh_window=policy.refresh_window,
            refresh_idle_ttl=policy.refresh_idle_ttl_days * 86400.0,
            refresh_warning=policy.refresh_warning_days * 86400.0,
        )

    def needs_refresh(self, credential: Credential, now: float) -> bool:
        """Refresh only when allowed (age >= 570 s) and needed (<= 30 s left), or with no token."""
        if credential.access_token is None or credential.access_token_issued_at is None:
            return True
        expires_at = credential.access_token_expires_at or (
            credential.access_token_issued_at + self.access_ttl
        )
        old_enough = now >= credential.access_token_issued_at + self.min_refresh_age
        return old_enough and expires_at - now <= self.refresh_window

    def may_refresh(self, credential: Credential, now: float) -> bool:
        """Whether Exact would accept a refresh now (used after a 401)."""
        issued = credential.access_token_issued_at
        return issued is None or now >= issued + self.min_refresh_age


class ExactAuth(httpx.Auth):
    """Bearer auth for one credential, refreshing single-flight and persisting before use.

    When Exact refuses a refresh as too early (our clock runs ahead) or its token endpoint is down
    while the current access token still works, the refresh is put off for a while (``hold``):
    calls keep using the current token instead of asking the token endpoint on every request.
    """

    def __init__(
        self,
        vault: Vault,
        credential_id: str,
        tokens: TokenService,
        *,
        policy: TokenPolicy | None = None,
        clock: Clock | None = None,
        read: Credential | None = None,
        check: Callable[[httpx.Request], None] | None = None,
    ) -> None:
        """``read``: the record as the step just read it from the vault (saves reading it again).
        ``check``: called with every request the flow sends, the first and a resend after a 401
        alike, before it is sent (it raises to stop it)."""
        self._vault = vault
        self._credential_id = credential_id
        self._tokens = tokens
        self.policy = policy or TokenPolicy.declared()
        self._clock = clock or SystemClock()
        self._cached: Credential | None = read if read and read.id == credential_id else None
        self._hold_until = 0.0
        self.refreshed = 0
        self._check = check

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        deadline = request.extensions.get(DEADLINE)
        credential = self.current(deadline=deadline)
        request.headers["Authorization"] = _bearer(credential)
        if self._check is not None:
            self._check(request)
        response = yield request
        if response.status_code != 401:
            return
        # The token was refused. Another worker may have refreshed (Exact revokes the previous
        # access token); otherwise refresh if Exact allows it. At most one extra request.
        latest = self._cache(self._stored())
        if not _replaced(latest, credential):
            if not self.policy.may_refresh(latest, self._clock.now()):
                return
            latest = self._refresh(force=True, seen=credential, deadline=deadline)
            if not _replaced(latest, credential):
                return  # Exact would not refresh yet: sending the same token again is pointless
        request.headers["Authorization"] = _bearer(latest)
        if self._check is not None:
            self._check(request)
        yield request

    def current(self, *, deadline: float | None = None) -> Credential:
        """The credential with an access token that is valid now, refreshing if the policy says so.

        ``deadline`` (the step's, on this object's clock) bounds the wait for another worker's
        refresh lock, as well as :attr:`TokenPolicy.lock_timeout` does.

        The record is read from the vault once per client and again whenever a refresh is due:
        every process applies the same policy to the same clock, so none can hold a token that
        another has replaced without also reaching the refresh path (which re-reads under lock).
        """
        unsaved = self._save_unsaved(force=False)
        credential = unsaved or self._cached or self._cache(self._vault.get(self._credential_id))
        ensure_usable(credential)
        now = self._clock.now()
        if not self.policy.needs_refresh(credential, now):
            return credential
        if now < self._hold_until:
            return self._held(credential, now)
        return self._refresh(force=False, seen=credential, deadline=deadline)

    def refresh_allowed_at(self) -> float | None:
        """When Exact will accept a refresh of the current token (None: now, or unknown)."""
        credential = self._cached
        if credential is None or credential.access_token_issued_at is None:
            return None
        allowed = credential.access_token_issued_at + self.policy.min_refresh_age
        return allowed if allowed > self._clock.now() else None

    def _held(self, credential: Credential, now: float) -> Credential:
        """During a hold: the current token while it lasts, else whatever the vault has now."""
        if _valid_at(credential, now):
            return credential
        latest = self._cache(self._stored())
        ensure_usable(latest)
        if _valid_at(latest, now):
            return latest
        raise TransientError(
            "The access token expired and Exact Online's token endpoint is not answering yet.",
            details={"credential_id": credential.id},
            retry_at=datetime.fromtimestamp(self._hold_until, UTC),
        )

    def _hold(self, credential: Credential, now: float, wait: float | None) -> None:
        """Leave the token endpoint alone for ``wait`` (or a pause), but retry before expiry."""
        wait = _PAUSE if wait is None else max(1.0, wait)
        if _valid_at(credential, now):
            left = (credential.access_token_expires_at or now) - now
            wait = min(wait, max(1.0, left / 2))
        self._hold_until = now + wait

    def _cache(self, credential: Credential) -> Credential:
        self._cached = credential
        return credential

    def _stored(self) -> Credential:
        """The vault's record; while a refreshed pair is unsaved, the pair held in memory."""
        unsaved = self._save_unsaved(force=True)
        if unsaved is not None:
            return unsaved
        return self._vault.get(self._credential_id, latest=True)  # after a 401: the row

    def _save_unsaved(self, *, force: bool) -> Credential | None:
        """Store a refreshed pair the vault refused before (by this client or another of the
        vault's), when its backoff allows or ``force``; the record with that pair while it is
        still unsaved, None once nothing is."""
        if not _UNSAVED:  # the usual case, on every call: nothing held anywhere
            return None
        with _UNSAVED_LOCK:
            unsaved = _UNSAVED.get(self._vault.place, {}).get(self._credential_id)
        if unsaved is None:
            return None
        now = self._clock.now()
        if not force and now < unsaved.retry_at:
            return self._cache(unsaved.credential())
        try:
            saved = self._store(unsaved.replaces, unsaved.grant)
        except _STORAGE_ERRORS:
            unsaved.wait = min(unsaved.wait * 2, _PERSIST_WAITS[1])
            unsaved.retry_at = now + unsaved.wait
            return self._cache(unsaved.credential())
        with _UNSAVED_LOCK:
            held = _UNSAVED.get(self._vault.place, {})
            if held.get(self._credential_id) is unsaved:
                del held[self._credential_id]
                if not held:
                    del _UNSAVED[self._vault.place]
        self._cache(saved)
        return None

    def _refresh(self, *, force: bool, seen: Credential, deadline: float | None) -> Credential:
        """Under the credential's lock: re-read, then refresh only if nobody else just did.

        The wait for the lock ends at the step's deadline: a worker holding it finishes the
        refresh for everyone, and this step fails as retryable instead of overrunning. The
        token request itself, once sent, is not cut short by the deadline: an answer given up
        on may carry the only copy of a rotated refresh token.
        """
        unsaved = self._save_unsaved(force=True)
        if unsaved is not None:
            return self._instead_of_refreshing(unsaved)
        lock_wait = self.policy.lock_timeout
        if deadline is not None:
            lock_wait = max(0.0, min(lock_wait, deadline - self._clock.now()))
        with self._vault.lock(self._credential_id, timeout=lock_wait):
            # Another thread may have refreshed, and failed to store, while we waited.
            unsaved = self._save_unsaved(force=True)
            if unsaved is not None:
                return self._instead_of_refreshing(unsaved)
            # The row itself: a refresh token read from a cache could be one already spent.
            credential = self._cache(self._vault.get(self._credential_id, latest=True))
            ensure_usable(credential)
            now = self._clock.now()
            replaced = _replaced(credential, seen)
            if (force and replaced) or (
                not force and not self.policy.needs_refresh(credential, now)
            ):
                return credential  # someone else refreshed while we waited for the lock
            try:
                grant = self._tokens.refresh(credential)
            except TooEarly:
                if credential.access_token is None:
                    # A pasted refresh token whose grant is younger than 570 s: nothing to use yet.
                    raise TransientError(
                        "Exact Online refuses a token refresh sooner than "
                        f"{self.policy.min_refresh_age:.0f} s after the previous one; "
                        "this refresh token is that new.",
                        details={"credential_id": credential.id},
                        retry_at=datetime.fromtimestamp(now + self.policy.min_refresh_age, UTC),
                        hint="Run the step again after retry_at.",
                    ) from None
                self._hold(credential, now, None)
                return credential  # our clock runs ahead of Exact's: keep the current token
            except ReauthRequired as error:
                return self._refused(credential, error)
            except TransientError as error:
                wait = error.retry_at.timestamp() - now if error.retry_at else None
                self._hold(credential, now, wait)
                if not force and _valid_at(credential, now):
                    return credential  # the token endpoint is down; the current token still works
                raise
            self.refreshed += 1
            self._hold_until = 0.0
            return self._cache(self._persist(credential, grant))

    def _instead_of_refreshing(self, unsaved: Credential) -> Credential:
        """The refresh token in the vault is spent and the new pair is not saved yet: no token
        call, the pair held in memory while its access token lasts."""
        if _valid_at(unsaved, self._clock.now()):
            return unsaved
        raise VaultIOError(
            "New tokens from Exact Online could not be saved in the vault yet (disk full, "
            "database locked or read-only), and the access token in memory has expired; "
            "make the vault writable and run the step again.",
            details={"credential_id": self._credential_id},
        )

    def _refused(self, credential: Credential, error: ReauthRequired) -> Credential:
        """Exact refused the refresh token ``credential`` holds: mark the connection
        ``needs_reauth`` (compare-and-swap on the version read), and raise.

        Only an active connection is marked: one never activated stays ``pending`` (Test Connect
        and activation still lie ahead of it, and a sign-in must not skip them). If the record's
        refresh token changed meanwhile (a sign-in, or a writer that took no lock, stored new
        tokens), the refusal is about a token nobody holds any more: the new record is used.
        """
        refusal = ReauthRequired(
            error.message, details=error.details, hint=_REAUTH_HINTS.get(credential.auth_type)
        )
        for _ in range(5):
            if credential.status != "active":
                break
            try:
                self._cache(
                    self._vault.set_status(
                        credential.id,
                        "needs_reauth",
                        reason=error.message,
                        expected_version=credential.version,
                    )
                )
                break
            except ConcurrentUpdate:
                latest = self._cache(self._vault.get(credential.id, latest=True))
                if _secret(latest.refresh_token) != _secret(credential.refresh_token):
                    ensure_usable(latest)
                    self._hold_until = 0.0
                    return latest
                credential = latest  # another change (divisions, status): try on it
        raise refusal from None

    def _persist(self, credential: Credential, grant: Grant) -> Credential:
        """Write the new pair before anyone uses it; if the vault cannot, keep it in memory."""
        try:
            return self._store(credential, grant)
        except _STORAGE_ERRORS:
            unsaved = _Unsaved(credential, grant, self._clock.now() + _PERSIST_WAITS[0])
            with _UNSAVED_LOCK:
                _UNSAVED.setdefault(self._vault.place, {})[self._credential_id] = unsaved
            return unsaved.credential()

    def _store(self, credential: Credential, grant: Grant) -> Credential:
        """Compare-and-swap the new pair in; retry on a race.

        Only a writer that does not take the refresh lock can race us: a status or division change
        or a key rotation (retry on the new version), or a new sign-in that stored other tokens
        (keep those: they are newer than the grant we hold).
        """
        for _ in range(5):
            try:
                return store_grant(self._vault, credential, grant)
            except ConcurrentUpdate:
                latest = self._vault.get(credential.id, latest=True)
                if _secret(latest.refresh_token) != _secret(credential.refresh_token):
                    return latest
                credential = latest
        raise ConcurrentUpdate(
            "The credential kept changing while new tokens were being saved.",
            details={"credential_id": credential.id},
        )


def store_grant(vault: Vault, credential: Credential, grant: Grant) -> Credential:
    """Persist a new token pair, compare-and-swap on the version ``credential`` was read at."""
    return vault.update_tokens(
        credential.id,
        expected_version=credential.version,
        access_token=grant.access_token,
        refresh_token=grant.refresh_token,
        issued_at=grant.issued_at,
        expires_at=grant.expires_at,
        refresh_issued_at=grant.issued_at,
    )


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _replaced(latest: Credential, seen: Credential) -> bool:
    """Whether the vault now holds another access token than the one ``seen`` carried."""
    return latest.access_token is not None and _secret(latest.access_token) != _secret(
        seen.access_token
    )


def _valid_at(credential: Credential, now: float) -> bool:
    expires_at = credential.access_token_expires_at
    return credential.access_token is not None and expires_at is not None and now < expires_at


def ensure_usable(credential: Credential) -> None:
    """Nothing, if the credential may ask for tokens; else why not, and what brings it back.

    A credential whose sign-in has not finished holds no refresh token: that is not a dead grant,
    and is reported without marking anything.
    """
    details = {"credential_id": credential.id, "status": credential.status}
    if credential.status in ("needs_reauth", "disabled"):
        remedy = _REAUTH_REMEDIES.get(credential.auth_type, "sign in again")
        raise ReauthRequired(
            f"This connection is {credential.status.replace('_', ' ')}; {remedy}.",
            details=details,
            hint=_REAUTH_HINTS.get(credential.auth_type),
        )
    if credential.refresh_token is None:
        raise CredentialNotActive(
            "This credential's sign-in has not finished: it holds no tokens yet.",
            details=details,
            hint=_SIGN_IN_NOT_FINISHED,
        )


def _bearer(credential: Credential) -> str:
    """The Authorization header value; a stored token that could break the header is refused."""
    token = _secret(credential.access_token)
    if token is None or not TOKEN_TEXT.fullmatch(token):
        raise TokenResponseInvalid(
            "The stored access token is missing or has characters a token cannot have; "
            "it was not sent.",
            details={"credential_id": credential.id},
        )
    return f"Bearer {redaction.remember(token)}"
