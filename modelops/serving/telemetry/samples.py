"""Inputs and outputs of sampled requests, as Parquet files: the monitoring flow's input."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.naming import model_stem

if TYPE_CHECKING:
    from modelops.serving.model import ServedModel
    from modelops.serving.telemetry.config import TelemetryConfig


def sampled(rate: float) -> bool:
    """Whether this request is one of the sampled fraction ``rate``."""
    import random

    return rate >= 1 or random.random() < rate


def write_samples(model: ServedModel, config: TelemetryConfig, samples: list[Any]) -> None:
    """Inputs and outputs of sampled requests as one Parquet file (off the request path)."""
    import uuid
    from datetime import UTC, datetime

    import pandas as pd

    frames = []
    now = datetime.now(UTC)
    for inputs, answer, request_id in samples:
        if isinstance(inputs, pd.DataFrame):
            frame = inputs.copy()
        elif hasattr(inputs, "to_frame"):  # a numeric Batch
            frame = inputs.to_frame()
        else:
            frame = pd.DataFrame({"text": inputs})
        frame["prediction"] = [str(p) if isinstance(p, list) else p for p in answer.predictions]
        if answer.probabilities is not None and len(answer.classes) == 2:
            frame["probability"] = answer.probabilities[:, 1]
        frame["request_id"] = request_id
        frame["served_at"] = now
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    table["model_version"] = model.version
    folder = f"{str(config.sample_dir).rstrip('/')}/{model_stem(model.name)}/v{model.version}"
    name = f"{now:%Y%m%dT%H%M%S}-{os.getpid()}-{uuid.uuid4().hex[:6]}.parquet"
    if "://" not in folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
    table.to_parquet(f"{folder}/{name}", index=False)
