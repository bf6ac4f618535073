"""Evaluation metrics, diagnostic plots, and the quality gate on metric thresholds."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelops.errors import ConfigurationError, QualityGateFailed

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Metrics evaluate_binary() produces, and whether a higher value is better.
METRICS: dict[str, bool] = {
    "roc_auc": True,
    "average_precision": True,
    "precision": True,
    "recall": True,
    "f1": True,
    "accuracy": True,
    "log_loss": False,
    "brier_score": False,
}
# What a text classifier's evaluation produces (modelops.text.training.evaluate_texts).
TEXT_METRICS: dict[str, bool] = {"accuracy": True, "macro_f1": True}
# The metrics a gate may name, by model kind: the one table every threshold check reads.
METRICS_BY_KIND: dict[str, dict[str, bool]] = {"binary": METRICS, "text": TEXT_METRICS}
# Whether higher is better, for every metric any kind produces (gates and comparisons).
DIRECTION: dict[str, bool] = {**METRICS, **TEXT_METRICS}
_MAX_CURVE_POINTS = 2000


# The values each metric can take: a threshold outside them can never be met (or always is).
RANGES: dict[str, tuple[float, float]] = {
    **{name: (0.0, 1.0) for name in (*METRICS, *TEXT_METRICS) if name != "log_loss"},
    "log_loss": (0.0, math.inf),
}


def check_thresholds(
    thresholds: dict[str, float], kind: str = "binary", required: bool = True
) -> dict[str, float]:
    """The one check of a quality gate's thresholds, made where parameters enter (before any
    training): every name is a metric this kind of model reports, every value a finite number
    within the metric's range, and (``required``) at least one threshold — an empty gate would
    register any model.

    Args:
        thresholds: metric name -> minimum (maximum for losses).
        kind: the model kind, a key of ``METRICS_BY_KIND``.
        required: refuse an empty gate.

    Returns:
        The thresholds, as floats.

    Raises:
        ConfigurationError: an unknown metric, a value that is not a finite number in range,
            or no threshold at all.
    """
    known = METRICS_BY_KIND[kind]
    if required and not thresholds:
        raise ConfigurationError(
            f"No thresholds: an empty quality gate would register any model. Give at least "
            f"one, e.g. {{{next(iter(known))!r}: 0.7}}."
        )
    unknown = sorted(set(thresholds) - set(known))
    if unknown:
        what = "Text classifiers are gated on" if kind == "text" else "Known metrics:"
        raise ConfigurationError(
            f"Unknown metric(s) in thresholds: {', '.join(unknown)}. {what} {', '.join(known)}."
        )
    values = {}
    for name, value in thresholds.items():
        try:
            values[name] = float(value)
        except (TypeError, ValueError):
            values[name] = math.nan
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if bad:
        raise ConfigurationError(f"Thresholds must be finite numbers: {', '.join(bad)}")
    for name, value in values.items():
        low, high = RANGES[name]
        if not low <= value <= high:
            raise ConfigurationError(
                f"Threshold {name}={value:g} is outside the metric's range [{low:g}, {high:g}]: "
                f"no model could {'pass' if known[name] else 'fail'} it."
            )
    return values


@dataclass
class Evaluation:
    """Metrics on the held-out part, and the curves behind the plots."""

    metrics: dict[str, float]
    rows: int
    curves: dict[str, Any] = field(default_factory=dict, repr=False)
    folds: int = 0  # 0: scored on a held-out part; K: out-of-fold scores of K-fold CV

    @property
    def method(self) -> str:
        """How the metrics were measured, as the runs and the Python API's result say it."""
        if self.folds:
            return f"cross-validation ({self.folds} folds over {self.rows} rows)"
        return f"holdout ({self.rows} rows)"


def _thin(*arrays: Any) -> list[Any]:
    """At most ``_MAX_CURVE_POINTS`` evenly spaced points (keeps ends) for plotting."""
    import numpy as np

    n = len(arrays[0])
    if n <= _MAX_CURVE_POINTS:
        return list(arrays)
    idx = np.unique(np.linspace(0, n - 1, _MAX_CURVE_POINTS).astype(int))
    return [a[idx] for a in arrays]


def evaluate_binary(y_true: Any, proba: Any, threshold: float = 0.5) -> Evaluation:
    """Binary classification metrics for positive-class probabilities.

    Args:
        y_true: 0/1 labels.
        proba: predicted probability of the positive class.
        threshold: decision threshold for the label-based metrics.

    Returns:
        The metrics (every name in ``METRICS``) and thinned ROC/PR curves.
    """
    import numpy as np

    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype="float64")
    fast = _one_sort(y_true, proba, threshold)
    values, roc, pr, confusion = (
        fast if fast is not None else _scikit_learn(y_true, proba, threshold)
    )
    return Evaluation(
        metrics={k: float(v) for k, v in values.items()},
        rows=len(y_true),
        curves={"roc": tuple(_thin(*roc)), "pr": tuple(_thin(*pr)), "confusion": confusion},
    )


def _one_sort(y_true: Any, proba: Any, threshold: float) -> Any:
    """Every metric from one sort of the scores: the same numbers as scikit-learn's functions
    (its ranking code, reproduced), which sort and validate the inputs once per metric — ten
    passes over the held-out part, 0.4 s at 200k rows against 0.03 s here.

    None when the input is outside what this path handles (labels other than 0/1, one class
    only, scores that are not finite): scikit-learn then gives its own answer or error.
    """
    import numpy as np

    n = len(y_true)
    if n == 0 or len(proba) != n or y_true.ndim != 1 or not np.isfinite(proba).all():
        return None
    positive = y_true == 1
    if not (positive | (y_true == 0)).all():
        return None
    n_pos = int(positive.sum())
    n_neg = n - n_pos
    if n_pos == 0 or n_neg == 0:
        return None

    # The curves: confusion counts at each distinct score, highest first.
    order = np.argsort(proba, kind="stable")[::-1]
    scores = proba[order]
    cut = np.concatenate([np.flatnonzero(np.diff(scores)), [n - 1]])
    tps = np.cumsum(positive[order], dtype=np.float64)[cut]
    fps = 1 + cut.astype(np.float64) - tps

    keep = np.ones(len(tps), dtype=bool)  # roc_curve(drop_intermediate=True): drop collinear
    if len(tps) > 2:
        keep[1:-1] = np.logical_or(np.diff(fps, 2), np.diff(tps, 2))
    fpr = np.concatenate([[0.0], fps[keep]]) / fps[-1]
    tpr = np.concatenate([[0.0], tps[keep]]) / tps[-1]
    predicted = tps + fps
    precision_curve = np.concatenate([(tps / predicted)[::-1], [1.0]])
    recall_curve = np.concatenate([(tps / tps[-1])[::-1], [0.0]])

    # The label metrics at the threshold.
    pred = proba >= threshold
    tp = int(np.count_nonzero(pred & positive))
    fp = int(np.count_nonzero(pred)) - tp
    fn, tn = n_pos - tp, n_neg - fp
    clipped = np.clip(proba, 1e-15, 1 - 1e-15)
    values = {
        "roc_auc": np.trapezoid(tpr, fpr),
        "average_precision": max(0.0, -np.sum(np.diff(recall_curve) * precision_curve[:-1])),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / n_pos,
        "f1": 2 * tp / (2 * tp + fp + fn),
        "accuracy": (tp + tn) / n,
        "log_loss": -np.mean(np.where(positive, np.log(clipped), np.log1p(-clipped))),
        "brier_score": np.mean((proba - positive) ** 2),
    }
    confusion = np.array([[tn, fp], [fn, tp]], dtype=np.int64)
    return values, (fpr, tpr), (recall_curve, precision_curve), confusion


def _scikit_learn(y_true: Any, proba: Any, threshold: float) -> Any:
    """The metrics by scikit-learn's functions (for inputs the one-sort path does not take)."""
    import numpy as np
    from sklearn import metrics as m

    pred = (proba >= threshold).astype("int64")
    fpr, tpr, _ = m.roc_curve(y_true, proba)
    precision_c, recall_c, _ = m.precision_recall_curve(y_true, proba)
    values = {
        "roc_auc": m.roc_auc_score(y_true, proba),
        "average_precision": m.average_precision_score(y_true, proba),
        "precision": m.precision_score(y_true, pred, zero_division=0),
        "recall": m.recall_score(y_true, pred, zero_division=0),
        "f1": m.f1_score(y_true, pred, zero_division=0),
        "accuracy": m.accuracy_score(y_true, pred),
        "log_loss": m.log_loss(y_true, np.clip(proba, 1e-15, 1 - 1e-15), labels=[0, 1]),
        "brier_score": m.brier_score_loss(y_true, proba),
    }
    confusion = m.confusion_matrix(y_true, pred, labels=[0, 1])
    return values, (fpr, tpr), (recall_c, precision_c), confusion


def plot_curves(evaluation: Evaluation, labels: tuple[Any, Any]) -> dict[str, Figure]:
    """ROC curve, precision-recall curve and confusion matrix as matplotlib figures."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    figs: dict[str, Figure] = {}
    fpr, tpr = evaluation.curves["roc"]
    fig = Figure(figsize=(4.5, 4), dpi=100)
    ax = fig.add_subplot()
    ax.plot(fpr, tpr, label=f"AUC = {evaluation.metrics['roc_auc']:.3f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC curve")
    ax.legend(loc="lower right")
    figs["roc_curve.png"] = fig

    recall, precision = evaluation.curves["pr"]
    fig = Figure(figsize=(4.5, 4), dpi=100)
    ax = fig.add_subplot()
    ax.plot(recall, precision, label=f"AP = {evaluation.metrics['average_precision']:.3f}")
    ax.set(xlabel="Recall", ylabel="Precision", title="Precision-recall curve", ylim=(0, 1.02))
    ax.legend(loc="lower left")
    figs["precision_recall_curve.png"] = fig

    cm = evaluation.curves["confusion"]
    fig = Figure(figsize=(4, 3.6), dpi=100)
    ax = fig.add_subplot()
    ax.imshow(cm, cmap="Blues")
    names = [str(labels[0]), str(labels[1])]
    ax.set_xticks([0, 1], names)
    ax.set_yticks([0, 1], names)
    for i in range(2):
        for j in range(2):
            colour = "white" if cm[i, j] > cm.max() / 2 else "black"
            ax.text(j, i, f"{cm[i, j]:,}", ha="center", va="center", color=colour)
    ax.set(xlabel="Predicted", ylabel="Actual", title="Confusion matrix")
    fig.tight_layout()
    figs["confusion_matrix.png"] = fig
    return figs


@dataclass
class GateDecision:
    """The verdict of the quality gate, one row per threshold."""

    passed: bool
    rows: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable view."""
        return {"passed": self.passed, "rows": self.rows}

    def markdown(self) -> str:
        """The decision as a markdown table."""
        lines = [
            f"**Quality gate: {'PASSED' if self.passed else 'FAILED'}**",
            "",
            "| metric | value | threshold | result |",
            "|---|---:|---:|---|",
        ]
        for r in self.rows:
            lines.append(
                f"| {r['metric']} | {r['value']:.4f} | {r['comparison']} {r['threshold']:.4f} "
                f"| {'pass' if r['passed'] else '**FAIL**'} |"
            )
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        """Raise :class:`QualityGateFailed` with the whole table when any metric missed.

        Raises:
            QualityGateFailed: the gate failed.
        """
        if self.passed:
            return
        failed = [r for r in self.rows if not r["passed"]]
        names = ", ".join(r["metric"] for r in failed)
        why = "; ".join(
            f"{r['metric']} {r['value']:.4f}, needs {r['comparison']} {r['threshold']:.4f}"
            for r in failed
        )
        raise QualityGateFailed(
            f"Quality gate failed on {names} ({why}): the model was not registered.\n"
            f"{self.text()}\nImprove the model or the data, or revisit the thresholds.",
            decision=self.as_dict(),
        )

    def text(self) -> str:
        """The decision as plain-text rows for error messages and logs."""
        return "\n".join(
            f"  {r['metric']:<18} {r['value']:.4f}  needs {r['comparison']} {r['threshold']:.4f}"
            f"  {'pass' if r['passed'] else 'FAIL'}"
            for r in self.rows
        )


def apply_gate(metrics: dict[str, float], thresholds: dict[str, float]) -> GateDecision:
    """Compare metrics with thresholds (>= for higher-is-better metrics, <= for losses).

    Args:
        metrics: the computed metrics.
        thresholds: metric name -> threshold; an empty dict passes.

    Returns:
        The decision; call :meth:`GateDecision.raise_if_failed` to enforce it.

    Raises:
        ConfigurationError: a threshold names a metric that was not computed (the names were
            checked where the parameters entered, by :func:`check_thresholds`).
    """
    rows = []
    for name, threshold in thresholds.items():
        if name not in metrics:
            raise ConfigurationError(f"Metric {name!r} was not computed; have {sorted(metrics)}")
        higher = DIRECTION[name]
        value = float(metrics[name])
        ok = value >= threshold if higher else value <= threshold
        rows.append(
            {
                "metric": name,
                "value": value,
                "threshold": float(threshold),
                "comparison": ">=" if higher else "<=",
                "passed": bool(ok),
            }
        )
    return GateDecision(passed=all(r["passed"] for r in rows), rows=rows)
