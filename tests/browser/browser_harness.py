"""The browser side of the form tests: the bundled form host (and the ``exact-connector ui`` app),
headless Chromium, and a page that renders one connector form the way an engine's front end does.

The host (``frontend/``) is built with npm and esbuild when its bundle is missing or older than
its sources, so plain ``pytest`` works on a fresh clone (``.ci/run`` installs Chromium and Node).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Browser, ConsoleMessage, Page

from exact_connector.cli._callback import browser_get
from exact_connector.runtime import Connector
from exact_connector.sandbox import Sandbox

REPO = Path(__file__).resolve().parents[2]
FRONTEND = REPO / "frontend"
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
CHROMIUM = os.environ.get("EXACT_CONNECTOR_CHROMIUM", "/usr/bin/chromium")
#: Without the background-networking flags this closed network refuses Chromium's own calls.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RJSF_VERSIONS = ("6", "5")
DIVISION = 100001
_SOURCES = ("package.json", "package-lock.json", "build.mjs", "src", "rjsf5")
#: Text a person must never read: the catalog's raw notes, regular expressions, ajv's internals.
FORBIDDEN = re.compile(
    r'Exact field|\(Edm\.|\^\[|\]\{|\[0-9\]|\\d|must match "then"|must match "else"'
)


def _newest(path: Path) -> float:
    if path.is_dir():
        return max((_newest(p) for p in path.iterdir() if p.name != "node_modules"), default=0.0)
    return path.stat().st_mtime


def build_bundle() -> None:
    """``npm ci`` (when the lock file moved on) and the esbuild bundle (when a source did)."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed; the browser tests build the form host with it")
    installed = FRONTEND / "node_modules" / ".package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < _newest(
        FRONTEND / "package-lock.json"
    ):
        _run([npm, "ci", "--no-audit", "--no-fund"])
    names = [f"rjsf{v}.js" for v in RJSF_VERSIONS] + ["app.js", "app.css"]
    bundles = [FRONTEND / "dist" / name for name in names]
    sources = max(_newest(FRONTEND / name) for name in _SOURCES)
    if not all(b.exists() and b.stat().st_mtime >= sources for b in bundles):
        _run(["node", "build.mjs"])


def _run(command: list[str]) -> None:
    done = subprocess.run(command, cwd=FRONTEND, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")


def watch(page: Page, ignore: Callable[[ConsoleMessage], bool] = lambda _: False) -> list[str]:
    """The page's errors and console errors and warnings, as they come (``ignore`` aside)."""
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning") and not ignore(message):
            problems.append(f"console {message.type}: {message.text[:500]}")

    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", console)
    return problems


class FormPage:
    """One browser page showing one form, with what the console said and what was submitted."""

    def __init__(self, browser: Browser, version: str) -> None:
        self.version = version
        self.page: Page = browser.new_page(viewport={"width": 900, "height": 800})
        self.problems = watch(self.page)

    def show(self, document: dict[str, Any], form_data: dict[str, Any] | None = None) -> None:
        """Load the host and mount the form, as an engine would with the connector's document."""
        self.page.goto((FRONTEND / "index.html").as_uri() + f"?rjsf={self.version}")
        self.page.evaluate(
            """([form, data]) => {
                window.submitted = [];
                ExactForms.mount(document.getElementById('form'), form, {
                    formData: data ?? undefined,
                    // As an engine sends it on: JSON (an undefined value is left out).
                    onSubmit: (formData) => window.submitted.push(JSON.parse(JSON.stringify(formData))),
                });
            }""",
            [document, form_data],
        )
        self.page.wait_for_selector("form")

    def field_order(self, names: list[str]) -> list[str]:
        """The top-level fields in the order the page shows their inputs."""
        ids = self.page.locator("form [id]").evaluate_all("els => els.map(e => e.id)")
        seen: list[str] = []
        for found in ids:
            rest = found.removeprefix("root_")
            owner = max(
                (n for n in names if rest == n or rest.startswith(n + "_")), key=len, default=None
            )
            if owner is not None and owner not in seen:
                seen.append(owner)
        return seen

    def options(self, selector: str) -> list[str]:
        """The texts of a dropdown's options, or of a text input's suggestions (its datalist)."""
        options: list[str] = self.page.locator(selector).evaluate(
            """el => el.list
                ? Array.from(el.list.options).map(o => o.value)
                : Array.from(el.options).filter(o => o.value !== '').map(o => o.text)"""
        )
        return options

    def pick_field(self, row: int, label: str) -> str:
        """Choose the field of a Data Manager row; returns the row's id prefix."""
        picker = self.page.locator("[id$='_field']").nth(row)
        picker.wait_for()
        picker.select_option(label=label)
        return str(picker.get_attribute("id")).removesuffix("_field")

    def add_field(self, label: str) -> str:
        """Add a Data Manager row ("+ Add field") and choose its field."""
        rows = self.page.locator("[id$='_field']").count()
        self.page.locator(".btn-add").last.click()
        return self.pick_field(rows, label)

    def submit(self) -> list[dict[str, Any]]:
        """Press Submit; what the form handed to onSubmit (nothing when validation failed)."""
        self.page.locator("button[type=submit]").click()
        self.page.wait_for_timeout(50)
        submitted: list[dict[str, Any]] = self.page.evaluate("window.submitted")
        return submitted

    def text(self) -> str:
        return self.page.inner_text("body")

    def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(exist_ok=True)
        self.page.screenshot(path=SCREENSHOTS / f"{name}-rjsf{self.version}.png", full_page=True)

    def close(self) -> None:
        self.page.close()


@dataclass
class World:
    """A sandbox on loopback, its URL, and a connector with an active credential for it."""

    sb: Sandbox
    base_url: str
    connector: Connector
    credential: str

    def sign_in(self, credential: str, scanner: ModuleType) -> None:
        """The authorization-code flow, the test playing the person's browser; then activate."""
        url = self.connector.authorization_url(credential, "browser-state-1")
        status, location = browser_get(url)
        assert status == 302, status
        query = {k: v[0] for k, v in parse_qs(urlsplit(str(location)).query).items()}
        scanner.register_secret(query["code"])
        self.connector.complete_authorization(credential, query["code"], query["state"])
        assert self.connector.test_connect(credential)["ok"]
        self.connector.credentials.activate(credential)
