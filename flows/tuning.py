"""The `tuning` flow: a hyper-parameter search fanned out on Dask; the best candidate then goes
through the training spine (fit, held-out evaluation, gate, registration, staging)."""

from __future__ import annotations

from prefect import flow

from flows._tabular import train_tabular
from modelops.orchestration.search import search_candidates, search_runner
from modelops.params import TuningParams, keyword_parameters
from modelops.training import EstimatorConfig
from modelops.tuning import expand_search
from modelops.types import LoadedData, Split, TrainedModel, TrainingResult
from tasks.tracking import flow_run
from tasks.training import fit_model
from tasks.tuning import compute_tuning_key, prepare_search, record_search

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

        def fit(data: LoadedData, split: Split) -> TrainedModel:
            search = prepare_search(split, data.schema, p.random_seed)
            results = search_candidates(runner, search, candidates, p.random_seed)
            best = record_search(ctx, results, p.metric, p.model_name)
            estimator = EstimatorConfig(kind=best.kind, params=best.params)  # type: ignore[arg-type]
            return fit_model(ctx, data, split, estimator, p.random_seed)

        return train_tabular(
            ctx,
            p,
            compute_tuning_key,
            fit,
            staged_because="best candidate of the search; passed the quality gate",
        )


if __name__ == "__main__":
    import sys

    from modelops.cli import run

    run(["tune", *sys.argv[1:]])
