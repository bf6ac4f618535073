"""The reproduce steps: rebuild a registered version from what was recorded when it was trained
(its training key's parts, its estimator, its held-out rows), and say whether it comes out the
same.

The data must be the data it was trained on (the content digests must match: anything else is
refused, naming both); the code and libraries may have moved on, and each one that did is named
in a warning, since that is exactly what a reproduction is meant to find out.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from modelops import tracking
from modelops.data import FeatureSpec
from modelops.errors import ConfigurationError, DataLoadError, DataValidationError
from modelops.evaluation import evaluate_binary
from modelops.model_io import download_version, load_sklearn
from modelops.registry.versions import get_version
from modelops.steps import data as data_steps
from modelops.steps import text as text_steps
from modelops.steps import training as training_steps
from modelops.text import training as text_training
from modelops.training import EstimatorConfig
from modelops.training_key import (
    KEY_FILE,
    TABULAR_LIBRARIES,
    TEXT_LIBRARIES,
    code_version,
    differences,
    library_versions,
    make_key,
)
from modelops.types import Rebuild, RecordedInputs, Reproduction

TABULAR_TOLERANCE = 1e-9
# Fine-tuning on CPU is seeded but its float sums run in an order that depends on the thread
# count and kernel versions; one flipped prediction among ~100 held-out texts moves accuracy by
# 0.01, so a rebuild within 0.02 of every metric and probability counts as the same model.
TEXT_TOLERANCE = 0.02
VERDICTS = ("identical", "within tolerance", "different")


def _run_json(client: Any, run_id: str, path: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="modelops-reproduce-") as folder:
        try:
            local = client.download_artifacts(run_id, path, folder)
        except (MlflowException, OSError):
            return None
        return json.loads(Path(local).read_text())


def read_recorded_inputs(
    ctx: tracking.TrackingContext, model_name: str, version: str
) -> RecordedInputs:
    """The version's recorded inputs: its training key's parts, estimator or base model,
    held-out rows and metrics.

    Raises:
        ModelNotFound: no such version.
        ConfigurationError: the version has no recorded training key (it was registered
            before keys were recorded, or not trained by these flows).
    """
    client = ctx.client()
    mv = get_version(client, model_name, version)
    run_id = str(mv.run_id or "")
    parts = _run_json(client, run_id, KEY_FILE) if run_id else None
    if not parts:
        raise ConfigurationError(
            f"Version {mv.version} of {model_name!r} has no recorded training key ({KEY_FILE} "
            f"on its run {run_id or '(none)'}): it was registered before keys were recorded, or "
            f"not trained by these flows, so what it was trained from is not known."
        )
    parent = mv.tags.get("modelops.parent_run_id")
    recorded = client.get_run(parent).data.metrics if parent else {}
    split = _run_json(client, parent, training_steps.SPLIT_FILE) if parent else None
    inputs = RecordedInputs(
        model_name=model_name,
        version=str(mv.version),
        run_id=run_id,
        parts=parts,
        metrics={k: v for k, v in recorded.items() if not k.startswith("split.")},
        held_out_rows=(split or {}).get("test_rows"),
    )
    if inputs.kind == "text":
        params = client.get_run(run_id).data.params
        inputs.base_model = params.get("base_model")
        inputs.revision = params.get("revision") or None
    else:
        inputs.estimator = _run_json(client, run_id, training_steps.ESTIMATOR_FILE)
        if inputs.estimator is None:
            raise ConfigurationError(
                f"Version {mv.version} of {model_name!r} has no recorded estimator "
                f"({training_steps.ESTIMATOR_FILE} on run {run_id}): it cannot be rebuilt."
            )
    tracking.log_params(
        ctx,
        ctx.parent_run_id,
        {"reproduces.version": inputs.version, "reproduces.kind": inputs.kind},
    )
    return inputs


def environment_warnings(recorded: RecordedInputs) -> list[str]:
    """Each code or library version that differs from the recorded one, named."""
    libraries = tuple(recorded.parts.get("libraries") or ())
    now = {"code": code_version(), "libraries": library_versions(libraries)}
    return differences(recorded.parts, now)


def _check_digest(recorded: RecordedInputs, where: str, digest: str) -> None:
    was = (recorded.parts.get("data") or {}).get("digest")
    if digest != was:
        raise DataValidationError(
            f"The data at {where} is not what version {recorded.version} of "
            f"{recorded.model_name!r} was trained on: its content digest is {digest}, the "
            f"recorded one {was}. Pass --data with the original file."
        )


def _where(recorded: RecordedInputs, data_path: str | None) -> str:
    return data_path or str((recorded.parts.get("data") or {}).get("source") or "")


def _unreadable(recorded: RecordedInputs, where: str, exc: Exception) -> DataLoadError:
    return DataLoadError(
        f"Cannot read the data version {recorded.version} of {recorded.model_name!r} was "
        f"trained on: looked at {where or '(no recorded source)'} ({exc}). Pass --data with "
        f"the original file."
    )


def rebuild_version(
    ctx: tracking.TrackingContext,
    recorded: RecordedInputs,
    data_path: str | None = None,
    log_model: bool = False,
) -> Rebuild:
    """Retrain with the recorded parameters and seed on the recorded data (``data_path``, or
    where it was read), and score the held-out rows.

    Args:
        ctx: the tracking context.
        recorded: what the version was trained from.
        data_path: where the data is now (default: the recorded source).
        log_model: log the rebuilt model (to register it); else it stays in memory.

    Raises:
        DataLoadError: the data cannot be read (the message says where it looked).
        DataValidationError: the data's content digest differs from the recorded one (both
            are named).
    """
    if recorded.kind == "text":
        return _rebuild_text(ctx, recorded, data_path)
    params = recorded.params
    schema = params.get("schema") or {}
    where = _where(recorded, data_path)
    try:
        data = data_steps.load_dataset(
            ctx,
            where,
            schema["target"],
            features={k: FeatureSpec(**schema["features"][k]) for k in schema["feature_order"]},
            min_rows=1,
        )
    except (DataLoadError, OSError) as exc:
        raise _unreadable(recorded, where, exc) from exc
    _check_digest(recorded, where, data.info.digest)
    seed, test_size = int(params["random_seed"]), float(params["test_size"])
    split = training_steps.split_dataset(None, data, test_size, seed)
    estimator = EstimatorConfig.model_validate(recorded.estimator)
    model = training_steps.fit_model(ctx if log_model else None, data, split, estimator, seed)
    proba = model.pipeline.predict_proba(split.X_test)
    key = make_key(
        recorded.kind,
        training_steps.data_identity(data),
        params,
        tuple(recorded.parts.get("libraries") or TABULAR_LIBRARIES),
    )
    rows = None if split.test_rows is None else [int(i) for i in split.test_rows]
    return Rebuild(
        key=key,
        metrics=evaluate_binary(split.y_test, proba[:, 1]).metrics,
        proba=proba,
        held_out=split.X_test,
        rows=rows,
        logged=model.logged,
    )


def _rebuild_text(
    ctx: tracking.TrackingContext, recorded: RecordedInputs, data_path: str | None
) -> Rebuild:
    params = recorded.params
    text_col, label_col = params["columns"]
    where = _where(recorded, data_path)
    seed, test_size = int(params["random_seed"]), float(params["test_size"])
    try:
        data = text_steps.load_text_dataset(
            ctx, where, text_col, label_col, params["labels"], test_size, seed
        )
    except (DataLoadError, OSError) as exc:
        raise _unreadable(recorded, where, exc) from exc
    _check_digest(recorded, where, data.digest)
    config = text_training.FineTuneConfig.model_validate(params["fine_tune"])
    tuned, logged = text_steps.fine_tune_text_model(
        ctx, data, recorded.base_model, recorded.revision, config, seed
    )
    proba = text_training.predict_proba(tuned.tokenizer, tuned.model, data.test_texts)
    metrics = text_training.evaluate_texts(data.test_targets, proba, data.labels)["metrics"]
    key = make_key(
        "text",
        {"digest": data.digest, "rows": len(data.train_texts) + len(data.test_texts)}
        | {"source": data.source},
        params,
        tuple(recorded.parts.get("libraries") or TEXT_LIBRARIES),
    )
    return Rebuild(key=key, metrics=metrics, proba=proba, held_out=data.test_texts, logged=logged)


def recorded_probabilities(
    ctx: tracking.TrackingContext, recorded: RecordedInputs, held_out: Any
) -> Any:
    """What the registered version itself predicts on the held-out rows."""
    if recorded.kind == "text":
        import mlflow.transformers

        local = download_version(ctx.client(), recorded.model_name, recorded.version)
        parts = mlflow.transformers.load_model(str(local), return_type="components")
        return text_training.predict_proba(parts["tokenizer"], parts["model"], held_out)
    model, _ = load_sklearn(ctx.client(), recorded.model_name, recorded.version)
    return model.predict_proba(held_out)


def compare_rebuild(
    ctx: tracking.TrackingContext,
    recorded: RecordedInputs,
    rebuild: Rebuild,
    tolerance: float | None = None,
) -> Reproduction:
    """Recorded and rebuilt metrics side by side, the largest difference between the two
    models' probabilities on the held-out rows, and the verdict; logged on the parent run.

    ``tolerance`` (absolute, on every metric and probability) defaults to
    :data:`TABULAR_TOLERANCE`, or :data:`TEXT_TOLERANCE` for a fine-tuned text model.
    """
    import numpy as np

    if tolerance is None:
        tolerance = TEXT_TOLERANCE if recorded.kind == "text" else TABULAR_TOLERANCE
    warnings = list(rebuild.warnings)
    held = (recorded.held_out_rows, rebuild.rows)
    if None not in held and list(held[0] or ()) != list(held[1] or ()):
        warnings.append("the rebuilt split held out other rows than the recorded one")
    rows: list[dict[str, Any]] = []
    gaps: list[float] = []
    rebuilt: dict[str, float] = {}
    for name in sorted(set(rebuild.metrics) & set(recorded.metrics)):
        was, now = float(recorded.metrics[name]), float(rebuild.metrics[name])
        rows.append({"metric": name, "recorded": was, "rebuilt": now, "difference": now - was})
        gaps.append(abs(now - was))
        rebuilt[f"rebuilt.{name}"] = now
    theirs = np.asarray(recorded_probabilities(ctx, recorded, rebuild.held_out), dtype=float)
    ours = np.asarray(rebuild.proba, dtype=float)
    largest = float(np.max(np.abs(theirs - ours))) if ours.size else None
    if largest is not None:
        gaps.append(largest)
        rebuilt["max_prediction_difference"] = largest
    if not rows:
        verdict = "different"
        warnings.append("no metric was recorded for the version to compare with")
    elif all(g == 0.0 for g in gaps):
        verdict = "identical"
    elif all(g <= tolerance for g in gaps):
        verdict = "within tolerance"
    else:
        verdict = "different"
    result = Reproduction(
        model_name=recorded.model_name,
        version=recorded.version,
        verdict=verdict,
        tolerance=tolerance,
        metrics=rows,
        max_prediction_difference=largest,
        held_out_rows=len(ours),
        warnings=warnings,
        mlflow_run_id=ctx.parent_run_id,
    )
    tracking.log_metrics(ctx, ctx.parent_run_id, rebuilt)
    tracking.set_tags(ctx, ctx.parent_run_id, {"modelops.reproduction": verdict})
    tracking.log_json(ctx, ctx.parent_run_id, result.model_dump(mode="json"), "reproduction.json")
    return result


def reproduction_text(result: Reproduction) -> str:
    """The comparison as people read it: metrics side by side, predictions, the verdict."""
    width = max([len(r["metric"]) for r in result.metrics] + [6])
    lines = [
        f"{result.model_name} version {result.version}: rebuilt from its recorded inputs",
        f"  {'metric':<{width}}  {'recorded':>12}  {'rebuilt':>12}  {'difference':>12}",
        *[
            f"  {r['metric']:<{width}}  {r['recorded']:>12.6f}  {r['rebuilt']:>12.6f}  "
            f"{r['difference']:>+12.2e}"
            for r in result.metrics
        ],
    ]
    if result.max_prediction_difference is not None:
        lines.append(
            f"  largest prediction difference on the {result.held_out_rows} held-out rows: "
            f"{result.max_prediction_difference:.2e}"
        )
    lines += [f"  warning: {w}" for w in result.warnings]
    lines.append(f"verdict: {result.verdict} (tolerance {result.tolerance:g})")
    if result.registered_version:
        lines.append(
            f"registered as version {result.registered_version} "
            f"(tagged modelops.reproduces={result.version})"
        )
    else:
        lines.append("nothing registered (pass --register to register the rebuild)")
    return "\n".join(lines)
