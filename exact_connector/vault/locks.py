"""Per-credential refresh locks, held across threads and processes.

A lock is a thread mutex (threads of one process) plus an exclusive ``flock`` on
``<home>/locks/<credential id>.lock`` (processes). The kernel drops a ``flock`` when its holder
dies, so a crashed worker never leaves a credential locked; a waiter that runs out of time gets
:class:`TokenRefreshInProgress`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from exact_connector.exceptions import TokenRefreshInProgress, VaultIOError, VaultPermissions
from exact_connector.vault._files import PRIVATE_OPEN, check_private_dir

if sys.platform != "win32":
    import fcntl

__all__ = ["credential_lock"]

_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


@contextmanager
def credential_lock(home: Path, cid: str, timeout: float) -> Iterator[None]:
    """Hold credential ``cid``'s lock under ``home``, waiting at most ``timeout`` seconds."""
    if sys.platform == "win32":
        raise VaultIOError("credential locks need POSIX flock, which Windows does not offer")
    path = home / "locks" / f"{cid}.lock"
    deadline = time.monotonic() + max(0.0, timeout)
    with _THREAD_LOCKS_GUARD:
        mutex = _THREAD_LOCKS.setdefault(str(path), threading.Lock())
    if not mutex.acquire(timeout=max(0.0, timeout)):
        raise _refresh_in_progress(cid, timeout)
    try:
        fd = _open_lock_file(path)
        try:
            _flock_until(fd, deadline, cid, timeout)
            owner = os.getpid()
            try:
                yield
            finally:
                if os.getpid() == owner:  # a forked child must not unlock its parent's lock
                    fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    finally:
        mutex.release()


def _refresh_in_progress(cid: str, timeout: float) -> TokenRefreshInProgress:
    return TokenRefreshInProgress(
        f"credential {cid} is locked by another worker (waited {timeout:g} s)",
        details={"credential_id": cid, "timeout": timeout},
    )


def _open_lock_file(path: Path) -> int:
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(path.parent, 0o700)
        check_private_dir(path.parent)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | PRIVATE_OPEN, 0o600)
    except OSError as error:
        raise VaultPermissions(f"cannot open lock file {path}: {error.strerror}") from None
    info = os.fstat(fd)
    if info.st_uid != os.geteuid() or info.st_mode & 0o077:
        os.close(fd)
        raise VaultPermissions(f"lock file {path} is not a private file of this user")
    return fd


def _flock_until(fd: int, deadline: float, cid: str, timeout: float) -> None:
    delay = 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        except OSError as error:
            raise VaultIOError(f"cannot lock credential {cid}: {error.strerror}") from None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _refresh_in_progress(cid, timeout)
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.02)


def _after_fork() -> None:
    # Locks held by the parent's other threads would never be released in the child.
    global _THREAD_LOCKS_GUARD
    _THREAD_LOCKS_GUARD = threading.Lock()
    _THREAD_LOCKS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
