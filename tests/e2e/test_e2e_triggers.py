"""Triggers end to end on loopback: each change handed over exactly once across a crash between
poll and acknowledgement, a division move resyncs, and webhooks wake the poll when genuine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_harness import DIVISION, TIME_TRANSACTIONS, World, loopback_world, register_secret

from exact_connector.clock import ManualClock
from exact_connector.receiver import verify_and_parse
from exact_connector.sandbox import serve
from exact_connector.vault.sealing import KeyRing, generate_key

pytestmark = pytest.mark.e2e

ACCOUNTS = "crm/Accounts"
WATCHED = [
    ("record_changed", ACCOUNTS),
    ("record_changed", TIME_TRANSACTIONS),
    ("record_deleted", ACCOUNTS),
    ("record_deleted", TIME_TRANSACTIONS),
]


@pytest.fixture
def keyed_world(tmp_path: Path) -> Iterator[tuple[World, str]]:
    """A loopback world on the system's time whose vault another process can open."""
    key = generate_key()
    text = KeyRing.from_bytes(key).to_text()
    env_key = ",".join(line for line in text.splitlines() if line and not line.startswith("#"))
    with loopback_world(tmp_path / "vault", clock=ManualClock(time.time()), key=key) as world:
        yield world, env_key


class OtherUser:
    """Changes accounts through the sandbox's API with a token of its own."""

    def __init__(self, world: World) -> None:
        token = register_secret(world.sb.issue_tokens()["access_token"])
        self.base = f"{world.base_url}/api/v1/{DIVISION}/{ACCOUNTS}"
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def _send(self, method: str, key: str | None, body: Any = None) -> httpx.Response:
        url = self.base if key is None else f"{self.base}(guid'{key}')"
        return httpx.request(method, url, headers=self.headers, json=body)

    def create(self, name: str) -> str:
        response = self._send("POST", None, {"Name": name})
        assert response.status_code == 201, response.text
        return str(response.json()["d"]["ID"])

    def update(self, key: str, name: str) -> None:
        assert self._send("PUT", key, {"Name": name}).status_code == 204

    def delete(self, key: str) -> None:
        assert self._send("DELETE", key).status_code == 204


def cli_poll(
    world: World, env_key: str, trigger: str, endpoint: str, crash: bool = False
) -> tuple[int, list[dict[str, Any]]]:
    """``exact-connector trigger poll`` in its own process; exit code and the events printed."""
    env = {
        **os.environ,
        "EXACT_CONNECTOR_VAULT_KEY": env_key,
        "EXACT_CONNECTOR_ALLOW_SANDBOX": "1",
    }
    env.pop("EXACT_CONNECTOR_CRASH_AT", None)
    if crash:
        env["EXACT_CONNECTOR_CRASH_AT"] = "trigger.before_ack"
    home = str(world.connector.vault.home)
    command = [sys.executable, "-m", "exact_connector", "trigger", "poll", trigger]
    command += ["--credential", "e2e", "--input", "-", "--home", home]
    inputs = json.dumps({"division": DIVISION, "endpoint": endpoint})
    done = subprocess.run(
        command, input=inputs, capture_output=True, text=True, env=env, timeout=120, check=False
    )
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()]


def test_each_change_is_handed_over_once_across_a_crash_before_ack(
    keyed_world: tuple[World, str],
) -> None:
    """Create, update, delete accounts and time transactions; a process killed after printing
    and before acknowledging leaves the checkpoint, so the next run hands the same events over
    and the one after hands nothing: every change is acknowledged exactly once."""
    world, env_key = keyed_world
    for trigger, endpoint in WATCHED:
        assert cli_poll(world, env_key, trigger, endpoint) == (0, [])
    other = OtherUser(world)
    created = other.create("Exactly Once B.V.")
    seeded = world.sb.records(DIVISION, ACCOUNTS)[0]["ID"]
    other.update(seeded, "Renamed B.V.")
    doomed = other.create("Short Lived B.V.")
    other.delete(doomed)
    made = world.run_valid("create_project_time_transaction")
    changed = world.run_valid("update_project_time_transaction")
    removed = world.time_transaction(1)["ID"]
    deleted = world.run(
        "delete_endpoint_record",
        {"division": DIVISION, "endpoint": TIME_TRANSACTIONS, "id": removed},
    )
    assert made["ok"] and changed["ok"] and deleted["ok"]
    expected = {
        ("record_changed", ACCOUNTS): {(created, "new"), (seeded, "updated")},
        ("record_changed", TIME_TRANSACTIONS): {
            (made["data"]["id"], "new"),
            (changed["data"]["id"], "updated"),
        },
        ("record_deleted", ACCOUNTS): {(doomed, "deleted")},
        ("record_deleted", TIME_TRANSACTIONS): {(removed, "deleted")},
    }
    for trigger, endpoint in WATCHED:
        code, lost = cli_poll(world, env_key, trigger, endpoint, crash=True)
        assert code == 137
        acknowledged_code, acknowledged = cli_poll(world, env_key, trigger, endpoint)
        assert acknowledged_code == 0
        assert [e["id"] for e in acknowledged] == [e["id"] for e in lost]
        assert {(e["key"], e["change"]) for e in acknowledged} == expected[(trigger, endpoint)]
        assert len(acknowledged) == len(expected[(trigger, endpoint)])
        assert cli_poll(world, env_key, trigger, endpoint) == (0, [])


ENGINE = """
import json, sys
from exact_connector.runtime import Connector
from exact_connector.vault import Vault
connector = Connector(vault=Vault.open(sys.argv[1]), allow_sandbox=True)
inputs = {"division": int(sys.argv[2]), "endpoint": "crm/Accounts"}
result = connector.triggers.poll("record_changed", "e2e", inputs)
print(json.dumps([event["id"] for event in result["data"]["events"]]), flush=True)
sys.stdin.readline()  # the workflows run until the engine is told to acknowledge
print(json.dumps(connector.triggers.ack("e2e", result["data"]["checkpoint"])), flush=True)
"""


def engine(world: World, env_key: str) -> subprocess.Popen[str]:
    """An engine process polling through the Python API, waiting before it acknowledges."""
    env = {**os.environ, "EXACT_CONNECTOR_VAULT_KEY": env_key}
    home = str(world.connector.vault.home)
    return subprocess.Popen(
        [sys.executable, "-c", ENGINE, home, str(DIVISION)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_an_engine_killed_by_sigkill_between_poll_and_ack_loses_nothing(
    keyed_world: tuple[World, str],
) -> None:
    """kill -9 after the poll handed events over and before the ack: the next engine gets the
    same events, acknowledges them, and the one after gets none."""
    world, env_key = keyed_world
    first = world.connector.triggers.poll(
        "record_changed", world.credential_id, {"division": DIVISION, "endpoint": ACCOUNTS}
    )
    assert world.connector.triggers.ack(world.credential_id, first["data"]["checkpoint"])
    created = OtherUser(world).create("Killed Engine B.V.")
    killed = engine(world, env_key)
    assert killed.stdout is not None and killed.stdin is not None
    handed = json.loads(killed.stdout.readline())
    killed.kill()  # SIGKILL: no cleanup, no acknowledgement
    killed.communicate(timeout=60)
    assert killed.returncode == -9
    assert len(handed) == 1 and handed[0].split(":")[2] == created
    for expected in (handed, []):
        again = engine(world, env_key)
        out, err = again.communicate("\n", timeout=120)
        ids, acknowledged = (json.loads(line) for line in out.splitlines())
        assert (ids, acknowledged) == (expected, True), err


def test_a_state_file_keeps_the_checkpoint_for_the_cli(
    keyed_world: tuple[World, str], tmp_path: Path
) -> None:
    """With --state the checkpoint is in that file and the vault holds none."""
    world, env_key = keyed_world
    state = tmp_path / "state.json"
    env = {**os.environ, "EXACT_CONNECTOR_VAULT_KEY": env_key, "EXACT_CONNECTOR_ALLOW_SANDBOX": "1"}
    command = [sys.executable, "-m", "exact_connector", "trigger", "poll", "record_changed"]
    command += ["--credential", "e2e", "--input", "-", "--state", str(state)]
    command += ["--home", str(world.connector.vault.home)]
    inputs = json.dumps({"division": DIVISION, "endpoint": ACCOUNTS})
    first = subprocess.run(
        command, input=inputs, capture_output=True, text=True, env=env, check=False
    )
    assert first.returncode == 0, first.stderr
    key = OtherUser(world).create("Stateful B.V.")
    second = subprocess.run(
        command, input=inputs, capture_output=True, text=True, env=env, check=False
    )
    assert [json.loads(line)["key"] for line in second.stdout.splitlines()] == [key]
    assert json.loads(state.read_text())["checkpoints"]
    looped = [*command[:4], "run", *command[5:], "--polls", "1"]
    other = OtherUser(world).create("Looped B.V.")
    ran = subprocess.run(looped, input=inputs, capture_output=True, text=True, env=env, check=False)
    assert ran.returncode == 0, ran.stderr
    assert [json.loads(line)["key"] for line in ran.stdout.splitlines()] == [other]
    stored = world.connector.triggers.store.load(
        f"{world.credential_id}/record_changed/{DIVISION}/crm/accounts"
    )
    assert stored is None


def test_division_move_resyncs_on_loopback(world: World) -> None:
    """A division that moved database is read again from its start, events marked resync."""
    triggers = world.connector.triggers
    inputs = {"division": DIVISION, "endpoint": ACCOUNTS}
    first = triggers.poll("record_changed", world.credential_id, inputs)
    assert triggers.ack(world.credential_id, first["data"]["checkpoint"])
    world.sb.move_division(DIVISION)
    world.clock.advance(3_600)
    moved = triggers.poll("record_changed", world.credential_id, inputs)
    assert moved["data"]["resync"] is True
    assert {e["key"] for e in moved["data"]["events"]} == {
        r["ID"] for r in world.sb.records(DIVISION, ACCOUNTS)
    }


class Receiver:
    """An engine's webhook endpoint on loopback: verifies, records, and wakes the polls."""

    def __init__(self, world: World, secret: str, status: int = 200) -> None:
        self.world, self.secret, self.status = world, secret, status
        self.validations = 0
        self.events: list[dict[str, Any]] = []
        self.refused = 0
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        try:
            delivery = verify_and_parse(request.read(), self.secret)
        except Exception as error:  # the receiver answers every refusal the same way
            with self._lock:
                self.refused += 1
            return httpx.Response(401, json={"error": str(error)})
        with self._lock:
            if delivery.validation:
                self.validations += 1
            else:
                assert delivery.event is not None
                self.events.append(delivery.event)
        return httpx.Response(self.status if delivery.validation else 200)


def test_webhooks_wake_the_poll_and_forgeries_are_refused(world: World) -> None:
    """Subscribe (twice: one subscription), a change is delivered signed and wakes a poll that
    reads it; a forged delivery is refused; a lost one is caught by the next poll; unsubscribe
    twice is one removal."""
    secret = register_secret(world.sb.webhook_secret())
    receiver = Receiver(world, secret)
    triggers = world.connector.triggers
    with serve(receiver) as hook_base:
        inputs = {"division": DIVISION, "topic": "Accounts", "callback_url": f"{hook_base}/hook"}
        first = triggers.subscribe(world.credential_id, inputs)
        again = triggers.subscribe(world.credential_id, inputs)
        assert first["ok"] and again["ok"], (first, again)
        assert (first["data"]["created"], again["data"]["created"]) == (True, False)
        assert first["data"]["id"] == again["data"]["id"]
        assert receiver.validations == 1

        poll_inputs = {"division": DIVISION, "endpoint": ACCOUNTS}
        start = triggers.poll("record_changed", world.credential_id, poll_inputs)
        assert triggers.ack(world.credential_id, start["data"]["checkpoint"])
        key = OtherUser(world).create("Webhooked B.V.")
        world.sb.webhooks.drain()
        assert [(e["topic"], e["action"], e["key"]) for e in receiver.events] == [
            ("Accounts", "Create", key)
        ]
        woken = triggers.wake(receiver.events[0])
        assert woken == [{"trigger": "record_changed", "inputs": poll_inputs}]
        polled = triggers.poll("record_changed", world.credential_id, woken[0]["inputs"])
        assert [e["key"] for e in polled["data"]["events"]] == [key]

        forged = b'{"Content":{"Topic":"Accounts","Division":100001},"HashCode":"ABC"}'
        answer = httpx.post(f"{hook_base}/hook", content=forged)
        assert (answer.status_code, answer.json()) == (401, {"error": "invalid signature"})
        assert receiver.refused == 1 and len(receiver.events) == 1

        world.sb.webhooks.drop_next = 1  # Exact loses a delivery now and then (API-FACTS)
        missed = OtherUser(world).create("Undelivered B.V.")
        world.sb.webhooks.drain()
        assert len(receiver.events) == 1, "the lost delivery never arrived"
        caught = triggers.poll("record_changed", world.credential_id, poll_inputs)
        assert [e["key"] for e in caught["data"]["events"]] == [key, missed]

        gone = triggers.unsubscribe(world.credential_id, inputs)
        still_gone = triggers.unsubscribe(world.credential_id, inputs)
        assert (gone["data"]["deleted"], still_gone["data"]["deleted"]) == (True, False)


def test_a_callback_that_fails_validation_is_not_subscribed(world: World) -> None:
    """Exact keeps no subscription whose callback answers its validation POST with non-200."""
    receiver = Receiver(world, register_secret(world.sb.webhook_secret()), status=500)
    with serve(receiver) as hook_base:
        inputs = {"division": DIVISION, "topic": "Accounts", "callback_url": f"{hook_base}/x"}
        result = world.connector.triggers.subscribe(world.credential_id, inputs)
    assert result["ok"] is False
    assert "validation" in result["error"]["message"]
    assert world.sb.count(DIVISION, "webhooks/WebhookSubscriptions") == 0
