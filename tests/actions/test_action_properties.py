"""Properties of ``Connector.execute`` over every action's input schema (hypothesis).

For inputs drawn from each action's bundled input schema, and for mutated and random ones, the
result is always an ActionResult envelope (never an exception), every error carries a code from
the error tree, and an input refused as invalid or for its division never reached the transport.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from actions_harness import Bench
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from exact_connector import exceptions, forms
from exact_connector.catalog import catalog
from exact_connector.manifest import load_manifest

ACTIONS = sorted(action.id for action in load_manifest().actions)
REFUSED_UNSENT = frozenset({"invalid_input", "division_not_allowed"})
CATEGORIES = frozenset({"user", "config", "transient", "system"})
TIME_TRANSACTIONS = "project/TimeTransactions"
MISSING = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
HOUR = 3601.0  # past the governor's error-budget hour: every example starts with a clean budget


def _codes(cls: type[exceptions.ExactConnectorError]) -> set[str]:
    return {cls.code}.union(*(_codes(sub) for sub in cls.__subclasses__()))


KNOWN_CODES = frozenset(_codes(exceptions.ExactConnectorError))
SETTINGS = settings(
    max_examples=500,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)

# -- strategies ----------------------------------------------------------------------------------


_ANNOTATIONS = frozenset(
    {"$schema", "$id", "title", "description", "examples", "default", "x-ui", "x-error-message"}
)
_CLOSED_OBJECT = frozenset(
    {"type", "properties", "required", "additionalProperties", "minProperties"}
)
FORMATS = {"uuid": st.uuids().map(str)}


def from_json_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """``from_schema``, with closed objects assembled from their properties' strategies.

    hypothesis-jsonschema rebuilds every property's strategy on each draw of an object (regexes
    included), which made a 17-field Data Manager cost ~60 ms a draw; a closed object of known
    properties is the same distribution built once.
    """
    keywords = set(schema) - _ANNOTATIONS
    if schema.get("type") != "object" or schema.get("additionalProperties") is not False:
        return from_schema(schema, custom_formats=FORMATS)
    if not keywords <= _CLOSED_OBJECT:
        return from_schema(schema, custom_formats=FORMATS)
    required = set(schema.get("required", ()))
    fields = {name: from_json_schema(sub) for name, sub in schema.get("properties", {}).items()}
    strategy = st.fixed_dictionaries(
        {name: fields[name] for name in fields if name in required},
        optional={name: fields[name] for name in fields if name not in required},
    )
    least = schema.get("minProperties", 0)
    if not least:
        return strategy
    one = st.sampled_from(sorted(fields)).flatmap(
        lambda name: fields[name].map(lambda v: {name: v})
    )
    return (
        st.tuples(one, strategy)
        .map(lambda pair: {**pair[1], **pair[0]})
        .filter(lambda data: len(data) >= least)
    )


def _schema_strategy(action: str) -> st.SearchStrategy[dict[str, Any]]:
    """Inputs valid under the action's bundled input schema.

    hypothesis-jsonschema does not apply ``dependentSchemas`` (list: an ``id`` excludes the list
    options), so that rule is applied here.
    """
    schema = dict(load_manifest().action(action).input_schema)
    exclusive = schema.pop("dependentSchemas", {}).get("id", {}).get("properties", {})
    strategy = from_json_schema(schema)
    if not exclusive:
        return strategy
    return strategy.map(
        lambda data: {k: v for k, v in data.items() if k not in exclusive} if "id" in data else data
    )


def _with_division(divisions: list[int]) -> st.SearchStrategy[Any]:
    """A quarter of the time keep the drawn division; otherwise one the credential was granted."""
    granted = st.sampled_from(divisions).flatmap(lambda d: st.sampled_from([d, str(d)]))
    return st.one_of(st.none(), granted, granted, granted)


def _with_real_references(
    bench: Bench, action: str, inputs: dict[str, Any], draw: Any
) -> dict[str, Any]:
    """The input with values the sandbox holds (catalog endpoints, existing keys) drawn in.

    Purely random keys and endpoints almost always answer 404; these reach the other paths:
    records created, updated, deleted and read.
    """
    division = bench.divisions[0]
    changed = {**inputs, "division": division}

    def pick(values: list[Any]) -> Any:
        # An index, not sampled_from: the lists shrink as examples delete records, and hypothesis
        # needs each draw to have the same shape from one example to the next.
        return values[draw(st.integers(0, 1 << 16)) % len(values)] if values else MISSING

    if action == "create_project_time_transaction":
        hour_types = [r["ID"] for r in bench.sb.records(division, "logistics/Items") if r["IsTime"]]
        projects = [r["ID"] for r in bench.sb.records(division, "project/Projects")]
        changed["data"] = {
            **inputs["data"],
            "Project": pick(projects),
            "Item": pick(hour_types),
        }
        return changed
    if action == "update_project_time_transaction":
        changed["id"] = pick([r["ID"] for r in bench.sb.records(division, TIME_TRANSACTIONS)])
        return changed
    method = "DELETE" if action == "delete_endpoint_record" else "GET"
    endpoint = catalog().lookup(draw(st.sampled_from([e.id for e in catalog().options(method)])))
    changed["endpoint"] = endpoint.id
    if method == "DELETE" or ("id" in changed and endpoint.is_record_endpoint):
        keys = [r.get(str(endpoint.primary_key)) for r in bench.sb.records(division, endpoint.id)]
        changed["id"] = pick([key for key in keys if key is not None])
    elif "id" in changed:
        del changed["id"]
    return changed


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
JUNK = st.one_of(
    JSON,
    st.text(alphabet=st.characters(codec=None), max_size=60),  # unicode, surrogates included
    st.text(alphabet="\x00\x1f\x7f/\\?#%'\" ", min_size=1, max_size=20),
    st.integers(min_value=1, max_value=64).map(lambda n: "x" * (n * 4096)),  # up to 256 KiB
    st.sampled_from([-1, 0, 2**31, 2**63, 1.5, float("nan"), True, [], {}]),
)


def _mutated(action: str) -> st.SearchStrategy[Any]:
    """Valid inputs with a field replaced by junk, an unknown field added, or a field dropped;
    and random JSON values of any shape."""

    def mutate(data: dict[str, Any], how: str, key: str, junk: Any) -> dict[str, Any]:
        changed = dict(data)
        names = sorted(changed) or ["division"]
        target = names[hash(key) % len(names)]
        if how == "replace":
            changed[target] = junk
        elif how == "nest" and isinstance(changed.get("data"), dict) and changed["data"]:
            inner = dict(changed["data"])
            inner[sorted(inner)[hash(key) % len(inner)]] = junk
            changed["data"] = inner
        elif how == "add":
            changed[key or "extra"] = junk
        else:
            changed.pop(target, None)
        return changed

    mutations = st.builds(
        mutate,
        _schema_strategy(action),
        st.sampled_from(["replace", "nest", "add", "drop"]),
        st.text(max_size=10),
        JUNK,
    )
    return st.one_of(mutations, st.dictionaries(st.text(max_size=20), JSON, max_size=6), JUNK)


# -- properties ----------------------------------------------------------------------------------


def _assert_envelope(action: str, result: Any) -> None:
    assert isinstance(result, dict) and result["action"] == action
    assert isinstance(result["ok"], bool)
    assert {"api_calls", "duration_ms", "rate_limit"} <= set(result["meta"])
    assert set(result["meta"]) <= {"api_calls", "duration_ms", "rate_limit", "request_id"}
    assert all(isinstance(v, int | str) for v in result["meta"]["rate_limit"].values())
    if result["ok"]:
        assert "data" in result and "error" not in result
        return
    error = result["error"]
    assert error["code"] in KNOWN_CODES, error
    assert error["category"] in CATEGORIES
    assert isinstance(error["retryable"], bool) and error["message"] and error["hint"]
    assert len(json.dumps(result)) < 20_000, "an error echoed a large input"


def _execute(bench: Bench, action: str, inputs: Any) -> tuple[dict[str, Any], int]:
    before = bench.calls
    result = bench.connector.execute(action, bench.credential_id, inputs)
    json.dumps(result)  # an envelope is JSON, whatever came in
    event("ok" if result["ok"] else result["error"]["code"])  # --hypothesis-show-statistics
    return result, bench.calls - before


VALID = {action: _schema_strategy(action) for action in ACTIONS}
INVALID = {action: _mutated(action) for action in ACTIONS}


@pytest.mark.parametrize("action", ACTIONS)
@SETTINGS
@given(data=st.data())
def test_inputs_from_the_schema_always_give_an_envelope(
    bench: Bench, action: str, data: st.DataObject
) -> None:
    """Schema-valid input: an envelope with a known code; a refusal sent nothing; no system error."""
    inputs = data.draw(VALID[action], label="inputs")
    division = data.draw(_with_division(bench.divisions), label="granted division")
    if division is not None:
        inputs = {**inputs, "division": division}
    if data.draw(st.booleans(), label="real references"):
        inputs = _with_real_references(bench, action, inputs, data.draw)
    assert forms.validate(action, inputs) == [], "the generator and the validator disagree"
    bench.clock.advance(HOUR)

    result, sent = _execute(bench, action, inputs)

    _assert_envelope(action, result)
    if not result["ok"]:
        assert result["error"]["category"] != "system", result["error"]
        if result["error"]["code"] in REFUSED_UNSENT:
            assert sent == 0, result["error"]
    assert result["meta"]["api_calls"] <= sent


@pytest.mark.parametrize("action", ACTIONS)
@SETTINGS
@given(data=st.data())
def test_mutated_and_random_inputs_never_reach_the_transport(
    bench: Bench, action: str, data: st.DataObject
) -> None:
    """Invalid input of any shape: an envelope; when refused as invalid, nothing was sent."""
    inputs = data.draw(INVALID[action], label="inputs")
    invalid = bool(forms.validate(action, inputs))

    result, sent = _execute(bench, action, inputs)

    _assert_envelope(action, result)
    if invalid:
        assert result["error"]["code"] == "invalid_input", result["error"]
    if not result["ok"] and result["error"]["code"] in REFUSED_UNSENT:
        assert sent == 0 and result["meta"]["api_calls"] == 0
