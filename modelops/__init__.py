"""modelops: the core library behind the modelops-flows Prefect flows.

The public Python API::

    from modelops import MLflowConfig, init_mlflow, log_training_run, train_model
    from modelops import ModelStage, promote_model, get_model_metadata, load_production_model

Nothing heavy is imported here: ``import modelops`` costs milliseconds, and each public name is
loaded from its module on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "MLflowConfig": "modelops.library",
    "init_mlflow": "modelops.library",
    "log_training_run": "modelops.library",
    "train_model": "modelops.library",
    "train_lead_scoring_model": "modelops.library",
    "TrainedResult": "modelops.library",
    "ModelStage": "modelops.registry.stages",
    "promote_model": "modelops.registry.stages",
    "get_model_metadata": "modelops.registry.stages",
    "load_production_model": "modelops.registry.stages",
    "Settings": "modelops.settings",
    "get_settings": "modelops.settings",
    "ModelOpsError": "modelops.errors",
    "ConfigurationError": "modelops.errors",
    "DataLoadError": "modelops.errors",
    "DataValidationError": "modelops.errors",
    "QualityGateFailed": "modelops.errors",
    "RegistryError": "modelops.errors",
    "ModelNotFound": "modelops.errors",
    "PromotionRefused": "modelops.errors",
    "DeploymentFailed": "modelops.errors",
    "PermissionDenied": "modelops.errors",
    "TransientError": "modelops.errors",
}

__all__ = [
    "ConfigurationError",
    "DataLoadError",
    "DataValidationError",
    "DeploymentFailed",
    "MLflowConfig",
    "ModelNotFound",
    "ModelOpsError",
    "ModelStage",
    "PermissionDenied",
    "PromotionRefused",
    "QualityGateFailed",
    "RegistryError",
    "Settings",
    "TrainedResult",
    "TransientError",
    "__version__",
    "get_model_metadata",
    "get_settings",
    "init_mlflow",
    "load_production_model",
    "log_training_run",
    "promote_model",
    "train_lead_scoring_model",
    "train_model",
]

if TYPE_CHECKING:
    from modelops.errors import (
        ConfigurationError,
        DataLoadError,
        DataValidationError,
        DeploymentFailed,
        ModelNotFound,
        ModelOpsError,
        PermissionDenied,
        PromotionRefused,
        QualityGateFailed,
        RegistryError,
        TransientError,
    )
    from modelops.library import (
        MLflowConfig,
        TrainedResult,
        init_mlflow,
        log_training_run,
        train_lead_scoring_model,
        train_model,
    )
    from modelops.registry.stages import (
        ModelStage,
        get_model_metadata,
        load_production_model,
        promote_model,
    )
    from modelops.settings import Settings, get_settings


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'modelops' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
