"""The training spine's steps: load, validate, split, fit, evaluate, gate, register, stage.

Each step does one stage of the lifecycle and logs what it did into the flow's MLflow run tree
(child runs under the parent run of ``ctx``). ``tasks/`` wraps each step in a Prefect task
(retries, Prefect logs, artifacts); the Python API (:mod:`modelops.library`) calls them in order
in a plain process. Both get the same validation, gate, registration and audit trail.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from modelops import tracking
from modelops.data import (
    DatasetInfo,
    FeatureSpec,
    dataset_digest,
    describe_dataset,
    load_table,
    resolve_data_uri,
    resolve_schema,
)
from modelops.errors import DataValidationError
from modelops.evaluation import Evaluation, GateDecision, apply_gate, evaluate_binary, plot_curves
from modelops.model_io import log_sklearn_model
from modelops.registry.aliases import STAGING
from modelops.registry.journal import move_alias
from modelops.registry.versions import is_missing, register_version, versions_with_tag
from modelops.training import EstimatorConfig, build_pipeline, fit_pipeline
from modelops.training import split_dataset as make_split
from modelops.types import (
    AuditEvent,
    LoadedData,
    LoggedModel,
    RegisteredVersion,
    Split,
    TrainedModel,
)
from modelops.validation import validate_dataframe

if TYPE_CHECKING:
    import pandas as pd

HOLDOUT_ROWS = 2000  # rows of the held-out part kept beside the model (fast-path parity)


def load_dataset(
    ctx: tracking.TrackingContext,
    data_path: str | None,
    target: str,
    features: dict[str, FeatureSpec] | None = None,
    min_rows: int = 50,
) -> LoadedData:
    """Read the CSV/Parquet table and log it as an MLflow dataset input."""
    uri = resolve_data_uri(data_path)
    return use_frame(ctx, None, uri, target, features, min_rows)


def use_frame(
    ctx: tracking.TrackingContext | None,
    frame: pd.DataFrame | None,
    uri: str,
    target: str,
    features: dict[str, FeatureSpec] | None = None,
    min_rows: int = 50,
) -> LoadedData:
    """A table (read from ``uri`` unless ``frame`` is given) with its schema, logged as an
    MLflow dataset input when ``ctx`` is given."""
    if ctx is None:
        frame = load_table(uri) if frame is None else frame
        schema = resolve_schema(frame, target, uri, features=features, min_rows=min_rows)
        info = DatasetInfo(
            name=uri.rsplit("/", 1)[-1],
            source=uri,
            digest=dataset_digest(frame),
            rows=len(frame),
            columns=[str(c) for c in frame.columns],
        )
        return LoadedData(frame=frame, schema=schema, info=info)
    with tracking.child_run(ctx, "load_dataset") as run_id:
        frame = load_table(uri) if frame is None else frame
        schema = resolve_schema(frame, target, uri, features=features, min_rows=min_rows)
        dataset = describe_dataset(frame, uri, target)
        info = DatasetInfo(
            name=dataset.name,
            source=uri,
            digest=dataset.digest,
            rows=len(frame),
            columns=[str(c) for c in frame.columns],
        )
        for run in (run_id, ctx.parent_run_id):
            tracking.log_dataset(ctx, run, dataset, context="training")
        tracking.log_params(
            ctx,
            run_id,
            {"data.source": uri, "data.digest": info.digest, "data.columns": info.columns},
        )
        tracking.log_metrics(ctx, run_id, {"data.rows": info.rows})
        tracking.log_json(ctx, run_id, schema.model_dump(mode="json"), "schema.json")
    return LoadedData(frame=frame, schema=schema, info=info)


def validate_dataset(ctx: tracking.TrackingContext, data: LoadedData) -> dict[str, Any]:
    """Check the table against a Great Expectations suite built from its schema; the report is
    kept in MLflow whether it passes or not.

    Raises:
        DataValidationError: an expectation failed (one line per failure).
    """
    with tracking.child_run(ctx, "validate_dataset") as run_id:
        try:
            report = validate_dataframe(data.frame, data.schema, name=data.info.name)
        except DataValidationError as exc:
            _record_validation(ctx, run_id, exc.report)
            raise
        _record_validation(ctx, run_id, report)
    return report


def _record_validation(ctx: tracking.TrackingContext, run_id: str, report: dict[str, Any]) -> None:
    stats = report.get("statistics", {})
    tracking.log_json(ctx, run_id, report, "validation/report.json")
    tracking.log_metrics(
        ctx,
        run_id,
        {
            "validation.evaluated": stats.get("evaluated_expectations") or 0,
            "validation.failed": stats.get("unsuccessful_expectations") or 0,
        },
    )
    verdict = "passed" if report.get("success") else "failed"
    for run in (run_id, ctx.parent_run_id):
        tracking.set_tags(ctx, run, {"modelops.validation": verdict})


def split_dataset(
    ctx: tracking.TrackingContext, data: LoadedData, test_size: float, seed: int
) -> Split:
    """Stratified train/test split of the declared features."""
    split = make_split(data.frame, data.schema, test_size=test_size, seed=seed)
    tracking.log_params(
        ctx,
        ctx.parent_run_id,
        {"split.test_size": test_size, "split.seed": seed, "split.positive_label": split.labels[1]},
    )
    tracking.log_metrics(ctx, ctx.parent_run_id, {f"split.{k}": v for k, v in split.sizes.items()})
    return split


def train_model(
    ctx: tracking.TrackingContext,
    data: LoadedData,
    split: Split,
    estimator: EstimatorConfig,
    seed: int,
) -> TrainedModel:
    """Fit the pipeline and log it (signature, input example, pinned requirements)."""
    schema = data.schema
    with tracking.child_run(ctx, "train_model") as run_id:
        pipeline = build_pipeline(schema, estimator, seed=seed)
        tracking.log_params(
            ctx, run_id, {"estimator": estimator.kind, **pipeline.named_steps["model"].get_params()}
        )
        started = time.perf_counter()
        fit_pipeline(pipeline, split)
        fit_seconds = time.perf_counter() - started
        optional = {str(c) for c in split.X_train.columns[split.X_train.isna().any()]}
        logged = log_sklearn_model(
            ctx,
            run_id,
            pipeline,
            input_example=split.X_train.head(5),
            metadata={"positive_label": str(split.labels[1]), "target": schema.target},
            optional_inputs=optional,
            holdout=split.X_test.head(HOLDOUT_ROWS),
        )
        tracking.log_metrics(ctx, run_id, {"fit_seconds": fit_seconds})
        record_reference(ctx, run_id, pipeline, split, schema)
    return TrainedModel(
        run_id=logged.run_id,
        model_id=logged.model_id,
        model_uri=logged.model_uri,
        pipeline=pipeline,
        labels=split.labels,
    )


def record_reference(
    ctx: tracking.TrackingContext, run_id: str, pipeline: Any, split: Split, schema: Any
) -> None:
    """The reference the monitoring flow compares production traffic with, stored on the
    version's run: a profile of the training features and of the model's probabilities on the
    held-out rows, and a small sample of training rows."""
    import tempfile
    from pathlib import Path

    from modelops import monitoring

    proba = pipeline.predict_proba(split.X_test)[:, 1] if len(split.X_test) else None
    profile = monitoring.build_profile(split.X_train, schema, proba)
    tracking.log_json(ctx, run_id, profile, monitoring.PROFILE_FILE)
    with tempfile.TemporaryDirectory(prefix="modelops-reference-") as tmp:
        path = Path(tmp) / "sample.parquet"
        monitoring.reference_sample(split.X_train).to_parquet(path, index=False)
        ctx.client().log_artifact(run_id, str(path), "reference")


def evaluate_model(ctx: tracking.TrackingContext, model: TrainedModel, split: Split) -> Evaluation:
    """Score the held-out part; log metrics and ROC/PR/confusion-matrix PNGs."""
    with tracking.child_run(ctx, "evaluate_model") as run_id:
        proba = model.pipeline.predict_proba(split.X_test)[:, 1]
        evaluation = evaluate_binary(split.y_test, proba)
        for run in (run_id, ctx.parent_run_id):
            tracking.log_metrics(ctx, run, evaluation.metrics)
        tracking.log_figures(ctx, run_id, plot_curves(evaluation, model.labels))
    return evaluation


def check_gate(
    ctx: tracking.TrackingContext, metrics: dict[str, float], thresholds: dict[str, float]
) -> GateDecision:
    """Compare metrics with thresholds and record the decision on the parent run (tags and
    ``quality_gate.json``), whichever way it goes. Call ``raise_if_failed`` to enforce it."""
    decision = apply_gate(metrics, thresholds)
    tags = {"modelops.gate": "passed" if decision.passed else "failed"}
    for row in decision.rows:
        tags[f"modelops.gate.{row['metric']}"] = (
            f"{row['value']:.4f} {row['comparison']} {row['threshold']:.4f}: "
            f"{'pass' if row['passed'] else 'fail'}"
        )
    tracking.set_tags(ctx, ctx.parent_run_id, tags)
    tracking.log_json(ctx, ctx.parent_run_id, decision.as_dict(), "quality_gate.json")
    return decision


def register_model(
    ctx: tracking.TrackingContext,
    model_name: str,
    model: LoggedModel,
    description: str = "",
    tags: dict[str, str] | None = None,
) -> RegisteredVersion:
    """Register the logged model as a new version; a retry never makes a second one."""
    version, created = register_version(
        ctx.client(),
        model_name,
        model_id=model.model_id,
        run_id=model.run_id,
        tags={"modelops.parent_run_id": ctx.parent_run_id, **ctx.lineage, **(tags or {})},
        description=description or None,
    )
    tracking.set_tags(
        ctx,
        ctx.parent_run_id,
        {"modelops.registered_model": model_name, "modelops.model_version": version.version},
    )
    if created:
        from modelops.registry.describe import describe_new_version

        describe_new_version(ctx.client(), model_name, str(version.version), ctx.parent_run_id)
    return RegisteredVersion(
        name=model_name,
        version=str(version.version),
        run_id=model.run_id,
        source=str(version.source),
        created=created,
    )


def earlier_attempt(
    ctx: tracking.TrackingContext, model_name: str
) -> tuple[RegisteredVersion, dict[str, float]] | None:
    """The version an earlier attempt of this same flow run registered, with the metrics it
    was gated on, or None.

    A flow run retried after its registration succeeded (a later step failed: staging, say)
    must reuse that version rather than train and register another.
    """
    from mlflow.exceptions import MlflowException

    if not ctx.flow_run_id:
        return None
    client = ctx.client()
    try:
        found = versions_with_tag(client, model_name, tracking.FLOW_RUN_TAG, ctx.flow_run_id)
    except MlflowException as exc:
        if is_missing(exc):
            return None
        raise
    if not found:
        return None
    version = found[0]
    parent = version.tags.get("modelops.parent_run_id")
    metrics = dict(client.get_run(parent).data.metrics) if parent else {}
    tracking.set_tags(ctx, ctx.parent_run_id, {"modelops.reused_version": version.version})
    registered = RegisteredVersion(
        name=model_name,
        version=str(version.version),
        run_id=str(version.run_id),
        source=str(version.source),
        created=False,
    )
    return registered, metrics


def stage_model(
    ctx: tracking.TrackingContext,
    version: RegisteredVersion,
    reason: str,
    metrics: dict[str, float] | None = None,
    actor: str | None = None,
    alias: str = STAGING,
) -> AuditEvent:
    """Point ``alias`` (``staging`` unless told otherwise) at the version and record who, when
    and why. A retry of the same move changes nothing."""
    event = move_alias(
        ctx.client(),
        version.name,
        alias,
        version.version,
        action=f"set-{alias}",
        actor=ctx.actor(actor),
        reason=reason,
        flow_run_id=ctx.flow_run_id,
        metrics=metrics,
        mlflow_run_id=ctx.parent_run_id,
    )
    tracking.set_tags(ctx, ctx.parent_run_id, {f"modelops.alias.{alias}": version.version})
    return event
