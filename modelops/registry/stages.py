"""Stages on top of aliases: the seed-compatible Python API of the registry.

``ModelStage``, ``promote_model``, ``get_model_metadata`` and ``load_production_model`` keep the
names and keywords of the original lifecycle module. Stages are derived from aliases and tags
(MLflow's own stages are deprecated since 2.9); every change goes through the same promotion
policy and audit trail as the flows.
"""

from __future__ import annotations

import getpass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from modelops.errors import ConfigurationError, ModelNotFound, PromotionRefused
from modelops.registry.aliases import (
    ARCHIVED_TAG,
    LIFECYCLE_ALIASES,
    PRODUCTION,
    STAGING,
    AliasState,
    alias_version,
)
from modelops.registry.journal import transaction
from modelops.registry.promotion import (
    check_staged,
    promote_to_production,
    record_refusal,
    recover,
    stage_version,
)
from modelops.registry.versions import registered_model, resolve_version
from modelops.settings import Settings, get_settings
from modelops.types import AuditEvent

if TYPE_CHECKING:
    from mlflow import MlflowClient


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
    from modelops.tracking import get_client

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
    from modelops.registry.listing import versions

    return [
        {
            "name": model_name,
            "version": int(r.version),
            "stage": r.status,
            "aliases": r.aliases,
            "created": r.created_at,
            "run_id": r.run_id,
            "source": r.source,
            "status": r.ready,
            "params": r.params,
            "metrics": r.metrics,
            "tags": r.tags,
            "audit": [e.model_dump(mode="json") for e in r.events],
        }
        for r in versions(_client(settings), model_name, stage)
    ]


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
    client = _client(settings)
    target = ModelStage.parse(stage)
    mv = resolve_version(client, model_name, version)
    number = str(mv.version)
    who = actor or f"user:{getpass.getuser()}"
    recover(client, model_name, actor=who)
    state = AliasState.read(client, model_name)
    if target is ModelStage.PRODUCTION and state.production == number:
        pass  # already in production: nothing to move, nothing to record
    elif target is ModelStage.PRODUCTION:
        try:
            overridden = check_staged(mv, state.staging, override_staging_reason)
        except PromotionRefused as exc:
            record_refusal(client, model_name, number, reason=str(exc), actor=who)
            raise
        promote_to_production(
            client,
            model_name,
            number,
            actor=who,
            reason=reason,
            archive_existing=archive_existing,
            override_reason=override_staging_reason if overridden else None,
        )
    elif target is ModelStage.STAGING:
        stage_version(client, model_name, number, actor=who, reason=reason)
    else:
        if state.production == number:
            refusal = (
                f"Version {number} of {model_name!r} is in production: moving it to "
                f"{target.value} would leave the model without a production version. Roll back "
                f"(modelops rollback) or promote another version first."
            )
            record_refusal(client, model_name, number, reason=refusal, actor=who)
            raise PromotionRefused(refusal)
        with transaction(client, model_name) as journal:
            removed = [
                a for a in LIFECYCLE_ALIASES if alias_version(client, model_name, a) == number
            ]
            for alias in removed:
                journal.delete_alias(alias)
            if target is ModelStage.ARCHIVED:
                journal.set_tag(number, ARCHIVED_TAG, "true")
            else:
                journal.delete_tag(number, ARCHIVED_TAG)
            journal.audit(
                number,
                AuditEvent(
                    action=f"set-stage-{target.value.lower()}",
                    actor=who,
                    reason=reason,
                    alias=",".join(removed) or None,
                    from_version=number if removed else None,
                ),
            )
    return next(
        r for r in get_model_metadata(model_name, settings=settings) if str(r["version"]) == number
    )


def load_production_model(model_name: str, settings: Settings | None = None) -> Any:
    """The production version (``models:/name@production``): the scikit-learn model itself
    for scikit-learn versions (``predict``, ``predict_proba``, as the original module
    returned), else an MLflow pyfunc model.

    Raises:
        ModelNotFound: no such model, or nothing is in production.
    """
    from modelops.model_io import load_pyfunc, load_sklearn, read_mlmodel

    client = _client(settings)
    registered_model(client, model_name)
    if alias_version(client, model_name, PRODUCTION) is None:
        raise ModelNotFound(
            f"Model {model_name!r} has no production version yet: promote one (promotion flow)."
        )
    mlmodel, _ = read_mlmodel(client, model_name, PRODUCTION)
    if "sklearn" in mlmodel.flavors:
        return load_sklearn(client, model_name, PRODUCTION)[0]
    return load_pyfunc(client, model_name, PRODUCTION)
