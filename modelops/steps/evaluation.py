"""The evaluation steps: score the held-out part (or cross-validate a small table), then the
quality gate.

With a tracking context the metrics, plots and the gate's decision are logged into the flow's
MLflow run tree; without one (the Python API with ``enable_mlflow=False``) the same work runs and
nothing is logged.
"""

from __future__ import annotations

from modelops import tracking
from modelops.errors import ConfigurationError
from modelops.evaluation import Evaluation, GateDecision, apply_gate, evaluate_binary, plot_curves
from modelops.training import EstimatorConfig, build_pipeline, encode_target, feature_frame
from modelops.types import LoadedData, Split, TrainedModel


def evaluate_model(
    ctx: tracking.TrackingContext | None, model: TrainedModel, split: Split
) -> Evaluation:
    """Score the held-out part; with ``ctx`` log metrics and ROC/PR/confusion-matrix PNGs."""
    proba = model.pipeline.predict_proba(split.X_test)[:, 1]
    evaluation = evaluate_binary(split.y_test, proba)
    if ctx is None:
        return evaluation
    with tracking.child_run(ctx, "evaluate_model") as run_id:
        for run in (run_id, ctx.parent_run_id):
            tracking.log_metrics(ctx, run, evaluation.metrics)
        tracking.log_figures(ctx, run_id, plot_curves(evaluation, model.labels))
        tracking.set_tags(ctx, ctx.parent_run_id, {"modelops.evaluation": evaluation.method})
    return evaluation


def cross_validate(
    ctx: tracking.TrackingContext | None,
    data: LoadedData,
    estimator: EstimatorConfig,
    seed: int,
    folds: int,
) -> Evaluation:
    """Metrics from out-of-fold probabilities of stratified ``folds``-fold cross-validation,
    for tables too small to hold a part out; with ``ctx`` logged on the parent run.

    Raises:
        ConfigurationError: the estimator rejected its hyper-parameters or the data.
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    y, _ = encode_target(data.frame[data.schema.target])
    X = feature_frame(data.frame, data.schema)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    try:
        proba = cross_val_predict(
            build_pipeline(data.schema, estimator, seed=seed), X, y, cv=cv, method="predict_proba"
        )[:, 1]
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"Training failed: {type(exc).__name__}: {exc}") from exc
    scored = evaluate_binary(y, proba)
    evaluation = Evaluation(metrics=scored.metrics, rows=len(y), curves=scored.curves, folds=folds)
    if ctx is not None:
        tracking.log_metrics(ctx, ctx.parent_run_id, evaluation.metrics)
        tracking.set_tags(
            ctx,
            ctx.parent_run_id,
            {"modelops.evaluation": evaluation.method, "modelops.evaluation.folds": folds},
        )
    return evaluation


def check_gate(
    ctx: tracking.TrackingContext | None, metrics: dict[str, float], thresholds: dict[str, float]
) -> GateDecision:
    """Compare metrics with thresholds; with ``ctx`` record the decision on the parent run
    (tags and ``quality_gate.json``), whichever way it goes. Call ``raise_if_failed`` to
    enforce it."""
    decision = apply_gate(metrics, thresholds)
    if ctx is None:
        return decision
    tags = {"modelops.gate": "passed" if decision.passed else "failed"}
    for row in decision.rows:
        tags[f"modelops.gate.{row['metric']}"] = (
            f"{row['value']:.4f} {row['comparison']} {row['threshold']:.4f}: "
            f"{'pass' if row['passed'] else 'fail'}"
        )
    tracking.set_tags(ctx, ctx.parent_run_id, tags)
    tracking.log_json(ctx, ctx.parent_run_id, decision.as_dict(), "quality_gate.json")
    return decision
