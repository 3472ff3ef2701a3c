"""The vault's commit signal: eight shared bytes that every writer changes after each commit.

A workflow step reads its credential several times, and almost never has anything changed since
the last read. SQLite can say so (``PRAGMA data_version``), but asking costs a statement, two
``fcntl`` calls and three releases of the GIL: under eight threads, most of what a step adds to
its HTTP call. ``<home>/vault.db-gen`` answers the same question from memory. Every commit through
:class:`~exact_connector.vault.sqlite.SQLiteStore` is followed by new random bytes in it, and every
process maps it, so a reader that sees the same bytes as at its last check knows that no commit
made through the connector has finished since.

Two kinds of commit do not change it: an edit made with another program (the ``sqlite3`` shell),
and one whose process died between its commit and the new bytes. So the bytes are trusted for a
short time only (``SQLiteStore.FRESH_FOR``), after which the reader asks SQLite again. Nothing
that needs the very latest row relies on them: the token refresh re-reads under its lock with
``Vault.get(..., latest=True)``.

Random bytes rather than a counter: two writers that finish at once cannot lose an increment and
leave the value where a reader saw it last. ``os.urandom`` costs a system call, on writes only.
"""

from __future__ import annotations

import mmap
import os
import sys
from pathlib import Path

from exact_connector.vault._files import check_private_file

__all__ = ["SIZE", "Generation"]

#: Bytes in the file: a torn read of them still differs from the value before the write.
SIZE = 8


class Generation:
    """The mapped commit signal of one vault file; ``None`` from :meth:`open` where it cannot be."""

    def __init__(self, mapped: mmap.mmap) -> None:
        self._map = mapped

    @classmethod
    def open(cls, path: Path) -> Generation | None:
        """Map ``path`` (created 0600 if missing); None where the file system cannot map it.

        A file that is not private (a symlink, another owner, a mode wider than 0600) is refused
        like the vault's other files, with ``VaultPermissions``. Windows has none: a file mapped
        there cannot be removed or renamed, so there every read asks SQLite.
        """
        if sys.platform == "win32":
            return None
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags, 0o600)
        except OSError:
            check_private_file(path, "vault commit signal")  # a symlink: refused with its reason
            return None
        try:
            check_private_file(path, "vault commit signal")
            # New, or another process is creating it: written, not extended with a hole, so the
            # block is allocated now and a full disk fails here (the store then asks SQLite),
            # never later as SIGBUS on a write through the mapping. Racing another creator only
            # changes the value.
            short = os.fstat(fd).st_size < SIZE
            if short and os.pwrite(fd, os.urandom(SIZE), 0) != SIZE:
                return None
            return cls(mmap.mmap(fd, SIZE))
        except (OSError, ValueError):
            return None
        finally:
            os.close(fd)

    def read(self) -> bytes:
        """The current value: memory only, no system call, the GIL kept."""
        return self._map[:SIZE]

    def bump(self) -> None:
        """A new value, after a commit: every reader's next look sees a change."""
        self._map[:SIZE] = os.urandom(SIZE)
