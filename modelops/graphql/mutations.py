"""The operator API's changes: each checks the caller's role, then calls the same core function
or Prefect deployment the flows and the command line use (same policy, lock and audit trail)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, NoReturn

import strawberry
from strawberry.types import Info

from modelops.errors import ConfigurationError, PromotionRefused
from modelops.graphql.auth import CHANGE_ROLES, PRODUCTION_ROLES, Principal, Role
from modelops.graphql.backends import prefect, read_flow_run, registry_client, require_prefect
from modelops.graphql.errors import Code, checked_name, fail, translate
from modelops.graphql.types import (
    DeployInput,
    DeploymentJob,
    MlModelVersion,
    PromoteInput,
    PromotionRequest,
    RolloutInput,
    RolloutStatus,
)
from modelops.registry import listing as reads
from modelops.registry.approval import check_approver
from modelops.registry.locks import model_lock
from modelops.registry.promotion import record_refusal, recover, rollback_production
from modelops.registry.stages import ModelStage, promote_model
from modelops.registry.versions import resolve_version
from modelops.rollouts import control
from modelops.rollouts.plan import check_steps
from modelops.settings import get_settings
from modelops.steps.rollout import aborted_event

logger = logging.getLogger("modelops.api")

# How long a change waits for another writer of the model (a flow comparing models, say) before
# it answers CONFLICT naming the holder: an HTTP client should not hang for the core's 15 min.
LOCK_WAIT_SECONDS = 30.0


async def _off_the_loop(move: Callable[[], MlModelVersion]) -> MlModelVersion:
    """Run a registry change in a worker thread (contextvars copied), so waiting for the
    model's lock never stops the server answering everyone else; core errors translated."""
    try:
        return await asyncio.to_thread(move)
    except Exception as exc:
        raise translate(exc) from exc


def _require(
    info: Info,
    allowed: frozenset[Role],
    what: str,
    model: str | None = None,
    version: str | None = None,
) -> Principal:
    """The caller, if one of ``allowed``; else FORBIDDEN — logged, and recorded on the model."""
    who: Principal = info.context["principal"]
    if who.may(allowed):
        if model is not None:
            checked_name(model)  # an empty or malformed name: BAD_USER_INPUT, before any work
        return who
    reason = f"{who.describe()} may not {what}: needs one of {', '.join(sorted(allowed))}"
    _refuse(reason, who, model, version)


def _refuse(reason: str, who: Principal, model: str | None, version: str | None) -> NoReturn:
    """Log the refusal, record it on the model (if there is one to record it on), FORBIDDEN."""
    logger.warning("refused: %s", reason)
    if model:
        _record_refusal(model, version, reason, who)
    raise fail(Code.FORBIDDEN, reason)


def _record_refusal(model: str, version: str | None, reason: str, who: Principal) -> None:
    try:
        client = registry_client()
        number = str(resolve_version(client, model, version or "latest").version)
        record_refusal(client, model, number, reason=reason, actor=who.actor)
    except Exception as exc:  # an unknown model: nothing to record it on
        logger.info("refusal not recorded on %r: %s", model, exc)


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
        require_prefect()
        try:
            resolve_version(registry_client(), model_name, version)
        except Exception as exc:
            raise translate(exc) from exc
        run = prefect().start_deployment(
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
        return PromotionRequest.of(run)

    @strawberry.mutation(
        description="Approve or reject a production promotion waiting for "
        "approval (ADMIN or OPERATOR, never the requester)."
    )
    def approve_promotion(
        self, info: Info, flow_run_id: str, approve: bool, comment: str = ""
    ) -> PromotionRequest:

        run = read_flow_run(flow_run_id)
        parameters = run.parameters or {}
        model = str(parameters.get("model_name") or "") or None
        who = _require(info, PRODUCTION_ROLES, "approve a production promotion", model)
        try:
            check_approver(
                str(parameters.get("actor") or ""), who.actor, approver_shown=who.describe()
            )
        except PromotionRefused as exc:
            _refuse(str(exc), who, model, str(parameters.get("version") or "staging"))
        if run.state is None or not run.state.is_paused():
            raise fail(
                Code.CONFLICT,
                f"Flow run {flow_run_id} is not waiting for approval "
                f"(state {run.state.name if run.state else 'unknown'}).",
            )
        prefect().resume(run.id, {"approve": approve, "comment": comment, "approver": who.actor})
        logger.info(
            "%s %s promotion run %s",
            who.describe(),
            "approved" if approve else "rejected",
            flow_run_id,
        )
        return PromotionRequest.of(read_flow_run(flow_run_id))

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
        require_prefect()

        try:
            resolve_version(registry_client(), input.model_name, input.version)
        except Exception as exc:
            raise translate(exc) from exc
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
        run = prefect().start_deployment(
            f"deployment/{input.target}", parameters, ["modelops-api", f"actor:{who.subject}"]
        )
        logger.info(
            "%s deployed %s v%s (%s): flow run %s",
            who.describe(),
            input.model_name,
            input.version,
            input.target,
            run.id,
        )
        return DeploymentJob.of(run, namespace)

    @strawberry.mutation(description="Move a version to a stage (staging first for production).")
    async def promote_model_version(self, info: Info, input: PromoteInput) -> MlModelVersion:
        try:
            stage = ModelStage.parse(input.stage)
        except ConfigurationError as exc:
            raise fail(Code.BAD_USER_INPUT, str(exc)) from exc
        allowed = PRODUCTION_ROLES if stage is ModelStage.PRODUCTION else CHANGE_ROLES
        who = _require(info, allowed, f"promote to {stage.value}", input.model_name, input.version)

        def move() -> MlModelVersion:
            client = registry_client()
            with model_lock(client, input.model_name, wait_seconds=LOCK_WAIT_SECONDS):
                moved = promote_model(
                    input.model_name,
                    input.version,
                    stage=stage,
                    actor=who.actor,
                    reason=input.reason,
                )
            rows = reads.versions(client, input.model_name)
            # The version promote_model moved: input.version may be an alias the move itself
            # changed ("staging", promoted to production, no longer names it).
            number = str(moved["version"])
            return MlModelVersion.of(next(r for r in rows if r.version == number))

        return await _off_the_loop(move)

    @strawberry.mutation(description="Put production back on the previous production version.")
    async def rollback_model(self, info: Info, model_name: str, reason: str) -> MlModelVersion:
        who = _require(info, CHANGE_ROLES, "roll back", model_name, "production")

        def move() -> MlModelVersion:
            client = registry_client()
            # One hold for both steps: no other door may move an alias between the repair of an
            # interrupted change and the rollback decided from its result.
            with model_lock(client, model_name, wait_seconds=LOCK_WAIT_SECONDS):
                recover(client, model_name, actor=who.actor)
                change = rollback_production(client, model_name, actor=who.actor, reason=reason)
            rows = reads.versions(client, model_name)
            return MlModelVersion.of(next(r for r in rows if r.version == str(change.version)))

        return await _off_the_loop(move)

    @strawberry.mutation(
        description="Roll a staged candidate out on live traffic (ADMIN or OPERATOR: it ends "
        "in a production promotion): starts the `rollout/local` deployment."
    )
    def start_rollout(self, info: Info, input: RolloutInput) -> DeploymentJob:
        who = _require(info, PRODUCTION_ROLES, "start a rollout", input.model_name, input.candidate)
        try:
            check_steps(input.mode, input.steps)
        except ConfigurationError as exc:
            raise fail(Code.BAD_USER_INPUT, str(exc)) from exc
        if input.target not in ("local", "kubernetes"):
            raise fail(
                Code.BAD_USER_INPUT, f"target must be local or kubernetes, not {input.target!r}"
            )
        require_prefect()
        try:
            resolve_version(registry_client(), input.model_name, input.candidate)
        except Exception as exc:
            raise translate(exc) from exc
        # metric null: judged without labels; namespace and image null: the worker's defaults
        parameters = {**vars(input), "actor": who.actor}
        run = prefect().start_deployment(
            f"rollout/{input.target}", parameters, ["modelops-api", f"actor:{who.subject}"]
        )
        logger.info(
            "%s started a %s rollout of %s %s: flow run %s",
            who.describe(),
            input.mode,
            input.model_name,
            input.candidate,
            run.id,
        )
        return DeploymentJob.of(run, namespace="")

    @strawberry.mutation(
        description="Take a rollout's candidate out of traffic now (ADMIN or OPERATOR); the "
        "rollout then ends with the stable version serving alone, the candidate tagged and "
        "audited with the reason."
    )
    async def abort_rollout(self, info: Info, model_name: str, reason: str) -> RolloutStatus:
        who = _require(info, PRODUCTION_ROLES, "abort a rollout", model_name)
        home = get_settings().home_dir
        if control.load(home, model_name) is None:
            raise fail(Code.NOT_FOUND, f"No rollout of {model_name!r} is running here.")

        def abort() -> control.RolloutStatus:
            found = control.request_abort(registry_client(), home, model_name, who.actor, reason)
            record = found.record
            if record.awaiting_approval and record.flow_run_id and prefect().configured():
                # The run is paused for an approval that can no longer come: answer it, so it
                # ends the rollout now rather than when the approval times out.
                run = read_flow_run(record.flow_run_id)
                if run.state is not None and run.state.is_paused():
                    answer = {"approve": False, "comment": f"aborted: {reason}"}
                    prefect().resume(run.id, {**answer, "approver": who.actor})
            if found.ended and prefect().configured():  # the flow that would emit it is gone
                plan = record.plan
                why = str(
                    control.RolloutAborted(record.abort or control.Abort(who.actor, reason, 0))
                )
                steps = 1 if record.last else 0
                prefect().emit(
                    aborted_event(plan.name, plan.stable, plan.candidate, plan.mode, why, steps)
                )
            return found

        try:
            found = await asyncio.to_thread(abort)
        except Exception as exc:
            raise translate(exc) from exc
        logger.warning("%s aborted the rollout of %s: %s", who.describe(), model_name, reason)
        return RolloutStatus.of(found)
