"""How and where the server records what it does (read by the recorder, shipper and samples)."""

from __future__ import annotations

from dataclasses import dataclass


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
