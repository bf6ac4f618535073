"""The promotion steps: resolve the candidate, compare it with the champion, move the aliases,
or roll back. Refusals are written into the audit trail before they are raised."""

from __future__ import annotations

from modelops import tracking
from modelops.data import load_table, resolve_data_uri
from modelops.errors import ConfigurationError, PromotionRefused
from modelops.registry import champion as cc
from modelops.registry import promotion as policy
from modelops.registry.aliases import PRODUCTION, AliasState
from modelops.registry.versions import resolve_version
from modelops.types import Candidate, PromotionResult, RollbackResult


def _refuse(
    ctx: tracking.TrackingContext,
    candidate: Candidate,
    reason: str,
    actor: str | None,
    metrics: dict[str, float] | None = None,
) -> PromotionRefused:
    """Record a refusal on the version and the MLflow run; return the error to raise."""
    policy.record_refusal(
        ctx.client(),
        candidate.name,
        candidate.version,
        reason=reason,
        actor=ctx.actor(actor),
        flow_run_id=ctx.flow_run_id,
        metrics=metrics,
        mlflow_run_id=ctx.parent_run_id,
    )
    tracking.set_tags(ctx, ctx.parent_run_id, {"modelops.promotion": "refused"})
    return PromotionRefused(reason)


def recover_interrupted(ctx: tracking.TrackingContext, model_name: str) -> list[str]:
    """Finish or abandon what a killed promotion or rollback of the model left half done.

    Returns:
        One line per record rewritten.
    """
    from modelops.registry.store import registered_model

    registered_model(ctx.client(), model_name)  # a clear error for an unknown model
    fixed = policy.recover(ctx.client(), model_name, actor=ctx.actor())
    lines = [f"{e.action} of version {e.to_version} at {e.time}: {e.recovered}" for e in fixed]
    if lines:
        tracking.set_tags(ctx, ctx.parent_run_id, {"modelops.recovered": "; ".join(lines)[:4900]})
    return lines


def resolve_candidate(
    ctx: tracking.TrackingContext,
    model_name: str,
    version: str,
    override_staging_reason: str | None = None,
    actor: str | None = None,
) -> Candidate:
    """Resolve a version number, 'latest' or alias; refuse it unless staged (or overridden).

    Raises:
        ModelNotFound: unknown model, version or alias.
        PromotionRefused: the version is not staged and no override reason was given.
    """
    client = ctx.client()
    mv = resolve_version(client, model_name, version)
    state = AliasState.read(client, model_name)
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
        candidate.staging_override = policy.check_staged(mv, state.staging, override_staging_reason)
    except PromotionRefused as exc:
        raise _refuse(ctx, candidate, str(exc), actor) from None
    tracking.log_params(
        ctx,
        ctx.parent_run_id,
        {"candidate_version": candidate.version, "champion_version": state.production or "none"},
    )
    return candidate


def compare_with_champion(
    ctx: tracking.TrackingContext,
    candidate: Candidate,
    held_out_path: str | None,
    metrics: list[str],
    margin: float,
    target: str | None = None,
    actor: str | None = None,
) -> cc.Comparison | None:
    """Score champion and challenger on the same held-out data; refuse a worse challenger.

    Returns:
        The comparison, or None when there is no other champion (the staging gate stands).

    Raises:
        ConfigurationError: a champion exists but no held-out data was given, or the data does
            not fit the models.
        PromotionRefused: the challenger is worse by more than ``margin``.
    """
    if candidate.champion is None or candidate.champion == candidate.version:
        return None
    if not held_out_path:
        raise ConfigurationError(
            f"{candidate.name!r} has a production version ({candidate.champion}): pass "
            f"held_out_path (a CSV/Parquet with the target) to compare it with the challenger."
        )
    client = ctx.client()
    with tracking.child_run(ctx, "compare_with_champion") as run_id:
        frame = load_table(resolve_data_uri(held_out_path))
        champion = cc.load_scoring_model(client, candidate.name, candidate.champion)
        challenger = cc.load_scoring_model(client, candidate.name, candidate.version)
        label = target or challenger.target or champion.target
        if not label:
            raise ConfigurationError("Name the target column of the held-out data (target=...).")
        scores = {
            "champion": cc.score_on(champion, frame, label),
            "challenger": cc.score_on(challenger, frame, label),
        }
        comparison = cc.compare(scores["champion"], scores["challenger"], metrics, margin)
        comparison.rows_scored = len(frame)
        for run in (run_id, ctx.parent_run_id):
            tracking.log_metrics(
                ctx, run, {f"{who}.{k}": v for who, m in scores.items() for k, v in m.items()}
            )
        tracking.log_json(ctx, ctx.parent_run_id, comparison.as_dict(), "comparison.json")
    if not comparison.passed:
        worse = ", ".join(r["metric"] for r in comparison.rows if not r["passed"])
        message = (
            f"Challenger version {candidate.version} is worse than champion version "
            f"{candidate.champion} by more than {margin} on {worse}:\n{comparison.text()}\n"
            f"Production is unchanged."
        )
        decisive = {f"challenger.{k}": v for k, v in scores["challenger"].items() if k in metrics}
        raise _refuse(ctx, candidate, message, actor, decisive)
    return comparison


def promote_candidate(
    ctx: tracking.TrackingContext,
    candidate: Candidate,
    comparison: cc.Comparison | None,
    reason: str,
    archive_existing: bool = True,
    actor: str | None = None,
) -> PromotionResult:
    """Point production at the candidate, keep the old champion for rollback, audit both.

    Raises:
        RegistryError: production moved since the comparison; nothing was changed.
    """
    if comparison is not None:
        metrics = ", ".join(r["metric"] for r in comparison.rows)
        basis = f"champion/challenger: not worse than version {candidate.champion} on {metrics}"
    else:
        basis = "no champion in production: the quality gate that staged it decided"
    if candidate.staging_override:
        basis += f"; not staged, promoted by override ({candidate.staging_override})"
    change = policy.promote_to_production(
        ctx.client(),
        candidate.name,
        candidate.version,
        actor=ctx.actor(actor),
        reason=reason,
        flow_run_id=ctx.flow_run_id,
        basis=basis,
        metrics=comparison.decisive_metrics() if comparison else {},
        archive_existing=archive_existing,
        override_reason=candidate.staging_override,
        expected_champion=candidate.champion,
        mlflow_run_id=ctx.parent_run_id,
    )
    tracking.set_tags(
        ctx,
        ctx.parent_run_id,
        {
            "modelops.promotion": "promoted" if change.changed else "unchanged",
            f"modelops.alias.{PRODUCTION}": change.version,
        },
    )
    return PromotionResult(
        name=change.name,
        version=change.version,
        previous_production=change.previous_production,
        changed=change.changed,
    )


def promotion_summary(
    result: PromotionResult, actor: str, reason: str, override: str | None
) -> str:
    """The promotion as markdown for people."""
    return (
        f"**{result.name}@production → version {result.version}**"
        + (
            f" (was {result.previous_production}, kept as `previous-production`)"
            if result.previous_production
            else " (first production version)"
        )
        + ("" if result.changed else " — already in production, nothing changed")
        + f"\n\n- actor: {actor}\n- reason: {reason}\n"
        + (f"- staging override: {override}\n" if override else "")
    )


def rollback_model(
    ctx: tracking.TrackingContext, model_name: str, reason: str, actor: str | None = None
) -> RollbackResult:
    """Put production back on previous-production and record why.

    Raises:
        PromotionRefused: nothing to roll back to, or no reason given.
    """
    change = policy.rollback_production(
        ctx.client(),
        model_name,
        actor=ctx.actor(actor),
        reason=reason,
        flow_run_id=ctx.flow_run_id,
        mlflow_run_id=ctx.parent_run_id,
    )
    tracking.set_tags(
        ctx,
        ctx.parent_run_id,
        {
            "modelops.rollback": f"{change.previous_production} -> {change.version}",
        },
    )
    return RollbackResult(
        name=model_name, version=change.version, rolled_back=change.previous_production
    )
