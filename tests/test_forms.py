"""Specification of exact_connector.forms: form specs, rjsf output, validation, the Data Manager."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from exact_connector import forms
from exact_connector.catalog import catalog
from exact_connector.exceptions import InputError
from exact_connector.manifest import Manifest, load_manifest
from exact_connector.runtime import Connector

REPO = Path(__file__).resolve().parent.parent
FORMS = ["credentials", *sorted(action.id for action in load_manifest().actions)]
GUID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
SECRET = "Zx9-VERY-SECRET-client-secret-value"
MARKER = "MARKER" * 200
CODE_FLOW = {
    "connector_name": "Exact (production)",
    "auth_type": "oauth2_authorization_code",
    "server_url": "https://start.exactonline.de",
    "client_id": "{B81CC4DE-D192-400E-BCB4-09254394C52A}",
    "client_secret": SECRET,
    "redirect_uri": "https://engine.example.com/oauth/callback",
}
REFRESH_FLOW = {
    **{k: v for k, v in CODE_FLOW.items() if k != "redirect_uri"},
    "auth_type": "oauth2_refresh_token",
    "refresh_token": "Gcp7!IAAAA-refresh",
}


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return load_manifest()


def fields(name: str) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in forms.form_spec(name)["fields"]}


# --- the credential form ------------------------------------------------------------------------


def test_credential_form_order_and_labels() -> None:
    """The Vault page asks for the seed's fields in the seed's order, then the conditional ones."""
    spec = forms.form_spec("credentials")
    assert [f["label"] for f in spec["fields"]] == [
        "Connector Name",
        "Authentication Type",
        "Server URL",
        "Client ID",
        "Client Secret",
        "Redirect URI",
        "Refresh Token",
    ]


def test_credential_secrets_are_marked_once_and_masked() -> None:
    """Client Secret and Refresh Token are secret, password-widget fields; nothing else is."""
    spec = fields("credentials")
    assert forms.secret_fields("credentials") == ("client_secret", "refresh_token")
    assert {n for n, f in spec.items() if f["secret"]} == {"client_secret", "refresh_token"}
    assert {n for n, f in spec.items() if f["widget"] == "password"} == {
        "client_secret",
        "refresh_token",
    }


@pytest.mark.parametrize("name", FORMS)
def test_password_widget_if_and_only_if_secret(name: str) -> None:
    """In every form the password widget and the secret mark always go together."""
    for field in forms.form_spec(name)["fields"]:
        assert (field["widget"] == "password") is field["secret"]


def test_conditional_fields_follow_the_auth_type() -> None:
    """Redirect URI shows for sign-in, Refresh Token for the refresh-token type; both required then."""
    spec = fields("credentials")
    assert spec["redirect_uri"]["visible_when"] == {
        "field": "auth_type",
        "equals": "oauth2_authorization_code",
    }
    assert spec["refresh_token"]["visible_when"] == {
        "field": "auth_type",
        "equals": "oauth2_refresh_token",
    }
    assert spec["redirect_uri"]["required"] and spec["refresh_token"]["required"]
    assert spec["connector_name"]["visible_when"] is None


def test_credential_fields_are_grouped() -> None:
    """The Vault page can show the connection, the App Center app and the sign-in apart."""
    assert [(f["name"], f["group"]) for f in forms.form_spec("credentials")["fields"]] == [
        ("connector_name", "Connection"),
        ("auth_type", "Connection"),
        ("server_url", "Connection"),
        ("client_id", "App Center app"),
        ("client_secret", "App Center app"),
        ("redirect_uri", "Sign-in"),
        ("refresh_token", "Sign-in"),
    ]


def test_select_fields_have_labelled_options() -> None:
    """Server URL lists the seven countries; Authentication Type has readable labels."""
    spec = fields("credentials")
    regions = spec["server_url"]["options"]
    assert [o["label"] for o in regions] == [
        "Netherlands",
        "Belgium",
        "Germany",
        "United Kingdom",
        "United States",
        "Spain",
        "France",
    ]
    assert regions[3]["value"] == "https://start.exactonline.co.uk"
    auth = spec["auth_type"]
    assert [o["value"] for o in auth["options"]] == [
        "oauth2_authorization_code",
        "oauth2_refresh_token",
    ]
    assert auth["default"] == "oauth2_authorization_code"
    assert auth["widget"] == "select"


@pytest.mark.parametrize("document", [CODE_FLOW, REFRESH_FLOW], ids=["code", "refresh"])
def test_valid_credentials(document: dict[str, str]) -> None:
    """A complete credential for either auth type validates."""
    assert forms.validate("credentials", document) == []


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            {**CODE_FLOW, "redirect_uri": "http://engine.example.com/cb"},
            [("$.redirect_uri", "pattern")],
        ),
        (
            {**CODE_FLOW, "auth_type": "oauth2_refresh_token"},
            [("$.redirect_uri", "not"), ("$.refresh_token", "required")],
        ),
        (
            {k: v for k, v in CODE_FLOW.items() if k != "redirect_uri"},
            [("$.redirect_uri", "required")],
        ),
        (
            {**CODE_FLOW, "server_url": "https://start.exactonline.nl.evil.com"},
            [("$.server_url", "enum")],
        ),
        ({**CODE_FLOW, "connector_name": "x" * 101}, [("$.connector_name", "maxLength")]),
        ({**CODE_FLOW, "client_id": "not-a-guid"}, [("$.client_id", "pattern")]),
        ({**CODE_FLOW, "extra": 1}, [("$.extra", "additionalProperties")]),
    ],
    ids=[
        "http-redirect",
        "wrong-conditional",
        "missing-redirect",
        "evil-host",
        "long-name",
        "bad-id",
        "extra",
    ],
)
def test_invalid_credentials(document: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    """Each kind of bad credential is reported at its field with the violated keyword."""
    assert [(e["path"], e["code"]) for e in forms.validate("credentials", document)] == expected


@pytest.mark.parametrize(
    "uri", ["http://127.0.0.1:8123/callback", "http://localhost/cb", "http://[::1]:9/cb"]
)
def test_loopback_http_redirect_is_allowed_for_the_sandbox(uri: str) -> None:
    """http is accepted only on the loopback address."""
    assert forms.validate("credentials", {**CODE_FLOW, "redirect_uri": uri}) == []


# --- action forms -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FORMS[1:])
def test_every_action_starts_with_a_required_division(name: str) -> None:
    """Division comes first, is required, and is picked from the credential's divisions."""
    first = forms.form_spec(name)["fields"][0]
    assert (first["name"], first["label"], first["required"]) == ("division", "Division", True)
    assert (first["widget"], first["options_from"]) == ("select", "divisions")


@pytest.mark.parametrize(
    ("name", "method"), [("delete_endpoint_record", "DELETE"), ("list_or_get_endpoint", "GET")]
)
def test_endpoint_combobox_lists_endpoints_for_the_method(name: str, method: str) -> None:
    """Service And Endpoint is a combobox fed by the catalog for the action's method."""
    endpoint = fields(name)["endpoint"]
    assert (endpoint["label"], endpoint["widget"]) == ("Service And Endpoint", "combobox")
    assert endpoint["options_from"] == f"endpoints?method={method}"


def test_delete_and_update_forms() -> None:
    """Delete asks for an Endpoint ID; update for a Time Transaction ID and the Data Manager."""
    assert [f["label"] for f in forms.form_spec("delete_endpoint_record")["fields"]] == [
        "Division",
        "Service And Endpoint",
        "Endpoint ID",
    ]
    update = forms.form_spec("update_project_time_transaction")["fields"]
    assert [(f["label"], f["widget"]) for f in update] == [
        ("Division", "select"),
        ("Time Transaction ID", "combobox"),
        ("Data Manager", "field-picker"),
    ]
    assert update[2]["options_from"] == "time_transaction_fields"


def test_list_form_keeps_query_options_under_advanced() -> None:
    """List or Get shows division, endpoint and key up front; the query options are advanced."""
    spec = forms.form_spec("list_or_get_endpoint")["fields"]
    assert [(f["name"], f["advanced"], f["required"]) for f in spec] == [
        ("division", False, True),
        ("endpoint", False, True),
        ("id", False, False),
        ("select", True, False),
        ("filter", True, False),
        ("order_by", True, False),
        ("limit", True, False),
        ("cursor", True, False),
        ("raw", True, False),
    ]
    assert spec[8]["default"] is False


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"division": 1, "endpoint": "crm/Accounts", "limit": 0}, [("$.limit", "minimum")]),
        ({"division": 1, "endpoint": "crm/Accounts", "limit": 100001}, [("$.limit", "maximum")]),
        ({"division": 1, "endpoint": "crm/Accounts", "limit": "5"}, [("$.limit", "type")]),
        (
            {"division": 1, "endpoint": "crm/Accounts", "filter": "a" * 2001},
            [("$.filter", "maxLength")],
        ),
        (
            {"division": 1, "endpoint": "crm/Accounts", "filter": "Name eq 'x'\r\n"},
            [("$.filter", "pattern")],
        ),
        (
            {"division": 1, "endpoint": "crm/Accounts", "select": ["Name;x"]},
            [("$.select[0]", "pattern")],
        ),
        (
            {"division": 1, "endpoint": "crm/Accounts", "order_by": "Name)"},
            [("$.order_by", "pattern")],
        ),
        ({"division": 1, "endpoint": "../oauth2/token"}, [("$.endpoint", "pattern")]),
        ({"division": 1, "endpoint": "crm/Accounts?$top=1"}, [("$.endpoint", "pattern")]),
        (
            {"division": 1, "endpoint": "crm/Accounts", "id": 1, "cursor": "c1.x"},
            [("$.cursor", "not")],
        ),
        ({"division": 1, "endpoint": "crm/Accounts", "id": "a/../b"}, [("$.id", "pattern")]),
    ],
    ids=[
        "limit-0",
        "limit-huge",
        "limit-string",
        "filter-long",
        "filter-control",
        "select-injection",
        "orderby-injection",
        "endpoint-traversal",
        "endpoint-query",
        "cursor-with-id",
        "id-slash",
    ],
)
def test_list_inputs_are_bounded(document: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    """Limits, filters, field names, endpoints and keys are checked before any request (I3, I5, I6)."""
    assert [
        (e["path"], e["code"]) for e in forms.validate("list_or_get_endpoint", document)
    ] == expected


def test_list_form_accepts_a_full_query() -> None:
    """Every advanced option together is a valid list request."""
    document = {
        "division": "123",
        "endpoint": "crm/Accounts",
        "select": ["ID", "Name"],
        "filter": "Name eq 'O''Brien'",
        "order_by": "Name asc, Code desc",
        "limit": 500,
        "cursor": "c1.eyJwIjoyfQ",
        "raw": True,
    }
    assert forms.validate("list_or_get_endpoint", document) == []


@pytest.mark.parametrize(
    "guid",
    [GUID, GUID.upper(), "{" + GUID + "}", "urn:uuid:" + GUID, GUID.replace("-", "")],
    ids=["canonical", "upper", "braced", "urn", "no-hyphens"],
)
def test_update_id_accepts_the_forms_people_paste(guid: str) -> None:
    """Time Transaction ID takes the GUID spellings the runtime canonicalises (I1)."""
    document = {"division": 1, "id": guid, "data": {"Notes": "x"}}
    assert forms.validate("update_project_time_transaction", document) == []


@pytest.mark.parametrize("guid", ["x' or 1 eq 1", GUID + "')/../x", "%27", "", "{" + GUID])
def test_update_id_rejects_anything_else(guid: str) -> None:
    """Injection attempts and broken GUIDs fail at $.id (I1)."""
    document = {"division": 1, "id": guid, "data": {"Notes": "x"}}
    errors = forms.validate("update_project_time_transaction", document)
    assert [(e["path"], e["code"]) for e in errors] == [("$.id", "pattern")]


def test_unknown_form_is_an_input_error() -> None:
    """A form name that is neither credentials nor an action id names $.form."""
    with pytest.raises(InputError) as caught:
        forms.form_spec("nope")
    assert caught.value.errors[0]["path"] == "$.form"
    assert "credentials" in caught.value.hint


# --- every form ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FORMS)
def test_form_spec_is_deterministic_json(name: str) -> None:
    """Two builds of a form spec serialise identically."""
    first = json.dumps(forms.form_spec(name), sort_keys=False)
    assert first == json.dumps(forms.form_spec(name), sort_keys=False)
    assert json.loads(first)["name"] == name


@pytest.mark.parametrize("name", FORMS)
def test_every_field_has_the_full_set_of_keys(name: str) -> None:
    """Each field carries every key of the spec, so engines need no defaults of their own."""
    keys = {
        "name",
        "label",
        "help",
        "widget",
        "required",
        "default",
        "options",
        "options_from",
        "options_note",
        "secret",
        "visible_when",
        "advanced",
        "group",
        "placeholder",
        "examples",
    }
    for field in forms.form_spec(name)["fields"]:
        assert set(field) == keys
        assert field["label"] and field["help"] and field["examples"]


def _example_document(name: str, manifest: Manifest) -> dict[str, Any]:
    """A submission filled from each visible field's first example, as an engine test would."""
    document: dict[str, Any] = {}
    for field in forms.form_spec(name, manifest)["fields"]:
        condition = field["visible_when"]
        if condition and document.get(condition["field"]) != condition["equals"]:
            continue
        if field["required"] or field["name"] in ("select", "raw"):
            document[field["name"]] = field["examples"][0]
    return document


@pytest.mark.parametrize("name", FORMS)
def test_a_form_filled_from_its_examples_is_valid(name: str, manifest: Manifest) -> None:
    """The examples in the schemas are valid values: engines can fill forms from them."""
    assert forms.validate(name, _example_document(name, manifest), manifest) == []


@pytest.mark.parametrize("name", FORMS)
def test_validation_never_echoes_a_submitted_value(name: str) -> None:
    """A secret and a long marker in bad fields appear nowhere in the errors (J3)."""
    spec = forms.form_spec(name)
    document: dict[str, Any] = {f["name"]: SECRET + "\x00" for f in spec["fields"]}
    document[spec["fields"][0]["name"]] = {"nested": MARKER, MARKER: SECRET}
    document[MARKER] = SECRET
    errors = forms.validate(name, document)
    assert errors, "the document is invalid, so there must be errors"
    text = json.dumps(errors)
    assert SECRET not in text and "MARKERMARKER" not in text
    assert all(e["path"].startswith("$") for e in errors)


def test_validate_reports_every_error_not_only_the_first() -> None:
    """All problems come back at once, sorted by path."""
    errors = forms.validate("credentials", {"auth_type": "basic", "client_secret": ""})
    assert [(e["path"], e["code"]) for e in errors] == [
        ("$.auth_type", "enum"),
        ("$.client_id", "required"),
        ("$.client_secret", "minLength"),
        ("$.client_secret", "pattern"),
        ("$.connector_name", "required"),
        ("$.server_url", "required"),
    ]


# --- the Data Manager ---------------------------------------------------------------------------


def _data_manager(manifest: Manifest, action: str) -> dict[str, Any]:
    data: dict[str, Any] = manifest.action(action).input_schema["properties"]["data"]
    return data


def test_data_manager_fields_are_the_catalogs_writable_fields(manifest: Manifest) -> None:
    """Exactly the writable, non-obsolete fields of project/TimeTransactions, in catalog order."""
    endpoint = catalog().lookup("project/TimeTransactions")
    expected = [f.name for f in endpoint.fields if f.writable and not f.obsolete]
    data = _data_manager(manifest, "create_project_time_transaction")
    assert list(data["properties"]) == expected
    assert {"ID", "Amount", "Price", "SkipValidation", "Type", "Division"}.isdisjoint(
        data["properties"]
    )
    assert data["additionalProperties"] is False


EDM = {
    "Edm.Guid": ("string", "uuid"),
    "Edm.DateTime": ("string", "date-time"),
    "Edm.Double": ("number", None),
    "Edm.Int16": ("integer", None),
    "Edm.Int32": ("integer", None),
    "Edm.Int64": ("integer", None),
    "Edm.Byte": ("integer", None),
    "Edm.Boolean": ("boolean", None),
    "Edm.String": ("string", None),
}


def test_data_manager_types_follow_the_edm_types(manifest: Manifest) -> None:
    """Each field's JSON type and format follow its Edm type in the catalog."""
    endpoint = catalog().lookup("project/TimeTransactions")
    properties = _data_manager(manifest, "update_project_time_transaction")["properties"]
    for name, prop in properties.items():
        edm_type = endpoint.field(name).type  # type: ignore[union-attr]
        assert (prop["type"], prop.get("format")) == EDM[edm_type], name


def test_hour_status_is_a_labelled_enum(manifest: Manifest) -> None:
    """HourStatus takes 1, 2 or 10, labelled Draft, Rejected, Submitted."""
    status = _data_manager(manifest, "create_project_time_transaction")["properties"]["HourStatus"]
    assert status["enum"] == [1, 2, 10]
    assert status["x-ui"]["enum_labels"] == ["Draft", "Rejected", "Submitted"]


def test_create_requires_item_project_and_quantity(manifest: Manifest) -> None:
    """Creating needs the fields the catalog marks mandatory: Item, Project, Quantity."""
    data = _data_manager(manifest, "create_project_time_transaction")
    mandatory = [f.name for f in catalog().lookup("project/TimeTransactions").mandatory_fields]
    assert data["required"] == mandatory == ["Item", "Project", "Quantity"]


def test_update_needs_at_least_one_field(manifest: Manifest) -> None:
    """Updating requires no particular field, but at least one."""
    data = _data_manager(manifest, "update_project_time_transaction")
    assert data["minProperties"] == 1 and "required" not in data
    document = {"division": 1, "id": GUID, "data": {}}
    errors = forms.validate("update_project_time_transaction", document, manifest)
    assert [(e["path"], e["code"]) for e in errors] == [("$.data", "minProperties")]


def test_generated_file_is_current() -> None:
    """The committed Data Manager schema is byte-for-byte what the generator writes today."""
    committed = (REPO / forms.DATA_MANAGER_FILE).read_text("utf-8")
    assert committed == forms.render_data_manager()


def test_regenerate_check_reports_current(capsys: pytest.CaptureFixture[str]) -> None:
    """The --check mode of the generator agrees that the file is current."""
    assert forms.main(["--regenerate", "--check"]) == 0
    assert capsys.readouterr().out.strip().endswith("current")


# --- the runtime ---------------------------------------------------------------------------------


def test_connector_exposes_manifest_and_forms() -> None:
    """A Connector gives the engine the manifest and the form specs without opening a vault."""
    connector = Connector()
    assert connector.manifest is load_manifest()
    assert connector.form_spec("credentials") == forms.form_spec("credentials")
    assert repr(connector) == "Connector(id='exact-online', workspace='default')"


def test_secrets_typed_so_far_are_never_sent_back_as_defaults() -> None:
    """A credential form rebuilt with the values typed so far (after a failed save, say) keeps
    the plain fields but never carries a writeOnly secret back out, in either form format."""
    values = {
        "connector_name": "Acme",
        "auth_type": "oauth2_refresh_token",
        "client_secret": "Zx9-typed-secret",
        "refresh_token": "RT-typed-token",
    }

    spec = forms.form_spec("credentials", values=values)
    document = json.dumps(forms.rjsf("credentials", values=values))

    defaults = {field["name"]: field["default"] for field in spec["fields"]}
    assert defaults["connector_name"] == "Acme"
    assert defaults["client_secret"] is None and defaults["refresh_token"] is None
    assert "Zx9-typed-secret" not in json.dumps(spec) and "Zx9-typed-secret" not in document
    assert "RT-typed-token" not in json.dumps(spec) and "RT-typed-token" not in document
    assert '"default": "Acme"' in document
