"""``connector.yaml`` and the schemas it names -> frozen, validated models.

Loading checks everything before anything runs and reports every problem at once, each with its
file and JSON path: the YAML against ``schemas/connector.schema.json``, every schema file against
the 2020-12 meta-schema and the house rules (:mod:`exact_connector.schema_rules`), every ``$ref``,
every action's sample against its output schema, and that the credential form offers exactly the
declared regions and auth types.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError

from exact_connector.catalog import catalog
from exact_connector.exceptions import FieldError, InputError, ManifestError
from exact_connector.schema_rules import check_schemas, in_file
from exact_connector.schemas import SchemaSet, declarations_root, problem
from exact_connector.validation import json_path

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = [
    "CREDENTIALS",
    "Action",
    "ApiPaths",
    "AuthType",
    "DeclaredCheck",
    "DeclaredTokenPolicy",
    "Manifest",
    "ServerUrl",
    "Trigger",
    "check_schemas",
    "load_manifest",
]

MANIFEST_FILE = "connector.yaml"
META_SCHEMA_FILE = "schemas/connector.schema.json"
#: The name of the credential form; every other form is named by its action id.
CREDENTIALS = "credentials"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


class DeclaredTokenPolicy(_Model):
    """Exact's token rules: seconds unless the name says days."""

    access_ttl: int
    min_refresh_age: int
    refresh_window: int
    single_use_refresh: bool
    refresh_idle_ttl_days: int
    refresh_warning_days: int


class ServerUrl(_Model):
    """One regional Exact Online host."""

    url: str
    label: str
    region: str


class ApiPaths(_Model):
    """Paths on the chosen host for sign-in, tokens and the REST API."""

    auth: str
    token: str
    api: str


class AuthType(_Model):
    """A way to obtain tokens, and the credential fields only it uses."""

    id: str
    label: str
    grant: str
    interactive: bool
    fields: tuple[str, ...]


class DeclaredCheck(_Model):
    """One check Test Connect performs."""

    id: str
    title: str
    description: str
    endpoint: str | None = None


class Action(_Model):
    """One action: its words, bundled input/output schemas, behaviour flags and a sample output."""

    id: str
    title: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    read_only: bool
    idempotent: bool
    destructive: bool
    sample: dict[str, Any]


class Trigger(_Model):
    """One trigger: a polling feed or a webhook subscription, with its forms and a sample event."""

    id: str
    title: str
    description: str
    kind: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    sample: dict[str, Any]


class Manifest(_Model):
    """The whole declaration; build it with :func:`load_manifest`."""

    id: str
    name: str
    version: str
    description: str
    categories: tuple[str, ...]
    icon: str | None = None
    credentials_schema: dict[str, Any]
    auth_types: tuple[AuthType, ...]
    token_policy: DeclaredTokenPolicy
    server_urls: tuple[ServerUrl, ...]
    api_paths: ApiPaths
    test_connect: tuple[DeclaredCheck, ...]
    actions: tuple[Action, ...]
    triggers: tuple[Trigger, ...] = ()
    _schemas: SchemaSet = PrivateAttr()

    @property
    def schemas(self) -> SchemaSet:
        """The loaded schemas behind this manifest, with their validators."""
        return self._schemas

    def action(self, action_id: str) -> Action:
        """The action with this id; an unknown id is an input error at ``$.action``."""
        for action in self.actions:
            if action.id == action_id:
                return action
        raise _unknown("There is no action with that id.", "$.action", "an action", self.actions)

    def trigger(self, trigger_id: str) -> Trigger:
        """The trigger with this id; an unknown id is an input error at ``$.trigger``."""
        for trigger in self.triggers:
            if trigger.id == trigger_id:
                return trigger
        raise _unknown(
            "Invalid value at $.trigger: is not a trigger of this connector.",
            "$.trigger",
            "a trigger",
            self.triggers,
        )

    def form_names(self) -> tuple[str, ...]:
        """``credentials``, every action id and every trigger id: the forms declared."""
        return (CREDENTIALS, *(a.id for a in self.actions), *(t.id for t in self.triggers))

    def to_json(self) -> dict[str, Any]:
        """The manifest as plain JSON data, schemas included."""
        return self.model_dump(mode="json")


# --- reading -------------------------------------------------------------------------------------


# libyaml's parser when PyYAML has it (five times faster); the rules below apply to either.
def _unknown(
    message: str, path: str, kind: str, declared: Sequence[Action] | Sequence[Trigger]
) -> InputError:
    """An id the manifest does not declare, at ``path``, with the ids it does declare."""
    return InputError(
        message,
        errors=[{"path": path, "code": "unknown", "message": f"is not {kind} of this connector"}],
        hint=f"{kind.split()[-1].capitalize()}s: " + ", ".join(d.id for d in declared) + ".",
    )


_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_SafeLoader):  # type: ignore[misc]
    """Safe YAML that rejects duplicate keys and keeps dates as text (the manifest is JSON data)."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        for index, key in enumerate(keys):
            if key in keys[:index]:
                raise yaml.constructor.ConstructorError(
                    None, None, "duplicate key", node.value[index][0].start_mark
                )
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def _read_yaml(root: Traversable) -> tuple[Any, list[FieldError]]:
    source = root / MANIFEST_FILE
    if not source.is_file():
        return None, [problem(MANIFEST_FILE, "$", "missing", "the manifest file does not exist")]
    try:
        loaded = yaml.load(source.read_text("utf-8"), Loader=_StrictLoader)  # noqa: S506
        return ({} if loaded is None else loaded), []  # empty: every required key is reported
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        what = "has a duplicate key" if error.problem == "duplicate key" else "is not valid YAML"
        return None, [problem(MANIFEST_FILE, "$", "yaml", what + line)]
    except (yaml.YAMLError, UnicodeDecodeError):
        return None, [problem(MANIFEST_FILE, "$", "yaml", "is not valid YAML")]


# --- checking the manifest ----------------------------------------------------------------------


def _enum_of(schemas: SchemaSet, file: str, prop: str) -> tuple[list[Any], list[Any]]:
    schema = schemas.documents.get(file, {}).get("properties", {}).get(prop, {})
    return list(schema.get("enum", [])), list(schema.get("x-ui", {}).get("enum_labels", []))


def _cross_checks(raw: dict[str, Any], schemas: SchemaSet) -> list[FieldError]:
    """What the meta-schema cannot say: files exist, samples fit, forms match the declarations."""
    found: list[FieldError] = []
    credentials = raw["credentials"]["schema"]
    named = [("$.credentials.schema", credentials)]
    seen: set[str] = set()
    entries = [
        (f"$.{group}[{index}]", entry)
        for group in ("actions", "triggers")
        for index, entry in enumerate(raw.get(group, []))
    ]
    for at, action in entries:
        if action["id"] in seen:
            found.append(problem(MANIFEST_FILE, f"{at}.id", "unique", "repeats another form's id"))
        seen.add(action["id"])
        named += [
            (f"{at}.input_schema", action["input_schema"]),
            (f"{at}.output_schema", action["output_schema"]),
        ]
        if action["output_schema"] in schemas.documents:
            sample = schemas.errors(action["output_schema"], action["sample"], f"{at}.sample")
            found += in_file(MANIFEST_FILE, sample)
    found += [
        problem(MANIFEST_FILE, path, "missing", "names a schema file that does not exist")
        for path, file in named
        if file not in schemas.documents
    ]
    for check_index, check in enumerate(raw["test_connect"]["checks"]):
        if "endpoint" in check and catalog().get(check["endpoint"]) is None:
            path = f"$.test_connect.checks[{check_index}].endpoint"
            found.append(problem(MANIFEST_FILE, path, "unknown", "is not in the endpoint catalog"))
    if credentials in schemas.documents:
        declared = {
            "server_url": (
                [s["url"] for s in raw["server_urls"]],
                [s["label"] for s in raw["server_urls"]],
            ),
            "auth_type": (
                [a["id"] for a in raw["auth_types"]],
                [a["label"] for a in raw["auth_types"]],
            ),
        }
        for prop, expected in declared.items():
            if _enum_of(schemas, credentials, prop) != expected:
                found.append(
                    problem(
                        credentials,
                        f"$.properties.{prop}",
                        "enum",
                        f"enum and enum_labels must match the manifest's {prop}s",
                    )
                )
    return found


def _bundled(entries: list[dict[str, Any]], schemas: SchemaSet) -> list[dict[str, Any]]:
    """Actions or triggers with their schema files replaced by the bundled schemas."""
    return [
        {
            **{k: v for k, v in entry.items() if k not in ("input_schema", "output_schema")},
            "input_schema": schemas.bundle(entry["input_schema"]),
            "output_schema": schemas.bundle(entry["output_schema"]),
        }
        for entry in entries
    ]


def _build(raw: dict[str, Any], schemas: SchemaSet) -> Manifest:
    actions = _bundled(raw["actions"], schemas)
    triggers = _bundled(raw.get("triggers", []), schemas)
    skipped = ("credentials", "test_connect", "actions", "triggers")
    fields = {k: v for k, v in raw.items() if k not in skipped}
    try:
        manifest = Manifest.model_validate(
            {
                **fields,
                "credentials_schema": schemas.bundle(raw["credentials"]["schema"]),
                "test_connect": raw["test_connect"]["checks"],
                "actions": actions,
                "triggers": triggers,
            }
        )
    except ValidationError as error:  # the meta-schema should have caught it; report, never echo
        problems = [
            problem(
                MANIFEST_FILE, json_path(e["loc"], reveal=True), e["type"], "has the wrong shape"
            )
            for e in error.errors(include_input=False)
        ]
        raise ManifestError(
            "connector.yaml does not fit the manifest model.", errors=problems
        ) from None
    manifest._schemas = schemas
    return manifest


def _manifest_problems(
    raw: Any, schemas: SchemaSet, schema_problems: list[FieldError]
) -> list[FieldError]:
    if any(p["file"] == META_SCHEMA_FILE for p in schema_problems):
        return []  # reported already; the manifest cannot be checked against a broken schema
    if META_SCHEMA_FILE not in schemas.documents:
        return [problem(META_SCHEMA_FILE, "$", "missing", "the manifest's schema is missing")]
    shape = in_file(MANIFEST_FILE, schemas.errors(META_SCHEMA_FILE, raw, reveal=True))
    # Cross-checks read the other schema files, so they run once those are sound.
    return shape or ([] if schema_problems else _cross_checks(raw, schemas))


def _load(root: Traversable, *, check: bool = True) -> Manifest:
    schemas = SchemaSet.load(root)
    schema_problems = check_schemas(schemas) if check else []
    raw, yaml_problems = _read_yaml(root)
    problems = schema_problems + yaml_problems
    if raw is not None and check:
        problems += _manifest_problems(raw, schemas, schema_problems)
    if problems:
        count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
        raise ManifestError(f"The connector declarations have {count}.", errors=problems)
    return _build(raw, schemas)


@cache
def _default_manifest() -> Manifest:
    # This package's own declarations are checked by the test suite (test_manifest.py) and before
    # a release, not at every start: they cannot change after installation.
    return _load(declarations_root(), check=False)


def load_manifest(root: Traversable | str | None = None) -> Manifest:
    """The validated manifest of ``root`` (a directory holding connector.yaml and schemas/).

    The default, this package's own declarations, is loaded once per process (and checked by the
    test suite, not at every start). Raises :class:`ManifestError` listing every problem found.
    """
    if root is None:
        return _default_manifest()
    return _load(Path(root) if isinstance(root, str) else root)
