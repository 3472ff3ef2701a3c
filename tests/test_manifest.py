"""Specification of exact_connector.manifest: connector.yaml as validated, frozen models."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydantic
import pytest

import exact_connector
from exact_connector.exceptions import InputError, ManifestError
from exact_connector.manifest import Manifest, _default_manifest, load_manifest
from exact_connector.schemas import declarations_root

REPO = Path(__file__).resolve().parent.parent
BROKEN = Path(__file__).resolve().parent / "fixtures" / "broken_manifest"

ACTIONS = [  # in the product's order, as the manifest lists them
    (
        "create_project_time_transaction",
        "Create Project Time Transactions",
        "This action will create a time transaction for project.",
    ),
    (
        "update_project_time_transaction",
        "Update Project Time Transaction",
        "This action will update a time transaction for project.",
    ),
    (
        "delete_endpoint_record",
        "Delete Endpoint with ID",
        "This action will delete the endpoint provided.",
    ),
    (
        "list_or_get_endpoint",
        "List or Get Endpoint",
        "This action will either list all the endpoints or a single one of them.",
    ),
]
REGIONS = [
    ("https://start.exactonline.nl", "Netherlands", "nl"),
    ("https://start.exactonline.be", "Belgium", "be"),
    ("https://start.exactonline.de", "Germany", "de"),
    ("https://start.exactonline.co.uk", "United Kingdom", "uk"),
    ("https://start.exactonline.com", "United States", "us"),
    ("https://start.exactonline.es", "Spain", "es"),
    ("https://start.exactonline.fr", "France", "fr"),
]


@pytest.fixture
def manifest() -> Manifest:
    return load_manifest()


def copy_declarations(tmp_path: Path) -> Path:
    """A writable copy of the real connector.yaml and schemas/ to break on purpose."""
    shutil.copy(REPO / "connector.yaml", tmp_path / "connector.yaml")
    shutil.copytree(REPO / "schemas", tmp_path / "schemas")
    return tmp_path


def problems(root: Path) -> list[dict[str, str]]:
    with pytest.raises(ManifestError) as caught:
        load_manifest(root)
    return caught.value.errors


def test_identity(manifest: Manifest) -> None:
    """The manifest names the connector and carries the package's version."""
    assert (manifest.id, manifest.name) == ("exact-online", "Exact Online")
    assert manifest.version == exact_connector.__version__
    assert manifest.description and manifest.categories


def test_actions_are_worded_exactly_as_the_product_documents_them(manifest: Manifest) -> None:
    """The four actions, in order, with the product documentation's titles and descriptions."""
    assert [(a.id, a.title, a.description) for a in manifest.actions] == ACTIONS


@pytest.mark.parametrize(
    ("action_id", "read_only", "idempotent", "destructive"),
    [
        ("create_project_time_transaction", False, False, False),
        ("delete_endpoint_record", False, True, True),
        ("list_or_get_endpoint", True, True, False),
        ("update_project_time_transaction", False, True, True),
    ],
)
def test_behaviour_flags(
    manifest: Manifest, action_id: str, read_only: bool, idempotent: bool, destructive: bool
) -> None:
    """Each action declares whether it reads only, may be repeated, and destroys data."""
    action = manifest.action(action_id)
    assert (action.read_only, action.idempotent, action.destructive) == (
        read_only,
        idempotent,
        destructive,
    )


def test_token_policy_is_data(manifest: Manifest) -> None:
    """Exact's token rules come from the manifest, typed."""
    policy = manifest.token_policy
    assert policy.access_ttl == 600
    assert policy.min_refresh_age == 570
    assert policy.refresh_window == 30
    assert policy.single_use_refresh is True
    assert policy.refresh_idle_ttl_days == 30
    assert policy.refresh_warning_days == 7


def test_auth_types(manifest: Manifest) -> None:
    """Two auth types: interactive sign-in with a redirect URI, headless with a refresh token."""
    kinds = {a.id: (a.grant, a.interactive, a.fields) for a in manifest.auth_types}
    assert kinds == {
        "oauth2_authorization_code": ("authorization_code", True, ("redirect_uri",)),
        "oauth2_refresh_token": ("refresh_token", False, ("refresh_token",)),
    }


def test_server_urls_are_the_seven_regions_in_order(manifest: Manifest) -> None:
    """Seven regional hosts labelled by country; the same paths on each."""
    assert [(s.url, s.label, s.region) for s in manifest.server_urls] == REGIONS
    paths = manifest.api_paths
    assert (paths.auth, paths.token, paths.api) == (
        "/api/oauth2/auth",
        "/api/oauth2/token",
        "/api/v1",
    )


def test_test_connect_checks(manifest: Manifest) -> None:
    """Test Connect checks the token, the user, the divisions, rate-limit headroom, token age."""
    checks = [(c.id, c.endpoint) for c in manifest.test_connect]
    assert checks == [
        ("token", None),
        ("user", "current/Me"),
        ("divisions", "system/Divisions"),
        ("rate_limit", None),
        ("refresh_token_age", None),
    ]


@pytest.mark.parametrize("action_id", [a[0] for a in ACTIONS])
def test_sample_output_validates(manifest: Manifest, action_id: str) -> None:
    """Every action's sample output fits its output schema."""
    action = manifest.action(action_id)
    assert manifest.schemas.errors(action.output_schema["$id"], action.sample) == []


@pytest.mark.parametrize(
    "output",
    [
        {"record": {"ID": "x", "__metadata": {"uri": "u"}}},
        {"record": {}, "warnings": [{"code": "endpoint_not_in_catalog", "message": "m"}]},
        {"records": [], "count": 0, "next_cursor": None},
        {"records": [{"ID": 1}], "count": 1, "next_cursor": "c1.eyJwIjoyfQ"},
    ],
    ids=["record", "record-with-warning", "empty-list", "list-with-cursor"],
)
def test_list_or_get_output_has_two_shapes(manifest: Manifest, output: dict[str, object]) -> None:
    """List or Get returns either {record} or {records, count, next_cursor}; records are open."""
    schema_id = manifest.action("list_or_get_endpoint").output_schema["$id"]
    assert manifest.schemas.errors(schema_id, output) == []


@pytest.mark.parametrize(
    "output",
    [
        {"record": {}, "records": [], "count": 0, "next_cursor": None},
        {"records": [], "count": -1, "next_cursor": None},
        {"records": []},
        {"record": {}, "warnings": ["a plain string"]},
    ],
    ids=["both-shapes", "negative-count", "no-cursor", "string-warning"],
)
def test_list_or_get_output_rejects_mixed_shapes(
    manifest: Manifest, output: dict[str, object]
) -> None:
    """Neither shape can be mixed with the other or left half-filled."""
    schema_id = manifest.action("list_or_get_endpoint").output_schema["$id"]
    assert manifest.schemas.errors(schema_id, output) != []


def test_schemas_on_the_models_are_bundled(manifest: Manifest) -> None:
    """The models carry self-contained schemas an engine can use with any validator."""
    for schema in [manifest.credentials_schema, *(a.input_schema for a in manifest.actions)]:
        assert "$ref" not in str(schema)
    assert "division" in manifest.action("list_or_get_endpoint").input_schema["properties"]


def test_unknown_action_is_an_input_error_at_action(manifest: Manifest) -> None:
    """Asking for an action that does not exist names $.action and lists the real ones."""
    with pytest.raises(InputError) as caught:
        manifest.action("drop_everything")
    assert caught.value.errors[0]["path"] == "$.action"
    assert "list_or_get_endpoint" in caught.value.hint
    assert "drop_everything" not in caught.value.message


def test_manifest_is_frozen(manifest: Manifest) -> None:
    """The loaded manifest cannot be changed in place."""
    with pytest.raises(pydantic.ValidationError):
        manifest.version = "9.9.9"  # type: ignore[misc]


def test_default_manifest_is_loaded_once() -> None:
    """The package's own manifest is cached per process."""
    assert load_manifest() is load_manifest()


def test_the_bundled_declarations_pass_every_check() -> None:
    """The package's own declarations, which a start no longer re-checks, pass every check here
    and load to the same manifest as the unchecked default."""
    checked = load_manifest(declarations_root())
    at_start = _default_manifest.__wrapped__()  # what a start loads (uncached: tests share it)
    assert checked.model_dump() == at_start.model_dump()


def test_to_json_is_plain_data(manifest: Manifest) -> None:
    """to_json() gives JSON types only, with each action's schemas."""
    data = manifest.to_json()
    assert [a["title"] for a in data["actions"]] == [a[1] for a in ACTIONS]
    assert data["actions"][0]["input_schema"]["$id"].endswith(".input.json")
    assert data["server_urls"][0] == {"url": REGIONS[0][0], "label": "Netherlands", "region": "nl"}


# --- broken declarations ------------------------------------------------------------------------


def test_broken_fixture_reports_every_problem_with_file_and_path() -> None:
    """All problems of the broken fixture come back at once, each with its file and JSON path."""
    found = {(p["file"], p["path"], p["code"]) for p in problems(BROKEN)}
    schema = "schemas/actions/broken_action.input.json"
    assert found == {
        ("connector.yaml", "$.name", "required"),
        ("connector.yaml", "$.version", "pattern"),
        ("connector.yaml", "$.colour", "additionalProperties"),
        ("connector.yaml", "$.server_urls[0].url", "pattern"),
        ("connector.yaml", "$.actions[0].title", "required"),
        ("connector.yaml", "$.actions[0].read_only", "type"),
        (schema, "$.type", "anyOf"),
        (schema, '$["$id"]', "$id"),
        (schema, "$.properties.gone", "false_schema"),
        (schema, '$.properties.division["$ref"]', "$ref"),
    }


def test_manifest_error_message_counts_problems() -> None:
    """The error's message says how many problems there are; its details list them."""
    with pytest.raises(ManifestError) as caught:
        load_manifest(BROKEN)
    assert caught.value.message == "The connector declarations have 10 problems."
    assert caught.value.details["errors"] == caught.value.errors
    assert caught.value.exit_code == 4


def test_missing_manifest_file(tmp_path: Path) -> None:
    """A root without connector.yaml or schemas says so instead of crashing."""
    found = {(p["file"], p["code"]) for p in problems(tmp_path)}
    assert found == {("connector.yaml", "missing"), ("schemas", "missing")}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id: a\nid: b\n", "has a duplicate key (line 2, column 1)"),
        ("id: [unclosed\n", "is not valid YAML (line 2, column 1)"),
    ],
    ids=["duplicate-key", "syntax"],
)
def test_yaml_problems_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    """Duplicate keys and syntax errors are reported with a line, never silently resolved."""
    root = copy_declarations(tmp_path)
    (root / "connector.yaml").write_text(text)
    assert [p["message"] for p in problems(root) if p["file"] == "connector.yaml"] == [message]


@pytest.mark.parametrize("text", ["", "# nothing\n", "- a list\n", "just text\n"])
def test_a_manifest_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    """An empty or non-mapping connector.yaml is a problem at $, not a crash."""
    root = copy_declarations(tmp_path)
    (root / "connector.yaml").write_text(text)
    errors = problems(root)
    assert errors and {p["file"] for p in errors} == {"connector.yaml"}
    assert {p["code"] for p in errors} <= {"type", "required"}


def test_invalid_sample_is_reported_in_the_manifest(tmp_path: Path) -> None:
    """A sample that does not fit its output schema is a problem at its path in connector.yaml."""
    root = copy_declarations(tmp_path)
    text = (root / "connector.yaml").read_text().replace("      deleted: true\n", "")
    (root / "connector.yaml").write_text(text)
    assert problems(root) == [
        {
            "file": "connector.yaml",
            "path": "$.actions[2].sample.deleted",
            "code": "required",
            "message": "is required",
        }
    ]


def test_regions_must_match_the_credential_form(tmp_path: Path) -> None:
    """Dropping a region from the manifest but not the form is caught: one list, two places."""
    root = copy_declarations(tmp_path)
    text = (root / "connector.yaml").read_text()
    text = text.replace(
        '  - { url: "https://start.exactonline.fr", label: France, region: fr }\n', ""
    )
    (root / "connector.yaml").write_text(text)
    assert [(p["file"], p["path"], p["code"]) for p in problems(root)] == [
        ("schemas/credentials.schema.json", "$.properties.server_url", "enum")
    ]


def test_unknown_ui_hint_is_reported(tmp_path: Path) -> None:
    """x-ui hints must use the vocabulary of defs/x_ui.json."""
    root = copy_declarations(tmp_path)
    path = root / "schemas" / "defs" / "guid.json"
    path.write_text(path.read_text().replace('"widget": "guid"', '"widget": "slider"'))
    assert [(p["file"], p["path"], p["code"]) for p in problems(root)] == [
        ("schemas/defs/guid.json", '$["x-ui"].widget', "enum")
    ]


def test_missing_schema_file_is_reported(tmp_path: Path) -> None:
    """An action naming a schema file that does not exist is a problem at that key."""
    root = copy_declarations(tmp_path)
    (root / "schemas" / "actions" / "delete_endpoint_record.output.json").unlink()
    assert [(p["file"], p["path"], p["code"]) for p in problems(root)] == [
        ("connector.yaml", "$.actions[2].output_schema", "missing")
    ]


Change = Callable[[dict[str, Any]], None]


@pytest.mark.parametrize(
    ("file", "change", "expected"),
    [
        (
            "actions/delete_endpoint_record.output.json",
            lambda d: d["properties"]["id"].update({"$ref": "../defs/nope.json"}),
            ("schemas/actions/delete_endpoint_record.output.json", "$ref"),
        ),
        (
            "actions/delete_endpoint_record.output.json",
            lambda d: d.update(properties=["not", "a", "mapping"]),
            ("schemas/actions/delete_endpoint_record.output.json", "type"),
        ),
        (
            "defs/service_endpoint.json",
            lambda d: d.update(pattern="(unclosed"),
            ("schemas/defs/service_endpoint.json", "format"),
        ),
        ("defs/x_ui.json", lambda d: d.update(type=5), ("schemas/defs/x_ui.json", "anyOf")),
        (
            "connector.schema.json",
            lambda d: d.update(required="id"),
            ("schemas/connector.schema.json", "type"),
        ),
        (
            "defs/division.json",
            lambda d: d.update({"$ref": 12}),
            ("schemas/defs/division.json", "type"),
        ),
        (
            "credentials.schema.json",
            lambda d: d["x-ui"].update(order="connector_name"),
            ("schemas/credentials.schema.json", "type"),
        ),
        (
            "defs/guid.json",
            lambda d: d.update({"$ref": "guid.json"}),
            ("schemas/defs/guid.json", "$ref"),
        ),
    ],
    ids=[
        "dangling-output-ref",
        "properties-list",
        "bad-regex",
        "broken-x-ui",
        "broken-meta",
        "ref-int",
        "order-not-list",
        "ref-cycle",
    ],
)
def test_broken_schema_files_are_reported_never_crash(
    tmp_path: Path, file: str, change: Change, expected: tuple[str, str]
) -> None:
    """However a schema file is broken, loading reports it as a problem instead of crashing."""
    root = copy_declarations(tmp_path)
    path = root / "schemas" / file
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))
    assert expected in {(p["file"], p["code"]) for p in problems(root)}
