"""Every generated form, rendered by @rjsf/core 6 and 5 (Ajv2020 validator) in headless Chromium,
filled as a person fills it, submitted, turned into input by forms.to_input, and run.

Screenshots of every form, static and filled, go to ``tests/browser/screenshots/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from browser_harness import DIVISION, FORBIDDEN, RJSF_VERSIONS, FormPage, World
from playwright.sync_api import Browser

from exact_connector import forms
from exact_connector.catalog import catalog
from exact_connector.options import LIVE_LIMIT

FORMS = [
    "credentials",
    "create_project_time_transaction",
    "delete_endpoint_record",
    "list_or_get_endpoint",
    "update_project_time_transaction",
    "record_changed",
    "record_deleted",
    "webhook",
]
TIME_TRANSACTIONS = "project/TimeTransactions"


@pytest.fixture(params=RJSF_VERSIONS, ids=lambda v: f"rjsf{v}")
def page(request: pytest.FixtureRequest, browser: Browser) -> Iterator[FormPage]:
    """A fresh page on the host built against one @rjsf/core version."""
    made = FormPage(browser, request.param)
    yield made
    made.close()


def shown_fields(name: str, values: dict[str, Any]) -> list[str]:
    """The form spec's fields a person sees for these values, in the documented order."""
    return [
        field["name"]
        for field in forms.form_spec(name)["fields"]
        if not field["visible_when"]
        or values.get(field["visible_when"]["field"]) == field["visible_when"]["equals"]
    ]


def assert_reads_well(page: FormPage) -> None:
    """No page or console error, and no raw field note, regex or validator jargon on the page."""
    assert page.problems == []
    found = FORBIDDEN.search(page.text())
    assert found is None, found


def run(world: World, name: str, submitted: list[dict[str, Any]]) -> dict[str, Any]:
    """The one submission, through the documented transform, validated, then executed."""
    assert len(submitted) == 1, submitted
    inputs = forms.to_input(name, submitted[0])
    assert forms.validate(name, inputs) == []
    result = world.connector.execute(name, world.credential, inputs)
    assert result["ok"] is True, result
    return result


def labels(world: World, endpoint: str, *fields: str, **match: Any) -> set[str]:
    """How the sandbox's records of an endpoint are named in a dropdown."""
    return {
        " — ".join(str(record[f]).strip() for f in fields)
        for record in world.sb.records(DIVISION, endpoint)
        if all(record.get(k) == v for k, v in match.items())
    }


# --- every form, static -------------------------------------------------------------------------


@pytest.mark.parametrize("name", FORMS)
def test_every_form_renders_as_emitted(page: FormPage, name: str) -> None:
    """The static form renders with zero console errors, its fields in the documented order."""
    document = forms.rjsf(name)
    page.show(document)
    assert page.field_order(document["uiSchema"]["ui:order"]) == shown_fields(
        name, {"auth_type": "oauth2_authorization_code"}
    )
    page.screenshot(f"{name}-static")
    assert_reads_well(page)


# --- the Vault page ------------------------------------------------------------------------------


def test_credential_form_signs_in(page: FormPage, world: World, scanner: ModuleType) -> None:
    """A person fills the credential form; the submission stores a credential that signs in."""
    page.show(forms.rjsf("credentials"))
    p = page.page
    assert p.locator("#root_client_secret").get_attribute("type") == "password"
    p.select_option("#root_auth_type", label="OAuth 2.0: paste an existing refresh token")
    p.locator("#root_refresh_token").wait_for()
    assert p.locator("#root_refresh_token").get_attribute("type") == "password"
    assert p.locator("#root_redirect_uri").count() == 0
    p.select_option(
        "#root_auth_type", label="OAuth 2.0: sign in to Exact Online (authorization code)"
    )
    regions = [s.label for s in world.connector.manifest.server_urls]
    assert page.options("#root_server_url") == regions

    app = world.sb.demo_app
    p.fill("#root_connector_name", f"Browser {page.version}")
    p.select_option("#root_server_url", label="Netherlands")
    p.fill("#root_client_id", "not a GUID")
    p.fill("#root_client_secret", app.client_secret)
    p.fill("#root_redirect_uri", app.redirect_uris[0])
    assert page.submit() == [], "a bad Client ID blocks the submission"
    assert "must be a GUID such as" in page.text()
    assert_reads_well(page)

    p.fill("#root_client_id", app.client_id)
    submitted = page.submit()
    page.screenshot("credentials-filled")
    assert len(submitted) == 1
    inputs = forms.to_input("credentials", submitted[0])
    assert forms.validate("credentials", inputs) == []
    assert inputs["server_url"] == "https://start.exactonline.nl"
    # The sandbox on loopback stands in for the region the person picked (allow_sandbox).
    credential = world.connector.credentials.begin({**inputs, "server_url": world.base_url})
    world.sign_in(credential.id, scanner)
    assert world.connector.credentials.get(credential.id).status == "active"
    assert_reads_well(page)


# --- the action forms, hydrated against the sandbox -----------------------------------------------


def test_create_form_with_the_data_manager(page: FormPage, world: World) -> None:
    """Dropdowns list the sandbox's divisions, projects and hour types; fields are picked."""
    page.show(
        world.connector.rjsf_form("create_project_time_transaction", credential=world.credential)
    )
    p = page.page
    divisions = world.sb.world.divisions
    assert page.options("#root_division") == [f"{code} — {n}" for code, n in divisions.items()]
    projects = page.options("#root_data_Project")
    assert len(projects) == LIVE_LIMIT
    assert set(projects) <= labels(world, "project/Projects", "Code", "Description")
    hour_types = labels(world, "logistics/Items", "Code", "Description", IsTime=True)
    assert set(page.options("#root_data_Item")) == hour_types
    p.select_option("#root_data_Project", label=projects[0])
    p.select_option("#root_data_Item", label=sorted(hour_types)[0])
    p.fill("#root_data_Quantity", "2.5")
    row = page.add_field("Notes")
    p.fill(f"#{row}_Notes", f"Workshop (RJSF {page.version})")
    row = page.add_field("Start time (StartTime)")
    assert p.locator(f"#{row}_StartTime").get_attribute("type") == "datetime-local"
    p.fill(f"#{row}_StartTime", "2026-05-04T09:30")
    row = page.add_field("Employee")
    employees = page.options(f"#{row}_Employee")
    assert set(employees) <= labels(world, "payroll/Employees", "Code", "FullName")
    p.select_option(f"#{row}_Employee", label=employees[0])
    row = page.add_field("Status (HourStatus)")
    assert page.options(f"#{row}_HourStatus") == ["Draft", "Rejected", "Submitted"]
    p.select_option(f"#{row}_HourStatus", label="Submitted")
    result = run(world, "create_project_time_transaction", page.submit())
    page.screenshot("create_project_time_transaction-filled")
    record = result["data"]
    assert (record["Quantity"], record["HourStatus"]) == (2.5, 10)
    assert record["StartTime"] == "2026-05-04T09:30:00"
    assert record["Notes"] == f"Workshop (RJSF {page.version})"
    assert_reads_well(page)


def test_update_form_picks_the_record_and_the_fields(page: FormPage, world: World) -> None:
    """The time transaction is picked from a list; only the fields added are changed."""
    page.show(
        world.connector.rjsf_form("update_project_time_transaction", credential=world.credential)
    )
    p = page.page
    listed = page.options("#root_id")
    assert listed, "the division's time transactions are listed"
    p.select_option("#root_id", label=listed[0])
    row = page.pick_field(0, "Hours (Quantity)")  # the form opens with one row to fill
    p.fill(f"#{row}_Quantity", "3.25")
    row = page.add_field("Notes")
    p.fill(f"#{row}_Notes", "Changed in the browser")
    submitted = page.submit()
    assert submitted, page.text()
    result = run(world, "update_project_time_transaction", submitted)
    page.screenshot("update_project_time_transaction-filled")
    assert result["data"]["record"]["Quantity"] == 3.25
    assert result["data"]["record"]["Notes"] == "Changed in the browser"
    assert_reads_well(page)


def test_delete_form_lists_endpoints_then_records(page: FormPage, world: World) -> None:
    """The endpoint is suggested from the catalog; once chosen, its records are a dropdown."""
    document = world.connector.rjsf_form("delete_endpoint_record", credential=world.credential)
    page.show(document)
    deletable = [e.id for e in catalog().options("DELETE", None)]
    assert page.options("#root_endpoint") == deletable
    page.page.fill("#root_endpoint", TIME_TRANSACTIONS)
    # The engine asks again with the values chosen so far: the record list follows the endpoint.
    values = {"division": DIVISION, "endpoint": TIME_TRANSACTIONS}
    page.show(
        world.connector.rjsf_form(
            "delete_endpoint_record", credential=world.credential, values=values
        ),
        values,
    )
    records = page.options("#root_id")
    page.page.select_option("#root_id", label=records[0])
    before = world.sb.count(DIVISION, TIME_TRANSACTIONS)
    result = run(world, "delete_endpoint_record", page.submit())
    page.screenshot("delete_endpoint_record-filled")
    assert world.sb.record(DIVISION, TIME_TRANSACTIONS, result["data"]["id"]) is None
    assert world.sb.count(DIVISION, TIME_TRANSACTIONS) == before - 1
    assert_reads_well(page)


def test_list_form_minimal_then_with_fields(page: FormPage, world: World) -> None:
    """{division, endpoint} alone submits; a key with a filter is refused in words; select works."""
    page.show(forms.rjsf("list_or_get_endpoint"))
    page.page.fill("#root_division", str(DIVISION))
    page.page.fill("#root_endpoint", "crm/Accounts")
    minimal = run(world, "list_or_get_endpoint", page.submit())
    assert minimal["data"]["count"] > 0

    values = {"division": DIVISION, "endpoint": "crm/Accounts"}
    page.show(
        world.connector.rjsf_form(
            "list_or_get_endpoint", credential=world.credential, values=values
        ),
        values,
    )
    p = page.page
    p.select_option("#root_id", index=1)
    p.fill("#root_filter", "Name eq 'Acme'")
    assert page.submit() == [], "Ajv2020 applies dependentSchemas"
    assert "cannot be combined with a primary key" in page.text()
    assert_reads_well(page)
    p.select_option("#root_id", index=0)
    p.fill("#root_filter", "")
    for field in ("Code", "Name"):
        page.page.locator(".btn-add").last.click()
        box = p.locator("input[id^='root_select_']").last
        assert field in page.options(f"#{box.get_attribute('id')}")
        box.fill(field)
    p.fill("#root_limit", "5")
    result = run(world, "list_or_get_endpoint", page.submit())
    page.screenshot("list_or_get_endpoint-filled")
    assert result["data"]["count"] == 5
    assert all(set(record) == {"Code", "Name"} for record in result["data"]["records"])
    assert_reads_well(page)


def test_trigger_form_watches_an_endpoint(page: FormPage, world: World) -> None:
    """The "New or Updated Record" form offers only watchable endpoints; its submission polls."""
    document = world.connector.rjsf_form("record_changed", credential=world.credential)
    page.show(document)
    offered = page.options("#root_endpoint")
    assert "crm/Accounts" in offered and TIME_TRANSACTIONS in offered
    assert "crm/AccountClasses" not in offered
    page.page.fill("#root_endpoint", "crm/Accounts")
    page.page.fill("#root_interval_seconds", "5")
    submitted = page.submit()
    inputs = forms.to_input("record_changed", submitted[0])
    refused = world.connector.triggers.poll("record_changed", world.credential, inputs)
    assert refused["error"]["details"]["errors"][0]["code"] == "budget"
    page.page.fill("#root_interval_seconds", "300")
    inputs = forms.to_input("record_changed", page.submit()[-1])
    assert forms.validate("record_changed", inputs) == []
    polled = world.connector.triggers.poll("record_changed", world.credential, inputs)
    page.screenshot("record_changed-filled")
    assert polled["ok"] is True, polled
    assert polled["data"]["events"] == []
    assert_reads_well(page)


@pytest.mark.parametrize("name", FORMS)
def test_hydrated_forms_render_as_emitted(page: FormPage, world: World, name: str) -> None:
    """Every form, hydrated for the sandbox credential, renders without a console error."""
    document = world.connector.rjsf_form(name, credential=world.credential)
    assert document["warnings"] == []
    page.show(document)
    if "division" in document["schema"]["properties"]:
        assert page.options("#root_division")[0] == f"{DIVISION} — Sandbox Consultancy B.V."
    page.screenshot(f"{name}-hydrated")
    assert_reads_well(page)
