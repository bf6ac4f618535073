"""The operator API's reads: versions, the audit trail (paginated), production at an instant,
and a deployment run's state."""

from __future__ import annotations

import asyncio
import base64
from datetime import datetime

import strawberry

from modelops.graphql.backends import read_flow_run, registry_client
from modelops.graphql.errors import Code, checked_name, fail, translate
from modelops.graphql.types import (
    DeploymentJob,
    MlModelVersion,
    PromotionEvent,
    PromotionHistory,
    RolloutStatus,
)
from modelops.registry import listing as reads
from modelops.registry.versions import resolve_version
from modelops.rollouts import control
from modelops.settings import get_settings


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return int(base64.urlsafe_b64decode(cursor.encode()).decode().split(":", 1)[1]) + 1
    except (ValueError, IndexError) as exc:
        raise fail(Code.BAD_USER_INPUT, f"Invalid cursor {cursor!r}") from exc


@strawberry.type
class Query:
    @strawberry.field(
        description="Versions of a model, newest first (stage: None, Staging, "
        "Production, Archived)."
    )
    def ml_model_versions(self, model_name: str, stage: str | None = None) -> list[MlModelVersion]:
        try:
            rows = reads.versions(registry_client(), checked_name(model_name), stage)
        except Exception as exc:
            raise translate(exc) from exc
        return [MlModelVersion.of(r) for r in rows]

    @strawberry.field(
        description="One version: a number, 'latest', an alias, or models:/name/N (as "
        "promoteModelVersion accepts)."
    )
    def ml_model_version(self, model_name: str, version: str) -> MlModelVersion:
        try:
            client = registry_client()
            number = str(resolve_version(client, checked_name(model_name), version).version)
            rows = reads.versions(client, model_name)
        except Exception as exc:
            raise translate(exc) from exc
        return MlModelVersion.of(next(r for r in rows if r.version == number))

    @strawberry.field(description="Every audit event of the model, newest first, paginated.")
    def promotion_history(
        self, model_name: str, first: int = 20, after: str | None = None
    ) -> PromotionHistory:
        if not 1 <= first <= 500:
            raise fail(Code.BAD_USER_INPUT, "first must be between 1 and 500")
        try:
            events = reads.history(registry_client(), checked_name(model_name))
        except Exception as exc:
            raise translate(exc) from exc
        start = _offset(after)
        page = events[start : start + first]
        return PromotionHistory(
            events=[
                PromotionEvent(
                    version=v,
                    action=e.action,
                    from_version=e.from_version,
                    to_version=e.to_version,
                    actor=e.actor,
                    reason=e.reason,
                    time=e.time,
                    flow_run_id=e.flow_run_id,
                    alias=e.alias,
                    metrics=e.metrics,
                )
                for v, e in page
            ],
            total=len(events),
            end_cursor=_cursor(start + len(page) - 1) if page else None,
            has_next_page=start + len(page) < len(events),
        )

    @strawberry.field(description="The version that was production at that instant (ISO 8601).")
    def production_at(self, model_name: str, time: datetime) -> str | None:
        try:
            return reads.production_at(registry_client(), checked_name(model_name), time)
        except Exception as exc:
            raise translate(exc) from exc

    @strawberry.field(description="The state of a deployModelVersion run, read from Prefect now.")
    def deployment_status(self, flow_run_id: str) -> DeploymentJob:
        return DeploymentJob.of(read_flow_run(flow_run_id), namespace="")

    @strawberry.field(
        description="The model's live rollout on this machine's local target, read now from "
        "its server (mode, weight, step, each version's figures, the verdict so far); null "
        "when none runs."
    )
    async def rollout_status(self, model_name: str) -> RolloutStatus | None:
        name = checked_name(model_name)
        try:  # the step's analysis reads every answer since it began: off the event loop
            found = await asyncio.to_thread(control.status, get_settings().home_dir, name)
        except Exception as exc:
            raise translate(exc) from exc
        return RolloutStatus.of(found) if found is not None else None
