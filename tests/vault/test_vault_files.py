"""Files and permissions (RELIABILITY A1, D1-D5): modes, symlinks, owners, temp files, plaintext."""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
import urllib.parse
from pathlib import Path

import pytest
from pydantic import SecretStr
from vault_harness import (
    add_credential,
    encodings,
    files_under,
    find_secrets,
    make_secret,
    run_child,
)

from exact_connector.exceptions import VaultKeyError, VaultPermissions
from exact_connector.vault import Vault, default_home
from exact_connector.vault.sealing import KeyRing


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_scanner_finds_plain_base64_hex_and_url_encoded_secrets(tmp_path: Path) -> None:
    """The raw-bytes scanner is not a check that cannot fail: it finds every trivial encoding."""
    secret = make_secret("refresh")
    raw = secret.encode()
    planted = {
        "plain": raw,
        "base64": base64.b64encode(b"xy" + raw),
        "urlsafe": base64.urlsafe_b64encode(b"z" + raw),
        "hex": raw.hex().upper().encode(),
        "url": urllib.parse.quote(secret, safe="").encode(),
    }
    for name, data in planted.items():
        (tmp_path / name).write_bytes(b"prefix " + data + b" suffix")
    assert len(find_secrets(files_under(tmp_path), [secret])) == len(planted)
    assert len(encodings(secret)) >= 8


def test_a1_secrets_round_trip_across_processes_and_never_hit_the_disk_in_clear(
    home: Path, ring: KeyRing, tmp_path: Path
) -> None:
    """Two credentials written by a process killed after its last commit: db, -wal, -shm and
    temp files hold no secret in any trivial encoding, and a new process reads them back."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    plan = {
        name: {field: make_secret(field) for field in ("client", "refresh", "access", "rotated")}
        for name in ("first", "second")
    }
    code = f"""
        import json
        from pydantic import SecretStr
        from exact_connector.vault import Vault
        vault = Vault.open({str(home)!r})
        for name, s in json.loads({json.dumps(plan)!r}).items():
            c = vault.begin(connector_name=name, auth_type="oauth2_refresh_token",
                server_url="https://start.exactonline.nl", client_id="c",
                client_secret=SecretStr(s["client"]), refresh_token=SecretStr(s["refresh"]))
            vault.update_tokens(c.id, expected_version=1, access_token=SecretStr(s["access"]),
                refresh_token=SecretStr(s["rotated"]), issued_at=1.0, expires_at=601.0)
        """
    result = run_child(
        code,
        ring=ring,
        EXACT_CONNECTOR_CRASH_AT="tokens.after_commit:2",
        TMPDIR=str(temp),
        SQLITE_TMPDIR=str(temp),
    )
    assert result.returncode == 137, result.stderr
    left = files_under(home, temp)
    assert {p.name for p in left} >= {"vault.db", "vault.db-wal", "vault.db-shm"}
    everything = [value for secrets in plan.values() for value in secrets.values()]
    assert find_secrets(left, everything) == []
    with Vault.open(home, keys=ring) as vault:
        for name, secrets in plan.items():
            credential = vault.get(name)
            assert credential.client_secret == SecretStr(secrets["client"])
            assert credential.refresh_token == SecretStr(secrets["rotated"])
            assert credential.access_token == SecretStr(secrets["access"])
    assert find_secrets(files_under(home, temp), everything) == []


def test_d1_new_vault_files_are_private_even_under_umask_022(home: Path) -> None:
    """Directory 0700; db, -wal, -shm, commit signal, key file and lock files 0600 (SQLite alone
    makes 0644)."""
    previous = os.umask(0o022)
    try:
        Vault.init(home)
        vault = Vault.open(home)
        credential = add_credential(vault, "a")
        with vault.lock(credential.id):
            pass
        modes = {path.name: _mode(path) for path in home.rglob("*")}
        vault.close()
    finally:
        os.umask(previous)
    assert _mode(home) == 0o700
    assert modes.pop("locks") == 0o700
    assert set(modes) == {
        "vault.db",
        "vault.db-wal",
        "vault.db-shm",
        "vault.db-gen",
        "vault.key",
        f"{credential.id}.lock",
        "vault-creation.lock",  # held while a new vault file is created
    }
    assert set(modes.values()) == {0o600}


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("vault.db", 0o644),
        ("vault.db", 0o640),
        ("vault.db-wal", 0o604),
        ("vault.db-gen", 0o644),
        (".", 0o755),
    ],
    ids=["db-0644", "db-0640", "wal-0604", "gen-0644", "dir-0755"],
)
def test_d2_group_or_world_access_is_refused_with_a_chmod_hint(
    home: Path, ring: KeyRing, name: str, mode: int
) -> None:
    """Policy: refuse (never silently chmod); the message says "too wide", the hint how to fix."""
    Vault.open(home, keys=ring).close()
    target = home / name
    if not target.exists():
        target.touch(mode=0o600)
    target.chmod(mode)
    with pytest.raises(VaultPermissions) as caught:
        Vault.open(home, keys=ring)
    assert "too wide" in caught.value.message
    assert f"chmod {'700' if name == '.' else '600'}" in caught.value.hint
    assert _mode(target) == mode  # not changed behind the user's back


@pytest.mark.parametrize("name", ["vault.db", "vault.db-gen"], ids=["db", "commit-signal"])
def test_d3_vault_file_that_is_a_symlink_is_refused(
    home: Path, ring: KeyRing, tmp_path: Path, name: str
) -> None:
    """vault.db (or its commit signal) pointing elsewhere is neither followed nor written
    through."""
    Vault.open(home, keys=ring).close()
    elsewhere = tmp_path / "elsewhere"
    (home / name).rename(elsewhere)
    before = elsewhere.read_bytes()
    (home / name).symlink_to(elsewhere)
    with pytest.raises(VaultPermissions, match="symbolic link"):
        Vault.open(home, keys=ring)
    assert elsewhere.read_bytes() == before


def test_d3_vault_directory_that_is_a_symlink_is_refused(tmp_path: Path, ring: KeyRing) -> None:
    """A home given as a symlink to a directory is refused."""
    real = tmp_path / "real"
    Vault.open(real, keys=ring).close()
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(VaultPermissions, match="symbolic link"):
        Vault.open(tmp_path / "link", keys=ring)


def test_d3_key_file_that_is_a_symlink_is_refused(home: Path, tmp_path: Path) -> None:
    """A key file symlink is refused like the database."""
    Vault.init(home)
    target = tmp_path / "key"
    (home / "vault.key").rename(target)
    (home / "vault.key").symlink_to(target)
    with pytest.raises(VaultPermissions, match="symbolic link"):
        Vault.open(home)


def test_d3_directory_owned_by_another_user_is_refused(home: Path, ring: KeyRing) -> None:
    """Another user's directory is refused (as root: a chowned directory; else /tmp itself)."""
    if os.geteuid() == 0:
        home.mkdir(mode=0o700)
        os.chown(home, 65534, 65534)
        target = home
    else:
        target = Path("/tmp")
    with pytest.raises(VaultPermissions, match="owned by uid"):
        Vault.open(target, keys=ring)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_d4_readable_key_file_is_refused(home: Path, mode: int) -> None:
    """A key file readable by group or others: VaultPermissions naming the key file."""
    key_file = Vault.init(home)
    key_file.chmod(mode)
    with pytest.raises(VaultPermissions) as caught:
        Vault.open(home)
    assert f"key file {key_file}" in caught.value.message


def test_d5_key_file_temp_lives_in_the_vault_directory_and_is_cleaned(
    home: Path, tmp_path: Path
) -> None:
    """Killed between temp write and rename: the 0600 temp is in home (not TMPDIR); init cleans it."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    result = run_child(
        f"from exact_connector.vault import Vault; Vault.init({str(home)!r})",
        EXACT_CONNECTOR_CRASH_AT="keyfile.before_replace",
        TMPDIR=str(temp),
    )
    assert result.returncode == 137, result.stderr
    (leftover,) = home.iterdir()
    assert leftover.name.startswith(".vault.key.") and _mode(leftover) == 0o600
    assert list(temp.iterdir()) == []
    key_file = Vault.init(home)
    assert [path.name for path in home.iterdir()] == ["vault.key"]
    assert KeyRing.parse(key_file.read_text(), source="key file").primary


def test_d5_a_full_workload_creates_no_file_outside_the_vault_directory(
    home: Path, ring: KeyRing, tmp_path: Path
) -> None:
    """SQLite's temp store is memory: TMPDIR stays empty through writes, rotation and verify."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    code = f"""
        from pydantic import SecretStr
        from exact_connector.vault import Vault
        vault = Vault.open({str(home)!r})
        for n in range(20):
            c = vault.begin(connector_name=f"c{{n}}", auth_type="oauth2_refresh_token",
                server_url="https://start.exactonline.nl", client_id="c",
                client_secret=SecretStr("s" * 5000), refresh_token=SecretStr(f"r{{n}}"))
            vault.set_divisions(c.id, list(range(1, 200)), 7)
        vault.rotate_key()
        assert all(r.ok for r in vault.verify())
        vault.list()
        vault.close()
        """
    result = run_child(
        code,
        ring=ring,
        TMPDIR=str(temp),
        SQLITE_TMPDIR=str(temp),
    )
    assert result.returncode == 0, result.stderr
    assert list(temp.iterdir()) == []


def test_init_refuses_to_create_a_key_for_a_vault_that_lost_its_key(
    home: Path, ring: KeyRing
) -> None:
    """A key file is never made for an existing vault: it could not open it anyway."""
    Vault.open(home, keys=ring).close()
    with pytest.raises(VaultKeyError, match="key file is missing"):
        Vault.init(home)
    assert not (home / "vault.key").exists()


def test_init_keeps_an_existing_key_file(home: Path) -> None:
    """Vault.init is idempotent: the key file is never rewritten."""
    first = Vault.init(home).read_bytes()
    assert Vault.init(home).read_bytes() == first


@pytest.mark.parametrize(
    ("platform", "env", "expected"),
    [
        ("linux", {"XDG_DATA_HOME": "/data"}, "/data/exact-connector"),
        ("linux", {"XDG_DATA_HOME": "relative"}, "~/.local/share/exact-connector"),
        ("darwin", {}, "~/Library/Application Support/exact-connector"),
        ("win32", {"LOCALAPPDATA": "/appdata"}, "/appdata/exact-connector"),
        ("linux", {"EXACT_CONNECTOR_HOME": "/custom"}, "/custom"),
    ],
)
def test_default_home_follows_the_platform_and_exact_connector_home(
    monkeypatch: pytest.MonkeyPatch, platform: str, env: dict[str, str], expected: str
) -> None:
    """EXACT_CONNECTOR_HOME wins; otherwise the platform's per-user data directory."""
    monkeypatch.setattr(sys, "platform", platform)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert default_home() == Path(expected).expanduser()
