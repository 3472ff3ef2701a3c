"""The long-running and first-contact commands as processes meet them: SIGTERM from a service
manager, a transient failure in an unattended poller, a damaged or empty ``--state`` file, a poll
count below one, and a stdout that cannot be written. Each test failed on the code before (a
review of these commands reproduced them); most run the command as a real process on loopback.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from e2e_harness import World, loopback_world

import exact_connector.cli.trigger as trigger_cli
from exact_connector.cli import main
from exact_connector.clock import ManualClock
from exact_connector.vault.sealing import KeyRing, generate_key

pytestmark = pytest.mark.e2e

CLI = [sys.executable, "-m", "exact_connector"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXACT_CONNECTOR_")}
    env.update(extra)
    return env


def wait_for(predicate: Callable[[], bool], seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def cli(*argv: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *argv], input=stdin, capture_output=True, text=True, env=env,
        timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture
def keyed_world(tmp_path: Path) -> Iterator[tuple[World, dict[str, str]]]:
    """A loopback world on the system's time, and the environment a CLI process needs for it."""
    key = generate_key()
    text = KeyRing.from_bytes(key).to_text()
    env_key = ",".join(line for line in text.splitlines() if line and not line.startswith("#"))
    home = tmp_path / "vault"
    with loopback_world(home, clock=ManualClock(time.time()), key=key, limits=False) as world:
        env = clean_env(
            EXACT_CONNECTOR_VAULT_KEY=env_key,
            EXACT_CONNECTOR_ALLOW_SANDBOX="1",
            EXACT_CONNECTOR_HOME=str(home),
        )
        yield world, env


ACCOUNTS_INPUT = {"division": 100001, "endpoint": "crm/Accounts"}


# -- 1. SIGTERM leaves the temporary vault of `ui --sandbox` and `demo` behind ------------------


def _started(argv: list[str], tmp: Path, lines: int) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [*CLI, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(TMPDIR=str(tmp)),
        cwd=str(tmp),
    )
    assert process.stdout is not None
    for _ in range(lines):
        assert process.stdout.readline(), process.stderr.read() if process.stderr else ""
    return process


@pytest.mark.parametrize(
    ("argv", "lines"),
    [(["ui", "--sandbox"], 2), (["demo"], 1)],
    ids=["ui --sandbox", "demo"],
)
def test_sigterm_removes_the_temporary_vault_and_stops_cleanly(
    argv: list[str], lines: int, tmp_path: Path
) -> None:
    """`kill PID` (SIGTERM: systemd, docker stop, a terminal closing) must stop as Ctrl-C does:
    the throw-away vault removed ("nothing is left behind"), a documented exit code. Ctrl-C does
    both; SIGTERM kills the process by signal with the exact-connector-demo-* vault left in TMPDIR."""
    process = _started(argv, tmp_path, lines)
    made = [p.name for p in tmp_path.iterdir() if p.name.startswith("exact-connector-demo-")]
    assert made, "the temporary vault was not where expected"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith("exact-connector-demo-")]
    assert "Traceback" not in err
    assert left == [], f"temporary vault left behind: {left}"
    assert process.returncode in (0, 130), process.returncode


# -- 2. `trigger run` ends the loop on the first transient failure --------------------------------


def test_trigger_run_keeps_polling_after_a_transient_failure(
    keyed_world: tuple[World, dict[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`trigger run` "polls at the trigger's interval until stopped": a poll that fails for a
    moment (Exact answering 503 to each of the client's attempts) ended the run with exit 5; it
    is now reported and the next poll runs after the interval. In-process, its waits recorded."""
    world, env = keyed_world
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    waits: list[float] = []
    monkeypatch.setattr(
        trigger_cli, "time", types.SimpleNamespace(sleep=waits.append, time=time.time)
    )
    world.sb.faults.add("error", status=503, times=4)
    state = tmp_path / "state.json"
    monkeypatch.setattr(
        "sys.stdin", io.StringIO(json.dumps({**ACCOUNTS_INPUT, "interval_seconds": 18}))
    )
    code = main(
        ["trigger", "run", "record_changed", "--credential", "e2e", "--input", "-",
         "--state", str(state), "--polls", "2"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert "error[transient]" in err  # the failed poll is still reported
    assert code == 0, err
    assert waits == [18]  # the interval, then the second poll, acknowledged
    assert json.loads(state.read_text())["checkpoints"]


# -- 3. `trigger run` is killed by SIGTERM instead of stopping cleanly --------------------------


def test_trigger_run_stops_cleanly_on_sigterm(
    keyed_world: tuple[World, dict[str, str]], tmp_path: Path
) -> None:
    """SIGTERM (how a service manager stops a poller) while `trigger run` waits for its next
    poll: it should stop as Ctrl-C does or as `sandbox` does on SIGTERM (exit 130 or 0). It is
    killed by the signal instead (status -15, a shell's 143: no code the README lists)."""
    _, env = keyed_world
    state = tmp_path / "state.json"
    process = subprocess.Popen(
        [*CLI, "trigger", "run", "record_changed", "--credential", "e2e", "--input", "-",
         "--state", str(state)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert process.stdin is not None
    process.stdin.write(json.dumps({**ACCOUNTS_INPUT, "interval_seconds": 300}))
    process.stdin.close()
    process.stdin = None  # communicate() must not flush it again
    assert wait_for(state.exists, 60), "the first poll was never acknowledged"
    time.sleep(0.5)  # sleeping until the next poll
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert "Traceback" not in err
    assert json.loads(state.read_text())["checkpoints"]
    assert process.returncode in (0, 130), process.returncode


# -- 4. a hand-damaged --state file gives a traceback ---------------------------------------------


@pytest.mark.parametrize("damage", ['"abc"', "5", "[1]"], ids=["string", "number", "list"])
def test_a_state_file_whose_state_is_not_an_object_is_a_config_error(
    keyed_world: tuple[World, dict[str, str]], tmp_path: Path, damage: str
) -> None:
    """A --state file whose checkpoint's "state" is not a JSON object (edited by hand, written by
    another tool) must be refused as a damaged state file (exit 4, one error line and a hint),
    as a file that is not JSON is; it crashes in FileCheckpoints._read with a ValueError or
    TypeError traceback, exit 1."""
    _, env = keyed_world
    state = tmp_path / "state.json"
    inputs = json.dumps(ACCOUNTS_INPUT)
    argv = ["trigger", "poll", "record_changed", "--credential", "e2e", "--input", "-",
            "--state", str(state)]  # fmt: skip
    assert cli(*argv, env=env, stdin=inputs).returncode == 0
    document = json.loads(state.read_text())
    key = next(iter(document["checkpoints"]))
    document["checkpoints"][key]["state"] = json.loads(damage)
    state.write_text(json.dumps(document))
    done = cli(*argv, env=env, stdin=inputs)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 4, done.stderr
    assert done.stderr.startswith("error[config_error]:")


# -- 5. an empty --state file (touch, mktemp) is refused ------------------------------------------


def test_an_empty_state_file_is_a_new_one(
    keyed_world: tuple[World, dict[str, str]], tmp_path: Path
) -> None:
    """`--state "$(mktemp)"` or a `touch`ed file holds no checkpoint yet: it should be used as a
    new state file. It is refused (exit 4, "cannot be read or written"), though the file is
    readable and writable and the hint itself asks for "a new one"."""
    _, env = keyed_world
    state = tmp_path / "state.json"
    state.touch()
    done = cli(
        "trigger", "poll", "record_changed", "--credential", "e2e", "--input", "-",
        "--state", str(state), env=env, stdin=json.dumps(ACCOUNTS_INPUT),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(state.read_text())["checkpoints"]


# -- 6. `trigger run --polls 0` (or negative) polls and acknowledges once --------------------------


@pytest.mark.parametrize("polls", ["0", "-1"])
def test_trigger_run_polls_below_one_is_a_usage_error(
    keyed_world: tuple[World, dict[str, str]], tmp_path: Path, polls: str
) -> None:
    """`--polls 0` asks for no poll; it runs one (and acknowledges its events), exit 0. A count
    below 1 should be refused as usage (exit 2) with nothing polled, as `--port 70000` is."""
    _, env = keyed_world
    state = tmp_path / "state.json"
    done = cli(
        "trigger", "run", "record_changed", "--credential", "e2e", "--input", "-",
        "--state", str(state), "--polls", polls, env=env,
        stdin=json.dumps({**ACCOUNTS_INPUT, "interval_seconds": 60}),
    )  # fmt: skip
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert not state.exists()


# -- 7. stdout that cannot be written: a traceback, or a port error for the sandbox ---------------


def _close_stdout() -> None:
    os.close(1)


@pytest.mark.parametrize(
    "argv",
    [["sandbox", "--port", "0"], ["ui", "--sandbox"], ["demo"]],
    ids=["sandbox", "ui", "demo"],
)
@pytest.mark.parametrize("stdout", ["full disk", "closed"])
def test_an_unwritable_stdout_is_reported_without_traceback(
    argv: list[str], stdout: str, tmp_path: Path
) -> None:
    """stdout redirected to a file on a full disk (here /dev/full), or closed (a daemon started
    with `>&-`): the README promises "never a traceback". `ui` and `demo` print one (exit 1);
    `sandbox` catches the write's OSError as if binding failed and says it "cannot listen on
    127.0.0.1:0 (No space left on device)", hint "Choose another port"."""
    options: dict[str, object] = {}
    if stdout == "full disk":
        options["stdout"] = open("/dev/full", "w")  # noqa: SIM115
    else:
        options["preexec_fn"] = _close_stdout
    try:
        done = subprocess.run(
            [*CLI, *argv], stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
            env=clean_env(TMPDIR=str(tmp_path)), timeout=60, check=False, **options,
        )  # fmt: skip
    finally:
        if "stdout" in options:
            options["stdout"].close()  # type: ignore[union-attr]
    assert "Traceback" not in done.stderr, done.stderr[-600:]
    assert "cannot listen" not in done.stderr, done.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("exact-connector-demo-")]
