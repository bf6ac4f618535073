"""The `tuning` flow: a hyper-parameter search fanned out on Dask; the best candidate then goes
through the training spine (fit, held-out evaluation, gate, registration, staging)."""

from __future__ import annotations

from prefect import flow

from modelops.params import TuningParams, keyword_parameters
from modelops.training import EstimatorConfig
from modelops.tuning import expand_search
from modelops.types import TrainingResult
from tasks.data import load_dataset, validate_dataset
from tasks.evaluation import check_quality_gate, evaluate_model
from tasks.registry import find_earlier_attempt, register_model, set_model_alias
from tasks.tracking import flow_run
from tasks.training import fit_model, split_dataset
from tasks.tuning import prepare_search, record_search, search_candidates, search_runner

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
        if earlier is None:
            data = load_dataset(
                ctx, p.data_path, p.target, features=p.features, min_rows=p.min_rows
            )
            report = validate_dataset(ctx, data)
            split = split_dataset(ctx, data, p.test_size, p.random_seed)
            search = prepare_search(split, data.schema, p.random_seed)
            results = search_candidates(runner, search, candidates, p.random_seed)
            best = record_search(ctx, results, p.metric, p.model_name)
            estimator = EstimatorConfig(kind=best.kind, params=best.params)  # type: ignore[arg-type]
            model = fit_model(ctx, data, split, estimator, p.random_seed)
            evaluation = evaluate_model(ctx, model, split, p.model_name)
            metrics, rows, validation = evaluation.metrics, data.info.rows, report["statistics"]
            decision = check_quality_gate(ctx, metrics, p.thresholds, p.model_name)
            version = register_model(ctx, p.model_name, model)
        else:
            (version, metrics), rows, validation = earlier, 0, {}
            decision = check_quality_gate(ctx, metrics, p.thresholds, p.model_name)
        if p.stage_alias:
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
    )


if __name__ == "__main__":
    import sys

    from modelops.cli import run

    run(["tune", *sys.argv[1:]])
