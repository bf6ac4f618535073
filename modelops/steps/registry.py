"""The registry steps: register a version (idempotently), find what an earlier attempt of the
same flow run registered, find a version with the same training key to reuse, and point an alias
at a version with an audit record."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelops import tracking
from modelops.errors import ConfigurationError, is_transient
from modelops.registry.aliases import STAGING, AliasState, alias_version
from modelops.registry.describe import describe_new_version
from modelops.registry.locks import model_lock
from modelops.registry.promotion import move_alias
from modelops.registry.store import is_missing
from modelops.registry.versions import register_version, versions_with_tag
from modelops.steps.training import record_key
from modelops.training_key import KEY_TAG, REUSED_TAG
from modelops.types import (
    AuditEvent,
    LoggedModel,
    RegisteredVersion,
    Reuse,
    TrainedModel,
    TrainingKey,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

REUSED = "same data, parameters and code"


def register_model(
    ctx: tracking.TrackingContext,
    model_name: str,
    model: LoggedModel | TrainedModel,
    description: str = "",
    tags: dict[str, str] | None = None,
    key: TrainingKey | None = None,
) -> RegisteredVersion:
    """Register the logged model as a new version; a retry never makes a second one. With
    ``key`` the version and its run carry the training key (what later runs reuse it by).

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
        tags={
            "modelops.parent_run_id": ctx.parent_run_id,
            **ctx.lineage,
            **({KEY_TAG: key.digest} if key else {}),
            **(tags or {}),
        },
        description=description or None,
    )
    if key is not None:
        record_key(ctx, logged.run_id, key)
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


def find_reusable_version(
    ctx: tracking.TrackingContext, model_name: str, key: TrainingKey, force: bool = False
) -> Reuse:
    """The registered version of ``model_name`` trained with ``key`` whose model still loads,
    to reuse instead of training again; else why the run trains.

    One registry search by the key's tag (it works across machines that share the registry);
    the newest such version whose ``MLmodel`` and model files are still there wins.
    """
    if force:
        return Reuse(key=key, reason="force_retrain: trained whatever the registry holds")
    from mlflow.exceptions import MlflowException

    client = ctx.client()
    try:
        found = versions_with_tag(client, model_name, KEY_TAG, key.digest)
    except MlflowException as exc:
        if not is_missing(exc):
            raise
        found = []
    if not found:
        return Reuse(key=key, reason=f"no version of {model_name!r} has training key {key.short}")
    problems = []
    for candidate in reversed(found):
        problem = artifact_problem(client, model_name, str(candidate.version))
        if problem is not None:
            problems.append(f"version {candidate.version} has the same key but {problem}")
            continue
        parent = candidate.tags.get("modelops.parent_run_id")
        recorded = client.get_run(parent).data.metrics if parent else {}
        # The held-out metrics it was gated on; the split's row counts are not the model's.
        metrics = {k: v for k, v in recorded.items() if not k.startswith("split.")}
        version = RegisteredVersion(
            name=model_name,
            version=str(candidate.version),
            run_id=str(candidate.run_id),
            source=str(candidate.source),
            created=False,
        )
        reason = f"reused version {version.version}: {REUSED}"
        tracking.set_tags(
            ctx, ctx.parent_run_id, {REUSED_TAG: version.version, "modelops.reuse": reason}
        )
        return Reuse(key=key, version=version, metrics=metrics, reason=reason)
    reason = "; ".join(problems) + ": trained again"
    tracking.set_tags(ctx, ctx.parent_run_id, {"modelops.reuse": reason[:4900]})
    return Reuse(key=key, reason=reason)


def artifact_problem(client: MlflowClient, model_name: str, version: str) -> str | None:
    """What stops a version's model from loading, cheaply (its ``MLmodel`` is read and the
    files its flavours name are listed, nothing is loaded), or None when they are all there."""
    import tempfile

    import mlflow.artifacts
    from mlflow.models import Model

    from modelops.model_io import download_version, store_uris, version_location

    tracking_uri, _ = store_uris(client)
    try:
        with tempfile.TemporaryDirectory(prefix="modelops-reuse-") as folder:
            model = Model.load(
                str(download_version(client, model_name, version, "MLmodel", folder))
            )
    except Exception as exc:
        if is_transient(exc):
            raise  # the store did not answer: that says nothing about the files
        return f"its MLmodel file cannot be read ({type(exc).__name__}: {str(exc)[:200]})"
    try:
        # The version's location is already resolved (an artifact URI, not models:/).
        location = version_location(client, model_name, version).rstrip("/")
        listed = mlflow.artifacts.list_artifacts(artifact_uri=location, tracking_uri=tracking_uri)
    except Exception as exc:
        if is_transient(exc):
            raise
        return f"its files cannot be listed ({type(exc).__name__}: {str(exc)[:200]})"
    present = {str(f.path).rsplit("/", 1)[-1] for f in listed}
    named = {
        str(value).split("/", 1)[0]
        for flavor in model.flavors.values()
        for field, value in flavor.items()
        if field in ("pickled_model", "model_binary", "model_data", "data") and value
    }
    missing = sorted(named - present)
    if missing or not present - {"MLmodel"}:
        return f"its model file is missing ({', '.join(missing) or 'no model files'})"
    return None


def stage_reused_version(
    ctx: tracking.TrackingContext,
    version: RegisteredVersion,
    reason: str,
    metrics: dict[str, float] | None = None,
    actor: str | None = None,
    alias: str = STAGING,
) -> AuditEvent | None:
    """Ask for the staging a reused version had: a no-op (None, no audit entry) when it holds
    ``alias`` already, or holds production and ``alias`` is staging (staging names the
    candidate *awaiting* promotion: the promotion cleared it); else the move, recorded."""
    client = ctx.client()

    def in_place() -> bool:
        state = AliasState.read(client, version.name)
        now = state.staging if alias == STAGING else alias_version(client, version.name, alias)
        return now == version.version or (alias == STAGING and state.production == version.version)

    # Read first without the lock (the usual re-run: nothing to move, no lock to take), then
    # again under it before moving, since another writer may have moved it in between.
    if in_place():
        return None
    with model_lock(client, version.name):
        if in_place():
            return None
        return stage_model(ctx, version, reason, metrics=metrics, actor=actor, alias=alias)


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
