"""The vault: credentials encrypted at rest in one SQLite file, safe across threads and processes.

:class:`Vault` is the whole interface; the concepts behind it each have a private module:
``_vault_records`` (the models and their rows), ``_vault_store`` (the SQLite file, its transactions
and the test-only crash hook), ``_vault_keys`` (data keys wrapped under master keys),
``_vault_rotation`` (key rotation) and ``_vault_locks`` (per-credential refresh locks). Each secret
field is its own AES-256-GCM blob (see :mod:`exact_connector.sealing`).

Everything fails closed: a missing, wrong or unknown key, a tampered or truncated blob and a corrupt
file each raise their own error naming the credential and field, never a value, and one broken
record leaves every other one readable. Files are private or refused: a symlink, another owner, or a
mode open to group/others makes :class:`VaultPermissions` with the ``chmod`` that fixes it; modes
are never changed silently.
"""

from __future__ import annotations

import builtins
import hmac
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from exact_connector import _vault_rotation, sealing
from exact_connector._vault_checkpoints import VaultCheckpoints
from exact_connector._vault_locks import credential_lock
from exact_connector._vault_records import (
    INSERT,
    UPDATE,
    AuditEntry,
    Credential,
    VerifyResult,
    canonical_id,
    check_workspace,
    decode,
    encode,
    find_row,
    one_line,
    pending,
    validate,
)
from exact_connector._vault_records import verify as verify_records
from exact_connector._vault_rotation import KeyInfo, RotationReport
from exact_connector._vault_store import (
    DB_NAME,
    Store,
    absolute_home,
    crash_point,
    default_home,
    ensure_dir,
)
from exact_connector.clock import Clock, SystemClock
from exact_connector.exceptions import (
    ConcurrentUpdate,
    ConfigError,
    CredentialExists,
    CredentialNotFound,
    InputError,
    VaultKeyError,
)
from exact_connector.sealing import KEY_FILE_NAME, KeyRing, MasterKey

__all__ = [
    "AuditEntry",
    "Credential",
    "KeyInfo",
    "KeyRing",
    "MasterKey",
    "RotationReport",
    "Vault",
    "VerifyResult",
    "crash_point",
    "default_home",
]


class Vault:
    """One workspace's view of the vault file: every method sees only that workspace.

    Thread-safe and multi-process safe. Key rotation, :meth:`verify` with ``all_workspaces`` and
    :meth:`key_info` act on the whole file. Views made by :meth:`in_workspace` share one
    connection pool, so :meth:`close` on any of them closes them all.
    """

    home: Path
    workspace: str

    def __init__(self, store: Store, workspace: str) -> None:
        self._store = store
        self.home = store.home
        self.workspace = check_workspace(workspace)

    @classmethod
    def open(
        cls,
        home: str | os.PathLike[str] | None = None,
        *,
        workspace: str = "default",
        keys: KeyRing | None = None,
        clock: Clock | None = None,
        busy_timeout: float = 5.0,
    ) -> Vault:
        """Open the vault at ``home`` (created on first use); keys default to env, then key file."""
        check_workspace(workspace)
        path = absolute_home(home)
        if os.path.lexists(path):
            sealing.check_private_dir(path)
        ring = keys if keys is not None else KeyRing.load(path)
        return cls(Store.open(path, ring, clock or SystemClock(), busy_timeout), workspace)

    @staticmethod
    def init(home: str | os.PathLike[str] | None = None) -> Path:
        """Create the vault directory and a key file if there is none; returns the key file path."""
        path = absolute_home(home)
        ensure_dir(path)
        key_path = path / KEY_FILE_NAME
        for stale in path.glob(f".{KEY_FILE_NAME}.*.tmp"):  # left by a crash mid-write
            stale.unlink()
        if sealing.check_private_file(key_path, "key file"):
            return key_path
        if os.path.lexists(path / DB_NAME):
            raise VaultKeyError(
                f"a vault exists at {path / DB_NAME} but its key file is missing",
                hint=f"Set {sealing.KEY_ENV} to its key, or restore {key_path} from a backup.",
            )
        text = KeyRing.from_bytes(sealing.generate_key()).to_text()
        sealing.write_private_file(
            key_path,
            text.encode("ascii"),
            replace=False,
            before_replace=lambda: crash_point("keyfile.before_replace"),
        )
        return key_path

    def in_workspace(self, workspace: str) -> Vault:
        """The same vault file seen from another workspace."""
        return Vault(self._store, workspace)

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
        draft = pending(self.workspace, self._store.clock.now(), given)
        with self._store.write("begin") as conn:
            if find_row(conn, self.workspace, connector_name) is not None:
                raise CredentialExists(
                    f"a credential named {connector_name!r} already exists in workspace "
                    f"{self.workspace!r}",
                    details={"connector_name": connector_name, "workspace": self.workspace},
                )
            row = encode(self._store, draft)
            conn.execute(INSERT, row)
            self._audit(
                conn, "created", draft, self._fingerprints(draft, "client_secret", "refresh_token")
            )
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

    def get(self, id_or_name: str) -> Credential:
        """The credential with this id or connector name in this workspace."""
        with self._store.read() as conn:
            row = find_row(conn, self.workspace, id_or_name)
            if row is None:
                raise self._not_found(id_or_name)
            return decode(self._store, row)

    def list(self) -> builtins.list[Credential]:
        """Every credential in this workspace, by name; the first unreadable one raises."""
        with self._store.read() as conn:
            rows = conn.execute(
                "SELECT * FROM credentials WHERE workspace = ? ORDER BY connector_name",
                (self.workspace,),
            ).fetchall()
            return [decode(self._store, row) for row in rows]

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

    def remove(self, credential_id: str) -> None:
        """Delete a credential, even one that no longer decrypts."""
        with self._store.write("remove") as conn:
            row = find_row(conn, self.workspace, credential_id)
            if row is None:
                raise self._not_found(credential_id)
            conn.execute("DELETE FROM credentials WHERE id = ?", (row["id"],))
            detail = {"connector_name": row["connector_name"]}
            self._store.audit(conn, "removed", self.workspace, row["id"], detail)

    @contextmanager
    def lock(self, credential_id: str, timeout: float = 30.0) -> Iterator[None]:
        """Hold the credential's refresh lock: a thread mutex plus ``flock`` on its lock file.

        The kernel drops the ``flock`` if the holder dies; waiting longer than ``timeout`` raises
        :class:`TokenRefreshInProgress`.
        """
        cid = canonical_id(credential_id)
        if cid is None:
            raise self._not_found(credential_id)
        with credential_lock(self.home, cid, timeout):
            yield

    def verify(self, *, all_workspaces: bool = False) -> builtins.list[VerifyResult]:
        """Decrypt every record (of this workspace, or of all); one result per record."""
        return verify_records(self._store, None if all_workspaces else self.workspace)

    def begin_sign_in(self, credential_id: str, state: str, ttl: float = 900.0) -> None:
        """Remember a pending sign-in's ``state`` (as a keyed digest) for any process to finish.

        One pending sign-in per credential: starting another replaces it.
        """
        digest = sealing.keyed_digest(self._store.keys.fingerprint_key, state)
        with self._store.write("sign-in") as conn:
            row = find_row(conn, self.workspace, credential_id)
            if row is None:
                raise self._not_found(credential_id)
            conn.execute(
                "INSERT OR REPLACE INTO sign_ins VALUES (?, ?, ?)",
                (row["id"], digest, self._store.clock.now() + ttl),
            )

    def finish_sign_in(self, credential_id: str, state: str) -> bool:
        """Whether ``state`` is the credential's pending, unexpired sign-in; it is used up if so."""
        digest = sealing.keyed_digest(self._store.keys.fingerprint_key, state)
        with self._store.write("sign-in") as conn:
            row = find_row(conn, self.workspace, credential_id)
            if row is None:
                raise self._not_found(credential_id)
            pending = conn.execute(
                "SELECT state_digest, expires_at FROM sign_ins WHERE credential_id = ?",
                (row["id"],),
            ).fetchone()
            if pending is None:
                return False
            expired = pending["expires_at"] <= self._store.clock.now()
            matches = hmac.compare_digest(pending["state_digest"], digest)
            if matches or expired:
                conn.execute("DELETE FROM sign_ins WHERE credential_id = ?", (row["id"],))
            return matches and not expired

    def fingerprint(self, secret: SecretStr) -> str:
        """A short HMAC fingerprint (``sha256-hmac:1a2b3c4d``), stable for this vault."""
        return sealing.fingerprint(self._store.keys.fingerprint_key, secret.get_secret_value())

    def audit_log(self, credential_id: str | None = None) -> builtins.list[AuditEntry]:
        """Audit events of this workspace (and vault-wide key events), oldest first."""
        query = "SELECT * FROM audit WHERE (workspace = ? OR workspace IS NULL)"
        args: tuple[str, ...] = (self.workspace,)
        if credential_id is not None:
            query, args = query + " AND credential_id = ?", (*args, credential_id)
        with self._store.read() as conn:
            rows = conn.execute(query + " ORDER BY seq", args).fetchall()
        return [AuditEntry(**{**dict(row), "detail": json.loads(row["detail"])}) for row in rows]

    # --- keys: whole-file operations (see _vault_rotation) ------------------------------------

    def rotate_key(self, new_key: bytes | None = None) -> RotationReport:
        """Re-encrypt every record (all workspaces) under a fresh data key, verify, retire old keys.

        Resumable: if an earlier rotation stopped half-way, this finishes it rather than starting
        another. With ``new_key`` the master key is rotated first (:meth:`rewrap`); the caller
        must store ``new_key`` where every process loads its keys from.
        """
        return _vault_rotation.rotate_key(self._store, new_key)

    def rewrap(self, new_key: bytes | None = None, *, retire_old: bool = False) -> RotationReport:
        """Rotate the master key: wrap every data key under it; records are left untouched.

        ``new_key`` (else the key ring's primary) becomes the primary master key of this process;
        with ``retire_old`` the wraps under every other master key are then removed, so the old
        key can be destroyed.
        """
        return _vault_rotation.rewrap(self._store, new_key, retire_old=retire_old)

    def retire_key(self, kid: str) -> None:
        """Remove an old data or master key; refused (with the count) while anything needs it."""
        _vault_rotation.retire_key(self._store, kid)

    def key_info(self) -> builtins.list[KeyInfo]:
        """Every master and data key of the vault, with the number of records under each."""
        return _vault_rotation.key_info(self._store)

    def checkpoints(self) -> VaultCheckpoints:
        """Trigger checkpoints kept in this vault file (removed with their credential)."""
        return VaultCheckpoints(self._store)

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

    def _not_found(self, key: object) -> CredentialNotFound:
        shown = str(key)[:100]
        return CredentialNotFound(
            f"no credential {shown!r} in workspace {self.workspace!r}",
            details={"credential": shown, "workspace": self.workspace},
        )

    def _mutate(
        self,
        op: str,
        credential_id: str,
        expected_version: int | None,
        change: Any,
        event: str,
    ) -> Credential:
        if expected_version is not None and (
            not isinstance(expected_version, int) or isinstance(expected_version, bool)
        ):
            raise InputError(
                "expected_version must be an integer",
                errors=[{"path": "$.expected_version", "code": "int_type", "message": "integer"}],
            )
        with self._store.write(op) as conn:
            row = find_row(conn, self.workspace, credential_id)
            if row is None:
                raise self._not_found(credential_id)
            if expected_version is not None and row["version"] != expected_version:
                raise ConcurrentUpdate(
                    f"credential {row['id']} is at version {row['version']}, "
                    f"not {expected_version}",
                    details={
                        "credential_id": row["id"],
                        "expected_version": expected_version,
                        "current_version": row["version"],
                    },
                )
            current = decode(self._store, row)
            updates = change(current)
            new = validate(
                {
                    **current.model_dump(),
                    **updates,
                    "version": current.version + 1,
                    "updated_at": self._store.clock.now(),
                }
            )
            encoded = encode(self._store, new)
            conn.execute(UPDATE, encoded)
            detail: dict[str, Any] = {"version": new.version}
            if event == "tokens_updated":
                detail.update(self._fingerprints(new, "refresh_token", "access_token"))
            elif event in ("status", "activated"):
                detail.update(status=new.status, previous=current.status, reason=new.status_reason)
            elif event == "divisions":
                detail.update(allowed=list(new.allowed_divisions), default=new.default_division)
            self._audit(conn, event, new, detail)
        return new

    def _fingerprints(self, credential: Credential, *fields: str) -> dict[str, str]:
        return {
            field: self.fingerprint(secret)
            for field in fields
            if (secret := getattr(credential, field)) is not None
        }

    def _audit(
        self, conn: sqlite3.Connection, event: str, credential: Credential, detail: dict[str, Any]
    ) -> None:
        detail = {"connector_name": credential.connector_name, **detail}
        self._store.audit(conn, event, credential.workspace, credential.id, detail)
