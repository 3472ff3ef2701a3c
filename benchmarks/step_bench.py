"""What a workflow step costs over the HTTP call it makes: ``execute`` against raw httpx.

One sandbox runs in its own process on loopback (limits off, so Exact's 60 calls a minute do not
set the pace; the connector's governor still does all its bookkeeping, with limits it never
reaches). Every figure is printed beside raw httpx measured in the same run:

* warm single-record steps -- get, create, update, delete -- through ``Connector.execute`` against
  one keep-alive ``httpx.Client`` sending the same requests (update is PUT then GET, as the action
  does); repeats interleaved, medians per call;
* 8 threads sharing one Connector against 8 threads of raw httpx: gets per second, how many
  steps failed on the connector's own storage (vault, rate-limit state), and what a get cost the
  process in CPU and context switches (a thread that gives up the GIL for a socket or SQLite call
  waits to get it back: under 8 threads, each such call costs a switch or two);
* a CLI step as a fresh process (``exact-connector run``) against a fresh ``python -c`` doing the
  same GET with httpx, and ``exact-connector --version`` against ``python -c pass``. Before them
  the package's bytecode is compiled once, as ``pip install`` does at install time: a checkout's
  editable install under ``PYTHONDONTWRITEBYTECODE`` would otherwise compile every module from
  source at each start, a cost no installed copy pays.

    python benchmarks/step_bench.py             # 200 calls a way, 8 x 150 threaded, 11 processes
    python benchmarks/step_bench.py --smoke     # a handful of each (CI)
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import list_bench  # a neighbour script (its in-process sign-in): run this one as a script

import exact_connector
from exact_connector.clock import ScaledClock
from exact_connector.limits import RateGovernor
from exact_connector.runtime import Connector
from exact_connector.sandbox import Sandbox
from exact_connector.vault import Vault

DIVISION = 100001
TIME_TRANSACTIONS = "project/TimeTransactions"
THREADS = 8
UNLIMITED = 10**9
#: Error codes of the connector's own storage: the vault, and the rate-limit state (which raises
#: ``transient`` when its file stays locked and ``system_error`` when it cannot be used).
STORAGE_ERRORS = frozenset(
    {"vault_busy", "vault_io", "concurrent_update", "transient", "system_error"}
)


@dataclass
class Bench:
    """A signed-in connector and a raw client with the same token, against one sandbox."""

    base_url: str
    home: Path
    connector: Connector
    credential: str
    raw: httpx.Client
    token: str
    lookups: dict[str, str]

    def api(self, path: str) -> str:
        return f"{self.base_url}/api/v1/{DIVISION}/{path}"

    def record_url(self, record_id: str) -> str:
        return self.api(f"{TIME_TRANSACTIONS}(guid'{record_id}')")

    def new_data(self) -> dict[str, Any]:
        return {**self.lookups, "Quantity": 1.5, "Notes": "bench"}

    def raw_create(self) -> str:
        """A new time transaction, made with raw httpx (the setup of a delete)."""
        response = self.raw.post(
            self.api(TIME_TRANSACTIONS),
            json=self.new_data(),
            headers={"Prefer": "return=representation"},
        )
        return str(response.raise_for_status().json()["d"]["ID"])


@contextmanager
def sandbox_process() -> Iterator[dict[str, str]]:
    """``exact-connector sandbox`` in its own process: its printed settings, until stopped."""
    command = [sys.executable, "-m", "exact_connector", "sandbox", "--port", "0"]
    command += ["--limits", "off", "--auto-consent", "--rows", "150"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stdout is not None
        settings: dict[str, str] = {}
        while "limits" not in settings:
            line = process.stdout.readline()
            if not line:
                raise RuntimeError("the sandbox did not start")
            name, _, value = line.strip().partition(": ")
            settings[name] = value
        yield settings
    finally:
        process.terminate()
        process.wait(timeout=30)


def signed_in(settings: dict[str, str], home: Path) -> Bench:
    """A vault with a key file, one active credential signed in through the code flow."""
    Vault.init(home)
    connector = Connector(vault=Vault.open(home), allow_sandbox=True)
    # Limits off on our side too: the same SQLite bookkeeping per call, never a wait.
    governor = RateGovernor(home / "bench-limits.db", minute_limit=UNLIMITED, day_limit=UNLIMITED)
    connector.__dict__["governor"] = governor
    base_url = settings["base_url"]
    credential = connector.credentials.begin(
        {
            "connector_name": "bench",
            "auth_type": "oauth2_authorization_code",
            "server_url": base_url,
            "client_id": settings["client_id"],
            "client_secret": settings["client_secret"],
            "redirect_uri": settings["redirect_uri"],
        }
    )
    consent = httpx.get(connector.authorization_url(credential, "bench-1"), trust_env=False)
    code = parse_qs(urlsplit(consent.headers["location"]).query)["code"][0]
    connector.complete_authorization(credential, code, "bench-1")
    assert connector.test_connect(credential)["ok"]
    connector.credentials.activate(credential)
    token = connector.credentials.get(credential.id).access_token
    assert token is not None
    secret = token.get_secret_value()
    raw = httpx.Client(
        headers={"Authorization": f"Bearer {secret}", "Accept": "application/json"},
        trust_env=False,
    )
    bench = Bench(base_url, home, connector, credential.id, raw, secret, {})
    bench.lookups = lookups(bench)
    return bench


def lookups(bench: Bench) -> dict[str, str]:
    """A project, an hour type and an employee of the division, for new time transactions."""

    def first(path: str, **params: str) -> str:
        response = bench.raw.get(bench.api(path), params={"$select": "ID", **params})
        return str(response.raise_for_status().json()["d"]["results"][0]["ID"])

    return {
        "Project": first("project/Projects"),
        "Item": first("logistics/Items", **{"$filter": "IsTime eq 1"}),
        "Employee": first("payroll/Employees"),
    }


# -- one step each way ---------------------------------------------------------------------------


def step(bench: Bench, action: str, inputs: dict[str, Any]) -> dict[str, Any]:
    result = bench.connector.execute(action, bench.credential, inputs)
    assert result["ok"], result
    return result


def ways(bench: Bench, record_id: str) -> dict[str, dict[str, Callable[[], object]]]:
    """Per operation: the connector's step and raw httpx's same requests."""
    url = bench.record_url(record_id)
    update = {"Quantity": 2.5, "Notes": "bench update"}
    create_headers = {"Prefer": "return=representation"}
    base = {"division": DIVISION}
    return {
        "get": {
            "execute": lambda: step(
                bench,
                "list_or_get_endpoint",
                {**base, "endpoint": TIME_TRANSACTIONS, "id": record_id},
            ),
            "raw": lambda: bench.raw.get(url).raise_for_status().json(),
        },
        "create": {
            "execute": lambda: step(
                bench, "create_project_time_transaction", {**base, "data": bench.new_data()}
            ),
            "raw": lambda: (
                bench.raw.post(
                    bench.api(TIME_TRANSACTIONS), json=bench.new_data(), headers=create_headers
                )
                .raise_for_status()
                .json()
            ),
        },
        "update": {
            "execute": lambda: step(
                bench,
                "update_project_time_transaction",
                {**base, "id": record_id, "data": update},
            ),
            "raw": lambda: (
                bench.raw.put(url, json=update).raise_for_status(),
                bench.raw.get(url).raise_for_status().json(),
            ),
        },
    }


def delete_ways(bench: Bench) -> dict[str, Callable[[str], object]]:
    return {
        "execute": lambda record_id: step(
            bench,
            "delete_endpoint_record",
            {"division": DIVISION, "endpoint": TIME_TRANSACTIONS, "id": record_id},
        ),
        "raw": lambda record_id: bench.raw.delete(bench.record_url(record_id)).raise_for_status(),
    }


def warm_steps(bench: Bench, calls: int) -> dict[str, dict[str, float]]:
    """Median seconds per call of each operation, each way; calls interleaved way by way."""
    record_id = bench.raw_create()
    table = ways(bench, record_id)
    deletes = delete_ways(bench)
    times: dict[str, dict[str, list[float]]] = {
        op: {"execute": [], "raw": []} for op in [*table, "delete"]
    }
    for _ in range(3):  # warm: connections, caches, first-use imports
        for pair in table.values():
            for run in pair.values():
                run()
    for _ in range(calls):
        for op, pair in table.items():
            for name, run in pair.items():
                start = time.perf_counter()
                run()
                times[op][name].append(time.perf_counter() - start)
        for name, delete in deletes.items():
            doomed = bench.raw_create()
            start = time.perf_counter()
            delete(doomed)
            times["delete"][name].append(time.perf_counter() - start)
    return {
        op: {name: statistics.median(values) for name, values in pair.items()}
        for op, pair in times.items()
    }


# -- threads -------------------------------------------------------------------------------------


def threaded(run: Callable[[], bool], per_thread: int) -> tuple[float, int, Usage]:
    """Gets per second of THREADS threads each calling ``run`` ``per_thread`` times; failures; and
    what each get cost the process (CPU, context switches)."""
    failures: list[int] = []
    barrier = threading.Barrier(THREADS + 1)

    def worker() -> None:
        barrier.wait()
        failed = sum(0 if run() else 1 for _ in range(per_thread))
        failures.append(failed)

    workers = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in workers:
        thread.start()
    before = resource.getrusage(resource.RUSAGE_SELF)
    barrier.wait()
    start = time.perf_counter()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - start
    gets = THREADS * per_thread
    return gets / elapsed, sum(failures), Usage.per(gets, before)


@dataclass(frozen=True)
class Usage:
    """What one get cost the whole process while the threads ran: CPU (user and system) and
    context switches (a thread giving up the GIL for a socket or SQLite call, and waiting to get
    it back, is one or two)."""

    cpu: float
    switches: float

    @classmethod
    def per(cls, gets: int, before: resource.struct_rusage) -> Usage:
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        switches = after.ru_nvcsw - before.ru_nvcsw + after.ru_nivcsw - before.ru_nivcsw
        return cls(cpu / gets, switches / gets)


def thread_figures(bench: Bench, per_thread: int, repeats: int) -> dict[str, Any]:
    """Median throughput of each way over ``repeats`` interleaved runs; the connector's errors."""
    record_id = bench.raw_create()
    url = bench.record_url(record_id)
    inputs = {"division": DIVISION, "endpoint": TIME_TRANSACTIONS, "id": record_id}
    codes: list[str] = []

    def connector_get() -> bool:
        result = bench.connector.execute("list_or_get_endpoint", bench.credential, inputs)
        if not result["ok"]:
            codes.append(result["error"]["code"])
        return bool(result["ok"])

    def raw_get() -> bool:  # the record read, as the warm steps' raw get and every caller do
        response = bench.raw.get(url)
        return response.status_code == 200 and bool(response.json())

    rates: dict[str, list[float]] = {"execute": [], "raw": []}
    usage: dict[str, list[Usage]] = {"execute": [], "raw": []}
    failures = {"execute": 0, "raw": 0}
    for _ in range(repeats):
        for name, run in (("execute", connector_get), ("raw", raw_get)):
            rate, failed, used = threaded(run, per_thread)
            rates[name].append(rate)
            usage[name].append(used)
            failures[name] += failed
    storage = sum(1 for code in codes if code in STORAGE_ERRORS)
    return {
        "rates": {name: statistics.median(values) for name, values in rates.items()},
        "usage": {
            name: Usage(
                statistics.median(u.cpu for u in used),
                statistics.median(u.switches for u in used),
            )
            for name, used in usage.items()
        },
        "failures": failures,
        "storage_errors": storage,
        "codes": sorted(set(codes)),
    }


# -- fresh processes -----------------------------------------------------------------------------


def run_process(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=120)
    return time.perf_counter() - start


def compile_package() -> None:
    """Write the package's bytecode (``__pycache__``, ignored by git), as an install does."""
    package = Path(exact_connector.__file__).parent
    if not compileall.compile_dir(package, quiet=1):
        raise RuntimeError(f"{package} did not compile")


def process_figures(bench: Bench, repeats: int) -> dict[str, float]:
    """Median seconds of each fresh process, the pairs interleaved, the package's bytecode
    compiled first (:func:`compile_package`)."""
    compile_package()
    record_id = bench.raw_create()
    inputs = bench.home / "get.json"
    inputs.write_text(
        json.dumps({"division": DIVISION, "endpoint": TIME_TRANSACTIONS, "id": record_id})
    )
    executable = shutil.which("exact-connector", path=str(Path(sys.executable).parent))
    cli = [executable or "exact-connector"]
    env = {**os.environ, "EXACT_CONNECTOR_ALLOW_SANDBOX": "1"}
    raw_get = (
        "import httpx, os, sys; "
        "r = httpx.get(sys.argv[1], headers={'Authorization': 'Bearer ' + os.environ['TOKEN'], "
        "'Accept': 'application/json'}, trust_env=False); "
        "print(r.raise_for_status().json())"
    )
    env["TOKEN"] = bench.token  # not on a command line, where any process could read it
    run = ["run", "list_or_get_endpoint", "--credential", "bench", "--input", str(inputs)]
    commands = {
        "cli run": [*cli, *run, "--home", str(bench.home)],
        "python -c httpx get": [sys.executable, "-c", raw_get, bench.record_url(record_id)],
        "cli --version": [*cli, "--version"],
        "python -c pass": [sys.executable, "-c", "pass"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, command in commands.items():
            times[name].append(run_process(command, env))
    return {name: statistics.median(values) for name, values in times.items()}


# -- the governor under Exact's real limit ---------------------------------------------------------

GOVERNED_THREADS = 10
MINUTE = 60.0


def governed(home: Path, per_thread: int) -> dict[str, Any]:
    """10 threads through one Connector, one division, the sandbox's 60 calls a minute on, both
    on a clock sixty times faster than real: how many 429s, and the calls in each clock minute."""
    clock = ScaledClock(60.0, 1_767_225_600.5)  # half a second into a minute
    sandbox = Sandbox(seed=1, clock=clock, auto_consent=True, limits=True)
    setup = list_bench.signed_in(sandbox, home, "https://start.exactonline.nl", loopback=False)
    connector, vault, credential = setup.connector, setup.connector.vault, setup.credential
    record_id = sandbox.records(DIVISION, TIME_TRANSACTIONS)[0]["ID"]
    inputs = {"division": DIVISION, "endpoint": TIME_TRANSACTIONS, "id": record_id}
    before, limited = len(sandbox.counters.events), sandbox.counters.rate_limited
    failed: list[str] = []

    def worker() -> None:
        for _ in range(per_thread):
            result = connector.execute(
                "list_or_get_endpoint", credential, inputs, deadline_seconds=3600
            )
            if not result["ok"]:
                failed.append(result["error"]["code"])

    workers = [threading.Thread(target=worker) for _ in range(GOVERNED_THREADS)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    connector.close()
    vault.close()
    # The threads' calls; Test Connect's few, just before, drew on the first minute too.
    arrivals = [e.time for e in sandbox.counters.events[before:] if e.kind == "api"]
    windows: dict[int, int] = {}
    for at in arrivals:
        windows[int(at // MINUTE)] = windows.get(int(at // MINUTE), 0) + 1
    return {
        "calls": len(arrivals),
        "rate_limited": sandbox.counters.rate_limited - limited,
        "failed": failed,
        "windows": [windows[key] for key in sorted(windows)],
    }


# -- report --------------------------------------------------------------------------------------


def report(
    steps: dict[str, dict[str, float]],
    threads: dict[str, Any],
    processes: dict[str, float],
    calls: int,
    per_thread: int,
) -> None:
    print(f"warm steps over loopback, limits off, median of {calls} calls each (ms)")
    print(f"{'step':<10}{'execute':>10}{'raw httpx':>11}{'ratio':>8}   target <= 1.30")
    for op, pair in steps.items():
        ratio = pair["execute"] / pair["raw"]
        print(f"{op:<10}{pair['execute'] * 1e3:>10.2f}{pair['raw'] * 1e3:>11.2f}{ratio:>8.2f}")
    print()
    rates = threads["rates"]
    print(f"{THREADS} threads x {per_thread} gets, one Connector vs raw httpx (gets/s, median)")
    print(
        f"execute {rates['execute']:,.0f}  raw httpx {rates['raw']:,.0f}  ratio "
        f"{rates['execute'] / rates['raw']:.2f} (target >= 0.80)  failed steps "
        f"{threads['failures']['execute']}  storage errors {threads['storage_errors']} "
        f"{threads['codes'] or ''}"
    )
    usage = threads["usage"]
    print(
        f"per get, whole process: CPU execute {usage['execute'].cpu * 1e6:,.0f} us, raw httpx "
        f"{usage['raw'].cpu * 1e6:,.0f} us; context switches execute "
        f"{usage['execute'].switches:.1f}, raw httpx {usage['raw'].switches:.1f}"
    )
    print()
    print("fresh processes (ms, median; the package's bytecode compiled first, as an install does)")
    for name, seconds in processes.items():
        print(f"{name:<22}{seconds * 1e3:>9.0f}")
    cli_ratio = processes["cli run"] / processes["python -c httpx get"]
    version_ratio = processes["cli --version"] / processes["python -c pass"]
    print(f"cli run / python -c httpx get {cli_ratio:.2f} (target <= 2)")
    print(f"cli --version / python -c pass {version_ratio:.2f} (target <= 3)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per step and way")
    parser.add_argument("--per-thread", type=int, default=150, help="gets per thread")
    parser.add_argument("--repeats", type=int, default=5, help="threaded runs per way")
    parser.add_argument("--processes", type=int, default=11, help="fresh processes per command")
    parser.add_argument("--governed", type=int, default=30, help="paced gets per thread")
    parser.add_argument("--smoke", action="store_true", help="a handful of each (CI)")
    args = parser.parse_args()
    if args.smoke:
        args.calls, args.per_thread, args.repeats, args.processes = 5, 5, 1, 1
        args.governed = 9
    with tempfile.TemporaryDirectory() as tmp, sandbox_process() as settings:
        bench = signed_in(settings, Path(tmp) / "home")
        try:
            steps = warm_steps(bench, args.calls)
            threads = thread_figures(bench, args.per_thread, args.repeats)
            processes = process_figures(bench, args.processes)
        finally:
            bench.raw.close()
            bench.connector.close()
            bench.connector.vault.close()
        paced = governed(Path(tmp) / "governed", args.governed)
    report(steps, threads, processes, args.calls, args.per_thread)
    print()
    print(
        f"governor: {GOVERNED_THREADS} threads x {args.governed} gets, one division, limits on, "
        f"clock x60: {paced['calls']} calls, {paced['rate_limited']} x 429, failed steps "
        f"{len(paced['failed'])}, calls per clock minute {paced['windows']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
