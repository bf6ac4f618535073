"""What the server records about what it did: Prometheus metrics, and MLflow telemetry logged in
the background, never on a request's path.

One MLflow run per server process (tagged with the engine, the environment, the model name and
version and its training run) receives, every few seconds or every N requests, one batch of
aggregates: requests, rows, errors, latency percentiles, and for classifiers how often each label
was a candidate and how often it was dominant (probability over a threshold). Requests only
append to a bounded buffer; if MLflow is down, they keep being served, and what could not be
logged is counted (``telemetry.dropped_requests``) and reported once MLflow answers again.
Optionally a sample of inputs and outputs goes to Parquet files (the monitoring flow's input).
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from modelops.serving.model import Answer, ServedModel

log = logging.getLogger("modelops.serving")


@dataclass(frozen=True)
class TelemetryConfig:
    """How and where the server records what it does."""

    enabled: bool = True
    tracking_uri: str | None = None
    experiment_name: str = "modelops"
    artifact_location: str | None = None  # for the experiment, if this creates it (SQLite)
    flush_seconds: float = 5.0
    flush_every: int = 1000  # requests
    max_buffered: int = 50_000  # requests kept while MLflow is away; older ones are dropped
    dominant_threshold: float = 0.5
    sample_dir: str | None = None  # where input/output samples go (Parquet), if anywhere
    sample_rate: float = 1.0  # fraction of requests sampled
    environment: str = ""


@dataclass
class Record:
    """One request, as the buffer keeps it."""

    seconds: float
    rows: int
    status: int
    candidates: Counter[str] | None = None
    dominant: Counter[str] | None = None
    sample: Any = None  # a DataFrame of inputs and outputs, when sampled


class Prometheus:
    """The ``/metrics`` families, labelled with model name and version (multi-process aware)."""

    def __init__(self, model: ServedModel) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = (
            CollectorRegistry() if not os.environ.get("PROMETHEUS_MULTIPROC_DIR") else None
        )
        kw: dict[str, Any] = {"registry": self.registry} if self.registry else {}
        labels = ["model", "version"]
        self.requests = Counter("modelops_requests", "Scoring requests", [*labels, "code"], **kw)
        self.rows = Counter("modelops_rows", "Rows scored", labels, **kw)
        self.latency = Histogram(
            "modelops_request_seconds",
            "Time to answer a scoring request",
            labels,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            **kw,
        )
        self.dropped = Counter(
            "modelops_telemetry_dropped", "Requests whose telemetry was lost", labels, **kw
        )
        self.model_labels = (model.name, model.version)

    def observe(self, seconds: float, rows: int, status: int) -> None:
        """Count one request."""
        self.requests.labels(*self.model_labels, str(status)).inc()
        if status < 400:
            self.rows.labels(*self.model_labels).inc(rows)
            self.latency.labels(*self.model_labels).observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        """The text format, for ``GET /metrics``."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = self.registry
        if registry is None:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST


class Telemetry:
    """A bounded buffer of request records and the thread that ships them."""

    def __init__(self, model: ServedModel, config: TelemetryConfig) -> None:
        self.model = model
        self.config = config
        self.metrics = Prometheus(model)
        self._buffer: deque[Record] = deque(maxlen=config.max_buffered)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.dropped = 0  # requests whose aggregates never reached MLflow
        self.logged = 0
        self.batches = 0
        self._shipper: _Shipper | None = None
        self._thread: threading.Thread | None = None
        if config.enabled:
            self._thread = threading.Thread(target=self._loop, name="telemetry", daemon=True)
            self._thread.start()

    def record(
        self,
        seconds: float,
        rows: int,
        status: int,
        answer: Answer | None = None,
        inputs: pd.DataFrame | None = None,
        request_id: str | None = None,
    ) -> None:
        """Count a request (called on the request path: only appends)."""
        self.metrics.observe(seconds, rows, status)
        if not self.config.enabled:
            return
        entry = Record(seconds, rows, status)
        if answer is not None and status < 400:
            entry.candidates, entry.dominant = self._labels(answer)
            if self.config.sample_dir and inputs is not None and _sampled(self.config.sample_rate):
                entry.sample = (inputs, answer, request_id)
        with self._lock:
            if len(self._buffer) == self._buffer.maxlen:
                self.dropped += 1  # the oldest record falls out of the full buffer
                self.metrics.dropped.labels(*self.metrics.model_labels).inc()
            self._buffer.append(entry)
            full = len(self._buffer) >= self.config.flush_every
        if full:
            self._wake.set()

    def _labels(self, answer: Answer) -> tuple[Counter[str], Counter[str]]:
        candidates: Counter[str] = Counter()
        dominant: Counter[str] = Counter()
        threshold = self.config.dominant_threshold
        if answer.probabilities is not None and len(answer.classes):
            names = [str(c) for c in answer.classes]
            for row in answer.probabilities:
                for name, p in zip(names, row, strict=False):
                    candidates[name] += 1
                    if p >= threshold:
                        dominant[name] += 1
        return candidates, dominant

    def _loop(self) -> None:
        # Open the run now, while the server starts, not at the first flush under load (for a
        # local store this imports MLflow: seconds of CPU better spent before traffic comes).
        with contextlib.suppress(Exception):
            self._shipper = _Shipper.start(self.model, self.config)
        while not self._stop.is_set():
            self._wake.wait(self.config.flush_seconds)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        """Aggregate what is buffered and log it as one batch (on the telemetry thread)."""
        with self._lock:
            records = list(self._buffer)
            self._buffer.clear()
        if not records:
            return
        try:
            shipper = self._shipper or _Shipper.start(self.model, self.config)
            self._shipper = shipper
            shipper.log(self.batches, _aggregate(records, self.dropped, self.logged))
            self.batches += 1
            self.logged += len(records)
        except Exception as exc:  # MLflow away: serving goes on, the loss is counted
            with self._lock:
                room = self._buffer.maxlen - len(self._buffer) if self._buffer.maxlen else 0
                kept = records[-room:] if room else []
                self._buffer.extendleft(reversed(kept))  # retried with the next batch
                lost = len(records) - len(kept)
                self.dropped += lost
            if lost:
                self.metrics.dropped.labels(*self.metrics.model_labels).inc(lost)
            log.warning(
                "telemetry not logged to MLflow (%s): %s request(s) buffered, %s lost so far",
                type(exc).__name__,
                len(kept),
                self.dropped,
            )
        samples = [r.sample for r in records if r.sample is not None]
        if samples:
            with contextlib.suppress(Exception):
                _write_samples(self.model, self.config, samples)

    def close(self) -> None:
        """Log what is left and end the run (server shutdown)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.config.enabled:
            self.flush()
            if self._shipper is not None:
                with contextlib.suppress(Exception):
                    self._shipper.finish()

    def describe(self) -> dict[str, Any]:
        """What ``/version`` says about telemetry."""
        return {
            "enabled": self.config.enabled,
            "logged_requests": self.logged,
            "dropped_requests": self.dropped,
            "batches": self.batches,
            "mlflow_run_id": self._shipper.run_id if self._shipper else None,
        }


def _sampled(rate: float) -> bool:
    import random

    return rate >= 1 or random.random() < rate


def _aggregate(records: list[Record], dropped: int, logged: int) -> dict[str, float]:
    import numpy as np

    ok = [r for r in records if r.status < 400]
    latency = np.asarray([r.seconds * 1000 for r in ok]) if ok else np.zeros(1)
    metrics: dict[str, float] = {
        "requests": len(records),
        "errors": len(records) - len(ok),
        "rows": float(sum(r.rows for r in ok)),
        "latency_ms.p50": float(np.percentile(latency, 50)),
        "latency_ms.p95": float(np.percentile(latency, 95)),
        "latency_ms.max": float(latency.max()),
        "latency_ms.mean": float(latency.mean()),
        "telemetry.dropped_requests": float(dropped),
    }
    candidates: Counter[str] = Counter()
    dominant: Counter[str] = Counter()
    for r in ok:
        candidates.update(r.candidates or {})
        dominant.update(r.dominant or {})
    for label, count in candidates.items():
        metrics[f"labels.candidate.{_metric_key(label)}"] = float(count)
    for label, count in dominant.items():
        metrics[f"labels.dominant.{_metric_key(label)}"] = float(count)
    return metrics


def _metric_key(text: str) -> str:
    import re

    return re.sub(r"[^\w\-. /]", "_", text)[:200]


def _write_samples(model: ServedModel, config: TelemetryConfig, samples: list[Any]) -> None:
    """Inputs and outputs of sampled requests as one Parquet file (off the request path)."""
    import uuid
    from datetime import UTC, datetime

    import pandas as pd

    from modelops.naming import model_stem

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


class _Shipper:
    """Logs batches to one MLflow run: over MLflow's REST API for an http(s) tracking server (no
    MLflow import in the worker), else with an MlflowClient."""

    def __init__(self, log_batch: Any, finish: Any, run_id: str) -> None:
        self.log_batch, self._finish, self.run_id = log_batch, finish, run_id

    @classmethod
    def start(cls, model: ServedModel, config: TelemetryConfig) -> _Shipper:
        uri = config.tracking_uri or ""
        tags = {
            "mlflow.runName": f"serving-{model.name}-v{model.version}-{os.getpid()}",
            "modelops.flow": "serving",
            "modelops.model_name": model.name,
            "modelops.model_version": model.version,
            "modelops.training_run_id": model.run_id or "",
            "inference.engine_id": engine_id(model),
            "inference.environment": config.environment or environment_tag(),
            "modelops.pid": str(os.getpid()),
        }
        if uri.startswith(("http://", "https://")):
            return _rest_shipper(uri, config.experiment_name, tags)
        return _client_shipper(uri, config.experiment_name, tags, config.artifact_location)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.log_batch(step, metrics)

    def finish(self) -> None:
        self._finish()


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


def environment_tag() -> str:
    """Where inference runs: host, platform and Python version."""
    return f"{platform.node()} {platform.platform()} py{platform.python_version()}"


def _rest_shipper(uri: str, experiment: str, tags: dict[str, str]) -> _Shipper:
    import httpx

    from modelops.settings import split_credentials

    base, user, password = split_credentials(uri)
    user = user or os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = password or os.environ.get("MLFLOW_TRACKING_PASSWORD")
    headers = {}
    if token := os.environ.get("MLFLOW_TRACKING_TOKEN"):
        headers["Authorization"] = f"Bearer {token}"
    client = httpx.Client(
        base_url=base.rstrip("/") + "/api/2.0/mlflow",
        timeout=10,
        auth=(user, password) if user and password else None,
        headers=headers,
    )

    def call(method: str, path: str, **kw: Any) -> dict[str, Any]:
        response = client.request(method, path, **kw)
        if response.status_code == 404 and path.startswith("/experiments/get-by-name"):
            return {}
        response.raise_for_status()
        return dict(response.json())

    found = call("GET", "/experiments/get-by-name", params={"experiment_name": experiment})
    experiment_id = (found.get("experiment") or {}).get("experiment_id")
    if experiment_id is None:
        created = call("POST", "/experiments/create", json={"name": experiment})
        experiment_id = created["experiment_id"]
    run = call(
        "POST",
        "/runs/create",
        json={
            "experiment_id": experiment_id,
            "start_time": int(time.time() * 1000),
            "run_name": tags["mlflow.runName"],
            "tags": [{"key": k, "value": v} for k, v in tags.items()],
        },
    )
    run_id = run["run"]["info"]["run_id"]

    def log_batch(step: int, metrics: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        call(
            "POST",
            "/runs/log-batch",
            json={
                "run_id": run_id,
                "metrics": [
                    {"key": k, "value": v, "timestamp": now, "step": step}
                    for k, v in metrics.items()
                ],
            },
        )

    def finish() -> None:
        call(
            "POST",
            "/runs/update",
            json={"run_id": run_id, "status": "FINISHED", "end_time": int(time.time() * 1000)},
        )

    return _Shipper(log_batch, finish, run_id)


def _client_shipper(
    uri: str, experiment: str, tags: dict[str, str], artifact_location: str | None
) -> _Shipper:
    from modelops.tracking import ensure_experiment, get_client, metric_entities

    client = get_client(uri)
    experiment_id = ensure_experiment(client, experiment, artifact_location)
    run = client.create_run(experiment_id, tags=tags)
    run_id = run.info.run_id

    def log_batch(step: int, metrics: dict[str, float]) -> None:
        client.log_batch(run_id, metrics=metric_entities(metrics, step))

    return _Shipper(log_batch, lambda: client.set_terminated(run_id, "FINISHED"), run_id)
