"""Listing 100,000 records through ``list_or_get_endpoint``: calls, speed, memory, overhead.

The sandbox holds 100,000 ``crm/Accounts`` rows (its bulk twin ``bulk/CRM/Accounts`` shares them).
The connector lists them three ways, in-process (``MockTransport``) and over loopback:

* ``Connector.stream`` -- records one at a time (flat memory);
* ``Connector.execute`` with ``limit`` -- the whole list in one envelope;
* a raw httpx loop over the same transport and the same page URLs, doing JSON parsing only.

For each it prints the API calls used, records per second (median of the repeats), and the peak
memory growth (tracemalloc, in a separate run so it does not slow the timed ones); then the
overhead ratio connector/raw. Targets: 100 calls (1000 rows a call, the bulk page size), stream
peak growth under 50 MB, overhead ratio under 1.3.

    python benchmarks/list_bench.py              # 100,000 rows, 5 repeats
    python benchmarks/list_bench.py --smoke      # 5,000 rows, 1 repeat (CI)
    python benchmarks/list_bench.py --profile    # also cProfile one in-process stream
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from exact_connector.clock import ManualClock
from exact_connector.runtime import Connector
from exact_connector.sandbox import Sandbox, serve
from exact_connector.vault import Vault
from exact_connector.vault.sealing import KeyRing, generate_key

ENDPOINT = "crm/Accounts"
TWIN = "bulk/CRM/Accounts"
DIVISION = 100001
SELECT = ["ID", "Code", "Name", "City", "Email", "Modified"]
PAGE = 1000


@dataclass
class Figures:
    """One way of listing: what it cost."""

    name: str
    calls: int
    records: int
    seconds: float
    peak_mb: float

    @property
    def rate(self) -> float:
        return self.records / self.seconds


@dataclass
class Setup:
    """A signed-in connector for one transport, and how to reach the sandbox raw."""

    sandbox: Sandbox
    connector: Connector
    credential: str
    transport: httpx.BaseTransport | None
    base_url: str

    def calls(self) -> int:
        return self.sandbox.counters.calls(TWIN) + self.sandbox.counters.calls(ENDPOINT)

    def inputs(self, **extra: Any) -> dict[str, Any]:
        return {"division": DIVISION, "endpoint": ENDPOINT, "select": SELECT, **extra}


def signed_in(sandbox: Sandbox, home: Path, base_url: str, loopback: bool) -> Setup:
    """A connector with an active credential, signed in through the code flow."""
    vault = Vault.open(home, keys=KeyRing.from_bytes(generate_key()), clock=sandbox.clock)
    transport = None if loopback else httpx.MockTransport(sandbox)
    connector = Connector(
        vault=vault, transport=transport, clock=sandbox.clock, allow_sandbox=loopback
    )
    app = sandbox.demo_app
    credential = connector.credentials.begin(
        {
            "connector_name": "bench",
            "auth_type": "oauth2_authorization_code",
            "server_url": base_url,
            "client_id": app.client_id,
            "client_secret": app.client_secret,
            "redirect_uri": app.redirect_uris[0],
        }
    )
    consent = sandbox(httpx.Request("GET", connector.authorization_url(credential, "bench-1")))
    code = parse_qs(urlsplit(consent.headers["location"]).query)["code"][0]
    connector.complete_authorization(credential, code, "bench-1")
    assert connector.test_connect(credential)["ok"]
    connector.credentials.activate(credential)
    return Setup(sandbox, connector, credential.id, transport, base_url)


# -- the three ways ------------------------------------------------------------------------------


def by_stream(setup: Setup) -> int:
    return sum(1 for _ in setup.connector.stream(setup.credential, setup.inputs()))


def by_execute(setup: Setup, rows: int) -> int:
    # The governor paces 100 calls at Exact's 60 a minute (instantly: a manual clock), which is
    # more than the default 120 s step deadline; an engine gives a step this long its own.
    result = setup.connector.execute(
        "list_or_get_endpoint", setup.credential, setup.inputs(limit=rows), deadline_seconds=3600
    )
    assert result["ok"], result
    assert result["meta"]["api_calls"] == -(-rows // PAGE), result["meta"]
    return int(result["data"]["count"])


def by_raw_httpx(setup: Setup) -> int:
    """The same pages with httpx alone: the first URL the connector sends, then ``__next``."""
    with setup.connector.client(setup.credential) as exact:
        token = exact.auth.current().access_token  # refreshed if the paced runs outlived it
    assert token is not None
    headers = {"Authorization": f"Bearer {token.get_secret_value()}", "Accept": "application/json"}
    url: str | None = f"{setup.base_url}/api/v1/{DIVISION}/{TWIN}"
    params: dict[str, str] | None = {"$select": ",".join(SELECT)}
    records = 0
    with httpx.Client(transport=setup.transport, headers=headers, trust_env=False) as client:
        while url is not None:
            body = client.get(url, params=params).raise_for_status().json()["d"]
            records += len(body["results"])
            url, params = body.get("__next"), None
    return records


# -- measuring -----------------------------------------------------------------------------------


def measure(setup: Setup, ways: dict[str, Callable[[], int]], repeats: int) -> list[Figures]:
    """Median time of ``repeats`` runs of each way, interleaved so that a busy machine slows
    them alike; calls of one run; peak memory growth of one more run under tracemalloc."""
    times: dict[str, list[float]] = {name: [] for name in ways}
    records: dict[str, int] = {}
    calls: dict[str, int] = {}
    for _ in range(repeats):
        for name, run in ways.items():
            before = setup.calls()
            gc.collect()
            start = time.perf_counter()
            records[name] = run()
            times[name].append(time.perf_counter() - start)
            calls[name] = setup.calls() - before
    figures = []
    for name, run in ways.items():
        gc.collect()
        tracemalloc.start()
        run()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        figures.append(
            Figures(name, calls[name], records[name], statistics.median(times[name]), peak / 1e6)
        )
    return figures


@contextmanager
def transports(sandbox: Sandbox, home: Path) -> Iterator[list[tuple[str, Setup]]]:
    """The connector in-process and over loopback, each signed in once."""
    in_process = signed_in(sandbox, home / "in-process", "https://start.exactonline.nl", False)
    with serve(sandbox) as base_url:
        yield [
            ("in-process", in_process),
            ("loopback", signed_in(sandbox, home / "loopback", base_url, True)),
        ]


def report(rows: int, repeats: int, results: list[tuple[str, list[Figures]]]) -> None:
    print(
        f"list_or_get_endpoint: {ENDPOINT} via {TWIN}, {rows:,} rows, "
        f"$select of {len(SELECT)} fields, median of {repeats}"
    )
    print(
        f"{'transport':<12}{'way':<22}{'calls':>7}{'records':>10}{'seconds':>9}"
        f"{'records/s':>12}{'peak MB':>9}"
    )
    for transport, figures in results:
        for f in figures:
            print(
                f"{transport:<12}{f.name:<22}{f.calls:>7}{f.records:>10,}{f.seconds:>9.3f}"
                f"{f.rate:>12,.0f}{f.peak_mb:>9.1f}"
            )
    print()
    minimum = -(-rows // PAGE)
    for transport, (stream, execute, raw) in results:
        ratio = stream.seconds / raw.seconds
        print(
            f"{transport}: stream/raw overhead {ratio:.2f} (target < 1.3), execute/raw "
            f"{execute.seconds / raw.seconds:.2f}; calls {stream.calls} (minimum {minimum}); "
            f"stream peak {stream.peak_mb:.1f} MB (target < 50)"
        )


def profile(setup: Setup) -> None:
    """Where a stream's time goes (in-process), by cumulative and own time."""
    profiler = cProfile.Profile()
    profiler.runcall(by_stream, setup)
    for order in ("cumulative", "tottime"):
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats(order).print_stats(18)
        print(text.getvalue())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="5,000 rows, one repeat")
    parser.add_argument("--profile", action="store_true", help="cProfile one in-process stream")
    args = parser.parse_args()
    rows, repeats = (5_000, 1) if args.smoke else (args.rows, args.repeats)

    # Limits off: the point is the connector's own cost, not Exact's 60 calls a minute.
    sandbox = Sandbox(
        seed=1,
        limits=False,
        clock=ManualClock(),
        auto_consent=True,
        rows_per_endpoint={ENDPOINT: rows},
    )
    assert sandbox.count(DIVISION, ENDPOINT) == rows
    results = []
    with tempfile.TemporaryDirectory() as home, transports(sandbox, Path(home)) as setups:
        for name, setup in setups:
            assert by_raw_httpx(setup) == by_stream(setup) == rows  # warm up, and agree
            ways = {
                "stream": lambda s=setup: by_stream(s),
                "execute(limit)": lambda s=setup: by_execute(s, rows),
                "raw httpx + json": lambda s=setup: by_raw_httpx(s),
            }
            results.append((name, measure(setup, ways, repeats)))
        report(rows, repeats, results)
        if args.profile:
            profile(setups[0][1])
        for _, setup in setups:
            setup.connector.vault.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
