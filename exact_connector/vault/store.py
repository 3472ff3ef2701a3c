"""The store seam: what a vault backend must do, and nothing about how it does it.

:class:`~exact_connector.vault.Vault` never touches SQL or a database driver. It speaks to a
:class:`VaultStore` (open, transactions, a refresh lease, close) and, inside a transaction, to a
:class:`StoreSession` (rows in, rows out). :mod:`exact_connector.vault.sqlite` and
:mod:`exact_connector.vault.postgres` are the backends (sharing their SQL, :mod:`~.sql`); another
one is a new module implementing these two protocols, not a rewrite.

Rows are plain mappings of column name to value. The columns of a credential row are the fields of
:class:`~exact_connector.vault.records.Credential`, except that ``allowed_divisions`` is a JSON
text and each secret field (``client_secret``, ``refresh_token``, ``access_token``) is an opaque
sealed blob (``bytes``) or None. A backend stores and returns blobs byte for byte and never
interprets them: encryption happens above the seam, so a backend never sees a secret.

Everything a backend raises is an :class:`~exact_connector.exceptions.ExactConnectorError` of the
vault family (``VaultBusy``, ``VaultIOError``, ``VaultPermissions``, ``VaultCorrupt``), built by
:func:`backend_error`: a driver's own exception or message must never cross the seam.

This module also holds the test-only crash hook every backend calls at its commit points.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

from exact_connector.exceptions import ExactConnectorError, VaultCorrupt

__all__ = [
    "CRASH_ENV",
    "ErrorKind",
    "Initializer",
    "Row",
    "StoreSession",
    "VaultStore",
    "backend_error",
    "corrupt_hint",
    "crash_point",
]

#: One stored row: column name -> value (``str``, ``int``, ``float``, ``bytes`` or None).
Row = Mapping[str, Any]

CRASH_ENV = "EXACT_CONNECTOR_CRASH_AT"
_CRASH_AT = os.environ.get(CRASH_ENV) or None
_crash_hits: dict[str, int] = {}


def corrupt_hint(where: str) -> str:
    """What to do about a damaged store: the one thing never to do is start afresh."""
    return (
        f"Restore {where} from a backup; do not delete it (an empty vault loses every credential)."
    )


#: A vault error class that a backend translates a driver failure into.
ErrorKind = type[ExactConnectorError]


def backend_error(
    kind: ErrorKind, where: str, what: str, details: Mapping[str, Any]
) -> ExactConnectorError:
    """The vault's error for a driver failure (``vault database <where> <what>``), never with the
    driver's own text; a damaged store gets the hint never to start afresh."""
    hint = corrupt_hint(where) if issubclass(kind, VaultCorrupt) else None
    return kind(f"vault database {where} {what}", details=dict(details), hint=hint)


def crash_point(name: str) -> None:
    """Test-only: exit abruptly at ``name`` when ``EXACT_CONNECTOR_CRASH_AT`` asks for it.

    ``EXACT_CONNECTOR_CRASH_AT=<point>[:n]`` exits with status 137 the n-th time ``<point>`` is
    reached. Points: ``<op>.before_commit`` and ``<op>.after_commit`` for every ``op`` given to
    :meth:`VaultStore.write` (begin, activate, tokens, status, divisions, remove, sign-in,
    rotate_start, rotate once per record, rotate_end, retire, rewrap) and
    ``keyfile.before_replace``.
    """
    if _CRASH_AT is None:
        return
    point, _, nth = _CRASH_AT.partition(":")
    if point == name:
        _crash_hits[name] = _crash_hits.get(name, 0) + 1
        if _crash_hits[name] >= int(nth or 1):
            os._exit(137)


class StoreSession(Protocol):
    """One transaction's view of the store: every call sees the writes made before it in it.

    Reads return new mappings the caller may keep; lists are in the order each method states.
    Nothing is committed until the transaction ends without an exception.
    """

    # --- credentials -----------------------------------------------------------------------

    def credential(self, credential_id: str, workspace: str | None = None) -> Row | None:
        """The credential row with this id (in ``workspace``, if given), or None."""

    def credential_by_name(self, workspace: str, connector_name: str) -> Row | None:
        """The credential row named ``connector_name`` in ``workspace``, or None."""

    def credentials(self, workspace: str | None) -> list[Row]:
        """Every credential row of ``workspace`` by name; None: of every workspace, by
        workspace then name."""

    def credential_ids(self) -> list[str]:
        """The id of every credential in every workspace, oldest first."""

    def insert_credential(self, row: Row) -> None:
        """Add a new credential row; (workspace, connector_name) and id are unique."""

    def swap_credential(self, row: Row, expected_version: int) -> bool:
        """Compare-and-swap: replace the row with ``row["id"]`` only if its stored ``version`` is
        ``expected_version``; False (and nothing written) if it is not, or the row is gone."""

    def reseal_credential(self, credential_id: str, blobs: Mapping[str, bytes | None]) -> None:
        """Replace the secret blobs of a credential (key rotation); its version is unchanged."""

    def delete_credential(self, credential_id: str) -> None:
        """Remove a credential and everything that refers to it (its pending sign-in, its trigger
        checkpoints)."""

    # --- pending sign-ins ---------------------------------------------------------------------

    def put_sign_in(self, credential_id: str, state_digest: str, expires_at: float) -> None:
        """Remember the credential's one pending sign-in, replacing any earlier one."""

    def sign_in(self, credential_id: str) -> Row | None:
        """The pending sign-in (``state_digest``, ``expires_at``) of a credential, or None; the
        digest may be the mark a finished sign-in left (:mod:`~exact_connector.vault.sign_ins`)."""

    def delete_sign_in(self, credential_id: str) -> None:
        """Forget the credential's pending sign-in (no error if there is none)."""

    # --- trigger checkpoints ------------------------------------------------------------------

    def checkpoint(self, key: str) -> Row | None:
        """The trigger checkpoint under ``key`` (``version``, ``state`` JSON text), or None."""

    def swap_checkpoint(
        self, key: str, credential_id: str, expected_version: int, state: str, at: float
    ) -> bool:
        """Compare-and-swap: store ``state`` as version ``expected_version + 1`` only if the stored
        version is ``expected_version`` (0: none stored yet, and the credential exists)."""

    def reset_checkpoint(self, key: str, at: float) -> bool:
        """Empty one checkpoint's state (``{}``, as before the first poll) as its next version;
        True if it held any. The version goes on, never back: an acknowledgement of a poll made
        before the reset then fails its compare-and-swap, where after a delete it could match
        the versions counted again from 1. Removing a credential removes its checkpoints."""

    # --- audit ------------------------------------------------------------------------------

    def append_audit(self, event: Row) -> None:
        """Append one audit event (``at, workspace, credential_id, event, detail``, the last a JSON
        text); the store numbers it (``seq``)."""

    def audit(self, workspace: str, credential_id: str | None) -> list[Row]:
        """Events of ``workspace`` and vault-wide ones (workspace None), of one credential if
        given, oldest first; columns ``seq, at, workspace, credential_id, event, detail``."""

    # --- header and keys ----------------------------------------------------------------------

    def header(self) -> dict[str, str]:
        """The vault's header: ``vault_id``, ``fingerprint_key``, ``primary_data_key``, ...
        (backend-private entries, such as a schema version, are left out)."""

    def set_header(self, name: str, value: str) -> None:
        """Add or replace one header entry."""

    def insert_data_key(self, kid: str, purpose: str, created_at: float) -> None:
        """Record a new data key (``purpose`` is ``data`` or ``fingerprint``)."""

    def data_key_purpose(self, kid: str) -> str | None:
        """The purpose of data key ``kid``, or None if the vault never issued it."""

    def data_keys(self) -> list[Row]:
        """Every data key (``kid``, ``purpose``), oldest first."""

    def delete_data_key(self, kid: str) -> None:
        """Remove data key ``kid`` and its wraps."""

    def put_wrap(self, data_kid: str, master_kid: str, blob: bytes) -> None:
        """Store, or replace, the wrap of data key ``data_kid`` under master key ``master_kid``."""

    def wraps(self, data_kid: str) -> dict[str, bytes]:
        """The wraps of one data key: master key id -> blob."""

    def master_kids(self) -> list[str]:
        """Every master key id that wraps at least one data key, sorted."""

    def delete_wraps(self, master_kid: str) -> None:
        """Remove every wrap made under master key ``master_kid``."""


#: Writes the header of a store that has just been created, inside its creating transaction.
Initializer = Callable[[StoreSession], None]


class VaultStore(Protocol):
    """An open vault store, shared by every thread of a process (and safe across processes).

    A backend is opened by its own constructor (its arguments differ: a directory, a DSN), which
    takes an :data:`Initializer` and calls it exactly once, in the very transaction that creates an
    empty store, so no process ever sees a store without a header.
    """

    #: Where the store lives, for messages and hints (a path; never a password).
    where: str

    def read(self) -> AbstractContextManager[StoreSession]:
        """A session for reads; what it returns is consistent per call, not across calls."""

    def write(self, op: str) -> AbstractContextManager[StoreSession]:
        """A serialized read-write transaction: all or nothing, exclusive across processes.

        A compare-and-swap inside it is exact. ``op`` names the operation for the crash hook:
        :func:`crash_point` is called with ``<op>.before_commit`` and ``<op>.after_commit``.
        """

    def version(self) -> Hashable | None:
        """A token that is equal between two calls only if nothing was committed in between (by
        any thread or process), or None when the backend cannot tell cheaply. Optional: a
        backend without it is read on every :meth:`Vault.get`."""

    def lease(self, credential_id: str, timeout: float) -> AbstractContextManager[None]:
        """Hold the credential's refresh lease across threads and processes.

        At most one holder at a time; a holder that dies loses the lease at once; waiting more
        than ``timeout`` seconds raises :class:`~exact_connector.exceptions.TokenRefreshInProgress`.
        """

    def close(self) -> None:
        """Release the store; later calls raise ``VaultIOError``."""
