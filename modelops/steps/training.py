"""The training steps: the stratified split, then fitting the pipeline and logging it.

With a tracking context each step logs into the flow's MLflow run tree (the fit in its own child
run, the version's run once registered); without one (the Python API with
``enable_mlflow=False``) the same work runs and nothing is logged.
"""

from __future__ import annotations

import time
from typing import Any

from modelops import tracking
from modelops.model_io import log_sklearn_model
from modelops.training import EstimatorConfig, build_pipeline, fit_pipeline
from modelops.training import split_dataset as make_split
from modelops.types import LoadedData, Split, TrainedModel

HOLDOUT_ROWS = 2000  # rows of the held-out part kept beside the model (fast-path parity)
# Which rows of which table were held out, on the parent run: the promotion's comparison scores
# the challenger on exactly these rows (modelops.steps.promotion).
SPLIT_FILE = "split/held_out.json"


def split_dataset(
    ctx: tracking.TrackingContext | None, data: LoadedData, test_size: float, seed: int
) -> Split:
    """Stratified train/test split of the declared features; with ``ctx`` the sizes, the seed
    and which rows were held out are recorded on the parent run."""
    split = make_split(data.frame, data.schema, test_size=test_size, seed=seed)
    if ctx is None:
        return split
    tracking.log_params(
        ctx,
        ctx.parent_run_id,
        {"split.test_size": test_size, "split.seed": seed, "split.positive_label": split.labels[1]},
    )
    tracking.log_metrics(ctx, ctx.parent_run_id, {f"split.{k}": v for k, v in split.sizes.items()})
    tracking.log_json(ctx, ctx.parent_run_id, held_out_record(data, split), SPLIT_FILE)
    return split


def held_out_record(data: LoadedData, split: Split) -> dict[str, Any]:
    """What identifies the held-out rows: the table (source and digest) and their positions."""
    rows = [] if split.test_rows is None else [int(i) for i in split.test_rows]
    return {
        "source": data.info.source,
        "digest": data.info.digest,
        "rows": data.info.rows,
        "target": data.schema.target,
        "test_rows": rows,
    }


def fit_model(
    ctx: tracking.TrackingContext | None,
    data: LoadedData,
    split: Split,
    estimator: EstimatorConfig,
    seed: int,
) -> TrainedModel:
    """Fit the pipeline on the training part; with ``ctx`` log it (signature, input example,
    pinned requirements) and its reference profile in a ``fit_model`` child run."""
    pipeline = build_pipeline(data.schema, estimator, seed=seed)
    if ctx is None:
        fit_pipeline(pipeline, split)
        return TrainedModel(pipeline=pipeline, labels=split.labels)
    schema = data.schema
    with tracking.child_run(ctx, "fit_model") as run_id:
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
        pipeline=pipeline,
        labels=split.labels,
        logged=logged,
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
