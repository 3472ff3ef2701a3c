"""JSON only when asked for: Accept, Content-Type, the Atom Exact answers otherwise, and the
bare-array ``{"d":[…]}`` form (API-FACTS §4 "Headers" and "Envelope")."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx
import pytest
from sandbox_harness import DIVISION, client_for, new_hours, recorded

from exact_connector.clock import ManualClock
from exact_connector.sandbox import Sandbox

ACCOUNTS = f"/api/v1/{DIVISION}/crm/Accounts"
HOURS = f"/api/v1/{DIVISION}/project/TimeTransactions"
ATOM = "{http://www.w3.org/2005/Atom}"
D = "{http://schemas.microsoft.com/ado/2007/08/dataservices}"
M = "{http://schemas.microsoft.com/ado/2007/08/dataservices/metadata}"


def _xml(answer: httpx.Response) -> ET.Element:
    return ET.fromstring(answer.content)


def _properties(entry: ET.Element) -> dict[str, ET.Element]:
    found = entry.find(f"{ATOM}content/{M}properties")
    assert found is not None
    return {element.tag.removeprefix(D): element for element in found}


# -- Accept --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "accept",
    [None, "*/*", "application/atom+xml", "application/xml"],
    ids=["no-accept", "any", "atom", "xml"],
)
def test_without_accept_json_a_list_is_an_atom_feed(api: httpx.Client, accept: str | None) -> None:
    """Exact answers XML/Atom unless Accept asks for JSON."""
    headers = {"Accept": accept} if accept else {}
    del api.headers["Accept"]
    answer = api.get(ACCOUNTS, params={"$top": "2"}, headers=headers)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/atom+xml;type=feed")
    assert _xml(answer).tag == f"{ATOM}feed"


@pytest.mark.parametrize(
    "accept",
    ["application/json", "application/json;odata=verbose", "text/html, application/json;q=0.9"],
    ids=["json", "json-with-parameters", "json-among-others"],
)
def test_accept_json_gets_json(api: httpx.Client, accept: str) -> None:
    """Any media range application/json selects JSON."""
    answer = api.get(ACCOUNTS, params={"$top": "1"}, headers={"Accept": accept})
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["d"]["results"]


def test_the_atom_feed_carries_the_same_records_as_the_json(api: httpx.Client) -> None:
    """Entries with id = __metadata.uri, typed properties, ISO dates, links and the next page."""
    params = {"$select": "ID,Name,Created,IsSupplier,BankAccounts"}
    as_json = api.get(ACCOUNTS, params=params).json()["d"]
    feed = _xml(api.get(ACCOUNTS, params=params, headers={"Accept": "application/atom+xml"}))
    entries = feed.findall(f"{ATOM}entry")
    assert len(entries) == len(as_json["results"]) == 60
    first, mine = entries[0], as_json["results"][0]
    assert first.findtext(f"{ATOM}id") == mine["__metadata"]["uri"]
    category = first.find(f"{ATOM}category")
    assert category is not None and category.get("term") == "Exact.Web.Api.Models.Account"
    properties = _properties(first)
    assert properties["Name"].text == mine["Name"]
    assert properties["ID"].get(f"{M}type") == "Edm.Guid"
    assert properties["IsSupplier"].text == str(mine["IsSupplier"]).lower()
    assert properties["Created"].get(f"{M}type") == "Edm.DateTime"
    assert properties["Created"].text is not None and "T" in properties["Created"].text
    related = [link.get("title") for link in first.findall(f"{ATOM}link") if link.get("title")]
    assert related == ["BankAccounts"]
    next_link = [link for link in feed.findall(f"{ATOM}link") if link.get("rel") == "next"]
    assert next_link[0].get("href") == as_json["__next"]


def test_one_record_without_accept_json_is_an_atom_entry(api: httpx.Client) -> None:
    """GET by key answers <entry>, null fields as m:null."""
    record = api.get(ACCOUNTS, params={"$top": "1"}).json()["d"]["results"][0]
    answer = api.get(
        f"{ACCOUNTS}(guid'{record['ID']}')", headers={"Accept": "application/atom+xml"}
    )
    assert answer.headers["content-type"].startswith("application/atom+xml;type=entry")
    properties = _properties(_xml(answer))
    nulls = {name for name, element in properties.items() if element.get(f"{M}null") == "true"}
    assert nulls == {name for name, value in record.items() if value is None}


def test_errors_without_accept_json_are_odata_xml_with_an_empty_lang(api: httpx.Client) -> None:
    """<m:error><m:code/><m:message xml:lang="">…</m:message></m:error>, as the JSON one."""
    answer = api.get(f"{ACCOUNTS}(guid'dsadsds')", headers={"Accept": "*/*"})
    assert (answer.status_code, answer.headers["content-type"]) == (
        400,
        "application/xml;charset=utf-8",
    )
    error = _xml(answer)
    message = error.find(f"{M}message")
    assert error.tag == f"{M}error" and message is not None
    assert message.get("{http://www.w3.org/XML/1998/namespace}lang") == ""
    assert message.text == "Unrecognized 'Edm.Guid' literal 'guid'dsadsds''."


def test_an_accept_naming_neither_json_nor_xml_is_415(api: httpx.Client) -> None:
    """Accept: text/plain cannot be met by an OData answer."""
    answer = api.get(ACCOUNTS, headers={"Accept": "text/plain"})
    assert answer.status_code == 415


def test_errors_in_json_have_the_recorded_empty_lang(api: httpx.Client) -> None:
    """The recorded error bodies carry "lang": "" (API-FACTS §4 "Error JSON")."""
    theirs = next(c for c in recorded("api_errors_observed.json") if "body" in c)["body"]
    ours = api.get(f"{ACCOUNTS}(guid'dsadsds')").json()
    assert ours["error"]["message"]["lang"] == theirs["error"]["message"]["lang"] == ""


# -- Content-Type on writes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", None, "application/x-www-form-urlencoded"],
    ids=["text", "none", "form"],
)
def test_a_write_without_a_json_or_atom_body_is_415_and_creates_nothing(
    api: httpx.Client, sb: Sandbox, content_type: str | None
) -> None:
    """Exact reads JSON or XML by Content-Type; anything else is an unsupported media type."""
    before = sb.count(DIVISION, "project/TimeTransactions")
    body = httpx.Request("POST", "/", json=new_hours(api)).content
    headers = {"Content-Type": content_type} if content_type else {}
    answer = api.post(HOURS, content=body, headers=headers)
    assert answer.status_code == 415
    assert answer.json()["error"]["message"]["value"] == "Unsupported media type requested."
    assert sb.count(DIVISION, "project/TimeTransactions") == before


def test_an_atom_entry_creates_the_record_like_json(api: httpx.Client, sb: Sandbox) -> None:
    """Content-Type: application/atom+xml: the entry's m:properties are the values written."""
    values = new_hours(api)
    entry = (
        '<entry xmlns="http://www.w3.org/2005/Atom"'
        ' xmlns:d="http://schemas.microsoft.com/ado/2007/08/dataservices"'
        ' xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata">'
        '<content type="application/xml"><m:properties>'
        f'<d:Project m:type="Edm.Guid">{values["Project"]}</d:Project>'
        f"<d:Item>{values['Item']}</d:Item>"
        '<d:Quantity m:type="Edm.Double">2.5</d:Quantity>'
        '<d:Notes m:null="true"/>'
        "</m:properties></content></entry>"
    )
    answer = api.post(
        HOURS,
        content=entry.encode(),
        headers={"Content-Type": "application/atom+xml", "Prefer": "return=representation"},
    )
    assert answer.status_code == 201, answer.text
    created = answer.json()["d"]
    assert (created["Project"], created["Quantity"], created["Notes"]) == (
        values["Project"],
        2.5,
        None,
    )
    assert sb.record(DIVISION, "project/TimeTransactions", created["ID"]) is not None


@pytest.mark.parametrize(
    "body",
    [b"<entry", b'<!DOCTYPE x [<!ENTITY a "b">]><entry/>', b"<feed/>"],
    ids=["broken", "doctype", "not-an-entry"],
)
def test_an_unusable_atom_body_is_400(api: httpx.Client, body: bytes) -> None:
    """Malformed XML, a DTD, or no entry: Exact's "Error processing request stream"."""
    answer = api.post(HOURS, content=body, headers={"Content-Type": "application/atom+xml"})
    assert answer.status_code == 400
    assert answer.json()["error"]["message"]["value"].startswith("Error processing request stream")


# -- the bare-array envelope (a switch) ----------------------------------------------------------


@pytest.fixture
def bare(clock: ManualClock) -> Sandbox:
    """A sandbox that answers {"d":[…]} where no __next or __count must be carried."""
    return Sandbox(seed=1, clock=clock, bare_arrays=True)


def test_bare_arrays_answer_a_record_as_the_recorded_item_form(bare: Sandbox) -> None:
    """GET by key answers {"d":[record]}, the recorded logistics/Items form."""
    theirs = recorded("get_logistics_item_d_array_form.json")
    with client_for(bare, bare.issue_tokens()["access_token"]) as api:
        key = bare.records(DIVISION, "logistics/Items")[0]["ID"]
        ours = api.get(f"/api/v1/{DIVISION}/logistics/Items(guid'{key}')").json()
    assert isinstance(ours["d"], list) and isinstance(theirs["d"], list)
    assert len(ours["d"]) == len(theirs["d"]) == 1
    assert ours["d"][0]["__metadata"]["type"] == theirs["d"][0]["__metadata"]["type"]
    assert {"Code", "Description", "Unit", "SalesVatCode"} <= set(ours["d"][0]) & set(
        theirs["d"][0]
    )


def test_bare_arrays_keep_the_results_form_where_a_page_has_more(bare: Sandbox) -> None:
    """A last page is a bare array; a page with __next or __count keeps {"results":[…]}."""
    with client_for(bare, bare.issue_tokens()["access_token"]) as api:
        last = api.get(ACCOUNTS, params={"$top": "3"}).json()
        more = api.get(ACCOUNTS).json()
        counted = api.get(ACCOUNTS, params={"$top": "3", "$inlinecount": "allpages"}).json()
    assert isinstance(last["d"], list) and len(last["d"]) == 3
    assert "__next" in more["d"] and len(more["d"]["results"]) == 60
    assert counted["d"]["__count"] == "150"
