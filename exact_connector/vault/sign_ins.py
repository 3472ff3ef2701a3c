"""Pending sign-ins: the OAuth ``state`` a credential waits for, which any process may finish.

The state is kept only as a keyed digest (the vault's fingerprint key), one per credential:
starting another sign-in replaces it, and finishing uses it up, as does finding it expired. A
finish whose code exchange then fails before Exact could have answered it puts the state back
(:func:`reopen`), so the same answer can be tried again until it expires.
"""

from __future__ import annotations

import hmac

from exact_connector.exceptions import InputError
from exact_connector.vault import sealing
from exact_connector.vault.keys import DataKeys
from exact_connector.vault.rows import row_of

__all__ = ["begin", "finish", "reopen", "take"]


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


def take(keys: DataKeys, workspace: str, key: str, state: str) -> float | None:
    """When the sign-in ``state`` names would have expired, if it is the credential's pending,
    unexpired one (it is used up); ``None`` if it is not."""
    if not _is_state(state):
        return None  # no sign-in was ever started with it (begin refuses it)
    digest = sealing.keyed_digest(keys.fingerprint_key, state)
    with keys.write("sign-in") as session:
        row = row_of(session, workspace, key)
        pending = session.sign_in(row["id"])
        if pending is None:
            return None
        expires_at = float(pending["expires_at"])
        expired = expires_at <= keys.clock.now()
        matches = hmac.compare_digest(pending["state_digest"], digest)
        if matches or expired:
            session.delete_sign_in(row["id"])
        return expires_at if matches and not expired else None


def reopen(keys: DataKeys, workspace: str, key: str, state: str, expires_at: float) -> bool:
    """Put a taken sign-in back, until the time it had: whether it was (not if it has expired
    meanwhile, or another sign-in of the credential was started, which stays)."""
    if not _is_state(state) or expires_at <= keys.clock.now():
        return False
    digest = sealing.keyed_digest(keys.fingerprint_key, state)
    with keys.write("sign-in") as session:
        row = row_of(session, workspace, key)
        if session.sign_in(row["id"]) is not None:
            return False
        session.put_sign_in(row["id"], digest, expires_at)
        return True


def _is_state(state: object) -> bool:
    if not isinstance(state, str) or not state:
        return False
    try:
        state.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True
