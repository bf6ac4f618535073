"""The `tuning` flow: a hyper-parameter search fanned out on Dask; the best candidate then goes
through the training spine (fit, held-out evaluation, gate, registration, staging)."""

from __future__ import annotations

from prefect import flow

from modelops.params import TuningParams, keyword_parameters
from modelops.training import EstimatorConfig
from modelops.tuning import expand_search
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
from tasks.training import fit_model, split_dataset
from tasks.tuning import (
    compute_tuning_key,
    prepare_search,
    record_search,
    search_candidates,
    search_runner,
)

LOGGED_PARAMS = {
    "data_path",
    "target",
    "model_name",
    "search",
    "n_candidates",
    "metric",
    "runner",
    "dask_address",
    "thresholds",
    "test_size",
    "random_seed",
    "force_retrain",
}


@flow(name="tuning", log_prints=True)
@keyword_parameters(TuningParams)
def tuning(params: TuningParams) -> TrainingResult:
    """Search estimator kinds and hyper-parameters (each candidate a nested MLflow run), then
    fit, gate, register and stage the best candidate."""
    p = params
    candidates = expand_search(p.search, p.n_candidates, p.random_seed)
    with (
        search_runner(p.runner, p.dask_address, p.dask_workers) as runner,  # starts now
        flow_run("tuning", p.model_name, p.model_dump(include=LOGGED_PARAMS)) as ctx,
    ):
        earlier = find_earlier_attempt(ctx, p.model_name)  # a retried run reuses its version
        reused = None
        if earlier is None:
            # Key lookup to registration under one lock: identical runs make one version.
            with model_lock("registration", p.model_name):
                data = load_dataset(
                    ctx, p.data_path, p.target, features=p.features, min_rows=p.min_rows
                )
                key = compute_tuning_key(ctx, data, p)
                reuse = find_reusable_version(ctx, p.model_name, key, p.force_retrain)
                if reuse.version is None:
                    report = validate_dataset(ctx, data)
                    split = split_dataset(ctx, data, p.test_size, p.random_seed)
                    search = prepare_search(split, data.schema, p.random_seed)
                    results = search_candidates(runner, search, candidates, p.random_seed)
                    best = record_search(ctx, results, p.metric, p.model_name)
                    estimator = EstimatorConfig(kind=best.kind, params=best.params)  # type: ignore[arg-type]
                    model = fit_model(ctx, data, split, estimator, p.random_seed)
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
                reason="best candidate of the search; passed the quality gate",
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

    run(["tune", *sys.argv[1:]])
