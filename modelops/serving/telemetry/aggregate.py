"""What one request leaves in the buffer, and the batch of aggregates a flush logs."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelops.naming import metric_key

if TYPE_CHECKING:
    from modelops.serving.model import Answer


@dataclass
class Record:
    """One request, as the buffer keeps it."""

    seconds: float
    rows: int
    status: int
    candidates: Counter[str] | None = None
    dominant: Counter[str] | None = None
    sample: Any = None  # (inputs, answer, request id), when sampled


def label_counts(answer: Answer, threshold: float) -> tuple[Counter[str], Counter[str]]:
    """How often each class was a candidate, and how often its probability reached
    ``threshold`` (dominant), over a classifier's answer."""
    candidates: Counter[str] = Counter()
    dominant: Counter[str] = Counter()
    if answer.probabilities is not None and len(answer.classes):
        names = [str(c) for c in answer.classes]
        for row in answer.probabilities:
            for name, p in zip(names, row, strict=False):
                candidates[name] += 1
                if p >= threshold:
                    dominant[name] += 1
    return candidates, dominant


def aggregate_records(records: list[Record], dropped: int, logged: int) -> dict[str, float]:
    """One batch of metrics from buffered requests: counts, latency percentiles, label counts,
    and the running count of requests whose telemetry was lost."""
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
        metrics[f"labels.candidate.{metric_key(label)}"] = float(count)
    for label, count in dominant.items():
        metrics[f"labels.dominant.{metric_key(label)}"] = float(count)
    return metrics
