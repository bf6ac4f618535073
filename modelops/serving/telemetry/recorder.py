"""The recorder: a bounded buffer of request records, and the thread that ships them.

Requests only append to the buffer; every few seconds or every N requests the telemetry thread
aggregates it into one batch for the process's MLflow run. If MLflow is down, requests keep
being served, and what could not be logged is counted (``telemetry.dropped_requests``) and
reported once MLflow answers again.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from typing import TYPE_CHECKING, Any

from modelops.serving.telemetry.aggregate import Record, aggregate_records, label_counts
from modelops.serving.telemetry.config import TelemetryConfig
from modelops.serving.telemetry.prometheus import Prometheus
from modelops.serving.telemetry.samples import sampled, write_samples
from modelops.serving.telemetry.shipper import Shipper

if TYPE_CHECKING:
    import pandas as pd

    from modelops.serving.model import Answer, ServedModel

log = logging.getLogger("modelops.serving")


class Telemetry:
    """A bounded buffer of request records and the thread that ships them."""

    def __init__(
        self, model: ServedModel, config: TelemetryConfig, metrics: Prometheus | None = None
    ) -> None:
        self.model = model
        self.config = config
        # One set of /metrics families per server: a second version's recorder shares it.
        self.metrics = metrics or Prometheus(model.name, [model.version])
        self.labels = (model.name, model.version)
        self._buffer: deque[Record] = deque(maxlen=config.max_buffered)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.dropped = 0  # requests whose aggregates never reached MLflow
        self.logged = 0
        self.batches = 0
        self._shipper: Shipper | None = None
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
        self.metrics.observe(self.labels, seconds, rows, status)
        if not self.config.enabled:
            return
        entry = Record(seconds, rows, status)
        if answer is not None and status < 400:
            entry.candidates, entry.dominant = label_counts(answer, self.config.dominant_threshold)
            if self.config.sample_dir and inputs is not None and sampled(self.config.sample_rate):
                entry.sample = (inputs, answer, request_id)
        with self._lock:
            if len(self._buffer) == self._buffer.maxlen:
                self.dropped += 1  # the oldest record falls out of the full buffer
                self.metrics.dropped.labels(*self.labels).inc()
            self._buffer.append(entry)
            full = len(self._buffer) >= self.config.flush_every
        if full:
            self._wake.set()

    def _loop(self) -> None:
        # Open the run now, while the server starts, not at the first flush under load (for a
        # process this imports MLflow: seconds of CPU better spent before traffic comes).
        with contextlib.suppress(Exception):
            self._shipper = Shipper.start(self.model, self.config)
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
            shipper = self._shipper or Shipper.start(self.model, self.config)
            self._shipper = shipper
            shipper.log(self.batches, aggregate_records(records, self.dropped, self.logged))
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
                self.metrics.dropped.labels(*self.labels).inc(lost)
            log.warning(
                "telemetry not logged to MLflow (%s): %s request(s) buffered, %s lost so far",
                type(exc).__name__,
                len(kept),
                self.dropped,
            )
        samples = [r.sample for r in records if r.sample is not None]
        if samples:
            with contextlib.suppress(Exception):
                write_samples(self.model, self.config, samples)

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
