"""Search tasks: score candidates on a task runner (Dask by default), record them in MLflow."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task

from modelops import tracking, tuning
from modelops.params import TuningParams
from modelops.steps import tuning as search_steps
from modelops.tracking import TrackingContext
from modelops.types import LoadedData, Split, TrainingKey
from tasks.common import IO_TASK, artifact_key, markdown_artifact, table_artifact

# A candidate's own failure is a result, not an exception (see modelops.tuning.score_candidate):
# what is left to retry is a transient fault of the runner (a lost worker's connection).
score_candidate = task(
    name="score_candidate", task_run_name="candidate-{candidate.index}", **IO_TASK
)(tuning.score_candidate)


@task(name="compute_tuning_key", **IO_TASK)
def compute_tuning_key(ctx: TrackingContext, data: LoadedData, params: TuningParams) -> TrainingKey:
    """The run's training key: data digest, search space and seed, code and library versions."""
    key = search_steps.tuning_key(ctx, data, params)
    get_run_logger().info("Training key %s", key.short)
    return key


@task(name="record_search", **IO_TASK)
def record_search(
    ctx: tracking.TrackingContext,
    results: list[tuning.CandidateResult],
    metric: str,
    model_name: str,
) -> tuning.CandidateResult:
    """Record every candidate in MLflow and the results table in Prefect; return the best.

    Raises:
        ConfigurationError: every candidate failed.
    """
    record = search_steps.record_search(ctx, results, metric)
    table_artifact(
        record.rows,
        key=artifact_key(model_name, "search-results"),
        description=f"{len(results)} candidates ranked by validation {metric}",
    )
    best = record.chosen()  # raises when every candidate failed, after the table is shown
    markdown_artifact(
        record.markdown,
        key=artifact_key(model_name, "search-summary"),
        description=f"Best: #{best.index} {best.kind} ({metric}={best.metrics[metric]:.4f})",
    )
    get_run_logger().info(
        "Best candidate: #%s %s %s (%s=%.4f)",
        best.index,
        best.kind,
        best.params,
        metric,
        best.metrics[metric],
    )
    return best


@task(name="prepare_search", **IO_TASK)
def prepare_search(split: Split, schema: Any, seed: int) -> tuning.SearchData:
    """The validation part the candidates are scored on, carved from the training part."""
    return tuning.search_data(schema, split.X_train, split.y_train, seed)
