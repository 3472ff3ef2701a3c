"""The compiled "valid" check never accepts what the full validator refuses (exact_connector.fastcheck).

Each bundled form schema is compiled, and generated inputs -- valid ones drawn from the schema,
then mutated with values chosen to sit on the edges where the two validators could read JSON
differently (booleans against numbers, whole floats, tuples, text against patterns and formats) --
are judged by both. On plain JSON, the only inputs the compiled check is ever given, the two
must agree; off it they may not (``{"division": 1.0}`` is valid to draft 7), which is why
:func:`~exact_connector.validation.scan` keeps those from it.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from exact_connector import forms
from exact_connector.fastcheck import COMPILE_AFTER, compile_check
from exact_connector.manifest import load_manifest
from exact_connector.schemas import declarations_root
from exact_connector.validation import scan

MANIFEST = load_manifest()
FORMS = list(MANIFEST.form_names())
GUID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
EDGES = st.one_of(
    st.sampled_from([True, False, None, 0, 1, -1, 2, 10, 1.0, 2.0, 1.5, 2147483647, 2147483648]),
    st.sampled_from(["", " ", "1", "01", "100001", "x" * 101, "12\n", "crm/Accounts", GUID]),
    st.sampled_from(["2024-02-29", "2023-02-29", "2024-01-01T10:00:00Z", "now", "beginning"]),
    st.sampled_from(["https://start.exactonline.nl", "http://127.0.0.1:1", "Name asc, ID"]),
    st.sampled_from([(1, 2), [], [1, 1], ["ID", "ID"], ["ID", "Name"], {}, {"a": 1}]),
    st.text(max_size=12),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False),
)
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def bundle(name: str) -> dict[str, Any]:
    return MANIFEST.schemas.bundle(forms._schema(name, MANIFEST)["$id"])


def full_errors(name: str, instance: Any) -> list[Any]:
    ref = forms._schema(name, MANIFEST)["$id"]
    problems, _plain = scan(instance)
    return problems or list(MANIFEST.schemas.validator(ref).iter_errors(instance))


CHECKS = {name: compile_check(bundle(name)) for name in FORMS}


def test_every_bundled_form_has_a_compiled_check() -> None:
    assert [name for name, check in CHECKS.items() if check is None] == []


@functools.cache
def _generated(name: str) -> st.SearchStrategy[Any]:
    schema = bundle(name)
    schema.pop("dependentSchemas", None)  # not drawn by hypothesis-jsonschema: mutated into below
    return from_schema(schema, custom_formats={"uuid": st.uuids().map(str)})


def _mutate(data: st.DataObject, instance: Any) -> Any:
    """The instance with a member replaced, added or removed, at the top or one level down."""
    changed = copy.deepcopy(instance)
    target = changed
    if isinstance(changed, dict) and changed and data.draw(st.booleans()):
        inner = [key for key, value in changed.items() if isinstance(value, dict)]
        if inner:
            target = changed[data.draw(st.sampled_from(sorted(inner)))]
    if not isinstance(target, dict):
        return data.draw(EDGES)
    how = data.draw(st.sampled_from(["replace", "add", "remove"]))
    if how == "remove" and target:
        del target[data.draw(st.sampled_from(sorted(target)))]
    elif how == "replace" and target:
        target[data.draw(st.sampled_from(sorted(target)))] = data.draw(EDGES)
    else:
        names = ["id", "endpoint", "data", "division", "extra", "select", "top", "raw"]
        target[data.draw(st.sampled_from(names))] = data.draw(EDGES)
    return changed


@pytest.mark.parametrize("name", FORMS)
@SETTINGS
@given(data=st.data())
def test_the_compiled_check_agrees_with_the_full_validator(name: str, data: st.DataObject) -> None:
    check = CHECKS[name]
    assert check is not None
    instance = data.draw(_generated(name))
    for _ in range(data.draw(st.integers(min_value=0, max_value=3))):
        instance = _mutate(data, instance)
    before = copy.deepcopy(instance)
    valid = not full_errors(name, instance)
    plain = scan(instance)[1]
    fast = check(instance)
    assert instance == before  # nothing (a default, say) was written into the input
    if plain:  # only plain JSON is ever given to the compiled check
        assert fast == valid, instance


@pytest.mark.parametrize(
    ("value", "plain"),
    [
        ({"a": [1, "x", None, True, 1.5]}, True),
        ({"a": 1.0}, False),  # an integer to draft 7, not to the strict rule
        ({"a": (1, 2)}, False),  # an array to fastjsonschema, not to jsonschema
        ({1: "x"}, False),
        ({"a": {1, 2}}, False),
        ({"a": float("nan")}, False),
    ],
)
def test_scan_says_which_inputs_are_plain_json(value: Any, plain: bool) -> None:
    assert scan(value)[1] is plain


def test_a_schema_is_compiled_after_repeated_use_and_errors_stay_the_same() -> None:
    manifest = load_manifest(declarations_root())  # loaded afresh: its counters start at zero
    name = "list_or_get_endpoint"
    good = {"division": 100001, "endpoint": "project/TimeTransactions", "id": GUID}
    bad = {**good, "division": 1.0, "top": True}
    first_bad = forms.validate(name, bad, manifest)
    assert first_bad and forms.validate(name, good, manifest) == []
    ref = forms._schema(name, manifest)["$id"]
    assert ref not in manifest.schemas._fast
    for _ in range(COMPILE_AFTER):
        assert forms.validate(name, good, manifest) == []
    assert manifest.schemas._fast[ref] is not None
    assert forms.validate(name, good, manifest) == []
    assert forms.validate(name, bad, manifest) == first_bad
    assert forms.validate(name, {**good, "division": True}, manifest) != []


def test_a_keyword_it_does_not_know_turns_the_compiled_check_off() -> None:
    assert compile_check({"type": "object", "patternProperties": {"^x": {}}}) is None
    assert compile_check({"type": "string", "format": "email"}) is None
    assert compile_check({"enum": [1, 2]}) is None  # True == 1 in Python, not in JSON
    assert compile_check({"type": "integer", "enum": [1, 2]}) is not None
    assert compile_check({"type": "string", "pattern": "^a$|^b$"}) is None
    check = compile_check({"type": "string", "pattern": "^[0-9]+$"})
    assert check is not None and check("12") and not check("12\n")
