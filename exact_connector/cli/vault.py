"""Commands for the credential store: ``vault init|verify|rotate-key|keys`` and ``credentials``.

``credentials list|show|remove`` live here; other modules add more ``credentials`` subcommands
through :func:`credentials_subparsers`, and share :func:`vault_options` and :func:`open_vault`.
Secrets are never printed: only ``sha256-hmac:…`` fingerprints.
"""

from __future__ import annotations

import argparse
import os
import sys
import weakref
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exact_connector.cli import command, group
from exact_connector.cli._output import print_json, print_table
from exact_connector.exceptions import EXIT_CODES, Category, InputError, VaultKeyError
from exact_connector.vault import Credential, RotationReport, Vault, default_home, save_key_file
from exact_connector.vault.keyfile import load_key_ring
from exact_connector.vault.sealing import KEY_ENV, KEY_FILE_NAME, MasterKey, generate_key
from exact_connector.vault.sqlite import DB_NAME

__all__ = [
    "credential_summary",
    "credentials_subparsers",
    "open_vault",
    "register",
    "vault_options",
]

_CREDENTIALS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_FAILED = EXIT_CODES[Category.SYSTEM]


def vault_options(*, workspace: str | None = "default") -> argparse.ArgumentParser:
    """A parent parser with ``--home`` and ``--workspace`` for any command that opens the vault."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--home",
        type=Path,
        metavar="DIR",
        help="vault directory (default: $EXACT_CONNECTOR_HOME or the user data directory)",
    )
    parent.add_argument(
        "--workspace",
        default=workspace,
        metavar="NAME",
        help=f"workspace to act in (default: {workspace or 'all'})",
    )
    return parent


def open_vault(args: argparse.Namespace) -> Vault:
    """Open the vault chosen by ``--home``/``--workspace`` (keys from env or the key file)."""
    return Vault.open(args.home, workspace=args.workspace or "default")


def credentials_subparsers(subparsers: Any) -> Any:
    """The ``credentials`` group's subparsers, created on first use: add subcommands to it."""
    if subparsers not in _CREDENTIALS:
        _CREDENTIALS[subparsers] = group(subparsers, "credentials")
    return _CREDENTIALS[subparsers]


def register(subparsers: Any) -> None:
    """Add ``vault`` and ``credentials`` to the CLI."""
    actions = group(subparsers, "vault")
    home = vault_options(workspace=None)
    command(actions, "init", _init, home, summary="create the vault directory and key")
    verify = command(
        actions, "verify", _verify, home, summary="decrypt every record; non-zero exit if any fails"
    )
    verify.add_argument("--json", action="store_true", help="results as JSON")
    rotate = command(
        actions,
        "rotate-key",
        _rotate,
        home,
        summary="re-encrypt every record under a new data key (resumes an interrupted rotation)",
    )
    rotate.add_argument("--resume", action="store_true", help="only finish an interrupted rotation")
    rotate.add_argument(
        "--master",
        action="store_true",
        help=f"rotate the master key instead: a new key in {KEY_FILE_NAME} (or the first key "
        f"of {KEY_ENV}) wraps the data keys; records are not rewritten",
    )
    rotate.add_argument(
        "--retire-old",
        action="store_true",
        help="remove older master keys from the vault (and from the key file)",
    )
    keys = command(actions, "keys", _keys, home, summary="list master and data keys")
    keys.add_argument("--json", action="store_true", help="keys as JSON")

    credentials = credentials_subparsers(subparsers)
    scoped = vault_options()
    listing = command(credentials, "list", _list, scoped, summary="credentials of a workspace")
    listing.add_argument("--json", action="store_true", help="as JSON")
    show = command(credentials, "show", _show, scoped, summary="one credential (fingerprints)")
    show.add_argument("name", help="connector name or credential id")
    show.set_defaults(names_credential=True)  # NAME in a `run:` line
    show.add_argument("--json", action="store_true", help="as JSON")
    remove = command(credentials, "remove", _remove, scoped, summary="delete a credential")
    remove.add_argument("name", help="connector name or credential id")
    remove.set_defaults(names_credential=True)  # NAME in a `run:` line
    remove.add_argument("--yes", action="store_true", help="do not ask for confirmation")


# --- vault ---------------------------------------------------------------------------------------


def _init(args: argparse.Namespace) -> int:
    home = Path(os.path.abspath(args.home or default_home()))
    key_path = home / KEY_FILE_NAME
    if os.path.lexists(key_path):
        raise VaultKeyError(
            f"a key file already exists at {key_path}; refusing to overwrite it",
            hint="Keep it (and a backup). To change keys use: exact-connector vault rotate-key",
        )
    Vault.init(home)
    if os.environ.get(KEY_ENV):
        print(f"note: {KEY_ENV} is set and takes precedence over the key file", file=sys.stderr)
    with Vault.open(home) as vault:
        print(f"vault:    {vault.home / 'vault.db'}")
    print(f"key file: {key_path}")
    print("Back up the key file apart from the vault: without it the vault cannot be opened.")
    return 0


def _verify(args: argparse.Namespace) -> int:
    with open_vault(args) as vault:
        results = vault.verify(all_workspaces=args.workspace is None)
    if args.json:
        print_json([result.model_dump() for result in results])
    else:
        for result in results:
            status = "OK" if result.ok else f"{result.error_code} ({result.field or 'record'})"
            print(f"{result.workspace}/{result.connector_name}  {result.id}  {status}")
        bad = sum(not result.ok for result in results)
        print(f"{len(results)} credential(s), {bad} failed", file=sys.stderr)
    return _FAILED if any(not result.ok for result in results) else 0


def _rotate(args: argparse.Namespace) -> int:
    if args.master or args.retire_old:
        return _rotate_master(args)
    with open_vault(args) as vault:
        pending = any(key.kind == "data" and not key.primary for key in vault.key_info())
        if args.resume and not pending:
            print("no interrupted rotation to resume")
            return 0
        report = vault.rotate_key()
    return _print_report(report)


def _rotate_master(args: argparse.Namespace) -> int:
    home = Path(os.path.abspath(args.home or default_home()))
    from_env = bool(os.environ.get(KEY_ENV))
    ring = load_key_ring(home, home / DB_NAME)
    with Vault.open(home, keys=ring) as vault:
        wrapped = {key.kid for key in vault.key_info() if key.kind == "master"}
        new_key: bytes | None = None
        if args.master and ring.primary.kid in wrapped and not args.resume:
            if from_env:
                raise VaultKeyError(
                    f"the first key of {KEY_ENV} already seals this vault",
                    hint=f"Put the new key first in {KEY_ENV} (kid:base64,old...), then rerun.",
                )
            new_key = generate_key()
            ring = ring.with_primary(MasterKey.from_bytes(new_key))
            save_key_file(home, ring)  # new key first, old kept: a crash here loses nothing
        report = vault.rewrap(new_key, retire_old=args.retire_old)
    if args.retire_old and not from_env:
        save_key_file(home, ring.only_primary())
    elif args.retire_old:
        print(f"remove the retired keys from {KEY_ENV}: {', '.join(report.retired) or 'none'}")
    return _print_report(report)


def _print_report(report: RotationReport) -> int:
    what = "records re-encrypted" if report.kind == "data" else "data keys rewrapped"
    print(f"{report.kind} key {report.new_kid}{' (resumed)' if report.resumed else ''}")
    print(f"  {what}: {report.reencrypted}, already current: {report.unchanged}")
    print(f"  retired: {', '.join(report.retired) or 'none'}")
    for failure in report.failed:
        print(f"  FAILED {failure.connector_name} {failure.id}: {failure.error_code}")
    return 0 if report.ok else _FAILED


def _keys(args: argparse.Namespace) -> int:
    with open_vault(args) as vault:
        keys = vault.key_info()
    if args.json:
        print_json([key.model_dump() for key in keys])
        return 0
    rows = [
        (
            key.kid,
            key.kind,
            "yes" if key.primary else "",
            "yes" if key.available else "NO",
            key.records,
        )
        for key in keys
    ]
    print_table(
        [[("" if cell is None else cell) for cell in row] for row in rows],
        ["KID", "KIND", "PRIMARY", "AVAILABLE", "RECORDS"],
    )
    return 0


# --- credentials ---------------------------------------------------------------------------------


def _when(epoch: float | None) -> str | None:
    return (
        None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
    )


def credential_summary(vault: Vault, credential: Credential) -> dict[str, Any]:
    """What ``credentials show`` prints (and the UI's Vault page shows): secrets as fingerprints."""
    secrets = {
        field: None if (secret := getattr(credential, field)) is None else vault.fingerprint(secret)
        for field in ("client_secret", "refresh_token", "access_token")
    }
    return {
        "id": credential.id,
        "workspace": credential.workspace,
        "connector_name": credential.connector_name,
        "auth_type": credential.auth_type,
        "server_url": credential.server_url,
        "client_id": credential.client_id,
        "redirect_uri": credential.redirect_uri,
        "status": credential.status,
        "status_reason": credential.status_reason,
        "allowed_divisions": list(credential.allowed_divisions),
        "default_division": credential.default_division,
        "access_token_issued_at": _when(credential.access_token_issued_at),
        "access_token_expires_at": _when(credential.access_token_expires_at),
        "refresh_token_issued_at": _when(credential.refresh_token_issued_at),
        "version": credential.version,
        "created_at": _when(credential.created_at),
        "updated_at": _when(credential.updated_at),
        "fingerprints": secrets,
    }


def _list(args: argparse.Namespace) -> int:
    with open_vault(args) as vault:
        entries = []
        for result in vault.verify():  # one unreadable record must not hide the others
            if result.ok:
                entries.append(credential_summary(vault, vault.get(result.id)))
            else:
                entries.append(
                    {
                        "id": result.id,
                        "connector_name": result.connector_name,
                        "status": "unreadable",
                        "error": result.error_code,
                    }
                )
    if args.json:
        print_json(entries)
        return 0
    if not entries:
        sys.stdout.write(
            f"No credentials in workspace '{args.workspace}'. "
            "Add one with: exact-connector credentials add --help\n"
        )
        return 0
    rows = [
        (e["connector_name"], e["id"], e["status"], e.get("server_url", e.get("error")))
        for e in entries
    ]
    print_table(rows, ["NAME", "ID", "STATUS", "SERVER / ERROR"])
    return 0


def _show(args: argparse.Namespace) -> int:
    with open_vault(args) as vault:
        summary = credential_summary(vault, vault.get(args.name))
    if args.json:
        print_json(summary)
        return 0
    fingerprints = summary.pop("fingerprints")
    for name, value in {**summary, **fingerprints}.items():
        print(f"{name:24} {'-' if value is None else value}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    if not args.yes:
        if not sys.stdin.isatty():
            raise InputError(
                "refusing to remove a credential without confirmation",
                errors=[{"path": "$.yes", "code": "required", "message": "pass --yes"}],
            )
        answer = input(f"Remove credential {args.name!r} from workspace {args.workspace!r}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("not removed")
            return 0
    with open_vault(args) as vault:
        vault.remove(args.name)
    print(f"removed {args.name}")
    return 0
