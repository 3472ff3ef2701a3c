"""PostgreSQL vs SQLite: the store work of one step, and 8-thread throughput, per backend.

    python benchmarks/postgres_bench.py            # 2,000 steps, 8 threads x 500
    python benchmarks/postgres_bench.py --smoke    # a tiny run, for CI

A "step" here is the store work a workflow step does around its HTTP call: read the credential
(decrypting its tokens), reserve a call in the rate governor, and reconcile the response's rate
headers; every 20th step also writes a refreshed token pair (compare-and-swap). The HTTP call is
left out on purpose: it is the same on both backends. PostgreSQL is a private server started with
``initdb`` for the run (fsync on, over a Unix socket), unless ``EXACT_CONNECTOR_DATABASE_URL`` names
one. Prints median and p99 latency in microseconds and steps per second.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pg_server import create_database, postgres_server

from exact_connector.limits import RateGovernor
from exact_connector.limits_pg import PostgresRateGovernor
from exact_connector.vault import Vault
from exact_connector.vault.sealing import KeyRing

HEADERS = {"X-RateLimit-Minutely-Remaining": "59", "X-RateLimit-Remaining": "4999"}
UNLIMITED = {"minute_limit": 10**9, "day_limit": 10**9}


@contextmanager
def backend(name: str, home: Path, url: str | None) -> Iterator[tuple[Vault, RateGovernor, str]]:
    ring = KeyRing.from_bytes(os.urandom(32))
    if name == "sqlite":
        vault = Vault.open(home, keys=ring, database_url="")
        governor = RateGovernor(home / "limits.db", **UNLIMITED)
    else:
        assert url is not None
        vault = Vault.open(home, keys=ring, database_url=url)
        governor = PostgresRateGovernor(url, **UNLIMITED)
    credential = vault.begin(
        connector_name="bench",
        auth_type="oauth2_refresh_token",
        server_url="https://start.exactonline.nl",
        client_id="bench-client",
        client_secret=SecretStr("s" * 32),
        refresh_token=SecretStr("r" * 200),
    )
    try:
        yield vault, governor, credential.id
    finally:
        governor.close()
        vault.close()


def step(vault: Vault, governor: RateGovernor, cid: str, division: int, n: int) -> None:
    credential = vault.get(cid)
    governor.acquire("bench-client", division, "crm/Accounts", deadline=None)
    governor.observe("bench-client", division, "crm/Accounts", 200, HEADERS)
    if n % 20 == 0:
        try:
            vault.update_tokens(
                cid,
                expected_version=credential.version,
                access_token=SecretStr(f"a{n}" * 300),
                refresh_token=SecretStr(f"r{n}" * 50),
                issued_at=time.time(),
                expires_at=time.time() + 600,
            )
        except Exception as error:  # another thread refreshed first: counted, as in real life
            if type(error).__name__ != "ConcurrentUpdate":
                raise


def measure(name: str, home: Path, url: str | None, steps: int, per_thread: int) -> str:
    with backend(name, home, url) as (vault, governor, cid):
        samples = []
        for n in range(steps):
            started = time.perf_counter()
            step(vault, governor, cid, 1, n)
            samples.append((time.perf_counter() - started) * 1e6)
        ordered = sorted(samples)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

        def worker(thread: int) -> None:
            for n in range(per_thread):
                step(vault, governor, cid, 100 + thread, n + 1)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        rate = 8 * per_thread / (time.perf_counter() - started)
    return f"{name:10} {steps:>7} {statistics.median(ordered):>12.1f} {p99:>12.1f} {rate:>14.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run for CI")
    args = parser.parse_args()
    steps, per_thread = (20, 10) if args.smoke else (2000, 500)
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        url = os.environ.get("EXACT_CONNECTOR_DATABASE_URL") or create_database(
            stack.enter_context(postgres_server(durable=True))
        )
        print("Store work of one step: credential read, rate reserve + reconcile; 1/20 refresh")
        print(f"{'backend':10} {'steps':>7} {'median µs':>12} {'p99 µs':>12} {'8-thread st/s':>14}")
        for name in ("sqlite", "postgres"):
            print(measure(name, root / name, url, steps, per_thread))


if __name__ == "__main__":
    main()
