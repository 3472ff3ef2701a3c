"""A newcomer's mistakes on the command line: each is told what fixes it, with the exit code
the README gives (a review walked the README's commands as a new user and found these)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from exact_connector.cli import main

pytestmark = pytest.mark.e2e


def _plain(
    *argv: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """``python -m exact_connector ARGV`` with no vault key in the environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EXACT_CONNECTOR_")}
    return subprocess.run(
        [sys.executable, "-m", "exact_connector", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=60,
        check=False,
    )


def _wait_in(pid: int, kernel_wait: str, seconds: float = 30) -> None:
    """Until process ``pid`` sleeps in a kernel function named with ``kernel_wait`` (its
    ``wchan``), or ``seconds`` have passed (a kernel that hides it: the process is there by then)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if kernel_wait in Path(f"/proc/{pid}/wchan").read_text():
                return
        except OSError:
            pass
        time.sleep(0.05)


# -- 1. the `run:` line of a vault key error points back at the command that refuses -----------


def test_vault_init_twice_does_not_tell_to_run_vault_init(tmp_path: Path) -> None:
    """``vault init`` on an initialised home refuses (rightly), then says ``run: … vault init``."""
    home = str(tmp_path / "v")
    assert _plain("--home", home, "vault", "init").returncode == 0
    again = _plain("--home", home, "vault", "init")
    assert again.returncode == 4
    assert "a key file already exists" in again.stderr
    assert "run: exact-connector vault init" not in again.stderr, again.stderr


def test_a_vault_whose_key_file_is_missing_is_not_fixed_by_vault_init(tmp_path: Path) -> None:
    """vault.db present, vault.key gone: ``vault init`` cannot help (it refuses), yet it is the
    ``run:`` line of both the failing command and of ``vault init`` itself."""
    home = tmp_path / "v"
    assert _plain("--home", str(home), "vault", "init").returncode == 0
    (home / "vault.key").unlink()
    listed = _plain("--home", str(home), "credentials", "list")
    init = _plain("--home", str(home), "vault", "init")
    assert init.returncode == 4 and "its key file is missing" in init.stderr
    assert listed.returncode == 4 and "error[vault_locked]" in listed.stderr
    assert "Restore" in listed.stderr and "from a backup" in listed.stderr
    assert "run: exact-connector vault init" not in listed.stderr, listed.stderr
    assert "run: exact-connector vault init" not in init.stderr, init.stderr


# -- 2. `options` with a mistyped source, or without the credential it needs ---------------------


def test_a_mistyped_options_source_is_an_input_error_naming_the_sources() -> None:
    """``options project`` (for ``projects``): exit 4 and "Fix the connector configuration"."""
    done = _plain("options", "project")
    assert "Traceback" not in done.stderr
    assert done.returncode == 3, done.stderr
    assert "did you mean projects?" in done.stderr, done.stderr
    assert "$.source" in done.stderr


def test_options_that_need_a_credential_say_pass_credential() -> None:
    """``options projects`` without ``--credential``: the hint must say to pass one."""
    done = _plain("options", "projects", "--division", "100001")
    assert done.returncode == 3, done.stderr
    assert "$.credential" in done.stderr and "Pass --credential NAME" in done.stderr


# -- 3. a reader that closes the pipe mid-write: exit 0, not 141 ---------------------------------


@pytest.mark.parametrize("argv", [["manifest", "--json"], ["endpoints", "--json"]])
def test_a_pipe_closed_while_a_large_output_is_written_exits_141(argv: list[str]) -> None:
    """``exact-connector manifest --json | head -1``: the 96 kB write is cut short by the closed
    pipe; CPython's text layer drops the short count, so the command exits 0."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EXACT_CONNECTOR_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "exact_connector", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean,
    )
    assert proc.stdout is not None and proc.stderr is not None
    _wait_in(proc.pid, "pipe_write")  # blocked writing into the full pipe
    proc.stdout.close()
    code = proc.wait(timeout=30)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert "Traceback" not in err
    assert code == 141, (code, err)


# -- 5. `trigger budget NAME` accepts any NAME ----------------------------------------------------


def test_trigger_budget_refuses_an_unknown_trigger() -> None:
    """``trigger budget record_changd`` (typo) prints a budget as if the trigger existed."""
    done = _plain("trigger", "budget", "record_changd", "--input", "-", stdin="{}")
    assert done.returncode == 3, done.stdout
    assert "$.trigger" in done.stderr
    assert "Triggers: " in done.stderr and "record_changed" in done.stderr


def test_the_command_that_fixes_an_error_names_the_vault_the_failed_one_used(
    tmp_path: Path,
) -> None:
    """``run:`` after a failure in another vault directory or workspace acts on that one: pasted
    as printed, it must not list (or reauthorize) the default vault's credentials."""
    home = str(tmp_path / "my vault")
    assert _plain("--home", home, "vault", "init").returncode == 0
    inputs = '{"division": 1, "endpoint": "crm/Accounts"}'
    argv = ["run", "list_or_get_endpoint", "--credential", "nope", "--input", "-"]
    done = _plain("--home", home, "--workspace", "books", *argv, stdin=inputs)
    assert done.returncode == 4, done.stderr
    assert "error[credential_not_found]" in done.stderr
    assert f"run: exact-connector --home '{home}' --workspace books credentials list" in done.stderr


def test_ctrl_c_ends_a_waiting_command_with_130_and_no_traceback(tmp_path: Path) -> None:
    """Ctrl-C while a command waits (here for the client secret on stdin): one line, exit 130,
    as the README's exit codes say, and nothing stored."""
    home = str(tmp_path / "v")
    assert _plain("--home", home, "vault", "init").returncode == 0
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EXACT_CONNECTOR_")}
    argv = ["credentials", "add", "--home", home, "--name", "Acme", "--server-url",
            "https://start.exactonline.nl", "--client-id", "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
            "--redirect-uri", "http://127.0.0.1:8976/callback", "--secrets-stdin", "--no-browser"]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "exact_connector", *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean,
    )
    _wait_in(process.pid, "pipe")  # waiting on stdin (a pipe's read)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert b"Traceback" not in err
    assert err.decode().strip().endswith("interrupted")
    assert _plain("--home", home, "credentials", "list").stdout.count("Acme") == 0


# -- `--home DIR` after any command, as the README says -----------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["endpoints", "--search", "time transactions"],
        ["endpoints", "show", "project/TimeTransactions"],
        ["manifest"],
        ["trigger", "budget", "record_changed", "--input", "-"],
    ],
)
def test_a_command_that_opens_no_vault_takes_home_after_it(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    """``endpoints --home DIR`` was a usage error ("invalid choice" naming the directory), though
    the README allows ``--home`` before or after any command; now it is taken and not used."""
    monkeypatch.setattr("sys.stdin", io.StringIO("{}"))
    home = tmp_path / "unused"
    assert main([*argv, "--home", str(home), "--workspace", "other"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and out
    assert not home.exists()  # nothing was made there


def test_a_group_above_a_vault_command_does_not_take_home_meant_for_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``trigger --home DIR reset ...`` stays a usage error: were the group to take it, the
    command's own default would overwrite it and the default vault would be used instead."""
    with pytest.raises(SystemExit) as raised:
        main(["trigger", "--home", str(tmp_path), "reset", "record_changed"])
    assert raised.value.code == 2
    assert "exact-connector trigger: error: " in capsys.readouterr().err
