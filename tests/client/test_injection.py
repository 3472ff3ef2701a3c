"""I1-I9 at the client boundary: every URL from validated parts; headers and bodies guarded."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import httpx
import pytest
from client_harness import (
    ACCOUNTS,
    DIVISION,
    World,
    create_account,
    endpoint,
    get_accounts,
    register_secret,
)
from hostile_values import ENDPOINT_NAMES
from pydantic import SecretStr

from exact_connector import forms
from exact_connector.actions import ACTIONS, Step, resolve_endpoint
from exact_connector.catalog import catalog
from exact_connector.client import MAX_BODY_BYTES, ExactClient
from exact_connector.exceptions import InputError, TokenResponseInvalid, UnknownEndpoint
from exact_connector.odata import filter_literal, key_literal

GUID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"


def _no_requests(world: World) -> None:
    assert world.app.api_calls() == [], "an invalid input must not cost a request"


def _step(world: World, client: ExactClient) -> Step:
    return Step(
        client=client, division=DIVISION, deadline=world.clock.now() + 100, cursor_key=b"k" * 32
    )


# -- I1: GUID keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [GUID.upper(), "{" + GUID + "}", "urn:uuid:" + GUID, GUID.replace("-", "")],
    ids=["upper", "braced", "urn", "no-hyphens"],
)
def test_i1_guid_spellings_reach_the_sandbox_canonical(world: World, spelling: str) -> None:
    """Upper case, braces, urn:uuid: and no hyphens all become guid'<lower hyphenated>'."""
    client = world.client()
    url = client.url(endpoint(), DIVISION, key_literal(spelling, "Edm.Guid"))
    with pytest.raises(InputError):  # the record does not exist: 404 -> NOT_FOUND, an input error
        client.request("GET", url, endpoint=endpoint(), division=DIVISION)
    [seen] = world.app.api_calls()
    assert seen.path == f"/api/v1/{DIVISION}/crm/Accounts(guid'{GUID}')"


@pytest.mark.parametrize(
    "value",
    ["x' or 1 eq 1", GUID + "')/../x", "%27", "", " " + GUID, GUID + "\n", 42, None],
    ids=repr,
)
def test_i1_anything_else_is_invalid_input_with_no_request(world: World, value: object) -> None:
    """Injection attempts and junk: INVALID_INPUT at $.id, nothing sent."""
    with pytest.raises(InputError) as caught:
        key_literal(value, "Edm.Guid", "$.id")
    assert caught.value.errors[0]["path"] == "$.id"
    _no_requests(world)


@pytest.mark.parametrize(
    "literal",
    [
        "guid'x')/../../oauth2/token",
        f"guid'{GUID}')/../x",
        f"guid'{GUID.upper()}'",
        "'a'/'b'",
        "'a'b'",
        "1 or 1",
        "''",
    ],
)
def test_i1_the_client_refuses_a_key_literal_it_did_not_render(world: World, literal: str) -> None:
    """Defence in depth: url() accepts only what odata.key_literal produces."""
    with pytest.raises(InputError):
        world.client().url(endpoint(), DIVISION, literal)


# -- I2: divisions ----------------------------------------------------------------------------------


@pytest.mark.parametrize("division", [DIVISION, str(DIVISION)], ids=["int", "str"])
def test_i2_a_division_as_number_or_digits_is_accepted(world: World, division: object) -> None:
    """123 and "123" build the same URL."""
    url = world.client().url(endpoint(), division)  # type: ignore[arg-type]
    assert url.path == f"/api/v1/{DIVISION}/crm/Accounts"


@pytest.mark.parametrize(
    "division",
    ["123/../x", -1, 0, 1e3, 2**40, "１２３", " 12 ", "1_000", "+5", True, None, "", "0x10"],
    ids=repr,
)
def test_i2_anything_else_is_invalid_input(world: World, division: object) -> None:
    """int() alone would take some of these; the client takes ASCII digits in range only."""
    with pytest.raises(InputError) as caught:
        world.client().url(endpoint(), division)  # type: ignore[arg-type]
    assert caught.value.errors[0]["path"] == "$.division"
    _no_requests(world)


# -- I3: endpoints ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ENDPOINT_NAMES,
    ids=repr,
)
def test_i3_only_allow_listed_endpoint_names_pass(world: World, name: str) -> None:
    """The catalog and the typed-endpoint path both refuse; nothing is sent."""
    client = world.client()
    with pytest.raises(UnknownEndpoint):
        catalog().lookup(name)
    for method in ("GET", "DELETE"):
        with pytest.raises(InputError):
            resolve_endpoint(name, method, _step(world, client))
    _no_requests(world)


def test_i3_a_catalog_name_resolves_to_its_fixed_path(world: World) -> None:
    """crm/Accounts (any case) resolves to the catalog's path on the credential's origin."""
    url = world.client().url(catalog().lookup("CRM/accounts"), DIVISION)
    assert str(url) == f"https://start.exactonline.nl/api/v1/{DIVISION}/crm/Accounts"


# -- I4: filter literals ----------------------------------------------------------------------------

TRICKY_NAMES = ["O'Brien", "' or 1 eq 1 or '", "A & B # C % D + E ; F", "semi;colon'&#%+"]


@pytest.mark.parametrize("name", TRICKY_NAMES)
def test_i4_filter_values_reach_the_sandbox_as_exact_literals(world: World, name: str) -> None:
    """Quotes doubled; & # % + ; percent-encoded; the sandbox parses the literal back exactly."""
    client = world.client()
    created = create_account(client, name).json()["d"]
    create_account(client, name + " (other)")
    accounts = endpoint()
    wanted = f"Name eq {filter_literal(name, 'Edm.String')}"
    url = client.url(accounts, DIVISION, params={"$filter": wanted, "$select": "ID,Name"})
    rows = client.request("GET", url, endpoint=accounts, division=DIVISION).json()["d"]["results"]
    assert [row["ID"] for row in rows] == [created["ID"]]
    seen = world.app.requests("/crm/Accounts", "GET")[-1]
    assert seen.url.params["$filter"] == wanted
    if name == "O'Brien":
        assert wanted == "Name eq 'O''Brien'"


# -- I5, I6: field names and numbers ----------------------------------------------------------------


@pytest.mark.parametrize("select", [["Name;x"], ["Name eq 1"], ["Name)"], ["Nope"], ["Na me"]])
def test_i5_select_and_order_fields_come_from_the_entity(world: World, select: list[str]) -> None:
    """$select/$orderby names are checked against the endpoint's fields; nothing is sent."""
    step = _step(world, world.client())
    list_or_get = ACTIONS["list_or_get_endpoint"]
    with pytest.raises(InputError) as caught:
        list_or_get(step, {"endpoint": ACCOUNTS, "select": select})
    assert caught.value.errors[0]["path"].startswith("$.select")
    with pytest.raises(InputError):
        list_or_get(step, {"endpoint": ACCOUNTS, "order_by": select[0]})
    _no_requests(world)


def test_i5_known_fields_are_accepted(world: World) -> None:
    """Name,ID (any case) select exactly those fields."""
    step = _step(world, world.client())
    result = ACTIONS["list_or_get_endpoint"](
        step, {"endpoint": ACCOUNTS, "select": ["name", "ID"], "limit": 2}
    )
    assert [sorted(record) for record in result["records"]] == [["ID", "Name"]] * 2
    assert world.app.api_calls()[0].url.params["$select"] == "Name,ID"


@pytest.mark.parametrize(
    ("expression", "refused", "guess"),
    [
        ("Nme eq 'Acme'", "Nme", "Name"),
        ("Name eq 'x' or NoSuchField eq 1", "NoSuchField", None),
        ("substringof('x', Cty)", "Cty", "City"),
    ],
)
def test_i5_filter_fields_come_from_the_entity(
    world: World, expression: str, refused: str, guess: str | None
) -> None:
    """A field the endpoint lacks is refused at $.filter (with the likely one), nothing sent."""
    step = _step(world, world.client())
    with pytest.raises(InputError) as caught:
        ACTIONS["list_or_get_endpoint"](step, {"endpoint": ACCOUNTS, "filter": expression})
    [error] = caught.value.errors
    assert (error["path"], error["code"]) == ("$.filter", "unknown_field")
    hint = f" (did you mean {guess}?)" if guess else ""
    assert error["message"] == f"{refused} is not a field of {ACCOUNTS}{hint}"
    _no_requests(world)


def test_i5_every_unknown_field_of_a_list_is_refused_at_once_by_name(world: World) -> None:
    """A select, a filter and an order with mistakes in each: one error names them all, each at
    the input a person typed it in (order_by is one text field, not a list), nothing sent. Each
    used to stop at its first mistake, so a person met them one run at a time; order_by's said
    ``$.order_by[0][0]: not a field of ...`` without the name."""
    step = _step(world, world.client())
    data = {
        "endpoint": ACCOUNTS,
        "select": ["ID", "Nmae", "Cyty"],
        "filter": "Nope eq 1 and Blocked eq false and Cty eq 'x'",
        "order_by": "Name, Modifed desc",
    }
    with pytest.raises(InputError) as caught:
        ACTIONS["list_or_get_endpoint"](step, data)
    found = [(e["path"], e["message"]) for e in caught.value.errors]
    assert found == [
        ("$.select[1]", f"Nmae is not a field of {ACCOUNTS} (did you mean Name?)"),
        ("$.select[2]", f"Cyty is not a field of {ACCOUNTS} (did you mean City?)"),
        ("$.filter", f"Nope is not a field of {ACCOUNTS}"),
        ("$.filter", f"Cty is not a field of {ACCOUNTS} (did you mean City?)"),
        ("$.order_by", f"Modifed is not a field of {ACCOUNTS} (did you mean Modified?)"),
    ]
    assert {e["code"] for e in caught.value.errors} == {"unknown_field"}
    assert caught.value.message == (
        f"Invalid values at $.select[1]: Nmae is not a field of {ACCOUNTS} (did you mean Name?); "
        f"$.select[2]: Cyty is not a field of {ACCOUNTS} (did you mean City?); "
        f"$.filter: Nope is not a field of {ACCOUNTS} (and 2 more)."
    )
    _no_requests(world)


def test_i5_a_name_repeated_in_a_filter_is_refused_once(world: World) -> None:
    """``Nme eq 'x' or Nme eq 'y'``: one error, not one per use (the field showed it twice)."""
    step = _step(world, world.client())
    with pytest.raises(InputError) as caught:
        ACTIONS["list_or_get_endpoint"](
            step, {"endpoint": ACCOUNTS, "filter": "Nme eq 'x' or Nme eq 'y'"}
        )
    assert caught.value.errors == [
        {
            "path": "$.filter",
            "code": "unknown_field",
            "message": f"Nme is not a field of {ACCOUNTS} (did you mean Name?)",
        }
    ]
    _no_requests(world)


def test_i5_one_unknown_order_field_reads_as_before(world: World) -> None:
    """One mistake keeps the one-field message, now with the name and the likely field."""
    step = _step(world, world.client())
    with pytest.raises(InputError) as caught:
        ACTIONS["list_or_get_endpoint"](step, {"endpoint": ACCOUNTS, "order_by": "Nam desc"})
    assert caught.value.message == (
        f"Invalid value at $.order_by: Nam is not a field of {ACCOUNTS} (did you mean Name?)."
    )
    _no_requests(world)


def test_i5_known_filter_fields_are_sent_canonically_spelt(world: World) -> None:
    """Known names in any case are sent as Exact spells them (it reads them case-sensitively);
    functions, typed literals and string contents pass untouched."""
    step = _step(world, world.client())
    expression = "substringof('name eq 1', name) eq false and id ne guid'" + GUID + "'"
    result = ACTIONS["list_or_get_endpoint"](
        step, {"endpoint": ACCOUNTS, "filter": expression, "select": ["ID"], "limit": 1}
    )
    assert len(result["records"]) == 1
    sent = world.app.api_calls()[0].url.params["$filter"]
    assert sent == "substringof('name eq 1', Name) eq false and ID ne guid'" + GUID + "'"


def test_i5_a_list_filtered_or_ordered_on_a_field_its_bulk_twin_lacks_stays_on_the_endpoint(
    world: World,
) -> None:
    """crm/Accounts has Timestamp, bulk/CRM/Accounts has not: such a list is read from the
    endpoint asked for (the twin would refuse the field), both for a filter and an order."""
    step = _step(world, world.client())
    list_or_get = ACTIONS["list_or_get_endpoint"]
    for query in ({"filter": "Timestamp gt 1L"}, {"order_by": "Timestamp desc"}):
        list_or_get(step, {"endpoint": ACCOUNTS, "select": ["ID"], "limit": 100, **query})
    paths = {call.path for call in world.app.api_calls()}
    assert paths == {f"/api/v1/{DIVISION}/crm/Accounts"}


@pytest.mark.parametrize(
    "params",
    [
        {"$top": "-1"},
        {"$top": "0"},
        {"$top": "1000000000"},
        {"$top": "05"},
        {"$skip": "-1"},
        {"$skip": "1e3"},
        {"$select": "Name;x"},
        {"$orderby": "Name)"},
        {"$filter": "Name eq 'a'\r\nX-Evil: 1"},
        {"$format": "atom"},
        {"top": "5"},
        {"$inlinecount": "yes"},
    ],
    ids=lambda p: repr(p)[:40],
)
def test_i6_query_options_are_allow_listed_and_typed(world: World, params: dict[str, str]) -> None:
    """Unknown options and out-of-range or malformed values: INVALID_INPUT, nothing sent."""
    with pytest.raises(InputError):
        world.client().url(endpoint(), DIVISION, params=params)
    _no_requests(world)


def test_i6_a_top_of_5_is_sent(world: World) -> None:
    """ "5" is a valid $top and reaches the sandbox (which then answers 5 rows)."""
    client = world.client()
    url = client.url(endpoint(), DIVISION, params={"$top": "5", "$select": "ID"})
    response = client.request("GET", url, endpoint=endpoint(), division=DIVISION)
    assert len(response.json()["d"]["results"]) == 5


@pytest.mark.parametrize("limit", [-1, 0, 10**9, "5"], ids=repr)
def test_i6_the_action_schema_bounds_limit(limit: object) -> None:
    """The list action's limit is a whole number from 1 to 100000 (checked before any request)."""
    errors = forms.validate(
        "list_or_get_endpoint", {"division": DIVISION, "endpoint": ACCOUNTS, "limit": limit}
    )
    assert [error["path"] for error in errors] == ["$.limit"]


# -- I7: headers ------------------------------------------------------------------------------------


def test_i7_no_caller_supplied_header_exists_to_inject_into() -> None:
    """request() takes no headers: Authorization, Host and Cookie cannot be overridden."""
    assert "headers" not in inspect.signature(ExactClient.request).parameters


def test_i7_the_sandbox_receives_only_the_clients_own_headers(world: World) -> None:
    """Exactly the fixed set of headers, with the bearer from the vault."""
    client = world.client()
    get_accounts(client)
    create_account(client, "I7")
    get, post = world.app.api_calls()
    base = {
        "host",
        "accept",
        "accept-encoding",
        "connection",
        "user-agent",
        "authorization",
        "x-client-request-id",
    }
    assert set(get.headers) == base
    assert set(post.headers) == base | {"content-type", "prefer", "content-length"}
    assert get.headers["authorization"].startswith("Bearer AAEAA")
    assert "cookie" not in get.headers


def test_i7_a_cookie_set_by_an_answer_is_never_sent_back(world: World) -> None:
    """The HTTP client a credential's steps share keeps no cookie: one step's session (or a
    server's tracking cookie) never rides along with the next step's bearer token."""

    def with_cookie(request: httpx.Request, call: Callable[[], httpx.Response]) -> httpx.Response:
        answer = call()
        answer.headers["Set-Cookie"] = "session=step-one; Path=/; HttpOnly"
        return answer

    world.app.tamper = with_cookie
    client = world.client()
    get_accounts(client)
    get_accounts(client)
    first, second = world.app.api_calls()
    assert "cookie" not in first.headers and "cookie" not in second.headers


@pytest.mark.parametrize("token", ["AAEAA\r\nX-Injected: 1", "AAEAA\x00", "AAEAA tail", "AAEAAé"])
def test_i7_a_stored_access_token_that_would_break_the_header_is_not_sent(
    world: World, token: str
) -> None:
    """A damaged stored token: refused before sending (h11 would echo it in an error)."""
    credential = world.credential()
    world.vault.update_tokens(
        credential.id,
        expected_version=credential.version,
        access_token=SecretStr(register_secret(token + "-padding")),
        refresh_token=credential.refresh_token,  # type: ignore[arg-type]
        issued_at=world.clock.now(),
        expires_at=world.clock.now() + 600,
    )
    with pytest.raises(TokenResponseInvalid) as caught:
        get_accounts(world.client())
    assert "AAEAA" not in caught.value.message
    _no_requests(world)


# -- I8, I9: bodies and schemas ---------------------------------------------------------------------


def _deep(levels: int) -> dict[str, object]:
    body: dict[str, object] = {"Name": "deep"}
    for _ in range(levels):
        body = {"Name": "deep", "Nested": body}
    return body


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (_deep(10_000), "depth"),
        ({"Name": "x" * (MAX_BODY_BYTES + 1)}, "size"),
        ({"Name": "big", "Notes": "é" * (MAX_BODY_BYTES // 2)}, "size"),
        ({"Name": "nan", "Amount": math.nan}, "number"),
        ({"Name": "inf", "Amount": math.inf}, "number"),
        ({"Name": "set", "Tags": {1, 2}}, "type"),
    ],
    ids=["depth-10000", "10-MB", "multibyte", "nan", "inf", "set"],
)
def test_i8_bodies_too_deep_too_big_or_not_json_are_refused(
    world: World, body: dict[str, object], code: str
) -> None:
    """INVALID_INPUT at $.data (or the member under it) with a code (never a RecursionError
    traceback); nothing sent."""
    client = world.client()
    accounts = endpoint()
    with pytest.raises(InputError) as caught:
        client.request(
            "POST", client.url(accounts, DIVISION), endpoint=accounts, division=DIVISION, json=body
        )
    (error,) = caught.value.errors
    assert error["code"] == code
    assert error["path"] in ("$.data", "$.data.Amount") or error["path"].startswith(
        "$.data.Nested.Nested"
    )
    _no_requests(world)


def test_i8_a_body_at_the_depth_limit_is_sent(world: World) -> None:
    """Nesting up to the limit is fine (the sandbox then judges the fields)."""
    client = world.client()
    accounts = endpoint()
    with pytest.raises(InputError):  # the sandbox refuses the unknown field: 400, not our guard
        client.request(
            "POST",
            client.url(accounts, DIVISION),
            endpoint=accounts,
            division=DIVISION,
            json=_deep(30),
        )
    assert len(world.app.api_calls()) == 1


def test_i8_i9_the_create_schema_strips_nothing_and_refuses_extras_and_ids() -> None:
    """additionalProperties:false refuses an ID and unknown fields; format uuid is enforced."""
    data = {"Item": "nope", "Project": GUID, "Quantity": 1, "ID": GUID, "Extra": 1}
    errors = forms.validate("create_project_time_transaction", {"division": DIVISION, "data": data})
    assert {(error["path"], error["code"]) for error in errors} >= {
        ("$.data.ID", "additionalProperties"),
        ("$.data.Extra", "additionalProperties"),
        ("$.data.Item", "format"),
    }
    assert all("nope" not in error["message"] for error in errors)


def test_i9_a_non_uuid_id_is_refused_by_the_schema() -> None:
    """The update action's id is a canonical GUID (a FormatChecker, not decoration)."""
    errors = forms.validate(
        "update_project_time_transaction",
        {"division": DIVISION, "id": "not-a-guid", "data": {"Quantity": 2}},
    )
    assert [error["path"] for error in errors] == ["$.id"]


def test_i4_over_the_wire_the_encoded_query_decodes_to_the_literal(world: World) -> None:
    """The raw query the transport carries is percent-encoded, with no bare & # + ; or quote."""
    client = world.client()
    wanted = f"Name eq {filter_literal(TRICKY_NAMES[3], 'Edm.String')}"
    url = client.url(endpoint(), DIVISION, params={"$filter": wanted})
    raw = url.raw_path.decode("ascii").split("?", 1)[1]
    assert "#" not in raw and "'" not in raw.replace("%27", "")
    assert raw.count("&") == 0
    assert httpx.URL(str(url)).params["$filter"] == wanted
