"""Trigger checkpoints kept by the vault's store, beside the credentials they belong to.

The :class:`~exact_connector.checkpoints.CheckpointStore` of a vault: every call is one store
transaction through the seam (:class:`~exact_connector.vault.store.StoreSession`), so each
backend (SQLite today, PostgreSQL next) keeps them with its own SQL. A checkpoint's key starts
with its credential's id; the store keeps it only while that credential exists.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from exact_connector.checkpoints import Stored

if TYPE_CHECKING:
    from exact_connector.clock import Clock
    from exact_connector.vault.store import VaultStore

__all__ = ["VaultCheckpoints"]


class VaultCheckpoints:
    """Checkpoints in one vault store."""

    def __init__(self, store: VaultStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def load(self, key: str) -> Stored | None:
        """The checkpoint under ``key``, or None."""
        with self._store.read() as session:
            row = session.checkpoint(key)
        return None if row is None else Stored(int(row["version"]), json.loads(row["state"]))

    def advance(self, key: str, expected: int, state: dict[str, Any]) -> bool:
        """Store ``state`` if the stored version is still ``expected`` (0: none stored)."""
        text = json.dumps(state, sort_keys=True)
        credential_id = key.split("/", 1)[0]
        with self._store.write("checkpoint") as session:
            return session.swap_checkpoint(key, credential_id, expected, text, self._clock.now())

    def reset(self, key: str) -> bool:
        """Empty one checkpoint, as a new version (see ``StoreSession.reset_checkpoint``)."""
        with self._store.write("checkpoint_reset") as session:
            return session.reset_checkpoint(key, self._clock.now())
