"""A record that no longer decrypts: named by the field that failed, and never in the way of the
others (removing it, listing the rest, adding another credential)."""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import pytest
from pydantic import SecretStr
from vault_harness import add_credential, tamper

from exact_connector.exceptions import (
    CredentialExists,
    CredentialNotFound,
    CredentialPending,
    VaultIntegrityError,
)
from exact_connector.runtime import Connector
from exact_connector.sandbox import Sandbox
from exact_connector.vault import Credential, Vault

EXACT = "https://start.exactonline.nl"


def _pending(vault: Vault, name: str, **how: object) -> Credential:
    """A credential as added, before any token is stored: secrets other than these left unset."""
    return vault.begin(
        connector_name=name,
        server_url=EXACT,
        client_id="b81cc4de-d192-400e-bcb4-09254394c52a",
        client_secret=SecretStr("client-secret-of-a-pending-one"),
        **how,
    )


#: A browser sign-in not finished (only a client secret set), and a pasted token before Test
#: Connect (no access token yet).
_pending_code = functools.partial(
    _pending, auth_type="oauth2_authorization_code", redirect_uri="https://engine.example/callback"
)
_pending_pasted = functools.partial(
    _pending,
    auth_type="oauth2_refresh_token",
    refresh_token=SecretStr("refresh-token-of-a-pasted-one"),
)


@pytest.mark.parametrize(
    "make",
    [_pending_code, _pending_pasted, add_credential],
    ids=["no-tokens", "no-access-token", "every-secret"],
)
def test_a_tampered_secret_is_an_integrity_error_on_that_field_whatever_else_is_unset(
    vault: Vault, home: Path, make: object
) -> None:
    """A secret column left NULL does not turn the failure into "vault_corrupt" on another field
    (whose hint is to restore the whole vault): get and verify both name client_secret."""
    credential = make(vault, "victim")  # type: ignore[operator]
    tamper(home, credential.id)

    with pytest.raises(VaultIntegrityError) as caught:
        vault.get(credential.id)

    assert (caught.value.code, caught.value.details["field"]) == (
        "vault_integrity",
        "client_secret",
    )
    [result] = vault.verify()
    assert (result.ok, result.error_code, result.field) == (
        False,
        "vault_integrity",
        "client_secret",
    )


@pytest.fixture
def connector(vault: Vault) -> Connector:
    """A Connector on the test's vault (nothing here reaches the network)."""
    return Connector(vault=vault)


def _form(name: str) -> dict[str, str]:
    app = Sandbox().demo_app
    return {
        "connector_name": name,
        "auth_type": "oauth2_authorization_code",
        "server_url": EXACT,
        "client_id": app.client_id,
        "client_secret": app.client_secret,
        "redirect_uri": app.redirect_uris[0],
    }


@pytest.mark.parametrize("by", ["id", "name", "record"])
def test_removing_a_credential_whose_record_no_longer_decrypts_deletes_it(
    connector: Connector, vault: Vault, home: Path, by: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The remedy the integrity hints give works through the Connector too, audited by name."""
    broken, kept = add_credential(vault, "broken"), add_credential(vault, "kept")
    tamper(home, broken.id)
    ref = {"id": broken.id, "name": "broken", "record": broken}[by]

    with caplog.at_level(logging.INFO, logger="exact_connector.audit"):
        connector.credentials.remove(ref)

    with pytest.raises(CredentialNotFound):
        vault.get(broken.id)
    assert vault.get(kept.id).version == kept.version
    [line] = [json.loads(r.getMessage()) for r in caplog.records if r.name.endswith("audit")]
    assert line["event"] == "credential.remove"
    assert (line["credential_id"], line["connector_name"]) == (broken.id, "broken")
    assert line["workspace"] == vault.workspace


def test_the_credentials_list_leaves_out_a_record_that_no_longer_decrypts(
    connector: Connector, vault: Vault, home: Path
) -> None:
    """One unreadable record does not hide every other one (as ``credentials list`` does);
    the vault's own list still raises unless asked to leave it out."""
    first, broken, last = (add_credential(vault, name) for name in ("a", "b", "c"))
    tamper(home, broken.id)

    assert [c.id for c in connector.credentials.list()] == [first.id, last.id]
    assert [c.id for c in vault.list(readable_only=True)] == [first.id, last.id]
    with pytest.raises(VaultIntegrityError):
        vault.list()


def test_adding_a_taken_name_is_not_blocked_by_another_record_that_no_longer_decrypts(
    connector: Connector, vault: Vault, home: Path
) -> None:
    """The name check reads the record of that name only: pending -> credential_pending, and the
    unreadable record's own name says to remove it."""
    connector.credentials.begin(_form("waiting"))
    tamper(home, add_credential(vault, "broken").id)

    with pytest.raises(CredentialPending):
        connector.credentials.begin(_form("waiting"))
    with pytest.raises(CredentialExists) as taken:
        connector.credentials.begin(_form("broken"))
    assert type(taken.value) is CredentialExists
    assert "no longer decrypts" in taken.value.message and "Remove" in taken.value.hint
