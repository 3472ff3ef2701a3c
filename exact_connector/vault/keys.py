"""The vault's data keys: the random keys that seal its fields, kept only wrapped under master keys.

Each data key is recorded in the store with one wrap per master key: a sealed blob bound to the
vault id, the record ``keyring`` and the data key's kid, so a wrap copied to another vault or key
fails to open. :class:`DataKeys` creates and wraps them, unwraps each at most once per process, and
seals and opens field blobs with them. Every configured master key that wraps a data key must unwrap
it to the same bytes: a wrong key fails loudly instead of being skipped.

It also owns the vault's header (vault id, fingerprint key, primary data key): it writes a new
store's header and unlocks an existing one, and every write transaction goes through
:meth:`DataKeys.write`, which first adopts the primary another process may have rotated to.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager

from pydantic import SecretStr

from exact_connector.clock import Clock
from exact_connector.exceptions import (
    ExactConnectorError,
    VaultCorrupt,
    VaultIntegrityError,
    VaultKeyMismatch,
    VaultKeyUnknown,
)
from exact_connector.vault import sealing
from exact_connector.vault.sealing import KeyRing, MasterKey
from exact_connector.vault.store import StoreSession, VaultStore, corrupt_hint

__all__ = ["HEADER", "DataKeys"]

#: The header entries every vault has.
HEADER = ("vault_id", "fingerprint_key", "primary_data_key")


class DataKeys:
    """One vault's data keys, its vault id and its current primary, cached per process.

    Made before its store exists (its :meth:`initialize` writes a new store's header), it is bound
    to the store by :meth:`unlock`.
    """

    store: VaultStore

    def __init__(
        self, ring: KeyRing, clock: Clock, reload: Callable[[], KeyRing] | None = None
    ) -> None:
        """``reload``: the ring read again from where it came from (the key file), for a data key
        wrapped only under a master key this process has not seen yet (RELIABILITY B4)."""
        self.ring, self.clock = ring, clock
        self._reload = reload
        self.vault_id = self.primary_kid = ""
        self.fingerprint_key = b""
        self._cache: dict[str, bytes] = {}

    def initialize(self, session: StoreSession) -> None:
        """Write the header of a store being created: a random vault id and its first keys."""
        self.vault_id = os.urandom(16).hex()
        header = {
            "vault_id": self.vault_id,
            "fingerprint_key": self.create(session, "fingerprint"),
            "primary_data_key": self.create(session, "data"),
            "created_at": repr(self.clock.now()),
        }
        for name, value in header.items():
            session.set_header(name, value)

    def unlock(self, store: VaultStore) -> None:
        """Bind to ``store``, open its keys with the ring; VaultKeyMismatch if they do not fit."""
        self.store = store
        with store.read() as session:
            header = session.header()
        if not set(HEADER) <= header.keys():
            raise VaultCorrupt(
                f"vault {store.where} has no readable header", hint=corrupt_hint(store.where)
            )
        self.vault_id = header["vault_id"]
        try:
            self.fingerprint_key = self.get(header["fingerprint_key"])
            self.primary_kid = header["primary_data_key"]
            self.get(self.primary_kid)
        except (VaultIntegrityError, VaultKeyUnknown) as error:
            culprit = error.details.get("master_key") or ", ".join(self.ring.kids)
            sealed = ", ".join(self.master_kids()) or "none"
            raise VaultKeyMismatch(
                f"the configured vault key {culprit} does not open {store.where}; "
                f"it is sealed under: {sealed}",
                details={"path": store.where, "configured": list(self.ring.kids)},
            ) from None

    @contextmanager
    def write(self, op: str) -> Iterator[StoreSession]:
        """The store's write transaction, after adopting the primary another process set."""
        with self.store.write(op) as session:
            self.follow_primary(session)
            yield session

    def read(self) -> AbstractContextManager[StoreSession]:
        """The store's read session."""
        return self.store.read()

    def create(self, session: StoreSession, purpose: str) -> str:
        """Create a data key wrapped under the vault's master keys; returns its kid."""
        kid, key = sealing.new_data_kid(), sealing.generate_key()
        session.insert_data_key(kid, purpose, self.clock.now())
        in_use = set(session.master_kids())
        for master in self.ring:
            if master is self.ring.primary or master.kid in in_use:
                self.wrap(session, kid, key, master)
        self._cache[kid] = key
        return kid

    def wrap(self, session: StoreSession, kid: str, key: bytes, master: MasterKey) -> None:
        """Store (or replace) the wrap of data key ``kid`` under ``master``."""
        blob = sealing.seal_blob(
            master.kid, master.key, key, vault_id=self.vault_id, record="keyring", field=kid
        )
        session.put_wrap(kid, master.kid, blob)

    def unwrap(self, blob: bytes, kid: str, master: MasterKey) -> bytes:
        """Data key ``kid`` from its wrap under ``master``; VaultIntegrityError if it fails."""
        return sealing.open_blob(
            blob,
            lambda _kid: master.key,
            vault_id=self.vault_id,
            record="keyring",
            field=kid,
            subject={"data_key": kid, "master_key": master.kid},
        )

    def get(self, kid: str, subject: Mapping[str, str] | None = None) -> bytes:
        """A data key by kid: from memory, else unwrapped from the vault (read once)."""
        key = self._cache.get(kid)
        if key is not None:
            return key
        subject = subject or {"data_key": kid}
        with self.store.read() as session:
            known = session.data_key_purpose(kid) is not None
            wraps = session.wraps(kid)
        if not known:
            raise VaultCorrupt(
                f"{sealing.describe(subject)} names data key {kid}, which this vault never issued",
                details={**subject, "kid": kid},
                hint=corrupt_hint(self.store.where),
            )
        if not any(self.ring.get(master_kid) for master_kid in wraps):
            self._take_new_master_keys(wraps)
        unwrapped = {
            self.unwrap(blob, kid, master)
            for master_kid, blob in wraps.items()
            if (master := self.ring.get(master_kid)) is not None
        }
        if len(unwrapped) > 1:
            raise VaultIntegrityError(f"master keys disagree about data key {kid}", details=subject)
        if unwrapped:
            key = unwrapped.pop()
            self._cache[kid] = key
            return key
        sealed = ", ".join(sorted(wraps)) or "no key"
        raise VaultKeyUnknown(
            f"data key {kid} is sealed under master key {sealed}, which this process does not hold",
            details={**subject, "kid": kid, "master_keys": sealed},
        )

    def _take_new_master_keys(self, wanted: Collection[str]) -> None:
        """Read the ring again, once, and add its keys if it holds one of ``wanted``: another
        process rotated the master key (``vault rotate-key --master``) and wrote the new one to
        the key file this process read its keys from. A token refresh that lands meanwhile
        must store its new pair, not fail for want of a key that is on disk."""
        if self._reload is None:
            return
        try:
            fresh = self._reload()
        except ExactConnectorError:
            return  # the key file is gone or unreadable now: the unknown key is reported
        if any(fresh.get(master_kid) for master_kid in wanted):
            self.ring = KeyRing([*fresh, *(key for key in self.ring if fresh.get(key.kid) is None)])

    def follow_primary(self, session: StoreSession) -> None:
        """Adopt the store's primary: another process may have rotated since we last looked."""
        kid = session.header().get("primary_data_key", "")
        if kid and kid != self.primary_kid:
            self.get(kid)
            self.primary_kid = kid

    def forget(self, kid: str) -> None:
        """Drop a retired key from memory."""
        self._cache.pop(kid, None)

    def master_kids(self) -> list[str]:
        """Every master key id that wraps at least one data key, sorted."""
        with self.store.read() as session:
            return session.master_kids()

    def seal(self, record: str, field: str, value: SecretStr, bound: str) -> bytes:
        """A blob of ``value`` under the primary data key, bound to this record, field and the
        digest of its plain fields (``bound``)."""
        return sealing.seal_blob(
            self.primary_kid,
            self.get(self.primary_kid),
            value.get_secret_value().encode("utf-8"),
            vault_id=self.vault_id,
            record=record,
            field=field,
            bound=bound,
        )

    def unseal(self, record: str, field: str, blob: object, bound: str) -> SecretStr:
        """The secret in a field's blob; typed errors name the record and field, never a value."""
        subject = {"credential_id": record, "field": field}
        if not isinstance(blob, bytes):
            raise VaultCorrupt(f"credential {record} field {field} is not a blob", details=subject)
        plain = sealing.open_blob(
            blob,
            lambda kid: self.get(kid, subject),
            vault_id=self.vault_id,
            record=record,
            field=field,
            subject=subject,
            bound=bound,
        )
        return SecretStr(plain.decode("utf-8"))
