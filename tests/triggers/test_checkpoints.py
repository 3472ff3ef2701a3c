"""Checkpoint stores: compare-and-swap in the vault and in a state file, and what breaks them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pg_server
import pytest
from pydantic import SecretStr

from exact_connector.checkpoints import CheckpointStore, FileCheckpoints
from exact_connector.exceptions import ConfigError
from exact_connector.vault import Vault
from exact_connector.vault.sealing import KeyRing, generate_key


@pytest.fixture(params=["sqlite", "postgres"])
def vault(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Vault]:
    """A vault on each backend (PostgreSQL: a database of the test's own)."""
    url = None
    if request.param == "postgres":
        url = pg_server.create_database(request.getfixturevalue("postgres_url"))
    ring = KeyRing.from_bytes(generate_key())
    with Vault.open(tmp_path / "vault", keys=ring, database_url=url) as opened:
        yield opened


def credential(vault: Vault, name: str = "c") -> str:
    return vault.begin(
        connector_name=name,
        auth_type="oauth2_refresh_token",
        server_url="https://start.exactonline.nl",
        client_id="client",
        client_secret=SecretStr("s" * 12),
        refresh_token=SecretStr("r" * 20),
    ).id


@pytest.fixture(params=["vault", "file"])
def store_and_key(
    request: pytest.FixtureRequest, vault: Vault, tmp_path: Path
) -> tuple[CheckpointStore, str]:
    key = f"{credential(vault)}/record_changed/100001/crm/accounts"
    if request.param == "vault":
        return vault.checkpoints(), key
    return FileCheckpoints(tmp_path / "state.json"), key


def test_advance_is_a_compare_and_swap(store_and_key: tuple[CheckpointStore, str]) -> None:
    """The first advance expects version 0; each later one the version it read; stale ones fail."""
    store, key = store_and_key
    assert store.load(key) is None
    assert store.advance(key, 0, {"timestamp": 5}) is True
    assert store.advance(key, 0, {"timestamp": 6}) is False
    stored = store.load(key)
    assert stored is not None and (stored.version, stored.state) == (1, {"timestamp": 5})
    assert store.advance(key, 1, {"timestamp": 9}) is True
    assert store.advance(key, 1, {"timestamp": 7}) is False
    again = store.load(key)
    assert again is not None and (again.version, again.state) == (2, {"timestamp": 9})


def test_reset_forgets_once(store_and_key: tuple[CheckpointStore, str]) -> None:
    """Reset empties the checkpoint's state (a first poll's) as a new version; a second reset
    finds nothing to forget, and neither does one of a key never stored."""
    store, key = store_and_key
    store.advance(key, 0, {"timestamp": 5})
    assert (store.reset(key), store.reset(key)) == (True, False)
    stored = store.load(key)
    assert stored is not None and (stored.version, stored.state) == (2, {})
    assert store.reset(key + "/other") is False and store.load(key + "/other") is None


def test_an_ack_of_a_poll_made_before_a_reset_cannot_land_after_it(
    store_and_key: tuple[CheckpointStore, str],
) -> None:
    """ABA: versions counted again from 1 after a reset (a delete) let the acknowledgement of a
    poll made before it match the new start's version and undo it. They go on instead."""
    store, key = store_and_key
    assert store.advance(key, 0, {"timestamp": 5})  # acked: version 1
    before_first = 0  # polls made before any ack, and before the reset, expect these
    before_reset = 1
    assert store.reset(key)
    after = store.load(key)
    assert after is not None and after.state == {}
    assert store.advance(key, before_first, {"timestamp": 99}) is False
    assert store.advance(key, after.version, {"timestamp": 2})  # the new start, acked
    assert store.advance(key, before_reset, {"timestamp": 99}) is False
    last = store.load(key)
    assert last is not None and last.state == {"timestamp": 2}


def test_removing_a_credential_removes_its_checkpoints(vault: Vault) -> None:
    """Checkpoints live with their credential in the vault and go with it."""
    mine, other = credential(vault, "mine"), credential(vault, "other")
    store = vault.checkpoints()
    store.advance(f"{mine}/record_changed/1/crm/accounts", 0, {"timestamp": 1})
    store.advance(f"{other}/record_changed/1/crm/accounts", 0, {"timestamp": 2})
    vault.remove(mine)
    assert store.load(f"{mine}/record_changed/1/crm/accounts") is None
    assert store.load(f"{other}/record_changed/1/crm/accounts") is not None


def test_a_checkpoint_for_an_unknown_credential_is_not_stored(vault: Vault) -> None:
    """The vault keeps checkpoints only for credentials it holds."""
    assert vault.checkpoints().advance("missing/record_changed/1/crm/accounts", 0, {}) is False


@pytest.mark.parametrize(
    "content", [b"not json", b"[]", b'{"checkpoints": {"k": {"version": "1"}}}'], ids=str
)
def test_a_damaged_state_file_is_a_config_error(tmp_path: Path, content: bytes) -> None:
    """A state file that is not ours is refused with a hint naming --state, and left alone."""
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match="state file") as raised:
        FileCheckpoints(path).advance("k", 0, {})
    assert "--state" in raised.value.hint
    assert path.read_bytes() == content
