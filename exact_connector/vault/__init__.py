"""The vault: credentials encrypted at rest in one store, safe across threads and processes.

:class:`Vault` is the whole interface; the concepts behind it each have a module here:
:mod:`~.records` (the models and their rules), :mod:`~.rows` (a record as a sealed row, changed by
compare-and-swap), :mod:`~.sign_ins` (pending sign-ins), :mod:`~.store` (the store seam, and the
test-only crash hook), :mod:`~.sql` (the SQL both backends run), :mod:`~.sqlite` and
:mod:`~.postgres` (the backends), :mod:`~.keys` (data keys wrapped under master keys, and the
header), :mod:`~.keyfile`, :mod:`~.rotation` (key rotation), :mod:`~.locks` (refresh locks),
:mod:`~.sealing` (the crypto: master keys, the AES-256-GCM blob format), :mod:`~.checkpoints`
(trigger checkpoints) and :mod:`~._files` (the home directory and its private files). Each secret
field is its own sealed blob; the store below the seam only ever sees those blobs.

Everything fails closed: a missing, wrong or unknown key, a tampered or truncated blob and a corrupt
file each raise their own error naming the credential and field, never a value, and one broken
record leaves every other one readable. Files are private or refused: a symlink, another owner, or a
mode open to group/others makes :class:`VaultPermissions` with the ``chmod`` that fixes it; modes
are never changed silently.
"""

from __future__ import annotations

import builtins
import json
import os
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from exact_connector.clock import Clock, SystemClock
from exact_connector.exceptions import ConfigError
from exact_connector.vault import rotation, sealing, sign_ins
from exact_connector.vault._files import (
    absolute_home,
    check_private_dir,
    default_home,
)
from exact_connector.vault.checkpoints import VaultCheckpoints
from exact_connector.vault.keyfile import create_key_file, load_key_ring, save_key_file
from exact_connector.vault.keys import DataKeys
from exact_connector.vault.records import (
    AuditEntry,
    Credential,
    VerifyResult,
    canonical_id,
    check_version,
    check_workspace,
    one_line,
    pending,
)
from exact_connector.vault.rotation import KeyInfo, RotationReport
from exact_connector.vault.rows import (
    UNREADABLE,
    Change,
    audit,
    decode,
    insert,
    mutate,
    not_found,
    row_of,
    shown,
    stored_values,
)
from exact_connector.vault.rows import verify as verify_records
from exact_connector.vault.sealing import KeyRing, MasterKey
from exact_connector.vault.sqlite import DB_NAME, SQLiteStore
from exact_connector.vault.store import Initializer, VaultStore, crash_point

__all__ = [
    "DATABASE_URL_ENV",
    "AuditEntry",
    "Credential",
    "KeyInfo",
    "KeyRing",
    "MasterKey",
    "RotationReport",
    "Vault",
    "VaultStore",
    "VerifyResult",
    "crash_point",
    "default_home",
    "save_key_file",
]


#: A ``postgresql://`` URL here selects the PostgreSQL store for every process that opens the vault.
DATABASE_URL_ENV = "EXACT_CONNECTOR_DATABASE_URL"


#: Credentials kept by store version (per thread connection) before the map starts afresh.
_FRESH_ENTRIES = 256


class Vault:
    """One workspace's view of the vault file: every method sees only that workspace.

    Thread-safe and multi-process safe. Key rotation, :meth:`verify` with ``all_workspaces`` and
    :meth:`key_info` act on the whole file. Views made by :meth:`in_workspace` share one
    connection pool, so :meth:`close` on any of them closes them all.

    :meth:`open` uses the SQLite store under ``home`` or PostgreSQL by URL; :meth:`on_store`
    takes any :class:`VaultStore` backend.
    """

    home: Path
    workspace: str

    def __init__(self, keys: DataKeys, home: Path, workspace: str) -> None:
        self._keys = keys
        self._store = keys.store
        self.home = home
        self.workspace = check_workspace(workspace)
        # id -> (the row as stored, its credential): a step reads a record several times, and an
        # unchanged row need not be unsealed and validated again. Any write changes the row.
        self._decoded: dict[str, tuple[tuple[Any, ...], Credential]] = {}
        # (id or name, thread) -> (the store's version when read, the credential): while nothing
        # was committed anywhere, a step's read need not touch the rows at all. By thread, as a
        # store's version may be its thread's connection's (threads would evict each other).
        self._fresh: dict[tuple[str, int], tuple[Hashable, Credential]] = {}
        # A backend written before ``version`` existed simply reads every time.
        self._version: Callable[[], Hashable | None] = getattr(keys.store, "version", lambda: None)

    @property
    def place(self) -> Hashable:
        """Which store this vault reads, the same for every Vault object on one file or database
        schema (a backend that does not say: this one's store object)."""
        place: Hashable | None = getattr(self._store, "place", None)
        return place if place is not None else id(self._store)

    @classmethod
    def open(
        cls,
        home: str | os.PathLike[str] | None = None,
        *,
        workspace: str = "default",
        keys: KeyRing | None = None,
        clock: Clock | None = None,
        busy_timeout: float = 5.0,
        database_url: str | None = None,
    ) -> Vault:
        """Open the vault (created on first use); keys default to env, then key file.

        The store is PostgreSQL when ``database_url`` (else ``EXACT_CONNECTOR_DATABASE_URL``) is
        a ``postgresql://`` URL, and otherwise the SQLite file under ``home``, which also holds
        the key file either way.
        """
        check_workspace(workspace)
        path = absolute_home(home)
        if os.path.lexists(path):
            check_private_dir(path)
        url = database_url if database_url is not None else os.environ.get(DATABASE_URL_ENV)
        if keys is not None:
            data_keys = DataKeys(keys, clock or SystemClock())
        else:  # from the key file or the environment: read again for a key rotated meanwhile
            load = partial(load_key_ring, path, None if url else path / DB_NAME)
            data_keys = DataKeys(load(), clock or SystemClock(), load)
        store: VaultStore
        if url:
            store = _postgres_store(url, busy_timeout, data_keys.initialize)
        else:
            store = SQLiteStore.open(path, busy_timeout, data_keys.initialize)
        return cls._unlocked(data_keys, store, path, workspace)

    @classmethod
    def on_store(
        cls,
        open_store: Callable[[Initializer], VaultStore],
        *,
        home: str | os.PathLike[str] | None = None,
        workspace: str = "default",
        keys: KeyRing,
        clock: Clock | None = None,
    ) -> Vault:
        """A vault on another backend: ``open_store(initialize)`` opens (or creates) the store.

        ``home`` still holds the key file and the lock files of backends that use them.
        """
        check_workspace(workspace)
        data_keys = DataKeys(keys, clock or SystemClock())
        store = open_store(data_keys.initialize)
        return cls._unlocked(data_keys, store, absolute_home(home), workspace)

    @classmethod
    def _unlocked(cls, keys: DataKeys, store: VaultStore, home: Path, workspace: str) -> Vault:
        try:
            keys.unlock(store)
        except BaseException:
            store.close()
            raise
        return cls(keys, home, workspace)

    @staticmethod
    def init(home: str | os.PathLike[str] | None = None) -> Path:
        """Create the vault directory and a key file if there is none; returns the key file path."""
        path = absolute_home(home)
        return create_key_file(path, path / DB_NAME)

    def in_workspace(self, workspace: str) -> Vault:
        """The same vault file seen from another workspace."""
        return Vault(self._keys, self.home, workspace)

    # --- records ----------------------------------------------------------------------------

    def begin(
        self,
        *,
        connector_name: str,
        auth_type: str,
        server_url: str,
        client_id: str,
        client_secret: SecretStr,
        redirect_uri: str | None = None,
        refresh_token: SecretStr | None = None,
    ) -> Credential:
        """Store a new credential with status ``pending``; CredentialExists if the name is taken."""
        given = {
            "connector_name": connector_name,
            "auth_type": auth_type,
            "server_url": server_url,
            "client_id": client_id,
            "client_secret": client_secret,
            "redirect_uri": redirect_uri,
            "refresh_token": refresh_token,
        }
        draft = pending(self.workspace, self._keys.clock.now(), given)
        with self._keys.write("begin") as session:
            insert(self._keys, session, draft)
        return draft

    def activate(self, credential_id: str) -> Credential:
        """Mark a credential ``active`` (it must hold a refresh token)."""

        def change(current: Credential) -> dict[str, Any]:
            if current.refresh_token is None:
                raise ConfigError(
                    f"credential {current.id} has no refresh token yet",
                    hint="Finish the sign-in (authorization code exchange) before activating.",
                )
            return {"status": "active", "status_reason": None}

        return self._mutate("activate", credential_id, None, change, "activated")

    def get(self, id_or_name: str, *, latest: bool = False) -> Credential:
        """The credential with this id or connector name in this workspace.

        Every commit made through the connector, in any process, is seen by the next read. One
        made by another program is seen within a fraction of a second; ``latest`` reads the row
        even then (the token refresh, under its lock, must never send a spent refresh token).
        """
        version = self._version()  # before the read: a commit after it is seen next time
        fresh_key = (id_or_name, threading.get_ident())
        fresh = self._fresh.get(fresh_key) if version is not None and not latest else None
        if fresh is not None and fresh[0] == version:
            return fresh[1]
        with self._keys.read() as session:
            row = row_of(session, self.workspace, id_or_name)
        stored = stored_values(row)
        cached = self._decoded.get(str(row["id"]))
        if cached is not None and cached[0] == stored:
            credential = cached[1]
        else:
            credential = decode(self._keys, row)
            self._decoded[credential.id] = (stored, credential)
        if version is not None:
            if len(self._fresh) >= _FRESH_ENTRIES:
                self._fresh.clear()
            self._fresh[fresh_key] = (version, credential)
        return credential

    def list(self, *, readable_only: bool = False) -> builtins.list[Credential]:
        """Every credential in this workspace, by name; the first unreadable one raises.

        ``readable_only`` leaves out the records that do not decrypt (a tampered blob, a key this
        process does not hold) instead: :meth:`verify` names them, and :meth:`remove` deletes them.
        """
        with self._keys.read() as session:
            rows = session.credentials(self.workspace)
        credentials = []
        for row in rows:
            try:
                credentials.append(decode(self._keys, row))
            except UNREADABLE:
                if not readable_only:
                    raise
        return credentials

    def update_tokens(
        self,
        credential_id: str,
        *,
        expected_version: int,
        access_token: SecretStr,
        refresh_token: SecretStr,
        issued_at: float,
        expires_at: float,
        refresh_issued_at: float | None = None,
    ) -> Credential:
        """Compare-and-swap new tokens in; ConcurrentUpdate if the version moved on."""
        updates = {
            "access_token": access_token,
            "refresh_token": refresh_token,
            "access_token_issued_at": issued_at,
            "access_token_expires_at": expires_at,
            "refresh_token_issued_at": issued_at
            if refresh_issued_at is None
            else refresh_issued_at,
        }
        return self._mutate(
            "tokens", credential_id, expected_version, lambda _: updates, "tokens_updated"
        )

    def set_status(
        self,
        credential_id: str,
        status: str,
        *,
        reason: str | None = None,
        expected_version: int | None = None,
    ) -> Credential:
        """Set the status and a reason; optionally compare-and-swap on the version.

        The reason is stored as one line of at most 500 characters (control characters become
        spaces), so a long or multi-line upstream message never blocks marking ``needs_reauth``.
        """
        updates = {"status": status, "status_reason": one_line(reason)}
        return self._mutate("status", credential_id, expected_version, lambda _: updates, "status")

    def set_divisions(
        self, credential_id: str, allowed: Sequence[int], default: int | None
    ) -> Credential:
        """Replace the allowed divisions and the default (which must be one of them)."""
        updates = {"allowed_divisions": tuple(dict.fromkeys(allowed)), "default_division": default}
        return self._mutate("divisions", credential_id, None, lambda _: updates, "divisions")

    def remove(self, credential_id: str) -> tuple[str, str]:
        """Delete a credential, even one that no longer decrypts; its id and connector name.

        Found and removed by its plain columns: nothing is decrypted.
        """
        with self._keys.write("remove") as session:
            row = row_of(session, self.workspace, credential_id)
            session.delete_credential(row["id"])
            detail = {"connector_name": row["connector_name"]}
            audit(self._keys, session, "removed", self.workspace, row["id"], detail)
        return str(row["id"]), shown(str(row["connector_name"]))

    @contextmanager
    def lock(self, credential_id: str, timeout: float = 30.0) -> Iterator[None]:
        """Hold the credential's refresh lease (the SQLite store: a thread mutex plus ``flock``).

        A holder that dies loses it at once; waiting longer than ``timeout`` raises
        :class:`TokenRefreshInProgress`.
        """
        cid = canonical_id(credential_id)
        if cid is None:
            raise not_found(self.workspace, credential_id)
        with self._store.lease(cid, timeout):
            yield

    def verify(self, *, all_workspaces: bool = False) -> builtins.list[VerifyResult]:
        """Decrypt every record (of this workspace, or of all); one result per record."""
        return verify_records(self._keys, None if all_workspaces else self.workspace)

    def begin_sign_in(self, credential_id: str, state: str, ttl: float = 900.0) -> None:
        """Remember a pending sign-in's ``state`` (as a keyed digest) for any process to finish.

        One pending sign-in per credential: starting another replaces it.
        """
        sign_ins.begin(self._keys, self.workspace, credential_id, state, ttl)

    def finish_sign_in(self, credential_id: str, state: str) -> bool:
        """Whether ``state`` is the credential's pending, unexpired sign-in; it is used up if so."""
        return sign_ins.finish(self._keys, self.workspace, credential_id, state)

    def take_sign_in(self, credential_id: str, state: str) -> sign_ins.TakenSignIn | None:
        """:meth:`finish_sign_in`, giving what :meth:`reopen_sign_in` needs instead of True,
        ``None`` instead of False."""
        return sign_ins.take(self._keys, self.workspace, credential_id, state)

    def reopen_sign_in(self, credential_id: str, state: str, taken: sign_ins.TakenSignIn) -> bool:
        """Put a taken sign-in back until it would have expired (its code exchange failed before
        Exact could answer it), unless anything happened to the credential's sign-in since it was
        taken: another started or finished, or this one taken again; whether it was."""
        return sign_ins.reopen(self._keys, self.workspace, credential_id, state, taken)

    def fingerprint(self, secret: SecretStr) -> str:
        """A short HMAC fingerprint (``sha256-hmac:1a2b3c4d``), stable for this vault."""
        return sealing.fingerprint(self._keys.fingerprint_key, secret.get_secret_value())

    def audit_log(self, credential_id: str | None = None) -> builtins.list[AuditEntry]:
        """Audit events of this workspace (and vault-wide key events), oldest first."""
        with self._keys.read() as session:
            rows = session.audit(self.workspace, credential_id)
        return [AuditEntry(**{**dict(row), "detail": json.loads(row["detail"])}) for row in rows]

    # --- keys: whole-file operations (see rotation) ------------------------------------------

    def rotate_key(self, new_key: bytes | None = None) -> RotationReport:
        """Re-encrypt every record (all workspaces) under a fresh data key, verify, retire old keys.

        Resumable: if an earlier rotation stopped half-way, this finishes it rather than starting
        another. With ``new_key`` the master key is rotated first (:meth:`rewrap`); the caller
        must store ``new_key`` where every process loads its keys from.
        """
        return rotation.rotate_key(self._keys, new_key)

    def rewrap(self, new_key: bytes | None = None, *, retire_old: bool = False) -> RotationReport:
        """Rotate the master key: wrap every data key under it; records are left untouched.

        ``new_key`` (else the key ring's primary) becomes the primary master key of this process;
        with ``retire_old`` the wraps under every other master key are then removed, so the old
        key can be destroyed.
        """
        return rotation.rewrap(self._keys, new_key, retire_old=retire_old)

    def retire_key(self, kid: str) -> None:
        """Remove an old data or master key; refused (with the count) while anything needs it."""
        rotation.retire_key(self._keys, kid)

    def key_info(self) -> builtins.list[KeyInfo]:
        """Every master and data key of the vault, with the number of records under each."""
        return rotation.key_info(self._keys)

    def checkpoints(self) -> VaultCheckpoints:
        """Trigger checkpoints kept in this vault file (removed with their credential)."""
        return VaultCheckpoints(self._store, self._keys.clock)

    def close(self) -> None:
        """Close the vault's connections (every view of this file)."""
        self._store.close()

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Vault(home={str(self.home)!r}, workspace={self.workspace!r})"

    # --- internals ------------------------------------------------------------------------------

    def _mutate(
        self,
        op: str,
        credential_id: str,
        expected_version: int | None,
        change: Change,
        event: str,
    ) -> Credential:
        check_version(expected_version)
        with self._keys.write(op) as session:
            row = row_of(session, self.workspace, credential_id)
            return mutate(self._keys, session, row, expected_version, change, event)


def _postgres_store(url: str, busy_timeout: float, initialize: Initializer) -> VaultStore:
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            f"{DATABASE_URL_ENV} must be a postgresql:// URL",
            hint="Unset it to use the SQLite vault under the home directory.",
        )
    try:
        from exact_connector.vault.postgres import PostgresStore
    except ImportError:
        raise ConfigError(
            "a PostgreSQL vault needs the postgres extra (psycopg 3 and its pool)",
            hint="pip install 'exact-connector[postgres]'",
        ) from None
    return PostgresStore.open(url, initialize, busy_timeout=busy_timeout)
