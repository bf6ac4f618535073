"""Registry tasks: register a version (idempotently) and move aliases with an audit record."""

from __future__ import annotations

from prefect import get_run_logger, task
from pydantic import BaseModel

from modelops import registry, tracking
from tasks.common import IO_TASK, artifact_key, default_actor, flow_run_info, markdown_artifact
from tasks.training import TrainedModel


class RegisteredVersion(BaseModel):
    """A model version as the flows report it."""

    name: str
    version: str
    run_id: str
    source: str
    created: bool


@task(name="register_model", **IO_TASK)
def register_model(
    ctx: tracking.TrackingContext, model_name: str, model: TrainedModel, description: str = ""
) -> RegisteredVersion:
    """Register the trained model as a new version; a retry never makes a second one."""
    client = ctx.client()
    prefect_info = flow_run_info()
    version, created = registry.register_version(
        client,
        model_name,
        model_id=model.model_id,
        run_id=model.run_id,
        tags={
            "modelops.parent_run_id": ctx.parent_run_id,
            **{k: v for k, v in prefect_info.items() if v},
        },
        description=description or None,
    )
    tracking.set_tags(
        ctx,
        ctx.parent_run_id,
        {"modelops.registered_model": model_name, "modelops.model_version": version.version},
    )
    get_run_logger().info(
        "%s version %s of %r (run %s)",
        "Registered" if created else "Found existing",
        version.version,
        model_name,
        model.run_id,
    )
    return RegisteredVersion(
        name=model_name,
        version=str(version.version),
        run_id=model.run_id,
        source=str(version.source),
        created=created,
    )


@task(name="set_model_alias", **IO_TASK)
def set_model_alias(
    ctx: tracking.TrackingContext,
    version: RegisteredVersion,
    alias: str,
    reason: str,
    metrics: dict[str, float] | None = None,
    actor: str | None = None,
) -> dict:
    """Point an alias (e.g. ``staging``) at the version and record who, when and why."""
    event = registry.set_alias_audited(
        ctx.client(),
        version.name,
        alias,
        version.version,
        action=f"set-{alias}",
        actor=default_actor(actor),
        reason=reason,
        flow_run_id=flow_run_info()["prefect.flow_run_id"] or None,
        metrics=metrics,
        extra={"mlflow_run_id": ctx.parent_run_id},
    )
    tracking.set_tags(ctx, ctx.parent_run_id, {f"modelops.alias.{alias}": version.version})
    moved = f"from version {event['from_version']}" if event.get("from_version") else "(new)"
    markdown_artifact(
        f"**{version.name}** `@{alias}` → version **{version.version}** {moved}\n\n"
        f"- actor: {event['actor']}\n- reason: {event['reason']}\n- time: {event['time']}\n"
        + (f"- MLflow run: {ctx.run_url()}\n" if ctx.run_url() else ""),
        key=artifact_key(version.name, alias),
        description=f"{version.name}@{alias}",
    )
    get_run_logger().info("%s@%s -> version %s", version.name, alias, version.version)
    return event
