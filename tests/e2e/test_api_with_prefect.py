"""The operator API against a real Prefect server and process worker: a deployment followed to
COMPLETED, and the approval round trip (pause, four eyes, approve)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from support import ROOT, free_port, prefect_stack, register_fixture_version, wait_http

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
SECRET = "e2e-secret-0123456789abcdef0123456789abcd"


def _token(sub: str, role: str) -> str:
    return jwt.encode({"sub": sub, "roles": [role], "exp": int(time.time()) + 900}, SECRET)


@pytest.fixture(scope="module")
def stack_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("api-e2e")
    with prefect_stack(tmp) as stack:
        env = {**stack["env"], "MODELOPS_API_JWT_SECRET": SECRET}
        saved = os.environ.get("MLFLOW_TRACKING_URI")
        os.environ["MLFLOW_TRACKING_URI"] = stack["mlflow"]
        try:
            register_fixture_version("approved-api")  # version 1, staged
        finally:
            if saved is None:
                os.environ.pop("MLFLOW_TRACKING_URI")
            else:
                os.environ["MLFLOW_TRACKING_URI"] = saved
        port = free_port()
        log = (tmp / "api.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelops", "api", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", proc)
            yield {**stack, "api": f"http://127.0.0.1:{port}"}
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            log.close()
            subprocess.run(
                [sys.executable, "-m", "modelops", "stop", "approved-api"],
                env=env,
                cwd=ROOT,
                capture_output=True,
                timeout=120,
            )


def _gql(s: dict[str, Any], bearer: str, query: str, **variables: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{s['api']}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {bearer}"},
        timeout=120,
    )
    return response.json()


def _until(s: dict[str, Any], flow_run_id: str, wanted: set[str], timeout: float = 600) -> str:
    query = "query($id: String!) { deploymentStatus(flowRunId: $id) { status } }"
    deadline = time.monotonic() + timeout
    while True:
        status = _gql(s, _token("watcher", "VIEWER"), query, id=flow_run_id)["data"][
            "deploymentStatus"
        ]["status"]
        if status in wanted or time.monotonic() > deadline:
            return status
        time.sleep(1)


def test_approval_round_trip_through_the_api(stack_api: dict[str, Any]) -> None:
    from mlflow import MlflowClient

    request = """mutation($m: String!) { requestProductionPromotion(modelName: $m) {
      flowRunId status requestedBy } }"""
    approve = """mutation($id: String!, $ok: Boolean!) { approvePromotion(flowRunId: $id,
      approve: $ok, comment: "reviewed") { status } }"""
    asked = _gql(stack_api, _token("alice", "ML_ENGINEER"), request, m="approved-api")
    assert asked.get("data"), asked
    run = asked["data"]["requestProductionPromotion"]
    assert run["requestedBy"] == "api:alice"
    assert _until(stack_api, run["flowRunId"], {"PAUSED", "FAILED", "CRASHED"}) == "PAUSED"
    client = MlflowClient(stack_api["mlflow"])
    assert "production" not in client.get_registered_model("approved-api").aliases

    self_approval = _gql(
        stack_api, _token("alice", "OPERATOR"), approve, id=run["flowRunId"], ok=True
    )
    assert self_approval["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    engineer = _gql(
        stack_api, _token("carol", "ML_ENGINEER"), approve, id=run["flowRunId"], ok=True
    )
    assert engineer["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "production" not in client.get_registered_model("approved-api").aliases

    done = _gql(stack_api, _token("bob", "OPERATOR"), approve, id=run["flowRunId"], ok=True)
    assert "errors" not in done or not done["errors"], done
    assert _until(stack_api, run["flowRunId"], {"COMPLETED", "FAILED", "CRASHED"}) == "COMPLETED"
    assert str(client.get_registered_model("approved-api").aliases["production"]) == "1"
    tags = client.get_model_version("approved-api", "1").tags
    assert any("approved by api:bob: reviewed" in v for v in tags.values())


def test_deploy_mutation_is_followed_to_completed(stack_api: dict[str, Any]) -> None:
    deploy = """mutation($m: String!) { deployModelVersion(input: {modelName: $m, version: "1",
      target: "local"}) { jobName namespace status submittedAt flowRunId } }"""
    job = _gql(stack_api, _token("dana", "OPERATOR"), deploy, m="approved-api")
    assert not job.get("errors"), job
    submitted = job["data"]["deployModelVersion"]
    assert submitted["status"] in ("SCHEDULED", "PENDING", "RUNNING")
    assert submitted["jobName"] and submitted["submittedAt"]
    final = _until(stack_api, submitted["flowRunId"], {"COMPLETED", "FAILED", "CRASHED"})
    assert final == "COMPLETED"
