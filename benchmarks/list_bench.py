"""Listing many records through ``list_or_get_endpoint``: calls, speed, memory, overhead.

Two lists, each at its own page size, both with a ``$select``:

* bulk pages: 100,000 ``crm/Accounts`` rows, read through its bulk twin ``bulk/CRM/Accounts``
  (1,000 rows a call);
* standard pages: 30,000 ``crm/Opportunities`` rows, an endpoint without a twin (60 rows a call,
  followed by ``__next``).

Each list is read four ways, in-process (``MockTransport``) and over loopback:

* ``Connector.stream`` -- records one at a time (flat memory), normalised (ISO dates, no
  ``__metadata``); and ``stream_raw``, the same with ``raw: true`` (Exact's records as sent), so
  that the normalisation's share of the overhead shows apart from the request path's;
* ``Connector.execute`` with ``limit`` -- the whole list in one envelope;
* a raw httpx loop over the same transport and the same page URLs, doing JSON parsing only.

For each it prints the API calls used, records per second (median of the repeats, the ways
interleaved), and the peak memory growth (tracemalloc, in a separate run so it does not slow the
timed ones); then the overhead ratios connector/raw. Targets: the minimum of calls, stream peak
growth under 50 MB, stream/raw under 1.15 on both page sizes.

    python benchmarks/list_bench.py                       # both lists, both transports, 5 repeats
    python benchmarks/list_bench.py --smoke               # a few pages of each, 1 repeat (CI)
    python benchmarks/list_bench.py --pages standard --transport loopback --ways stream,raw
    python benchmarks/list_bench.py --profile             # also cProfile one in-process stream
    python benchmarks/list_bench.py --processes 5         # each ratio in 5 processes, and median

A ratio moves with the process as well as with the code: the same commit measured 1.10 and 1.34
on 60-row pages in-process, in two processes with 15 repeats each. The hash seed is part of it.
``--processes N`` runs the whole comparison in N fresh processes (``PYTHONHASHSEED`` 0 to N-1,
so a run can be repeated) and prints each process's ratios with their median.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import itertools
import os
import pstats
import re
import statistics
import subprocess
import sys
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

from exact_connector.catalog import catalog
from exact_connector.clock import ManualClock
from exact_connector.runtime import Connector
from exact_connector.sandbox import Sandbox, serve
from exact_connector.vault import Vault
from exact_connector.vault.sealing import KeyRing, generate_key

DIVISION = 100001
DAY = 86_400


@dataclass(frozen=True)
class Case:
    """One list: the endpoint asked for, the one the pages come from, and its fields."""

    name: str
    endpoint: str
    pages_from: str
    select: tuple[str, ...]
    rows: int

    @property
    def page(self) -> int:
        return catalog().lookup(self.pages_from).page_size


CASES = {
    "bulk": Case(
        "bulk",
        "crm/Accounts",
        "bulk/CRM/Accounts",
        ("ID", "Code", "Name", "City", "Email", "Modified"),
        100_000,
    ),
    "standard": Case(
        "standard",
        "crm/Opportunities",
        "crm/Opportunities",
        ("ID", "Name", "AmountDC", "Probability", "CloseDate", "Modified"),
        30_000,
    ),
}
SMOKE_ROWS = {"bulk": 5_000, "standard": 600}
WAYS = ("stream", "stream_raw", "execute", "raw")
TRANSPORTS = ("in-process", "loopback")


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
    token: str = ""
    #: Raw httpx's client, kept open across runs like the connector's pool (keep-alive).
    raw: httpx.Client | None = None

    def next_day(self) -> None:
        """Move the manual clock to the start of the next day (the governor's daily count of 5,000
        calls starts again) and take a fresh access token, so no run pays for a refresh."""
        clock = self.sandbox.clock
        assert isinstance(clock, ManualClock)
        clock.advance(DAY - clock.now() % DAY + 1)
        with self.connector.client(self.credential) as exact:
            token = exact.auth.current().access_token
        assert token is not None
        self.token = token.get_secret_value()


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


def inputs(case: Case, **extra: Any) -> dict[str, Any]:
    return {"division": DIVISION, "endpoint": case.endpoint, "select": list(case.select), **extra}


def by_stream(setup: Setup, case: Case) -> int:
    return sum(1 for _ in setup.connector.stream(setup.credential, inputs(case)))


def by_stream_raw(setup: Setup, case: Case) -> int:
    """``stream`` with ``raw: true``: Exact's records as sent (``/Date(ms)/``, ``__metadata``)."""
    return sum(1 for _ in setup.connector.stream(setup.credential, inputs(case, raw=True)))


def by_execute(setup: Setup, case: Case) -> int:
    # The governor paces the calls at Exact's 60 a minute (instantly: a manual clock), which is
    # more than the default 120 s step deadline; an engine gives a step this long its own.
    result = setup.connector.execute(
        "list_or_get_endpoint",
        setup.credential,
        inputs(case, limit=case.rows),
        deadline_seconds=10**6,
    )
    assert result["ok"], result
    assert result["meta"]["api_calls"] == -(-case.rows // case.page), result["meta"]
    return int(result["data"]["count"])


def by_raw_httpx(setup: Setup, case: Case, pages: int | None = None) -> int:
    """The same pages with httpx alone: the first URL the connector sends, then ``__next``
    (``pages``: stop after that many)."""
    client = setup.raw
    assert client is not None
    client.headers["Authorization"] = f"Bearer {setup.token}"
    url: str | None = f"{setup.base_url}/api/v1/{DIVISION}/{case.pages_from}"
    params: dict[str, str] | None = {"$select": ",".join(case.select)}
    records = 0
    for _ in itertools.count() if pages is None else range(pages):
        if url is None:
            break
        body = client.get(url, params=params).raise_for_status().json()["d"]
        records += len(body["results"])
        url, params = body.get("__next"), None
    return records


BY = {
    "stream": by_stream,
    "stream_raw": by_stream_raw,
    "execute": by_execute,
    "raw": by_raw_httpx,
}
LABELS = {
    "stream": "stream",
    "stream_raw": "stream, raw: true",
    "execute": "execute(limit)",
    "raw": "raw httpx + json",
}


# -- measuring -----------------------------------------------------------------------------------


def measure(setup: Setup, case: Case, ways: list[str], repeats: int) -> dict[str, Figures]:
    """Median time of ``repeats`` runs of each way, interleaved so that a busy machine slows
    them alike; calls of one run; peak memory growth of one more run under tracemalloc."""
    counters = setup.sandbox.counters
    times: dict[str, list[float]] = {way: [] for way in ways}
    records: dict[str, int] = {}
    calls: dict[str, int] = {}
    for _ in range(repeats):
        for way in ways:
            before = counters.calls(case.pages_from)
            setup.next_day()
            gc.collect()
            start = time.perf_counter()
            records[way] = BY[way](setup, case)
            times[way].append(time.perf_counter() - start)
            calls[way] = counters.calls(case.pages_from) - before
    figures = {}
    for way in ways:
        setup.next_day()
        gc.collect()
        tracemalloc.start()
        BY[way](setup, case)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        median = statistics.median(times[way])
        figures[way] = Figures(LABELS[way], calls[way], records[way], median, peak / 1e6)
    return figures


@contextmanager
def transports(sandbox: Sandbox, home: Path, wanted: list[str]) -> Iterator[dict[str, Setup]]:
    """The connector in-process and over loopback (those wanted), each signed in once."""
    setups = {}
    if "in-process" in wanted:
        setups["in-process"] = signed_in(
            sandbox, home / "in-process", "https://start.exactonline.nl", False
        )
    with serve(sandbox) as base_url:
        if "loopback" in wanted:
            setups["loopback"] = signed_in(sandbox, home / "loopback", base_url, True)
        for setup in setups.values():
            accept = {"Accept": "application/json"}
            setup.raw = httpx.Client(transport=setup.transport, headers=accept, trust_env=False)
        yield setups
    for setup in setups.values():
        assert setup.raw is not None
        setup.raw.close()
        setup.connector.vault.close()


Results = list[tuple[Case, str, dict[str, Figures]]]


def report(repeats: int, results: Results) -> None:
    print(f"list_or_get_endpoint, median of {repeats}")
    print(
        f"{'pages':<10}{'transport':<12}{'way':<19}{'calls':>7}{'records':>10}{'seconds':>9}"
        f"{'records/s':>12}{'peak MB':>9}"
    )
    for case, transport, figures in results:
        for f in figures.values():
            print(
                f"{case.name:<10}{transport:<12}{f.name:<19}{f.calls:>7}{f.records:>10,}"
                f"{f.seconds:>9.3f}{f.rate:>12,.0f}{f.peak_mb:>9.1f}"
            )
    print()
    print("Targets: stream/raw overhead < 1.15 on both page sizes; stream peak < 50 MB.")
    for case, transport, figures in results:
        raw = figures.get("raw")
        line = f"{case.name} ({case.page} a page), {transport}:"
        for way in ("stream", "stream_raw", "execute"):
            if way in figures and raw is not None:
                ratio = figures[way].seconds / raw.seconds
                added = (figures[way].seconds - raw.seconds) / max(raw.calls, 1) * 1000
                line += f" {way}/raw overhead {ratio:.2f} ({added:+.2f} ms a page);"
        if "stream" in figures:
            stream = figures["stream"]
            minimum = -(-stream.records // case.page)
            line += f" calls {stream.calls} (minimum {minimum}), peak {stream.peak_mb:.1f} MB"
        print(line)


def profile(setup: Setup, case: Case) -> None:
    """Where a stream's time goes (in-process), by cumulative and own time."""
    setup.next_day()
    profiler = cProfile.Profile()
    profiler.runcall(by_stream, setup, case)
    for order in ("cumulative", "tottime"):
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats(order).print_stats(18)
        print(text.getvalue())


_RATIO = re.compile(r"(\w+)/raw overhead ([0-9.]+)")


def across_processes(count: int) -> int:
    """This script with the same arguments in ``count`` fresh processes: each one's overhead
    ratios, and their median."""
    ratios: dict[str, list[float]] = {}
    for seed in range(count):
        child = subprocess.run(  # this interpreter, this script: the same arguments, one process
            [sys.executable, __file__, *sys.argv[1:], "--processes", "1"],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
        )
        for line in child.stdout.splitlines():
            where, _, figures = line.partition(":")
            for way, ratio in _RATIO.findall(figures):
                ratios.setdefault(f"{where}, {way}/raw", []).append(float(ratio))
    print(f"overhead ratios in {count} processes (PYTHONHASHSEED 0 to {count - 1}), and median")
    print("Targets: stream/raw overhead < 1.15 on both page sizes.")
    for name, values in ratios.items():
        listed = ", ".join(f"{value:.2f}" for value in values)
        print(f"{name}: {listed}; median {statistics.median(values):.2f}")
    return 0


def choice(options: tuple[str, ...]) -> Callable[[str], list[str]]:
    """An argument of comma-separated names from ``options``."""

    def parse(text: str) -> list[str]:
        names = [name.strip() for name in text.split(",") if name.strip()]
        if not names or not set(names) <= set(options):
            raise argparse.ArgumentTypeError(f"choose from {', '.join(options)}")
        return [name for name in options if name in names]

    return parse


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, help="rows of each list (default: the case's own)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="a few pages each, one repeat")
    parser.add_argument("--pages", type=choice(tuple(CASES)), default=list(CASES))
    parser.add_argument("--transport", type=choice(TRANSPORTS), default=list(TRANSPORTS))
    parser.add_argument("--ways", type=choice(WAYS), default=list(WAYS))
    parser.add_argument("--profile", action="store_true", help="cProfile one in-process stream")
    parser.add_argument(
        "--processes", type=int, default=1, help="run it all in N processes, print the medians"
    )
    args = parser.parse_args()
    if args.processes > 1:
        return across_processes(args.processes)
    repeats = 1 if args.smoke else args.repeats
    cases = []
    for name in args.pages:
        rows = SMOKE_ROWS[name] if args.smoke else args.rows or CASES[name].rows
        cases.append(Case(**{**CASES[name].__dict__, "rows": rows}))

    # Limits off: the point is the connector's own cost, not Exact's 60 calls a minute.
    sandbox = Sandbox(
        seed=1,
        limits=False,
        clock=ManualClock(),
        auto_consent=True,
        rows_per_endpoint={case.endpoint: case.rows for case in cases},
    )
    results: Results = []
    with (
        tempfile.TemporaryDirectory() as home,
        transports(sandbox, Path(home), args.transport) as setups,
    ):
        for case in cases:
            assert sandbox.count(DIVISION, case.endpoint) == case.rows
            for transport, setup in setups.items():
                setup.next_day()  # warm up, and agree
                assert by_raw_httpx(setup, case) == by_stream(setup, case) == case.rows
                results.append((case, transport, measure(setup, case, args.ways, repeats)))
        report(repeats, results)
        if args.profile:
            setup = setups.get("in-process") or next(iter(setups.values()))
            for case in cases:
                print(f"-- profile: stream of {case.name} pages")
                profile(setup, case)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
