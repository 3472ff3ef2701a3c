"""The audit log: one JSON line per write or credential change, on ``exact_connector.audit``.

A line says who, when, where and which record; never a payload or a secret.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from exact_connector.actions import Step
    from exact_connector.vault import Credential

__all__ = ["audit"]

audit_log = logging.getLogger("exact_connector.audit")


def audit(event: str, credential: Credential, step: Step | None = None, **extra: Any) -> None:
    """Log ``event`` on ``credential`` (and the division and record of an action's ``step``).

    The line is built only when the logger would emit it (its level is INFO or lower).
    """
    if not audit_log.isEnabledFor(logging.INFO):
        return
    line: dict[str, Any] = {
        "event": event,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "workspace": credential.workspace,
        "credential_id": credential.id,
        "connector_name": credential.connector_name,
    }
    if step is not None:
        line.update(division=step.division, **step.audit)
        line["request_id"] = step.client.stats.request_id
    line.update(extra)
    audit_log.info(json.dumps(line, sort_keys=True, default=str))
