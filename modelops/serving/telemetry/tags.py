"""What an inference run says about where inference ran: shared by the model server and batch
text scoring, so both tag a run alike."""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelops.serving.model import ServedModel

ENGINE_TAG = "inference.engine_id"
ENVIRONMENT_TAG = "inference.environment"


def environment_tag() -> str:
    """Where inference runs: host, platform and Python version."""
    return f"{platform.node()} {platform.platform()} py{platform.python_version()}"


def engine_id(model: ServedModel) -> str:
    """Which server and engine answered, with versions (``modelops-serve/onnx-1.32.0``...)."""
    from importlib.metadata import PackageNotFoundError, version

    package = {
        "onnx": "onnxruntime",
        "sklearn": "scikit-learn",
        "transformers": "transformers",
        "pyfunc": "mlflow",
    }.get(model.engine, model.engine)
    try:
        return f"modelops-serve/{model.engine}-{version(package)}"
    except PackageNotFoundError:
        return f"modelops-serve/{model.engine}"
