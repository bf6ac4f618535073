"""Batch scoring with a text classifier, with inference telemetry logged per batch."""

from __future__ import annotations

import time
from importlib.metadata import version as installed
from typing import TYPE_CHECKING, Any

from modelops import tracking
from modelops.data import load_table, resolve_data_uri, write_table
from modelops.errors import ConfigurationError
from modelops.serving.telemetry.tags import ENGINE_TAG, ENVIRONMENT_TAG, environment_tag
from modelops.text.training import quiet_transformers

if TYPE_CHECKING:
    from modelops.types import ServingTarget


def score_texts(
    ctx: tracking.TrackingContext,
    target: ServingTarget,
    input_uri: str,
    output_uri: str,
    text_column: str,
    batch_size: int,
    decision_threshold: float,
) -> dict[str, Any]:
    """Score a text file batch by batch, logging inference telemetry to the flow's MLflow run
    per batch (latency, candidate labels, dominant labels over ``decision_threshold``); every
    output row carries the model version and its MLflow run id.

    Raises:
        ConfigurationError: the file has no column ``text_column``.
    """
    import mlflow.transformers

    from modelops.model_io import download_version

    quiet_transformers()
    frame = load_table(resolve_data_uri(input_uri))
    if text_column not in frame.columns:
        raise ConfigurationError(f"{input_uri!r} has no text column {text_column!r}")
    texts = frame[text_column].fillna("").astype(str).tolist()
    local = download_version(ctx.client(), target.name, target.version)
    pipe = mlflow.transformers.load_model(str(local), return_type="pipeline")
    engine = f"transformers-{installed('transformers')}/torch-{installed('torch')}/{pipe.device}"
    tracking.set_tags(
        ctx,
        ctx.parent_run_id,
        {ENGINE_TAG: engine, ENVIRONMENT_TAG: environment_tag()},
    )
    # Truncate to what the model can take even when its tokenizer does not say (no
    # model_max_length): a longer text would otherwise fail the whole batch.
    limit = min(512, int(getattr(pipe.model.config, "max_position_embeddings", 512)))
    labels_out, scores_out, per_batch = [], [], []
    started_all = time.perf_counter()
    for step, start in enumerate(range(0, len(texts), batch_size)):
        batch = texts[start : start + batch_size]
        started = time.perf_counter()
        results = pipe(batch, top_k=None, batch_size=batch_size, truncation=True, max_length=limit)
        ms = (time.perf_counter() - started) * 1000
        candidates = sum(len(r) for r in results)
        dominant = [c["label"] for r in results for c in r if c["score"] >= decision_threshold]
        best = [max(r, key=lambda c: c["score"]) for r in results]
        labels_out += [b["label"] for b in best]
        scores_out += [float(b["score"]) for b in best]
        tracking.log_metrics(
            ctx,
            ctx.parent_run_id,
            {
                "batch.latency_ms": ms,
                "batch.latency_ms_per_item": ms / len(batch),
                "batch.candidate_labels": candidates,
                "batch.dominant_labels": len(dominant),
            },
            step=step,
        )
        per_batch.append(
            {
                "step": step,
                "items": len(batch),
                "latency_ms": round(ms, 2),
                "dominant_labels": sorted(set(dominant)),
            }
        )
    total_ms = (time.perf_counter() - started_all) * 1000
    out = frame.copy()
    out["label"], out["score"] = labels_out, scores_out
    out["model_version"], out["mlflow_run_id"] = target.version, target.run_id
    write_table(out, output_uri)
    tracking.log_metrics(
        ctx,
        ctx.parent_run_id,
        {
            "latency_ms_total": total_ms,
            "latency_ms_per_item": total_ms / max(len(out), 1),
            "items": len(out),
        },
    )
    tracking.log_json(ctx, ctx.parent_run_id, per_batch, "telemetry/batches.json")
    return {
        "target": "local",
        "rows": len(out),
        "output": output_uri,
        "version": target.version,
        "items_per_second": len(out) / (total_ms / 1000),
        "engine_id": engine,
    }
