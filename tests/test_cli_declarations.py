"""Specification of the declaration commands: manifest, form, validate, endpoints."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from exact_connector.cli import main

BROKEN = Path(__file__).resolve().parent / "fixtures" / "broken_manifest"
TITLES = [
    "Create Project Time Transactions",
    "Update Project Time Transaction",
    "Delete Endpoint with ID",
    "List or Get Endpoint",
]
SECRET = "Zx9-VERY-SECRET-client-secret-value"
USER_ERROR = 3
CONFIG_ERROR = 4


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run(capsys, *argv)
    assert (code, err) == (0, "")
    return json.loads(out)


def test_manifest_json_has_the_four_actions(capsys: pytest.CaptureFixture[str]) -> None:
    """manifest --json prints the whole manifest, the four actions titled exactly, with schemas."""
    data = run_json(capsys, "manifest", "--json")
    assert data["id"] == "exact-online"
    assert [a["title"] for a in data["actions"]] == TITLES
    for action in data["actions"]:
        Draft202012Validator.check_schema(action["input_schema"])
        Draft202012Validator.check_schema(action["output_schema"])
    assert data["token_policy"]["min_refresh_age"] == 570


def test_manifest_summary_for_people(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --json: id, version, action titles, auth types and regions."""
    code, out, _ = run(capsys, "manifest")
    assert code == 0
    assert out.startswith("Exact Online (exact-online) 0.1.0\n")
    for text in [
        *TITLES,
        "oauth2_refresh_token",
        "United Kingdom",
        "https://start.exactonline.co.uk",
    ]:
        assert text in out


def test_form_credentials_json(capsys: pytest.CaptureFixture[str]) -> None:
    """form credentials --json lists the seed's five fields first, in order, the secret marked."""
    spec = run_json(capsys, "form", "credentials", "--json")
    labels = [f["label"] for f in spec["fields"]]
    assert labels[:5] == [
        "Connector Name",
        "Authentication Type",
        "Server URL",
        "Client ID",
        "Client Secret",
    ]
    secret = spec["fields"][4]
    assert (secret["name"], secret["secret"], secret["widget"]) == (
        "client_secret",
        True,
        "password",
    )


def test_form_credentials_rjsf(capsys: pytest.CaptureFixture[str]) -> None:
    """form credentials --rjsf prints a valid 2020-12 schema plus a uiSchema."""
    output = run_json(capsys, "form", "credentials", "--rjsf")
    Draft202012Validator.check_schema(output["schema"])
    assert output["uiSchema"]["client_secret"]["ui:widget"] == "password"
    assert output["uiSchema"]["ui:order"][0] == "connector_name"


def test_form_for_people_hides_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    """The human form lists label, widget and required, and shows secrets as (secret, hidden)."""
    code, out, _ = run(capsys, "form", "credentials")
    assert code == 0
    secret_line = next(line for line in out.splitlines() if "Client Secret" in line)
    assert "password" in secret_line and "yes" in secret_line
    assert "(secret, hidden)" in secret_line
    assert "shown when auth_type = oauth2_refresh_token" in out


def test_form_of_an_action(capsys: pytest.CaptureFixture[str]) -> None:
    """Any action id is a form name too."""
    spec = run_json(capsys, "form", "list_or_get_endpoint", "--json")
    assert spec["title"] == "List or Get Endpoint"
    assert spec["fields"][1]["label"] == "Service And Endpoint"


def test_unknown_form_is_a_user_error(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown form name exits with the user category's code and lists the forms."""
    code, out, err = run(capsys, "form", "nope")
    assert (code, out) == (USER_ERROR, "")
    assert "$.form" in err and "credentials" in err


# --- validate -------------------------------------------------------------------------------------


def credential(**changes: str) -> dict[str, str]:
    return {
        "connector_name": "Exact",
        "auth_type": "oauth2_refresh_token",
        "server_url": "https://start.exactonline.nl",
        "client_id": "b81cc4de-d192-400e-bcb4-09254394c52a",
        "client_secret": SECRET,
        "refresh_token": "Gcp7!IAAAA",
        **changes,
    }


def test_validate_a_valid_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A valid document prints valid and exits 0."""
    path = tmp_path / "cred.json"
    path.write_text(json.dumps(credential()))
    assert run(capsys, "validate", "credentials", str(path)) == (0, "valid\n", "")


def test_validate_lists_every_error_without_values(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An invalid document exits 3 and lists every error by path; no submitted value is echoed."""
    path = tmp_path / "cred.json"
    bad = credential(client_secret=SECRET + " with spaces", server_url=SECRET, connector_name="")
    path.write_text(json.dumps(bad))
    code, out, err = run(capsys, "validate", "credentials", str(path))
    assert (code, out) == (USER_ERROR, "")
    for where in ("$.client_secret:", "$.server_url:", "$.connector_name:"):
        assert where in err
    assert SECRET not in err
    assert "Traceback" not in err


def test_validate_reads_standard_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """FILE may be - for standard input."""
    document = {"division": 12, "endpoint": "crm/Accounts", "id": 7}
    stdin = io.TextIOWrapper(io.BytesIO(json.dumps(document).encode()))
    monkeypatch.setattr(sys, "stdin", stdin)
    assert run(capsys, "validate", "delete_endpoint_record", "-") == (0, "valid\n", "")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"connector_name": ', "The document is not valid JSON (line 1, column 20)."),
        (b'"\xff"', "The document is not valid UTF-8 JSON of a reasonable depth."),
        (
            b"[" * 100_000 + b"]" * 100_000,
            "The document is not valid UTF-8 JSON of a reasonable depth.",
        ),
    ],
    ids=["truncated", "not-utf8", "deep"],
)
def test_validate_rejects_unreadable_documents(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes, message: str
) -> None:
    """Broken JSON is a user error with a position, never a traceback."""
    path = tmp_path / "doc.json"
    path.write_bytes(content)
    code, _, err = run(capsys, "validate", "credentials", str(path))
    assert code == USER_ERROR
    assert err.splitlines()[0] == f"error[invalid_input]: {message}"


def test_validate_refuses_huge_documents(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A document over 10 MB is refused without being parsed."""
    path = tmp_path / "big.json"
    path.write_bytes(b" " * (10 * 1024 * 1024 + 1))
    code, _, err = run(capsys, "validate", "credentials", str(path))
    assert code == USER_ERROR
    assert "larger than 10 MB" in err


def test_validate_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A file that cannot be read is a user error that says why."""
    code, _, err = run(capsys, "validate", "credentials", str(tmp_path / "absent.json"))
    assert code == USER_ERROR
    assert err.startswith(
        "error[invalid_input]: The document cannot be read: no such file or directory."
    )


# --- endpoints ------------------------------------------------------------------------------------


def test_endpoints_filtered_by_method_and_search(capsys: pytest.CaptureFixture[str]) -> None:
    """endpoints --method DELETE --search lists only matching endpoints that support DELETE."""
    rows = run_json(capsys, "endpoints", "--method", "delete", "--search", "crm/", "--json")
    assert rows and all("DELETE" in r["methods"] and "crm/" in r["id"].lower() for r in rows)
    accounts = next(r for r in rows if r["id"] == "crm/Accounts")
    assert accounts == {
        "id": "crm/Accounts",
        "methods": ["GET", "POST", "PUT", "DELETE"],
        "kind": "regular",
        "key": "ID",
        "key_type": "Edm.Guid",
        "page_size": 60,
    }


def test_endpoints_table(capsys: pytest.CaptureFixture[str]) -> None:
    """The human table has id, methods, kind and key columns."""
    code, out, _ = run(capsys, "endpoints", "--search", "project/TimeTransactions")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["ENDPOINT", "METHODS", "KIND", "KEY"]
    assert rows[0].split() == [
        "project/TimeTransactions",
        "GET",
        "POST",
        "PUT",
        "DELETE",
        "regular",
        "ID",
    ]


# --- a broken manifest ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["manifest"], ["form", "credentials"], ["validate", "x", "-"]])
def test_broken_manifest_lists_every_problem(
    capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    """Every command reading the declarations reports all problems with file and path, exit 4."""
    code, out, err = run(capsys, *command, "--manifest-root", str(BROKEN))
    assert (code, out) == (CONFIG_ERROR, "")
    lines = err.splitlines()
    assert lines[0] == "error[manifest_invalid]: The connector declarations have 10 problems."
    problems = [line for line in lines if line.startswith("  ")]
    assert len(problems) == 10
    assert "  connector.yaml $.version: does not match ^(0|[1-9]" in err
    assert "  connector.yaml $.name: is required [required]" in problems
    assert any(
        line.startswith("  schemas/actions/broken_action.input.json $.type:") for line in problems
    )
    codes = {line.rsplit("[", 1)[1] for line in problems}
    assert len(codes) >= 3


def test_broken_manifest_in_a_real_process_has_no_traceback() -> None:
    """Run as a program, a broken manifest gives exit code 4 and no traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "exact_connector", "manifest", "--manifest-root", str(BROKEN)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == CONFIG_ERROR
    assert "Traceback" not in result.stderr
    assert "connector.yaml $.actions[0].title: is required" in result.stderr
