"""The `training` flow: data file → validated → trained → gated → registered → staged."""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow
from pydantic import AfterValidator, BaseModel, Field

from modelops.data import FeatureSpec
from modelops.evaluation import check_threshold_names
from modelops.training import EstimatorConfig
from tasks.data import load_dataset, validate_dataset
from tasks.evaluation import check_quality_gate, evaluate_model
from tasks.registry import register_model, set_model_alias
from tasks.tracking import mlflow_parent_run
from tasks.training import split_dataset, train_model


def _valid_thresholds(value: dict[str, float]) -> dict[str, float]:
    try:
        check_threshold_names(value)
    except Exception as exc:  # pydantic wants ValueError to report it as a parameter error
        raise ValueError(str(exc)) from exc
    return value


MetricThresholds = Annotated[dict[str, float], AfterValidator(_valid_thresholds)]


class TrainingResult(BaseModel):
    """What a successful training run produced."""

    model_name: str
    version: str
    alias: str
    mlflow_run_id: str
    mlflow_experiment_id: str = ""
    metrics: dict[str, float]
    rows: int
    gate: list[dict[str, Any]] = []
    validation: dict[str, Any] = {}


@flow(name="training", log_prints=True)
def training(
    data_path: str | None = None,
    target: str = "won",
    model_name: str = "lead-scoring",
    estimator: EstimatorConfig = EstimatorConfig(),  # never mutated
    thresholds: MetricThresholds = {"roc_auc": 0.7, "precision": 0.6},  # noqa: B006
    test_size: Annotated[float, Field(gt=0, lt=1)] = 0.2,
    random_seed: int = 42,
    features: dict[str, FeatureSpec] | None = None,
    min_rows: Annotated[int, Field(ge=1)] = 100,
    stage_alias: str = "staging",
    actor: str | None = None,
) -> TrainingResult:
    """Train a binary classifier from a CSV/Parquet file, gate it, register it and stage it.

    Args:
        data_path: CSV or Parquet path/URI; empty for the bundled lead-scoring sample.
        target: the binary label column.
        model_name: the registered model name in MLflow.
        estimator: scikit-learn estimator kind and hyper-parameters.
        thresholds: minimum (or, for losses, maximum) held-out metric values to register.
        test_size: held-out fraction for evaluation.
        random_seed: seed for the split and the estimator.
        features: declared feature schema; default: `<data>.schema.json` beside the file, else
            inferred from the data.
        min_rows: fewest rows a training table may have.
        stage_alias: the alias the new version gets once registered.
        actor: who to record in the audit trail; default the deployment or OS user.
    """
    params = {
        "data_path": data_path,
        "target": target,
        "model_name": model_name,
        "estimator": estimator,
        "thresholds": thresholds,
        "test_size": test_size,
        "random_seed": random_seed,
    }
    with mlflow_parent_run(f"training-{model_name}", params=params) as ctx:
        data = load_dataset(ctx, data_path, target, features=features, min_rows=min_rows)
        report = validate_dataset(ctx, data)
        split = split_dataset(ctx, data, test_size, random_seed)
        model = train_model(ctx, data.schema, split, estimator, random_seed)
        evaluation = evaluate_model(ctx, model, split, model_name)
        decision = check_quality_gate(ctx, evaluation, thresholds, model_name)
        version = register_model(ctx, model_name, model)
        set_model_alias(
            ctx,
            version,
            stage_alias,
            reason="passed the quality gate",
            metrics=evaluation.metrics,
            actor=actor,
        )
    return TrainingResult(
        model_name=model_name,
        version=version.version,
        alias=stage_alias,
        mlflow_run_id=ctx.parent_run_id,
        mlflow_experiment_id=ctx.experiment_id,
        metrics=evaluation.metrics,
        rows=data.info.rows,
        gate=decision.rows,
        validation=report["statistics"],
    )


def main(argv: list[str] | None = None) -> int:
    """Run the training flow from the command line and say where to look at the result."""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m flows.training", description=__doc__)
    parser.add_argument("--data", dest="data_path", help="CSV/Parquet path (default: sample)")
    parser.add_argument("--target", default="won")
    parser.add_argument("--model-name", default="lead-scoring")
    parser.add_argument(
        "--thresholds", type=json.loads, default=None, help="JSON, e.g. '{\"roc_auc\": 0.7}'"
    )
    args = parser.parse_args(argv)
    kwargs = {k: v for k, v in vars(args).items() if v is not None}
    result = training(**kwargs)
    print(summary_text(result))
    return 0


def summary_text(result: TrainingResult) -> str:
    """Where to look at a training result (MLflow UI and registry)."""
    from modelops.settings import get_settings

    settings = get_settings()
    metrics = ", ".join(f"{k}={v:.3f}" for k, v in result.metrics.items())
    ui = settings.ui_base_url
    look = (
        f"  open {ui}/#/models/{result.model_name}"
        if ui
        else f"  mlflow ui --backend-store-uri {settings.resolved_tracking_uri}\n"
        f"  then open http://127.0.0.1:5000/#/models/{result.model_name}"
    )
    return (
        f"\nRegistered {result.model_name} version {result.version} "
        f"(@{result.alias}) from {result.rows} rows\n"
        f"  metrics: {metrics}\n  MLflow run: {result.mlflow_run_id}\n"
        f"Look at it:\n{look}\n"
        f"  python -m modelops versions {result.model_name}\n"
    )


if __name__ == "__main__":
    import sys

    sys.exit(main())
