"""What the resolvers call besides the core: the registry's MLflow client and Prefect's flow
runs (imported when a resolver first needs them: Prefect takes seconds to import)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from modelops.graphql.errors import Code, fail


def registry_client() -> Any:
    """The MLflow client the registry functions take."""
    from modelops.registry.stages import _client

    return _client()


def prefect() -> ModuleType:
    """The Prefect adapter: start a deployment's run, read a run, resume one."""
    from modelops.orchestration import flow_runs

    return flow_runs


def require_prefect() -> None:
    """Refuse, saying how to set one up, when no Prefect server is configured."""
    if not prefect().configured():
        raise fail(
            Code.BAD_USER_INPUT,
            "Deployments run through Prefect and no Prefect server is configured: set "
            "PREFECT_API_URL for the API server (make server; make pools deploy; make "
            "worker), then try again.",
        )


def read_flow_run(flow_run_id: str) -> Any:
    """The flow run with this id (NOT_FOUND if there is none)."""
    from uuid import UUID

    require_prefect()
    try:
        key = UUID(flow_run_id)
    except ValueError as exc:
        raise fail(Code.BAD_USER_INPUT, f"Not a flow run id: {flow_run_id!r}") from exc
    run = prefect().read_flow_run(key)
    if run is None:
        raise fail(Code.NOT_FOUND, f"No flow run {flow_run_id}")
    return run
