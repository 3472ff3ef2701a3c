"""OData literals, /Date(ms)/ conversion and envelope unwrapping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exact_connector.exceptions import ExactError, InputError
from exact_connector.odata import (
    filter_literal,
    key_literal,
    normalize,
    parse_date,
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
