"""Specification of exact_connector.schemas: the schema files, formats, patterns and field errors."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from exact_connector.catalog import ENDPOINT_PATTERN
from exact_connector.manifest import check_schemas
from exact_connector.schemas import (
    SCHEMA_BASE,
    SchemaSet,
    declarations_root,
    merge,
    uri_for,
)
from exact_connector.validation import ecma_pattern, field_errors, json_path, parse_date_time

REPO = Path(__file__).resolve().parent.parent
SCHEMA_FILES = sorted(str(p.relative_to(REPO)) for p in (REPO / "schemas").rglob("*.json"))
DIVISION = "schemas/defs/division.json"


@functools.cache
def schema_set() -> SchemaSet:
    """The package's own schemas, loaded once."""
    return SchemaSet.load(declarations_root())


def test_declarations_root_holds_the_manifest_and_schemas() -> None:
    """The one root resolver finds connector.yaml and schemas/ (source tree or wheel)."""
    root = declarations_root()
    assert (root / "connector.yaml").is_file()
    assert (root / "schemas" / "credentials.schema.json").is_file()


def test_every_schema_file_is_loaded() -> None:
    """Every JSON file under schemas/ is in the schema set, and nothing else is."""
    assert len(SCHEMA_FILES) >= 18
    assert sorted(schema_set().documents) == SCHEMA_FILES


@pytest.mark.parametrize("file", SCHEMA_FILES)
def test_schema_file_is_valid_2020_12(file: str) -> None:
    """Each schema file is a valid JSON Schema 2020-12 document with $schema and $id."""
    document = json.loads((REPO / file).read_text("utf-8"))
    Draft202012Validator.check_schema(document)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["$id"] == uri_for(file)
    assert document["$id"].startswith(SCHEMA_BASE)


def test_declarations_have_no_problems() -> None:
    """Meta-schema, house rules and $ref resolution find nothing wrong in the shipped schemas."""
    assert check_schemas(schema_set()) == []


def test_every_ref_resolves() -> None:
    """No $ref in any schema file dangles."""
    assert schema_set().dangling_refs() == []


@pytest.mark.parametrize("file", SCHEMA_FILES)
def test_bundled_schema_is_self_contained(file: str) -> None:
    """A bundled schema has no $ref or $defs left and is still valid 2020-12."""
    bundled = schema_set().bundle(file)
    text = json.dumps(bundled)
    assert '"$ref"' not in text and '"$defs"' not in text
    Draft202012Validator.check_schema(bundled)


def test_a_dangling_ref_is_reported_with_file_and_path(tmp_path: Path) -> None:
    """A $ref to a missing file is found, named by file and JSON path."""
    folder = tmp_path / "schemas"
    folder.mkdir()
    document = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_BASE + "a.json",
        "properties": {"x": {"$ref": "defs/missing.json"}},
    }
    (folder / "a.json").write_text(json.dumps(document))
    found = SchemaSet.load(tmp_path).dangling_refs()
    assert found == [
        {
            "file": "schemas/a.json",
            "path": '$.properties.x["$ref"]',
            "code": "$ref",
            "message": "does not resolve",
        }
    ]


def test_unreadable_schema_files_are_problems_not_crashes(tmp_path: Path) -> None:
    """Invalid JSON, duplicate keys and non-objects are recorded with their file."""
    folder = tmp_path / "schemas"
    folder.mkdir()
    (folder / "bad.json").write_text("{ nope")
    (folder / "dup.json").write_text('{"a": 1, "a": 2}')
    (folder / "list.json").write_text("[]")
    problems = {p["file"]: (p["code"], p["message"]) for p in SchemaSet.load(tmp_path).problems}
    assert problems == {
        "schemas/bad.json": ("json", "is not valid JSON (line 1, column 3)"),
        "schemas/dup.json": ("json", "has a duplicate key"),
        "schemas/list.json": ("type", "must be a JSON object"),
    }


# --- formats ----------------------------------------------------------------------------------


def _format_errors(fmt: str, value: object) -> list[str]:
    schemas = schema_set()
    validator = schemas.validator(DIVISION).evolve(schema={"type": "string", "format": fmt})
    return [str(e.validator) for e in validator.iter_errors(value)]


@pytest.mark.parametrize(
    ("fmt", "value"),
    [
        ("uuid", "3f2504e0-4f89-11d3-9a0c-0305e82c3301"),
        ("uuid", "3F2504E0-4F89-11D3-9A0C-0305E82C3301"),
        ("date-time", "2024-05-01T09:00:00Z"),
        ("date-time", "2024-05-01T09:00:00.123+02:00"),
        ("date-time", "2024-05-01t09:00:00z"),
        ("date-time", "2024-05-01T09:00:00.123456789-23:59"),
        # Exact's own form (its lists write it): the wall-clock time, no offset; and as typed
        ("date-time", "2024-05-01T09:00:00"),
        ("date-time", "2024-05-01T09:00:00.5"),
        ("date-time", "2024-05-01T09:00"),
        ("date-time", "2024-05-01"),
        ("date", "2024-02-29"),
        ("uri", "https://engine.example.com/oauth/callback?x=1"),
        ("uri", "http://127.0.0.1:8080/cb"),
    ],
)
def test_format_accepts(fmt: str, value: str) -> None:
    """Well-formed values pass their format."""
    assert _format_errors(fmt, value) == []


@pytest.mark.parametrize(
    ("fmt", "value"),
    [
        ("uuid", "{3f2504e0-4f89-11d3-9a0c-0305e82c3301}"),
        ("uuid", "3f2504e04f8911d39a0c0305e82c3301"),
        ("uuid", "x' or 1 eq 1"),
        ("date-time", "2024-02-30T09:00:00Z"),
        ("date-time", "2024-02-30"),
        ("date-time", "2024-05-01T09"),
        ("date-time", "2024-05-01T09:00.5"),
        ("date-time", "2024-05-01Z"),
        ("date-time", "2024-05-01T09:00:00+0200"),
        ("date-time", "2024-05-01T24:00:00Z"),
        ("date-time", "2024-05-01 09:00:00Z"),
        ("date-time", "2016-12-31T23:59:60Z"),  # a leap second: no Exact field can hold one
        ("date-time", "2024-05-01T09:00:00+24:00"),
        ("date", "2023-02-29"),
        ("date", "20240501"),
        ("uri", "not a uri"),
        ("uri", "https://exa mple.com"),
        ("uri", "https://example.com:99999999/"),
        ("uri", "https://example.com/%zz"),
        ("uri", "https://bücher.example/"),
    ],
)
def test_format_rejects(fmt: str, value: str) -> None:
    """Malformed values fail their format: formats are enforced, not decorative."""
    assert _format_errors(fmt, value) == ["format"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T09:00:00", datetime(2024, 5, 1, 9)),
        ("2024-05-01T09:30", datetime(2024, 5, 1, 9, 30)),
        ("2024-05-01", datetime(2024, 5, 1)),
        ("2024-05-01T09:00:00.25", datetime(2024, 5, 1, 9, 0, 0, 250_000)),
        ("2024-05-01T09:00:00Z", datetime(2024, 5, 1, 9, tzinfo=UTC)),
        (
            "2024-05-01T09:00:00-02:30",
            datetime(2024, 5, 1, 9, tzinfo=timezone(-timedelta(hours=2.5))),
        ),
    ],
)
def test_a_date_time_without_an_offset_is_exacts_wall_clock_time(
    text: str, expected: datetime
) -> None:
    """Exact answers with wall-clock times and the connector's lists write them without an
    offset, so that form (and a day, or minutes, as a person types them) reads as written, naive;
    an offset gives an aware datetime."""
    moment = parse_date_time(text)
    assert moment == expected
    assert moment is not None and moment.tzinfo == expected.tzinfo


@pytest.mark.parametrize(
    ("fmt", "value", "shown"),
    [
        ("date-time", "1 May", "2024-05-01T09:00:00"),
        ("date", "1 May", "2024-05-01"),
        ("uuid", "42", "3f2504e0-4f89-11d3-9a0c-0305e82c3301"),
        ("uri", "cb x", "https://"),
    ],
)
def test_a_format_error_shows_the_form_to_write(fmt: str, value: str, shown: str) -> None:
    """The message says what to write instead ("must be a valid date-time" did not)."""
    validator = schema_set().validator(DIVISION).evolve(schema={"type": "string", "format": fmt})
    (error,) = field_errors(validator.iter_errors(value))
    assert error["code"] == "format"
    assert shown in error["message"]
    assert value not in error["message"]


def test_stock_jsonschema_would_not_enforce_uuid() -> None:
    """Why the format checker matters: without it, a non-UUID passes (RELIABILITY I9)."""
    schema = {"type": "string", "format": "uuid"}
    assert Draft202012Validator(schema).is_valid("not-a-uuid")
    assert _format_errors("uuid", "not-a-uuid") == ["format"]


# --- patterns and integers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("^[0-9]+$", "12", True),
        ("^[0-9]+$", "12\n", False),
        ("^a[$]$", "a$", True),
        (r"^a\$$", "a$", True),
        (r"^a\$$", "a$\n", False),
    ],
)
def test_pattern_dollar_is_the_end_of_the_text(pattern: str, text: str, matches: bool) -> None:
    """Patterns follow ECMA-262: $ does not match before a final newline."""
    assert bool(ecma_pattern(pattern).search(text)) is matches


@pytest.mark.parametrize("value", [1.0, 1e3, True, "1"])
def test_integer_means_a_json_integer(value: object) -> None:
    """1.0, 1e3 and booleans are not integers here (jsonschema alone accepts 1.0)."""
    validator = schema_set().validator(DIVISION).evolve(schema={"type": "integer"})
    assert [e.validator for e in validator.iter_errors(value)] == ["type"]


@pytest.mark.parametrize("division", [1, 123, 2147483647, "1", "123", "2147483647"])
def test_division_accepts(division: object) -> None:
    """A division is an integer 1..2^31-1, or the same written in ASCII digits (I2)."""
    assert schema_set().errors(DIVISION, division) == []


BAD_DIVISION_TEXT = ["１２３", " 12 ", "1_000", "-1", "1e3", "12\n", "0", "0123", "", "123/../x"]
BAD_DIVISION_VALUES = ["2147483648", 0, -1, 2**40, 1e3, 1.0, True, None]


@pytest.mark.parametrize("division", [*BAD_DIVISION_TEXT, *BAD_DIVISION_VALUES])
def test_division_rejects(division: object) -> None:
    """Unicode digits, spaces, separators, signs, exponents and out-of-range values fail (I2)."""
    errors = schema_set().errors(DIVISION, division)
    assert [(e["path"], e["code"]) for e in errors] == [("$", "anyOf")]
    assert "division number" in errors[0]["message"]


@given(st.integers(min_value=-(10**11), max_value=10**11))
@example(2147483647)
@example(2147483648)
@example(1999999999)
@example(2147483639)
def test_division_string_pattern_is_exactly_the_range(number: int) -> None:
    """The division's digit pattern accepts exactly the numbers 1..2147483647."""
    valid = 1 <= number <= 2**31 - 1
    assert (schema_set().errors(DIVISION, str(number)) == []) is valid
    assert (schema_set().errors(DIVISION, number) == []) is valid


def test_endpoint_pattern_matches_the_catalog() -> None:
    """The schema's service/Endpoint pattern is the catalog's ENDPOINT_PATTERN, anchored."""
    schema = schema_set().schema("schemas/defs/service_endpoint.json")
    assert schema["pattern"] == f"^{ENDPOINT_PATTERN.pattern}$"


# --- field errors -----------------------------------------------------------------------------


def test_json_path_hides_keys_that_are_not_plain_names() -> None:
    """Paths show plain names and indexes; any other key a user typed shows as [*]."""
    assert json_path(["data", "Quantity"]) == "$.data.Quantity"
    assert json_path(["records", 3, "ID"]) == "$.records[3].ID"
    assert json_path(["a b", "x" * 80]) == "$[*][*]"
    assert json_path(["$ref"], reveal=True) == '$["$ref"]'


def test_errors_are_built_without_the_value() -> None:
    """Messages come from the schema side; the rejected value appears nowhere (RELIABILITY J3)."""
    secret = "s3cr3t-VALUE-0123456789"
    instance = {"division": secret, "data": {"Quantity": secret, "Notes": 5, secret: 1}}
    errors = schema_set().errors(
        "schemas/actions/create_project_time_transaction.input.json", instance
    )
    assert secret not in json.dumps(errors)
    assert {(e["path"], e["code"]) for e in errors} == {
        ("$.division", "anyOf"),
        ("$.data.Quantity", "type"),
        ("$.data.Notes", "type"),
        ("$.data[*]", "additionalProperties"),
        ("$.data.Item", "required"),
        ("$.data.Project", "required"),
    }


def test_each_missing_required_field_is_its_own_error() -> None:
    """A missing field is reported at its own path, e.g. $.data.Quantity."""
    errors = schema_set().errors(
        "schemas/actions/create_project_time_transaction.input.json", {"division": 1, "data": {}}
    )
    assert [(e["path"], e["code"], e["message"]) for e in errors] == [
        ("$.data.Item", "required", "is required"),
        ("$.data.Project", "required", "is required"),
        ("$.data.Quantity", "required", "is required"),
    ]


def test_merge_keeps_both_sides_when_keywords_clash() -> None:
    """A $ref target and siblings with a clashing assertion become allOf; annotations override."""
    target = {"type": "object", "properties": {"a": {}}, "title": "T"}
    assert merge(target, {"title": "S", "description": "d"}) == {
        "type": "object",
        "properties": {"a": {}},
        "title": "S",
        "description": "d",
    }
    clashing = merge(target, {"title": "S", "properties": {"b": {}}})
    assert clashing == {"title": "S", "allOf": [target, {"properties": {"b": {}}}]}


def _examples(node: object, path: str) -> list[tuple[str, dict[str, object], object]]:
    found = []
    if isinstance(node, dict):
        found += [(path, node, example) for example in node.get("examples", [])]
        for key, value in node.items():
            if key not in ("examples", "enum", "const", "default"):
                found += _examples(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found += _examples(item, f"{path}/{index}")
    return found


@pytest.mark.parametrize("file", SCHEMA_FILES)
def test_every_example_fits_its_own_schema(file: str) -> None:
    """Every example in every schema is valid where it stands: engines fill forms from them."""
    schemas = schema_set()
    stock = schemas.validator(DIVISION)
    for path, schema, value in _examples(schemas.bundle(file), "#"):
        ours = {k: v for k, v in schema.items() if k != "$schema"}  # keep our validator class
        errors = [e.validator for e in stock.evolve(schema=ours).iter_errors(value)]
        assert errors == [], f"{file} {path}"
