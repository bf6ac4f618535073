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
from modelops.params import TrainingParams
from modelops.training import EstimatorConfig, build_pipeline, fit_pipeline
from modelops.training import split_dataset as make_split
from modelops.training_key import KEY_FILE, KEY_TAG, TABULAR_LIBRARIES, make_key
from modelops.types import LoadedData, Split, TrainedModel, TrainingKey

HOLDOUT_ROWS = 2000  # rows of the held-out part kept beside the model (fast-path parity)
# Which rows of which table were held out, on the parent run: the promotion's comparison scores
# the challenger on exactly these rows (modelops.steps.promotion).
SPLIT_FILE = "split/held_out.json"
ESTIMATOR_FILE = "estimator.json"  # on the version's run


def data_identity(data: LoadedData) -> dict[str, Any]:
    """What a training key knows of the data: its content digest (and where it was read)."""
    return {"digest": data.info.digest, "rows": data.info.rows, "source": data.info.source}


def schema_identity(data: LoadedData) -> dict[str, Any]:
    """The resolved schema (declared or inferred features, the target), as the key takes it;
    ``min_rows`` only decides whether to train, not what. The features' order is kept apart:
    the key's JSON sorts mappings, and the column order changes the model (a forest draws
    features by position, sums run in column order)."""
    return {
        **data.schema.model_dump(mode="json", exclude={"min_rows"}),
        "feature_order": list(data.schema.features),
    }


def resolved_estimator(data: LoadedData, estimator: EstimatorConfig, seed: int) -> dict[str, Any]:
    """The estimator's parameters with every default filled in, as it would be fitted: a
    parameter left out and the same one given at its default make the same model."""
    model = build_pipeline(data.schema, estimator, seed=seed).named_steps["model"]
    return {"kind": estimator.kind, "params": model.get_params(deep=False)}


def record_key(ctx: tracking.TrackingContext | None, run_id: str | None, key: TrainingKey) -> None:
    """The key on a run: the digest as a tag (searchable), its parts as readable JSON."""
    if ctx is None or run_id is None:
        return
    tracking.set_tags(ctx, run_id, {KEY_TAG: key.digest})
    tracking.log_json(ctx, run_id, key.parts, KEY_FILE)


def training_key(
    ctx: tracking.TrackingContext | None, data: LoadedData, params: TrainingParams
) -> TrainingKey:
    """The key of a ``training`` run on ``data``: the data digest, the resolved schema and
    estimator, the split, the gate, the code and library versions; recorded on the parent run."""
    key = make_key(
        "tabular",
        data_identity(data),
        {
            "schema": schema_identity(data),
            "estimator": resolved_estimator(data, params.estimator, params.random_seed),
            "test_size": params.test_size,
            "random_seed": params.random_seed,
            "thresholds": params.thresholds,
        },
        TABULAR_LIBRARIES,
    )
    record_key(ctx, ctx.parent_run_id if ctx else None, key)
    return key


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
        # The estimator as asked for (a tuning run's best candidate too): what `reproduce`
        # rebuilds the version with.
        tracking.log_json(ctx, run_id, estimator.model_dump(mode="json"), ESTIMATOR_FILE)
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
