"""Registry tasks: register a version (idempotently) and move an alias with an audit record."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task

from modelops.registry.aliases import STAGING
from modelops.steps import registry as steps
from modelops.tracking import TrackingContext
from modelops.types import AuditEvent, LoggedModel, RegisteredVersion, TrainedModel
from tasks.common import IO_TASK, artifact_key, markdown_artifact


@task(name="register_model", **IO_TASK)
def register_model(
    ctx: TrackingContext,
    model_name: str,
    model: LoggedModel | TrainedModel,
    description: str = "",
    tags: dict[str, str] | None = None,
) -> RegisteredVersion:
    """Register the logged model as a new version; a retry never makes a second one."""
    version = steps.register_model(ctx, model_name, model, description, tags=tags)
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
