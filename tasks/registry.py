"""Registry tasks: register a version (idempotently) and move an alias with an audit record."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task

from modelops.registry.aliases import STAGING
from modelops.steps import registry as steps
from modelops.tracking import TrackingContext
from modelops.types import (
    AuditEvent,
    LoggedModel,
    RegisteredVersion,
    Reuse,
    TrainedModel,
    TrainingKey,
)
from tasks.common import IO_TASK, artifact_key, markdown_artifact


@task(name="register_model", **IO_TASK)
def register_model(
    ctx: TrackingContext,
    model_name: str,
    model: LoggedModel | TrainedModel,
    description: str = "",
    tags: dict[str, str] | None = None,
    key: TrainingKey | None = None,
) -> RegisteredVersion:
    """Register the logged model as a new version; a retry never makes a second one."""
    version = steps.register_model(ctx, model_name, model, description, tags=tags, key=key)
    get_run_logger().info(
        "%s version %s of %r (run %s)",
        "Registered" if version.created else "Found existing",
        version.version,
        model_name,
        version.run_id,
    )
    return version


@task(name="find_earlier_attempt", **IO_TASK)
def find_earlier_attempt(
    ctx: TrackingContext, model_name: str
) -> tuple[RegisteredVersion, dict[str, float]] | None:
    """The version an earlier attempt of this flow run registered (a retried flow reuses it)."""
    earlier = steps.earlier_attempt(ctx, model_name)
    if earlier is not None:
        get_run_logger().warning(
            "An earlier attempt of this flow run registered version %s of %r: reusing it "
            "instead of training again.",
            earlier[0].version,
            model_name,
        )
    return earlier


@task(name="find_reusable_version", **IO_TASK)
def find_reusable_version(
    ctx: TrackingContext, model_name: str, key: TrainingKey, force: bool = False
) -> Reuse:
    """A registered version with this training key whose model still loads, to reuse."""
    reuse = steps.find_reusable_version(ctx, model_name, key, force)
    logger = get_run_logger()
    if reuse.version is not None:
        logger.info("%r: %s (training key %s)", model_name, reuse.reason, key.short)
        markdown_artifact(
            f"**{model_name}**: {reuse.reason}.\n\nNothing was trained or registered "
            f"(training key `{key.short}`).",
            key=artifact_key(model_name, "reuse"),
            description=f"{model_name}: reused version {reuse.version.version}",
        )
    else:
        logger.info("Training %r: %s", model_name, reuse.reason)
    return reuse


@task(name="stage_reused_version", **IO_TASK)
def stage_reused_version(
    ctx: TrackingContext, version: RegisteredVersion, reason: str, **options: Any
) -> AuditEvent | None:
    """Ask for the reused version's staging again: a no-op when it holds it (or production)."""
    event = steps.stage_reused_version(ctx, version, reason, **options)
    alias = options.get("alias") or STAGING
    if event is None:
        get_run_logger().info(
            "%s version %s already holds @%s (or production): nothing moved",
            version.name,
            version.version,
            alias,
        )
    else:
        get_run_logger().info("%s@%s -> version %s", version.name, alias, version.version)
    return event


@task(name="set_model_alias", **IO_TASK)
def set_model_alias(
    ctx: TrackingContext, version: RegisteredVersion, reason: str, **options: Any
) -> AuditEvent:
    """Point an alias (``staging`` by default) at the version; record who, when and why.

    ``options`` are :func:`modelops.steps.registry.stage_model`'s: metrics, actor, alias.
    """
    event = steps.stage_model(ctx, version, reason, **options)
    alias = event.alias or STAGING
    moved = f"from version {event.from_version}" if event.from_version else "(new)"
    url = ctx.run_url()
    markdown_artifact(
        f"**{version.name}** `@{alias}` → version **{version.version}** {moved}\n\n"
        f"- actor: {event.actor}\n- reason: {event.reason}\n- time: {event.time}\n"
        + (f"- MLflow run: {url}\n" if url else ""),
        key=artifact_key(version.name, alias),
        description=f"{version.name}@{alias}",
    )
    get_run_logger().info("%s@%s -> version %s", version.name, alias, version.version)
    return event
