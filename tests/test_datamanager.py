"""Specification of exact_connector.datamanager: the Data Manager's fields, named for people."""

from __future__ import annotations

import pytest

from exact_connector import forms
from exact_connector.catalog import catalog
from exact_connector.datamanager import DATA_MANAGER_ENDPOINT, LABELS, data_manager_schema

WRITABLE = [f.name for f in catalog().lookup(DATA_MANAGER_ENDPOINT).writable_fields]
PROPERTIES = data_manager_schema()["$defs"]["fields"]["properties"]


def test_every_writable_field_has_a_label() -> None:
    """The label table covers exactly the catalog's writable time-transaction fields."""
    assert set(LABELS) == set(WRITABLE)


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("Item", "Hour type"),
        ("Quantity", "Hours"),
        ("StartTime", "Start time"),
        ("EndTime", "End time"),
        ("HourStatus", "Status"),
        ("Account", "Customer"),
        ("Notes", "Notes"),
    ],
)
def test_fields_carry_human_labels(name: str, label: str) -> None:
    """The generated schema titles fields as a person says them."""
    assert PROPERTIES[name]["title"] == label


@pytest.mark.parametrize("name", WRITABLE)
def test_help_is_prose_with_the_exact_name_as_a_hint(name: str) -> None:
    """Help is a sentence; the Exact name follows when the label differs from it."""
    description = PROPERTIES[name]["description"]
    assert "Exact field" not in description and "(Edm." not in description
    assert description.endswith(".") and len(description) > 15
    assert (f"Exact name: {name}." in description) is (LABELS[name].label != name)


def test_the_form_order_is_the_reading_order() -> None:
    """Project, hour type and hours come first, then when, who and what."""
    order = data_manager_schema()["$defs"]["fields"]["x-ui"]["order"]
    assert order[:8] == [
        "Project",
        "Item",
        "Quantity",
        "Date",
        "Employee",
        "StartTime",
        "EndTime",
        "Notes",
    ]
    assert sorted(order) == sorted(WRITABLE)


def test_the_field_options_show_labels_and_help() -> None:
    """The time_transaction_fields source lists each field by its label, with its help."""
    options = forms.form_spec("create_project_time_transaction")["fields"][1]["options"]
    by_value = {option["value"]: option for option in options}
    assert by_value["Item"]["label"] == "Hour type"
    assert by_value["Quantity"]["description"].startswith("The number of hours worked.")
