"""Logging fitted models to MLflow."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from modelops.tracking import TrackingContext, active_run

if TYPE_CHECKING:
    import pandas as pd

# Serving needs exactly these; letting MLflow infer them costs seconds per call and, with torch
# installed, lists torch and pytest for a logistic regression (skops imports them).
_SKLEARN_RUNTIME = ("mlflow", "scikit-learn", "skops", "numpy", "pandas", "scipy")


def pinned_requirements(*packages: str) -> list[str]:
    """``name==installed-version`` for each installed package (skips missing ones)."""
    pins = []
    for name in packages:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return pins


def log_sklearn_model(
    ctx: TrackingContext,
    run_id: str,
    model: Any,
    input_example: pd.DataFrame,
    name: str = "model",
    metadata: dict[str, Any] | None = None,
) -> Any:
    """Log a fitted scikit-learn model with its signature, input example and requirements.

    The format is skops, not pickle: loading a skops file cannot run arbitrary code, which
    matters for a model that a serving container pulls from a shared registry. (Measured here:
    0.07 s per call once skops is imported, against 0.05 s for cloudpickle.)

    Args:
        ctx: the tracking context.
        run_id: the run to log under.
        model: the fitted estimator or pipeline.
        input_example: a few rows of features; the signature is inferred from them.
        name: the model's name within the run.
        metadata: free-form metadata stored in the MLmodel file.

    Returns:
        MLflow's ``ModelInfo`` (``model_uri``, ``model_id``, ``signature`` ...).
    """
    import mlflow.sklearn
    from mlflow.models import infer_signature

    signature = infer_signature(input_example, model.predict(input_example))
    with active_run(ctx, run_id):
        return mlflow.sklearn.log_model(
            model,
            name=name,
            serialization_format="skops",
            skops_trusted_types=_trusted_types(model),
            signature=signature,
            input_example=input_example,
            pip_requirements=pinned_requirements(*_SKLEARN_RUNTIME),
            metadata=metadata,
        )


def _trusted_types(model: Any) -> list[str] | None:
    """Types skops should trust on load beyond its defaults: the model's own numpy dtypes."""
    try:
        from skops.io import dumps, get_untrusted_types

        return get_untrusted_types(data=dumps(model)) or None
    except Exception:
        return None
