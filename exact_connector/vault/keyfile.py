"""Where the master keys come from: ``EXACT_CONNECTOR_VAULT_KEY``, else the key file ``vault.key``.

The key file lives in the vault's home, is 0600 and is only ever written whole (temp file, fsync,
rename): a crash leaves the old file or the new one, never half of either. The environment
variable wins over the file, and an empty one is an error rather than a silent fallback.
"""

from __future__ import annotations

import os
from pathlib import Path

from exact_connector.exceptions import VaultKeyError, VaultLocked, VaultPermissions
from exact_connector.vault._files import (
    PRIVATE_OPEN,
    check_private_file,
    ensure_dir,
    write_private_file,
)
from exact_connector.vault.sealing import KEY_ENV, KEY_FILE_NAME, KeyRing, generate_key
from exact_connector.vault.store import crash_point

__all__ = ["create_key_file", "load_key_ring", "save_key_file"]


def load_key_ring(home: Path, vault_file: Path | None = None) -> KeyRing:
    """The ring from ``EXACT_CONNECTOR_VAULT_KEY``, else ``<home>/vault.key``; else locked
    (``vault_file``: the vault the key is for, if it is a file, so that a vault whose key went
    missing is told apart from one not made yet: only its own key opens it)."""
    env = os.environ.get(KEY_ENV)
    if env is not None:
        if not env.strip():
            raise VaultKeyError(
                f"{KEY_ENV} is set but empty",
                hint=f"Unset {KEY_ENV} to use the key file, or put the vault key in it.",
            )
        return KeyRing.parse(env, source=KEY_ENV)
    path = home / KEY_FILE_NAME
    if not check_private_file(path, "key file"):
        if vault_file is not None and os.path.lexists(vault_file):  # a new key would not open it
            raise VaultLocked(
                f"no vault key: the vault {vault_file} exists but its key file {path} is "
                f"missing and {KEY_ENV} is not set",
                details={"vault": str(vault_file)},
                hint=f"Restore {path} from a backup, or set {KEY_ENV} to the vault's key.",
            )
        raise VaultLocked(
            f"no vault key: {KEY_ENV} is not set and there is no key file at {path}",
            hint=f"Set {KEY_ENV}, or create the key file first (Vault.init({str(home)!r}), "
            "or the command line's vault init).",
        )
    try:
        fd = os.open(path, os.O_RDONLY | PRIVATE_OPEN)
        with os.fdopen(fd, "rb") as handle:
            raw = handle.read(64 * 1024)
    except OSError as error:
        raise VaultPermissions(f"cannot read key file {path}: {error.strerror}") from None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise VaultKeyError(f"key file {path} is not ASCII text") from None
    return KeyRing.parse(text, source=f"key file {path}")


def create_key_file(home: Path, vault_file: Path) -> Path:
    """Create ``home`` and a key file if there is none; refused if ``vault_file`` exists keyless."""
    ensure_dir(home)
    key_path = home / KEY_FILE_NAME
    for stale in home.glob(f".{KEY_FILE_NAME}.*.tmp"):  # left by a crash mid-write
        stale.unlink()
    if check_private_file(key_path, "key file"):
        return key_path
    if os.path.lexists(vault_file):
        raise VaultKeyError(
            f"a vault exists at {vault_file} but its key file is missing",
            hint=f"Set {KEY_ENV} to its key, or restore {key_path} from a backup.",
        )
    save_key_file(home, KeyRing.from_bytes(generate_key()), replace=False)
    return key_path


def save_key_file(home: Path, ring: KeyRing, *, replace: bool = True) -> None:
    """Write ``ring`` as ``<home>/vault.key``, atomically and 0600 (``replace=False``: only new)."""
    write_private_file(
        home / KEY_FILE_NAME,
        ring.to_text().encode("ascii"),
        replace=replace,
        before_replace=lambda: crash_point("keyfile.before_replace"),
    )
