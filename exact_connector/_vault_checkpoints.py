"""Trigger checkpoints in the vault's SQLite file, beside the credentials they belong to.

One row per checkpoint key; the row goes when its credential is removed (foreign key cascade).
Advancing is one ``BEGIN IMMEDIATE`` compare-and-swap on the version, exact across processes.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from exact_connector.checkpoints import Stored

if TYPE_CHECKING:
    from exact_connector._vault_store import Store

__all__ = ["VaultCheckpoints"]


class VaultCheckpoints:
    """The :class:`~exact_connector.checkpoints.CheckpointStore` of one vault file."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def load(self, key: str) -> Stored | None:
        """The checkpoint under ``key``, or None."""
        with self._store.read() as conn:
            row = conn.execute(
                "SELECT version, state FROM trigger_checkpoints WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else Stored(row["version"], json.loads(row["state"]))

    def advance(self, key: str, expected: int, state: dict[str, Any]) -> bool:
        """Store ``state`` if the stored version is still ``expected`` (0: none stored)."""
        text = json.dumps(state, sort_keys=True)
        now = self._store.clock.now()
        with self._store.write("checkpoint") as conn:
            if expected == 0:
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO trigger_checkpoints "
                    "SELECT ?, id, 1, ?, ? FROM credentials WHERE id = ?",
                    (key, text, now, key.split("/", 1)[0]),
                )
            else:
                cursor = conn.execute(
                    "UPDATE trigger_checkpoints SET version = version + 1, state = ?, "
                    "updated_at = ? WHERE key = ? AND version = ?",
                    (text, now, key, expected),
                )
            return cursor.rowcount == 1

    def reset(self, key: str) -> bool:
        """Forget one checkpoint."""
        with self._store.write("checkpoint_reset") as conn:
            cursor = conn.execute("DELETE FROM trigger_checkpoints WHERE key = ?", (key,))
            return cursor.rowcount == 1
