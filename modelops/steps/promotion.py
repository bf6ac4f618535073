"""The promotion steps: resolve the candidate, compare it with the champion, move the aliases,
or roll back. Refusals are written into the audit trail before they are raised."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow.exceptions import MlflowException

from modelops import tracking
from modelops.data import dataset_digest, load_table, resolve_data_uri
from modelops.errors import ConfigurationError, ModelOpsError, PromotionRefused
from modelops.registry import champion as cc
from modelops.registry import promotion as policy
from modelops.registry.aliases import PRODUCTION, AliasState
from modelops.registry.versions import resolve_version
from modelops.steps.data import FRAME_URI
from modelops.steps.training import SPLIT_FILE
from modelops.types import Candidate, PromotionResult, RollbackResult

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

# Fewest rows (of both classes) a comparison may be left with after dropping the rows the
# champion was trained on; with fewer, every held-out row is scored and the table says how
# many the champion had seen.
MIN_COMPARED_ROWS = 50


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


def recheck_candidate(
    ctx: tracking.TrackingContext,
    candidate: Candidate,
    override_staging_reason: str | None = None,
    actor: str | None = None,
) -> None:
    """After a wait (for an approval): the candidate must still be staged, or overridden.

    Raises:
        PromotionRefused: it no longer holds ``staging`` (archived or replaced meanwhile);
            recorded on the version.
    """
    client = ctx.client()
    mv = resolve_version(client, candidate.name, candidate.version)
    try:
        policy.check_staged(
            mv, AliasState.read(client, candidate.name).staging, override_staging_reason
        )
    except PromotionRefused as exc:
        raise _refuse(ctx, candidate, f"After the wait for approval: {exc}", actor) from None


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

    The rows are ``held_out_path``'s, or by default the challenger's own held-out part (the
    rows its training split held out, recorded on its run): never rows the challenger was
    fitted on. Rows the champion was trained on (known when its split was recorded too) would
    flatter it: by default they are left out while at least ``MIN_COMPARED_ROWS`` rows of both
    classes remain; with ``held_out_path`` they are counted, not dropped (the file is the
    caller's choice). The table says which rows were scored and how many the champion had
    seen; the count goes into the audit trail.

    Returns:
        The comparison, or None when there is no other champion (the staging gate stands).

    Raises:
        ConfigurationError: a champion exists but there are no held-out rows (no
            ``held_out_path`` and no readable record of the challenger's), or the data does
            not fit the models.
        PromotionRefused: the challenger is worse by more than ``margin``.
    """
    if candidate.champion is None or candidate.champion == candidate.version:
        return None
    client = ctx.client()
    own = None if held_out_path else _recorded_held_out(client, candidate.name, candidate.version)
    if not held_out_path and own is None:
        raise ConfigurationError(
            f"{candidate.name!r} has a production version ({candidate.champion}) and the "
            f"held-out rows of version {candidate.version} are not recorded or no longer "
            f"readable: pass held_out_path (a CSV/Parquet with the target) to compare it with "
            f"the challenger."
        )
    with tracking.child_run(ctx, "compare_with_champion") as run_id:
        champion = cc.load_scoring_model(client, candidate.name, candidate.champion)
        challenger = cc.load_scoring_model(client, candidate.name, candidate.version)
        label = target or challenger.target or champion.target
        if not label:
            raise ConfigurationError("Name the target column of the held-out data (target=...).")
        if own is not None:
            frame, used = own
        else:
            assert held_out_path is not None  # for the type checker: checked above
            frame = load_table(resolve_data_uri(held_out_path))
            used = f"the file {held_out_path} (all {len(frame):,} rows)"
        seen = _trained_on(client, candidate.name, candidate.champion, frame)
        excluded = 0
        if seen is not None and own is not None and seen.any():
            rest = frame[~seen]
            if len(rest) >= MIN_COMPARED_ROWS and rest[label].nunique() == 2:
                frame, excluded, seen = rest, int(seen.sum()), seen[~seen]
        scores = {
            "champion": cc.score_on(champion, frame, label),
            "challenger": cc.score_on(challenger, frame, label),
        }
        comparison = cc.compare(scores["champion"], scores["challenger"], metrics, margin)
        comparison.rows_scored = len(frame)
        comparison.rows_used = used
        comparison.champion_overlap = None if seen is None else int(seen.sum())
        comparison.excluded = excluded
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


def _split_record(client: MlflowClient, name: str, version: str) -> dict[str, Any] | None:
    """What the version's training split recorded (:data:`SPLIT_FILE`), or None: a version
    logged by hand, or trained before the split was recorded."""
    parent = client.get_model_version(name, version).tags.get("modelops.parent_run_id")
    if not parent:
        return None
    with tempfile.TemporaryDirectory(prefix="modelops-split-") as tmp:
        try:
            path = client.download_artifacts(parent, SPLIT_FILE, tmp)
        except (MlflowException, OSError):
            return None
        record: dict[str, Any] = json.loads(Path(path).read_text())
    return record


def _recorded_table(record: dict[str, Any]) -> pd.DataFrame | None:
    """The table a split was made from, if it can still be read and is unchanged (same
    digest): a DataFrame handed to the Python API, or a file since rewritten, cannot be."""
    if record["source"].startswith(FRAME_URI):
        return None
    try:
        frame = load_table(record["source"])
    except (ModelOpsError, OSError, ValueError):
        return None
    return frame if dataset_digest(frame) == record["digest"] else None


def _recorded_held_out(
    client: MlflowClient, name: str, version: str
) -> tuple[pd.DataFrame, str] | None:
    """The version's held-out rows (exactly those its split held out) and a line saying which."""
    record = _split_record(client, name, version)
    frame = _recorded_table(record) if record and record["test_rows"] else None
    if record is None or frame is None:
        return None
    rows = frame.iloc[record["test_rows"]]
    used = (
        f"the challenger's held-out part of {record['source']} ({len(rows):,} of "
        f"{len(frame):,} rows, digest {record['digest']}), rows it was not trained on"
    )
    return rows, used


def _trained_on(client: MlflowClient, name: str, version: str, frame: pd.DataFrame) -> Any:
    """Which rows of ``frame`` the version was trained on (a boolean array), or None when its
    training rows are not known.

    Rows are matched by content (a hash of the columns both tables have), so this also finds
    the champion's rows when it was trained on another file that shares them; rows whose
    values were written with other types (1 vs 1.0) are not matched.
    """
    import numpy as np
    import pandas as pd

    record = _split_record(client, name, version)
    table = _recorded_table(record) if record else None
    if record is None or table is None:
        return None
    training = np.ones(len(table), dtype=bool)
    training[record["test_rows"]] = False
    columns = [c for c in frame.columns if c in table.columns]
    if not columns:
        return np.zeros(len(frame), dtype=bool)
    known = pd.util.hash_pandas_object(table[training][columns], index=False)
    return pd.util.hash_pandas_object(frame[columns], index=False).isin(set(known)).to_numpy()


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
