"""Bad input to the library API: a clear error, and nothing logged as registered."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from modelops import (
    ConfigurationError,
    MLflowConfig,
    QualityGateFailed,
    init_mlflow,
    log_training_run,
    train_model,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MlflowClient]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MODELOPS_HOME", str(tmp_path / ".modelops"))
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_REGISTRY_URI"):
        monkeypatch.setenv(key, "")  # restored after the test; init_mlflow sets them
    init_mlflow(MLflowConfig(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"))
    yield MlflowClient()
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def _leads(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=n)
    return pd.DataFrame(
        {
            "score": x,
            "noise": rng.normal(size=n),
            "won": (x + rng.normal(scale=0.5, size=n) > 0).astype(int),
        }
    )


def _nothing_registered(client: MlflowClient) -> None:
    assert client.search_registered_models() == []


@pytest.mark.parametrize(
    ("dataset", "kwargs", "message"),
    [
        (_leads().drop(columns="won"), {}, "The target column 'won' is not in the DataFrame"),
        (_leads().assign(won=1), {}, "target must be binary with both classes present; found 1"),
        (
            _leads().assign(won=[f"x{i % 7}" for i in range(200)]),
            {},
            "target must be binary with both classes present; found 7",
        ),
        ([["garbage", 1], ["more", 0]], {}, "dataset must be a pandas DataFrame, got list"),
        (
            _leads(),
            {"metric_thresholds": {"rocauc": 0.7}},
            "Unknown metric(s) in thresholds: rocauc",
        ),
        (_leads(), {"metric_thresholds": {"roc_auc": "high"}}, "roc_auc"),
        (_leads(), {"mlflow_model_name": "bad/name"}, "bad/name"),
        (_leads(), {"stage_alias": "production"}, "cannot set 'production'"),
        (_leads(), {"estimator": {"kind": "xgboost"}}, "Invalid estimator"),
    ],
)
def test_train_model_refuses_bad_input(
    store: MlflowClient, dataset: object, kwargs: dict, message: str
) -> None:
    from modelops import DataValidationError

    with pytest.raises((ConfigurationError, DataValidationError)) as err:
        train_model(dataset, target_column="won", **kwargs)  # type: ignore[arg-type]
    assert message in str(err.value)
    _nothing_registered(store)


def test_non_numeric_garbage_in_a_numeric_column_fails_validation(store: MlflowClient) -> None:
    """Text mixed into numbers: the schema (declared numeric) refuses it before training."""
    from modelops import DataValidationError

    data = _leads().astype({"score": object})
    data.loc[::10, "score"] = "n/a??"
    with pytest.raises((DataValidationError, ConfigurationError)) as err:
        train_model(
            data,
            target_column="won",
            features={"score": {"kind": "numeric"}, "noise": {"kind": "numeric"}},
        )
    assert "score" in str(err.value)
    _nothing_registered(store)


def test_a_failed_gate_registers_nothing(store: MlflowClient) -> None:
    with pytest.raises(QualityGateFailed, match="roc_auc"):
        train_model(_leads(), target_column="won", metric_thresholds={"roc_auc": 0.999})
    _nothing_registered(store)
    (run,) = store.search_runs(
        [e.experiment_id for e in store.search_experiments()], "tags.`modelops.flow` = 'python-api'"
    )
    assert run.info.status == "FAILED" and run.data.tags["modelops.gate"] == "failed"


def test_log_training_run_refuses_a_missing_artifact(store: MlflowClient, tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    data = _leads()
    model = LogisticRegression().fit(data[["score", "noise"]], data["won"])
    with pytest.raises(
        ConfigurationError, match=r"Artifact path\(s\) not found: report=.*nope\.html"
    ):
        log_training_run(
            model,
            {},
            {"accuracy": 0.9},
            {},
            model_name="scorer",
            artifacts={"report": tmp_path / "nope.html"},
        )
    with pytest.raises(ConfigurationError, match="Metric 'accuracy' must be a finite number"):
        log_training_run(model, {}, {"accuracy": "great"}, {}, model_name="scorer")
    with pytest.raises(ConfigurationError, match="not fitted"):
        log_training_run(LogisticRegression(), {}, {}, {}, model_name="scorer")
    _nothing_registered(store)
    assert store.search_runs([e.experiment_id for e in store.search_experiments()]) == []


def test_log_training_run_uploads_artifacts_and_registers_once(
    store: MlflowClient, tmp_path: Path
) -> None:
    from sklearn.linear_model import LogisticRegression

    data = _leads()
    model = LogisticRegression().fit(data[["score", "noise"]], data["won"])
    (tmp_path / "report.html").write_text("<h1>ok</h1>")
    run_id = log_training_run(
        model,
        {"C": 1.0},
        {"accuracy": 0.9},
        {"team": "growth"},
        model_name="scorer",
        input_example=data[["score", "noise"]].head(3),
        artifacts={"reports": tmp_path / "report.html"},
    )
    assert [a.path for a in store.list_artifacts(run_id, "reports")] == ["reports/report.html"]
    # Registering the same run again (a retry) reuses its version.
    from modelops.registry.versions import register_version

    again, created = register_version(store, "scorer", model_id="unused", run_id=run_id)
    assert not created and str(again.version) == "1"
    assert len(store.search_model_versions("name = 'scorer'")) == 1


def test_without_mlflow_nothing_is_logged(store: MlflowClient) -> None:
    result = train_model(
        _leads(), target_column="won", enable_mlflow=False, metric_thresholds={"roc_auc": 0.6}
    )
    assert result.version is None and result.run_id is None
    assert result.metrics["roc_auc"] > 0.6 and result.evaluation.startswith("holdout")
    assert store.search_runs([e.experiment_id for e in store.search_experiments()]) == []
