"""The tuning flow: the best candidate wins, a failing candidate is recorded, Dask for real."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from mlflow import MlflowClient

from flows.tuning import tuning
from modelops.errors import ConfigurationError, QualityGateFailed

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def _results(client: MlflowClient, parent_run_id: str) -> list[dict]:
    path = client.download_artifacts(parent_run_id, "search/results.json")
    return json.loads(Path(path).read_text())


def _candidate_runs(client: MlflowClient, experiment_id: str, parent_run_id: str) -> list:
    runs = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}'")
    return [r for r in runs if "modelops.candidate" in r.data.tags]


def test_best_candidate_is_registered_and_a_failing_one_is_recorded(mlflow_store: str) -> None:
    search = {
        "logistic_regression": {"C": [-1.0, 0.001, 1.0]},  # C=-1 is refused by scikit-learn
        "random_forest": {"max_depth": [2], "n_estimators": [20]},
    }
    result = tuning(
        model_name="tuned", search=search, runner="sequential", thresholds={"roc_auc": 0.6}
    )
    client = MlflowClient()
    results = _results(client, result.mlflow_run_id)
    assert [r["index"] for r in results] == [0, 1, 2, 3]
    failed = [r for r in results if r["status"] == "failed"]
    assert [r["params"] for r in failed] == [{"C": -1.0}]
    assert "C" in failed[0]["error"] and "InvalidParameterError" in failed[0]["error"]
    finished = [r for r in results if r["status"] == "finished"]
    best = max(finished, key=lambda r: r["metrics"]["roc_auc"])
    assert best["metrics"]["roc_auc"] > min(r["metrics"]["roc_auc"] for r in finished)

    runs = _candidate_runs(client, result.mlflow_experiment_id, result.mlflow_run_id)
    by_index = {int(r.data.tags["modelops.candidate"]): r for r in runs}
    assert sorted(by_index) == [0, 1, 2, 3]
    assert by_index[0].info.status == "FAILED"
    assert "InvalidParameterError" in by_index[0].data.tags["error.message"]
    assert by_index[best["index"]].data.tags["modelops.best_candidate"] == "true"
    for index, run in by_index.items():
        if index:
            assert run.info.status == "FINISHED"
            assert run.data.metrics["val_roc_auc"] == pytest.approx(
                results[index]["metrics"]["roc_auc"]
            )

    # The registered version is the best candidate, refitted, gated on the held-out part.
    version = client.get_model_version("tuned", result.version)
    # A sentence people can read in the MLflow UI: data, gate, where it stands now.
    assert version.description.startswith("leads.csv, 5,000 rows · gate passed: roc_auc ")
    assert version.description.endswith("now: Staging (staging)")
    assert str(client.get_model_version_by_alias("tuned", "staging").version) == result.version
    train_run = client.get_run(version.run_id)
    assert train_run.data.params["estimator"] == best["kind"]
    for key, value in best["params"].items():
        assert train_run.data.params[key] == str(value)
    assert result.metrics["roc_auc"] >= 0.6
    parent = client.get_run(result.mlflow_run_id)
    assert parent.data.tags["modelops.search.best"] == str(best["index"])
    assert parent.data.tags["modelops.search.failed"] == "1"


def test_candidates_run_on_a_real_local_dask_cluster(mlflow_store: str) -> None:
    search = {"logistic_regression": {"C": [0.01, 1.0]}, "random_forest": {"max_depth": [3]}}
    result = tuning(
        model_name="tuned-on-dask",
        search=search,
        runner="dask",
        dask_workers=2,
        thresholds={"roc_auc": 0.6},
    )
    results = _results(MlflowClient(), result.mlflow_run_id)
    assert [r["status"] for r in results] == ["finished"] * 3
    workers = {r["worker"] for r in results}
    assert all(w and not w.endswith(f":{os.getpid()}") for w in workers), workers
    assert str(MlflowClient().get_model_version_by_alias("tuned-on-dask", "staging").version) == "1"


def test_a_search_where_every_candidate_fails_registers_nothing(mlflow_store: str) -> None:
    with pytest.raises(ConfigurationError, match="Every candidate of the search failed"):
        tuning(
            model_name="all-bad",
            search={"logistic_regression": {"C": [-1.0, -2.0]}},
            runner="sequential",
        )
    assert MlflowClient().search_registered_models("name = 'all-bad'") == []


def test_a_best_candidate_below_the_gate_registers_nothing(mlflow_store: str) -> None:
    with pytest.raises(QualityGateFailed):
        tuning(
            model_name="gated",
            search={"logistic_regression": {"C": [1.0]}},
            runner="sequential",
            thresholds={"roc_auc": 0.99},
        )
    assert MlflowClient().search_registered_models("name = 'gated'") == []


@pytest.mark.parametrize(
    ("search", "extra", "message"),
    [
        ({}, {}, "The search is empty"),
        ({"xgboost": {}}, {}, "Unknown estimator kind(s) in the search: xgboost"),
        (
            {"random_forest": {"depth": [3]}},
            {},
            "Unknown hyper-parameter(s) for random_forest: depth",
        ),
        ({"random_forest": {"max_depth": []}}, {}, "No values to try for random_forest: max_depth"),
        ({"random_forest": {}}, {"metric": "rocauc"}, "Unknown search metric 'rocauc'"),
        (
            {"random_forest": {}},
            {"runner": "sequential", "dask_address": "tcp://x:8786"},
            "dask_address is only used with runner=dask",
        ),
    ],
)
def test_bad_searches_are_refused_before_any_run(
    mlflow_store: str, search: dict, extra: dict, message: str
) -> None:
    with pytest.raises(ConfigurationError) as err:
        tuning(model_name="refused", search=search, **extra)
    assert message in str(err.value)
    assert (
        MlflowClient().search_runs([e.experiment_id for e in MlflowClient().search_experiments()])
        == []
    )
