"""How fast ``exact-connector ui`` shows its pages, in headless Chromium against the sandbox.

The app and the sandbox run in this process on loopback (as ``exact-connector ui --sandbox``
runs them), with one active credential. For each measure it prints the median and the 90th
percentile of the repeats, in milliseconds:

* page load, cold -- a fresh browser context (empty cache): navigation start to the load event;
* Vault shown, cold -- the same visit, until the credentials table holds the credential;
* page load, warm -- a reload in the same context (the bundle cached);
* step form hydrated -- choosing "Create Project Time Transactions" until its project dropdown is
  filled from the sandbox (one form request: divisions, projects, hour types, employees).

Target: page load under 1 s on the sandbox.

    python benchmarks/ui_bench.py            # 15 repeats
    python benchmarks/ui_bench.py --smoke    # 2 repeats (CI)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Browser, Page, sync_playwright

from exact_connector.cli._callback import browser_get
from exact_connector.cli.demo import sandbox_workspace
from exact_connector.ui import UiSettings, create_app
from exact_connector.ui.assets import bundle_dir
from exact_connector.ui.guard import new_token
from exact_connector.ui.server import bind, running

CHROMIUM = os.environ.get("EXACT_CONNECTOR_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
FRONTEND = Path(__file__).resolve().parent.parent / "frontend"


def _ensure_bundle() -> None:
    if bundle_dir() is not None:
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("the ui bundle is not built and npm is not installed")
    if not (FRONTEND / "node_modules").exists():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=FRONTEND, check=True)
    subprocess.run([npm, "run", "build"], cwd=FRONTEND, check=True)


def _load_ms(page: Page) -> float:
    value: float = page.evaluate(
        "() => { const [n] = performance.getEntriesByType('navigation');"
        " return n.loadEventEnd - n.startTime; }"
    )
    return value


def _now_ms(page: Page) -> float:
    value: float = page.evaluate("() => performance.now()")
    return value


def _visits(browser: Browser, origin: str, repeats: int) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {
        "page load, cold": [],
        "Vault shown, cold": [],
        "page load, warm": [],
        "step form hydrated": [],
    }
    for _ in range(repeats):
        context = browser.new_context()
        page = context.new_page()
        page.goto(origin + "/#/vault")
        page.wait_for_selector("table.credentials a")
        found["Vault shown, cold"].append(_now_ms(page))
        found["page load, cold"].append(_load_ms(page))
        page.reload()
        page.wait_for_selector("table.credentials a")
        found["page load, warm"].append(_load_ms(page))
        page.goto(origin + "/#/run")
        started = time.perf_counter()
        page.select_option("select[aria-label=Action]", label="Create Project Time Transactions")
        page.wait_for_function("document.querySelectorAll('#root_data_Project option').length > 1")
        found["step form hydrated"].append((time.perf_counter() - started) * 1000)
        context.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="2 repeats, for CI")
    args = parser.parse_args()
    repeats = 2 if args.smoke else 15
    _ensure_bundle()
    sock = bind()
    origin = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with sandbox_workspace(f"{origin}/callback") as workspace:
        connector = workspace.connector
        credential = connector.credentials.begin(workspace.credential_form("Bench"))
        _, location = browser_get(connector.authorization_url(credential, "bench-state"))
        query = {k: v[0] for k, v in parse_qs(urlsplit(str(location)).query).items()}
        connector.complete_authorization(credential, query["code"], query["state"])
        connector.test_connect(credential)
        connector.credentials.activate(credential)
        settings = UiSettings(origin=origin, token=new_token())
        with running(create_app(connector, settings), sock), sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            try:
                found = _visits(browser, origin, repeats)
            finally:
                browser.close()
    sock.close()
    print(f"exact-connector ui on the sandbox, {repeats} repeats (ms)")
    print(f"{'measure':<22} {'median':>8} {'p90':>8}")
    for name, values in found.items():
        ordered = sorted(values)
        p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
        print(f"{name:<22} {statistics.median(values):>8.0f} {p90:>8.0f}")


if __name__ == "__main__":
    main()
