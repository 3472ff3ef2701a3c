"""Commands that read the declarations: ``manifest``, ``form``, ``validate`` and ``endpoints``.

None of them needs a vault or the network, except ``form --credential``, which fills the form's
dropdowns from Exact Online. ``--manifest-root DIR`` reads ``connector.yaml`` and ``schemas/`` from
another directory (to check a manifest being edited, or a test fixture).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from exact_connector import forms
from exact_connector.catalog import Endpoint, catalog
from exact_connector.cli import command
from exact_connector.cli._output import print_json, print_table
from exact_connector.cli.vault import open_vault, vault_options
from exact_connector.exceptions import InputError
from exact_connector.manifest import Manifest, load_manifest
from exact_connector.options import LIVE_LIMIT
from exact_connector.runtime import Connector

__all__ = ["register"]

#: A document to validate is read up to this size; anything larger is refused unread.
MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
_METHOD_ORDER = ("GET", "POST", "PUT", "DELETE")

Handler = Callable[[argparse.Namespace], int]


def _manifest(args: argparse.Namespace) -> Manifest:
    root: Path | None = args.manifest_root
    return load_manifest(root) if root is not None else load_manifest()


def _show_manifest(args: argparse.Namespace) -> int:
    manifest = _manifest(args)
    if args.json:
        print_json(manifest.to_json())
        return 0
    print(f"{manifest.name} ({manifest.id}) {manifest.version}")
    print(manifest.description)
    print("\nActions:")
    flags = {True: "read-only", False: "writes"}
    print_table(
        [
            (a.id, a.title, flags[a.read_only] + (", destructive" if a.destructive else ""))
            for a in manifest.actions
        ],
        ["ID", "TITLE", "EFFECT"],
    )
    print("\nAuthentication types:")
    print_table([(a.id, a.label) for a in manifest.auth_types], ["ID", "LABEL"])
    print("\nRegions:")
    print_table(
        [(s.region, s.label, s.url) for s in manifest.server_urls], ["REGION", "COUNTRY", "URL"]
    )
    return 0


def _notes(field: dict[str, Any]) -> str:
    notes = []
    if field["secret"]:
        notes.append("(secret, hidden)")
    if field["visible_when"]:
        condition = field["visible_when"]
        notes.append(f"shown when {condition['field']} = {condition['equals']}")
    if field["options_from"]:
        listed = f", {len(field['options'])} listed" if field["options"] else ""
        notes.append(f"options from {field['options_from']}{listed}")
    if field["options_note"]:
        notes.append(field["options_note"])
    if field["advanced"]:
        notes.append("advanced")
    return "; ".join(notes)


def _form_values(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        values = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, too deep, a number of 4,300+ digits
        values = None
    if not isinstance(values, dict):
        raise InputError(
            "--values must be a JSON object of the values chosen so far.",
            errors=[{"path": "$.values", "code": "type", "message": "is not a JSON object"}],
        )
    return values


def _search(pairs: list[str]) -> dict[str, str]:
    found = {}
    for pair in pairs:
        source, equals, text = pair.partition("=")
        if not (equals and source and text):
            raise InputError(
                "--search takes SOURCE=TEXT, e.g. projects=warehouse.",
                errors=[{"path": "$.search", "code": "format", "message": "is not SOURCE=TEXT"}],
            )
        found[source] = text
    return found


def _show_form(args: argparse.Namespace) -> int:
    manifest = _manifest(args)
    values, search = _form_values(args.values), _search(args.search)
    if args.credential is not None:
        connector = Connector(vault=open_vault(args), manifest=manifest)
        try:
            build = connector.rjsf_form if args.rjsf else connector.form_spec
            spec = build(args.name, credential=args.credential, values=values, search=search)
        finally:
            connector.vault.close()
    else:
        build_static = forms.rjsf if args.rjsf else forms.form_spec
        spec = build_static(args.name, manifest, values=values, search=search)
    if args.rjsf:
        print_json(spec)
        return 0
    if args.json:
        print_json(spec)
        return 0
    print(f"{spec['title']} ({spec['name']})")
    rows = [
        (index, f["label"], f["widget"], "yes" if f["required"] else "no", _notes(f))
        for index, f in enumerate(spec["fields"], start=1)
    ]
    print_table(rows, ["#", "FIELD", "WIDGET", "REQUIRED", "NOTES"])
    return 0


def _read_document(source: str) -> Any:
    try:
        if source == "-":
            text = sys.stdin.buffer.read(MAX_DOCUMENT_BYTES + 1)
        else:
            with open(source, "rb") as handle:
                text = handle.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as error:
        reason = (error.strerror or "unreadable").lower()
        raise _bad_document(f"cannot be read: {reason}") from None
    if len(text) > MAX_DOCUMENT_BYTES:
        raise _bad_document(f"is larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MB")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise _bad_document(
            f"is not valid JSON (line {error.lineno}, column {error.colno})"
        ) from None
    except (ValueError, RecursionError):  # bad UTF-8, too deep, a number of 4,300+ digits
        raise _bad_document("is not valid UTF-8 JSON of a reasonable depth") from None


def _bad_document(message: str) -> InputError:
    return InputError(
        f"The document {message}.", errors=[{"path": "$", "code": "document", "message": message}]
    )


def _validate(args: argparse.Namespace) -> int:
    manifest = _manifest(args)
    document = _read_document(args.file)
    errors = forms.validate(args.name, document, manifest)
    if errors:
        count = f"{len(errors)} problem" + ("s" if len(errors) != 1 else "")
        raise InputError(
            f"The document does not fit the form {args.name} ({count}).", errors=errors
        )
    print("valid")
    return 0


def _methods(endpoint: Endpoint) -> list[str]:
    return [m for m in _METHOD_ORDER if m in endpoint.methods]


def _key_text(key: str | tuple[str, ...] | None) -> str:
    if isinstance(key, tuple):
        return ",".join(key)
    return key or "-"


def _summary(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "methods": _methods(endpoint),
        "kind": endpoint.kind,
        "key": endpoint.primary_key,
        "key_type": endpoint.key_type,
        "page_size": endpoint.page_size,
    }


def _endpoints(args: argparse.Namespace) -> int:
    found = catalog().options(method=args.method, search=args.search)
    if args.json:
        print_json([_summary(e) for e in found])
        return 0
    rows = [(e.id, " ".join(_methods(e)), e.kind, _key_text(e.primary_key)) for e in found]
    print_table(rows, ["ENDPOINT", "METHODS", "KIND", "KEY"])
    return 0


def _show_endpoint(args: argparse.Namespace) -> int:
    endpoint = catalog().lookup(args.endpoint)
    fields = [
        {
            "name": f.name,
            "type": f.type,
            "key": f.key,
            "mandatory": f.mandatory,
            "readonly": f.readonly,
            "collection": f.collection,
        }
        for f in endpoint.fields
    ]
    if args.json:
        print_json({**_summary(endpoint), "title": endpoint.title, "fields": fields})
        return 0
    print(f"{endpoint.id} ({endpoint.title}): {' '.join(_methods(endpoint))}, {endpoint.kind}")
    print(f"key: {_key_text(endpoint.primary_key)}; {endpoint.page_size} rows a page\n")
    flags = ("key", "mandatory", "readonly", "collection")
    rows = [(f["name"], f["type"], ", ".join(n for n in flags if f[n])) for f in fields]
    print_table(rows, ["FIELD", "TYPE", "NOTES"])
    return 0


def register(subparsers: Any) -> None:
    """Add ``manifest``, ``form``, ``validate`` and ``endpoints`` to the CLI."""
    root = argparse.ArgumentParser(add_help=False)
    root.add_argument(
        "--manifest-root",
        type=Path,
        metavar="DIR",
        help="read connector.yaml and schemas/ from DIR instead of the installed package",
    )

    manifest = command(subparsers, "manifest", _show_manifest, root)
    manifest.add_argument(
        "--json", action="store_true", help="the whole manifest, schemas included"
    )

    form = command(subparsers, "form", _show_form, root, vault_options())
    form.add_argument("name", help="credentials, or an action id")
    output = form.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="the form spec as JSON")
    output.add_argument(
        "--rjsf",
        action="store_true",
        help="schema, uiSchema and errorMessages for react-jsonschema-form",
    )
    form.add_argument(
        "--credential",
        metavar="NAME",
        help="fill the dropdowns (divisions, projects, …) from Exact Online for this credential",
    )
    form.add_argument(
        "--values",
        metavar="JSON",
        help='the values chosen so far, e.g. \'{"division": 123456, "endpoint": "crm/Accounts"}\'',
    )
    form.add_argument(
        "--search",
        action="append",
        default=[],
        metavar="SOURCE=TEXT",
        help=f"narrow a live list, e.g. projects=warehouse (lists show at most {LIVE_LIMIT})",
    )

    validate = command(subparsers, "validate", _validate, root)
    validate.add_argument("name", help="credentials, or an action id")
    validate.add_argument("file", metavar="FILE", help="a JSON file, or - for standard input")

    endpoints = command(subparsers, "endpoints", _endpoints)
    endpoints.add_argument(
        "--method", type=str.upper, choices=_METHOD_ORDER, help="only endpoints supporting it"
    )
    endpoints.add_argument(
        "--search",
        metavar="WORDS",
        help='only endpoints whose id or title has every word, e.g. "time transactions"',
    )
    endpoints.add_argument("--json", action="store_true", help="a JSON list")
    shown = endpoints.add_subparsers(dest="endpoints_command", metavar="ACTION")
    show = command(
        shown, "show", _show_endpoint, summary="one endpoint: methods, key, and fields with types"
    )
    show.add_argument("endpoint", metavar="SERVICE/ENDPOINT", help="e.g. crm/Accounts")
    show.add_argument("--json", action="store_true", help="as JSON")
