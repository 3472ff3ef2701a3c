"""Pending sign-ins: the OAuth ``state`` a credential waits for, which any process may finish.

The state is kept only as a keyed digest (the vault's fingerprint key), one per credential:
starting another sign-in replaces it, and finishing uses it up, as does finding it expired. A
finish whose code exchange then fails before Exact could have answered it puts the state back
(:func:`reopen`), so the same answer can be tried again until it expires.

Finishing leaves a random *mark* in the state's place until the sign-in would have expired. Only
that mark lets the state be put back: a sign-in started (or started and finished) since, and
another worker's finish of a reopened state, each replace it. An empty slot would not do, for a
newer sign-in that finished leaves one too, and its tokens would be signed in over with the older
answer. A mark never matches a state's digest (64 hex digits), so it is never finished itself.
"""

from __future__ import annotations

import hmac
import secrets
from typing import NamedTuple

from exact_connector.exceptions import InputError
from exact_connector.vault import sealing
from exact_connector.vault.keys import DataKeys
from exact_connector.vault.rows import row_of

__all__ = ["TakenSignIn", "begin", "finish", "reopen", "take"]


class TakenSignIn(NamedTuple):
    """A sign-in :func:`take` used up: when it would have expired, and the mark it left."""

    expires_at: float
    mark: str


def begin(keys: DataKeys, workspace: str, key: str, state: str, ttl: float) -> None:
    """Remember ``state`` as the pending sign-in of credential ``key`` for ``ttl`` seconds.

    An empty state would turn the check off, and one that is not Unicode text has no digest:
    both are refused.
    """
    if not _is_state(state):
        raise InputError.at("$.state", "type", "a sign-in state must be non-empty Unicode text")
    digest = sealing.keyed_digest(keys.fingerprint_key, state)
    with keys.write("sign-in") as session:
        row = row_of(session, workspace, key)
        session.put_sign_in(row["id"], digest, keys.clock.now() + ttl)


def finish(keys: DataKeys, workspace: str, key: str, state: str) -> bool:
    """Whether ``state`` is the credential's pending, unexpired sign-in; it is used up if so."""
    return take(keys, workspace, key, state) is not None


def take(keys: DataKeys, workspace: str, key: str, state: str) -> TakenSignIn | None:
    """The sign-in ``state`` names, if it is the credential's pending, unexpired one (it is used
    up, a mark left in its place); ``None`` if it is not."""
    if not _is_state(state):
        return None  # no sign-in was ever started with it (begin refuses it)
    digest = sealing.keyed_digest(keys.fingerprint_key, state)
    with keys.write("sign-in") as session:
        row = row_of(session, workspace, key)
        pending = session.sign_in(row["id"])
        if pending is None:
            return None
        expires_at = float(pending["expires_at"])
        if expires_at <= keys.clock.now():
            session.delete_sign_in(row["id"])
            return None
        if not hmac.compare_digest(pending["state_digest"], digest):
            return None
        taken = TakenSignIn(expires_at, f"taken:{secrets.token_hex(16)}")
        session.put_sign_in(row["id"], taken.mark, expires_at)
        return taken


def reopen(keys: DataKeys, workspace: str, key: str, state: str, taken: TakenSignIn) -> bool:
    """Put a taken sign-in back, until the time it had, if its mark is still in its place:
    whether it was (not if it has expired meanwhile, or anything happened to the credential's
    sign-in since it was taken, which stays)."""
    if not _is_state(state) or taken.expires_at <= keys.clock.now():
        return False
    digest = sealing.keyed_digest(keys.fingerprint_key, state)
    with keys.write("sign-in") as session:
        row = row_of(session, workspace, key)
        pending = session.sign_in(row["id"])
        if pending is None or not hmac.compare_digest(pending["state_digest"], taken.mark):
            return False
        session.put_sign_in(row["id"], digest, taken.expires_at)
        return True


def _is_state(state: object) -> bool:
    if not isinstance(state, str) or not state:
        return False
    try:
        state.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True
