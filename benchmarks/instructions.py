"""What a step and a list page cost in CPU instructions, against raw httpx: figures that do not
move with the machine's load.

On a shared 2-core machine the wall-clock ratios of ``step_bench.py`` and ``list_bench.py`` swing
by ±0.1 from run to run (the same code measured a 60-row list at 1.07 and 1.23 within minutes).
Valgrind's callgrind counts the instructions a process executes, which is the same in every run.
Each way runs in a child process twice, for a small and a large number of units (steps or pages);
the difference divided by the difference in units is what one unit costs, set-up excluded.

* ``get``: a warm single-record get through ``Connector.execute`` against raw httpx's keep-alive
  get of the same URL (the sandbox runs in a process of its own, not counted);
* ``standard`` / ``bulk``: one 60-row / 1,000-row page of ``Connector.stream`` against raw httpx
  and ``response.json()`` (the loopback sandbox serves from a thread of the same process, so its
  work is counted in both ways alike, as in ``list_bench.py``).

Needs valgrind (Debian: ``apt-get install valgrind``); takes some ten minutes.

    python benchmarks/instructions.py                  # every case
    python benchmarks/instructions.py --cases get      # one case
    python benchmarks/instructions.py --smoke          # each way run once natively (CI)
"""

from __future__ import annotations

import argparse
import itertools
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import list_bench
import step_bench

from exact_connector.clock import ManualClock
from exact_connector.sandbox import Sandbox

#: Units (steps or pages) of the small and the large run of each way.
UNITS = {"get": (100, 300), "standard": (20, 100), "bulk": (2, 5)}
WAYS = ("connector", "raw")
_COLLECTED = re.compile(r"Collected : (\d+)")


# -- the child: set up, then run a number of units -------------------------------------------------


@contextmanager
def step_way(way: str) -> Iterator[Callable[[int], None]]:
    with step_bench.sandbox_process() as settings, tempfile.TemporaryDirectory() as home:
        bench = step_bench.signed_in(settings, Path(home) / "home")
        record_id = bench.raw_create()
        get = step_bench.ways(bench, record_id)["get"]["execute" if way == "connector" else "raw"]

        def run(units: int) -> None:
            for _ in range(units):
                get()

        try:
            yield run
        finally:
            bench.connector.close()
            bench.raw.close()


@contextmanager
def list_way(name: str, way: str) -> Iterator[Callable[[int], None]]:
    case = list_bench.CASES[name]
    rows = case.page * (UNITS[name][1] + 2)
    sandbox = Sandbox(
        seed=1,
        limits=False,
        clock=ManualClock(),
        auto_consent=True,
        rows_per_endpoint={case.endpoint: rows},
    )
    with (
        tempfile.TemporaryDirectory() as home,
        list_bench.transports(sandbox, Path(home), ["loopback"]) as setups,
    ):
        setup = setups["loopback"]
        setup.next_day()
        by = list_bench.by_stream if way == "connector" else list_bench.by_raw_httpx
        by(setup, list_bench.Case(**{**case.__dict__, "rows": case.page}))  # warm up

        def run(units: int) -> None:
            setup.next_day()
            part = list_bench.Case(**{**case.__dict__, "rows": units * case.page})
            if way == "connector":
                stream = setup.connector.stream(setup.credential, list_bench.inputs(case))
                assert sum(1 for _ in itertools.islice(stream, part.rows)) == part.rows
            else:
                assert list_bench.by_raw_httpx(setup, part, units) == part.rows

        yield run


def child(case: str, way: str, units: int) -> None:
    made = step_way(way) if case == "get" else list_way(case, way)
    with made as run:
        run(units)


# -- the parent: count each run, print the table ---------------------------------------------------


def counted(case: str, way: str, units: int) -> int:
    """Instructions of one child process running ``units`` units."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    command += [sys.executable, __file__, "--child", case, way, str(units)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
    match = _COLLECTED.search(result.stderr)
    if result.returncode != 0 or match is None:
        raise SystemExit(f"{case}/{way} failed under valgrind:\n{result.stderr[-2000:]}")
    return int(match.group(1))


def per_unit(case: str, way: str) -> float:
    small, large = UNITS[case]
    return (counted(case, way, large) - counted(case, way, small)) / (large - small)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(UNITS), help="get, standard, bulk")
    parser.add_argument("--smoke", action="store_true", help="each way once, natively, no counts")
    parser.add_argument(
        "--child", nargs=3, metavar=("CASE", "WAY", "UNITS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        case, way, units = args.child
        child(case, way, int(units))
        return 0
    cases = [case.strip() for case in args.cases.split(",")]
    unknown = [case for case in cases if case not in UNITS]
    if unknown:
        parser.error(f"unknown case {unknown[0]!r}: choose from {', '.join(UNITS)}")
    if not args.smoke and shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    print("instructions per unit (callgrind; a unit is a warm get, or one list page)")
    print(f"{'case':10s} {'connector':>14s} {'raw httpx':>14s} {'ratio':>7s}")
    for case in cases:
        if args.smoke:
            for way in WAYS:
                child(case, way, 1)
            print(f"{case:10s} {'-':>14s} {'-':>14s} {'-':>7s}  (--smoke: run, not counted)")
            continue
        connector, raw = (per_unit(case, way) for way in WAYS)
        print(f"{case:10s} {connector:14,.0f} {raw:14,.0f} {connector / raw:7.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
