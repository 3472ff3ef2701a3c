"""The vault's home directory and its private files: found, created and checked the same way.

``<home>`` (``$EXACT_CONNECTOR_HOME``, else the platform's per-user data directory) is 0700 and
every file in it is 0600. A symlink, another owner or a mode open to group/others is refused with
:class:`VaultPermissions` naming the ``chmod`` that fixes it; modes are never changed silently.
Files the vault writes whole (the key file) are written atomically: temp file, fsync, rename.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from exact_connector.exceptions import VaultIOError, VaultKeyError, VaultPermissions

__all__ = [
    "HOME_ENV",
    "PRIVATE_OPEN",
    "absolute_home",
    "check_private_dir",
    "check_private_file",
    "default_home",
    "ensure_dir",
    "write_private_file",
]

HOME_ENV = "EXACT_CONNECTOR_HOME"
#: Flags for opening vault files: never follow a symlink, never leak into a child process.
PRIVATE_OPEN = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def default_home() -> Path:
    """``$EXACT_CONNECTOR_HOME``, else the platform's per-user data directory."""
    if configured := os.environ.get(HOME_ENV):
        return Path(configured).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        xdg = os.environ.get("XDG_DATA_HOME", "")
        base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / "exact-connector"


def absolute_home(home: str | os.PathLike[str] | None) -> Path:
    """``home`` (else the default) as an absolute path, symlinks left as they are."""
    # abspath, not resolve(): resolving would follow the very symlink we must refuse.
    return Path(os.path.abspath(os.fspath(home) if home is not None else default_home()))


def ensure_dir(path: Path) -> None:
    """Create the vault directory 0700 if needed; refuse one that is not private."""
    try:
        os.makedirs(path.parent, exist_ok=True)
        os.mkdir(path, 0o700)
        os.chmod(path, 0o700)
    except FileExistsError:
        pass
    except OSError as error:
        raise VaultPermissions(f"cannot create vault directory {path}: {error.strerror}") from None
    check_private_dir(path)


def check_private_dir(path: Path) -> None:
    """Refuse a directory that is a symlink, not ours, or open to group/others."""
    try:
        info = os.lstat(path)
    except OSError as error:
        raise VaultPermissions(f"cannot inspect vault directory {path}: {error.strerror}") from None
    _check_owner_and_mode(path, info, "vault directory", "directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise VaultPermissions(f"vault directory {path} is not writable by this user")


def check_private_file(path: Path, what: str) -> bool:
    """False if absent; refuse a symlink, a non-file, another owner or a mode wider than 0600."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    except OSError as error:
        raise VaultPermissions(f"cannot inspect {what} {path}: {error.strerror}") from None
    _check_owner_and_mode(path, info, what, "regular file")
    return True


def _check_owner_and_mode(path: Path, info: os.stat_result, what: str, kind: str) -> None:
    is_kind = stat.S_ISDIR if kind == "directory" else stat.S_ISREG
    if stat.S_ISLNK(info.st_mode):
        raise VaultPermissions(f"{what} {path} is a symbolic link; refusing to follow it")
    if not is_kind(info.st_mode):
        raise VaultPermissions(f"{what} {path} is not a {kind}")
    if os.name == "posix":
        if info.st_uid != os.geteuid():
            raise VaultPermissions(f"{what} {path} is owned by uid {info.st_uid}, not by this user")
        if info.st_mode & 0o077:
            wanted = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
            raise VaultPermissions(
                f"{what} {path} has permissions {stat.S_IMODE(info.st_mode):04o}: too wide",
                hint=f"Restrict it with: chmod {wanted:o} {path}",
            )


def write_private_file(
    path: Path, data: bytes, *, replace: bool, before_replace: Callable[[], None] | None = None
) -> None:
    """Write ``data`` atomically as a 0600 file: temp file in the same directory, fsync, rename.

    With ``replace=False`` an existing file is never overwritten (``os.link`` fails instead). A
    failed write leaves the previous file intact and no temp file behind; an fsync failure is
    final (the data is not retried on the same descriptor, whose dirty pages may be gone).
    """
    temp = ""
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if before_replace is not None:
            before_replace()
        if replace:
            os.replace(temp, path)
        else:
            os.link(temp, path)
            os.unlink(temp)
        _fsync_dir(path.parent)
    except FileExistsError:
        os.unlink(temp)
        raise VaultKeyError(f"{path} already exists; refusing to overwrite it") from None
    except OSError as error:
        if temp and os.path.lexists(temp):
            os.unlink(temp)
        raise VaultIOError(
            f"cannot write {path}: {error.strerror or 'I/O error'}", details={"path": str(path)}
        ) from None


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
