"""`modelops serve` as a real process on loopback, spoken to over HTTP: both protocols, lineage
in every answer, bad input that never gives a 500, telemetry, samples, and the fast path."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from support_serving import serving

pytestmark = pytest.mark.slow

COLUMNS = [
    "completeness",
    "email_confidence",
    "phone_confidence",
    "source_priority",
    "intent_signal_score",
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A store with a staged-and-promoted lead model, version 1."""
    from support import register_fixture_version

    from modelops import promote_model

    folder = tmp_path_factory.mktemp("served")
    env = {
        "MODELOPS_HOME": str(folder),
        "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
        "MLFLOW_EXPERIMENT_NAME": "serving-tests",
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        register_fixture_version()
        promote_model("lead-scoring", 1, "Production")
        yield {"env": env, "folder": folder}


@pytest.fixture(scope="module")
def server(store: dict[str, Any]) -> Iterator[str]:
    env = {
        **store["env"],
        "MODELOPS_SERVE_FLUSH_SECONDS": "0.5",
        "MODELOPS_SERVE_MAX_BODY_BYTES": "50000",
    }
    with serving(
        "lead-scoring", "--workers", "2", "--sample-dir", str(store["folder"] / "samples"), env=env
    ) as url:
        yield url


def _rows(n: int = 3, seed: int = 5) -> pd.DataFrame:
    from modelops.sample import make_leads

    return make_leads(n, seed=seed).drop(columns="won")


def _split(frame: pd.DataFrame) -> dict[str, Any]:
    return json.loads(frame.to_json(orient="split", index=False))


def test_every_mlflow_input_format_gives_the_same_answer_with_its_lineage(server: str) -> None:
    rows = _rows()
    split = _split(rows)
    records = json.loads(rows.to_json(orient="records"))
    payloads = [
        {"dataframe_split": split},
        {"dataframe_records": records},
        {"instances": records},
        {"inputs": {c: json.loads(rows[c].to_json(orient="values")) for c in COLUMNS}},
        {"inputs": split["data"]},
    ]
    answers = []
    for payload in payloads:
        r = httpx.post(f"{server}/invocations", json=payload, timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model_version"] == "1" == r.headers["X-Model-Version"]
        assert body["mlflow_run_id"] and body["mlflow_run_id"] == r.headers["X-MLflow-Run-Id"]
        assert len(r.headers["X-Request-Id"]) == 32
        answers.append(body["predictions"])
    csv = httpx.post(
        f"{server}/invocations",
        content=rows.to_csv(index=False),
        timeout=30,
        headers={"Content-Type": "text/csv"},
    )
    assert csv.status_code == 200, csv.text
    answers.append(csv.json()["predictions"])
    assert all(a == answers[0] for a in answers) and len(answers[0]) == 3
    asked = httpx.post(
        f"{server}/invocations",
        timeout=30,
        headers={"X-Request-Id": "req-42"},
        json={"dataframe_split": split, "params": {"probabilities": True}},
    )
    assert asked.headers["X-Request-Id"] == "req-42"
    body = asked.json()
    assert body["classes"] == [0, 1] and len(body["probabilities"]) == 3
    assert all(abs(sum(p) - 1) < 1e-6 for p in body["probabilities"])


def test_open_inference_protocol_v2(server: str) -> None:
    assert httpx.get(f"{server}/v2/health/ready").json() == {"ready": True}
    meta = httpx.get(f"{server}/v2/models/lead-scoring").json()
    assert meta["name"] == "lead-scoring" and meta["versions"] == ["1"]
    assert [i["name"] for i in meta["inputs"]] == COLUMNS
    assert {i["datatype"] for i in meta["inputs"]} == {"FP64"}
    rows = _rows(4)
    request = {
        "id": "abc",
        "inputs": [
            {
                "name": c,
                "shape": [4, 1],
                "datatype": "FP64",
                "data": json.loads(rows[c].to_json(orient="values")),
            }
            for c in COLUMNS
        ],
    }
    r = httpx.post(f"{server}/v2/models/lead-scoring/infer", json=request, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["model_name"], body["model_version"], body["id"]) == ("lead-scoring", "1", "abc")
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["predictions"]["shape"] == [4] and outputs["probabilities"]["shape"] == [4, 2]
    mlflow_answer = httpx.post(f"{server}/invocations", json={"dataframe_split": _split(rows)})
    assert outputs["predictions"]["data"] == mlflow_answer.json()["predictions"]
    wrong = httpx.post(f"{server}/v2/models/other/infer", json=request)
    assert wrong.status_code == 404 and "serves 'lead-scoring'" in wrong.json()["error"]


def test_version_says_which_model_answers(server: str) -> None:
    about = httpx.get(f"{server}/version").json()
    assert (about["model_name"], about["model_version"], about["alias"]) == (
        "lead-scoring",
        "1",
        "production",
    )
    assert about["mlflow_run_id"] and about["loaded_at"]
    assert about["engine"] == "onnx" and about["fast_path"]["used"] is True
    assert about["fast_path"]["max_difference"] <= 1e-6


BAD = [
    (b"{not json", "application/json", 400, "not valid JSON"),
    (b"[1, 2]", "application/json", 400, "must be a JSON object"),
    (b'{"inputs": [], "instances": []}', "application/json", 400, "exactly one of"),
    (
        b'{"dataframe_split": {"columns": ["completeness"], "data": [[0.5]]}}',
        "application/json",
        400,
        "Missing input column(s)",
    ),
    (
        json.dumps({"dataframe_records": [{**{c: 0.5 for c in COLUMNS}, "extra": 1}]}).encode(),
        "application/json",
        400,
        "Unexpected column(s) ['extra']",
    ),
    (
        json.dumps(
            {"dataframe_records": [{**{c: 0.5 for c in COLUMNS}, "completeness": "high"}]}
        ).encode(),
        "application/json",
        400,
        "column 'completeness': expected numbers, got 'high'",
    ),
    (
        json.dumps(
            {"dataframe_records": [{**{c: 0.5 for c in COLUMNS}, "completeness": True}]}
        ).encode(),
        "application/json",
        200,
        None,
    ),  # a boolean is a number to a double column
    (
        json.dumps(
            {"dataframe_split": {"columns": [*COLUMNS, COLUMNS[0]], "data": [[0.5] * 6]}}
        ).encode(),
        "application/json",
        400,
        "appear more than once",
    ),
    (
        json.dumps({"dataframe_split": {"columns": COLUMNS, "data": [[0.5] * 4 + [[1]]]}}).encode(),
        "application/json",
        400,
        "column 'intent_signal_score'",
    ),
    (b'{"dataframe_split": {"columns": [], "data": []}}', "application/json", 400, "Empty batch"),
    (b'{"inputs": []}', "application/json", 400, "Empty batch"),
    (b'{"inputs": 7}', "application/json", 400, "list of rows or an object"),
    (b"a,b\n1,2\n", "text/plain", 415, "Unsupported Content-Type"),
    (b"x" * 60000, "application/json", 413, "at most 50000"),
]


@pytest.mark.parametrize(
    ("body", "media", "status", "message"), BAD, ids=[f"{i}-{b[2]}" for i, b in enumerate(BAD)]
)
def test_bad_input_is_a_4xx_with_one_line_and_the_server_keeps_serving(
    server: str, body: bytes, media: str, status: int, message: str | None
) -> None:
    r = httpx.post(
        f"{server}/invocations", content=body, headers={"Content-Type": media}, timeout=30
    )
    assert r.status_code == status, r.text
    if message is not None:
        error = r.json()
        assert message in error["message"] and "\n" not in error["message"]
        assert error["error_code"] in (
            "BAD_REQUEST",
            "UNSUPPORTED_MEDIA_TYPE",
            "REQUEST_LIMIT_EXCEEDED",
        )
        assert r.headers["X-Model-Version"] == "1"
    ok = httpx.post(f"{server}/invocations", json={"dataframe_split": _split(_rows(1))})
    assert ok.status_code == 200


def test_metrics_count_requests_by_code_without_any_500(server: str) -> None:
    for _ in range(3):
        httpx.post(f"{server}/invocations", json={"dataframe_split": _split(_rows(2))})
    text = httpx.get(f"{server}/metrics").text
    assert 'modelops_requests_total{code="200",model="lead-scoring",version="1"}' in text
    assert 'code="500"' not in text
    assert "modelops_request_seconds_bucket" in text and "modelops_rows_total" in text


def test_telemetry_is_one_run_per_process_logged_in_batches(
    server: str, store: dict[str, Any]
) -> None:
    from mlflow import MlflowClient

    for _ in range(10):
        httpx.post(f"{server}/invocations", json={"dataframe_split": _split(_rows(5))})
    client = MlflowClient(tracking_uri=store["env"]["MLFLOW_TRACKING_URI"])
    deadline, runs = time.monotonic() + 30, []
    while time.monotonic() < deadline:
        experiment = client.get_experiment_by_name("serving-tests")
        runs = client.search_runs([experiment.experiment_id], "tags.`modelops.flow` = 'serving'")
        if runs and sum(r.data.metrics.get("requests", 0) for r in runs) > 0:
            break
        time.sleep(0.5)
    assert 1 <= len(runs) <= 2  # one run per worker process, opened when it starts
    run = max(runs, key=lambda r: r.data.metrics.get("requests", 0))
    tags = run.data.tags
    assert tags["modelops.model_name"] == "lead-scoring" and tags["modelops.model_version"] == "1"
    assert tags["modelops.training_run_id"] and tags["inference.engine_id"].startswith(
        "modelops-serve/onnx-"
    )
    assert tags["inference.environment"]
    history = client.get_metric_history(run.info.run_id, "requests")
    assert history and all(m.value >= 1 for m in history)
    assert "latency_ms.p95" in run.data.metrics and "rows" in run.data.metrics
    assert any(k.startswith("labels.dominant.") for k in run.data.metrics)
    assert run.data.metrics["telemetry.dropped_requests"] == 0


def test_telemetry_after_its_experiment_was_deleted_lands_in_the_restored_experiment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone deleted the serving experiment in the MLflow UI: a server started afterwards
    restores it, as every other MLflow write of this project does (``ensure_experiment``),
    instead of failing to open its run at every flush and losing all telemetry."""
    from faults.mlflow_server import MlflowServer
    from mlflow import MlflowClient
    from support import register_fixture_version

    backend = MlflowServer(tmp_path)
    backend.start()
    try:
        uri = f"http://127.0.0.1:{backend.port}"
        env = {
            "MODELOPS_HOME": str(tmp_path / "home"),
            "MLFLOW_TRACKING_URI": uri,
            "MLFLOW_EXPERIMENT_NAME": "serving-deleted",
            "MODELOPS_SERVE_FLUSH_SECONDS": "0.2",
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        register_fixture_version(stage=False)
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name("serving-deleted")
        client.delete_experiment(experiment.experiment_id)
        with serving("lead-scoring", "--version", "1", env=env) as url:
            for _ in range(3):
                ok = httpx.post(f"{url}/invocations", json={"dataframe_split": _split(_rows(2))})
                assert ok.status_code == 200
            deadline, run_id = time.monotonic() + 60, None
            while run_id is None and time.monotonic() < deadline:
                run_id = httpx.get(f"{url}/version").json()["telemetry"]["mlflow_run_id"]
                time.sleep(0.3)
            assert run_id, "the inference run was never opened"
            while time.monotonic() < deadline:
                if client.get_run(run_id).data.metrics.get("requests"):
                    break
                time.sleep(0.3)
        run = client.get_run(run_id)
        assert run.info.experiment_id == experiment.experiment_id
        assert client.get_experiment(experiment.experiment_id).lifecycle_stage == "active"
        assert sum(m.value for m in client.get_metric_history(run_id, "requests")) == 3
    finally:
        backend.kill()


def test_samples_of_inputs_and_outputs_are_written_as_parquet(
    server: str, store: dict[str, Any]
) -> None:
    for _ in range(3):
        httpx.post(f"{server}/invocations", json={"dataframe_split": _split(_rows(4))})
    folder = store["folder"] / "samples" / "lead-scoring" / "v1"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not list(folder.glob("*.parquet")):
        time.sleep(0.5)
    sample = pd.concat(pd.read_parquet(p) for p in folder.glob("*.parquet"))
    assert set(COLUMNS) <= set(sample.columns)
    assert {"prediction", "probability", "request_id", "served_at", "model_version"} <= set(
        sample.columns
    )
    assert set(sample["model_version"]) == {"1"}


def test_runtime_logging_can_be_switched_off(store: dict[str, Any]) -> None:
    from mlflow import MlflowClient

    env = {
        **store["env"],
        "MODELOPS_DISABLE_RUNTIME_LOGGING": "true",
        "MODELOPS_SERVE_FLUSH_SECONDS": "0.2",
    }
    with serving("lead-scoring", "--version", "1", env=env) as url:
        for _ in range(5):
            assert (
                httpx.post(
                    f"{url}/invocations", json={"dataframe_split": _split(_rows(2))}
                ).status_code
                == 200
            )
        time.sleep(1)
        about = httpx.get(f"{url}/version").json()
        assert about["telemetry"]["enabled"] is False
    client = MlflowClient(tracking_uri=store["env"]["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("serving-tests")
    logged = client.search_runs(
        [experiment.experiment_id], f"tags.`modelops.pid` = '{about['pid']}'"
    )
    assert logged == []


def test_the_fast_path_never_changes_an_answer(server: str, store: dict[str, Any]) -> None:
    from modelops.model_io import load_sklearn
    from modelops.sample import make_leads
    from modelops.tracking import get_client

    held_out = make_leads(1000, seed=99).drop(columns="won")
    model, _ = load_sklearn(get_client(store["env"]["MLFLOW_TRACKING_URI"]), "lead-scoring", "1")
    body = httpx.post(
        f"{server}/invocations",
        timeout=60,
        json={"dataframe_split": _split(held_out), "params": {"probabilities": True}},
    ).json()
    expected = model.predict_proba(held_out.astype("float64"))
    assert body["predictions"] == model.predict(held_out.astype("float64")).tolist()
    worst = max(
        abs(a - b)
        for got, want in zip(body["probabilities"], expected, strict=True)
        for a, b in zip(got, want, strict=True)
    )
    assert worst <= 1e-6


def test_a_model_the_fast_path_cannot_match_is_served_by_scikit_learn(
    store: dict[str, Any],
) -> None:
    from support import register_fixture_version

    from modelops.training import EstimatorConfig

    with pytest.MonkeyPatch.context() as mp:
        for key, value in store["env"].items():
            mp.setenv(key, value)
        version = register_fixture_version(
            "forest",
            estimator=EstimatorConfig(
                kind="random_forest", params={"n_estimators": 30, "max_depth": 8}
            ),
        )
    with serving("forest", "--version", version, env=store["env"]) as url:
        about = httpx.get(f"{url}/version").json()
        answer = httpx.post(f"{url}/invocations", json={"dataframe_split": _split(_rows(2))})
    assert about["engine"] == "sklearn" and about["fast_path"]["used"] is False
    assert "differ" in about["fast_path"]["why"] or "convert" in about["fast_path"]["why"]
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == 2
