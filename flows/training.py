"""The `training` flow: data file → validated → trained → gated → registered → staged.

A run whose training key (data digest, resolved parameters, code and library versions) matches
a registered version of the model whose files still load reuses that version: nothing is
trained or registered. The registration lock spans the key lookup to the registration, so two
identical runs started together make one version: the second waits, then finds the first's.
"""

from __future__ import annotations

from prefect import flow

from modelops.params import TrainingParams, keyword_parameters
from modelops.types import TrainingResult
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
from tasks.tracking import flow_run
from tasks.training import compute_training_key, fit_model, split_dataset

LOGGED_PARAMS = {
    "data_path",
    "target",
    "model_name",
    "estimator",
    "thresholds",
    "test_size",
    "random_seed",
    "force_retrain",
}


@flow(name="training", log_prints=True)
@keyword_parameters(TrainingParams)
def training(params: TrainingParams) -> TrainingResult:
    """Train a binary classifier from a CSV/Parquet file, gate it, register it and stage it."""
    p = params
    reused = None
    with flow_run("training", p.model_name, p.model_dump(include=LOGGED_PARAMS)) as ctx:
        earlier = find_earlier_attempt(ctx, p.model_name)  # a retried run reuses its version
        if earlier is None:
            with model_lock("registration", p.model_name):
                data = load_dataset(
                    ctx, p.data_path, p.target, features=p.features, min_rows=p.min_rows
                )
                key = compute_training_key(ctx, data, p)
                reuse = find_reusable_version(ctx, p.model_name, key, p.force_retrain)
                if reuse.version is None:
                    report = validate_dataset(ctx, data)
                    split = split_dataset(ctx, data, p.test_size, p.random_seed)
                    model = fit_model(ctx, data, split, p.estimator, p.random_seed)
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
                ctx,
                version,
                reason="passed the quality gate",
                metrics=metrics,
                actor=p.actor,
                alias=p.stage_alias,
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


if __name__ == "__main__":
    import sys

    from modelops.cli import run

    run(["train", *sys.argv[1:]])
