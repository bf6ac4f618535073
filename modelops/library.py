"""The Python library API: configure MLflow, log a run by hand, train on a DataFrame.

Drop-in for code written against the original lead-scoring lifecycle module::

    from modelops import MLflowConfig, init_mlflow, log_training_run, train_model

Everything here runs on the flows' own steps (:mod:`modelops.steps`), in the flows' order: the
same validation, split, fit, evaluation, gate, idempotent registration, aliases and audit trail,
in a plain Python process — no Prefect engine, no server.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.errors import ConfigurationError

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from modelops.data import FeatureSpec
    from modelops.tracking import TrackingContext
    from modelops.types import LoadedData, Split

DEFAULT_MODEL_NAME = "lead_scoring_model"  # the original module's default
MIN_HOLDOUT_PER_CLASS = 5  # fewer held-out rows of a class than this: cross-validate instead
MAX_FOLDS = 5


@dataclass
class MLflowConfig:
    """Where MLflow lives. Unset fields take the project's defaults (``MODELOPS_HOME``'s SQLite
    file, experiment ``modelops``)."""

    tracking_uri: str | None = None
    experiment_name: str | None = None
    registry_uri: str | None = None

    @classmethod
    def from_env(cls) -> MLflowConfig:
        """From ``MLFLOW_TRACKING_URI``, ``MLFLOW_EXPERIMENT_NAME`` and ``MLFLOW_REGISTRY_URI``
        (with the project's defaults for what is unset)."""
        from modelops.settings import get_settings

        settings = get_settings()
        return cls(
            tracking_uri=settings.resolved_tracking_uri,
            experiment_name=settings.experiment_name,
            registry_uri=settings.registry_uri,
        )


def init_mlflow(config: MLflowConfig | None = None) -> MLflowConfig:
    """Point this process at an MLflow store and create the experiment if it is missing.

    Like ``mlflow.set_tracking_uri``, this is process-wide: plain ``mlflow`` calls and every
    ``modelops`` call made afterwards (training, promotion, metadata) use the same store. An
    in-memory store (``sqlite:///:memory:``) works, for tests.

    Returns:
        The configuration in force (defaults filled in).
    """
    import mlflow

    from modelops.settings import get_settings
    from modelops.tracking import ensure_experiment, get_client

    given = config or MLflowConfig()
    for key, value in (
        ("MLFLOW_TRACKING_URI", _absolute(given.tracking_uri)),
        ("MLFLOW_EXPERIMENT_NAME", given.experiment_name),
        ("MLFLOW_REGISTRY_URI", _absolute(given.registry_uri)),
    ):
        if value:
            os.environ[key] = value
    settings = get_settings()
    resolved = MLflowConfig(
        settings.resolved_tracking_uri, settings.experiment_name, settings.registry_uri
    )
    if settings.resolved_tracking_uri.startswith("sqlite:///"):
        settings.home_dir.mkdir(parents=True, exist_ok=True)
    client = get_client(settings.resolved_tracking_uri, settings.resolved_registry_uri)
    experiment_id = ensure_experiment(
        client, settings.experiment_name, settings.default_artifact_location
    )
    mlflow.set_tracking_uri(settings.resolved_tracking_uri)
    mlflow.set_registry_uri(settings.resolved_registry_uri)
    mlflow.set_experiment(experiment_id=experiment_id)
    return resolved


def _absolute(uri: str | None) -> str | None:
    """``sqlite:///mlflow.db`` (relative to the working directory now) as an absolute path, so
    the store stays the same file if the process changes directory later."""
    if not uri or not uri.startswith("sqlite:///"):
        return uri
    path = uri.removeprefix("sqlite:///")
    if path in ("", ":memory:") or Path(path).is_absolute():
        return uri
    return f"sqlite:///{Path(path).resolve()}"


def _start(
    run_name: str, params: dict[str, Any] | None = None, tags: dict[str, str] | None = None
) -> TrackingContext:
    from modelops import tracking
    from modelops.settings import get_settings

    return tracking.start_parent_run(
        get_settings(),
        run_name,
        params=params,
        tags={"modelops.flow": "python-api", **(tags or {})},
    )


def _check_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    if not isinstance(metrics, dict):
        raise ConfigurationError(f"metrics must be a dict of name -> number, got {metrics!r}")
    values: dict[str, float] = {}
    for name, value in metrics.items():
        try:
            values[str(name)] = float(value)
        except (TypeError, ValueError):
            values[str(name)] = math.nan
        if not math.isfinite(values[str(name)]):
            raise ConfigurationError(f"Metric {name!r} must be a finite number, got {value!r}")
    return values


def log_training_run(
    model: Any,
    params: dict[str, Any],
    metrics: dict[str, float],
    metadata: dict[str, Any],
    model_name: str | None = None,
    input_example: pd.DataFrame | None = None,
    artifacts: dict[str, str | os.PathLike[str]] | None = None,
    *,
    run_name: str | None = None,
) -> str:
    """Log a model trained by your own code: params, metrics, metadata (as tags), artifacts,
    and the model (skops, with the signature of ``input_example``); registered as a new
    version of ``model_name`` when given (at most once per run, like the flows).

    Args:
        model: a fitted scikit-learn estimator or pipeline.
        params: hyper-parameters (nested values are flattened to dotted keys).
        metrics: metric name -> number.
        metadata: tags (non-text values are stored as JSON).
        model_name: register the model under this name (no alias: stage it with
            :func:`modelops.promote_model`).
        input_example: a few rows of features; the signature is inferred from them.
        artifacts: artifact folder name -> local file or folder to upload.
        run_name: the MLflow run's name (default ``log-<model_name or estimator>``).

    Returns:
        The MLflow run id.

    Raises:
        ConfigurationError: an artifact path that does not exist, a metric that is not a
            number, a model that is not a fitted scikit-learn estimator, an invalid model
            name — all before anything is logged.
    """
    import json

    from modelops import tracking
    from modelops.model_io import log_sklearn_model
    from modelops.naming import check_model_name
    from modelops.registry.versions import register_version

    values = _check_metrics(metrics)
    if model_name is not None:
        check_model_name(model_name)
    files = {str(k): Path(v) for k, v in (artifacts or {}).items()}
    missing = [f"{k}={p}" for k, p in files.items() if not p.exists()]
    if missing:
        raise ConfigurationError(
            f"Artifact path(s) not found: {', '.join(missing)}. Give existing files or folders."
        )
    if not (hasattr(model, "get_params") and hasattr(model, "predict")):
        raise ConfigurationError(
            f"log_training_run logs scikit-learn estimators; got {type(model).__name__}"
        )
    _check_fitted(model)
    tags = {
        str(k): v if isinstance(v, str) else json.dumps(v, default=str)
        for k, v in (metadata or {}).items()
    }
    ctx = _start(
        run_name or f"log-{model_name or type(model).__name__}", params=params or {}, tags=tags
    )
    run_id = ctx.parent_run_id
    try:
        tracking.log_metrics(ctx, run_id, values)
        client = ctx.client()
        for name, path in files.items():
            if path.is_dir():
                client.log_artifacts(run_id, str(path), artifact_path=name)
            else:
                client.log_artifact(run_id, str(path), artifact_path=name)
        logged = log_sklearn_model(ctx, run_id, model, input_example=input_example)
        if model_name is not None:
            version, _ = register_version(
                client,
                model_name,
                model_id=logged.model_id,
                run_id=run_id,
                tags={"modelops.parent_run_id": run_id},
            )
            tracking.set_tags(
                ctx,
                run_id,
                {
                    "modelops.registered_model": model_name,
                    "modelops.model_version": version.version,
                },
            )
    except BaseException as exc:
        tracking.set_tags(ctx, run_id, {"error.message": f"{type(exc).__name__}: {exc}"[:4900]})
        tracking.end_run(ctx, run_id, "FAILED")
        raise
    tracking.end_run(ctx, run_id, "FINISHED")
    return run_id


def _check_fitted(model: Any) -> None:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(model)
    except NotFittedError as exc:
        raise ConfigurationError(f"The model is not fitted: {exc}") from exc
    except TypeError:  # not an estimator check_is_fitted understands: let logging decide
        pass


@dataclass
class TrainedResult:
    """What :func:`train_model` returns (the original module's users read its attributes:
    ``result.metrics["roc_auc"]``, ``result.model``)."""

    model: Pipeline  # the fitted scikit-learn pipeline
    metrics: dict[str, float]
    evaluation: str  # "holdout (N rows)" or "cross-validation (K folds over N rows)"
    rows: int
    model_name: str | None = None
    version: int | None = None  # when registered
    run_id: str | None = None  # the MLflow run, when MLflow is enabled
    alias: str | None = None
    gate: list[dict[str, Any]] = field(default_factory=list)


def train_model(
    dataset: pd.DataFrame,
    target_column: str = "won",
    enable_mlflow: bool = True,
    mlflow_model_name: str = DEFAULT_MODEL_NAME,
    metric_thresholds: dict[str, float] | None = None,
    *,
    estimator: Any = None,
    test_size: float = 0.2,
    random_seed: int = 42,
    features: dict[str, Any] | None = None,
    stage_alias: str | None = "staging",
    actor: str | None = None,
) -> TrainedResult:
    """Validate, train, evaluate, gate and (with MLflow) register and stage a binary classifier
    trained on a DataFrame.

    The steps are the training flow's (:mod:`modelops.steps`), in its order: load, validate,
    split, fit, evaluate, gate, register, stage. Evaluation is on a stratified held-out part
    when each class would have at least ``MIN_HOLDOUT_PER_CLASS`` rows in it; smaller tables
    (the original examples train on 4-8 rows) are evaluated by stratified cross-validation
    instead, then fitted on every row, and the result and the run say so.

    Args:
        dataset: the table, features and target.
        target_column: the binary label column.
        enable_mlflow: log, register and stage; False runs the same steps and logs nothing.
        mlflow_model_name: the registered model name.
        metric_thresholds: the quality gate (metric -> minimum, maximum for losses); None or
            empty for no gate.
        estimator: an :class:`~modelops.training.EstimatorConfig` or a dict like
            ``{"kind": "random_forest", "params": {"max_depth": 6}}`` (default: logistic
            regression).
        test_size: held-out fraction.
        random_seed: seed of the split, the folds and the estimator.
        features: declared feature schema (name -> ``{"kind": ..., "nullable": ...}``);
            default inferred from the data.
        stage_alias: alias given to the new version (``staging``; None for none). Production
            is reached through :func:`modelops.promote_model` only.
        actor: who to record in the audit trail (default the OS user).

    Returns:
        The fitted pipeline, its metrics and how they were measured, and (with MLflow) the
        registered version, its alias and the MLflow run.

    Raises:
        ConfigurationError: not a DataFrame, no such target column, not two classes, unknown
            threshold metrics, a bad estimator — before anything is logged.
        DataValidationError: the table fails validation (nothing registered).
        QualityGateFailed: the metrics miss a threshold (nothing registered).
    """
    import pandas as pd

    from modelops.evaluation import check_thresholds
    from modelops.naming import check_alias, check_model_name
    from modelops.registry.aliases import PRODUCTION
    from modelops.steps import data as data_steps
    from modelops.steps import evaluation as evaluation_steps
    from modelops.steps import registry as registry_steps
    from modelops.steps import training as training_steps
    from modelops.training import EstimatorConfig

    if not isinstance(dataset, pd.DataFrame):
        raise ConfigurationError(
            f"dataset must be a pandas DataFrame, got {type(dataset).__name__}. Read a file "
            f"with pandas first, or use the training flow (modelops train --data FILE)."
        )
    if target_column not in dataset.columns:
        raise ConfigurationError(
            f"The target column {target_column!r} is not in the DataFrame. Columns: "
            f"{', '.join(map(str, dataset.columns[:20]))}"
        )
    thresholds = check_thresholds(metric_thresholds or {}, "binary", required=False)
    try:
        config = EstimatorConfig.model_validate(estimator or {})
    except ValueError as exc:
        raise ConfigurationError(f"Invalid estimator: {exc}") from exc
    if stage_alias is not None:
        check_alias(stage_alias)
        if stage_alias == PRODUCTION:
            raise ConfigurationError(
                "stage_alias='production' would skip staging: stage the version, then "
                "promote it with promote_model(..., stage=ModelStage.PRODUCTION)."
            )
    if enable_mlflow:
        check_model_name(mlflow_model_name)
    declared = _features(features)
    logged_params = {
        "target": target_column,
        "model_name": mlflow_model_name,
        "estimator": config,
        "thresholds": thresholds,
        "test_size": test_size,
        "random_seed": random_seed,
    }
    with _api_run(enable_mlflow, f"training-{mlflow_model_name}", logged_params) as ctx:
        data = data_steps.load_dataset(
            ctx, None, target_column, declared, min_rows=2, frame=dataset
        )
        data_steps.validate_dataset(ctx, data)
        folds = _folds(data, test_size)
        if not folds:
            split = training_steps.split_dataset(ctx, data, test_size, random_seed)
            model = training_steps.fit_model(ctx, data, split, config, random_seed)
            evaluation = evaluation_steps.evaluate_model(ctx, model, split)
        else:
            evaluation = evaluation_steps.cross_validate(ctx, data, config, random_seed, folds)
            model = training_steps.fit_model(ctx, data, _everything(data), config, random_seed)
        decision = evaluation_steps.check_gate(ctx, evaluation.metrics, thresholds)
        decision.raise_if_failed()
        result = TrainedResult(
            model=model.pipeline,
            metrics=evaluation.metrics,
            evaluation=evaluation.method,
            rows=data.info.rows,
            gate=decision.rows,
        )
        if ctx is None:
            return result
        version = registry_steps.register_model(ctx, mlflow_model_name, model)
        if stage_alias:
            registry_steps.stage_model(
                ctx,
                version,
                reason="passed the quality gate (Python API)",
                metrics=evaluation.metrics,
                actor=actor,
                alias=stage_alias,
            )
        result.model_name, result.version = mlflow_model_name, int(version.version)
        result.run_id, result.alias = ctx.parent_run_id, stage_alias
    return result


@contextmanager
def _api_run(
    enabled: bool, run_name: str, params: dict[str, Any]
) -> Iterator[TrackingContext | None]:
    """The Python API's parent MLflow run (None when MLflow is off): FINISHED when the body
    ends, FAILED with the error's message when it raises."""
    from modelops import tracking

    if not enabled:
        yield None
        return
    ctx = _start(run_name, params=params)
    try:
        yield ctx
    except BaseException as exc:
        tracking.set_tags(
            ctx, ctx.parent_run_id, {"error.message": f"{type(exc).__name__}: {exc}"[:4900]}
        )
        tracking.end_run(ctx, ctx.parent_run_id, "FAILED")
        raise
    tracking.end_run(ctx, ctx.parent_run_id, "FINISHED")


def _features(features: dict[str, Any] | None) -> dict[str, FeatureSpec] | None:
    from modelops.data import FeatureSpec

    if not features:
        return None
    try:
        return {str(k): FeatureSpec.model_validate(v) for k, v in features.items()}
    except ValueError as exc:
        raise ConfigurationError(f"Invalid feature schema: {exc}") from exc


def _folds(data: LoadedData, test_size: float) -> int:
    """0 to evaluate on a held-out part; else the folds to cross-validate a table whose rarest
    class would have fewer than ``MIN_HOLDOUT_PER_CLASS`` held-out rows.

    Raises:
        ConfigurationError: the rarest class has fewer than 2 rows: not even 2 folds.
    """
    import numpy as np

    from modelops.training import encode_target

    target = data.schema.target
    y, _ = encode_target(data.frame[target])
    smallest = int(min(np.bincount(y, minlength=2)))
    if smallest * test_size >= MIN_HOLDOUT_PER_CLASS:
        return 0
    if smallest < 2:
        raise ConfigurationError(
            f"Too few rows to evaluate: the rarest class of {target!r} has {smallest} row(s); "
            f"cross-validation needs at least 2 of each class."
        )
    return min(MAX_FOLDS, smallest)


def _everything(data: LoadedData) -> Split:
    """Every row as the training part, for the final fit of a cross-validated small table
    (its "held-out" part is the same rows: the reference profile needs one)."""
    from modelops.training import encode_target, feature_frame
    from modelops.types import Split

    y, labels = encode_target(data.frame[data.schema.target])
    X = feature_frame(data.frame, data.schema)
    return Split(X, X, y, y, labels)


# The original module's name for train_model.
train_lead_scoring_model = train_model
