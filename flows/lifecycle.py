"""The `lifecycle` flow: training → gate → registration → staging → promotion → deployment.

Each stage is its own flow run (a subflow), so the Prefect UI shows and retries them one by one,
and a failure stops every stage after it while what came before stays registered and visible.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from prefect import flow
from pydantic import Field

from flows.deployment import deployment
from flows.promotion import promotion
from flows.training import MetricThresholds, training
from modelops.data import SAMPLE_DATA, FeatureSpec
from modelops.training import EstimatorConfig
from tasks.summary import check_stages, publish_lifecycle_summary


@flow(name="lifecycle", log_prints=True)
def lifecycle(
    data_path: str | None = None,
    target: str = "won",
    model_name: str = "lead-scoring",
    estimator: EstimatorConfig = EstimatorConfig(),  # never mutated
    thresholds: MetricThresholds = {"roc_auc": 0.7, "precision": 0.6},  # noqa: B006
    test_size: Annotated[float, Field(gt=0, lt=1)] = 0.2,
    random_seed: int = 42,
    features: dict[str, FeatureSpec] | None = None,
    promote_to: Literal["staging", "production"] = "staging",
    held_out_path: str | None = None,
    compare_metrics: list[str] = ["roc_auc"],  # noqa: B006
    margin: Annotated[float, Field(ge=0)] = 0.0,
    deploy: Literal[False, "local", "kubernetes"] = False,
    namespace: str | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    """Train, gate, register and stage a model; optionally promote it and deploy production.

    Args:
        data_path: CSV or Parquet path/URI; empty for the bundled lead-scoring sample.
        target: the binary label column.
        model_name: the registered model name.
        estimator: scikit-learn estimator kind and hyper-parameters.
        thresholds: the quality gate (metric → minimum, or maximum for losses).
        test_size: held-out fraction for the gate.
        random_seed: seed for the split and the estimator.
        features: declared feature schema (default: sidecar file, else inferred).
        promote_to: stop at "staging", or go on to "production" (champion/challenger).
        held_out_path: data for champion/challenger (default: data_path).
        compare_metrics: metrics the challenger must not be worse on.
        margin: how much worse the challenger may be and still win.
        deploy: false (stop after the registry), "local" or "kubernetes" (serves production;
            needs promote_to=production).
        namespace: Kubernetes namespace for deploy="kubernetes".
        actor: who, for the audit trail.
    """
    check_stages(promote_to, deploy)
    trained = training(
        data_path=data_path, target=target, model_name=model_name, estimator=estimator,
        thresholds=thresholds, test_size=test_size, random_seed=random_seed,
        features=features, actor=actor,
    )  # fmt: skip
    promoted = None
    served = None
    if promote_to == "production":
        promoted = promotion(
            model_name=model_name, version=trained.version,
            held_out_path=held_out_path or data_path or str(SAMPLE_DATA), target=target,
            compare_metrics=compare_metrics, margin=margin, actor=actor,
            reason=f"lifecycle: passed the gate and champion/challenger ({', '.join(compare_metrics)})",
        )  # fmt: skip
        if deploy:
            served = deployment(model_name=model_name, version=promoted["version"],
                                target=deploy, namespace=namespace)  # fmt: skip
    return publish_lifecycle_summary(trained, promoted, served, promote_to, deploy)


def main(argv: list[str] | None = None) -> int:
    """The main job: sample data → gated, registered model in production, served locally."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m flows.lifecycle", description=main.__doc__)
    parser.add_argument("--data", dest="data_path", help="CSV/Parquet path (default: sample)")
    parser.add_argument("--target", default="won")
    parser.add_argument("--model-name", default="lead-scoring")
    parser.add_argument("--promote-to", choices=["staging", "production"], default="production")
    parser.add_argument("--deploy", choices=["false", "local", "kubernetes"], default="local")
    args = parser.parse_args(argv)
    deploy: Literal[False, "local", "kubernetes"] = False if args.deploy == "false" else args.deploy
    if deploy and args.promote_to != "production":
        parser.error("--deploy needs --promote-to production")
    result = lifecycle(data_path=args.data_path, target=args.target, model_name=args.model_name,
                       promote_to=args.promote_to, deploy=deploy)  # fmt: skip
    print(look_here(result))
    return 0


def look_here(result: dict[str, Any]) -> str:
    """Where to look at what the main job made."""
    from modelops.settings import get_settings

    settings = get_settings()
    name = result["model_name"]
    metrics = ", ".join(f"{k}={v:.3f}" for k, v in result["metrics"].items()
                        if k in ("roc_auc", "precision", "recall", "f1", "accuracy", "log_loss"))  # fmt: skip
    lines = [
        "",
        f"{name} version {result['version']}: " + ", ".join(f"@{a}" for a in result["aliases"]),
        f"  metrics: {metrics}",
        f"  MLflow run: {result['mlflow_run_id']}",
    ]
    if result.get("serving_url"):
        lines += [
            f"  serving: {result['serving_url']}/invocations  (try: curl -s "
            f"{result['serving_url']}/invocations -H 'Content-Type: application/json' -d "
            '\'{"dataframe_split": {"columns": ["completeness", "email_confidence", '
            '"phone_confidence", "source_priority", "intent_signal_score"], '
            '"data": [[0.9, 0.8, 0.7, 4, 60]]}}\')',
            f"  stop it:  .venv/bin/python -m modelops stop {name}",
        ]
    ui = settings.ui_base_url
    lines += ["Look at it:",
              f"  open {ui}/#/models/{name}" if ui else
              f"  .venv/bin/mlflow ui --backend-store-uri {settings.resolved_tracking_uri}\n"
              f"  then open http://127.0.0.1:5000/#/models/{name}",
              f"  .venv/bin/python -m modelops versions {name}"]  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    sys.exit(main())
