"""The model server's telemetry pieces that need no server: the tags an inference run carries,
and the aggregates of a batch of requests."""

from __future__ import annotations

from collections import Counter

from modelops.serving import telemetry
from modelops.serving.telemetry.aggregate import Record, aggregate_records


def test_batch_text_scoring_and_the_server_tag_the_environment_with_one_function() -> None:
    from modelops.text import scoring

    assert scoring.environment_tag is telemetry.environment_tag


def test_a_batch_counts_requests_errors_and_labels() -> None:
    records = [
        Record(0.010, 2, 200, candidates=Counter(a=2, b=2), dominant=Counter(a=2)),
        Record(0.030, 1, 200, candidates=Counter(a=1, b=1), dominant=Counter(b=1)),
        Record(0.500, 5, 422),
    ]
    metrics = aggregate_records(records, dropped=3, logged=10)
    assert metrics["requests"] == 3 and metrics["errors"] == 1 and metrics["rows"] == 3
    assert metrics["latency_ms.max"] == 30.0  # a refused request is not a latency
    assert metrics["labels.candidate.a"] == 3 and metrics["labels.dominant.b"] == 1
    assert metrics["telemetry.dropped_requests"] == 3
