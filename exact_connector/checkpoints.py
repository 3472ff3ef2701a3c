"""Where a trigger's position in a feed is kept: a small compare-and-swap store.

A checkpoint is plain JSON state (row versions, the division's move date; nothing secret) under a
text key naming (credential, trigger, division, endpoint[, consumer]). It advances only by
:meth:`CheckpointStore.advance`, and only from the version the poll started at: a poll that was
never acknowledged, or one acknowledged after another worker's, changes nothing. Engines keep
checkpoints with the credential store (``Vault.checkpoints()``); the command line keeps them in a
state file (:class:`FileCheckpoints`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from exact_connector.exceptions import ConfigError

__all__ = ["CheckpointKey", "CheckpointStore", "FileCheckpoints", "Stored"]

State = dict[str, Any]


@dataclass(frozen=True, slots=True)
class CheckpointKey:
    """Whose position in which feed: one per (credential, trigger, division, endpoint), and per
    consumer (the engine's workflow) when one is named, so each workflow gets every event."""

    credential_id: str
    trigger: str
    division: int
    endpoint: str
    consumer: str | None = None

    def __str__(self) -> str:
        shared = f"{self.credential_id}/{self.trigger}/{self.division}/{self.endpoint.lower()}"
        return shared if self.consumer is None else f"{shared}#{self.consumer}"


@dataclass(frozen=True, slots=True)
class Stored:
    """A checkpoint as stored: its state and the version a compare-and-swap expects."""

    version: int
    state: State


class CheckpointStore(Protocol):
    """The seam every checkpoint backend fills (the vault's SQLite and PostgreSQL, a file)."""

    def load(self, key: str) -> Stored | None:
        """The checkpoint under ``key``, or None before the first acknowledgement."""
        ...

    def advance(self, key: str, expected: int, state: State) -> bool:
        """Store ``state`` if the stored version is still ``expected`` (0: none stored)."""
        ...

    def reset(self, key: str) -> bool:
        """Forget the checkpoint's position; True if there was one.

        The state becomes empty (a poll then starts as the first did) and the version goes on:
        deleting it instead would count versions from 1 again, and an acknowledgement of a poll
        made before the reset could match one made after it and undo the new start (ABA).
        """
        ...


class FileCheckpoints:
    """Checkpoints in one JSON file, replaced atomically under an exclusive lock.

    A crash at any point leaves the old file or the new one, never a mix: the new content is
    written to a temporary file, flushed to disk, and renamed over the old.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self, key: str) -> Stored | None:
        """The checkpoint under ``key``, or None."""
        with self._locked():
            return self._read().get(key)

    def advance(self, key: str, expected: int, state: State) -> bool:
        """Compare-and-swap under the file lock."""
        with self._locked():
            everything = self._read()
            current = everything.get(key)
            if (current.version if current else 0) != expected:
                return False
            everything[key] = Stored(expected + 1, state)
            self._write(everything)
            return True

    def reset(self, key: str) -> bool:
        """Empty one checkpoint's state, as its next version (see :meth:`CheckpointStore.reset`)."""
        with self._locked():
            everything = self._read()
            current = everything.get(key)
            if current is None or not current.state:
                return False
            everything[key] = Stored(current.version + 1, {})
            self._write(everything)
            return True

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock = self.path.with_name(self.path.name + ".lock")
        try:
            handle = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            raise self._unusable() from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            os.close(handle)

    def _read(self) -> dict[str, Stored]:
        try:
            text = self.path.read_text("utf-8")
            raw = json.loads(text) if text.strip() else {"checkpoints": {}}  # empty: a new file
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            raise self._unusable() from None
        if not isinstance(raw, dict) or not isinstance(raw.get("checkpoints"), dict):
            raise self._unusable()
        found = {}
        for key, entry in raw["checkpoints"].items():
            if (
                not isinstance(entry, dict)
                or not isinstance(entry.get("version"), int)
                or not isinstance(entry.get("state"), dict | None)
            ):
                raise self._unusable()
            found[key] = Stored(entry["version"], dict(entry.get("state") or {}))
        return found

    def _write(self, everything: dict[str, Stored]) -> None:
        document = {
            "format": 1,
            "checkpoints": {
                key: {"version": stored.version, "state": stored.state}
                for key, stored in sorted(everything.items())
            },
        }
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(temporary, "w", encoding="utf-8") as out:
                json.dump(document, out, indent=1, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError:
            raise self._unusable() from None

    def _unusable(self) -> ConfigError:
        return ConfigError(
            "The trigger state file cannot be read or written.",
            details={"file": self.path.name},
            hint="Check the --state path: a writable file this command created, or a new one.",
        )
