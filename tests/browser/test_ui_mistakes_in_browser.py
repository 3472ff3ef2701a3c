"""The page's answers to what people do that goes wrong: an answer it cannot read, a phone's
width, a form refused after a run that failed.

A module (and so a sandbox) of its own: the sandbox enforces Exact's 60 calls a minute, and the
sign-ins here would otherwise wait for the next minute behind the other module's calls."""

from __future__ import annotations

from playwright.sync_api import APIResponse, Page, Route
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


def _time_transactions_list(tab: UiPage, served: Served, name: str) -> Page:
    """A new credential signed in, and the list action's form on its time transactions."""
    page = tab.page
    _signed_in(tab, served, name)
    tab.choose_action("List or Get Endpoint")
    page.select_option("select[aria-label=Credential]", label=name)
    page.wait_for_selector("#root_endpoint")
    page.fill("#root_endpoint", TIME_TRANSACTIONS)
    return page


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
    page = _time_transactions_list(tab, served, "Stale result")
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


def test_refused_fields_are_named_at_their_fields_and_the_hint_points_at_them(
    tab: UiPage, served: Served
) -> None:
    """A list whose filter and order name fields the endpoint lacks: both are refused in one
    answer, each shown at its own field of the form as well as in the failure; the hint under
    the list said "the fields listed in details.errors", words for an engine, not a person."""
    page = _time_transactions_list(tab, served, "Refused field")
    page.fill("#root_filter", "NoSuchField eq 1")
    page.fill("#root_order_by", "Quantity, Dat desc")
    page.locator("button[type=submit]").click()
    alert = page.wait_for_selector(f"{RESULT}[data-ok=false] [role=alert]")
    tab.shot("refused-fields")
    text = alert.inner_text()
    assert f"NoSuchField is not a field of {TIME_TRANSACTIONS}" in text
    assert f"Dat is not a field of {TIME_TRANSACTIONS} (did you mean Date?)" in text
    assert "Correct the fields listed above and run the step again." in text
    assert "details.errors" not in text
    for field, said in (("filter", "NoSuchField is not"), ("order_by", "Dat is not")):
        group = page.locator(f"#root_{field}").locator(
            "xpath=ancestor::*[contains(@class,'form-group')][1]"
        )
        assert said in group.locator(".error-detail").inner_text()
    listed = page.locator(".errors .list-group-item").all_inner_texts()
    assert listed == [
        f"Filter: NoSuchField is not a field of {TIME_TRANSACTIONS}",
        f"Order By: Dat is not a field of {TIME_TRANSACTIONS} (did you mean Date?)",
    ], listed  # the form's list above it said ".filter NoSuchField ..."
    assert page.locator(f"{RESULT} .meta").inner_text().startswith("0 API calls")


def test_a_credential_removed_in_another_tab_leaves_the_step_page_when_it_is_back(
    tab: UiPage, served: Served
) -> None:
    """The step page kept the credential list it loaded: a credential removed in another tab
    stayed listed and chosen, and a run then said it was gone. Coming back to the tab now asks
    for the list again, and the page moves to a credential that is still there."""
    page = tab.page
    _signed_in(tab, served, "Stays here")
    _signed_in(tab, served, "Removed elsewhere")
    tab.choose_action("List or Get Endpoint")
    page.select_option("select[aria-label=Credential]", label="Removed elsewhere")
    connector = served.workspace.connector
    [gone] = [c for c in connector.credentials.list() if c.connector_name == "Removed elsewhere"]
    connector.credentials.remove(gone.id)
    page.evaluate("window.dispatchEvent(new Event('focus'))")  # the person comes back to the tab
    page.wait_for_function(
        "() => ![...document.querySelectorAll('select[aria-label=Credential] option')]"
        ".some(o => o.innerText === 'Removed elsewhere')"
    )
    chosen = page.locator("select[aria-label=Credential] option:checked").inner_text()
    assert chosen != "Removed elsewhere"
    page.wait_for_selector("#root_endpoint")
    page.fill("#root_endpoint", TIME_TRANSACTIONS)
    page.fill("#root_limit", "1")
    page.locator("button[type=submit]").click()
    page.wait_for_selector(f"{RESULT}[data-ok=true]")  # runs with the credential still there
    tab.shot("credential-removed-elsewhere")


def test_an_answer_that_comes_after_the_person_moved_on_leaves_the_new_step_alone(
    tab: UiPage, served: Served
) -> None:
    """A delete answered after the person chose another action: the page used to reload the
    delete's form and copy its endpoint and ID into the new action's data, which the new form
    then refused ("must NOT have additional properties")."""
    page = tab.page
    _signed_in(tab, served, "Moved on")
    tab.choose_action("Delete Endpoint with ID")
    page.fill("#root_endpoint", TIME_TRANSACTIONS)
    tab.pick_newest("#root_id")
    held: list[tuple[Route, APIResponse]] = []
    page.route("**/api/run/delete_endpoint_record", lambda r: held.append((r, r.fetch())))
    forms: list[str] = []
    page.on("request", lambda r: forms.append(r.url) if "/api/forms/" in r.url else None)
    page.locator("button[type=submit]").click()
    for _ in range(200):
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the delete was not sent"
    page.select_option("select[aria-label=Action]", label="List or Get Endpoint")
    page.wait_for_selector("#root_filter")
    asked = len(forms)
    route, response = held[0]
    route.fulfill(response=response)
    page.wait_for_selector(RESULT)
    page.wait_for_timeout(600)  # longer than the form's 300 ms debounce
    assert [url for url in forms[asked:] if "delete_endpoint_record" in url] == []
    assert page.locator("#root_filter").count() == 1  # still the list's form
    assert page.locator("#root_endpoint").input_value() == ""  # nothing copied from the delete
