"""``exact-connector ui`` in headless Chromium, as a person uses it, against the sandbox on loopback.

The seed's path end to end: New App Credentials -> Test Connect (the real authorization-code flow:
the browser goes to the sandbox's consent page and comes back to the app's /callback) ->
Connect & Create -> a time transaction created from the step runner with dropdowns -> listed ->
updated -> deleted -> gone. Bad input shows its field error with nothing sent. Screenshots of each
screen go to ``tests/browser/screenshots/ui-*.png``; page-load times are printed (not asserted).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
from browser_harness import SCREENSHOTS, watch
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page
from vault_harness import tamper

from exact_connector.cli.demo import SandboxWorkspace, sandbox_workspace
from exact_connector.ui import UiSettings, create_app
from exact_connector.ui.guard import new_token
from exact_connector.ui.server import bind, running

TIME_TRANSACTIONS = "project/TimeTransactions"
RESULT = "section[aria-label=Result]"
UNREADABLE = "section[aria-label='Credentials that no longer decrypt']"


@dataclass
class Served:
    """The app on loopback in front of a sandbox that shows its consent page."""

    origin: str
    workspace: SandboxWorkspace

    def requests(self) -> int:
        """Every request the sandbox has answered so far."""
        return sum(self.workspace.sandbox.counters.requests.values())


@pytest.fixture(scope="module")
def served(scanner: ModuleType) -> Iterator[Served]:
    sock = bind()
    origin = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with sandbox_workspace(f"{origin}/callback", auto_consent=False) as workspace:
        scanner.register_secret(workspace.app.client_secret)
        settings = UiSettings(
            origin=origin, token=new_token(), sandbox=workspace.credential_form("Sandbox")
        )
        with running(create_app(workspace.connector, settings), sock):
            yield Served(origin, workspace)
    sock.close()


def _favicon(message: ConsoleMessage) -> bool:
    """The sandbox's consent page has no icon; Chromium's request for /favicon.ico is not ours."""
    return str(message.location.get("url", "")).endswith("/favicon.ico")


class UiPage:
    """One browser tab on the app, collecting what the console and the page reported."""

    def __init__(self, browser: Browser, origin: str) -> None:
        self.origin = origin
        self.page: Page = browser.new_page(viewport={"width": 1100, "height": 800})
        self.problems = watch(self.page, ignore=_favicon)

    def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(exist_ok=True)
        self.page.screenshot(path=SCREENSHOTS / f"ui-{name}.png", full_page=True)

    def load_ms(self) -> float:
        """From navigation start to the end of the load event, by the browser's own clock."""
        timing: float = self.page.evaluate(
            "() => { const [n] = performance.getEntriesByType('navigation');"
            " return n.loadEventEnd - n.startTime; }"
        )
        return timing

    def choose_action(self, title: str) -> None:
        self.page.goto(f"{self.origin}/#/run")
        self.page.select_option("select[aria-label=Action]", label=title)
        self.page.wait_for_selector("#root_division")

    def pick_newest(self, selector: str) -> None:
        """Choose a record dropdown's first entry: the records are listed newest first."""
        self.page.wait_for_function(
            "s => document.querySelectorAll(s + ' option').length > 1", arg=selector
        )
        labels = self.page.locator(f"{selector} option").all_inner_texts()
        self.page.select_option(selector, label=next(label for label in labels if label.strip()))

    def run(self) -> dict[str, str]:
        """Press Run; the result's fields (name -> shown value)."""
        self.page.locator("button[type=submit]").click()
        self.page.wait_for_selector(RESULT)
        rows = self.page.locator(f"{RESULT} table.fields tr").evaluate_all(
            "rows => rows.map(r => [r.cells[0].innerText, r.cells[1].innerText])"
        )
        return dict(rows)

    def close(self) -> None:
        self.page.close()


@pytest.fixture
def tab(browser: Browser, served: Served) -> Iterator[UiPage]:
    made = UiPage(browser, served.origin)
    yield made
    made.close()


def add_credential(tab: UiPage, served: Served, name: str) -> None:
    """New App Credentials -> Test Connect -> the consent page -> back with the report."""
    page = tab.page
    page.goto(served.origin + "/")
    page.click("text=New App Credentials")
    page.wait_for_selector("#root_connector_name")
    page.fill("#root_connector_name", name)
    page.fill("#root_client_secret", served.workspace.app.client_secret)
    tab.shot("new-credential")
    page.click("button:text-is('Test Connect')")
    page.wait_for_selector("button:text-is('Allow')")
    assert page.url.startswith(served.workspace.base_url + "/api/oauth2/auth?")
    tab.shot("consent")
    page.click("button:text-is('Allow')")
    page.wait_for_selector("text=Test Connect: passed")


def test_seed_path_end_to_end(tab: UiPage, served: Served, scanner: ModuleType) -> None:
    """Credential, sign-in, Connect & Create, then create/list/update/delete from the step runner."""
    page = tab.page
    page.goto(served.origin + "/")
    page.wait_for_selector("text=Application Credentials")
    print(f"\nui page load (vault page, first visit): {tab.load_ms():.0f} ms")
    tab.shot("vault-empty")

    add_credential(tab, served, "Acme B.V.")
    assert page.url.startswith(served.origin + "/#/credentials/")
    connect = page.locator("button:text-is('Connect & Create')")
    assert connect.is_enabled()
    tab.shot("test-connect-report")
    credential = served.workspace.connector.credentials.get("Acme B.V.")
    body = page.content()
    for secret in (credential.client_secret, credential.refresh_token, credential.access_token):
        assert secret is not None
        assert secret.get_secret_value() not in body
    assert "sha256-hmac:" in body

    connect.click()
    page.wait_for_selector(".detail .status-active")
    page.fill("input[type=search]", "acme")
    assert page.locator("table.credentials tbody tr").count() == 1
    page.fill("input[type=search]", "nothing like it")
    page.wait_for_selector("text=No credential matches.")
    page.fill("input[type=search]", "")
    tab.shot("vault-active")

    # Create, with dropdowns only (and the hours typed).
    tab.choose_action("Create Project Time Transactions")
    page.wait_for_function("document.querySelectorAll('#root_data_Project option').length > 1")
    project = page.locator("#root_data_Project option").nth(1).inner_text()
    page.select_option("#root_data_Project", label=project)
    page.select_option("#root_data_Item", index=1)
    page.fill("#root_data_Quantity", "2.5")
    tab.shot("step-create")
    created = tab.run()
    tab.shot("step-created")
    record_id = created["ID"]
    assert created["Quantity"] == "2.5"
    assert created["ProjectCode"] == project.split(" ")[0]

    # List it: the newest first, with paging through next_cursor.
    tab.choose_action("List or Get Endpoint")
    page.fill("#root_endpoint", TIME_TRANSACTIONS)
    page.fill("#root_limit", "5")
    page.fill("#root_order_by", "Modified desc")
    page.locator("button[type=submit]").click()
    page.wait_for_selector(f"{RESULT} table.records")
    rows = page.locator(f"{RESULT} table.records tbody tr")
    assert rows.count() == 5
    assert record_id in rows.first.inner_text()
    tab.shot("step-list")
    page.click("button:text-is('Next page')")
    page.wait_for_function(
        """id => {
            const table = document.querySelector('section[aria-label=Result] table.records');
            return table && !table.innerText.includes(id);
        }""",
        arg=record_id,
    )
    assert rows.count() == 5
    assert page.locator("#root_cursor").input_value() != ""

    # Update it: the record and the field are picked from lists.
    tab.choose_action("Update Project Time Transaction")
    tab.pick_newest("#root_id")
    page.select_option("#root_data_fields_0_field", label="Hours (Quantity)")  # the first row
    page.fill("#root_data_fields_0_Quantity", "4")
    chosen = page.locator("#root_id option:checked").inner_text()
    assert chosen.endswith(" — 2.5"), chosen  # its day, project code and hours
    updated = tab.run()
    # The form asks for its lists again: the record is still chosen, labelled with the new hours
    # (the label showed the old ones until the form was opened again).
    page.wait_for_function(
        "old => document.querySelector('#root_id option:checked')?.innerText !== old", arg=chosen
    )
    relabelled = page.locator("#root_id option:checked").inner_text()
    assert relabelled.removesuffix(".0") == chosen.removesuffix("2.5") + "4"
    assert updated["updated"] == "true"
    assert updated["Quantity"] == "4"
    tab.shot("step-updated")

    # Delete it, then it is gone: no longer offered, and Exact answers not_found.
    tab.choose_action("Delete Endpoint with ID")
    page.fill("#root_endpoint", TIME_TRANSACTIONS)
    tab.pick_newest("#root_id")
    chosen = page.locator("#root_id option:checked").inner_text()
    deleted = tab.run()
    assert deleted == {"endpoint": TIME_TRANSACTIONS, "id": record_id, "deleted": "true"}
    # The form asks for its lists again: the deleted record is no longer offered, nor chosen
    # (it stayed in the dropdown until the form was opened again, ready to be deleted twice).
    page.wait_for_function(
        "label => ![...document.querySelectorAll('#root_id option')]"
        ".some(o => o.innerText === label)",
        arg=chosen,
    )
    assert page.locator("#root_id option:checked").inner_text().strip() == ""
    tab.shot("step-deleted")
    tab.choose_action("List or Get Endpoint")
    page.fill("#root_endpoint", TIME_TRANSACTIONS)
    page.fill("#root_filter", f"ID eq guid'{record_id}'")
    page.locator("button[type=submit]").click()
    page.wait_for_selector(f"{RESULT} >> text=0 records")

    # A filter on a field the endpoint lacks is refused at the filter, before any call.
    before = served.requests()
    page.fill("#root_filter", "Quantiy eq 1")
    page.locator("button[type=submit]").click()
    failed = page.locator(f"{RESULT}[data-ok=false]")
    failed.wait_for()
    text = failed.inner_text()
    assert "invalid_input · user" in text
    assert "$.filter Quantiy is not a field of project/TimeTransactions" in text
    assert "(did you mean Quantity?)" in text
    assert "0 API calls" in text
    assert served.requests() == before
    tab.shot("step-filter-refused")

    # Exact's refusal reads as the connector's error: code, category, message and hint.
    page.fill("#root_filter", "Quantity eq 'two'")
    page.locator("button[type=submit]").click()
    page.wait_for_selector(f"{RESULT}[data-ok=false] >> text=exact_rejected · user")
    text = page.locator(f"{RESULT}[data-ok=false]").inner_text()
    assert "Operator 'eq' incompatible with operand types" in text
    assert "correct the data and run the step again" in text
    assert "1 API call" in text
    tab.shot("step-error")
    gone = served.workspace.connector.execute(
        "list_or_get_endpoint",
        "Acme B.V.",
        {"division": credential.default_division, "endpoint": TIME_TRANSACTIONS, "id": record_id},
    )
    assert gone["error"]["code"] == "not_found"
    assert tab.problems == []


def test_reauthorize_then_remove(tab: UiPage, served: Served) -> None:
    """Reauthorize signs in again through the consent page; Remove (confirmed) deletes it."""
    add_credential(tab, served, "Short-lived B.V.")
    page = tab.page
    page.click("button:text-is('Reauthorize')")
    page.click("button:text-is('Allow')")
    page.wait_for_selector("text=Test Connect: passed")
    assert page.url.startswith(served.origin + "/#/credentials/")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:text-is('Remove')")
    page.wait_for_url(served.origin + "/#/vault")
    page.wait_for_selector("table.credentials")
    assert "Short-lived B.V." not in page.locator("table.credentials").inner_text()
    tab.shot("vault-after-remove")
    names = [c.connector_name for c in served.workspace.connector.credentials.list()]
    assert "Short-lived B.V." not in names
    assert tab.problems == []


def test_a_credential_that_no_longer_decrypts_is_shown_and_removed(
    tab: UiPage, served: Served
) -> None:
    """Its row names it, the field and code that failed and what to do (no secret); Remove,
    confirmed as any removal is, deletes it and the row goes."""
    connector = served.workspace.connector
    broken = connector.credentials.begin(served.workspace.credential_form("Tampered B.V."))
    tamper(connector.vault.home, broken.id)
    page = tab.page
    page.goto(served.origin + "/#/vault")
    row = page.locator(f"{UNREADABLE} tr", has_text="Tampered B.V.")
    row.wait_for()
    text = row.inner_text()
    assert "Its record no longer decrypts: client_secret failed with vault_integrity." in text
    assert "remove it and add it again" in text
    assert "Tampered B.V." not in page.locator("table.credentials").inner_text()
    assert broken.client_secret is not None
    assert broken.client_secret.get_secret_value() not in page.content()
    tab.shot("vault-unreadable")

    asked: list[str] = []

    def confirm(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", confirm)
    row.locator("button:text-is('Remove')").click()
    page.locator(UNREADABLE).wait_for(state="detached")
    assert asked == ["Remove Tampered B.V. and its secrets?"]
    assert broken.id not in [result.id for result in connector.vault.verify()]
    tab.shot("vault-unreadable-removed")
    assert tab.problems == []


def ensure_active(tab: UiPage, served: Served, name: str) -> None:
    """An active credential to run steps with: the one a test before made, else a new one."""
    if not any(c.status == "active" for c in served.workspace.connector.credentials.list()):
        add_credential(tab, served, name)
        tab.page.click("button:text-is('Connect & Create')")
        tab.page.wait_for_selector(".detail .status-active")


def test_bad_input_shows_the_field_error_and_sends_nothing(tab: UiPage, served: Served) -> None:
    """Hours left empty: the form shows the error at Hours and no request reaches the sandbox."""
    ensure_active(tab, served, "Bad input B.V.")
    page = tab.page
    tab.choose_action("Create Project Time Transactions")
    page.wait_for_function("document.querySelectorAll('#root_data_Item option').length > 1")
    page.select_option("#root_data_Project", index=1)
    page.select_option("#root_data_Item", index=1)
    page.wait_for_timeout(400)  # let a pending list refresh finish before counting requests
    before = served.requests()
    page.locator("button[type=submit]").click()
    error = page.locator("#root_data_Quantity").locator(
        "xpath=ancestor::*[contains(@class,'form-group')][1]"
    )
    assert "required" in error.locator(".error-detail").inner_text().lower()
    page.click("button:text-is('Dry run')")
    page.wait_for_timeout(300)
    assert page.locator(RESULT).count() == 0
    assert page.locator("section[aria-label='Dry run']").count() == 0
    assert served.requests() == before
    tab.shot("step-bad-input")
    assert tab.problems == []


def test_a_long_list_shows_its_progress_while_it_runs(tab: UiPage, served: Served) -> None:
    """150 rows in three pages, the second answered slowly: while it waits the status line says
    how far the run is; then the whole list is shown."""
    ensure_active(tab, served, "Progress B.V.")
    page = tab.page
    tab.choose_action("List or Get Endpoint")
    page.fill("#root_endpoint", TIME_TRANSACTIONS)
    page.fill("#root_limit", "150")
    page.wait_for_timeout(400)  # let a pending list refresh finish before arming the delay
    served.workspace.sandbox.faults.add(
        "latency", on_call=2, path_contains="/project/TimeTransactions", seconds=2.0
    )
    page.locator("button[type=submit]").click()
    status = page.locator("p.progress[role=status]")
    status.filter(has_text="60 rows in 1 page, 2 calls").wait_for()
    tab.shot("step-progress")
    page.wait_for_selector(f"{RESULT} table.records")
    assert page.locator(f"{RESULT} table.records tbody tr").count() == 150
    assert status.count() == 0
    assert tab.problems == []


def test_command_serves_the_page_on_the_sandbox(tab: UiPage) -> None:
    """``exact-connector ui --sandbox`` prints its address; the Vault page loads there."""
    command = [sys.executable, "-m", "exact_connector", "ui", "--sandbox"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            lines = [process.stdout.readline(), process.stdout.readline()]
            address = lines[1].split()[1]
            assert address.startswith("http://127.0.0.1:")
            loads: list[Any] = []
            for _ in range(5):
                tab.page.goto(address)
                tab.page.wait_for_selector("text=Application Credentials")
                loads.append(tab.load_ms())
            assert tab.page.locator(".badge").inner_text() == "Sandbox"
            print(f"\nui page load over 5 visits: {sorted(loads)[2]:.0f} ms median")
        finally:
            process.terminate()
            process.wait(10)
    assert tab.problems == []


def test_a_pasted_refresh_token_too_new_to_use_says_when_to_test_again(
    tab: UiPage, served: Served, scanner: ModuleType
) -> None:
    """Exact refuses a refresh within 570 s of the grant. The report said "Run the step again
    after retry_at", naming a field a person never sees; it now gives the time."""
    tokens = served.workspace.sandbox.issue_tokens()
    for value in tokens.values():
        scanner.register_secret(value)
    page = tab.page
    page.goto(served.origin + "/")
    page.click("text=New App Credentials")
    page.wait_for_selector("#root_connector_name")
    page.fill("#root_connector_name", "Pasted too new")
    page.select_option("#root_auth_type", label="OAuth 2.0: paste an existing refresh token")
    page.wait_for_selector("#root_refresh_token")
    page.fill("#root_client_secret", served.workspace.app.client_secret)
    page.fill("#root_refresh_token", tokens["refresh_token"])
    page.click("button:text-is('Test Connect')")
    report = page.wait_for_selector(".report[data-ok=false]")
    tab.shot("pasted-token-too-new")
    text = report.inner_text()
    assert "this refresh token is that new" in text
    assert "retry_at" not in text
    hint = page.locator(".report li.fail .hint").inner_text()
    shown = page.evaluate(
        "() => new Date(Date.now() + 570000).toLocaleString().replace(/:\\d\\d( |$)/, '')"
    )
    assert hint.startswith("Run Test Connect again after ") and shown.split(",")[0] in hint
    assert tab.problems == []
