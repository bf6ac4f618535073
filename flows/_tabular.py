"""The tabular training spine, wired once for the `training` and `tuning` flows (not a flow).

A retried flow run reuses the version it registered; a run whose training key matches a
registered version whose files still load reuses that version (nothing is validated, trained or
registered); else the data is validated, split, fitted (each flow its own way: one estimator, or
the best of a search), evaluated, gated and registered. The registration lock spans the key
lookup to the registration, so two identical runs started together make one version.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modelops.params import TrainingParams, TuningParams
from modelops.tracking import TrackingContext
from modelops.types import LoadedData, Split, TrainedModel, TrainingResult
from tasks.common import model_lock
from tasks.data import load_dataset, validate_dataset
from tasks.evaluation import check_quality_gate, evaluate_model
from tasks.registry import (
    find_earlier_attempt,
    find_reusable_version,
    register_model,
    set_model_alias,
    stage_reused_version,
)
from tasks.training import split_dataset

Fit = Callable[[LoadedData, Split], TrainedModel]
KeyOf = Callable[[TrackingContext, LoadedData, Any], Any]


def train_tabular(
    ctx: TrackingContext,
    p: TrainingParams | TuningParams,
    key_of: KeyOf,
    fit: Fit,
    staged_because: str,
) -> TrainingResult:
    """Reuse, or validate → split → ``fit`` → evaluate → gate → register; then stage."""
    earlier = find_earlier_attempt(ctx, p.model_name)  # a retried run reuses its version
    reused = None
    if earlier is None:
        with model_lock("registration", p.model_name):
            data = load_dataset(
                ctx, p.data_path, p.target, features=p.features, min_rows=p.min_rows
            )
            key = key_of(ctx, data, p)
            reuse = find_reusable_version(ctx, p.model_name, key, p.force_retrain)
            if reuse.version is None:
                report = validate_dataset(ctx, data)
                split = split_dataset(ctx, data, p.test_size, p.random_seed)
                model = fit(data, split)
                evaluation = evaluate_model(ctx, model, split, p.model_name)
                metrics, validation = evaluation.metrics, report["statistics"]
                decision = check_quality_gate(ctx, metrics, p.thresholds, p.model_name)
                version = register_model(ctx, p.model_name, model, key=key)
            else:
                version, metrics, validation = reuse.version, reuse.metrics, {}
                decision = check_quality_gate(ctx, metrics, p.thresholds, p.model_name)
                reused = reuse.reason
        rows, training_key = data.info.rows, key.digest
    else:
        (version, metrics), rows, validation, training_key = earlier, 0, {}, ""
        decision = check_quality_gate(ctx, metrics, p.thresholds, p.model_name)
    if p.stage_alias and reused:
        stage_reused_version(
            ctx, version, reason=reused, metrics=metrics, actor=p.actor, alias=p.stage_alias
        )
    elif p.stage_alias:
        set_model_alias(
            ctx, version, reason=staged_because, metrics=metrics, actor=p.actor, alias=p.stage_alias
        )
    return TrainingResult(
        model_name=p.model_name,
        version=version.version,
        alias=p.stage_alias,
        mlflow_run_id=ctx.parent_run_id,
        mlflow_experiment_id=ctx.experiment_id,
        metrics=metrics,
        rows=rows,
        gate=decision.rows,
        validation=validation,
        training_key=training_key,
        reused=reused,
    )
