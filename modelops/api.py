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

from modelops.promotion import (  # re-exported: one definition of each
    ARCHIVED_TAG,
    PREVIOUS_PRODUCTION,
    PRODUCTION,
    STAGING,
    registered_model,
)


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
    model = registered_model(client, model_name)
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


def promote_model(
    model_name: str,
    version: str | int = "latest",
    stage: str | ModelStage = ModelStage.PRODUCTION,
    archive_existing: bool = True,
    *,
    actor: str | None = None,
    reason: str = "promoted through the Python API",
    override_staging_reason: str | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Move a version to a stage, recording who, when and why on the version.

    Stages map onto aliases: Production → ``production`` (staged versions only, unless
    ``override_staging_reason`` is given; the old champion keeps ``previous-production`` and,
    with ``archive_existing``, is tagged archived); Staging → ``staging``; Archived → drop its
    lifecycle aliases and tag it archived; None → drop its aliases and the archived tag.

    Args:
        model_name: the registered model.
        version: a version number, ``"latest"``, an alias, or ``models:/name/N``.
        stage: the target stage.
        archive_existing: tag the replaced production version archived.
        actor: who is acting (default: the OS user).
        reason: why, for the audit trail.
        override_staging_reason: promote to Production a version that is not staged.
        settings: where MLflow lives (default: from the environment).

    Returns:
        The version's metadata after the change (as :func:`get_model_metadata` rows).

    Raises:
        ModelNotFound: unknown model, version or alias.
        PromotionRefused: Production requested for a version that is not staged.
    """
    import getpass

    from modelops import promotion

    client = _client(settings)
    target = ModelStage.parse(stage)
    mv = promotion.resolve_version(client, model_name, version)
    number = str(mv.version)
    who = actor or f"user:{getpass.getuser()}"
    state = promotion.AliasState.read(client, model_name)
    if target is ModelStage.PRODUCTION:
        overridden = promotion.check_staged(mv, state.staging, override_staging_reason)
        promotion.promote_to_production(
            client,
            model_name,
            number,
            actor=who,
            reason=reason,
            archive_existing=archive_existing,
            override_reason=override_staging_reason if overridden else None,
        )
    elif target is ModelStage.STAGING:
        registry.set_alias_audited(
            client, model_name, STAGING, number, action="set-staging", actor=who, reason=reason
        )
    else:
        journal = promotion.AliasJournal(client, model_name)

        def steps(j: promotion.AliasJournal) -> None:
            for alias in (PRODUCTION, STAGING, PREVIOUS_PRODUCTION):
                if registry.alias_version(client, model_name, alias) == number:
                    j.delete_alias(alias)
            if target is ModelStage.ARCHIVED:
                j.set_tag(number, ARCHIVED_TAG, "true")
            else:
                j.delete_tag(number, ARCHIVED_TAG)
            j.audit(number, {"action": f"set-stage-{target.value.lower()}", "actor": who,
                             "reason": reason, "to_version": number})  # fmt: skip

        promotion._transaction(journal, steps)
    return next(r for r in get_model_metadata(model_name, settings=settings)
                if str(r["version"]) == number)  # fmt: skip


def load_production_model(model_name: str, settings: Settings | None = None) -> Any:
    """The production version as an MLflow pyfunc model (``models:/name@production``).

    Raises:
        ModelNotFound: no such model, or nothing is in production.
    """
    import mlflow.pyfunc

    from modelops.tracking import use_tracking_uri

    settings = settings or get_settings()
    client = _client(settings)
    registered_model(client, model_name)
    if registry.alias_version(client, model_name, PRODUCTION) is None:
        raise ModelNotFound(
            f"Model {model_name!r} has no production version yet: promote one (promotion flow)."
        )
    with use_tracking_uri(settings.resolved_tracking_uri):
        return mlflow.pyfunc.load_model(f"models:/{model_name}@{PRODUCTION}")
