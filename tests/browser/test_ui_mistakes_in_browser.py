"""The page's answers to what people do that goes wrong: an answer it cannot read, a phone's
width, a form refused after a run that failed.

A module (and so a sandbox) of its own: the sandbox enforces Exact's 60 calls a minute, and the
sign-ins here would otherwise wait for the next minute behind the other module's calls."""

from __future__ import annotations

from test_ui_in_browser import (
    RESULT,
    TIME_TRANSACTIONS,
    Served,
    UiPage,
    add_credential,
    served,
    tab,
)

__all__ = ["served", "tab"]  # the fixtures, for this module too


def _signed_in(tab: UiPage, served: Served, name: str) -> None:
    add_credential(tab, served, name)
    tab.page.click("button:text-is('Connect & Create')")
    tab.page.wait_for_selector("text=active")


def test_a_run_whose_answer_the_page_cannot_read_still_says_what_to_do(
    tab: UiPage, served: Served
) -> None:
    """An answer the page cannot read (a server gone mid-run, a body that is not JSON) used to
    leave neither a result nor an error, although a create may have been sent: the page now says
    so, and to check before running it again."""
    page = tab.page
    _signed_in(tab, served, "Unreadable answer")
    tab.choose_action("Create Project Time Transactions")
    page.select_option("select[aria-label=Credential]", label="Unreadable answer")
    page.wait_for_function(
        "() => document.querySelectorAll('#root_data_Project option').length > 1"
    )
    page.select_option("#root_data_Project", index=1)
    page.select_option("#root_data_Item", index=1)
    page.fill("#root_data_Quantity", "2")
    page.route(
        "**/api/run/**",
        lambda route: route.fulfill(
            status=200, content_type="application/x-ndjson", body="{not json\n"
        ),
    )
    page.locator("button[type=submit]").click()
    alert = page.wait_for_selector("[role=alert]")
    tab.shot("unreadable-answer")
    text = alert.inner_text()
    assert "could not read the answer" in text
    assert "list the records to check before running it again" in text
    assert page.locator(RESULT).count() == 0


def test_phone_width_has_no_sideways_scroll(tab: UiPage, served: Served) -> None:
    """At 375 px the Vault page's table and buttons stuck out of their card (532 px wide)."""
    page = tab.page
    _signed_in(tab, served, "Phone width")
    page.set_viewport_size({"width": 375, "height": 740})
    page.wait_for_timeout(300)
    tab.shot("phone-vault")
    scroll, client = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert scroll <= client, f"the page is {scroll} px wide in a {client} px window"


def test_a_form_refused_before_sending_does_not_keep_the_last_runs_failure(
    tab: UiPage, served: Served
) -> None:
    """A run Exact refused (400), then a form refused before sending (Limit 0): the old
    "Failed ... answered 400" stayed under the field error, as if this run had been refused."""
    page = tab.page
    _signed_in(tab, served, "Stale result")
    tab.choose_action("List or Get Endpoint")
    page.select_option("select[aria-label=Credential]", label="Stale result")
    page.wait_for_selector("#root_endpoint")
    page.fill("#root_endpoint", TIME_TRANSACTIONS)
    page.fill("#root_filter", "Quantity eq (((")
    page.locator("button[type=submit]").click()
    page.wait_for_selector(f"{RESULT}[data-ok=false]")
    page.fill("#root_filter", "")
    page.fill("#root_limit", "0")
    page.locator("button[type=submit]").click()
    page.wait_for_selector("text=must be >= 1")
    page.wait_for_selector(RESULT, state="detached", timeout=5_000)  # it stayed, before
    tab.shot("refused-before-sending")
    assert page.locator(RESULT).count() == 0
