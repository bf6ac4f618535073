"""The real `training` flow under prefect_test_harness, against a temporary MLflow SQLite store."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import pytest

from flows.training import training
from modelops.errors import QualityGateFailed
from modelops.registry import read_events
from modelops.settings import get_settings
from modelops.tracking import get_client

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def _client() -> Any:
    s = get_settings()
    return get_client(s.resolved_tracking_uri, s.resolved_registry_uri)


def _prefect_artifacts(flow_run_id: UUID) -> dict[str, Any]:
    from prefect.client.orchestration import get_client as prefect_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with prefect_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a for a in found if a.key}


def test_training_registers_stages_and_records_lineage(mlflow_store: str) -> None:
    state = training(return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    flow_run_id = state.state_details.flow_run_id
    client = _client()

    # Registered once and staged.
    assert result.version == "1"
    staged = client.get_model_version_by_alias("lead-scoring", "staging")
    assert str(staged.version) == "1"
    assert 0.75 < result.metrics["roc_auc"] < 0.9, "sample data should give a realistic AUC"
    assert staged.tags["prefect.flow_run_id"] == str(flow_run_id)
    (event,) = read_events(staged)
    assert event.action == "set-staging"
    assert event.to_version == "1" and event.from_version is None
    assert event.reason == "passed the quality gate"
    assert event.flow_run_id == str(flow_run_id)
    assert event.actor.startswith("user:")
    assert event.metrics["roc_auc"] == pytest.approx(result.metrics["roc_auc"])

    # Parent run: tagged with the Prefect flow run, carries the dataset and the metrics.
    parent = client.get_run(result.mlflow_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["prefect.flow_run_id"] == str(flow_run_id)
    assert parent.data.tags["prefect.flow_name"] == "training"
    assert parent.data.tags["modelops.gate"] == "passed"
    assert parent.data.tags["modelops.validation"] == "passed"
    assert parent.data.params["model_name"] == "lead-scoring"
    assert json.loads(parent.data.params["thresholds.roc_auc"]) == 0.7
    (dataset_input,) = parent.inputs.dataset_inputs
    assert dataset_input.dataset.name == "leads.csv"
    assert dataset_input.dataset.digest
    assert "completeness" in dataset_input.dataset.schema

    # One child run per task that logs, each FINISHED, each pointing at the parent.
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{result.mlflow_run_id}'",
    )
    by_name = {r.info.run_name: r for r in children}
    assert set(by_name) == {"load_dataset", "validate_dataset", "fit_model", "evaluate_model"}
    assert all(r.info.status == "FINISHED" for r in children)
    evaluate_files = {f.path for f in client.list_artifacts(by_name["evaluate_model"].info.run_id)}
    assert {"roc_curve.png", "precision_recall_curve.png", "confusion_matrix.png"} <= evaluate_files
    validation = client.list_artifacts(by_name["validate_dataset"].info.run_id, "validation")
    assert [f.path for f in validation] == ["validation/report.json"]
    assert staged.run_id == by_name["fit_model"].info.run_id

    # The registered model loads through pyfunc and predicts on its own input example.
    import mlflow.pyfunc
    import pandas as pd

    model = mlflow.pyfunc.load_model("models:/lead-scoring@staging")
    example = (
        pd.read_csv("modelops/sample_data/leads.csv", nrows=3).drop(columns="won").astype("float64")
    )
    predictions = list(model.predict(example))
    assert len(predictions) == 3 and set(predictions) <= {0, 1}
    requirements = mlflow.pyfunc.get_model_dependencies("models:/lead-scoring@staging")
    with open(requirements) as fh:
        pinned = fh.read()
    assert "scikit-learn==" in pinned and "skops==" in pinned and "torch" not in pinned

    # The Prefect run shows what happened and where the MLflow run is.
    artifacts = _prefect_artifacts(flow_run_id)
    assert {
        "lead-scoring-quality-gate",
        "lead-scoring-staging",
        "data-validation-leads-csv",
        "lead-scoring-evaluation-metrics",
        "mlflow-run-training-lead-scoring",
    } <= set(artifacts)
    assert "PASSED" in artifacts["lead-scoring-quality-gate"].data
    assert result.mlflow_run_id in artifacts["mlflow-run-training-lead-scoring"].data


def test_second_run_adds_a_version_and_moves_staging(mlflow_store: str) -> None:
    first = training()
    second = training(random_seed=7)
    assert (first.version, second.version) == ("1", "2")
    client = _client()
    assert str(client.get_model_version_by_alias("lead-scoring", "staging").version) == "2"
    (event,) = read_events(client.get_model_version("lead-scoring", "2"))
    assert event.from_version == "1" and event.to_version == "2"
    assert len(client.search_model_versions("name = 'lead-scoring'")) == 2


def test_failed_gate_fails_the_run_with_the_table_and_registers_nothing(mlflow_store: str) -> None:
    state = training(thresholds={"roc_auc": 0.99, "precision": 0.6}, return_state=True)
    assert state.is_failed()
    with pytest.raises(QualityGateFailed) as info:
        state.result()
    message = str(info.value)
    assert "Quality gate failed on roc_auc" in message
    assert "needs >= 0.9900  FAIL" in message and "precision" in message
    assert "not registered" in message

    client = _client()
    assert client.search_registered_models() == []
    run = client.search_runs(
        [client.get_experiment_by_name("tests").experiment_id],
        filter_string="tags.`modelops.gate` = 'failed'",
    )
    assert len(run) == 1 and run[0].info.status == "FAILED"
    assert run[0].data.tags["modelops.gate.roc_auc"].endswith(">= 0.9900: fail")
    gate = _prefect_artifacts(state.state_details.flow_run_id)["lead-scoring-quality-gate"]
    assert "FAILED" in gate.data and "**FAIL**" in gate.data


def test_lower_is_better_threshold_and_random_forest(mlflow_store: str) -> None:
    result = training(
        estimator={"kind": "random_forest", "params": {"n_estimators": 20, "max_depth": 4}},
        thresholds={"log_loss": 0.7, "roc_auc": 0.7},
    )
    assert result.version == "1"
    params = _client().get_run(_client().get_model_version("lead-scoring", "1").run_id).data.params
    assert params["estimator"] == "random_forest" and params["n_estimators"] == "20"


def test_unknown_metric_in_thresholds_is_refused_before_any_work(mlflow_store: str) -> None:
    state = training(thresholds={"rocauc": 0.7}, return_state=True)
    assert state.is_failed()
    assert "Unknown metric(s) in thresholds: rocauc" in state.message
    assert _client().search_experiments(filter_string="name = 'tests'") == []
