"""The project world every sandbox division holds: accounts, projects, employees, hour types, hours.

Time transactions point at real projects, hour-type items, employees and the project's account by
GUID, and their read-only description fields are *lookups*: ``ProjectCode`` is whatever the linked
project's ``Code`` is now, exactly as Exact joins them. Lookups and computed fields are evaluated
when read, so they stay right after any write; writes may only set the link.

Everything here is data: per-table value rules, lookups, computed fields, create defaults, codes
Exact assigns itself, and the references a write is checked against.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from exact_connector.sandbox.seed import (
    BY_NAME,
    BY_TYPE,
    COMPANY_HEADS,
    FieldContext,
    Generator,
    Rule,
    day_ms,
    draw,
    person,
)

__all__ = [
    "AUTO",
    "COMPUTED",
    "CREATE_DEFAULTS",
    "INHERIT",
    "LOOKUPS",
    "NAME_LINKS",
    "NORMALIZE",
    "PADDED",
    "PROJECT_TYPES",
    "REFERENCES",
    "SPECIFIC",
    "TIME_ITEMS",
    "WRITABLE_VALUES",
    "generator_for",
    "pad",
]

#: Hour types: the first items of ``logistics/Items`` (code, description, hourly rate).
TIME_ITEMS = (
    ("CONS", "Consultancy per uur", 95),
    ("DEV", "Development per uur", 85),
    ("PM", "Projectmanagement per uur", 105),
    ("SUP", "Support per uur", 75),
    ("TRAIN", "Training per uur", 90),
    ("TRAVEL", "Reistijd", 45),
)
_GOODS = ("Grenen balk", "Eiken plank", "Bureaustoel", "Monitor 27 inch", "Kabel HDMI", "Laptoptas")
_PROJECT_WORK = ("Implementatie", "Migratie", "Onderhoud", "Advies", "Ontwikkeling", "Audit")
_PROJECT_SUBJECT = ("ERP", "webshop", "datawarehouse", "CRM", "salarisadministratie", "netwerk")
_NOTES = (
    "Overleg met klant", "Workshop requirements", "Code review", "Testen release",
    "Documentatie bijwerken", "Bugfix productie", "Sprint planning", "Gebruikerstraining",
)  # fmt: skip
_HOURS = (0.5, 1, 1.5, 2, 2.5, 3, 4, 6, 7.5, 8)
PROJECT_TYPES = {
    1: "Campaign",
    2: "Fixed price",
    3: "Time and material",
    4: "Non billable",
    5: "Prepaid",
}
_COUNTRIES = {"NL": "Netherlands", "BE": "Belgium", "DE": "Germany", "GB": "United Kingdom"}
_UNITS = {"uur": "Uur", "stuk": "Stuk"}


def _const(value: Any) -> Rule:
    return lambda ctx: lambda i: value


def _per_index(time: Callable[[int], Any], other: Callable[[int], Any]) -> Rule:
    """Hour types for the first rows, ordinary goods after them."""
    count = len(TIME_ITEMS)
    return lambda ctx: lambda i: time(i) if i < count else other(i)


def _price(ctx: FieldContext) -> Generator:
    salt = ctx.salt("price")
    count = len(TIME_ITEMS)
    return lambda i: TIME_ITEMS[i][2] if i < count else (draw(salt, i) % 20_000 + 100) / 100


def _project_description(ctx: FieldContext) -> Generator:
    work, subject = ctx.picker("work", _PROJECT_WORK), ctx.picker("subject", _PROJECT_SUBJECT)
    return lambda i: f"{work(i)} {subject(i)}"


def _account_of_project(ctx: FieldContext) -> Generator:
    """The account of the project the same row books on (the ``Project`` rule's own pick)."""
    projects = ctx.link("project/Projects")
    project = replace(ctx, name="Project").reference("project/Projects")
    return lambda i: projects.value(project(i), "Account")


def _first_user(ctx: FieldContext) -> Generator:
    user = ctx.world.user.user_id
    return lambda i: user if i == 0 else None


def _employee_email(ctx: FieldContext) -> Generator:
    first, last = person(ctx)
    return lambda i: f"{first(i)}.{last(i).replace(' ', '')}@sandbox.example".lower()


def _account_email(ctx: FieldContext) -> Generator:
    head = ctx.picker("company:head", COMPANY_HEADS)
    return lambda i: f"info@{head(i)}.example".lower()


def _website(ctx: FieldContext) -> Generator:
    head = ctx.picker("company:head", COMPANY_HEADS)
    return lambda i: f"https://www.{head(i)}.example".lower()


def _search_code(ctx: FieldContext) -> Generator:
    head = ctx.picker("company:head", COMPANY_HEADS)
    return lambda i: f"{head(i).upper()[:8]:<9}"


#: Value rules per table (the project domain), ahead of the generic name and type rules.
SPECIFIC: dict[str, dict[str, Rule]] = {
    "crm/Accounts": {
        "Code": lambda ctx: lambda i: f"{i + 1:>18}",
        "Email": _account_email,
        "IsSupplier": lambda ctx: ctx.picker("supplier", (False, False, False, True)),
        "SearchCode": _search_code,
        "Status": lambda ctx: ctx.picker("status", ("C", "C", "C", "P", "S")),
        "Type": _const("A"),
        "Website": _website,
    },
    "logistics/Items": {
        "Code": _per_index(lambda i: TIME_ITEMS[i][0], lambda i: f"ART{i + 1:05d}"),
        "CostPriceCurrency": _const("EUR"),
        "Description": _per_index(
            lambda i: TIME_ITEMS[i][1], lambda i: f"{_GOODS[i % len(_GOODS)]} {i + 1}"
        ),
        "IsFractionAllowedItem": _per_index(lambda i: True, lambda i: False),
        "IsPurchaseItem": _per_index(lambda i: False, lambda i: True),
        "IsSalesItem": _const(True),
        "IsStockItem": _per_index(lambda i: False, lambda i: True),
        "IsTime": _per_index(lambda i: 1, lambda i: 0),
        "StandardSalesPrice": _price,
        "Unit": _per_index(lambda i: "uur", lambda i: "stuk"),
        "UnitType": _const("O"),
    },
    "payroll/Employees": {
        "ActiveEmployment": _const(1),
        "BusinessEmail": _employee_email,
        "Code": lambda ctx: lambda i: str(i + 1),
        "Email": _employee_email,
        "EmployeeHID": lambda ctx: lambda i: i + 1,
        "Gender": lambda ctx: ctx.picker("gender", ("M", "V")),
        "Nationality": _const("NL"),
        "StartDate": lambda ctx: day_ms(ctx, "start", 1500),
        "User": _first_user,
    },
    "project/Projects": {
        "Account": lambda ctx: ctx.reference("crm/Accounts"),
        "Code": lambda ctx: lambda i: f"P{i + 1:04d}",
        "Description": _project_description,
        "Manager": lambda ctx: ctx.reference("payroll/Employees"),
        "StartDate": lambda ctx: day_ms(ctx, "start", 540),
        "Type": lambda ctx: ctx.picker("type", (2, 3, 3, 3, 4, 5)),
    },
    "project/TimeTransactions": {
        "Account": _account_of_project,
        "Date": lambda ctx: day_ms(ctx, "date", 180),
        "Employee": lambda ctx: ctx.reference("payroll/Employees"),
        "EntryNumber": lambda ctx: lambda i: i // 4 + 1,
        "HourStatus": lambda ctx: ctx.picker("status", (1, 10, 20, 20, 20)),
        "Item": lambda ctx: ctx.reference("logistics/Items", limit=len(TIME_ITEMS)),
        "Notes": lambda ctx: ctx.picker("notes", _NOTES),
        "Project": lambda ctx: ctx.reference("project/Projects"),
        "Quantity": lambda ctx: ctx.picker("hours", _HOURS),
        "Type": _const(1),
    },
    "project/CostTransactions": {"Type": _const(2)},  # Exact's Type: 1 time, 2 cost
}

#: Guid fields that, on any endpoint, point at a record of another table.
NAME_LINKS = {
    "Account": "crm/Accounts",
    "Customer": "crm/Accounts",
    "Employee": "payroll/Employees",
    "GLAccount": "financial/GLAccounts",
    "InvoiceTo": "crm/Accounts",
    "Item": "logistics/Items",
    "OrderedBy": "crm/Accounts",
    "Project": "project/Projects",
    "Supplier": "crm/Accounts",
}

Lookup = tuple[str, str, str]
#: Read-only fields Exact fills from a linked record: field -> (link field, table, field there).
LOOKUPS: dict[str, dict[str, Lookup]] = {
    "project/Projects": {
        "AccountCode": ("Account", "crm/Accounts", "Code"),
        "AccountName": ("Account", "crm/Accounts", "Name"),
        "ManagerFullname": ("Manager", "payroll/Employees", "FullName"),
    },
    "project/TimeTransactions": {
        "AccountName": ("Account", "crm/Accounts", "Name"),
        "ItemDescription": ("Item", "logistics/Items", "Description"),
        "ItemDivisable": ("Item", "logistics/Items", "IsFractionAllowedItem"),
        "PriceFC": ("Item", "logistics/Items", "StandardSalesPrice"),
        "ProjectAccount": ("Project", "project/Projects", "Account"),
        "ProjectAccountCode": ("Project", "project/Projects", "AccountCode"),
        "ProjectAccountName": ("Project", "project/Projects", "AccountName"),
        "ProjectCode": ("Project", "project/Projects", "Code"),
        "ProjectDescription": ("Project", "project/Projects", "Description"),
    },
}

Read = Callable[[str], Any]


def _amount(get: Read) -> Any:
    """Quantity times price; none where no amount results (a price not set, or hours so many
    that the product overflows: JSON has no infinity, and Exact's amounts are decimals)."""
    quantity, price = get("Quantity"), get("PriceFC")
    amount = None if quantity is None or price is None else round(quantity * price, 2)
    return amount if amount is None or math.isfinite(amount) else None


#: Read-only fields computed from other fields of the same record.
COMPUTED: dict[str, dict[str, Callable[[Read], Any]]] = {
    "crm/Accounts": {
        "CountryName": lambda get: _COUNTRIES.get((get("Country") or "").strip()),
        "IsSales": lambda get: get("Status") == "C",
    },
    "logistics/Items": {"UnitDescription": lambda get: _UNITS.get((get("Unit") or "").strip())},
    "project/Projects": {"TypeDescription": lambda get: PROJECT_TYPES.get(get("Type"))},
    "project/TimeTransactions": {"AmountFC": _amount},
}

#: Writable fields a create fills from a linked record when the client leaves them out.
INHERIT: dict[str, dict[str, Lookup]] = {
    "project/TimeTransactions": {"Account": ("Project", "project/Projects", "Account")},
}

#: Values a create starts from (the client's own values win).
CREATE_DEFAULTS: dict[str, dict[str, Any]] = {
    "crm/Accounts": {"Status": "C", "Type": "A", "Country": "NL"},
    "project/TimeTransactions": {"Currency": "EUR", "HourStatus": 1, "Type": 1},
    "project/CostTransactions": {"Type": 2},
}

#: Fields Exact numbers itself when a create leaves them out: serial number -> value.
AUTO: dict[str, dict[str, Callable[[int], Any]]] = {
    "crm/Accounts": {"Code": lambda serial: f"{serial:>18}"},
}

#: How Exact stores a written value: account codes are right-aligned in 18 characters.
NORMALIZE: dict[str, dict[str, Callable[[Any], Any]]] = {
    "crm/Accounts": {
        "Code": lambda code: code.strip().rjust(18) if isinstance(code, str) else code
    },
}

#: The only values a POST or PUT may give a field (API-FACTS section 5: HourStatus on POST/PUT is
#: 1 Draft, 2 Rejected or 10 Submitted; reads also show 11, 14, 16, 19 and 20).
WRITABLE_VALUES: dict[str, dict[str, dict[Any, str]]] = {
    "project/TimeTransactions": {"HourStatus": {1: "Draft", 2: "Rejected", 10: "Submitted"}},
}

#: Fixed-width text columns, padded with spaces to their width on every endpoint, as Exact returns
#: them (recorded: crm/Accounts Country "NL ", State "UT ", Language "NL        "; logistics/Items
#: Unit "stuk    ", SalesVatCode "5  "; salesinvoice/SalesInvoiceLines VATCode "02 ").
PADDED: dict[str, int] = {
    "Country": 3,
    "Language": 10,
    "PurchaseVATCode": 3,
    "SalesVATCode": 3,
    "SalesVatCode": 3,
    "State": 3,
    "Unit": 8,
    "VATCode": 3,
}


def pad(value: Any, width: int) -> Any:
    """A text value as a fixed-width column holds it: right-padded with spaces."""
    return value.ljust(width) if isinstance(value, str) else value


#: References a write must point at an existing record: field -> table.
REFERENCES: dict[str, dict[str, str]] = {
    "project/Projects": {"Account": "crm/Accounts"},
    "project/TimeTransactions": {
        "Account": "crm/Accounts",
        "Employee": "payroll/Employees",
        "Item": "logistics/Items",
        "Project": "project/Projects",
    },
}


def generator_for(ctx: FieldContext, known_tables: Mapping[str, object]) -> Generator:
    """The value generator of one field: domain rule, name rule, link, or the type's default."""
    rule = SPECIFIC.get(ctx.table, {}).get(ctx.name)
    if rule is not None:
        return rule(ctx)
    named = BY_NAME.get(ctx.name)
    if named is not None and _same_family(named[0], ctx.edm):
        return named[1](ctx)
    target = NAME_LINKS.get(ctx.name)
    if ctx.edm == "Edm.Guid" and target is not None and target.lower() in known_tables:
        return ctx.reference(target)
    default = BY_TYPE.get(ctx.edm)
    return lambda i: default


_INTEGERS = frozenset({"Edm.Byte", "Edm.Int16", "Edm.Int32", "Edm.Int64"})


def _same_family(produced: str, wanted: str) -> bool:
    return produced == wanted or (produced in _INTEGERS and wanted in _INTEGERS)
