"""An engine's whole use of the connector, in the order an engine does it.

Discover the plugin through its entry point, open it on a fresh vault, render every form, fill the
credential form from its own examples (plus the sandbox's app), sign in, run Test Connect, resolve
every dynamic dropdown of every form against the sandbox, fill each action's form from examples
and options, and run every action. Only what the manifest and the forms say is used: no action id,
field or option source is hard-coded beyond the examples the forms carry.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from exact_connector import forms
from exact_connector.cli._callback import browser_get
from exact_connector.runtime import Connector
from exact_connector.sandbox import Sandbox, serve
from exact_connector.vault.sealing import generate_key

pytestmark = pytest.mark.e2e

_TEMPLATE = re.compile(r"\{([a-z_]+)\}")


@pytest.fixture
def sandbox_url(scanner: ModuleType) -> Iterator[tuple[Sandbox, str]]:
    """The sandbox on 127.0.0.1 (real clock, limits on), its app's secret registered."""
    sb = Sandbox(auto_consent=True)
    scanner.register_secret(sb.demo_app.client_secret)
    with serve(sb) as base_url:
        yield sb, base_url


@pytest.fixture
def connector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scanner: ModuleType
) -> Iterator[Connector]:
    """The plugin as an engine finds it: entry point -> class -> ``open`` on a new vault."""
    key = scanner.register_secret(base64.b64encode(generate_key()).decode())
    monkeypatch.setenv("EXACT_CONNECTOR_VAULT_KEY", key)
    found = entry_points(group="workflow_automation.connectors", name="exact-online")
    assert [ep.value for ep in found] == ["exact_connector:Connector"]
    plugin = next(iter(found)).load()
    assert plugin is Connector
    opened = plugin.open(tmp_path / "vault", allow_sandbox=True)
    yield opened
    opened.vault.close()


# -- what an engine does with the declarations -----------------------------------------------------


def options_sources(ui_schema: Any) -> Iterator[str]:
    """Every ``options_from`` in an rjsf uiSchema (the connector's ``x-ui`` hints), nested too."""
    if isinstance(ui_schema, dict):
        source = ui_schema.get("x-ui", {}).get("options_from")
        if isinstance(source, str):
            yield source
        for key, value in ui_schema.items():
            if key != "x-ui":
                yield from options_sources(value)


def resolve(source: str, form: dict[str, Any]) -> str:
    """An options source with its ``{field}`` placeholders filled from the form so far."""
    return _TEMPLATE.sub(lambda match: str(form[match.group(1)]), source)


def field_of(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return next(field for field in spec["fields"] if field["name"] == name)


def first_example(field: dict[str, Any]) -> Any:
    examples = field.get("examples") or [field.get("default")]
    return examples[0]


def consent_redirect(url: str) -> str:
    """Open the sign-in URL as a browser would and return where consent sends it."""
    status, location = browser_get(url)
    assert status == 302, status
    return str(location)


def check_submission(name: str, data: dict[str, Any]) -> None:
    """The input passes the connector's validation, and as form data the rjsf schema itself."""
    assert forms.validate(name, data) == [], (name, forms.validate(name, data))
    schema = forms.rjsf(name)["schema"]
    form_data = forms.to_form_data(name, data)
    checker = Draft202012Validator(schema, format_checker=FormatChecker())
    assert not list(checker.iter_errors(form_data))
    assert forms.to_input(name, form_data) == data


# -- the test ----------------------------------------------------------------------------------------


def test_an_engine_discovers_configures_and_runs_the_connector(
    connector: Connector, sandbox_url: tuple[Sandbox, str], scanner: ModuleType
) -> None:
    """Entry point to four successful actions, using only what the forms declare."""
    sb, base_url = sandbox_url
    names = connector.manifest.form_names()
    actions = [a.id for a in connector.manifest.actions]
    assert names == ("credentials", *actions, "record_changed", "record_deleted", "webhook")

    # Render every form, twice: the specs are deterministic JSON, the rjsf schemas valid 2020-12.
    specs = {name: connector.form_spec(name) for name in names}
    rjsf = {name: forms.rjsf(name) for name in names}
    for name in names:
        assert json.dumps(specs[name], sort_keys=True) == json.dumps(
            connector.form_spec(name), sort_keys=True
        )
        Draft202012Validator.check_schema(rjsf[name]["schema"])
        assert rjsf[name]["uiSchema"]["ui:order"] == [f["name"] for f in specs[name]["fields"]]
    assert [f["name"] for f in specs["credentials"]["fields"] if f["secret"]] == [
        "client_secret",
        "refresh_token",
    ]

    # The Vault page: the credential form filled from its examples, the app's values typed in.
    app = sb.demo_app
    typed = {
        "server_url": base_url,
        "client_id": app.client_id,
        "client_secret": app.client_secret,
        "redirect_uri": app.redirect_uris[0],
    }
    credential_form: dict[str, Any] = {}
    for field in specs["credentials"]["fields"]:
        shown = field["visible_when"]
        if shown and credential_form.get(shown["field"]) != shown["equals"]:
            continue
        credential_form[field["name"]] = typed.get(field["name"], first_example(field))
    assert set(credential_form) == {"connector_name", "auth_type", *typed}
    credential = connector.credentials.begin(credential_form)
    assert credential.status == "pending"

    # Sign in (the sandbox consents at once), Test Connect, Connect & Create.
    location = consent_redirect(connector.authorization_url(credential, "engine-state-42"))
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    scanner.register_secret(query["code"])
    credential = connector.complete_authorization(credential, query["code"], query["state"])
    for token in (credential.access_token, credential.refresh_token):
        assert token is not None
        scanner.register_secret(token.get_secret_value())
    report = connector.test_connect(credential)
    assert report["ok"] is True, report
    credential = connector.credentials.activate(credential)
    assert credential.status == "active"

    # Every dynamic dropdown of every form answers against the sandbox.
    division = connector.options("divisions", credential)[0]["value"]
    context = {"division": division, "endpoint": "crm/Accounts"}
    resolved: dict[str, list[dict[str, Any]]] = {}
    for name in names[1:]:
        for source in options_sources(rjsf[name]["uiSchema"]):
            resolved[source] = connector.options(resolve(source, context), credential)
            assert resolved[source], f"{source} offered nothing"
            assert all({"value", "label"} <= set(option) for option in resolved[source])
    assert set(resolved) == {
        "divisions",
        "endpoints?method=GET",
        "endpoints?method=DELETE",
        "endpoint_fields?endpoint={endpoint}",
        "feed_fields?endpoint={endpoint}",
        "time_transaction_fields",
        "projects?division={division}",
        "employees?division={division}",
        "hour_types?division={division}",
        "accounts?division={division}",
        "records?endpoint={endpoint}&division={division}",
        "records?endpoint=project/TimeTransactions&division={division}",
        "watchable_endpoints",
        "watchable_endpoints?deletions=true",
    }
    values = {source: [o["value"] for o in offered] for source, offered in resolved.items()}

    # Each action's form, filled from its examples and the options, then run.
    def fill(name: str, **given: Any) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for field in specs[name]["fields"]:
            if field["name"] in given:
                data[field["name"]] = given[field["name"]]
            elif field["options_from"] == "divisions":
                data[field["name"]] = values["divisions"][0]
            elif field["required"]:
                data[field["name"]] = first_example(field)
        check_submission(name, data)
        return data

    example_data = first_example(field_of(specs["create_project_time_transaction"], "data"))
    looked_up = {
        option["value"]: values[option["schema"]["x-ui"]["options_from"]][0]
        for option in resolved["time_transaction_fields"]
        if "options_from" in option["schema"].get("x-ui", {})
    }
    assert set(example_data) <= set(values["time_transaction_fields"])
    created = connector.execute(
        "create_project_time_transaction",
        credential,
        fill("create_project_time_transaction", data={**example_data, **looked_up}),
    )
    assert created["ok"] is True, created
    record_id = created["data"]["id"]
    assert created["data"]["record"]["Project"] == looked_up["Project"]

    update_example = first_example(field_of(specs["update_project_time_transaction"], "data"))
    updated = connector.execute(
        "update_project_time_transaction",
        credential,
        fill("update_project_time_transaction", id=record_id, data=update_example),
    )
    assert updated["ok"] is True, updated
    assert updated["data"]["record"]["Quantity"] == update_example["Quantity"]

    select = first_example(field_of(specs["list_or_get_endpoint"], "select"))
    assert "crm/Accounts" in values["endpoints?method=GET"]
    assert set(select) <= set(values["endpoint_fields?endpoint={endpoint}"])
    listed = connector.execute(
        "list_or_get_endpoint",
        credential,
        fill("list_or_get_endpoint", endpoint="crm/Accounts", select=select, limit=500),
    )
    assert listed["ok"] is True, listed
    assert listed["data"]["count"] == sb.count(division, "crm/Accounts")
    assert set(listed["data"]["records"][0]) == set(select)

    assert "project/TimeTransactions" in values["endpoints?method=DELETE"]
    deleted = connector.execute(
        "delete_endpoint_record",
        credential,
        fill("delete_endpoint_record", endpoint="project/TimeTransactions", id=record_id),
    )
    assert deleted["ok"] is True, deleted
    assert sb.record(division, "project/TimeTransactions", record_id) is None
    for result in (created, updated, listed, deleted):
        scanner.assert_no_secrets(json.dumps(result), "an action result")

    # The triggers' forms, filled the same way, poll: the deletion above is handed over.
    assert "project/TimeTransactions" in values["watchable_endpoints?deletions=true"]
    watch = fill("record_deleted", endpoint="project/TimeTransactions", start="beginning")
    polled = connector.triggers.poll("record_deleted", credential, watch)
    assert polled["ok"] is True, polled
    assert [e["key"] for e in polled["data"]["events"]] == [record_id]
    assert connector.triggers.ack(credential, polled["data"]["checkpoint"]) is True
    scanner.assert_no_secrets(json.dumps(polled), "a poll result")
