"""The rollout steps: plan it, put the candidate beside the stable version, judge each step
on live evidence, and end it — promoted through the promotion path, or taken out of traffic
with the stable version serving alone.

The candidate takes traffic only while the rollout holds its lease on the server's split
(``PUT /rollout/traffic``, renewed at every poll): a rollout that is killed, or loses its
server, leaves the stable version answering every request within one lease.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import secrets
import time
from pathlib import Path
from typing import Any

from modelops import tracking
from modelops.errors import ConfigurationError, DeploymentFailed, ModelNotFound, TransientError
from modelops.k8s import cluster as k8s_cluster
from modelops.k8s import manifests
from modelops.registry import locks
from modelops.registry import promotion as policy
from modelops.registry.aliases import AliasState
from modelops.registry.versions import resolve_version
from modelops.rollouts import control
from modelops.rollouts.analysis import FAIL, PASS, Analysis, Criteria, analyse
from modelops.rollouts.control import ABORTED_TAG, RolloutAborted, RolloutRecord, RolloutServer
from modelops.rollouts.plan import RolloutPlan, check_steps, check_timing
from modelops.serving import local
from modelops.serving.traffic import Rollout
from modelops.settings import get_settings
from modelops.steps.serving import deploy_to_kubernetes, serving_target
from modelops.types import DeploymentRecord, RolloutResult, ServingTarget

ABORTED_EVENT = "modelops.model.rollout_aborted"


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
    looks = max(1, math.ceil(max_step_seconds / poll_seconds))  # the most a step is judged
    plan = RolloutPlan(
        model_name,
        state.production,
        number,
        mode,
        chosen,
        dataclasses.replace(criteria, looks=looks),
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
    ctx: tracking.TrackingContext,
    plan: RolloutPlan,
    workers: int,
    timeout_seconds: float,
    kubernetes: manifests.ServingSpec | None = None,
    pods_tracking_uri: str | None = None,
) -> RolloutRecord:
    """Serve the candidate beside the stable version, at the first step's share: on this
    machine blue/green (the old server stops once the new one answered its smoke test), or on
    Kubernetes as ``kubernetes`` says (the serving Deployment's verified rollout: every pod
    serves both versions; the token reaches them through a Secret, and so do the tracking
    credentials in ``pods_tracking_uri``, as the deployment flow does); record the rollout for
    the other doors (status, abort).

    Raises:
        DeploymentFailed: the two-version server did not come up; the old one keeps serving
            (on Kubernetes the previous Deployment spec was restored).
    """
    settings = get_settings()
    lease = max(3 * plan.poll_seconds, 30.0)
    folder = control.record_path(settings.home_dir, plan.name).parent
    stamp = time.strftime("%Y%m%dT%H%M%S")
    rollout = Rollout(
        plan.candidate,
        plan.mode,
        plan.weights[0] if plan.mode == "canary" else 0.1,
        secrets.token_urlsafe(24),
        lease,
        # In a pod, the server's own default (under MODELOPS_HOME, its emptyDir).
        str(folder / f"v{plan.stable}-v{plan.candidate}-{stamp}.db")
        if kubernetes is None
        else None,
        plan.sticky_header,
    )
    client = ctx.client()
    target = serving_target(client, plan.name, plan.stable)
    with locks.model_lock(client, plan.name, locks.DEPLOYMENT):
        if kubernetes is None:
            record, timings = local.serve_locally(
                settings.home_dir,
                settings.resolved_tracking_uri,
                target,
                workers,
                timeout_seconds,
                rollout=rollout,
            )
            tracking.log_metrics(
                ctx, ctx.parent_run_id, {f"start.{k}": v for k, v in timings.items()}
            )
            server = RolloutServer(str(record.url), rollout.token, lease, rollout.evidence_path)
        else:
            server = _start_pods(
                ctx, kubernetes, target, rollout, timeout_seconds, pods_tracking_uri
            )
    serving = kubernetes.model_dump(mode="json", exclude={"rollout"}) if kubernetes else None
    return control.save(
        settings.home_dir,
        RolloutRecord(
            plan, server, ctx.flow_run_id, ctx.parent_run_id, time.time(), serving=serving
        ),
    )


def _on(
    spec: manifests.ServingSpec, target: ServingTarget, rollout: Rollout | None
) -> manifests.ServingSpec:
    """``spec`` serving ``target`` (with ``rollout``'s candidate beside it, if given)."""
    return spec.model_copy(
        update={"version": target.version, "run_id": target.run_id, "rollout": rollout}
    )


def _start_pods(
    ctx: tracking.TrackingContext,
    kubernetes: manifests.ServingSpec,
    target: ServingTarget,
    rollout: Rollout,
    timeout_seconds: float,
    pods_tracking_uri: str | None,
) -> RolloutServer:
    """The serving Deployment with the candidate in every pod, verified (or restored), and
    the rollout's hold on those pods."""
    spec = _on(kubernetes, target, rollout)
    api = k8s_cluster.connect()
    secret = manifests.render_rollout_secret(spec)
    k8s_cluster.apply(api, secret)
    try:
        record = deploy_to_kubernetes(
            ctx, target, spec, api, timeout_seconds, 1.0, pods_tracking_uri=pods_tracking_uri
        )
    except BaseException:
        k8s_cluster.delete(api, secret)  # the previous spec serves again, without the token
        raise
    deployment, _ = manifests.render_serving(spec)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    selector = deployment["spec"]["selector"]["matchLabels"]
    pods = control.Pods(
        spec.namespace,
        {**selector, manifests.ROLLOUT_LABEL: rollout.rollout_id},
        int(container["ports"][0]["containerPort"]),
    )
    return RolloutServer(str(record.url), rollout.token, rollout.lease_seconds, None, pods)


def judge_step(ctx: tracking.TrackingContext, rollout: RolloutRecord, index: int) -> Analysis:
    """Move the split to step ``index``, then wait (sleeping, renewing the lease) until the
    evidence of this step decides — a fail at once, a pass once ``min_step_seconds`` passed —
    or ``max_step_seconds`` ran out (inconclusive); log the figures to MLflow.

    Raises:
        RolloutAborted: an operator took the candidate out of traffic.
        TransientError: the server stopped answering (the task retries the step).
    """
    plan, server = rollout.plan, rollout.server
    home = get_settings().home_dir
    weight = plan.weights[index]
    change: dict[str, Any] = {"lease_seconds": server.lease_seconds}
    if plan.mode == "canary":
        change["weight"] = weight
    started = time.time()
    _renewed(home, rollout, control.control(server, **change))
    rollout = control.update(home, rollout, step=index + 1, step_started=started)
    while True:
        time.sleep(min(plan.poll_seconds, max(0.0, started + plan.max_step_seconds - time.time())))
        # The weight too: a pod that restarted since (on Kubernetes) starts at the first step's.
        _renewed(home, rollout, control.control(server, **change))
        result = analyse(control.evidence(server, started), plan.criteria)
        waited = time.time() - started
        if result.verdict == FAIL or waited >= plan.max_step_seconds:
            break
        if result.verdict == PASS and waited >= plan.min_step_seconds:
            break
    control.update(home, rollout, last=result.as_dict())
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


def _renewed(home: Path, rollout: RolloutRecord, split: dict[str, Any]) -> None:
    """Raises RolloutAborted when the split says the candidate was taken out (by an operator:
    this rollout only takes it out itself as it ends, or to wait for approval)."""
    if split.get("active", True):
        return
    control.current(home, rollout)  # an operator's abort, named
    raise RolloutAborted(control.Abort("someone", "the candidate was taken out", time.time()))


def still_running(rollout: RolloutRecord) -> RolloutRecord:
    """This rollout's record now.

    Raises:
        RolloutAborted: an operator aborted it (or its record is gone).
    """
    return control.current(get_settings().home_dir, rollout)


def hold_for_approval(rollout: RolloutRecord) -> RolloutRecord:
    """Every step passed and a person must approve: take the candidate out of traffic (a
    paused run renews no lease) and record that the rollout waits."""
    control.control(rollout.server, active=False)
    return control.update(get_settings().home_dir, rollout, awaiting_approval=True)


def _serve_alone(
    ctx: tracking.TrackingContext,
    rollout: RolloutRecord,
    version: str,
    workers: int,
    timeout_seconds: float,
) -> DeploymentRecord:
    """Serve ``version`` alone where the rollout ran: on this machine blue/green (the
    rollout's two-version server stops once the new one answered its smoke test), or as the
    serving Deployment's verified rollout (then the rollout's token is deleted)."""
    settings = get_settings()
    client = ctx.client()
    name = rollout.plan.name
    target = serving_target(client, name, version)
    with locks.model_lock(client, name, locks.DEPLOYMENT):
        if rollout.serving is None:
            server, _ = local.serve_locally(
                settings.home_dir, settings.resolved_tracking_uri, target, workers, timeout_seconds
            )
            return server
        spec = _on(manifests.ServingSpec(**rollout.serving), target, None)
        api = k8s_cluster.connect()
        record = deploy_to_kubernetes(ctx, target, spec, api, timeout_seconds, poll_seconds=1.0)
        k8s_cluster.delete(api, manifests.rollout_secret_ref(name, spec.namespace))
        return record


def end_rollout(
    ctx: tracking.TrackingContext,
    rollout: RolloutRecord,
    analyses: list[Analysis],
    reason: str,
    *,
    judged: bool = True,
    actor: str | None = None,
    workers: int = 1,
    timeout_seconds: float = 600,
) -> RolloutResult:
    """Take the candidate out of traffic at once, then serve the stable version alone.
    ``judged``: the last of ``analyses`` (the steps judged) ended the rollout — failed, or
    inconclusive; else it was aborted (by an operator, or an error). A fail or an abort tags
    the candidate and audits it with the reason and the evidence. Production does not move.

    Raises:
        DeploymentFailed: the stable-only server did not come up (the two-version server,
            its candidate out of traffic, keeps answering with the stable version).
    """
    plan = rollout.plan
    with contextlib.suppress(DeploymentFailed, TransientError):  # a dead server is out anyway
        control.control(rollout.server, active=False)
    server = _serve_alone(ctx, rollout, plan.stable, workers, timeout_seconds)
    inconclusive = judged and analyses[-1].verdict != FAIL
    outcome = "inconclusive" if inconclusive else "aborted"
    steps = [a.as_dict() for a in analyses]
    if outcome == "aborted":
        control.mark_aborted(ctx.client(), rollout, ctx.actor(actor), reason, steps)
    control.forget(get_settings().home_dir, rollout)
    tracking.set_tags(ctx, ctx.parent_run_id, {"modelops.rollout": outcome})
    return RolloutResult(
        name=plan.name,
        stable=plan.stable,
        candidate=plan.candidate,
        mode=plan.mode,
        outcome=outcome,
        reason=reason,
        production=plan.stable,
        url=server.url,
        steps=steps,
    )


def finish_rollout(
    ctx: tracking.TrackingContext,
    rollout: RolloutRecord,
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
        RolloutAborted: an operator took the candidate out after the last step.
        PromotionRefused: the candidate no longer holds staging.
        RegistryError: production moved during the rollout; nothing was changed.
    """
    plan = rollout.plan
    client = ctx.client()
    steps = [a.as_dict() for a in analyses]
    last = analyses[-1]
    evidence = {
        f"live.{side.role}.{key}": float(getattr(side, key))
        for side in (last.stable, last.candidate)
        for key in ("requests", "labels", "metric", "p99_ms", "error_rate")
        if getattr(side, key) is not None
    }
    home = get_settings().home_dir
    with locks.model_lock(client, plan.name):
        # An operator's abort that came after the last step passed (or during the wait for
        # approval) still wins.
        if not rollout.awaiting_approval:
            renewal = control.control(rollout.server, lease_seconds=rollout.server.lease_seconds)
            _renewed(home, rollout, renewal)
        control.current(home, rollout)
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
    server = _serve_alone(ctx, rollout, plan.candidate, workers, timeout_seconds)
    control.forget(home, rollout)
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
        url=server.url,
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


def aborted_event(
    name: str, stable: str, candidate: str, mode: str, reason: str, steps: int
) -> dict[str, Any]:
    """The ``modelops.model.rollout_aborted`` event: the candidate version it concerns, and why
    (what automations match on)."""
    return {
        "event": ABORTED_EVENT,
        "resource": {
            "prefect.resource.id": f"modelops.model.{name}.{candidate}",
            "prefect.resource.name": f"{name} v{candidate}",
            "modelops.model": name,
            "modelops.version": candidate,
        },
        "payload": {"stable": stable, "mode": mode, "reason": reason, "steps": steps},
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
