"""The endpoint catalog: lookups, keys, methods, page sizes, twins and dropdown options."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from hostile_values import ENDPOINT_NAMES

from exact_connector.catalog import ENDPOINT_PATTERN, catalog
from exact_connector.exceptions import UnknownEndpoint
from exact_connector.odata import key_literal


def test_time_transactions_resolve_with_guid_key_and_crud_methods() -> None:
    """project/TimeTransactions has key ID (Edm.Guid) and GET, POST, PUT, DELETE."""
    endpoint = catalog().lookup("project/TimeTransactions")
    assert endpoint.id == "project/TimeTransactions"
    assert endpoint.primary_key == "ID"
    assert endpoint.key_type == "Edm.Guid"
    assert endpoint.methods == {"GET", "POST", "PUT", "DELETE"}
    assert endpoint.page_size == 60


def test_lookup_is_case_insensitive_and_returns_canonical_spelling() -> None:
    """A typed name in any case resolves to the catalog's spelling."""
    assert catalog().lookup("PROJECT/timetransactions").id == "project/TimeTransactions"
    assert catalog().lookup("bulk/crm/accounts").id == "bulk/CRM/Accounts"


@pytest.mark.parametrize(
    "name",
    ["crm/Nope", *ENDPOINT_NAMES],
    ids=lambda n: repr(n),
)
def test_lookup_rejects_unknown_and_malformed_names(name: str) -> None:
    """Anything but a catalog name raises UnknownEndpoint with a path."""
    with pytest.raises(UnknownEndpoint) as caught:
        catalog().lookup(name)
    assert caught.value.errors[0]["path"] == "$.endpoint"
    assert name not in caught.value.message or not name


def test_every_catalog_entry_matches_the_endpoint_pattern_and_is_unique() -> None:
    """Typed-in names use the same pattern the catalog's own names satisfy."""
    ids = [endpoint.id for endpoint in catalog()]
    assert len(ids) == 455
    assert len({i.lower() for i in ids}) == len(ids)
    assert all(ENDPOINT_PATTERN.fullmatch(i) for i in ids)


def test_page_size_by_kind() -> None:
    """Regular endpoints page by 60, bulk and sync by 1000."""
    assert catalog().lookup("crm/Accounts").page_size == 60
    assert catalog().lookup("bulk/CRM/Accounts").page_size == 1000
    assert catalog().lookup("sync/CRM/Accounts").page_size == 1000


def test_delete_options_exclude_read_only_and_function_endpoints() -> None:
    """Only record endpoints that support DELETE are offered for deletion."""
    options = catalog().options("DELETE")
    ids = {e.id for e in options}
    assert "project/TimeTransactions" in ids
    assert all(e.supports("DELETE") and e.kind == "regular" for e in options)
    assert all(isinstance(e.primary_key, str) for e in options)
    assert "crm/AcceptQuotation" not in ids  # a POST action
    assert not any(e.id.startswith(("read/", "bulk/", "sync/")) for e in options)
    assert "current/Me" not in ids


_SAMPLE_KEYS = {
    "Edm.Guid": "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
    "Edm.String": "A-1",
    "Edm.DateTime": "2024-05-01T09:00:00",
    "Edm.Byte": 7,
    "Edm.Int16": 7,
    "Edm.Int32": 7,
    "Edm.Int64": 7,
}


@pytest.mark.parametrize("method", ["DELETE", "PUT"])
def test_every_endpoint_offered_to_address_by_id_has_a_key_that_can_be_written(
    method: str,
) -> None:
    """Issue 11 item 12: no ``php:string`` keys (expensemanagement/Expenses) in the dropdown."""
    offered = catalog().options(method)

    assert offered
    for endpoint in offered:
        key_type = endpoint.key_type or "Edm.Guid"
        assert key_literal(_SAMPLE_KEYS[key_type], key_type), endpoint.id
    assert "expensemanagement/Expenses" not in {e.id for e in offered}
    assert catalog().lookup("expensemanagement/Expenses").is_record_endpoint is False


def test_options_search_filters_by_substring() -> None:
    """The dropdown search matches any part of service/Endpoint, case-insensitively."""
    found = {e.id for e in catalog().options("GET", search="timetrans")}
    assert "project/TimeTransactions" in found
    assert all("timetrans" in i.lower() for i in found)


def test_bulk_and_sync_twins() -> None:
    """crm/Accounts has bulk and sync twins; TimeTransactions has none."""
    accounts = catalog().lookup("crm/Accounts")
    bulk = catalog().twin(accounts, "bulk")
    sync = catalog().twin(accounts, "sync")
    assert bulk is not None and bulk.id == "bulk/CRM/Accounts"
    assert sync is not None and sync.id == "sync/CRM/Accounts"
    assert catalog().origin(bulk) == accounts
    assert catalog().twin(catalog().lookup("project/TimeTransactions"), "bulk") is None


def test_writable_and_mandatory_fields_of_time_transactions() -> None:
    """Writable fields exclude keys, read-only and obsolete ones; Item, Project, Quantity are mandatory."""
    endpoint = catalog().lookup("project/TimeTransactions")
    writable = {f.name for f in endpoint.writable_fields}
    assert {"Item", "Project", "Quantity", "HourStatus", "Notes", "Date"} <= writable
    assert not writable & {"ID", "Created", "ProjectCode", "Amount", "Division"}
    assert [f.name for f in endpoint.mandatory_fields] == ["Item", "Project", "Quantity"]


def test_packaged_catalog_equals_the_shared_copy_shape() -> None:
    """The packaged data is a list of 455 endpoint objects with the documented keys."""
    raw = json.loads(
        resources.files("exact_connector").joinpath("data/endpoints.json").read_text("utf-8")
    )
    assert len(raw) == 455
    assert all({"service", "endpoint", "path", "methods", "kind"} <= set(e) for e in raw)
