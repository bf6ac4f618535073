"""The operator API's GraphQL types and inputs, and how each is made from what the core and
Prefect return."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON as _JSON

from modelops.registry import listing as reads
from modelops.rollouts import control
from modelops.rollouts.analysis import Figures

JSON: Any = _JSON  # a scalar: any JSON value (mypy sees it as NewType)


@strawberry.type
class MlModelVersion:
    version: str
    status: str = strawberry.field(description="The stage: None, Staging, Production, Archived.")
    created_at: str | None
    run_id: str | None
    params: JSON
    metrics: JSON
    aliases: list[str]
    tags: JSON
    source: str
    description: str | None

    @classmethod
    def of(cls, row: reads.VersionRow) -> MlModelVersion:
        return cls(
            version=row.version,
            status=row.status,
            created_at=row.created_at,
            run_id=row.run_id,
            params=row.params,
            metrics=row.metrics,
            aliases=row.aliases,
            tags=row.tags,
            source=row.source,
            description=row.description,
        )


@strawberry.type
class PromotionEvent:
    version: str
    action: str
    from_version: str | None
    to_version: str | None
    actor: str
    reason: str
    time: str
    flow_run_id: str | None
    alias: str | None
    metrics: JSON


@strawberry.type
class PromotionHistory:
    events: list[PromotionEvent]
    total: int
    end_cursor: str | None
    has_next_page: bool


@strawberry.type
class DeploymentJob:
    job_name: str
    namespace: str
    status: str
    submitted_at: str
    flow_run_id: str

    @classmethod
    def of(cls, run: Any, namespace: str) -> DeploymentJob:
        """From a deployment flow run (the namespace from its parameters if not given)."""
        state = run.state
        namespace = namespace or str((run.parameters or {}).get("namespace") or "")
        return cls(
            job_name=run.name,
            namespace=namespace,
            status=state.type.value if state else "PENDING",
            submitted_at=run.created.isoformat() if run.created else "",
            flow_run_id=str(run.id),
        )


@strawberry.type
class PromotionRequest:
    flow_run_id: str
    status: str = strawberry.field(description="The promotion run's state (PAUSED: waiting).")
    requested_by: str

    @classmethod
    def of(cls, run: Any) -> PromotionRequest:
        """From a promotion flow run."""
        state = run.state
        return cls(
            flow_run_id=str(run.id),
            status=state.type.value if state else "PENDING",
            requested_by=str((run.parameters or {}).get("actor") or ""),
        )


@strawberry.input
class DeployInput:
    model_name: str
    version: str = "production"
    namespace: str | None = None
    image: str | None = None
    target: str = "local"


@strawberry.input
class PromoteInput:
    model_name: str
    version: str
    stage: str
    reason: str = "promoted through the API"


@strawberry.type
class RolloutFigures:
    """One version's live figures in the current step."""

    version: str
    role: str = strawberry.field(description="stable or candidate.")
    requests: int
    errors: int
    error_rate: float
    p50_ms: float | None
    p99_ms: float | None
    prediction_psi: float | None = strawberry.field(
        description="The candidate's predictions against the stable version's."
    )
    agreement: float | None = strawberry.field(
        description="Shadow: the share of paired rows both versions predicted alike."
    )
    labels: int
    metric: float | None
    metric_low: float | None
    metric_high: float | None

    @classmethod
    def of(cls, figures: Figures) -> RolloutFigures:
        low, high = figures.interval or (None, None)
        return cls(
            version=figures.version,
            role=figures.role,
            requests=figures.requests,
            errors=figures.errors,
            error_rate=figures.error_rate,
            p50_ms=figures.p50_ms,
            p99_ms=figures.p99_ms,
            prediction_psi=figures.prediction_psi,
            agreement=figures.agreement,
            labels=figures.labels,
            metric=figures.metric,
            metric_low=low,
            metric_high=high,
        )


@strawberry.type
class RolloutStatus:
    model_name: str
    stable: str
    candidate: str
    mode: str
    state: str = strawberry.field(
        description="running; aborted (the candidate is out of traffic, the rollout ends at "
        "its next poll); stopped (the rollout no longer renews its lease: killed or cut off; "
        "the stable version answers alone)."
    )
    step: int = strawberry.field(description="The step being judged, from 1 (0: starting).")
    steps: list[float] = strawberry.field(description="Canary: the candidate's share, percent.")
    weight: float | None = strawberry.field(description="Canary: the share the server applies.")
    in_traffic: bool = strawberry.field(description="Whether the candidate takes requests now.")
    server_url: str
    flow_run_id: str | None
    mlflow_run_id: str | None
    started_at: str
    metric: str | None
    verdict: str | None = strawberry.field(
        description="The current step's evidence so far: pass, fail or inconclusive."
    )
    reasons: list[str]
    versions: list[RolloutFigures]
    aborted_by: str | None
    abort_reason: str | None
    notes: list[str]

    @classmethod
    def of(cls, status: control.RolloutStatus) -> RolloutStatus:
        record, analysis = status.record, status.analysis
        plan = record.plan
        return cls(
            model_name=plan.name,
            stable=plan.stable,
            candidate=plan.candidate,
            mode=plan.mode,
            state=status.state,
            step=record.step,
            steps=list(plan.steps) if plan.mode == "canary" else [],
            weight=status.weight,
            in_traffic=status.in_traffic,
            server_url=record.server.url,
            flow_run_id=record.flow_run_id,
            mlflow_run_id=record.mlflow_run_id,
            started_at=datetime.fromtimestamp(record.started, UTC).isoformat(),
            metric=plan.criteria.metric,
            verdict=analysis.verdict if analysis else None,
            reasons=list(analysis.reasons) if analysis else [],
            versions=[RolloutFigures.of(f) for f in (analysis.stable, analysis.candidate)]
            if analysis
            else [],
            aborted_by=record.abort.actor if record.abort else None,
            abort_reason=record.abort.reason if record.abort else None,
            notes=status.notes,
        )


@strawberry.input
class RolloutInput:
    model_name: str
    candidate: str = "staging"
    mode: str = "canary"
    steps: list[float] | None = None
    sticky_header: str | None = None
    metric: str | None = "roc_auc"
    margin: float = 0.02
    min_requests: int = 200
    min_labels: int = 200
    min_step_seconds: float = 0.0
    max_step_seconds: float = 3600.0
    poll_seconds: float = 15.0
    reason: str = "promoted by a live rollout started through the API"
    target: str = "local"
    namespace: str | None = None  # kubernetes: default ML_MODEL_DEPLOY_NAMESPACE
    image: str | None = None  # kubernetes: default ML_MODEL_DEPLOY_IMAGE
