"""What the registry store answers before anything else: does this model exist?

The lowest module of the registry: the one registered-model lookup with a clear error, and how
an MLflow error says "does not exist". Everything else in the registry builds on these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelops.errors import ModelNotFound

if TYPE_CHECKING:
    from mlflow import MlflowClient


def is_missing(exc: BaseException) -> bool:
    """Whether an MLflow error says the thing asked for does not exist."""
    return getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"


def already_exists(exc: BaseException) -> bool:
    """Whether an MLflow error says the thing being created exists already."""
    return getattr(exc, "error_code", None) == "RESOURCE_ALREADY_EXISTS"


def registered_model(client: MlflowClient, name: str) -> Any:
    """The registered model, with a clear error when it does not exist.

    Raises:
        ModelNotFound: no such registered model.
    """
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        if is_missing(exc):
            raise ModelNotFound(
                f"No registered model named {name!r}. Check the name (and MLFLOW_TRACKING_URI / "
                f"MLFLOW_REGISTRY_URI), or train it first."
            ) from exc
        raise
