"""The public Python API on top of the registry (seed-compatible names).

Stages are derived from aliases and tags — MLflow's own stages are deprecated since 2.9.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

from modelops import registry
from modelops.errors import ConfigurationError, ModelNotFound
from modelops.settings import Settings, get_settings
from modelops.tracking import get_client

if TYPE_CHECKING:
    from mlflow import MlflowClient

PRODUCTION = "production"
STAGING = "staging"
PREVIOUS_PRODUCTION = "previous-production"
ARCHIVED_TAG = "modelops.archived"


class ModelStage(StrEnum):
    """Where a version stands, derived from its aliases and tags."""

    NONE = "None"
    STAGING = "Staging"
    PRODUCTION = "Production"
    ARCHIVED = "Archived"

    @classmethod
    def parse(cls, value: str | ModelStage | None) -> ModelStage:
        """Accept ``"production"``, ``"Production"``, ``ModelStage.PRODUCTION`` or None."""
        if value is None:
            return cls.NONE
        if isinstance(value, ModelStage):
            return value
        for stage in cls:
            if stage.value.lower() == str(value).strip().lower():
                return stage
        raise ConfigurationError(
            f"Unknown stage {value!r}; use one of {', '.join(s.value for s in cls)}."
        )


def stage_of(aliases: list[str], tags: dict[str, str]) -> ModelStage:
    """The stage a version is in, from its aliases (production wins) and archive tag."""
    if PRODUCTION in aliases:
        return ModelStage.PRODUCTION
    if STAGING in aliases:
        return ModelStage.STAGING
    if tags.get(ARCHIVED_TAG) == "true":
        return ModelStage.ARCHIVED
    return ModelStage.NONE


def _client(settings: Settings | None = None) -> MlflowClient:
    settings = settings or get_settings()
    return get_client(settings.resolved_tracking_uri, settings.resolved_registry_uri)


def _registered_model(client: MlflowClient, name: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        if getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST":
            raise ModelNotFound(
                f"No registered model named {name!r}. Train one first (the training flow) or "
                f"check the name and MLFLOW_TRACKING_URI/MLFLOW_REGISTRY_URI."
            ) from exc
        raise


def get_model_metadata(
    model_name: str,
    stage: str | ModelStage | None = None,
    settings: Settings | None = None,
) -> list[dict[str, Any]]:
    """Every version of a model (newest first) with stage, aliases, lineage and audit trail.

    Aliases are read from the registered model, not from ``search_model_versions``, which does
    not return them (mlflow/mlflow#9783).

    Args:
        model_name: the registered model.
        stage: keep only versions in this stage (None: all).
        settings: where MLflow lives (default: from the environment).

    Returns:
        One dict per version: version, stage, aliases, created, run_id, source, status,
        params and metrics of its training run, tags, and the audit events (oldest first).

    Raises:
        ModelNotFound: no such registered model.
    """
    client = _client(settings)
    model = _registered_model(client, model_name)
    wanted = ModelStage.parse(stage) if stage is not None else None
    aliases_by_version: dict[str, list[str]] = {}
    for alias, version in (model.aliases or {}).items():
        aliases_by_version.setdefault(str(version), []).append(alias)
    versions = client.search_model_versions(
        f"name = '{model_name.replace(chr(39), chr(92) + chr(39))}'"
    )
    rows = []
    for mv in sorted(versions, key=lambda v: int(v.version), reverse=True):
        aliases = sorted(aliases_by_version.get(str(mv.version), []))
        tags = dict(mv.tags or {})
        current = stage_of(aliases, tags)
        if wanted is not None and current != wanted:
            continue
        params: dict[str, str] = {}
        metrics: dict[str, float] = {}
        if mv.run_id:
            try:
                run = client.get_run(mv.run_id)
                params, metrics = dict(run.data.params), dict(run.data.metrics)
                parent = run.data.tags.get("mlflow.parentRunId")
                if parent:  # the evaluation metrics live on the flow's parent run
                    parent_run = client.get_run(parent)
                    metrics = {**dict(parent_run.data.metrics), **metrics}
            except Exception:  # a deleted run must not hide the version
                pass
        rows.append(
            {
                "name": model_name,
                "version": int(mv.version),
                "stage": current.value,
                "aliases": aliases,
                "created": _ms_to_iso(mv.creation_timestamp),
                "run_id": mv.run_id,
                "source": mv.source,
                "status": mv.status,
                "params": params,
                "metrics": metrics,
                "tags": {k: v for k, v in tags.items() if not k.startswith(registry.AUDIT_PREFIX)},
                "audit": registry.audit_events(mv),
            }
        )
    return rows


def _ms_to_iso(ms: int | None) -> str | None:
    from datetime import UTC, datetime

    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()
