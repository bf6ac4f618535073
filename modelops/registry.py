"""Model registry operations on MLflow aliases, with an audit trail written as version tags.

Aliases are the source of truth for where a version stands (MLflow stages are deprecated).
Every alias move writes an audit event on the version as a tag ``modelops.audit.<UTC time>``
holding JSON (action, alias, from/to version, actor, reason, flow run, metrics), so the
registry itself keeps the history MLflow does not (mlflow/mlflow#2169).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from modelops.errors import ModelNotFound, RegistryError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

AUDIT_PREFIX = "modelops.audit."
SOURCE_RUN_TAG = "modelops.source_run_id"


def _is_missing(exc: Exception) -> bool:
    return getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"


def ensure_registered_model(client: MlflowClient, name: str, description: str | None) -> None:
    """Create registered model ``name`` if it does not exist (safe when two runs race)."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
        return
    except MlflowException as exc:
        if not _is_missing(exc):
            raise
    try:
        client.create_registered_model(name, description=description)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def versions_for_run(client: MlflowClient, name: str, run_id: str) -> list[ModelVersion]:
    """Versions of ``name`` created from ``run_id``, oldest first."""
    found = client.search_model_versions(f"name = '{_quote(name)}' and run_id = '{run_id}'")
    return sorted(found, key=lambda v: int(v.version))


def register_version(
    client: MlflowClient,
    name: str,
    model_id: str,
    run_id: str,
    tags: dict[str, str] | None = None,
    description: str | None = None,
) -> tuple[ModelVersion, bool]:
    """Register a logged model as a version of ``name``, at most once per run.

    A retry after a lost response, or a second registration of the same run, returns the
    version that already exists instead of creating another. If two callers race past the
    check, the later version is deleted and both get the earlier one.

    Args:
        client: the MLflow client.
        name: the registered model name.
        model_id: the logged model's id (``m-...``).
        run_id: the run that produced the model (the idempotency key).
        tags: tags for the new version.
        description: description of the registered model when it is created.

    Returns:
        The version, and whether this call created it.
    """
    ensure_registered_model(client, name, description)
    existing = versions_for_run(client, name, run_id)
    if existing:
        return existing[0], False
    from modelops.tracking import use_tracking_uri

    with use_tracking_uri(client.tracking_uri):  # MLflow resolves models:/ via the global URI
        created = client.create_model_version(
            name,
            source=f"models:/{model_id}",
            run_id=run_id,
            tags={SOURCE_RUN_TAG: run_id, **(tags or {})},
            model_id=model_id,
        )
    winners = versions_for_run(client, name, run_id)
    if winners and winners[0].version != created.version:
        client.delete_model_version(name, created.version)
        return winners[0], False
    return created, True


def _quote(value: str) -> str:
    return value.replace("'", "\\'")


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version ``alias`` points at, or None when the alias is unset."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if _is_missing(exc) or "alias" in str(exc).lower():
            return None
        raise


def _now() -> datetime:
    return datetime.now(UTC)


def audit_key(when: datetime) -> str:
    """Tag key for an event at ``when``; sorts chronologically (MLflow keys allow no ':')."""
    return AUDIT_PREFIX + when.strftime("%Y%m%dT%H%M%S.%fZ")


def audit_key_of(record: dict[str, Any]) -> str:
    """The tag key an audit record returned by :func:`write_audit_event` was stored under."""
    return audit_key(datetime.fromisoformat(record["time"]))


def write_audit_event(
    client: MlflowClient, name: str, version: str, event: dict[str, Any]
) -> dict[str, Any]:
    """Append an audit event to a version's tags and return it (with its time)."""
    when = _now()
    record = {"time": when.isoformat(), **event}
    payload = json.dumps(record, default=str, sort_keys=True)
    if len(payload) > 5000:  # MLflow's tag value limit; keep the decision, drop detail
        record["metrics"] = {k: record["metrics"][k] for k in list(record.get("metrics", {}))[:20]}
        payload = json.dumps(record, default=str, sort_keys=True)[:5000]
    client.set_model_version_tag(name, version, audit_key(when), payload)
    return record


def audit_events(version: ModelVersion) -> list[dict[str, Any]]:
    """The audit events recorded on a version, oldest first."""
    events = []
    for key in sorted(k for k in version.tags if k.startswith(AUDIT_PREFIX)):
        try:
            events.append(json.loads(version.tags[key]))
        except json.JSONDecodeError:
            events.append({"time": key.removeprefix(AUDIT_PREFIX), "raw": version.tags[key]})
    return events


def get_version(client: MlflowClient, name: str, version: str | int) -> ModelVersion:
    """A model version, with a clear error when it does not exist.

    Raises:
        ModelNotFound: no such registered model or version.
    """
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        if _is_missing(exc):
            raise ModelNotFound(
                f"Model {name!r} has no version {version}. List versions with "
                f"`python -m modelops versions {name}`."
            ) from exc
        raise


def set_alias_audited(
    client: MlflowClient,
    name: str,
    alias: str,
    version: str,
    action: str,
    actor: str,
    reason: str,
    flow_run_id: str | None = None,
    metrics: dict[str, float] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Point ``alias`` at ``version`` and record the move, as one step for the user.

    If writing the audit event fails after the alias moved, the alias is put back where it
    was before the error propagates, so an alias never points at a version without the
    record of how it got there. Re-running the same move (a retry) is a no-op that returns
    the event already recorded.

    Returns:
        The audit event.

    Raises:
        RegistryError: the alias could not be restored after a failure (says where it points).
    """
    previous = alias_version(client, name, alias)
    if previous == str(version) and flow_run_id:
        current = get_version(client, name, version)
        for event in reversed(audit_events(current)):
            if (
                event.get("flow_run_id") == flow_run_id
                and event.get("action") == action
                and event.get("alias") == alias
            ):
                return event
    event = {
        "action": action,
        "alias": alias,
        "from_version": previous,
        "to_version": str(version),
        "actor": actor,
        "reason": reason,
        "flow_run_id": flow_run_id,
        "metrics": metrics or {},
        **(extra or {}),
    }
    client.set_registered_model_alias(name, alias, str(version))
    try:
        return write_audit_event(client, name, str(version), event)
    except BaseException as exc:
        try:
            if previous is None:
                client.delete_registered_model_alias(name, alias)
            else:
                client.set_registered_model_alias(name, alias, previous)
        except Exception as restore_exc:
            raise RegistryError(
                f"Moving alias {alias!r} of {name!r} to version {version} failed while writing "
                f"its audit record ({exc}), and restoring it to {previous} also failed "
                f"({restore_exc}). Check the alias by hand."
            ) from exc
        raise
