"""Promotion tasks: resolve the candidate, compare it with the champion, move the aliases."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from pydantic import BaseModel

from modelops import promotion, registry, tracking
from modelops.data import load_table, resolve_data_uri
from modelops.errors import ConfigurationError, PromotionRefused
from tasks.common import IO_TASK, artifact_key, default_actor, flow_run_info, markdown_artifact


class Candidate(BaseModel):
    """The version asked for, and where the lifecycle aliases stood when it was resolved."""

    name: str
    version: str
    run_id: str | None
    champion: str | None
    staging: str | None
    staging_override: str | None = None


def _record_refusal(
    ctx: tracking.TrackingContext, name: str, version: str, reason: str, actor: str | None,
    metrics: dict[str, float] | None = None,
) -> None:  # fmt: skip
    """A refusal is history too: write it on the version it concerns and on the MLflow run."""
    registry.write_audit_event(
        ctx.client(),
        name,
        version,
        {
            "action": "promotion-refused",
            "alias": promotion.PRODUCTION,
            "to_version": version,
            "actor": default_actor(actor),
            "reason": reason,
            "flow_run_id": flow_run_info()["prefect.flow_run_id"] or None,
            "metrics": metrics or {},
            "mlflow_run_id": ctx.parent_run_id,
        },
    )
    tracking.set_tags(ctx, ctx.parent_run_id, {"modelops.promotion": "refused"})


@task(name="resolve_candidate", **IO_TASK)
def resolve_candidate(
    ctx: tracking.TrackingContext,
    model_name: str,
    version: str,
    override_staging_reason: str | None = None,
    actor: str | None = None,
) -> Candidate:
    """Resolve a version number, 'latest' or alias; refuse it unless staged (or overridden)."""
    client = ctx.client()
    mv = promotion.resolve_version(client, model_name, version)
    state = promotion.AliasState.read(client, model_name)
    candidate = Candidate(
        name=model_name,
        version=str(mv.version),
        run_id=mv.run_id,
        champion=state.production,
        staging=state.staging,
    )
    if state.production == candidate.version:
        return candidate  # already the champion: promotion will be a no-op
    try:
        if promotion.check_staged(mv, state.staging, override_staging_reason):
            candidate.staging_override = override_staging_reason
    except PromotionRefused as exc:
        _record_refusal(ctx, model_name, candidate.version, str(exc), actor)
        raise
    tracking.log_params(
        ctx,
        ctx.parent_run_id,
        {"candidate_version": candidate.version, "champion_version": state.production or "none"},
    )
    return candidate


@task(name="compare_with_champion", **IO_TASK)
def compare_with_champion(
    ctx: tracking.TrackingContext,
    candidate: Candidate,
    held_out_path: str | None,
    metrics: list[str],
    margin: float,
    target: str | None = None,
    actor: str | None = None,
) -> promotion.Comparison | None:
    """Score champion and challenger on the same held-out data; refuse a worse challenger."""
    logger = get_run_logger()
    if candidate.champion is None or candidate.champion == candidate.version:
        logger.info("No other champion in production: the staging gate result stands.")
        return None
    if not held_out_path:
        raise ConfigurationError(
            f"{candidate.name!r} has a production version ({candidate.champion}): pass "
            f"held_out_path (a CSV/Parquet with the target) to compare it with the challenger."
        )
    client = ctx.client()
    with tracking.child_run(ctx, "compare_with_champion") as run_id:
        frame = load_table(resolve_data_uri(held_out_path))
        champion = promotion.load_scoring_model(client, candidate.name, candidate.champion)
        challenger = promotion.load_scoring_model(client, candidate.name, candidate.version)
        label = target or challenger.target or champion.target
        if not label:
            raise ConfigurationError("Name the target column of the held-out data (target=...).")
        scores = {
            "champion": promotion.score_on(champion, frame, label),
            "challenger": promotion.score_on(challenger, frame, label),
        }
        comparison = promotion.compare(scores["champion"], scores["challenger"], metrics, margin)
        comparison.rows_scored = len(frame)
        for run in (run_id, ctx.parent_run_id):
            tracking.log_metrics(
                ctx, run, {f"{who}.{k}": v for who, m in scores.items() for k, v in m.items()}
            )
        tracking.log_json(ctx, ctx.parent_run_id, comparison.as_dict(), "comparison.json")
    markdown_artifact(
        comparison.markdown(candidate.name, candidate.champion, candidate.version),
        key=artifact_key(candidate.name, "champion-challenger"),
        description="Champion vs challenger on held-out data",
    )
    if not comparison.passed:
        worse = ", ".join(r["metric"] for r in comparison.rows if not r["passed"])
        message = (
            f"Challenger version {candidate.version} is worse than champion version "
            f"{candidate.champion} by more than {margin} on {worse}:\n"
            + "\n".join(
                f"  {r['metric']:<18} champion {r['champion']:.4f}  challenger "
                f"{r['challenger']:.4f}  ({r['difference']:+.4f})"
                for r in comparison.rows
            )
            + "\nProduction is unchanged."
        )
        _record_refusal(
            ctx, candidate.name, candidate.version, message, actor,
            {f"challenger.{k}": v for k, v in scores["challenger"].items() if k in metrics},
        )  # fmt: skip
        raise PromotionRefused(message)
    return comparison


@task(name="promote_candidate", **IO_TASK)
def promote_candidate(
    ctx: tracking.TrackingContext,
    candidate: Candidate,
    comparison: promotion.Comparison | None,
    reason: str,
    archive_existing: bool = True,
    actor: str | None = None,
) -> dict[str, Any]:
    """Point production at the candidate, keep the old champion for rollback, audit both."""
    decided_by = (
        {f"challenger.{r['metric']}": r["challenger"] for r in comparison.rows}
        | {f"champion.{r['metric']}": r["champion"] for r in comparison.rows}
        if comparison
        else {}
    )
    result = promotion.promote_to_production(
        ctx.client(),
        candidate.name,
        candidate.version,
        actor=default_actor(actor),
        reason=reason,
        flow_run_id=flow_run_info()["prefect.flow_run_id"] or None,
        metrics=decided_by,
        archive_existing=archive_existing,
        override_reason=candidate.staging_override,
        extra={"mlflow_run_id": ctx.parent_run_id},
        expected_champion=candidate.champion,
    )
    tracking.set_tags(
        ctx,
        ctx.parent_run_id,
        {"modelops.promotion": "promoted" if result.changed else "unchanged",
         "modelops.alias.production": result.version},
    )  # fmt: skip
    override = candidate.staging_override
    summary = (
        f"**{candidate.name}@production → version {result.version}**"
        + (f" (was {result.previous_production}, kept as `previous-production`)"
           if result.previous_production else " (first production version)")
        + ("" if result.changed else " — already in production, nothing changed")
        + f"\n\n- actor: {default_actor(actor)}\n- reason: {reason}\n"
        + (f"- staging override: {override}\n" if override else "")
    )  # fmt: skip
    markdown_artifact(summary, key=artifact_key(candidate.name, "production"),
                      description=f"{candidate.name} promotion")  # fmt: skip
    get_run_logger().info(summary.replace("**", ""))
    return {
        "name": result.name,
        "version": result.version,
        "previous_production": result.previous_production,
        "changed": result.changed,
    }


@task(name="rollback_model", **IO_TASK)
def rollback_model(
    ctx: tracking.TrackingContext, model_name: str, reason: str, actor: str | None = None
) -> dict[str, Any]:
    """Put production back on previous-production and record why."""
    result = promotion.rollback_production(
        ctx.client(),
        model_name,
        actor=default_actor(actor),
        reason=reason,
        flow_run_id=flow_run_info()["prefect.flow_run_id"] or None,
    )
    tracking.set_tags(
        ctx, ctx.parent_run_id,
        {"modelops.rollback": f"{result.previous_production} -> {result.version}"},
    )  # fmt: skip
    markdown_artifact(
        f"**{model_name}@production rolled back: version {result.previous_production} → "
        f"{result.version}**\n\n- actor: {default_actor(actor)}\n- reason: {reason}\n",
        key=artifact_key(model_name, "production"),
        description=f"{model_name} rollback",
    )
    return {
        "name": model_name,
        "version": result.version,
        "rolled_back": result.previous_production,
    }
