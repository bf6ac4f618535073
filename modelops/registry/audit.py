"""The audit trail: every alias move, refusal, archive and rollback, as version tags.

Each event is an :class:`~modelops.types.AuditEvent` stored as JSON in a tag
``modelops.audit.<UTC time>`` on the version it concerns, so the registry itself keeps the
history MLflow does not (mlflow/mlflow#2169), readable with any MLflow client.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from modelops.types import AuditEvent

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

AUDIT_PREFIX = "modelops.audit."
_MAX_TAG = 5000  # MLflow's tag value limit


def audit_key(when: datetime) -> str:
    """Tag key for an event at ``when``; sorts chronologically (MLflow keys allow no ':')."""
    return AUDIT_PREFIX + when.strftime("%Y%m%dT%H%M%S.%fZ")


def event_payload(event: AuditEvent) -> str:
    """The JSON stored for ``event``, within MLflow's tag limit (detail dropped, not decision)."""
    payload = event.to_json()
    if len(payload) > _MAX_TAG:
        trimmed = dict(list(event.metrics.items())[:20])
        payload = event.model_copy(update={"metrics": trimmed}).to_json()[:_MAX_TAG]
    return payload


def write_event(client: MlflowClient, name: str, version: str, event: AuditEvent) -> AuditEvent:
    """Append ``event`` to a version's tags and return it."""
    client.set_model_version_tag(name, str(version), audit_key(event.when), event_payload(event))
    return event


def read_events(version: ModelVersion) -> list[AuditEvent]:
    """The audit events recorded on a version, oldest first."""
    events = []
    for key in sorted(k for k in (version.tags or {}) if k.startswith(AUDIT_PREFIX)):
        raw = version.tags[key]
        try:
            events.append(AuditEvent.model_validate(json.loads(raw)))
        except ValueError:  # not ours, or cut at the tag limit: keep it visible
            when = datetime.strptime(key.removeprefix(AUDIT_PREFIX), "%Y%m%dT%H%M%S.%fZ")
            events.append(
                AuditEvent(
                    action="unreadable",
                    actor="unknown",
                    reason=raw[:500],
                    time=when.replace(tzinfo=UTC).isoformat(),
                )
            )
    return events
