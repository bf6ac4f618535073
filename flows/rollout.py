"""The `rollout` flow: a staged candidate beside the production version, judged on live
traffic step by step, then promoted — or taken out of traffic with production serving alone."""

from __future__ import annotations

from typing import Annotated, Literal

from prefect import flow
from pydantic import Field

from modelops.errors import PromotionRefused
from modelops.k8s.manifests import serving_spec
from modelops.orchestration.approval import await_decision
from modelops.params import ModelName, RolloutSteps
from modelops.rollouts.analysis import PASS, Criteria
from modelops.rollouts.control import RolloutAborted
from modelops.steps.rollout import rollout_table, still_running
from modelops.types import RolloutResult
from tasks.rollout import (
    end_rollout,
    finish_rollout,
    hold_for_approval,
    judge_step,
    plan_rollout,
    start_candidate,
)
from tasks.tracking import flow_run


@flow(name="rollout", log_prints=True)
def rollout(
    model_name: ModelName = "lead-scoring",
    candidate: str = "staging",
    mode: Literal["canary", "shadow"] = "canary",
    steps: RolloutSteps | None = None,
    sticky_header: str | None = None,
    metric: str | None = "roc_auc",
    margin: Annotated[float, Field(ge=0)] = 0.02,
    min_requests: Annotated[int, Field(ge=1)] = 200,
    min_labels: Annotated[int, Field(ge=0)] = 200,
    max_error_rate_increase: Annotated[float, Field(ge=0)] = 0.01,
    max_p99_ratio: Annotated[float, Field(ge=1)] = 1.5,
    p99_slack_ms: Annotated[float, Field(ge=0)] = 10.0,
    max_prediction_psi: Annotated[float, Field(ge=0)] = 0.25,
    min_step_seconds: Annotated[float, Field(ge=0)] = 0.0,
    max_step_seconds: Annotated[float, Field(gt=0)] = 3600.0,
    poll_seconds: Annotated[float, Field(gt=0)] = 15.0,
    workers: Annotated[int, Field(ge=1, le=64)] = 1,
    target: Literal["local", "kubernetes"] = "local",
    namespace: str | None = None,
    image: str | None = None,
    replicas: Annotated[int, Field(ge=1, le=100)] = 1,
    cluster_tracking_uri_override: str | None = None,
    timeout_seconds: Annotated[float, Field(gt=0)] = 600,
    reason: str = "promoted by a live rollout",
    actor: str | None = None,
    require_approval: bool = False,
    approval_timeout_seconds: Annotated[int, Field(ge=1)] = 86400,
) -> RolloutResult:
    """Roll a candidate out on live traffic (on this machine or on Kubernetes): judged at
    every step, promoted after the last, taken out at the first failed step.

    Args:
        model_name: the registered model.
        candidate: the version or alias to roll out (staged first, as every promotion).
        mode: canary (the candidate answers a share of requests) or shadow (it scores every
            request; clients always get production's answer).
        steps: canary: the candidate's share of requests at each step, in percent, increasing
            (default 10,50); shadow: none.
        sticky_header: canary: a header whose value always meets the same version.
        metric: the live metric judged on feedback labels (roc_auc, accuracy, ...); empty:
            judge on errors, latency and prediction shift only.
        margin: how much worse than production the candidate's live metric may be.
        min_requests: requests each version must have answered in a step.
        min_labels: labels each version must have in a step (with a metric).
        max_error_rate_increase: how much more often the candidate may fail.
        max_p99_ratio: the candidate's p99 latency over production's, at most ...
        p99_slack_ms: ... or this many milliseconds over it (a pause is no regression).
        max_prediction_psi: how far the candidate's predictions may move from production's.
        min_step_seconds: a step lasts at least this long.
        max_step_seconds: a step without enough evidence by then ends the rollout
            (inconclusive: nothing changes).
        poll_seconds: how often the evidence is read (the run sleeps in between).
        workers: server processes (per pod on Kubernetes).
        target: "local" (the model's server on 127.0.0.1) or "kubernetes" (the model's serving
            Deployment, every pod with both versions; reached through the API server with
            the in-cluster config or the kubeconfig).
        namespace: Kubernetes namespace (default: ML_MODEL_DEPLOY_NAMESPACE).
        image: serving image (default: ML_MODEL_DEPLOY_IMAGE, else modelops-flows:<version>).
        replicas: pod count.
        cluster_tracking_uri_override: MLflow URI for pods, if it differs from ours.
        timeout_seconds: how long a server may take to come up.
        reason: why, for the audit trail of the promotion.
        actor: who, for the audit trail (default: the deployment or OS user).
        require_approval: after the last step passed, take the candidate out of traffic and
            pause until someone other than ``actor`` approves its promotion (Prefect UI form,
            or the API's approvePromotion); rejected or not answered within
            ``approval_timeout_seconds``: production serves alone, nothing moves.
        approval_timeout_seconds: how long to wait for an answer.
    """
    params = {
        "model_name": model_name,
        "candidate": candidate,
        "mode": mode,
        "steps": steps,
        "target": target,
    }
    criteria = Criteria(
        metric=metric or None,
        margin=margin,
        min_requests=min_requests,
        min_labels=min_labels,
        max_error_rate_increase=max_error_rate_increase,
        max_p99_ratio=max_p99_ratio,
        p99_slack_ms=p99_slack_ms,
        max_prediction_psi=max_prediction_psi,
    )
    # One rollout of a model at a time: a second one is refused at once, not queued.
    with flow_run("rollout", model_name, params, lock="rollout", wait_seconds=0) as ctx:
        serving = (workers, timeout_seconds)
        plan = plan_rollout(
            ctx,
            model_name,
            candidate,
            mode,
            steps,
            criteria,
            sticky_header=sticky_header,
            min_step_seconds=min_step_seconds,
            max_step_seconds=max_step_seconds,
            poll_seconds=poll_seconds,
        )
        on_kubernetes = None
        if target == "kubernetes":
            on_kubernetes = serving_spec(
                model_name,
                plan.stable,
                None,
                namespace=namespace,
                image=image,
                tracking_uri=cluster_tracking_uri_override,
                flow_run_id=ctx.flow_run_id,
                replicas=replicas,
                workers=workers,
            )
        # A candidate that does not come up leaves the old server serving: nothing to end.
        rollout = start_candidate(
            ctx, plan, workers, timeout_seconds, on_kubernetes, cluster_tracking_uri_override
        )
        analyses = []
        try:
            for index in range(len(plan.steps)):
                analyses.append(judge_step(ctx, rollout, index))
                if analyses[-1].verdict != PASS:
                    why = "; ".join(analyses[-1].reasons)
                    return end_rollout(ctx, rollout, analyses, why, True, actor, *serving)
            if require_approval:  # four eyes on the live evidence, the candidate out meanwhile
                rollout = hold_for_approval(rollout)
                evidence = rollout_table(plan, len(analyses) - 1, analyses[-1])
                try:
                    answer = await_decision(
                        ctx,
                        model_name,
                        plan.candidate,
                        evidence,
                        ctx.actor(actor),
                        approval_timeout_seconds,
                    )
                except PromotionRefused:
                    still_running(rollout)  # an operator's abort is why: end it as an abort
                    raise
                reason = answer.reason(reason)
            return finish_rollout(ctx, rollout, analyses, reason, actor, *serving)
        except RolloutAborted as exc:  # an operator took the candidate out: a normal end
            return end_rollout(ctx, rollout, analyses, str(exc), False, exc.abort.actor, *serving)
        except Exception as exc:  # whatever broke: production alone again, then say what
            first = (str(exc).splitlines() or [""])[0]
            why = f"the rollout stopped: {type(exc).__name__}: {first}"
            end_rollout(ctx, rollout, analyses, why, False, actor, *serving)
            raise


if __name__ == "__main__":
    import sys

    from modelops.cli import run

    run(["rollout", *sys.argv[1:]])
