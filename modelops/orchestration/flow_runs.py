"""Flow runs for the operator API: start a deployment's run, read a run, resume a paused one.

The operator API (:mod:`modelops.graphql`, an entry point) imports this module; keeping the
Prefect client calls here keeps them out of the resolvers.

Prefect's sync-compatible functions return coroutines when called on a running event loop
(the API server's): every call here runs in a worker thread with no loop.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any
from uuid import UUID


def _off_loop(fn: Any, *args: Any, **kwargs: Any) -> Any:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args, **kwargs).result()


def configured() -> bool:
    """Whether a Prefect server is configured (``PREFECT_API_URL``)."""
    from prefect.settings import get_current_settings

    return bool(get_current_settings().api.url)


def start_deployment(name: str, parameters: dict[str, Any], tags: list[str]) -> Any:
    """Create a flow run of deployment ``name`` (``flow/deployment``) without waiting for it."""
    from prefect.deployments import run_deployment

    return _off_loop(run_deployment, name, parameters=parameters, timeout=0, tags=tags)


def read_flow_run(flow_run_id: UUID) -> Any | None:
    """The flow run, or None if there is no such run."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    def read() -> Any:
        with get_client(sync_client=True) as client:
            try:
                return client.read_flow_run(flow_run_id)
            except ObjectNotFound:
                return None

    return _off_loop(read)


def resume(flow_run_id: UUID, run_input: dict[str, Any]) -> None:
    """Resume a paused flow run with the input it waits for."""
    from prefect.flow_runs import resume_flow_run

    _off_loop(resume_flow_run, flow_run_id, run_input=run_input)


def emit(event: dict[str, Any]) -> None:
    """Emit a Prefect event (``event``, ``resource``, ``payload``) from outside a flow run."""
    from prefect.events import emit_event

    _off_loop(lambda: emit_event(**event))
