"""Specification of the react-jsonschema-form documents (forms.rjsf, Connector.rjsf_form).

What RJSF reads (``ui:widget``, ``ui:options``) holds only RJSF's own vocabulary; the connector's
hints live under ``x-ui``. Hydration is checked against the sandbox through
``httpx.MockTransport``; rendering in a real browser is ``tests/browser/``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from jsonschema import Draft202012Validator, FormatChecker

from exact_connector import forms
from exact_connector.clock import ManualClock
from exact_connector.exceptions import InputError
from exact_connector.manifest import load_manifest
from exact_connector.options import LIVE_LIMIT
from exact_connector.runtime import Connector
from exact_connector.sandbox import Sandbox
from exact_connector.vault import Vault
from exact_connector.vault.sealing import KeyRing, generate_key

FORMS = ["credentials", *sorted(action.id for action in load_manifest().actions)]
DIVISION = 100001
#: The widget names RJSF resolves, by the field's type (@rjsf/utils ``getWidget``, 5 and 6).
RJSF_WIDGETS = {
    "boolean": {"checkbox", "radio", "select", "hidden"},
    "string": {
        *("text", "password", "email", "hostname", "ipv4", "ipv6", "uri", "data-url", "radio"),
        *("select", "textarea", "hidden", "date", "datetime", "date-time", "alt-date"),
        *("alt-datetime", "time", "color", "file"),
    },
    "number": {"text", "select", "updown", "range", "radio", "hidden"},
    "integer": {"text", "select", "updown", "range", "radio", "hidden"},
    "array": {"select", "checkboxes", "files", "hidden"},
}
#: Text a person must never read: the catalog's raw field notes, and regular expressions.
FORBIDDEN = re.compile(r"Exact field|\(Edm\.|\^\[|\]\{|\$\"|\\\\d")


class SandboxSession:
    """A connector signed in to a sandbox through ``httpx.MockTransport`` (in-process)."""

    def __init__(self, home: Path) -> None:
        clock = ManualClock()
        self.sb = Sandbox(clock=clock, auto_consent=True, limits=False)
        self.vault = Vault.open(home, keys=KeyRing.from_bytes(generate_key()), clock=clock)
        self.connector = Connector(
            vault=self.vault, transport=httpx.MockTransport(self.sb), clock=clock
        )
        app = self.sb.demo_app
        credential = self.connector.credentials.begin(
            {
                "connector_name": "forms",
                "auth_type": "oauth2_authorization_code",
                "server_url": "https://start.exactonline.nl",
                "client_id": app.client_id,
                "client_secret": app.client_secret,
                "redirect_uri": app.redirect_uris[0],
            }
        )
        consent = self.sb(httpx.Request("GET", self.connector.authorization_url(credential, "s")))
        code = parse_qs(urlsplit(consent.headers["location"]).query)["code"][0]
        self.connector.complete_authorization(credential, code, "s")
        assert self.connector.test_connect(credential)["ok"]
        self.credential = self.connector.credentials.activate(credential).id

    def rjsf(self, name: str, **kw: Any) -> dict[str, Any]:
        return self.connector.rjsf_form(name, credential=self.credential, **kw)

    def records(self, endpoint: str) -> list[dict[str, Any]]:
        return list(self.sb.records(DIVISION, endpoint))


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxSession]:
    made = SandboxSession(tmp_path_factory.mktemp("rjsf") / "vault")
    yield made
    made.vault.close()


def walk(node: Any, path: str = "$") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every object in a JSON document with its path."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from walk(item, f"{path}[{index}]")


def ui_for(ui: dict[str, Any], *names: str) -> dict[str, Any]:
    for name in names:
        ui = ui[name]
    return ui


def choices(prop: dict[str, Any]) -> list[Any]:
    return [option["const"] for option in prop["oneOf"]]


# --- conformance: what RJSF reads ------------------------------------------------------------------


def widget_types(schema: Any, ui: Any) -> Iterator[tuple[str, Any]]:
    """``(widget, the field's type)`` for every ``ui:widget`` and ``ui:options.widget`` in a form."""
    if not isinstance(ui, dict) or not isinstance(schema, dict):
        return
    for key in ("ui:widget",):
        if key in ui:
            yield ui[key], schema.get("type")
    if "widget" in ui.get("ui:options", {}):
        yield ui["ui:options"]["widget"], schema.get("type")
    properties = dict(schema.get("properties", {}))
    for clause in schema.get("allOf", []):
        properties |= clause.get("then", {}).get("properties", {})
    for name, child in ui.items():
        if name in properties:
            yield from widget_types(properties[name], child)
        elif name == "items":
            yield from widget_types(schema.get("items", {}), child)


@pytest.mark.parametrize("name", FORMS)
def test_only_rjsf_widget_names_for_the_fields_type(name: str, session: SandboxSession) -> None:
    """Every widget RJSF reads is one of its own for that type, static and hydrated."""
    for document in (forms.rjsf(name), session.rjsf(name)):
        found = list(widget_types(document["schema"], document["uiSchema"]))
        assert found, "the form names widgets"
        for widget, kind in found:
            assert widget in RJSF_WIDGETS[kind], (widget, kind)


@pytest.mark.parametrize("name", FORMS)
def test_connector_hints_only_under_x_ui(name: str) -> None:
    """ui:options carries only RJSF options; options_from and friends sit in x-ui."""
    ui = forms.rjsf(name)["uiSchema"]
    for path, node in walk(ui):
        options = node.get("ui:options", {})
        assert set(options) <= {"inputType", "rows", "orderable", "label"}, path
    for field in forms.form_spec(name)["fields"]:
        hints = ui[field["name"]]["x-ui"]
        assert hints["widget"] == field["widget"]
        assert hints.get("options_from") == field["options_from"]


@pytest.mark.parametrize("name", FORMS)
def test_schema_is_self_contained_2020_12(name: str) -> None:
    """Valid 2020-12, no $ref or $id, no x- keywords, no anyOf selector."""
    schema = forms.rjsf(name)["schema"]
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    text = json.dumps(schema)
    for keyword in ('"$ref"', '"$id"', '"x-ui"', '"x-error-message"', '"anyOf"'):
        assert keyword not in text, keyword


@pytest.mark.parametrize("name", FORMS)
def test_ui_order_lists_every_field_in_form_order(name: str) -> None:
    """ui:order is the form spec's order and covers the fields shown now and conditionally."""
    document = forms.rjsf(name)
    schema = document["schema"]
    shown = set(schema["properties"])
    for clause in schema.get("allOf", []):
        shown |= set(clause["then"]["properties"])
    assert document["uiSchema"]["ui:order"] == [f["name"] for f in forms.form_spec(name)["fields"]]
    assert set(document["uiSchema"]["ui:order"]) == shown


@pytest.mark.parametrize("name", FORMS[1:])
def test_division_is_one_integer_input(name: str) -> None:
    """Division is an integer (a number box without a credential), required, first."""
    document = forms.rjsf(name)
    division = document["schema"]["properties"]["division"]
    assert (division["type"], division["minimum"], division["maximum"]) == ("integer", 1, 2**31 - 1)
    assert document["uiSchema"]["division"]["ui:widget"] == "updown"
    assert document["schema"]["required"][0] == "division"


def test_credential_secrets_are_password_inputs() -> None:
    """Client Secret and Refresh Token are password inputs; nothing else is."""
    document = forms.rjsf("credentials")
    passwords = {
        path for path, node in walk(document["uiSchema"]) if node.get("ui:widget") == "password"
    }
    assert passwords == {"$.client_secret", "$.refresh_token"}


def test_conditional_credential_fields_live_in_if_then() -> None:
    """Redirect URI shows for the sign-in type, Refresh Token for the refresh-token type."""
    schema = forms.rjsf("credentials")["schema"]
    assert "redirect_uri" not in schema["properties"]
    shown = {
        clause["if"]["properties"]["auth_type"]["const"]: clause["then"]
        for clause in schema["allOf"]
    }
    assert shown["oauth2_authorization_code"]["required"] == ["redirect_uri"]
    assert shown["oauth2_refresh_token"]["required"] == ["refresh_token"]


def test_labelled_choices_are_one_of_const_title() -> None:
    """Server URL and Authentication Type are dropdowns of {const, title}, no enumNames."""
    document = forms.rjsf("credentials")
    server = document["schema"]["properties"]["server_url"]
    assert server["oneOf"][3] == {
        "const": "https://start.exactonline.co.uk",
        "title": "United Kingdom",
    }
    assert "enum" not in server and "ui:enumNames" not in json.dumps(document["uiSchema"])


def test_optional_list_has_no_min_items() -> None:
    """List's optional select starts empty: RJSF would pre-create an item for minItems."""
    schema = forms.rjsf("list_or_get_endpoint")["schema"]
    assert "minItems" not in schema["properties"]["select"]
    assert schema["required"] == ["division", "endpoint"]


def test_primary_key_and_dependent_schemas_stay_for_ajv2020() -> None:
    """A primary key still excludes the query options, each with a human message."""
    document = forms.rjsf("list_or_get_endpoint")
    excluded = document["schema"]["dependentSchemas"]["id"]["properties"]
    assert set(excluded) == {"filter", "order_by", "limit", "cursor"}
    key = "#/dependentSchemas/id/properties/filter"
    assert document["errorMessages"][key] == "cannot be combined with a primary key"


@pytest.mark.parametrize("name", FORMS)
def test_every_pattern_has_a_human_message(name: str, session: SandboxSession) -> None:
    """Each rule that would print a regular expression has a message keyed by its location."""
    for document in (forms.rjsf(name), session.rjsf(name)):
        messages = document["errorMessages"]
        for path, node in walk(document["schema"]):
            if "pattern" in node or node.get("format") == "uuid" or "not" in node:
                pointer = "#" + path[1:].replace(".", "/").replace("[", "/").replace("]", "")
                assert pointer in messages, path


@pytest.mark.parametrize("name", FORMS)
def test_no_raw_field_notes_or_regexes_in_text_a_person_reads(
    name: str, session: SandboxSession
) -> None:
    """Titles, descriptions, placeholders, option titles and messages read as prose."""
    for document in (forms.rjsf(name), session.rjsf(name)):
        texts = [
            str(node[key])
            for _, node in walk(document)
            for key in ("title", "description", "ui:placeholder", "message")
            if key in node
        ] + list(document["errorMessages"].values())
        assert texts
        for text in texts:
            assert not FORBIDDEN.search(text), text


# --- the Data Manager in the form ----------------------------------------------------------------


def test_create_asks_for_project_hour_type_and_hours_then_picked_fields() -> None:
    """Required fields are fixed inputs; the rest are picked one row at a time, labelled."""
    document = forms.rjsf("create_project_time_transaction")
    data = document["schema"]["properties"]["data"]
    assert document["uiSchema"]["data"]["ui:order"] == ["Project", "Item", "Quantity", "fields"]
    assert [data["properties"][n]["title"] for n in ("Project", "Item", "Quantity")] == [
        "Project",
        "Hour type",
        "Hours",
    ]
    picked = data["properties"]["fields"]["items"]["properties"]["field"]["oneOf"]
    titles = [option["title"] for option in picked]
    assert titles[:4] == ["Date", "Employee", "Start time (StartTime)", "End time (EndTime)"]
    assert "Status (HourStatus)" in titles and "Customer (Account)" in titles
    assert {"Project", "Item", "Quantity"}.isdisjoint(option["const"] for option in picked)


def test_each_picked_field_gets_the_input_for_its_type() -> None:
    """A picked row shows its field's own input: datetime-local, number, dropdown, textarea."""
    document = forms.rjsf("update_project_time_transaction")
    rows = document["schema"]["properties"]["data"]["properties"]["fields"]
    then = {
        clause["if"]["properties"]["field"]["const"]: clause["then"]["properties"]
        for clause in rows["items"]["allOf"]
    }
    row_ui = document["uiSchema"]["data"]["fields"]["items"]
    assert row_ui["StartTime"]["ui:options"] == {"inputType": "datetime-local"}
    assert then["Quantity"]["Quantity"]["type"] == "number"
    assert row_ui["Quantity"]["ui:widget"] == "updown"
    assert then["HourStatus"]["HourStatus"]["oneOf"] == [
        {"const": 1, "title": "Draft"},
        {"const": 2, "title": "Rejected"},
        {"const": 10, "title": "Submitted"},
    ]
    assert row_ui["Notes"]["ui:widget"] == "textarea"
    assert rows["minItems"] == 1 and document["schema"]["properties"]["data"]["required"] == [
        "fields"
    ]


# --- hydration -----------------------------------------------------------------------------------


def test_static_form_offers_the_catalogs_endpoints_as_suggestions() -> None:
    """Without a credential the endpoint input suggests the catalog's endpoints for the method."""
    schema = forms.rjsf("delete_endpoint_record")["schema"]
    suggested = schema["properties"]["endpoint"]["examples"]
    assert "project/TimeTransactions" in suggested and len(suggested) > 50
    assert "pattern" in schema["properties"]["endpoint"], "typing stays possible"


def test_hydrated_divisions_are_a_named_dropdown(session: SandboxSession) -> None:
    """Divisions come from the credential, labelled with their names; the first is preselected."""
    division = session.rjsf("list_or_get_endpoint")["schema"]["properties"]["division"]
    assert choices(division) == [100001, 100002, 100003]
    assert division["oneOf"][0]["title"] == "100001 — Sandbox Consultancy B.V."
    assert division["default"] == DIVISION


def test_hydrated_data_manager_lists_the_divisions_records(session: SandboxSession) -> None:
    """Project, Hour type, Employee and Customer are dropdowns of the division's records."""
    document = session.rjsf("create_project_time_transaction", values={"division": DIVISION})
    data = document["schema"]["properties"]["data"]
    projects = {r["ID"] for r in session.records("project/Projects")}
    assert set(choices(data["properties"]["Project"])) <= projects
    hour_types = {r["ID"] for r in session.records("logistics/Items") if r.get("IsTime")}
    assert set(choices(data["properties"]["Item"])) == hour_types
    then = {
        clause["if"]["properties"]["field"]["const"]: clause["then"]["properties"]
        for clause in data["properties"]["fields"]["items"]["allOf"]
    }
    employees = {r["ID"] for r in session.records("payroll/Employees")}
    assert set(choices(then["Employee"]["Employee"])) <= employees
    assert "format" not in data["properties"]["Project"], "the listed values are the rule"
    assert document["warnings"] == []


def test_a_full_live_list_says_it_is_bounded(session: SandboxSession) -> None:
    """A list that reaches the cap says so; a search narrows it."""
    data = session.rjsf("create_project_time_transaction")["schema"]["properties"]["data"]
    project = data["properties"]["Project"]
    assert len(project["oneOf"]) == LIVE_LIMIT
    assert f"The first {LIVE_LIMIT} are listed" in project["description"]
    wanted = session.records("project/Projects")[0]["Description"]
    searched = session.rjsf("create_project_time_transaction", search={"projects": wanted})
    narrowed = searched["schema"]["properties"]["data"]["properties"]["Project"]
    assert 0 < len(narrowed["oneOf"]) < LIVE_LIMIT
    assert all(wanted in option["title"] for option in narrowed["oneOf"])


def test_endpoint_and_records_follow_the_values(session: SandboxSession) -> None:
    """With an endpoint chosen, its fields are suggested and its records are a dropdown."""
    values = {"division": DIVISION, "endpoint": "crm/Accounts"}
    schema = session.rjsf("list_or_get_endpoint", values=values)["schema"]
    assert {"ID", "Code", "Name"} <= set(schema["properties"]["select"]["items"]["examples"])
    accounts = {r["ID"] for r in session.records("crm/Accounts")}
    assert set(choices(schema["properties"]["id"])) <= accounts
    assert schema["properties"]["endpoint"]["default"] == "crm/Accounts"


def test_update_lists_time_transactions_newest_first(session: SandboxSession) -> None:
    """The Time Transaction ID is picked from the division's time transactions."""
    schema = session.rjsf("update_project_time_transaction")["schema"]
    listed = schema["properties"]["id"]["oneOf"]
    known = {r["ID"] for r in session.records("project/TimeTransactions")}
    assert listed and {option["const"] for option in listed} <= known
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} — \S+ — [\d.]+", listed[0]["title"])


def test_a_failing_lookup_leaves_the_static_field_and_says_so(session: SandboxSession) -> None:
    """A lookup Exact refuses keeps the form usable: the field is typed, with a note and a warning."""
    session.sb.faults.add("error", status=403, path_contains="/project/Projects")
    try:
        document = session.rjsf("create_project_time_transaction")
    finally:
        session.sb.faults.clear()
    project = document["schema"]["properties"]["data"]["properties"]["Project"]
    assert "oneOf" not in project and project["format"] == "uuid"
    assert "could not be loaded" in project["description"]
    assert [(w["code"], w["path"]) for w in document["warnings"]] == [
        ("options_unavailable", "$.data.Project")
    ]
    assert "oneOf" in document["schema"]["properties"]["data"]["properties"]["Item"]


def test_hydrated_form_spec_carries_the_same_options(session: SandboxSession) -> None:
    """The JSON form spec hydrates too: divisions, and the Data Manager fields' own lists."""
    spec = session.connector.form_spec(
        "create_project_time_transaction", credential=session.credential
    )
    division, data = spec["fields"]
    assert [o["value"] for o in division["options"]] == [100001, 100002, 100003]
    by_name = {option["value"]: option for option in data["options"]}
    assert by_name["Item"]["label"] == "Hour type"
    assert len(by_name["Project"]["options"]) == LIVE_LIMIT
    assert "options" not in by_name["Notes"]


def test_rjsf_schema_accepts_what_the_transform_accepts() -> None:
    """A stock 2020-12 validator on the emitted schema agrees with forms.to_input."""
    schema = forms.rjsf("credentials")["schema"]
    stock = Draft202012Validator(schema, format_checker=FormatChecker())
    form_data = {
        "connector_name": "Exact (production)",
        "auth_type": "oauth2_refresh_token",
        "server_url": "https://start.exactonline.de",
        "client_id": "b81cc4de-d192-400e-bcb4-09254394c52a",
        "client_secret": "s3cr3t",
        "refresh_token": "Gcp7!IAAAA-refresh",
    }
    assert stock.is_valid(form_data)
    assert forms.to_input("credentials", form_data) == form_data
    missing = {k: v for k, v in form_data.items() if k != "refresh_token"}
    assert not stock.is_valid(missing)


def _own_errors(document: dict[str, Any], data: dict[str, Any]) -> list[str]:
    """What the form's own validator (Ajv2020 in RJSF; the same 2020-12 rules here) reports."""
    validator = Draft202012Validator(document["schema"], format_checker=FormatChecker())
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)
    ]


def _defaults(document: dict[str, Any]) -> dict[str, Any]:
    """The form data RJSF opens the form on: each top-level field's default."""
    return {
        name: prop["default"]
        for name, prop in document["schema"]["properties"].items()
        if "default" in prop
    }


@pytest.mark.parametrize(
    ("form", "endpoint"),
    [
        ("update_project_time_transaction", None),
        ("delete_endpoint_record", "project/TimeTransactions"),
        ("list_or_get_endpoint", "project/TimeTransactions"),
    ],
)
def test_reopening_a_stored_step_keeps_its_record(
    session: SandboxSession, form: str, endpoint: str | None
) -> None:
    """An engine reopens a saved step: ``to_form_data`` of its inputs as ``values``. The
    record it names exists, but is older than the 60 the dropdown lists; the form must still
    accept the value it opens with (it is the step's own, valid input)."""
    records = session.records("project/TimeTransactions")
    document = session.rjsf(
        form, values={"division": DIVISION, **({"endpoint": endpoint} if endpoint else {})}
    )
    listed = {option["const"] for option in document["schema"]["properties"]["id"]["oneOf"]}
    stored = next(r["ID"] for r in records if r["ID"] not in listed)  # an existing, older record
    values = {"division": DIVISION, "id": stored} | ({"endpoint": endpoint} if endpoint else {})
    reopened = session.rjsf(form, values=values)
    opened_on = _defaults(reopened)
    assert opened_on["id"] == stored
    assert [e for e in _own_errors(reopened, opened_on) if e.startswith("id")] == []


def _duplicating_lookup(source: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    key = "001018c8-b722-4447-93ae-f2e30b8a593c"
    if source == "divisions":
        return [{"value": DIVISION, "label": f"{DIVISION} — Main"}] * 2
    if source.startswith(("records", "projects")):
        return [
            {"value": key, "label": "P0018 — Workshop"},
            {"value": key, "label": "P0018 — Workshop"},
        ]
    return []


def test_duplicate_live_options_still_validate() -> None:
    """Live data with a repeated row (the same record twice, an engine's own lookup) must not
    make the one value a person picks fail the form: oneOf demands exactly one match."""
    document = forms.rjsf(
        "delete_endpoint_record",
        lookup=_duplicating_lookup,
        values={"endpoint": "project/TimeTransactions"},
    )
    picked = {
        "division": DIVISION,
        "endpoint": "project/TimeTransactions",
        "id": "001018c8-b722-4447-93ae-f2e30b8a593c",
    }
    assert _own_errors(document, picked) == []


def test_webhook_form_refuses_what_the_subscription_refuses() -> None:
    """callback_url: the form's description and message say https, Exact requires https
    (API-FACTS, webhooks) and webhooks._check_callback refuses plain http to a real host; the
    form must not accept it."""
    document = forms.rjsf("webhook")
    data = {
        "division": DIVISION,
        "topic": "Accounts",
        "callback_url": "http://engine.example.com/hooks/exact",
    }
    errors = _own_errors(document, data)
    try:
        forms.to_input("webhook", data)
        transform_refused = False
    except InputError:
        transform_refused = True
    assert errors or transform_refused, "form and transform accept an http callback URL"
