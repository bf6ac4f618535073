"""The monitoring flow's steps: resolve the version, read its reference and a window of recent
inputs, compare, and record what was found (MLflow run, version tag + audit entry on a breach).
"""

from __future__ import annotations

import base64
import io
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops import monitoring, tracking
from modelops.errors import ConfigurationError, ModelNotFound
from modelops.naming import metric_key
from modelops.types import AuditEvent

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

DEGRADED_TAG = "modelops.monitoring.degraded"
TEXT_COLUMN, LABEL_COLUMN = "text", "label"  # a text window's columns (the server's samples too)


@dataclass
class Watched:
    """The version under watch: its model, reference, and what it was registered with."""

    name: str
    version: str
    run_id: str
    model: Any  # the scikit-learn pipeline
    target: str | None
    positive_label: str | None
    profile: dict[str, Any]
    sample: pd.DataFrame | None
    registered_metrics: dict[str, float]
    kind: str = "tabular"  # or "text": a transformers pipeline, profiled by text length
    labels: list[str] | None = None  # a text classifier's labels

    @property
    def required_columns(self) -> list[str]:
        """What a window must have: the features, or the text column."""
        return [TEXT_COLUMN] if self.kind == "text" else list(self.profile["features"])

    def predict(self, frame: pd.DataFrame) -> tuple[Any, Any]:
        """``(positive-class probabilities, None)`` for tabular models, ``(class
        probabilities, predicted labels)`` for text classifiers."""
        if self.kind == "text":
            return _text_predictions(self, frame[TEXT_COLUMN])
        return self.model.predict_proba(features_of(self, frame))[:, 1], None


def resolve_watched(client: MlflowClient, name: str, ref: str) -> Watched:
    """The version ``ref`` (alias or number) with its reference profile.

    Raises:
        ModelNotFound: no such model, or the alias (production by default) is unset.
        ConfigurationError: the version has no reference and its training data cannot be read.
    """
    from modelops.model_io import load_sklearn, read_mlmodel
    from modelops.registry.versions import resolve_version

    try:
        mv = resolve_version(client, name, ref)
    except ModelNotFound as exc:
        if not str(ref).isdigit():
            raise ModelNotFound(
                f"{exc} Nothing to monitor: promote a version to {ref!r} first, or pass "
                f"version=<number>."
            ) from exc
        raise
    mlmodel, _ = read_mlmodel(client, name, str(mv.version))
    run = client.get_run(str(mv.run_id))
    parent = run.data.tags.get(tracking.PARENT_TAG)
    metrics = dict(client.get_run(parent).data.metrics) if parent else dict(run.data.metrics)
    if "transformers" in mlmodel.flavors:
        return _watched_text(client, mv, parent, metrics)
    model, mlmodel = load_sklearn(client, name, str(mv.version))
    metadata = mlmodel.metadata or {}
    profile, sample = _reference(client, mv, model, metadata.get("target"))
    return Watched(
        name,
        str(mv.version),
        str(mv.run_id),
        model,
        metadata.get("target"),
        metadata.get("positive_label"),
        profile,
        sample,
        metrics,
    )


def _watched_text(
    client: MlflowClient, mv: Any, parent: str | None, metrics: dict[str, float]
) -> Watched:
    """A text classifier: its pipeline and the text reference on its flow's parent run."""
    import mlflow.transformers

    from modelops.model_io import download_version

    profile = None
    for run_id in filter(None, (parent, mv.run_id)):
        with tempfile.TemporaryDirectory(prefix="modelops-reference-") as tmp:
            try:
                path = Path(client.download_artifacts(run_id, monitoring.PROFILE_FILE, tmp))
                profile = json.loads(path.read_text())
                break
            except Exception:
                continue
    if profile is None or profile.get("kind") != "text":
        raise ConfigurationError(
            f"Version {mv.version} of {mv.name!r} has no text reference profile (versions "
            f"fine-tuned before monitoring existed): fine-tune it again to monitor it."
        )
    local = download_version(client, mv.name, str(mv.version))
    pipe = mlflow.transformers.load_model(str(local), return_type="pipeline")
    labels = list(profile["prediction_labels"]["labels"])
    return Watched(
        mv.name,
        str(mv.version),
        str(mv.run_id),
        pipe,
        LABEL_COLUMN,
        None,
        profile,
        None,
        metrics,
        kind="text",
        labels=labels,
    )


def _text_predictions(watched: Watched, texts: Any) -> tuple[Any, list[str]]:
    import numpy as np

    items = [t if isinstance(t, str) else "" for t in texts]
    limit = min(512, int(getattr(watched.model.model.config, "max_position_embeddings", 512)))
    results = (
        watched.model(items, top_k=None, batch_size=64, truncation=True, max_length=limit)
        if items
        else []
    )
    labels = watched.labels or []
    proba = np.zeros((len(items), len(labels)))
    for row, scores in enumerate(results):
        for entry in scores:
            if entry["label"] in labels:
                proba[row, labels.index(entry["label"])] = entry["score"]
    predicted = [labels[i] for i in proba.argmax(axis=1)] if len(items) else []
    return proba, predicted


def _reference(client: MlflowClient, mv: Any, model: Any, target: str | None) -> tuple[Any, Any]:
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="modelops-reference-") as tmp:
        try:
            folder = Path(client.download_artifacts(mv.run_id, "reference", tmp))
        except Exception:
            folder = None
        if folder is not None and (folder / "profile.json").exists():
            profile = json.loads((folder / "profile.json").read_text())
            sample_path = folder / "sample.parquet"
            sample = pd.read_parquet(sample_path) if sample_path.exists() else None
            return profile, sample
    return _reference_from_training_data(client, mv, model, target)


def _reference_from_training_data(
    client: MlflowClient, mv: Any, model: Any, target: str | None
) -> tuple[Any, Any]:
    """A version registered before profiles existed: profile its logged training data now (and
    keep it on the run for next time), if that data can still be read."""
    from modelops.data import infer_schema, load_table

    run = client.get_run(mv.run_id)
    parent = run.data.tags.get(tracking.PARENT_TAG)
    sources = []
    for candidate in filter(None, (parent, mv.run_id)):
        inputs = client.get_run(candidate).inputs
        for inp in (inputs.dataset_inputs if inputs else None) or []:
            try:
                sources.append(json.loads(inp.dataset.source).get("uri"))
            except (ValueError, AttributeError):
                sources.append(inp.dataset.source)
    uri = next((s for s in sources if s), None)
    if uri is None or target is None:
        raise ConfigurationError(
            f"Version {mv.version} of {mv.name!r} has no reference profile and no logged "
            f"training data to build one from. Retrain it (new versions get one), or monitor "
            f"another version."
        )
    try:
        frame = load_table(uri)
    except Exception as exc:
        raise ConfigurationError(
            f"Version {mv.version} of {mv.name!r} has no reference profile, and its training "
            f"data {uri} cannot be read to build one: {exc}"
        ) from exc
    schema = infer_schema(frame, target, min_rows=1)
    X = frame[list(schema.features)]
    profile = monitoring.build_profile(X, schema, model.predict_proba(X)[:, 1])
    sample = monitoring.reference_sample(X)
    client.log_text(mv.run_id, json.dumps(profile), monitoring.PROFILE_FILE)
    return profile, sample


def read_window(
    data_path: str | None,
    sample_dir: str | None,
    name: str,
    version: str,
    max_rows: int | None = None,
) -> pd.DataFrame:
    """The recent inputs to check: a file/URI, or what the model server sampled for this
    version (``<sample_dir>/<model>/v<N>/*.parquet``, newest rows last)."""
    import pandas as pd

    from modelops.data import load_table
    from modelops.naming import model_stem

    if data_path:
        frame = load_table(data_path)
    elif sample_dir:
        folder = Path(sample_dir) / model_stem(name) / f"v{version}"
        files = sorted(folder.glob("*.parquet"))
        if not files:
            raise ConfigurationError(
                f"No samples in {folder}: serve the version with sampling on "
                f"(modelops serve --sample-dir {sample_dir}) or pass data_path."
            )
        frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    else:
        raise ConfigurationError("Give data_path (a file/URI of recent inputs) or sample_dir.")
    return frame.tail(max_rows) if max_rows else frame


def features_of(watched: Watched, frame: pd.DataFrame) -> pd.DataFrame:
    """The window's feature columns, typed as the model was trained (see feature_frame); for a
    text classifier, the texts' lengths."""
    if watched.kind == "text":
        return monitoring.text_lengths(frame[TEXT_COLUMN])
    from modelops.data import DatasetSchema, FeatureSpec
    from modelops.training import feature_frame

    schema = DatasetSchema(
        target=watched.target or "__target__",
        features={
            n: FeatureSpec(kind=f["kind"], nullable=True)
            for n, f in watched.profile["features"].items()
        },
    )
    return feature_frame(frame, schema)


def labels_of(watched: Watched, frame: pd.DataFrame) -> Any:
    """0/1 labels of a labelled window, checked against the model's own labels.

    Raises:
        ConfigurationError: no target column, or labels that are not the model's.
    """
    from modelops.training import encode_target

    if watched.kind == "text":
        return _text_labels(watched, frame)
    if not watched.target or watched.target not in frame.columns:
        raise ConfigurationError(
            f"The labelled data has no column {watched.target!r} (the model's target). "
            f"Columns: {', '.join(map(str, frame.columns[:20]))}"
        )
    column = frame[watched.target]
    values = {str(v) for v in column.dropna().unique()}
    if watched.positive_label is not None and watched.positive_label not in values:
        raise ConfigurationError(
            f"The labels in {watched.target!r} ({', '.join(sorted(values)[:10])}) are not the "
            f"model's: its positive label is {watched.positive_label!r}."
        )
    try:
        positive = next(v for v in column.dropna().unique() if str(v) == watched.positive_label)
        y, _ = encode_target(column, positive)
    except (StopIteration, ConfigurationError) as exc:
        raise ConfigurationError(
            f"The labels in {watched.target!r} are not the model's: {exc}"
        ) from exc
    return y


def record_check(
    ctx: tracking.TrackingContext,
    watched: Watched,
    result: monitoring.CheckResult,
    figure: Any = None,
) -> None:
    """The check's MLflow run: metrics (one point per check, so the UI plots the trend),
    verdict tags, the full result as JSON, and the chart."""
    metrics: dict[str, float] = {"rows": result.rows, "breaches": len(result.breaches)}
    for f in result.features:
        metrics[f"psi.{metric_key(f.feature)}"] = f.psi
        if f.statistic is not None:
            metrics[f"ks.{metric_key(f.feature)}"] = f.statistic
    if result.prediction_psi is not None:
        metrics["prediction_psi"] = result.prediction_psi
    metrics.update({f"current.{k}": v for k, v in result.performance.items()})
    tracking.log_metrics(ctx, ctx.parent_run_id, metrics)
    tracking.set_tags(
        ctx,
        ctx.parent_run_id,
        {
            "modelops.monitored_model": watched.name,
            "modelops.monitored_version": watched.version,
            "modelops.verdict": "degraded" if result.degraded else "ok",
            **({"modelops.breaches": "; ".join(result.breaches)[:4900]} if result.breaches else {}),
        },
    )
    tracking.log_json(ctx, ctx.parent_run_id, result.as_dict(), "monitoring/result.json")
    if figure is not None:
        tracking.log_figures(ctx, ctx.parent_run_id, {"monitoring/worst_feature.png": figure})


def mark_degraded(
    client: MlflowClient,
    ctx: tracking.TrackingContext,
    watched: Watched,
    result: monitoring.CheckResult,
    actor: str | None = None,
) -> AuditEvent:
    """Put the breach on the version: a tag anyone filtering versions sees, and an audit entry."""
    from modelops.registry.audit import write_event

    summary = "; ".join(result.breaches)
    client.set_model_version_tag(watched.name, watched.version, DEGRADED_TAG, summary[:4900])
    event = AuditEvent(
        action="degraded",
        actor=ctx.actor(actor),
        reason=summary[:2000],
        flow_run_id=ctx.flow_run_id,
        mlflow_run_id=ctx.parent_run_id,
        metrics={k: v for k, v in result.performance.items()},
    )
    return write_event(client, watched.name, watched.version, event)


def distribution_figure(watched: Watched, window: pd.DataFrame, feature: str) -> Any:
    """Reference vs current distribution of one feature (bars over the profile's bins)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    ref = watched.profile["features"][feature]
    column = window[feature]
    if ref["type"] == "numeric":
        current = monitoring._numeric_counts(monitoring._numeric(column).to_numpy(), ref["edges"])
        labels = ["≤" + f"{ref['edges'][0]:.3g}" if ref["edges"] else "all"]
        labels += [f"≤{e:.3g}" for e in ref["edges"][1:]] + ["more", "missing"]
    else:
        current = monitoring._category_counts(column, ref["categories"])
        labels = [*ref["categories"], "unseen", "missing"]
    reference = np.asarray(ref["counts"], dtype=float)
    now = np.asarray(current, dtype=float)
    x = np.arange(len(reference))
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.bar(x - 0.2, reference / max(reference.sum(), 1), 0.4, label="reference (training)")
    ax.bar(x + 0.2, now / max(now.sum(), 1), 0.4, label="current window")
    ax.set_xticks(x, labels[: len(x)], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("share of rows")
    ax.set_title(f"{feature}: reference vs current")
    ax.legend()
    fig.tight_layout()
    return fig


def _text_labels(watched: Watched, frame: pd.DataFrame) -> list[int]:
    labels = watched.labels or []
    if LABEL_COLUMN not in frame.columns:
        raise ConfigurationError(
            f"The labelled texts have no {LABEL_COLUMN!r} column. Columns: "
            f"{', '.join(map(str, frame.columns[:20]))}"
        )
    values = frame[LABEL_COLUMN].astype(str)
    foreign = sorted(set(values) - set(labels))
    if foreign:
        raise ConfigurationError(
            f"The labels in {LABEL_COLUMN!r} are not the model's: {', '.join(foreign[:10])} "
            f"(it knows {', '.join(labels)})."
        )
    return [labels.index(v) for v in values]


def text_metrics(watched: Watched, frame: pd.DataFrame) -> dict[str, float]:
    """Accuracy and macro-F1 of a text classifier on labelled texts."""
    from modelops.text.training import evaluate_texts

    targets = _text_labels(watched, frame)
    proba, _ = _text_predictions(watched, frame[TEXT_COLUMN])
    return dict(evaluate_texts(targets, proba, watched.labels or [])["metrics"])


def read_checked_window(
    watched: Watched,
    data_path: str | None,
    sample_dir: str | None,
    max_rows: int | None,
    min_rows: int,
) -> pd.DataFrame:
    """The recent inputs (see :func:`read_window`), checked: enough rows, every feature column.

    Raises:
        ConfigurationError: too few rows, or a feature column is missing (says which).
    """
    frame = read_window(data_path, sample_dir, watched.name, watched.version, max_rows)
    monitoring.check_window(frame, watched.required_columns, min_rows)
    return frame


def check_drift(watched: Watched, window: pd.DataFrame, psi_max: float) -> monitoring.CheckResult:
    """PSI and KS per feature, and the shift of the predictions; a text model's "features" are
    its texts' lengths, and its predictions are labels."""
    X = features_of(watched, window)
    proba, predicted = watched.predict(window)
    if watched.kind == "text":
        return monitoring.compare(
            X, watched.profile, None, None, psi_max=psi_max, predicted_labels=predicted
        )
    return monitoring.compare(X, watched.profile, watched.sample, proba, psi_max=psi_max)


def check_performance(
    watched: Watched,
    labelled: pd.DataFrame,
    result: monitoring.CheckResult,
    metric_drop_max: dict[str, float],
    min_rows: int,
) -> None:
    """The registered metrics recomputed on labelled recent data, compared with registration;
    drops beyond ``metric_drop_max`` are added to ``result``'s breaches."""
    from modelops.evaluation import evaluate_binary

    monitoring.check_window(labelled, watched.required_columns, min_rows)
    if watched.kind == "text":
        current = text_metrics(watched, labelled)
    else:
        y = labels_of(watched, labelled)
        proba = watched.model.predict_proba(features_of(watched, labelled))[:, 1]
        current = evaluate_binary(y, proba).metrics
    monitoring.compare_performance(result, current, watched.registered_metrics, metric_drop_max)


@dataclass
class CheckReport:
    """What a person reads about one check: a row per feature (worst first) and a summary."""

    table: list[dict[str, Any]]
    markdown: str
    description: str
    log_lines: list[str] = field(default_factory=list)


def report_check(
    ctx: tracking.TrackingContext,
    watched: Watched,
    window: pd.DataFrame,
    result: monitoring.CheckResult,
) -> CheckReport:
    """Record the check in MLflow (:func:`record_check`, with the worst feature's chart) and
    build the report people read: the per-feature table, the verdict, the breaches, the
    metrics then and now, and the chart inline."""
    worst = result.worst
    shown = features_of(watched, window) if watched.kind == "text" else window
    figure = distribution_figure(watched, shown, worst.feature) if worst else None
    record_check(ctx, watched, result, figure)
    verdict = "DEGRADED" if result.degraded else "ok"
    lines = [
        f"## {watched.name} version {watched.version}: "
        f"{'**DEGRADED**' if result.degraded else 'ok'} ({result.rows} rows)",
        "",
    ]
    lines += [f"- {b}" for b in result.breaches] or ["No threshold breached."]
    if result.performance:
        lines += ["", "| metric | registered | now |", "|---|---:|---:|"]
        lines += [
            f"| {m} | {result.registered.get(m, float('nan')):.4f} | {v:.4f} |"
            for m, v in result.performance.items()
        ]
    if figure is not None and worst is not None:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=80)
        encoded = base64.b64encode(buffer.getvalue()).decode()
        lines += [
            "",
            f"### Worst feature: {worst.feature} (PSI {worst.psi:.3f})",
            "",
            f"![{worst.feature}](data:image/png;base64,{encoded})",
        ]
    return CheckReport(
        table=[f.row() for f in sorted(result.features, key=lambda f: -f.psi)],
        markdown="\n".join(lines),
        description=f"Drift of {watched.name} v{watched.version} on {result.rows} rows: {verdict}",
        log_lines=[
            f"{f.feature:<24} PSI {f.psi:.4f}{'  DRIFT' if f.breached else ''}"
            for f in result.features
        ],
    )


def check_summary(
    ctx: tracking.TrackingContext, watched: Watched, result: monitoring.CheckResult
) -> dict[str, Any]:
    """The check in a few figures: what the flow returns and the degraded event carries."""
    return {
        "model_name": watched.name,
        "version": watched.version,
        "rows": result.rows,
        "degraded": result.degraded,
        "breaches": result.breaches,
        "psi": {f.feature: round(f.psi, 4) for f in result.features},
        "prediction_psi": result.prediction_psi,
        "performance": result.performance,
        "mlflow_run_id": ctx.parent_run_id,
    }


DEGRADED_EVENT = "modelops.model.degraded"


def degraded_event(
    ctx: tracking.TrackingContext, watched: Watched, result: monitoring.CheckResult
) -> dict[str, Any]:
    """The ``modelops.model.degraded`` event for a breach: the resource it concerns (the model
    version) and the check's summary as payload — what automations match on."""
    return {
        "event": DEGRADED_EVENT,
        "resource": {
            "prefect.resource.id": f"modelops.model.{watched.name}.{watched.version}",
            "prefect.resource.name": f"{watched.name} v{watched.version}",
            "modelops.model": watched.name,
            "modelops.version": watched.version,
        },
        "payload": {
            k: v
            for k, v in check_summary(ctx, watched, result).items()
            if k not in ("model_name", "version", "degraded")
        },
    }
