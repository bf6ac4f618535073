"""The `training` flow: data file → validated → trained → gated → registered → staged.

A run whose training key (data digest, resolved parameters, code and library versions) matches
a registered version of the model whose files still load reuses that version: nothing is
trained or registered (the spine, shared with `tuning`, is :mod:`flows._tabular`).
"""

from __future__ import annotations

from prefect import flow

from flows._tabular import train_tabular
from modelops.params import TrainingParams, keyword_parameters
from modelops.types import TrainingResult
from tasks.tracking import flow_run
from tasks.training import compute_training_key, fit_model

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
    with flow_run("training", p.model_name, p.model_dump(include=LOGGED_PARAMS)) as ctx:
        return train_tabular(
            ctx,
            p,
            compute_training_key,
            lambda data, split: fit_model(ctx, data, split, p.estimator, p.random_seed),
            staged_because="passed the quality gate",
        )


if __name__ == "__main__":
    import sys

    from modelops.cli import run

    run(["train", *sys.argv[1:]])
