"""The ``vault`` and ``credentials`` commands: output, exit codes, fingerprints, key files."""

from __future__ import annotations

import argparse
import io
import json
import os
import re
from pathlib import Path

import pytest
from vault_harness import add_credential, raw_db, read_blob, secret_values, write_blob

from exact_connector.cli import build_parser, main
from exact_connector.cli.vault import credentials_subparsers
from exact_connector.exceptions import VaultKeyMismatch
from exact_connector.vault import Vault
from exact_connector.vault.keyfile import load_key_ring


@pytest.fixture
def cli_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A vault made by ``vault init``, chosen through EXACT_CONNECTOR_HOME."""
    monkeypatch.setenv("EXACT_CONNECTOR_HOME", str(home))
    assert main(["vault", "init"]) == 0
    return home


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_init_creates_key_and_vault_and_refuses_to_overwrite(
    cli_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """init prints where things are; a second init exits 4 and leaves the key alone."""
    capsys.readouterr()
    key = (cli_home / "vault.key").read_bytes()
    code, _, err = _run(capsys, "vault", "init")
    assert code == 4 and "error[vault_key_error]" in err and "refusing to overwrite" in err
    assert (cli_home / "vault.key").read_bytes() == key
    assert (cli_home / "vault.db").exists()


def test_home_option_overrides_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--home DIR wins over EXACT_CONNECTOR_HOME."""
    monkeypatch.setenv("EXACT_CONNECTOR_HOME", str(tmp_path / "env"))
    code, out, _ = _run(capsys, "vault", "init", "--home", str(tmp_path / "flag"))
    assert code == 0 and str(tmp_path / "flag" / "vault.key") in out
    assert not (tmp_path / "env").exists()


def test_list_and_show_print_fingerprints_never_secrets(
    cli_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Table and JSON output name credentials and show secrets as sha256-hmac fingerprints."""
    with Vault.open(cli_home) as vault:
        credential = add_credential(vault, "prod")
        expected = vault.fingerprint(credential.refresh_token)  # type: ignore[arg-type]
    secrets = secret_values(credential).values()
    code, table, _ = _run(capsys, "credentials", "list")
    assert code == 0 and "prod" in table and credential.id in table
    code, listed, _ = _run(capsys, "credentials", "list", "--json")
    assert json.loads(listed)[0]["fingerprints"]["refresh_token"] == expected
    code, shown, _ = _run(capsys, "credentials", "show", "prod")
    assert code == 0 and re.search(r"refresh_token\s+sha256-hmac:[0-9a-f]{8}", shown)
    code, shown_json, _ = _run(capsys, "credentials", "show", credential.id, "--json")
    assert json.loads(shown_json)["status"] == "active"
    for output in (table, listed, shown, shown_json):
        assert not any(secret in output for secret in secrets)


def test_workspace_option_scopes_credentials(
    cli_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--workspace selects another workspace; a name from elsewhere is not found (exit 4)."""
    with Vault.open(cli_home, workspace="team-b") as vault:
        add_credential(vault, "theirs")
    code, out, _ = _run(capsys, "credentials", "list", "--workspace", "team-b", "--json")
    assert [c["connector_name"] for c in json.loads(out)] == ["theirs"]
    code, _, err = _run(capsys, "credentials", "show", "theirs")
    assert code == 4 and "error[credential_not_found]" in err


def test_verify_reports_each_record_and_fails_when_one_is_broken(
    cli_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One line per record with OK or the error code; exit 6 if any record fails."""
    with Vault.open(cli_home) as vault:
        good, bad = add_credential(vault, "good"), add_credential(vault, "bad")
    assert _run(capsys, "vault", "verify")[0] == 0
    blob = bytearray(read_blob(cli_home, bad.id, "refresh_token"))
    blob[-1] ^= 1
    write_blob(cli_home, bad.id, "refresh_token", bytes(blob))
    code, out, _ = _run(capsys, "vault", "verify")
    assert code == 6
    assert f"default/good  {good.id}  OK" in out
    assert f"default/bad  {bad.id}  vault_integrity (refresh_token)" in out
    code, listed, _ = _run(capsys, "credentials", "list", "--json")
    assert {c["connector_name"]: c["status"] for c in json.loads(listed)} == {
        "bad": "unreadable",
        "good": "active",
    }


@pytest.mark.parametrize("command", [("credentials", "list"), ("vault", "verify")])
def test_a_zero_byte_vault_file_is_corrupt_and_left_as_it_is(
    cli_home: Path, capsys: pytest.CaptureFixture[str], command: tuple[str, str]
) -> None:
    """Issue 11 item 2: an existing vault.db is never re-created; exit 6, the restore hint."""
    with Vault.open(cli_home) as vault:
        add_credential(vault, "lost")
    os.truncate(cli_home / "vault.db", 0)

    code, out, err = _run(capsys, *command)

    assert (code, out) == (6, "")
    assert err.splitlines()[0].startswith("error[vault_corrupt]")
    assert "backup" in err and "do not delete" in err and "Traceback" not in err
    assert (cli_home / "vault.db").stat().st_size == 0


def test_one_row_that_is_not_utf8_is_listed_unreadable_and_the_others_work(
    cli_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 11 item 8: no "Free disk space" for everyone, no traceback: that record only."""
    with Vault.open(cli_home) as vault:
        good, bad = add_credential(vault, "good"), add_credential(vault, "bad")
    with raw_db(cli_home) as conn:
        conn.execute(
            "UPDATE credentials SET connector_name = CAST(x'6261ff64' AS TEXT) WHERE id = ?",
            (bad.id,),
        )

    code, out, err = _run(capsys, "vault", "verify")
    listed_code, listed, list_err = _run(capsys, "credentials", "list", "--json")

    assert code == 6
    assert f"default/good  {good.id}  OK" in out
    assert f"default/ba\ufffdd  {bad.id}  vault_corrupt (connector_name)" in out
    assert listed_code == 0, list_err
    statuses = {c["id"]: c["status"] for c in json.loads(listed)}
    assert statuses == {good.id: "active", bad.id: "unreadable"}
    assert "Free disk space" not in err + list_err and "Traceback" not in err + list_err


def test_remove_needs_confirmation_when_not_interactive(
    cli_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --yes and without a terminal: exit 3, nothing removed; with --yes: removed."""
    with Vault.open(cli_home) as vault:
        add_credential(vault, "old")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, _, err = _run(capsys, "credentials", "remove", "old")
    assert code == 3 and "--yes" in err
    code, out, _ = _run(capsys, "credentials", "remove", "old", "--yes")
    assert code == 0 and "removed old" in out
    with Vault.open(cli_home) as vault:
        assert vault.list() == []


def test_rotate_key_reencrypts_and_resume_has_nothing_to_do(
    cli_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """rotate-key moves every record to a new data key; --resume then reports nothing pending."""
    with Vault.open(cli_home) as vault:
        credentials = [add_credential(vault, f"c{n}") for n in range(3)]
    code, out, _ = _run(capsys, "vault", "rotate-key")
    assert code == 0 and "records re-encrypted: 3" in out
    assert _run(capsys, "vault", "rotate-key", "--resume")[1].startswith("no interrupted")
    with Vault.open(cli_home) as vault:
        assert [secret_values(vault.get(c.id)) for c in credentials] == [
            secret_values(c) for c in credentials
        ]


def test_master_key_rotation_updates_the_key_file_and_retires_the_old_key(
    cli_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--master puts a new key first in vault.key; --retire-old drops the old one everywhere."""
    old_ring = load_key_ring(cli_home)
    with Vault.open(cli_home) as vault:
        credential = add_credential(vault, "a")
    with raw_db(cli_home) as conn:
        blobs = conn.execute("SELECT client_secret, refresh_token FROM credentials").fetchall()
    assert _run(capsys, "vault", "rotate-key", "--master")[0] == 0
    ring = load_key_ring(cli_home)
    assert ring.kids[1:] == old_ring.kids and len(ring) == 2
    code, out, _ = _run(capsys, "vault", "rotate-key", "--retire-old")
    assert code == 0 and old_ring.primary.kid in out
    assert load_key_ring(cli_home).kids == ring.kids[:1]
    with raw_db(cli_home) as conn:  # master rotation never touches record blobs
        assert (
            conn.execute("SELECT client_secret, refresh_token FROM credentials").fetchall() == blobs
        )
    with pytest.raises(VaultKeyMismatch):
        Vault.open(cli_home, keys=old_ring)
    with Vault.open(cli_home) as vault:
        assert secret_values(vault.get(credential.id)) == secret_values(credential)
    code, out, _ = _run(capsys, "vault", "keys", "--json")
    assert [k["kid"] for k in json.loads(out) if k["kind"] == "master"] == list(ring.kids[:1])


def test_missing_key_is_one_line_and_a_hint_not_a_traceback(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No key anywhere: exit 4 with error[vault_locked] and the init hint."""
    code, _, err = _run(capsys, "credentials", "list", "--home", str(home))
    assert code == 4
    assert err.splitlines()[0].startswith("error[vault_locked]")
    assert "Traceback" not in err and "vault init" in err


def test_other_modules_can_add_credentials_subcommands() -> None:
    """credentials_subparsers returns the one shared group, so `credentials add` can join it."""
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    group = credentials_subparsers(subparsers)
    assert credentials_subparsers(subparsers) is group
    group.add_parser("add").set_defaults(handler=lambda args: 42)
    args = parser.parse_args(["credentials", "add"])
    assert args.handler(args) == 42
    real = build_parser().parse_args(["credentials", "list", "--workspace", "w"])
    assert real.workspace == "w" and real.handler.__name__ == "_list"


def test_an_empty_list_says_how_to_add_a_credential(
    cli_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No bare header row: the person is told there is nothing yet, and what to run."""
    capsys.readouterr()  # what cli_home's init printed
    code, out, _ = _run(capsys, "credentials", "list")
    assert code == 0
    assert "No credentials in workspace 'default'" in out
    assert "credentials add" in out
    assert json.loads(_run(capsys, "credentials", "list", "--json")[1]) == []
