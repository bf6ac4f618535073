"""Training tasks: stratified split, then fit and log a scikit-learn pipeline."""

from __future__ import annotations

from prefect import get_run_logger, task

from modelops.params import TrainingParams
from modelops.steps import training as steps
from modelops.tracking import TrackingContext
from modelops.training import EstimatorConfig
from modelops.types import LoadedData, Split, TrainedModel, TrainingKey
from tasks.common import IO_TASK

split_dataset = task(name="split_dataset", **IO_TASK)(steps.split_dataset)


@task(name="compute_training_key", **IO_TASK)
def compute_training_key(
    ctx: TrackingContext, data: LoadedData, params: TrainingParams
) -> TrainingKey:
    """The run's training key (data digest, resolved parameters, code and library versions)."""
    key = steps.training_key(ctx, data, params)
    get_run_logger().info("Training key %s", key.short)
    return key


@task(name="fit_model", **IO_TASK)
def fit_model(
    ctx: TrackingContext, data: LoadedData, split: Split, estimator: EstimatorConfig, seed: int
) -> TrainedModel:
    """Fit the pipeline and log it (signature, input example, pinned requirements)."""
    model = steps.fit_model(ctx, data, split, estimator, seed)
    get_run_logger().info("Fitted %s on %s rows", estimator.kind, len(split.X_train))
    return model
