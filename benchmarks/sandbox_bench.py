"""How fast the sandbox pages a 100,000-row sync endpoint, in-process and over loopback.

Prints one table: seeding time, then for each transport the median (over repeats) time to page
the whole of ``sync/Project/TimeCostTransactions`` (1000 rows a page, following ``__next``), as
pages and rows per second. Limits are off: 100 pages would otherwise need two clock minutes.

    python benchmarks/sandbox_bench.py              # 100,000 rows, 5 repeats
    python benchmarks/sandbox_bench.py --smoke      # 5,000 rows, 1 repeat (CI)
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import httpx

from exact_connector.sandbox import Sandbox, serve

ENDPOINT = "sync/Project/TimeCostTransactions"
SELECT = "Timestamp,ID,Date,Employee,Quantity,ProjectCode"
DIVISION = 100001


def page_all(client: httpx.Client) -> tuple[int, int]:
    """Follow ``__next`` to the end; returns (pages, rows)."""
    pages = rows = 0
    response = client.get(f"/api/v1/{DIVISION}/{ENDPOINT}", params={"$select": SELECT})
    while True:
        response.raise_for_status()
        body = response.json()["d"]
        pages, rows = pages + 1, rows + len(body["results"])
        if "__next" not in body:
            return pages, rows
        response = client.get(body["__next"])


def measure(run: Callable[[], tuple[int, int]], repeats: int) -> tuple[float, int, int]:
    """Median seconds of ``repeats`` runs, and the pages and rows of one run."""
    times, pages, rows = [], 0, 0
    for _ in range(repeats):
        start = time.perf_counter()
        pages, rows = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), pages, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="5,000 rows, one repeat")
    args = parser.parse_args()
    rows, repeats = (5_000, 1) if args.smoke else (args.rows, args.repeats)

    sandbox = Sandbox(seed=1, limits=False, rows_per_endpoint={ENDPOINT: rows})
    start = time.perf_counter()
    assert sandbox.count(DIVISION, ENDPOINT) == rows
    seeded = time.perf_counter() - start
    token = sandbox.issue_tokens()["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    results = []
    base = "https://start.exactonline.nl"
    with httpx.Client(
        transport=httpx.MockTransport(sandbox), base_url=base, headers=headers
    ) as client:
        results.append(("in-process (MockTransport)", *measure(lambda: page_all(client), repeats)))
    with serve(sandbox) as base_url, httpx.Client(base_url=base_url, headers=headers) as client:
        results.append(
            ("loopback (127.0.0.1, keep-alive)", *measure(lambda: page_all(client), repeats))
        )

    print(f"sandbox paging: {ENDPOINT}, {rows:,} rows, $select={SELECT}, median of {repeats}")
    print(f"seeding {rows:,} rows: {seeded:.3f} s")
    print(f"{'transport':<34}{'seconds':>10}{'pages':>8}{'pages/s':>10}{'rows/s':>12}")
    for name, seconds, pages, total in results:
        print(
            f"{name:<34}{seconds:>10.3f}{pages:>8}{pages / seconds:>10.1f}{total / seconds:>12,.0f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
