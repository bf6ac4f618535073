"""Training tasks: stratified split, then fit and log a scikit-learn pipeline."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from prefect import get_run_logger, task

from modelops import tracking
from modelops.data import DatasetSchema
from modelops.models import log_sklearn_model
from modelops.training import EstimatorConfig, Split, build_pipeline, fit_pipeline
from modelops.training import split_dataset as make_split
from tasks.common import COMPUTE_TASK, IO_TASK
from tasks.data import LoadedData


@dataclass
class TrainedModel:
    """A fitted pipeline and where MLflow keeps it."""

    pipeline: Any
    run_id: str
    model_id: str
    model_uri: str
    labels: tuple[Any, ...]  # (negative, positive) for binary models; all labels for text


@task(name="split_dataset", **COMPUTE_TASK)
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


@task(name="train_model", **IO_TASK)
def train_model(
    ctx: tracking.TrackingContext,
    schema: DatasetSchema,
    split: Split,
    estimator: EstimatorConfig,
    seed: int,
) -> TrainedModel:
    """Fit the pipeline and log it (signature, input example, pinned requirements)."""
    with tracking.child_run(ctx, "train_model") as run_id:
        pipeline = build_pipeline(schema, estimator, seed=seed)
        tracking.log_params(
            ctx, run_id, {"estimator": estimator.kind, **pipeline.named_steps["model"].get_params()}
        )
        started = time.perf_counter()
        fit_pipeline(pipeline, split)
        fit_seconds = time.perf_counter() - started
        info = log_sklearn_model(
            ctx,
            run_id,
            pipeline,
            input_example=split.X_train.head(5),
            metadata={"positive_label": str(split.labels[1]), "target": schema.target},
        )
        tracking.log_metrics(ctx, run_id, {"fit_seconds": fit_seconds})
    get_run_logger().info(
        "Fitted %s on %s rows in %.2fs", estimator.kind, len(split.X_train), fit_seconds
    )
    return TrainedModel(
        pipeline=pipeline,
        run_id=run_id,
        model_id=info.model_id,
        model_uri=info.model_uri,
        labels=split.labels,
    )
