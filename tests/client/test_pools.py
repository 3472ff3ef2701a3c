"""The sharded connection pools: a pool per concurrent thread, reuse for threads that follow one
another, everything closed with the channel; and a Connector's steps from many threads over
real loopback sockets."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from exact_connector import Connector
from exact_connector.pools import SHARDS, ShardedTransport
from exact_connector.sandbox import Sandbox
from exact_connector.testing import connect


class _Counted(httpx.BaseTransport):
    """A transport that answers 200 with its own number, and remembers being closed."""

    def __init__(self, number: int) -> None:
        self.number, self.closed = number, False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"pool": self.number})

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def made() -> list[_Counted]:
    return []


@pytest.fixture
def sharded(made: list[_Counted]) -> Iterator[ShardedTransport]:
    def make() -> _Counted:
        made.append(_Counted(len(made)))
        return made[-1]

    transport = ShardedTransport(make)
    yield transport
    transport.close()


def _pool_of(transport: httpx.BaseTransport) -> int:
    response = transport.handle_request(httpx.Request("GET", "http://127.0.0.1/x"))
    return int(response.json()["pool"])


def _at_once(count: int, work: Callable[[], int]) -> list[int]:
    """``work`` in ``count`` threads that are all alive until every one has finished."""
    results: list[int] = []
    started, finished = threading.Barrier(count), threading.Barrier(count)

    def run() -> None:
        started.wait()
        results.append(work())
        finished.wait()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_threads_running_at_once_each_get_a_pool_of_their_own(sharded: ShardedTransport) -> None:
    def twice() -> int:
        first = _pool_of(sharded)
        assert _pool_of(sharded) == first  # a thread keeps its pool
        return first

    assert sorted(_at_once(SHARDS, twice)) == list(range(SHARDS))
    assert sharded.opened() == SHARDS


def test_more_threads_than_pools_share_them_evenly(sharded: ShardedTransport) -> None:
    pools = _at_once(SHARDS + 4, lambda: _pool_of(sharded))
    counts = sorted(pools.count(number) for number in set(pools))
    assert len(counts) == SHARDS
    assert counts == [1] * (SHARDS - 4) + [2] * 4


def test_threads_that_follow_one_another_reuse_the_first_pool(
    sharded: ShardedTransport, made: list[_Counted]
) -> None:
    """An engine starting a thread per step keeps its connection, as with one shared pool."""
    seen: list[int] = []
    for _ in range(5):
        thread = threading.Thread(target=lambda: seen.append(_pool_of(sharded)))
        thread.start()
        thread.join()
    assert seen == [0] * 5
    assert len(made) == 1


def test_close_closes_every_pool_and_refuses_later_requests(
    sharded: ShardedTransport, made: list[_Counted]
) -> None:
    _at_once(3, lambda: _pool_of(sharded))
    sharded.close()
    assert [transport.closed for transport in made] == [True] * 3
    with pytest.raises(RuntimeError, match="closed"):
        _pool_of(sharded)  # this thread had no pool
    assert sharded.opened() == 0


def test_a_thread_that_had_a_pool_is_refused_after_close(sharded: ShardedTransport) -> None:
    _pool_of(sharded)
    sharded.close()
    with pytest.raises(RuntimeError, match="closed"):
        _pool_of(sharded)


@dataclass
class _Loopback:
    """A Connector signed in to a sandbox served on a loopback port, and one step on it."""

    connector: Connector
    credential_id: str

    def step(self) -> bool:
        inputs = {"division": 100001, "endpoint": "crm/Accounts", "select": ["ID"], "limit": 1}
        return bool(
            self.connector.execute("list_or_get_endpoint", self.credential_id, inputs)["ok"]
        )

    def sharded(self) -> ShardedTransport:
        (channel,) = self.connector._pools.values()
        assert isinstance(channel.transport, ShardedTransport)
        return channel.transport


@pytest.fixture
def loopback(tmp_path: Path) -> Iterator[_Loopback]:
    sandbox = Sandbox(auto_consent=True, limits=False)
    with connect(sandbox, tmp_path / "home", via="loopback") as connected:
        assert connected.divisions[0] == 100001
        yield _Loopback(connected.connector, connected.credential_id)


def test_a_connectors_steps_from_eight_threads_over_loopback(loopback: _Loopback) -> None:
    """Every step succeeds (32 calls: under the governor's 60 a minute); the credential's channel
    made one pool per thread, and closes them all."""

    def steps() -> int:
        return sum(1 for _ in range(4) if loopback.step())

    assert _at_once(SHARDS, steps) == [4] * SHARDS
    sharded = loopback.sharded()
    assert sharded.opened() == SHARDS
    loopback.connector.close()
    assert sharded.opened() == 0


def test_a_forked_child_uses_pools_of_its_own(loopback: _Loopback) -> None:
    """The parent's kept-alive connections are neither used nor closed by a forked child: its
    steps go through new pools, and the parent's keep working on the pool they had."""
    assert loopback.step()
    sharded = loopback.sharded()
    (parents,) = [shard.transport for shard in sharded._shards if shard.transport]

    def child() -> None:
        if sharded.opened() != 0 or not (loopback.step() and loopback.step()):
            raise SystemExit(3)
        if sharded.opened() != 1 or any(shard.transport is parents for shard in sharded._shards):
            raise SystemExit(4)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(timeout=60)
    assert process.exitcode == 0
    assert loopback.step()
    assert [shard.transport for shard in sharded._shards if shard.transport] == [parents]
