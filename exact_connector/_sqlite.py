"""SQLite plumbing shared by the vault's SQLite store and the rate governor's state file.

Both keep a small SQLite file that several processes use at once, so both need the same care:
the file is created private (0600, never through a symlink) before SQLite could create it 0644;
WAL is switched on with a retry, because the switch answers ``SQLITE_BUSY`` at once instead of
waiting for the busy timeout; every read-modify-write is one ``BEGIN IMMEDIATE`` transaction that
rolls back on any error; a forked child never uses nor closes its parent's connections; and raw
``sqlite3`` errors are translated by the caller's own table, so SQLite's text never reaches a user.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

__all__ = [
    "ForkAware",
    "abandon",
    "create_private_file",
    "enable_wal",
    "error_code",
    "immediate",
    "reset_after_fork",
    "rollback",
    "symlink_error",
    "translated",
]

_PRIVATE_OPEN = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)  # as vault._files
_WAL_RETRY = 0.01  # seconds between attempts to switch to WAL while another process holds the file

_ABANDONED: list[sqlite3.Connection] = []  # inherited over fork(): the child must never close them


class ForkAware(Protocol):
    """An object holding connections (SQLite, or HTTP pools) that must start afresh in a forked
    child."""

    def reset_after_fork(self) -> None:
        """Forget (never close) the parent's connections and locks."""


_FORK_AWARE: weakref.WeakSet[ForkAware] = weakref.WeakSet()


def create_private_file(path: Path) -> bool:
    """Create ``path`` empty with mode 0600; False if it already exists (it is left untouched).

    A symlink at ``path`` is never followed: it counts as existing, and the caller decides.
    """
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _PRIVATE_OPEN, 0o600))
    except FileExistsError:
        return False
    return True


def error_code(error: BaseException) -> int:
    """The primary SQLite result code of an error (``SQLITE_BUSY``, ...), 0 if it has none."""
    return (getattr(error, "sqlite_errorcode", None) or 0) & 0xFF


def enable_wal(conn: sqlite3.Connection, timeout: float) -> str:
    """Switch ``conn`` to WAL, retrying while the file is busy; returns the journal mode now set.

    Past ``timeout`` seconds the last ``SQLITE_BUSY`` is raised; any other error at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as error:
            if error_code(error) != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(_WAL_RETRY)  # a file lock held by another process: real time, not a clock


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back an open transaction, ignoring a connection too broken to roll back."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


@contextmanager
def immediate(
    conn: sqlite3.Connection, before_commit: Callable[[], None] | None = None
) -> Iterator[sqlite3.Connection]:
    """One ``BEGIN IMMEDIATE`` transaction: committed if the block ends, else rolled back.

    ``BEGIN IMMEDIATE`` takes the write lock up front, so a read-then-write inside the block is
    exact across processes. ``before_commit`` runs just before ``COMMIT`` (a test crash hook).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        if before_commit is not None:
            before_commit()
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise


@contextmanager
def translated(
    make: Callable[[Exception], Exception],
    catch: tuple[type[Exception], ...] = (sqlite3.Error,),
) -> Iterator[None]:
    """Replace every ``catch`` error raised in the block by ``make(error)``, without a traceback."""
    try:
        yield
    except catch as error:
        raise make(error) from None


def reset_after_fork(holder: ForkAware) -> None:
    """Have ``holder.reset_after_fork()`` run in every child forked from now on."""
    _FORK_AWARE.add(holder)


def abandon(connections: Iterable[sqlite3.Connection]) -> None:
    """Keep inherited connections alive for good: closing one would unlock the parent's file."""
    _ABANDONED.extend(connections)


def _after_fork() -> None:
    for holder in list(_FORK_AWARE):
        holder.reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def symlink_error(path: Path) -> OSError:
    """The error a no-follow open of the symlink at ``path`` gives."""
    return OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(path))
