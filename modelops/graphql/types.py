"""The operator API's GraphQL types and inputs, and how each is made from what the core and
Prefect return."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.scalars import JSON as _JSON

from modelops.registry import listing as reads

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
