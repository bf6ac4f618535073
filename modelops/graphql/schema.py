"""The GraphQL schema: registry reads, and changes that go through the project's own core
(same policy, locks, transactions and audit trail as the flows) or its Prefect deployments."""

from __future__ import annotations

import base64
import logging
from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON as _JSON
from strawberry.types import Info

from modelops.errors import ConfigurationError, ModelNotFound, PromotionRefused, RegistryError
from modelops.graphql.auth import CHANGE_ROLES, PRODUCTION_ROLES, Principal, Role
from modelops.registry import listing as reads

logger = logging.getLogger("modelops.api")
JSON: Any = _JSON  # a scalar: any JSON value (mypy sees it as NewType)


class Code(Enum):
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    CONFLICT = "CONFLICT"


def fail(code: Code, message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code.value})


def _client() -> Any:
    from modelops.registry.stages import _client as registry_client

    return registry_client()


def _principal(info: Info) -> Principal:
    return info.context["principal"]


def _require(
    info: Info,
    allowed: frozenset[Role],
    what: str,
    model: str | None = None,
    version: str | None = None,
) -> Principal:
    """The caller, if one of ``allowed``; else FORBIDDEN — logged, and recorded on the model."""
    who = _principal(info)
    if who.may(allowed):
        return who
    reason = f"{who.describe()} may not {what}: needs one of {', '.join(sorted(allowed))}"
    logger.warning("refused: %s", reason)
    if model:
        _record_refusal(model, version, reason, who)
    raise fail(Code.FORBIDDEN, reason)


def _record_refusal(model: str, version: str | None, reason: str, who: Principal) -> None:
    from modelops.registry.promotion import record_refusal
    from modelops.registry.versions import resolve_version

    try:
        client = _client()
        number = str(resolve_version(client, model, version or "latest").version)
        record_refusal(client, model, number, reason=reason, actor=who.actor)
    except Exception as exc:  # an unknown model: nothing to record it on
        logger.info("refusal not recorded on %r: %s", model, exc)


def _translate(exc: Exception) -> GraphQLError:
    if isinstance(exc, GraphQLError):
        return exc
    if isinstance(exc, ModelNotFound):
        return fail(Code.NOT_FOUND, str(exc))
    if isinstance(exc, ConfigurationError):
        return fail(Code.BAD_USER_INPUT, str(exc))
    if isinstance(exc, PromotionRefused):
        return fail(Code.BAD_USER_INPUT, str(exc))
    if isinstance(exc, RegistryError):
        return fail(Code.CONFLICT, str(exc))
    return GraphQLError(f"{type(exc).__name__}: {exc}")


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
            return [MlModelVersion.of(r) for r in reads.versions(_client(), model_name, stage)]
        except Exception as exc:
            raise _translate(exc) from exc

    @strawberry.field
    def ml_model_version(self, model_name: str, version: str) -> MlModelVersion:
        try:
            rows = reads.versions(_client(), model_name)
        except Exception as exc:
            raise _translate(exc) from exc
        row = next((r for r in rows if r.version == str(version)), None)
        if row is None:
            raise fail(Code.NOT_FOUND, f"Model {model_name!r} has no version {version!r}")
        return MlModelVersion.of(row)

    @strawberry.field(description="Every audit event of the model, newest first, paginated.")
    def promotion_history(
        self, model_name: str, first: int = 20, after: str | None = None
    ) -> PromotionHistory:
        if not 1 <= first <= 500:
            raise fail(Code.BAD_USER_INPUT, "first must be between 1 and 500")
        try:
            events = reads.history(_client(), model_name)
        except Exception as exc:
            raise _translate(exc) from exc
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
            return reads.production_at(_client(), model_name, time)
        except Exception as exc:
            raise _translate(exc) from exc

    @strawberry.field(description="The state of a deployModelVersion run, read from Prefect now.")
    def deployment_status(self, flow_run_id: str) -> DeploymentJob:
        return _job(_read_flow_run(flow_run_id), namespace="")


def _prefect() -> Any:
    """The Prefect adapter, imported when a resolver first needs Prefect (it takes seconds)."""
    from modelops.orchestration import flow_runs

    return flow_runs


def _prefect_api() -> None:
    if not _prefect().configured():
        raise fail(
            Code.BAD_USER_INPUT,
            "Deployments run through Prefect and no Prefect server is configured: set "
            "PREFECT_API_URL for the API server (make server; make pools deploy; make "
            "worker), then try again.",
        )


def _read_flow_run(flow_run_id: str) -> Any:
    from uuid import UUID

    _prefect_api()
    try:
        key = UUID(flow_run_id)
    except ValueError as exc:
        raise fail(Code.BAD_USER_INPUT, f"Not a flow run id: {flow_run_id!r}") from exc
    run = _prefect().read_flow_run(key)
    if run is None:
        raise fail(Code.NOT_FOUND, f"No flow run {flow_run_id}")
    return run


def _job(run: Any, namespace: str) -> DeploymentJob:
    state = run.state
    namespace = namespace or str((run.parameters or {}).get("namespace") or "")
    return DeploymentJob(
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


def _promotion_request(run: Any) -> PromotionRequest:
    state = run.state
    return PromotionRequest(
        flow_run_id=str(run.id),
        status=state.type.value if state else "PENDING",
        requested_by=str((run.parameters or {}).get("actor") or ""),
    )


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Ask for a version to go to production: starts the "
        "`promotion/default` deployment with approval required (champion/"
        "challenger, then a pause until someone else approves)."
    )
    def request_production_promotion(
        self,
        info: Info,
        model_name: str,
        version: str = "staging",
        reason: str = "requested through the API",
    ) -> PromotionRequest:
        who = _require(info, CHANGE_ROLES, "request a production promotion", model_name, version)
        _prefect_api()
        try:
            from modelops.registry.versions import resolve_version

            resolve_version(_client(), model_name, version)
        except Exception as exc:
            raise _translate(exc) from exc
        run = _prefect().start_deployment(
            "promotion/default",
            tags=["modelops-api"],
            parameters={
                "model_name": model_name,
                "version": version,
                "reason": reason,
                "actor": who.actor,
                "require_approval": True,
            },
        )
        return _promotion_request(run)

    @strawberry.mutation(
        description="Approve or reject a production promotion waiting for "
        "approval (ADMIN or OPERATOR, never the requester)."
    )
    def approve_promotion(
        self, info: Info, flow_run_id: str, approve: bool, comment: str = ""
    ) -> PromotionRequest:
        run = _read_flow_run(flow_run_id)
        model = str((run.parameters or {}).get("model_name") or "") or None
        who = _require(info, PRODUCTION_ROLES, "approve a production promotion", model)
        requester = str((run.parameters or {}).get("actor") or "")
        if requester == who.actor:
            reason = f"{who.describe()} requested this promotion and cannot approve it (four eyes)"
            logger.warning("refused: %s", reason)
            if model:
                _record_refusal(model, str(run.parameters.get("version") or "staging"), reason, who)
            raise fail(Code.FORBIDDEN, reason)
        if run.state is None or not run.state.is_paused():
            raise fail(
                Code.CONFLICT,
                f"Flow run {flow_run_id} is not waiting for approval "
                f"(state {run.state.name if run.state else 'unknown'}).",
            )
        _prefect().resume(run.id, {"approve": approve, "comment": comment, "approver": who.actor})
        logger.info(
            "%s %s promotion run %s",
            who.describe(),
            "approved" if approve else "rejected",
            flow_run_id,
        )
        return _promotion_request(_read_flow_run(flow_run_id))

    @strawberry.mutation(
        description="Serve a version: starts the project's `deployment` flow "
        "through its Prefect deployment (verified rollout, smoke test, rollback)."
    )
    def deploy_model_version(self, info: Info, input: DeployInput) -> DeploymentJob:
        who = _require(info, CHANGE_ROLES, "deploy", input.model_name, input.version)
        if input.target not in ("local", "kubernetes"):
            raise fail(
                Code.BAD_USER_INPUT, f"target must be local or kubernetes, not {input.target!r}"
            )
        _prefect_api()
        from modelops.registry.versions import resolve_version
        from modelops.settings import get_settings

        try:
            resolve_version(_client(), input.model_name, input.version)
        except Exception as exc:
            raise _translate(exc) from exc
        namespace = input.namespace or (
            get_settings().deploy_namespace if input.target == "kubernetes" else ""
        )
        parameters: dict[str, Any] = {
            "model_name": input.model_name,
            "version": input.version,
            "target": input.target,
        }
        if input.target == "kubernetes":
            parameters["namespace"] = namespace
            if input.image:
                parameters["image"] = input.image
        run = _prefect().start_deployment(
            f"deployment/{input.target}", parameters, ["modelops-api", f"actor:{who.subject}"]
        )
        logger.info(
            "%s deployed %s v%s (%s): flow run %s",
            who.describe(),
            input.model_name,
            input.version,
            input.target,
            run.id,
        )  # type: ignore[union-attr]
        return _job(run, namespace)

    @strawberry.mutation(description="Move a version to a stage (staging first for production).")
    def promote_model_version(self, info: Info, input: PromoteInput) -> MlModelVersion:
        from modelops.registry.stages import ModelStage, promote_model

        try:
            stage = ModelStage.parse(input.stage)
        except ConfigurationError as exc:
            raise fail(Code.BAD_USER_INPUT, str(exc)) from exc
        allowed = PRODUCTION_ROLES if stage is ModelStage.PRODUCTION else CHANGE_ROLES
        who = _require(info, allowed, f"promote to {stage.value}", input.model_name, input.version)
        try:
            promote_model(
                input.model_name, input.version, stage=stage, actor=who.actor, reason=input.reason
            )
            rows = reads.versions(_client(), input.model_name)
        except Exception as exc:
            raise _translate(exc) from exc
        from modelops.registry.versions import resolve_version

        number = str(resolve_version(_client(), input.model_name, input.version).version)
        return MlModelVersion.of(next(r for r in rows if r.version == number))

    @strawberry.mutation(description="Put production back on the previous production version.")
    def rollback_model(self, info: Info, model_name: str, reason: str) -> MlModelVersion:
        from modelops.registry.promotion import recover, rollback_production

        who = _require(info, CHANGE_ROLES, "roll back", model_name, "production")
        try:
            client = _client()
            recover(client, model_name, actor=who.actor)
            change = rollback_production(client, model_name, actor=who.actor, reason=reason)
            rows = reads.versions(client, model_name)
        except Exception as exc:
            raise _translate(exc) from exc
        return MlModelVersion.of(next(r for r in rows if r.version == str(change.version)))


schema = strawberry.Schema(query=Query, mutation=Mutation)
