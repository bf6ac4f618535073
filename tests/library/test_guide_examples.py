"""The Python library API, exercised the way the original lifecycle guide's examples use it.

Each example below is the guide's code verbatim apart from its import line (``hotpass.ml`` and
``hotpass.transform.scoring`` become ``modelops``), run in a plain process with no Prefect
server, on a real SQLite store: a file in the working directory, or in memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from modelops.data import SAMPLE_DATA

pytestmark = pytest.mark.slow


@pytest.fixture
def guide_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory like a user's: the guide's relative paths land here; every
    variable init_mlflow sets is restored afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MODELOPS_HOME", str(tmp_path / ".modelops"))
    for key in (
        "MLFLOW_TRACKING_URI",
        "MLFLOW_EXPERIMENT_NAME",
        "MLFLOW_REGISTRY_URI",
        "MODELOPS_MIRROR_STAGES",
    ):
        monkeypatch.delenv(key, raising=False)
    yield tmp_path
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_REGISTRY_URI"):
        os.environ.pop(key, None)
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def _configure() -> None:
    # --- guide: "Programmatic Configuration" ---
    from modelops import MLflowConfig, init_mlflow

    config = MLflowConfig(
        tracking_uri="sqlite:///mlflow.db",
        experiment_name="lead_scoring",
    )
    init_mlflow(config)


def _basic_training() -> object:
    # --- guide: "Basic Training with MLflow" ---
    import pandas as pd

    from modelops import train_lead_scoring_model

    # Prepare training data
    dataset = pd.DataFrame(
        {
            "completeness": [0.9, 0.4, 0.75, 0.3],
            "email_confidence": [0.8, 0.1, 0.6, 0.2],
            "phone_confidence": [0.7, 0.0, 0.4, 0.2],
            "source_priority": [1.0, 0.2, 0.6, 0.1],
            "intent_signal_score": [0.9, 0.3, 0.5, 0.2],
            "won": [1, 0, 1, 0],  # Target variable
        }
    )

    # Train model with MLflow tracking
    result = train_lead_scoring_model(
        dataset,
        target_column="won",
        enable_mlflow=True,
        mlflow_model_name="lead_scoring_model",
    )

    print(f"ROC AUC: {result.metrics['roc_auc']:.3f}")
    print(f"Precision: {result.metrics['precision']:.3f}")
    print(f"Recall: {result.metrics['recall']:.3f}")
    return result


def test_configuration_and_basic_training_on_four_rows(
    guide_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _configure()
    assert (guide_dir / "mlflow.db").exists()  # relative to the working directory, as written
    result = _basic_training()
    out = capsys.readouterr().out
    assert "ROC AUC: " in out and "Precision: " in out and "Recall: " in out
    # Four rows cannot hold a part out: cross-validated, and both say so.
    assert result.evaluation.startswith("cross-validation (2 folds over 4 rows)")  # type: ignore[attr-defined]
    assert result.version == 1 and result.alias == "staging"  # type: ignore[attr-defined]
    client = MlflowClient()
    run = client.get_run(result.run_id)  # type: ignore[attr-defined]
    assert run.data.tags["modelops.evaluation"] == result.evaluation  # type: ignore[attr-defined]
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "lead_scoring"
    assert str(client.get_model_version_by_alias("lead_scoring_model", "staging").version) == "1"
    # The returned model is the fitted pipeline.
    row = pd.DataFrame(
        {
            "completeness": [0.9],
            "email_confidence": [0.8],
            "phone_confidence": [0.7],
            "source_priority": [1.0],
            "intent_signal_score": [0.9],
        }
    )
    proba = result.model.predict_proba(row)  # type: ignore[attr-defined]
    assert proba.shape == (1, 2)


def test_manual_logging(guide_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # --- guide: "Manual Logging" ---
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from modelops import init_mlflow, log_training_run

    # Initialize MLflow
    init_mlflow()

    # Train your model
    X_train = pd.DataFrame({"feature1": [0.1, 0.2], "feature2": [0.5, 0.6]})
    y_train = pd.Series([0, 1])
    model = LogisticRegression()
    model.fit(X_train, y_train)

    # Log to MLflow
    run_id = log_training_run(
        model=model,
        params={"max_iter": 1000, "solver": "lbfgs"},
        metrics={"accuracy": 0.95, "precision": 0.92},
        metadata={"dataset": "contacts_2025", "features": ["feature1", "feature2"]},
        model_name="custom_lead_scorer",
        input_example=X_train.head(5),
    )

    print(f"Logged run: {run_id}")
    # --- end of the guide's example ---
    assert f"Logged run: {run_id}" in capsys.readouterr().out
    client = MlflowClient()
    run = client.get_run(run_id)
    assert run.data.params == {"max_iter": "1000", "solver": "lbfgs"}
    assert run.data.metrics == {"accuracy": 0.95, "precision": 0.92}
    assert run.data.tags["dataset"] == "contacts_2025"
    assert run.data.tags["features"] == '["feature1", "feature2"]'
    (version,) = client.search_model_versions("name = 'custom_lead_scorer'")
    assert version.run_id == run_id
    loaded = mlflow.pyfunc.load_model(f"models:/custom_lead_scorer/{version.version}")
    assert loaded.metadata.get_input_schema().input_names() == ["feature1", "feature2"]
    assert list(loaded.predict(X_train)) == list(model.predict(X_train))


def _three_versions() -> None:
    _configure()
    for _ in range(3):
        _basic_training()


def test_promotion_loading_and_metadata(
    guide_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _three_versions()
    from modelops import ModelStage, get_model_metadata, load_production_model, promote_model

    # --- guide: "Promoting Models to Staging" ---
    # Promote version 3 to staging
    promote_model(
        model_name="lead_scoring_model",
        version=3,
        stage=ModelStage.STAGING,
        archive_existing=False,
    )
    # --- guide: "Promoting Models to Production" ---
    # Promote version 3 to production, archiving any existing production models
    promote_model(
        model_name="lead_scoring_model",
        version=3,
        stage=ModelStage.PRODUCTION,
        archive_existing=True,  # Archive previous production model
    )
    # --- guide: "Load Production Model" ---
    # Load the current production model
    model = load_production_model("lead_scoring_model")

    # Make predictions
    features = pd.DataFrame(
        {
            "completeness": [0.85],
            "email_confidence": [0.75],
            "phone_confidence": [0.65],
            "source_priority": [0.9],
            "intent_signal_score": [0.7],
        }
    )

    probabilities = model.predict_proba(features)[:, 1]
    print(f"Lead score: {probabilities[0]:.3f}")
    # --- guide: "Load Specific Version" ---
    model = mlflow.sklearn.load_model("models:/lead_scoring_model/3")
    # --- guide: "List All Model Versions" ---
    metadata = get_model_metadata("lead_scoring_model")
    for version_info in metadata:
        print(f"Version {version_info['version']}: {version_info['stage']}")
    # --- guide: "Filter by Stage" ---
    # Get only production models
    production_models = get_model_metadata("lead_scoring_model", stage=ModelStage.PRODUCTION)

    for model in production_models:
        print(f"Production version: {model['version']}")
        print(f"Run ID: {model['run_id']}")
    # --- end of the guide's examples ---
    out = capsys.readouterr().out
    assert "Lead score: 0." in out
    assert "Version 3: Production" in out and "Version 2: None" in out
    assert "Production version: 3" in out
    assert 0.0 <= probabilities[0] <= 1.0

    # Staging first stays enforced: version 1 was staged once, but staging has moved on.
    from modelops import PromotionRefused

    with pytest.raises(PromotionRefused, match="staging"):
        promote_model("lead_scoring_model", version=1, stage=ModelStage.PRODUCTION)
    assert get_model_metadata("lead_scoring_model", stage="Production")[0]["version"] == 3


def _write_training_data(path: Path) -> None:
    pd.read_csv(SAMPLE_DATA).to_parquet(path)


def test_promoting_latest_and_the_whole_workflow(
    guide_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_training_data(guide_dir / "training_data.parquet")
    # --- guide: "Promotion Workflow Example" (its last step uncommented) ---
    import pandas as pd

    from modelops import (
        ModelStage,
        get_model_metadata,
        init_mlflow,
        promote_model,
        train_lead_scoring_model,
    )

    # 1. Initialize MLflow
    init_mlflow()

    # 2. Train model
    dataset = pd.read_parquet("training_data.parquet")
    result = train_lead_scoring_model(
        dataset,
        target_column="won",
        enable_mlflow=True,
        metric_thresholds={"roc_auc": 0.7, "precision": 0.6},
    )

    # 3. Get the model version that was just registered
    metadata = get_model_metadata("lead_scoring_model")
    latest_version = max(int(m["version"]) for m in metadata)

    # 4. Promote to staging for validation
    promote_model(
        model_name="lead_scoring_model",
        version=latest_version,
        stage=ModelStage.STAGING,
    )

    print(f"Model version {latest_version} promoted to Staging")
    print("Validate model performance before promoting to Production")

    # 5. After validation, promote to production
    promote_model(
        model_name="lead_scoring_model",
        version=latest_version,
        stage=ModelStage.PRODUCTION,
        archive_existing=True,
    )
    # --- guide: "Promoting Latest Version" ---
    promote_model(
        model_name="lead_scoring_model",
        version="latest",
        stage=ModelStage.PRODUCTION,
        archive_existing=True,
    )
    # --- end ---
    assert "Model version 1 promoted to Staging" in capsys.readouterr().out
    assert result.evaluation.startswith("holdout (1000 rows)")
    assert result.metrics["roc_auc"] >= 0.7 and result.version == 1
    (row,) = get_model_metadata("lead_scoring_model", stage=ModelStage.PRODUCTION)
    assert row["version"] == 1
    assert [e["action"] for e in row["audit"]][:2] == ["set-staging", "set-staging"]


def test_in_memory_store(guide_dir: Path) -> None:
    from modelops import (
        MLflowConfig,
        ModelStage,
        get_model_metadata,
        init_mlflow,
        promote_model,
        train_model,
    )

    init_mlflow(MLflowConfig(tracking_uri="sqlite:///:memory:", experiment_name="mem"))
    result = train_model(
        pd.read_csv(SAMPLE_DATA).head(400),
        target_column="won",
        mlflow_model_name="in-memory",
        metric_thresholds={"roc_auc": 0.6},
    )
    promote_model("in-memory", result.version, stage=ModelStage.PRODUCTION)
    assert get_model_metadata("in-memory")[0]["stage"] == "Production"
    assert not (guide_dir / "mlflow.db").exists() and not (guide_dir / ":memory:").exists()


@pytest.mark.parametrize("mirror", [True, False])
def test_legacy_stages_are_mirrored_only_when_asked(
    guide_dir: Path, monkeypatch: pytest.MonkeyPatch, mirror: bool
) -> None:
    if mirror:
        monkeypatch.setenv("MODELOPS_MIRROR_STAGES", "true")
    _three_versions()  # each new version takes staging from the one before
    from modelops import ModelStage, promote_model

    promote_model("lead_scoring_model", 3, stage=ModelStage.PRODUCTION)
    promote_model("lead_scoring_model", 1, stage=ModelStage.ARCHIVED)
    client = MlflowClient()
    stages = {
        v: client.get_model_version("lead_scoring_model", v).current_stage for v in ("1", "2", "3")
    }
    if mirror:
        assert stages == {"1": "Archived", "2": "None", "3": "Production"}
        legacy = mlflow.sklearn.load_model("models:/lead_scoring_model/Production")
        assert hasattr(legacy, "predict_proba")
    else:
        assert stages == {"1": "None", "2": "None", "3": "None"}
