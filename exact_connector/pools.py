"""A credential's connections, split into a few pools so that threads do not queue on one.

httpcore's connection pool takes one lock and looks at every idle connection (a ``poll`` system
call each, which hands the GIL to another thread) when a request starts and again when its
response is closed. Eight threads sharing one pool of eight connections pay for all eight, twice
a call, and take turns on the lock. In an interleaved A/B of 8 threads' gets (12 rounds, one
process), a shared pool gave 0.68x raw httpx's throughput and these shards 0.77x, the client's
CPU per call falling by 15%.

So a Connector's channel holds up to :data:`SHARDS` pools (each an ordinary httpx transport) and
gives each thread one of them on its first request: the pool fewest live threads use, the first
such one on a tie. Threads of a worker pool, running at once, each get a pool of their own; an
engine that starts a new thread for every step finds the previous thread ended and gets the
first pool again, with its kept-alive connection, as it would from one shared pool. A forked
child starts with pools of its own and never touches (or closes) the parent's connections.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

import httpx

from exact_connector import _sqlite

__all__ = ["SHARDS", "ShardedTransport"]

SHARDS = 8

#: Pools inherited over fork(): the child must never use or close them (closing a TLS
#: connection would end it for the parent too), so they are kept here for good.
_INHERITED: list[httpx.BaseTransport] = []


class _Shard:
    """One pool, made on first use, and the threads it was given to."""

    __slots__ = ("threads", "transport")

    def __init__(self) -> None:
        self.transport: httpx.BaseTransport | None = None
        self.threads: weakref.WeakSet[threading.Thread] = weakref.WeakSet()

    def users(self) -> int:
        return sum(1 for thread in self.threads if thread.is_alive())


class ShardedTransport(httpx.BaseTransport):
    """Up to ``count`` transports made by ``make``; a thread sends through the one it was given."""

    def __init__(self, make: Callable[[], httpx.BaseTransport], count: int = SHARDS) -> None:
        self._make = make
        self._shards = [_Shard() for _ in range(count)]
        self._guard = threading.Lock()
        self._local = threading.local()
        self._closed = False
        _sqlite.reset_after_fork(self)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        transport: httpx.BaseTransport | None = getattr(self._local, "transport", None)
        if transport is None:
            transport = self._local.transport = self._assign()
        return transport.handle_request(request)

    def _assign(self) -> httpx.BaseTransport:
        with self._guard:
            if self._closed:
                raise RuntimeError("the connection pool was closed")
            shard = min(self._shards, key=_Shard.users)
            shard.threads.add(threading.current_thread())
            if shard.transport is None:
                shard.transport = self._make()
            return shard.transport

    def reset_after_fork(self) -> None:
        """In a forked child: fresh pools and locks; the parent's are left as they are."""
        _INHERITED.extend(shard.transport for shard in self._shards if shard.transport)
        self._guard = threading.Lock()
        self._local = threading.local()
        self._shards = [_Shard() for _ in self._shards]

    def opened(self) -> int:
        """How many of the pools were made so far."""
        with self._guard:
            return sum(1 for shard in self._shards if shard.transport is not None)

    def close(self) -> None:
        """Close every pool; a request sent afterwards is refused, not sent on a new connection."""
        with self._guard:
            self._closed = True
            self._local = threading.local()  # no thread keeps its pool
            transports = [shard.transport for shard in self._shards if shard.transport]
            for shard in self._shards:
                shard.transport = None
        for transport in transports:
            transport.close()
