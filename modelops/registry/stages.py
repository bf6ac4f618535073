"""Stages on top of aliases: the seed-compatible Python API of the registry.

``ModelStage``, ``promote_model``, ``get_model_metadata`` and ``load_production_model`` keep the
names and keywords of the original lifecycle module. Stages are derived from aliases and tags
(MLflow's own stages are deprecated since 2.9); every change goes through the same promotion
policy and audit trail as the flows.
"""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING, Any

from modelops.errors import ModelNotFound, PromotionRefused
from modelops.registry.aliases import (
    ARCHIVED_TAG,
    LIFECYCLE_ALIASES,
    PRODUCTION,
    AliasState,
    ModelStage,
    alias_version,
    stage_of,
)
from modelops.registry.listing import versions
from modelops.registry.locks import model_lock
from modelops.registry.promotion import (
    change,
    check_staged,
    promote_to_production,
    record_refusal,
    recover,
    stage_version,
)
from modelops.registry.store import registered_model
from modelops.registry.versions import resolve_version
from modelops.settings import Settings, get_settings
from modelops.types import AuditEvent

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "ModelStage",
    "get_model_metadata",
    "load_production_model",
    "promote_model",
    "stage_of",
]


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
    settings = settings or get_settings()
    client = _client(settings)
    target = ModelStage.parse(stage)
    who = actor or f"user:{getpass.getuser()}"
    with model_lock(client, model_name):
        registered_model(client, model_name)  # a clear error for an unknown model, first
        recover(client, model_name, actor=who)  # as the flows do: resolve what recovery left
        mv = resolve_version(client, model_name, version)
        number = str(mv.version)
        state = AliasState.read(client, model_name)
        if target is ModelStage.PRODUCTION and state.production == number:
            pass  # already in production: nothing to move, nothing to record
        elif target is ModelStage.PRODUCTION:
            try:
                override = check_staged(
                    mv, state.staging, override_staging_reason, settings.require_staging
                )
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
                override_reason=override,
            )
        elif target is ModelStage.STAGING:
            stage_version(client, model_name, number, actor=who, reason=reason)
        else:
            _leave_lifecycle(client, model_name, number, target, state, actor=who, reason=reason)
    return next(
        r for r in get_model_metadata(model_name, settings=settings) if str(r["version"]) == number
    )


def _leave_lifecycle(
    client: MlflowClient,
    name: str,
    number: str,
    target: ModelStage,
    state: AliasState,
    *,
    actor: str,
    reason: str,
) -> None:
    """Archived or None: drop the version's lifecycle aliases (and set or clear the archive
    tag) — never production's, which would leave the model with nothing in production."""
    if state.production == number:
        refusal = (
            f"Version {number} of {name!r} is in production: moving it to {target.value} would "
            f"leave the model without a production version. Roll back (modelops rollback) or "
            f"promote another version first."
        )
        record_refusal(client, name, number, reason=refusal, actor=actor)
        raise PromotionRefused(refusal)
    with change(client, name) as journal:
        removed = [a for a in LIFECYCLE_ALIASES if alias_version(client, name, a) == number]
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
                actor=actor,
                reason=reason,
                alias=",".join(removed) or None,
                from_version=number if removed else None,
            ),
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
