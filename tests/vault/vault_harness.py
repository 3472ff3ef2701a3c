"""Shared helpers for the vault tests: secrets, raw database access, scanners, child processes.

Kept importable by name so ``multiprocessing`` spawn children can unpickle the worker functions.
"""

from __future__ import annotations

import base64
import os
import secrets
import sqlite3
import subprocess
import sys
import textwrap
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import SecretStr

from exact_connector.exceptions import ConcurrentUpdate, ExactConnectorError
from exact_connector.vault import Credential, Vault
from exact_connector.vault.sealing import KeyRing, seal_blob

REPO = Path(__file__).resolve().parents[2]


def make_secret(label: str) -> str:
    """A random secret with characters that url-encoding and base64 both change."""
    return f"{label}-{secrets.token_urlsafe(18)}/+=&?é"


def add_credential(vault: Vault, name: str, *, tokens: bool = True) -> Credential:
    """A credential with all three secrets set (random), status active."""
    credential = vault.begin(
        connector_name=name,
        auth_type="oauth2_refresh_token",
        server_url="https://start.exactonline.nl",
        client_id="b81cc4de-d192-400e-bcb4-09254394c52a",
        client_secret=SecretStr(make_secret("client-secret")),
        refresh_token=SecretStr(make_secret("refresh")),
    )
    if tokens:
        access, refresh = make_secret("access"), make_secret("refresh")
        credential = put_tokens(vault, credential.id, 1, access, refresh, issued_at=1_767_225_600.0)
    return vault.activate(credential.id)


def put_tokens(
    vault: Vault,
    credential_id: str,
    version: int,
    access: str,
    refresh: str | None = None,
    *,
    issued_at: float = 1.0,
    refresh_issued_at: float | None = None,
) -> Credential:
    """``update_tokens`` at ``version``: an access token valid 600 s, and a refresh token
    (``refresh``, else the access token's text)."""
    return vault.update_tokens(
        credential_id,
        expected_version=version,
        access_token=SecretStr(access),
        refresh_token=SecretStr(refresh if refresh is not None else access),
        issued_at=issued_at,
        expires_at=issued_at + 600.0,
        refresh_issued_at=refresh_issued_at,
    )


def secret_values(credential: Credential) -> dict[str, str]:
    """The plaintext of every secret field that is set."""
    return {
        field: secret.get_secret_value()
        for field in ("client_secret", "refresh_token", "access_token")
        if (secret := getattr(credential, field)) is not None
    }


@contextmanager
def raw_db(home: Path) -> Iterator[sqlite3.Connection]:
    """A plain SQLite connection to the vault file, for tampering and inspection."""
    conn = sqlite3.connect(home / "vault.db", isolation_level=None, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        yield conn
    finally:
        conn.close()


def read_blob(home: Path, credential_id: str, field: str) -> bytes:
    with raw_db(home) as conn:
        row = conn.execute(f"SELECT {field} FROM credentials WHERE id = ?", (credential_id,))
        return bytes(row.fetchone()[0])


def write_blob(home: Path, credential_id: str, field: str, blob: object) -> None:
    with raw_db(home) as conn:
        conn.execute(f"UPDATE credentials SET {field} = ? WHERE id = ?", (blob, credential_id))


def tamper(home: Path, credential_id: str, field: str = "client_secret") -> None:
    """Flip one bit of a stored field's authentication tag: its record no longer decrypts."""
    blob = bytearray(read_blob(home, credential_id, field))
    blob[-1] ^= 0x01
    write_blob(home, credential_id, field, bytes(blob))


# --- scanners ----------------------------------------------------------------------------------


def encodings(secret: str) -> set[bytes]:
    """The secret as raw bytes and in trivial encodings: base64 (any alignment), hex, url."""
    raw = secret.encode("utf-8")
    forms = {
        raw,
        raw.hex().encode(),
        raw.hex().upper().encode(),
        urllib.parse.quote(secret, safe="").encode(),
        urllib.parse.quote_plus(secret).encode(),
    }
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        for shift, skip in ((0, 0), (1, 2), (2, 3)):
            encoded = encode(b"\0" * shift + raw)
            forms.add(encoded[skip:-4])  # the stable middle, whatever surrounds the secret
    return forms


def files_under(*roots: Path) -> list[Path]:
    return [path for root in roots for path in root.rglob("*") if path.is_file()]


def find_secrets(paths: Iterable[Path], plaintexts: Iterable[str]) -> list[str]:
    """Every (file, secret label) where a secret or one of its encodings occurs."""
    needles = [(secret[:14], form) for secret in plaintexts for form in encodings(secret)]
    hits = []
    for path in paths:
        data = path.read_bytes()
        hits += [f"{path.name}: {label}" for label, form in needles if form in data]
    return hits


# --- child processes ----------------------------------------------------------------------------


def child_env(ring: KeyRing | None = None, **extra: str) -> dict[str, str]:
    """A child's environment: none of ours, this repository importable, ``ring`` as its key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXACT_CONNECTOR_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(Path(__file__).parent)])
    if ring is not None:
        env["EXACT_CONNECTOR_VAULT_KEY"] = key_env(ring.to_text())
    env.update(extra)
    return env


def key_env(ring_text: str) -> str:
    """The EXACT_CONNECTOR_VAULT_KEY value for a ring's key-file text."""
    lines = [line for line in ring_text.splitlines() if line and not line.startswith("#")]
    return ",".join(lines)


def run_child(
    code: str, ring: KeyRing | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run a Python snippet in a fresh interpreter (crash hooks are read at import)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=child_env(ring, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def start_child(code: str, ring: KeyRing | None = None, **env: str) -> subprocess.Popen[str]:
    """Start a Python snippet in a fresh interpreter, its stdin and stdout piped to us."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=child_env(ring, **env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# --- multiprocessing workers (spawned) ----------------------------------------------------------


def seal_worker(args: tuple[bytes, int]) -> list[bytes]:
    """Seal the same plaintext ``count`` times under one key."""
    key, count = args
    return [
        seal_blob("dk-00000000", key, b"same plaintext", vault_id="v", record="r", field="f")
        for _ in range(count)
    ]


def cas_worker(args: tuple[str, str, str, int, int]) -> dict[str, object]:
    """Threads doing compare-and-swap token updates; returns successes and failure counts."""
    home, key_text, credential_id, threads, attempts = args
    vault = Vault.open(home, keys=KeyRing.parse(key_text, source="test"))
    successes: list[tuple[int, str]] = []
    failures: dict[str, int] = {}
    guard = threading.Lock()

    def work(thread: int) -> None:
        for attempt in range(attempts):
            token = f"refresh-{os.getpid()}-{thread}-{attempt}"
            try:
                current = vault.get(credential_id)
                new = vault.update_tokens(
                    credential_id,
                    expected_version=current.version,
                    access_token=SecretStr(f"access-{token}"),
                    refresh_token=SecretStr(token),
                    issued_at=float(attempt),
                    expires_at=float(attempt + 600),
                )
            except ConcurrentUpdate:
                name = "ConcurrentUpdate"
            except ExactConnectorError as error:
                name = type(error).__name__
            except Exception as error:  # anything raw (e.g. sqlite3) is a failure of the vault
                name = f"raw:{type(error).__module__}.{type(error).__name__}"
            else:
                with guard:
                    successes.append((new.version, token))
                continue
            with guard:
                failures[name] = failures.get(name, 0) + 1

    _run_threads(work, threads)
    vault.close()
    return {"successes": successes, "failures": failures}


def bracket_worker(args: tuple[str, str, str, int, int]) -> None:
    """Threads that take the credential lock and log ``<id`` / ``>id`` brackets inside it."""
    home, key_text, credential_id, threads, rounds = args
    vault = Vault.open(home, keys=KeyRing.parse(key_text, source="test"))
    log = Path(home) / "brackets.log"

    def work(thread: int) -> None:
        me = f"{os.getpid()}:{thread}"
        for _ in range(rounds):
            with vault.lock(credential_id, timeout=30):
                with log.open("a") as handle:
                    handle.write(f"<{me}\n")
                with log.open("a") as handle:
                    handle.write(f">{me}\n")

    _run_threads(work, threads)
    vault.close()


def _run_threads(work: Callable[[int], None], threads: int) -> None:
    """Run ``work(0)`` … ``work(threads - 1)`` in threads at once and wait for all of them."""
    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
