"""The registry steps: register a version (idempotently), find what an earlier attempt of the
same flow run registered, and point an alias at a version with an audit record."""

from __future__ import annotations

from modelops import tracking
from modelops.errors import ConfigurationError
from modelops.registry.aliases import STAGING
from modelops.registry.describe import describe_new_version
from modelops.registry.promotion import move_alias
from modelops.registry.store import is_missing
from modelops.registry.versions import register_version, versions_with_tag
from modelops.types import AuditEvent, LoggedModel, RegisteredVersion, TrainedModel


def register_model(
    ctx: tracking.TrackingContext,
    model_name: str,
    model: LoggedModel | TrainedModel,
    description: str = "",
    tags: dict[str, str] | None = None,
) -> RegisteredVersion:
    """Register the logged model as a new version; a retry never makes a second one.

    Raises:
        ConfigurationError: ``model`` was trained without MLflow, so there is nothing to register.
    """
    logged = model.logged if isinstance(model, TrainedModel) else model
    if logged is None:
        raise ConfigurationError(
            f"The model for {model_name!r} was trained without MLflow: nothing to register."
        )
    version, created = register_version(
        ctx.client(),
        model_name,
        model_id=logged.model_id,
        run_id=logged.run_id,
        tags={"modelops.parent_run_id": ctx.parent_run_id, **ctx.lineage, **(tags or {})},
        description=description or None,
    )
    tracking.set_tags(
        ctx,
        ctx.parent_run_id,
        {"modelops.registered_model": model_name, "modelops.model_version": version.version},
    )
    if created:
        describe_new_version(ctx.client(), model_name, str(version.version), ctx.parent_run_id)
    return RegisteredVersion(
        name=model_name,
        version=str(version.version),
        run_id=logged.run_id,
        source=str(version.source),
        created=created,
    )


def earlier_attempt(
    ctx: tracking.TrackingContext, model_name: str
) -> tuple[RegisteredVersion, dict[str, float]] | None:
    """The version an earlier attempt of this same flow run registered, with the metrics it
    was gated on, or None.

    A flow run retried after its registration succeeded (a later step failed: staging, say)
    must reuse that version rather than train and register another.
    """
    from mlflow.exceptions import MlflowException

    if not ctx.flow_run_id:
        return None
    client = ctx.client()
    try:
        found = versions_with_tag(client, model_name, tracking.FLOW_RUN_TAG, ctx.flow_run_id)
    except MlflowException as exc:
        if is_missing(exc):
            return None
        raise
    if not found:
        return None
    version = found[0]
    parent = version.tags.get("modelops.parent_run_id")
    metrics = dict(client.get_run(parent).data.metrics) if parent else {}
    tracking.set_tags(ctx, ctx.parent_run_id, {"modelops.reused_version": version.version})
    registered = RegisteredVersion(
        name=model_name,
        version=str(version.version),
        run_id=str(version.run_id),
        source=str(version.source),
        created=False,
    )
    return registered, metrics


def stage_model(
    ctx: tracking.TrackingContext,
    version: RegisteredVersion,
    reason: str,
    metrics: dict[str, float] | None = None,
    actor: str | None = None,
    alias: str = STAGING,
) -> AuditEvent:
    """Point ``alias`` (``staging`` unless told otherwise) at the version and record who, when
    and why. A retry of the same move changes nothing."""
    event = move_alias(
        ctx.client(),
        version.name,
        alias,
        version.version,
        action=f"set-{alias}",
        actor=ctx.actor(actor),
        reason=reason,
        flow_run_id=ctx.flow_run_id,
        metrics=metrics,
        mlflow_run_id=ctx.parent_run_id,
    )
    tracking.set_tags(ctx, ctx.parent_run_id, {f"modelops.alias.{alias}": version.version})
    return event
