"""Reference profiles and drift/decay checks. No Prefect here: the ``monitoring`` flow wires it.

A *profile* is a compact JSON description of a table: per numeric feature its quantiles and a
fixed-bin histogram (bin edges from the reference's deciles, plus a bin for missing values), per
categorical feature its category frequencies (plus "unseen" and missing), and the distribution
of the model's positive-class probability. It is stored with every registered version
(``reference/profile.json`` on the version's run) beside a small sample of reference rows
(``reference/sample.parquet``) for the two-sample tests.

Drift per feature is the population stability index (PSI) over the profile's bins and, for
numeric features, scipy's two-sample Kolmogorov-Smirnov test against the reference sample. A
feature breaches when its PSI exceeds ``psi_max``; the KS test is reported beside it (at these
sizes it flags differences too small to matter, so it never decides alone).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from modelops.errors import ConfigurationError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from modelops.data import DatasetSchema

PROFILE_FILE = "reference/profile.json"
SAMPLE_FILE = "reference/sample.parquet"
SAMPLE_ROWS = 5000
QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
BINS = 10
TOP_CATEGORIES = 50
_EPS = 1e-4  # PSI's floor for an empty bin (a new category must not give an infinite PSI)
MISSING, UNSEEN = "__missing__", "__unseen__"


def _numeric(series: pd.Series) -> pd.Series:
    import pandas as pd

    if series.dtype.kind == "M":
        return (series - pd.Timestamp(0)).dt.total_seconds() / 86400.0
    return pd.to_numeric(series, errors="coerce").astype("float64")


QUANTILE_ROWS = 200_000  # bin edges and inner quantiles from at most this many values


def _edges_and_quantiles(finite: np.ndarray) -> tuple[list[float], dict[str, float]]:
    """Decile bin edges and the profile's quantiles in one pass (min and max exact; the rest
    from a fixed random subset on large tables, which moves them by well under a percent)."""
    import numpy as np

    if finite.size == 0:
        return [], {}
    subset = finite
    if finite.size > QUANTILE_ROWS:
        subset = np.random.default_rng(0).choice(finite, QUANTILE_ROWS, replace=False)
    deciles = list(np.linspace(0, 1, BINS + 1)[1:-1])
    points = np.quantile(subset, [*deciles, *QUANTILES])
    edges = [float(e) for e in np.unique(points[: len(deciles)])]
    quantiles = {str(q): float(v) for q, v in zip(QUANTILES, points[len(deciles) :], strict=True)}
    quantiles[str(0.0)], quantiles[str(1.0)] = float(finite.min()), float(finite.max())
    return edges, quantiles


def _numeric_counts(values: np.ndarray, edges: list[float]) -> list[int]:
    """Counts per bin: (-inf, e0], (e0, e1], ..., (e_last, inf), then missing."""
    import numpy as np

    finite = np.isfinite(values)
    idx = np.searchsorted(np.asarray(edges, dtype="float64"), values[finite], side="left")
    counts = np.bincount(idx, minlength=len(edges) + 1).tolist()
    return [int(c) for c in counts] + [int((~finite).sum())]


def _category_counts(series: pd.Series, categories: list[str]) -> list[int]:
    """Counts per known category, then unseen, then missing."""
    missing = int(series.isna().sum())
    counts = series.dropna().astype(str).value_counts()
    known = [int(counts.get(c, 0)) for c in categories]
    unseen = int(counts.sum()) - sum(known)
    return [*known, unseen, missing]


def build_profile(
    X: pd.DataFrame, schema: DatasetSchema, proba: np.ndarray | None = None
) -> dict[str, Any]:
    """The reference profile of a training table (features as the model sees them) and of the
    model's positive-class probabilities on held-out rows."""
    import numpy as np

    features: dict[str, Any] = {}
    for name, spec in schema.features.items():
        column = X[name]
        entry: dict[str, Any] = {"kind": spec.kind, "null_rate": float(column.isna().mean())}
        if spec.kind in ("numeric", "datetime") or (
            spec.kind == "boolean" and column.dtype.kind in "fiub"
        ):
            values = _numeric(column).to_numpy()
            finite = values[np.isfinite(values)]
            edges, quantiles = _edges_and_quantiles(finite)
            entry.update(
                type="numeric",
                edges=edges,
                counts=_numeric_counts(values, edges),
                quantiles=quantiles,
                mean=float(finite.mean()) if finite.size else None,
            )
        else:
            top = column.dropna().astype(str).value_counts().head(TOP_CATEGORIES)
            categories = [str(c) for c in top.index]
            entry.update(
                type="categorical",
                categories=categories,
                counts=_category_counts(column, categories),
            )
        features[name] = entry
    profile: dict[str, Any] = {"rows": len(X), "features": features}
    if proba is not None:
        values = np.asarray(proba, dtype="float64")
        edges = [i / BINS for i in range(1, BINS)]
        profile["prediction"] = {
            "edges": edges,
            "counts": _numeric_counts(values, edges),
            "mean": float(values.mean()) if values.size else None,
        }
    return profile


TEXT_LENGTH = "text_length"  # the one "feature" of a text model's profile: characters per text


def text_lengths(texts: Any) -> pd.DataFrame:
    """The measurable side of texts: their length in characters (missing texts: NaN)."""
    import pandas as pd

    series = pd.Series(list(texts), dtype="object")
    return pd.DataFrame(
        {
            TEXT_LENGTH: series.map(
                lambda t: len(t) if isinstance(t, str) else float("nan")
            ).astype("float64")
        }
    )


def build_text_profile(texts: list[str], predicted: list[str], labels: list[str]) -> dict[str, Any]:
    """The reference of a text classifier: length statistics of its training texts and the
    frequencies of the labels it predicts on held-out texts."""
    from modelops.data import DatasetSchema, FeatureSpec

    frame = text_lengths(texts)
    schema = DatasetSchema(target="__label__", features={TEXT_LENGTH: FeatureSpec(kind="numeric")})
    profile = build_profile(frame, schema)
    profile["kind"] = "text"
    profile["prediction_labels"] = {
        "labels": list(labels),
        "counts": _category_counts(_labels(predicted), list(labels)),
    }
    return profile


def _labels(values: Any) -> pd.Series:
    import pandas as pd

    return pd.Series(list(values), dtype="object")


def reference_sample(X: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """At most ``SAMPLE_ROWS`` reference rows, for the two-sample tests."""
    return X.sample(n=min(SAMPLE_ROWS, len(X)), random_state=seed) if len(X) else X


def psi(expected: list[int] | np.ndarray, actual: list[int] | np.ndarray) -> float:
    """Population stability index of two count vectors over the same bins."""
    import numpy as np

    e = np.asarray(expected, dtype="float64")
    a = np.asarray(actual, dtype="float64")
    if e.sum() == 0 or a.sum() == 0:
        return 0.0
    e = np.clip(e / e.sum(), _EPS, None)
    a = np.clip(a / a.sum(), _EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass
class FeatureDrift:
    """One feature's comparison with the reference."""

    feature: str
    kind: str
    psi: float
    statistic: float | None  # KS D for numeric features
    p_value: float | None
    null_rate_reference: float
    null_rate_current: float
    breached: bool
    detail: str = ""

    def row(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "kind": self.kind,
            "psi": round(self.psi, 4),
            "ks_statistic": None if self.statistic is None else round(self.statistic, 4),
            "ks_p_value": None if self.p_value is None else float(f"{self.p_value:.3g}"),
            "null_rate": f"{self.null_rate_reference:.3f} -> {self.null_rate_current:.3f}",
            "verdict": "DRIFT" if self.breached else "ok",
            "detail": self.detail,
        }


@dataclass
class CheckResult:
    """Everything one monitoring check found."""

    rows: int
    features: list[FeatureDrift]
    prediction_psi: float | None = None
    performance: dict[str, float] = field(default_factory=dict)
    registered: dict[str, float] = field(default_factory=dict)
    breaches: list[str] = field(default_factory=list)

    @property
    def degraded(self) -> bool:
        return bool(self.breaches)

    @property
    def worst(self) -> FeatureDrift | None:
        return max(self.features, key=lambda f: f.psi, default=None)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "degraded": self.degraded}


def check_window(window: pd.DataFrame, required: list[str], min_rows: int) -> None:
    """Refuse a window that cannot be compared: too few rows, or missing feature columns.

    Raises:
        ConfigurationError: says which, and what to do.
    """
    if len(window) < min_rows:
        raise ConfigurationError(
            f"The monitoring window has {len(window)} row(s), fewer than min_rows={min_rows}: "
            f"wait for more traffic, widen the window, or lower min_rows."
        )
    missing = [f for f in required if f not in window.columns]
    if missing:
        raise ConfigurationError(
            f"The monitoring window lacks feature column(s) the model was trained on: "
            f"{', '.join(missing[:20])}. Columns present: {', '.join(map(str, window.columns[:20]))}"
        )


def compare(
    window: pd.DataFrame,
    profile: dict[str, Any],
    sample: pd.DataFrame | None,
    proba: np.ndarray | None,
    psi_max: float = 0.2,
    predicted_labels: Any = None,
) -> CheckResult:
    """Drift of each feature and of the predictions against the reference profile."""
    import numpy as np
    from scipy import stats

    drifts = []
    for name, ref in profile["features"].items():
        column = window[name]
        null_now = float(column.isna().mean())
        statistic = p_value = None
        if ref["type"] == "numeric":
            values = _numeric(column).to_numpy()
            counts = _numeric_counts(values, ref["edges"])
            if sample is not None and name in sample.columns:
                ref_values = _numeric(sample[name]).to_numpy()
                a, b = ref_values[np.isfinite(ref_values)], values[np.isfinite(values)]
                if a.size and b.size:
                    test = stats.ks_2samp(a, b)
                    statistic, p_value = float(test.statistic), float(test.pvalue)
            detail = ""
            if ref.get("mean") is not None and np.isfinite(values).any():
                detail = f"mean {ref['mean']:.4g} -> {float(np.nanmean(values)):.4g}"
        else:
            counts = _category_counts(column, ref["categories"])
            unseen = counts[-2] / max(1, sum(counts))
            detail = f"unseen categories {unseen:.1%}" if unseen else ""
        value = psi(ref["counts"], counts)
        drifts.append(
            FeatureDrift(
                name,
                ref["kind"],
                value,
                statistic,
                p_value,
                ref["null_rate"],
                null_now,
                value > psi_max,
                detail,
            )
        )
    result = CheckResult(rows=len(window), features=drifts)
    if predicted_labels is not None and "prediction_labels" in profile:
        ref = profile["prediction_labels"]
        current = _category_counts(_labels(predicted_labels), ref["labels"])
        result.prediction_psi = psi(ref["counts"], current)
        if result.prediction_psi > psi_max:
            result.breaches.append(
                f"predicted label distribution PSI {result.prediction_psi:.3f} > {psi_max}"
            )
    if proba is not None and "prediction" in profile:
        ref = profile["prediction"]
        current = _numeric_counts(np.asarray(proba, dtype="float64"), ref["edges"])
        result.prediction_psi = psi(ref["counts"], current)
        if result.prediction_psi > psi_max:
            result.breaches.append(
                f"prediction distribution PSI {result.prediction_psi:.3f} > {psi_max}"
            )
    for d in drifts:
        if d.breached:
            result.breaches.append(
                f"feature {d.feature!r} PSI {d.psi:.3f} > {psi_max}"
                + (f" ({d.detail})" if d.detail else "")
            )
    return result


def compare_performance(
    result: CheckResult,
    current: dict[str, float],
    registered: dict[str, float],
    metric_drop_max: dict[str, float],
) -> None:
    """Add the recomputed metrics and any drop beyond ``metric_drop_max`` to ``result``."""
    from modelops.evaluation import DIRECTION

    result.performance, result.registered = current, registered
    for metric, allowed in metric_drop_max.items():
        if metric not in current or metric not in registered:
            continue
        higher_is_better = DIRECTION.get(metric, True)
        drop = registered[metric] - current[metric]
        if not higher_is_better:
            drop = -drop  # a loss that grew is a drop in quality
        if drop > allowed and math.isfinite(drop):
            moved = "fell" if higher_is_better else "rose"
            result.breaches.append(
                f"{metric} {moved} {registered[metric]:.4f} -> "
                f"{current[metric]:.4f} (worse by {drop:.4f} > {allowed})"
            )
