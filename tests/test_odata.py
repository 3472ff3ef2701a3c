"""OData literals, /Date(ms)/ conversion and envelope unwrapping."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exact_connector.exceptions import ExactError, InputError
from exact_connector.odata import (
    DATE_PATTERN,
    filter_literal,
    filter_names,
    key_literal,
    normalize,
    parse_date,
    record_normalizer,
    unwrap_page,
    unwrap_record,
)

GUID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"


@pytest.mark.parametrize(
    "value",
    [GUID, GUID.upper(), "{" + GUID + "}", "urn:uuid:" + GUID, GUID.replace("-", "")],
    ids=["canonical", "upper", "braced", "urn", "no-hyphens"],
)
def test_guid_forms_are_canonicalised(value: str) -> None:
    """Accepted GUID spellings all render as guid'<lower-case hyphenated>'."""
    assert key_literal(value, "Edm.Guid") == f"guid'{GUID}'"


@pytest.mark.parametrize(
    "value",
    [
        "x' or 1 eq 1",
        GUID + "')/../x",
        GUID + "'",
        "(" + GUID + ")",
        GUID[:8] + "/" + GUID[9:],
        GUID.replace("-", "%2F", 1),
        " " + GUID,
        GUID + "\n",
        GUID[:-1] + "１",  # full-width digit
        "%27",
        "",
        "{" + GUID,
        12,
        None,
    ],
    ids=repr,
)
def test_guid_injection_attempts_are_rejected(value: object) -> None:
    """Quotes, parentheses, slashes, %2F, whitespace and full-width digits never reach a URL."""
    with pytest.raises(InputError) as caught:
        key_literal(value, "Edm.Guid", "$.id")
    assert caught.value.errors == [
        {
            "path": "$.id",
            "code": caught.value.errors[0]["code"],
            "message": caught.value.errors[0]["message"],
        }
    ]
    assert isinstance(value, int | type(None)) or not value or value not in caught.value.message


@pytest.mark.parametrize("value", ["123", 123, "0"])
def test_integer_keys_are_bare_ascii_digits(value: object) -> None:
    """Integers render bare."""
    assert key_literal(value, "Edm.Int32") == str(int(str(value)))


@pytest.mark.parametrize(
    "value",
    ["１２３", " 12 ", "1_000", "-1", "1e3", "12/", "12)", "%32", "0x10", True, 2**40, 1.5, -5],
    ids=repr,
)
def test_integer_keys_reject_anything_else(value: object) -> None:
    """int() would accept full-width digits, spaces and underscores; we do not."""
    with pytest.raises(InputError):
        key_literal(value, "Edm.Int32")


def test_string_keys_double_quotes_and_reject_url_syntax() -> None:
    """Strings are quoted with ' doubled; slashes, %, ? and control characters are refused."""
    assert key_literal("O'Brien", "Edm.String") == "'O''Brien'"
    assert key_literal("EUR", "Edm.String") == "'EUR'"
    for bad in ["a/b", "a%2Fb", "a?b", "a#b", "a\\b", "a\r\nb", ""]:
        with pytest.raises(InputError):
            key_literal(bad, "Edm.String")


def test_unsupported_key_type_is_a_clear_input_error() -> None:
    """Endpoints whose key type we cannot render refuse addressing by ID."""
    with pytest.raises(InputError) as caught:
        key_literal("1", "Edm.Binary")
    assert caught.value.errors[0]["code"] == "unsupported_key"


def test_filter_literals_by_type() -> None:
    """Filter values render per Edm type; a quote stays inside its literal."""
    assert filter_literal("O'Brien", "Edm.String") == "'O''Brien'"
    assert filter_literal("' or 1 eq 1 or '", "Edm.String") == "''' or 1 eq 1 or '''"
    assert filter_literal(True, "Edm.Boolean") == "true"
    assert filter_literal(2.5, "Edm.Double") == "2.5"
    assert filter_literal(None, "Edm.String") == "null"
    assert filter_literal("2017-05-31", "Edm.DateTime") == "datetime'2017-05-31T00:00:00'"
    assert filter_literal(GUID.upper(), "Edm.Guid") == f"guid'{GUID}'"


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        ("Name eq 'Acme'", ["Name"]),
        ("Name eq 'Nope and Code eq 1'", ["Name"]),  # words inside a string are its text
        ("Name eq 'O''Brien' or Code ne ''", ["Name", "Code"]),
        (f"ID eq guid'{GUID}' and Date ge datetime'2024-01-01T00:00:00'", ["ID", "Date"]),
        ("substringof('x', Name) and year(Modified) eq 2024", ["Name", "Modified"]),
        (
            "not Blocked and (Quantity add 1 gt 2.5m or Quantity le -1.5e3)",
            ["Blocked", "Quantity", "Quantity"],
        ),
        ("Timestamp gt 123L", ["Timestamp"]),
        ("Account/Name eq 'x'", ["Account"]),  # the navigation property, not its target's field
        ("Name EQ 'x' AND IsTime Eq true", ["Name", "IsTime"]),
        ("Name eq", ["Name"]),  # malformed, but its one name is still a name: Exact says the rest
        ("true", []),
        ("Price eq INF or Price eq -INF or Price ne NaN", ["Price", "Price", "Price"]),
    ],
)
def test_filter_names_are_the_properties_an_expression_compares(
    expression: str, names: list[str]
) -> None:
    found = filter_names(expression)
    assert found is not None
    assert [name for _, name in found] == names
    assert all(expression[start:].startswith(name) for start, name in found)


@pytest.mark.parametrize(
    "expression", ["Name eq 'unterminated", "$it eq 1", "3abc eq 1", "Name eq 1;", 'Name eq "x"']
)
def test_filter_names_gives_up_on_syntax_it_does_not_know(expression: str) -> None:
    """Nothing is judged (None) where the reader is not sure of every word."""
    assert filter_names(expression) is None


def format_date(value: datetime | str) -> str:
    """The inverse of parse_date: ISO 8601 (naive = Exact wall-clock) as ``/Date(ms)/``."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    milliseconds = (moment - datetime(1970, 1, 1)) // timedelta(milliseconds=1)
    return f"/Date({milliseconds})/"


def test_date_round_trip() -> None:
    """/Date(1640995200000)/ is 2022-01-01T00:00:00 and back."""
    assert parse_date("/Date(1640995200000)/") == "2022-01-01T00:00:00"
    assert format_date("2022-01-01T00:00:00") == "/Date(1640995200000)/"
    assert format_date(datetime(2022, 1, 1, tzinfo=UTC)) == "/Date(1640995200000)/"
    assert parse_date("/Date(-1000)/") == "1969-12-31T23:59:59"
    assert parse_date("not a date") is None
    assert parse_date("/Date(999999999999999)/") is None  # past year 9999: left as Exact sent it
    assert parse_date("/Date(86400000)/") == "1970-01-02T00:00:00"
    assert parse_date("/Date(1640995199999)/") == "2021-12-31T23:59:59.999"


@given(st.integers(min_value=-(10**12), max_value=4 * 10**12))
def test_date_round_trip_property(milliseconds: int) -> None:
    """Any millisecond epoch survives ISO and back."""
    text = f"/Date({milliseconds})/"
    iso = parse_date(text)
    assert iso is not None
    assert format_date(iso) == text


def test_unwrap_the_three_envelope_shapes() -> None:
    """{"d":{"results":[…]}}, {"d":[…]} and {"d":{…}} all unwrap."""
    page = unwrap_page({"d": {"results": [{"a": 1}], "__next": "https://x/y", "__count": "7"}})
    assert page.records == [{"a": 1}] and page.next == "https://x/y" and page.count == 7
    assert unwrap_page({"d": [{"a": 1}, {"a": 2}]}).records == [{"a": 1}, {"a": 2}]
    assert unwrap_record({"d": {"a": 1}}) == {"a": 1}
    assert unwrap_record({"d": [{"a": 1}]}) == {"a": 1}
    assert unwrap_record({"d": {"results": [{"a": 1}]}}) == {"a": 1}


@pytest.mark.parametrize(
    "payload", [None, [], {"x": 1}, {"d": 3}, {"d": "s"}, {"d": {"results": []}}]
)
def test_unwrap_rejects_other_shapes(payload: object) -> None:
    """Anything else is an ExactError that does not echo the body."""
    with pytest.raises(ExactError):
        unwrap_record(payload)


def test_normalize_removes_metadata_and_deferred_and_converts_dates() -> None:
    """Output records are plain: ISO dates, no __metadata/__deferred, expanded lists as lists."""
    record = {
        "__metadata": {"uri": "https://x", "type": "Exact.Web.Api.Models.Account"},
        "Code": "                 8",
        "Created": "/Date(1640995200000)/",
        "BankAccounts": {"__deferred": {"uri": "https://x/BankAccounts"}},
        "Lines": {"results": [{"__metadata": {}, "Date": "/Date(0)/"}]},
    }
    assert normalize(record) == {
        "Code": "                 8",
        "Created": "2022-01-01T00:00:00",
        "Lines": [{"Date": "1970-01-01T00:00:00"}],
    }


# -- the fast paths against the straightforward ones -----------------------------------------------

_USUAL_DATE = re.compile(r"/Date\(([0-9]+)\)/", re.ASCII)


def plainly_parsed(text: str) -> str | None:
    """What parse_date means, written the plain way: datetime arithmetic on the milliseconds."""
    usual = _USUAL_DATE.fullmatch(text)
    match = usual or DATE_PATTERN.fullmatch(text)
    if match is None:
        return None
    try:
        moment = datetime(1970, 1, 1) + timedelta(milliseconds=int(match.group(1)))
        offset = None if usual else match.group(2)
        if offset:
            minutes = int(offset[1:3]) * 60 + int(offset[3:])
            zone = timezone(timedelta(minutes=minutes if offset[0] == "+" else -minutes))
            moment = moment.replace(tzinfo=UTC).astimezone(zone)
    except (OverflowError, ValueError):  # past year 9999, or more digits than int() takes
        return None
    return moment.isoformat(timespec="milliseconds" if moment.microsecond else "seconds")


def plainly_normalized(value: Any) -> Any:
    """What normalize means, written the plain way."""
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get("results"), list):
            return [plainly_normalized(item) for item in value["results"]]
        return {
            key: plainly_normalized(item)
            for key, item in value.items()
            if not (isinstance(item, dict) and (key == "__metadata" or "__deferred" in item))
        }
    if isinstance(value, list):
        return [plainly_normalized(item) for item in value]
    if isinstance(value, str) and value.startswith("/Date("):
        return plainly_parsed(value) or value
    return value


_ODD_DATES = [
    "/Date(" + "9" * 5000 + ")/",  # more digits than int() converts
    "/Date(0000000000000000001)/",
    "/Date(-62135596800001)/",  # a millisecond before year 1
    "/Date(253402300800000)/",  # the first millisecond after year 9999
    "/Date(253402300799999+0100)/",
    "/Date(+5)/",
    "/Date(1 )/",
    "/Date(\u0663)/",
    "/Date(1)/ ",
    "/Date()/",
    "/Date(",
    "/Date(12)",
]
date_texts = st.one_of(
    st.integers(min_value=-(10**14), max_value=10**16).map(lambda ms: f"/Date({ms})/"),
    st.tuples(
        st.integers(min_value=-(10**13), max_value=10**14),
        st.sampled_from(["+", "-"]),
        st.integers(min_value=0, max_value=23),
        st.integers(min_value=0, max_value=59),
    ).map(lambda t: f"/Date({t[0]}{t[1]}{t[2]:02d}{t[3]:02d})/"),
    st.sampled_from(_ODD_DATES),
    st.text(max_size=30).map(lambda text: "/Date(" + text),
    st.text(max_size=30),
)


@given(date_texts)
def test_parse_date_agrees_with_datetime_arithmetic(text: str) -> None:
    """The table-driven /Date(ms)/ conversion writes what datetime arithmetic writes, and leaves
    alone (None) what it cannot convert, however many digits it has."""
    assert parse_date(text) == plainly_parsed(text)


@pytest.mark.parametrize("text", _ODD_DATES)
def test_odd_date_texts_are_converted_plainly_or_left_alone(text: str) -> None:
    """Each odd /Date( text converts as datetime arithmetic would, or is left as it came."""
    assert normalize(text) == (plainly_parsed(text) or text)


FIELDS = ["ID", "Name", "Created", "Modified", "Lines", "Notes", "Unknown"]
DATES, COLLECTIONS, KNOWN = ["Created", "Modified"], ["Lines"], FIELDS[:-1]
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), date_texts)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from([*FIELDS, "results", "__deferred"]), inner, max_size=3),
    ),
    max_leaves=8,
)
records = st.dictionaries(
    st.sampled_from([*FIELDS, "__metadata"]),
    st.one_of(
        json_values,
        st.just({"__deferred": {"uri": "https://x/Lines"}}),
        st.lists(st.dictionaries(st.sampled_from(FIELDS), scalars, max_size=3)).map(
            lambda lines: {"results": lines}
        ),
    ),
)


def plainly_shaped(record: dict[str, Any]) -> dict[str, Any]:
    """What record_normalizer(DATES, COLLECTIONS, KNOWN) means, written the plain way: only the
    date and navigation fields are touched, unless a field outside KNOWN came."""
    if not set(record) <= {*KNOWN, "__metadata"}:
        return dict(plainly_normalized(record))
    shaped = {}
    for key, value in record.items():
        if key == "__metadata":
            continue
        if key in COLLECTIONS and isinstance(value, dict):
            if "__deferred" in value:
                continue
            value = plainly_normalized(value)
        if key in DATES and isinstance(value, str) and value.startswith("/Date("):
            value = plainly_parsed(value) or value
        shaped[key] = value
    return shaped


@given(records)
def test_record_normalizer_agrees_with_the_plain_rules(record: dict[str, Any]) -> None:
    """The typed fast path returns what the plain rules return, keys in the same order."""
    expected = plainly_shaped(record)
    shaped = record_normalizer(DATES, COLLECTIONS, KNOWN)([record])[0]
    assert list(shaped.items()) == list(expected.items())


@given(st.lists(records, max_size=6))
def test_a_page_is_normalised_record_by_record_in_its_own_list(page: list[dict[str, Any]]) -> None:
    """A page of typed and untyped records (fields outside KNOWN) is shaped in place, in order,
    each as it would be alone."""
    expected = [plainly_shaped(record) for record in page]
    given_list = list(page)
    shaped = record_normalizer(DATES, COLLECTIONS, KNOWN)(given_list)
    assert shaped is given_list
    assert [list(r.items()) for r in shaped] == [list(r.items()) for r in expected]


@given(json_values)
def test_normalize_agrees_with_the_plain_rules(value: Any) -> None:
    """The generic path returns what the plain rules return."""
    assert normalize(value) == plainly_normalized(value)
