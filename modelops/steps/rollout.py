"""The rollout steps: plan it, put the candidate beside the stable version, judge each step
on live evidence, and end it — promoted through the promotion path, or taken out of traffic
with the stable version serving alone.

The candidate takes traffic only while the rollout holds its lease on the server's split
(``PUT /rollout/traffic``, renewed at every poll): a rollout that is killed, or loses its
server, leaves the stable version answering every request within one lease.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from modelops import tracking
from modelops.errors import ConfigurationError, DeploymentFailed, ModelNotFound, TransientError
from modelops.naming import model_stem
from modelops.registry import locks
from modelops.registry import promotion as policy
from modelops.registry.aliases import AliasState
from modelops.registry.audit import write_event
from modelops.registry.versions import resolve_version
from modelops.rollouts.analysis import FAIL, PASS, Analysis, Criteria, analyse
from modelops.rollouts.plan import RolloutPlan, check_steps, check_timing
from modelops.serving import local
from modelops.settings import get_settings
from modelops.steps.serving import serving_target
from modelops.types import AuditEvent, RolloutResult

ABORTED_TAG = "modelops.rollout.aborted"
ABORTED_EVENT = "modelops.model.rollout_aborted"


@dataclass(frozen=True)
class RolloutServer:
    """The two-version server of a rollout, and the rollout's hold on its split."""

    url: str
    token: str
    lease_seconds: float
    evidence_path: str


def plan_rollout(
    ctx: tracking.TrackingContext,
    model_name: str,
    candidate: str,
    mode: str,
    steps: list[float] | None,
    criteria: Criteria,
    *,
    sticky_header: str | None = None,
    min_step_seconds: float = 0.0,
    max_step_seconds: float = 3600.0,
    poll_seconds: float = 15.0,
) -> RolloutPlan:
    """Check the parameters and resolve the versions, before anything changes.

    Raises:
        ConfigurationError: bad steps, mode, criteria or timing; no production version to
            roll out against; a candidate that already is production.
        ModelNotFound: no such model or candidate.
        PromotionRefused: the candidate is not staged (staging first, as every promotion).
    """
    chosen = check_steps(mode, steps)
    criteria.check()
    check_timing(min_step_seconds, max_step_seconds, poll_seconds)
    if sticky_header is not None and mode != "canary":
        raise ConfigurationError("sticky_header is for canary rollouts (shadow answers none).")
    client = ctx.client()
    state = AliasState.read(client, model_name)
    if state.production is None:
        raise ConfigurationError(
            f"{model_name!r} has no production version for a candidate to be judged against: "
            f"promote one first (modelops promote {model_name})."
        )
    version = resolve_version(client, model_name, candidate)
    number = str(version.version)
    if number == state.production:
        raise ConfigurationError(
            f"The candidate {candidate!r} is version {number}, which already is production of "
            f"{model_name!r}: roll out another version (e.g. --candidate staging)."
        )
    policy.check_staged(version, state.staging, None)
    plan = RolloutPlan(
        model_name,
        state.production,
        number,
        mode,
        chosen,
        criteria,
        sticky_header,
        min_step_seconds,
        max_step_seconds,
        poll_seconds,
    )
    tracking.log_params(
        ctx,
        ctx.parent_run_id,
        {
            "stable_version": plan.stable,
            "candidate_version": plan.candidate,
            "rollout_steps": ",".join(f"{s:g}" for s in plan.steps),
        },
    )
    return plan


def start_candidate(
    ctx: tracking.TrackingContext, plan: RolloutPlan, workers: int, timeout_seconds: float
) -> RolloutServer:
    """Serve the candidate beside the stable version on the local target, at the first step's
    share, blue/green (the old server stops once the new one answered its smoke test).

    Raises:
        DeploymentFailed: the two-version server did not come up; the old one keeps serving.
    """
    settings = get_settings()
    lease = max(3 * plan.poll_seconds, 30.0)
    folder = settings.home_dir / "serving" / "rollouts" / model_stem(plan.name)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    rollout = local.Rollout(
        plan.candidate,
        plan.mode,
        plan.weights[0] if plan.mode == "canary" else 0.1,
        secrets.token_urlsafe(24),
        lease,
        str(folder / f"v{plan.stable}-v{plan.candidate}-{stamp}.db"),
        plan.sticky_header,
    )
    client = ctx.client()
    target = serving_target(client, plan.name, plan.stable)
    with locks.model_lock(client, plan.name, locks.DEPLOYMENT):
        record, timings = local.serve_locally(
            settings.home_dir,
            settings.resolved_tracking_uri,
            target,
            workers,
            timeout_seconds,
            rollout=rollout,
        )
    tracking.log_metrics(ctx, ctx.parent_run_id, {f"start.{k}": v for k, v in timings.items()})
    return RolloutServer(str(record.url), rollout.token, lease, rollout.evidence_path)


def _control(server: RolloutServer, **change: Any) -> dict[str, Any]:
    """``PUT /rollout/traffic``: change the split (a weight, the lease, ``active``).

    Raises:
        TransientError: the server did not answer (the task retries).
        DeploymentFailed: it refused.
    """
    import httpx

    try:
        r = httpx.put(
            f"{server.url}/rollout/traffic",
            json=change,
            headers={"Authorization": f"Bearer {server.token}"},
            timeout=30,
        )
    except httpx.HTTPError as exc:
        raise TransientError(f"The rollout's server at {server.url} did not answer: {exc}") from exc
    if r.status_code != 200:
        raise DeploymentFailed(f"The rollout's server refused {change}: {r.text[:300]}")
    return dict(r.json())


def _evidence(server: RolloutServer, since: float) -> dict[str, Any]:
    import httpx

    try:
        r = httpx.get(f"{server.url}/rollout/evidence", params={"since": since}, timeout=120)
        r.raise_for_status()
    except httpx.HTTPError as exc:
        raise TransientError(f"The rollout's server at {server.url} did not answer: {exc}") from exc
    return dict(r.json())


def judge_step(
    ctx: tracking.TrackingContext, plan: RolloutPlan, server: RolloutServer, index: int
) -> Analysis:
    """Move the split to step ``index``, then wait (sleeping, renewing the lease) until the
    evidence of this step decides — a fail at once, a pass once ``min_step_seconds`` passed —
    or ``max_step_seconds`` ran out (inconclusive); log the figures to MLflow.

    Raises:
        TransientError: the server stopped answering (the task retries the step).
    """
    weight = plan.weights[index]
    change: dict[str, Any] = {"lease_seconds": server.lease_seconds}
    if plan.mode == "canary":
        change["weight"] = weight
    _control(server, **change)
    started = time.time()
    while True:
        time.sleep(min(plan.poll_seconds, max(0.0, started + plan.max_step_seconds - time.time())))
        _control(server, lease_seconds=server.lease_seconds)
        result = analyse(_evidence(server, started), plan.criteria)
        waited = time.time() - started
        if result.verdict == FAIL or waited >= plan.max_step_seconds:
            break
        if result.verdict == PASS and waited >= plan.min_step_seconds:
            break
    prefix = f"step{index + 1}"
    figures: dict[str, float] = {f"{prefix}.weight": weight if plan.mode == "canary" else 0.0}
    for side in (result.stable, result.candidate):
        for key in ("requests", "errors", "p50_ms", "p99_ms", "labels", "metric"):
            value = getattr(side, key)
            if value is not None:
                figures[f"{prefix}.{side.role}.{key}"] = float(value)
    for key in ("prediction_psi", "agreement"):
        value = getattr(result.candidate, key)
        if value is not None:
            figures[f"{prefix}.{key}"] = float(value)
    tracking.log_metrics(ctx, ctx.parent_run_id, figures)
    tracking.log_json(ctx, ctx.parent_run_id, result.as_dict(), f"rollout/{prefix}.json")
    return result


def end_rollout(
    ctx: tracking.TrackingContext,
    plan: RolloutPlan,
    server: RolloutServer | None,
    analysis: Analysis | None,
    reason: str,
    *,
    actor: str | None = None,
    workers: int = 1,
    timeout_seconds: float = 600,
) -> RolloutResult:
    """Take the candidate out of traffic at once, then serve the stable version alone; after
    a failed step, tag and audit the candidate with the reason. Production does not move.

    Raises:
        DeploymentFailed: the stable-only server did not come up (the two-version server,
            its candidate out of traffic, keeps answering with the stable version).
    """
    import contextlib

    if server is not None:
        with contextlib.suppress(DeploymentFailed, TransientError):  # a dead server is out
            _control(server, active=False)
    settings = get_settings()
    client = ctx.client()
    target = serving_target(client, plan.name, plan.stable)
    with locks.model_lock(client, plan.name, locks.DEPLOYMENT):
        record, _ = local.serve_locally(
            settings.home_dir, settings.resolved_tracking_uri, target, workers, timeout_seconds
        )
    failed = analysis is not None and analysis.verdict == FAIL
    outcome = "aborted" if failed or analysis is None else "inconclusive"
    steps = [analysis.as_dict()] if analysis is not None else []
    if outcome == "aborted":
        client.set_model_version_tag(plan.name, plan.candidate, ABORTED_TAG, reason[:4000])
        write_event(
            client,
            plan.name,
            plan.candidate,
            AuditEvent.model_validate(
                {
                    "action": "rollout-aborted",
                    "actor": ctx.actor(actor),
                    "reason": reason,
                    "alias": "production",
                    "from_version": plan.stable,
                    "to_version": plan.candidate,
                    "flow_run_id": ctx.flow_run_id,
                    "mlflow_run_id": ctx.parent_run_id,
                    "basis": f"live {plan.mode} rollout",
                    "rollout": steps,  # the live evidence (extra fields are kept)
                }
            ),
        )
    tracking.set_tags(ctx, ctx.parent_run_id, {"modelops.rollout": outcome})
    return RolloutResult(
        name=plan.name,
        stable=plan.stable,
        candidate=plan.candidate,
        mode=plan.mode,
        outcome=outcome,
        reason=reason,
        production=plan.stable,
        url=record.url,
        steps=steps,
    )


def finish_rollout(
    ctx: tracking.TrackingContext,
    plan: RolloutPlan,
    analyses: list[Analysis],
    *,
    reason: str,
    actor: str | None = None,
    workers: int = 1,
    timeout_seconds: float = 600,
) -> RolloutResult:
    """Every step passed: promote the candidate through the promotion path (staging first,
    the promotion lock, ``previous-production``, an audit entry holding the live evidence),
    then serve it alone.

    Raises:
        PromotionRefused: the candidate no longer holds staging.
        RegistryError: production moved during the rollout; nothing was changed.
    """
    client = ctx.client()
    steps = [a.as_dict() for a in analyses]
    last = analyses[-1]
    evidence = {
        f"live.{side.role}.{key}": float(getattr(side, key))
        for side in (last.stable, last.candidate)
        for key in ("requests", "labels", "metric", "p99_ms", "error_rate")
        if getattr(side, key) is not None
    }
    with locks.model_lock(client, plan.name):
        try:
            version = resolve_version(client, plan.name, plan.candidate)
        except ModelNotFound as exc:
            raise ConfigurationError(f"The candidate is gone: {exc}") from exc
        policy.check_staged(version, AliasState.read(client, plan.name).staging, None)
        change = policy.promote_to_production(
            client,
            plan.name,
            plan.candidate,
            actor=ctx.actor(actor),
            reason=reason,
            flow_run_id=ctx.flow_run_id,
            basis=f"live {plan.mode} rollout: every step passed ({'; '.join(last.reasons)})",
            metrics=evidence,
            expected_champion=plan.stable,
            mlflow_run_id=ctx.parent_run_id,
            rollout=steps,
        )
    settings = get_settings()
    target = serving_target(client, plan.name, plan.candidate)
    with locks.model_lock(client, plan.name, locks.DEPLOYMENT):
        record, _ = local.serve_locally(
            settings.home_dir, settings.resolved_tracking_uri, target, workers, timeout_seconds
        )
    tracking.set_tags(ctx, ctx.parent_run_id, {"modelops.rollout": "promoted"})
    return RolloutResult(
        name=plan.name,
        stable=plan.stable,
        candidate=plan.candidate,
        mode=plan.mode,
        outcome="promoted",
        reason=reason,
        production=change.version,
        previous_production=change.previous_production,
        url=record.url,
        steps=steps,
    )


def rollout_table(plan: RolloutPlan, index: int, analysis: Analysis) -> str:
    """A step's comparison as markdown, for the Prefect artifact."""
    rows = analysis.table()
    head = list(rows[0])
    lines = [
        f"**{plan.name}: {plan.mode} rollout of v{plan.candidate} against v{plan.stable}, step "
        f"{index + 1}/{len(plan.steps)}"
        + (f" ({plan.steps[index]:g} %)" if plan.mode == "canary" else "")
        + f": {analysis.verdict}**",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(str(r[k]) for k in head) + " |" for r in rows),
        "",
        *(f"- {reason}" for reason in analysis.reasons),
    ]
    return "\n".join(lines)


def aborted_event(result: RolloutResult) -> dict[str, Any]:
    """The ``modelops.model.rollout_aborted`` event: the candidate version it concerns, and why
    (what automations match on)."""
    return {
        "event": ABORTED_EVENT,
        "resource": {
            "prefect.resource.id": f"modelops.model.{result.name}.{result.candidate}",
            "prefect.resource.name": f"{result.name} v{result.candidate}",
            "modelops.model": result.name,
            "modelops.version": result.candidate,
        },
        "payload": {
            "stable": result.stable,
            "mode": result.mode,
            "reason": result.reason,
            "steps": len(result.steps),
        },
    }


def result_text(result: RolloutResult) -> str:
    """How a rollout ended, as markdown for people."""
    if result.outcome == "promoted":
        head = (
            f"**{result.name}@production -> version {result.candidate}** after a live "
            f"{result.mode} rollout (was {result.previous_production}, kept as "
            f"previous-production)"
        )
    elif result.outcome == "aborted":
        head = (
            f"**Rollout of {result.name} v{result.candidate} aborted**: version {result.stable} "
            f"serves alone; the candidate is tagged {ABORTED_TAG}"
        )
    else:
        head = (
            f"**Rollout of {result.name} v{result.candidate} ended, inconclusive**: version "
            f"{result.stable} serves alone; nothing else changed"
        )
    return f"{head}\n\n- reason: {result.reason}\n- serving at: {result.url}\n"
