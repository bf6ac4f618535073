"""What the server records about what it did: Prometheus metrics, and MLflow telemetry logged in
the background, never on a request's path.

One MLflow run per server process (tagged with the engine, the environment, the model name and
version and its training run) receives, every few seconds or every N requests, one batch of
aggregates: requests, rows, errors, latency percentiles, and for classifiers how often each label
was a candidate and how often it was dominant (probability over a threshold). Optionally a sample
of inputs and outputs goes to Parquet files (the monitoring flow's input).

- :mod:`~modelops.serving.telemetry.prometheus`: the ``/metrics`` families.
- :mod:`~modelops.serving.telemetry.recorder`: the buffer and the thread that flushes it.
- :mod:`~modelops.serving.telemetry.aggregate`: a request's record, a batch's aggregates.
- :mod:`~modelops.serving.telemetry.samples`: sampled inputs and outputs as Parquet.
- :mod:`~modelops.serving.telemetry.shipper`: the process's MLflow run.
- :mod:`~modelops.serving.telemetry.tags`: engine and environment tags (batch scoring too).
"""

from __future__ import annotations

from modelops.serving.telemetry.config import TelemetryConfig
from modelops.serving.telemetry.prometheus import Prometheus
from modelops.serving.telemetry.recorder import Telemetry
from modelops.serving.telemetry.tags import engine_id, environment_tag

__all__ = ["Prometheus", "Telemetry", "TelemetryConfig", "engine_id", "environment_tag"]
