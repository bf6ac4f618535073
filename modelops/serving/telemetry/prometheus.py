"""The ``/metrics`` families: counted on the request path, read by Prometheus."""

from __future__ import annotations

import os
from typing import Any


class Prometheus:
    """The ``/metrics`` families, labelled with model name and version (multi-process aware):
    one set for the server, a series per version it serves (two during a rollout)."""

    def __init__(self, name: str, versions: list[str]) -> None:
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
        # Every family has its samples from the start, at 0: a scraper sees "no drops" rather
        # than no series (which alerts cannot tell from a missing target), and with several
        # workers each writes its file now, so /metrics is never empty before a request.
        for version in versions:
            self.requests.labels(name, version, "200")
            self.rows.labels(name, version)
            self.latency.labels(name, version)
            self.dropped.labels(name, version)

    def observe(self, labels: tuple[str, str], seconds: float, rows: int, status: int) -> None:
        """Count one request answered by the version ``labels`` (model name, version)."""
        self.requests.labels(*labels, str(status)).inc()
        if status < 400:
            self.rows.labels(*labels).inc(rows)
            self.latency.labels(*labels).observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        """The text format, for ``GET /metrics``."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = self.registry
        if registry is None:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
