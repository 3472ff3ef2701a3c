"""Deterministic fake data: a value for every (table, field, row index), computed on demand.

Nothing is stored for a seeded row but its key: a field's value is a pure function of the seed,
the division, the table, the field and the row's index, so a table of 100,000 rows costs 100,000
keys, and a page computes only the fields it shows. A row is materialised into a dict only when it
is written. Same seed, same values, byte for byte; another seed, other values.

Values come from three rule tables, most specific first: the project domain's tables
(:mod:`~exact_connector.sandbox.domain`), field names that mean the same everywhere (``Code``,
``Email``, ``Created``…), and the Edm type (``false``, ``0`` or ``null``, as Exact's own records
mostly are). Dates are epoch milliseconds internally and ``/Date(ms)/`` on the wire, read as UTC
(Exact documents CET wall-clock time; the sandbox keeps one zone so tests can compute with it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

__all__ = [
    "ANCHOR_MS",
    "DAY_MS",
    "FieldContext",
    "Generator",
    "Linked",
    "User",
    "World",
    "draw",
    "guid_from",
    "key_generator",
    "salt_of",
]

T = TypeVar("T")
Generator = Callable[[int], Any]

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
DAY_MS = 86_400_000
#: "Now" for seeded data (2025-12-01T00:00:00Z): records were created in the two years before.
ANCHOR_MS = 1_764_547_200_000


def _mix(value: int) -> int:
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return value ^ (value >> 31)


def draw(salt: int, index: int) -> int:
    """A 64-bit pseudo-random number for row ``index`` under ``salt`` (splitmix64)."""
    return _mix((salt + (index + 1) * _GOLDEN) & _MASK)


def salt_of(*parts: object) -> int:
    """A stable 64-bit salt for a tuple of names and numbers (independent of PYTHONHASHSEED)."""
    text = "\x1f".join(str(part) for part in parts).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


def guid_from(salt: int, index: int) -> str:
    """A version-4-shaped GUID, canonical lower case, for row ``index``."""
    high = (draw(salt, 2 * index) & ~(0xF << 12)) | (0x4 << 12)
    low = (draw(salt, 2 * index + 1) & ~(0x3 << 62)) | (0x2 << 62)
    text = f"{high:016x}{low:016x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def key_generator(edm: str, salt: int, first: int = 0) -> Callable[[int], Any]:
    """Keys for rows 0, 1, 2…: GUIDs, counting integers from ``first + 1`` or ``K00001`` codes."""
    if edm == "Edm.Guid":
        return lambda i: guid_from(salt, i)
    if edm == "Edm.String":
        return lambda i: f"K{first + i + 1:05d}"
    return lambda i: first + i + 1


@dataclass(frozen=True)
class User:
    """The one Exact user behind every sandbox grant (``current/Me``, ``Creator`` fields)."""

    user_id: str
    first_name: str
    last_name: str
    email: str

    @property
    def full_name(self) -> str:
        """First and last name."""
        return f"{self.first_name} {self.last_name}"

    @property
    def user_name(self) -> str:
        """The login name: the e-mail address, as Exact's are."""
        return self.email


@dataclass(frozen=True)
class World:
    """What every table of one sandbox shares: its seed, its user and its divisions."""

    seed: int
    user: User
    divisions: dict[int, str]


class Linked(Protocol):
    """What a generator may ask of another table: its seeded keys and any record's values."""

    @property
    def seeded(self) -> int:
        """How many rows were seeded."""
        ...

    def seed_key(self, index: int) -> Any:
        """The key of seeded row ``index``."""
        ...

    def value(self, key: Any, name: str) -> Any:
        """A field of the record with this key (None when there is none)."""
        ...


@dataclass(frozen=True)
class FieldContext:
    """Everything a rule needs to build one field's generator."""

    world: World
    division: int
    table: str
    name: str
    edm: str
    link: Callable[[str], Linked]

    def salt(self, tag: str) -> int:
        """A salt shared by every field of this table that uses ``tag`` (keeps a row coherent)."""
        return salt_of(self.world.seed, self.division, self.table, tag)

    def picker(self, tag: str, choices: Sequence[T]) -> Callable[[int], T]:
        """Row ``i`` -> one of ``choices``, the same for every field using ``tag``."""
        salt, size = self.salt(tag), len(choices)
        return lambda i: choices[draw(salt, i) % size]

    def reference(self, table: str, limit: int | None = None) -> Generator:
        """Row ``i`` -> the key of a seeded row of ``table`` (one of its first ``limit``)."""
        target = self.link(table)
        salt = self.salt(f"ref:{self.name}")

        def pick(i: int) -> Any:
            size = min(target.seeded, limit) if limit else target.seeded
            return target.seed_key(draw(salt, i) % size) if size else None

        return pick


def created_ms(ctx: FieldContext) -> Generator:
    """When seeded row ``i`` was created: within the two years before the anchor, to the ms."""
    salt = ctx.salt("created")
    return lambda i: ANCHOR_MS - draw(salt, i) % (730 * DAY_MS)


def day_ms(ctx: FieldContext, tag: str, within_days: int) -> Generator:
    """A midnight within ``within_days`` before the anchor (Exact's dates carry no time)."""
    salt = ctx.salt(tag)
    return lambda i: ANCHOR_MS - (draw(salt, i) % within_days) * DAY_MS


# -- words -------------------------------------------------------------------------------------

FIRST_NAMES = (
    "Anna", "Bram", "Daan", "Emma", "Eva", "Femke", "Jan", "Julia", "Lars", "Lotte", "Luuk",
    "Maud", "Noah", "Pieter", "Sanne", "Sem", "Sophie", "Thijs", "Tim", "Yara",
)  # fmt: skip
LAST_NAMES = (
    "Bakker", "Bos", "Brouwer", "de Boer", "de Groot", "de Jong", "de Vries", "Dekker", "Hendriks",
    "Jansen", "Kok", "Meijer", "Mulder", "Peters", "Smit", "van Dijk", "van den Berg", "Visser",
    "Vos", "Willems",
)  # fmt: skip
COMPANY_HEADS = (
    "Albex", "Arcadis", "Bakkerij", "Blauw", "Delta", "Doorn", "Esch", "Gouda", "Haven", "IJssel",
    "Kroon", "Linde", "Maas", "Noord", "Oranje", "Polder", "Rijn", "Stork", "Tulp", "Zuid",
)  # fmt: skip
COMPANY_TRADES = (
    "Advies", "Bouw", "Consultancy", "Handel", "Installatietechniek", "Logistiek", "Media",
    "Software", "Techniek", "Transport", "Winkelinrichting", "Zorg",
)  # fmt: skip
COMPANY_FORMS = ("B.V.", "B.V.", "B.V.", "V.O.F.", "N.V.", "Holding B.V.")
CITIES = (
    ("Amersfoort", "3811"), ("Amsterdam", "1012"), ("Arnhem", "6811"), ("Breda", "4811"),
    ("Delft", "2611"), ("Eindhoven", "5611"), ("Gouda", "2801"), ("Groningen", "9711"),
    ("Haarlem", "2011"), ("Houten", "3995"), ("Leiden", "2311"), ("Nijmegen", "6511"),
    ("Rotterdam", "3011"), ("Tilburg", "5011"), ("Utrecht", "3511"), ("Zwolle", "8011"),
)  # fmt: skip
STREETS = (
    "Dorpsstraat", "Kerkstraat", "Molenweg", "Stationsplein", "Voorveste", "Havenkade",
    "Industrieweg", "Parallelweg", "Schoolstraat", "Spoorlaan",
)  # fmt: skip
ADJECTIVES = ("Algemeen", "Extra", "Jaarlijks", "Nieuw", "Overig", "Standaard", "Tijdelijk", "Vast")
NOUNS = (
    "abonnement", "administratie", "budget", "contract", "dienst", "kosten", "onderhoud",
    "opdracht", "overeenkomst", "regeling",
)  # fmt: skip


def company_name(ctx: FieldContext) -> Generator:
    """``"Albex Winkelinrichting B.V."``: the same for every field of a row that names a company."""
    head = ctx.picker("company:head", COMPANY_HEADS)
    trade = ctx.picker("company:trade", COMPANY_TRADES)
    form = ctx.picker("company:form", COMPANY_FORMS)
    return lambda i: f"{head(i)} {trade(i)} {form(i)}"


def person(ctx: FieldContext) -> tuple[Callable[[int], str], Callable[[int], str]]:
    """First- and last-name generators that agree within a row."""
    return ctx.picker("person:first", FIRST_NAMES), ctx.picker("person:last", LAST_NAMES)


def _email(ctx: FieldContext) -> Generator:
    first, last = person(ctx)
    head = ctx.picker("company:head", COMPANY_HEADS)
    return lambda i: f"{first(i)}.{last(i).replace(' ', '')}@{head(i)}.example".lower()


def _full_name(ctx: FieldContext) -> Generator:
    first, last = person(ctx)
    return lambda i: f"{first(i)} {last(i)}"


def _initials(ctx: FieldContext) -> Generator:
    first, _ = person(ctx)
    return lambda i: f"{first(i)[0]}."


def _city(ctx: FieldContext) -> Generator:
    city = ctx.picker("address", CITIES)
    return lambda i: city(i)[0]


def _postcode(ctx: FieldContext) -> Generator:
    city = ctx.picker("address", CITIES)
    return lambda i: f"{city(i)[1]} {chr(65 + i % 26)}{chr(65 + i // 26 % 26)}"


def _street(ctx: FieldContext) -> Generator:
    street = ctx.picker("address:street", STREETS)
    return lambda i: f"{street(i)} {i % 97 + 1}"


def _phone(ctx: FieldContext) -> Generator:
    salt = ctx.salt("phone")
    return lambda i: (
        f"0{draw(salt, 2 * i) % 90 + 10}-{draw(salt, 2 * i + 1) % 9_000_000 + 1_000_000}"
    )


def _description(ctx: FieldContext) -> Generator:
    adjective, noun = ctx.picker("adjective", ADJECTIVES), ctx.picker("noun", NOUNS)
    return lambda i: f"{adjective(i)} {noun(i)}"


def _modified(ctx: FieldContext) -> Generator:
    created, salt = created_ms(ctx), ctx.salt("modified")
    return lambda i: min(ANCHOR_MS, created(i) + draw(salt, i) % (90 * DAY_MS))


def _created_day(ctx: FieldContext) -> Generator:
    created = created_ms(ctx)
    return lambda i: created(i) // DAY_MS * DAY_MS


def _const(value: Any) -> Callable[[FieldContext], Generator]:
    return lambda ctx: lambda i: value


Rule = Callable[[FieldContext], Generator]

#: Field names that mean the same on every endpoint, with the Edm type the rule produces (a field
#: of that name but another type falls through to the type's default).
BY_NAME: dict[str, tuple[str, Rule]] = {
    "AddressLine1": ("Edm.String", _street),
    "BusinessEmail": ("Edm.String", _email),
    "City": ("Edm.String", _city),
    "Code": ("Edm.String", lambda ctx: lambda i: str(1000 + i)),
    "Country": ("Edm.String", _const("NL")),
    "CountryName": ("Edm.String", _const("Netherlands")),
    "Created": ("Edm.DateTime", created_ms),
    "Creator": ("Edm.Guid", lambda ctx: _const(ctx.world.user.user_id)(ctx)),
    "CreatorFullName": ("Edm.String", lambda ctx: _const(ctx.world.user.full_name)(ctx)),
    "Currency": ("Edm.String", _const("EUR")),
    "Description": ("Edm.String", _description),
    "Division": ("Edm.Int32", lambda ctx: _const(ctx.division)(ctx)),
    "DivisionDescription": (
        "Edm.String",
        lambda ctx: _const(ctx.world.divisions.get(ctx.division))(ctx),
    ),
    "DivisionName": ("Edm.String", lambda ctx: _const(ctx.world.divisions.get(ctx.division))(ctx)),
    "Email": ("Edm.String", _email),
    "FirstName": ("Edm.String", lambda ctx: person(ctx)[0]),
    "FullName": ("Edm.String", _full_name),
    "HID": ("Edm.Int32", lambda ctx: lambda i: i + 1),
    "Initials": ("Edm.String", _initials),
    "IsActive": ("Edm.Boolean", _const(True)),
    "Language": ("Edm.String", _const("NL")),
    "LastName": ("Edm.String", lambda ctx: person(ctx)[1]),
    "Modified": ("Edm.DateTime", _modified),
    "Modifier": ("Edm.Guid", lambda ctx: _const(ctx.world.user.user_id)(ctx)),
    "ModifierFullName": ("Edm.String", lambda ctx: _const(ctx.world.user.full_name)(ctx)),
    "Name": ("Edm.String", company_name),
    "Phone": ("Edm.String", _phone),
    "Postcode": ("Edm.String", _postcode),
    "PurchaseCurrency": ("Edm.String", _const("EUR")),
    "SalesCurrency": ("Edm.String", _const("EUR")),
    "StartDate": ("Edm.DateTime", _created_day),
}

#: The last resort: what an unset field of each Edm type looks like in Exact's records.
BY_TYPE: dict[str, Any] = {
    "Edm.Boolean": False,
    "Edm.Byte": 0,
    "Edm.Double": 0,
    "Edm.Decimal": 0,
    "Edm.Int16": 0,
    "Edm.Int32": 0,
    "Edm.Int64": 0,
    "Edm.Single": 0,
}
