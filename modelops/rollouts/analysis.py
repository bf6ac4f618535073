"""The live analysis of a rollout step: what the stable version and the candidate did with the
same traffic (shadow) or comparable traffic (canary), and the verdict.

Per version: requests, errors, latency (p50/p99 of reading and scoring a request), and with
labels the live metric with its confidence interval. Between them: the shift of the candidate's
predictions from the stable version's (PSI over the stable version's deciles, or over the
labels for a model without scores) and, in shadow, how often both said the same.

The verdict is ``inconclusive`` until both versions answered ``min_requests`` (before, every
figure is noise), then ``fail`` as soon as one rule is broken (the candidate errs more, is
slower, its predictions moved too far, or its live metric is worse than the stable one's by
more than the margin with the interval's whole width), ``inconclusive`` while the labels are
too few to decide, and ``pass`` otherwise. The live metric's comparison is a
non-inferiority test: pass when the interval of (candidate - stable) lies above ``-margin``.

Intervals: ``roc_auc`` by DeLong's method (paired on the same rows in shadow), ``accuracy`` by
the normal approximation (paired differences in shadow), other metrics by a percentile
bootstrap over at most ``BOOTSTRAP_ROWS`` labelled rows.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from modelops.errors import ConfigurationError
from modelops.evaluation import DIRECTION, METRICS
from modelops.monitoring import psi

# A prediction shift over max_prediction_psi fails a step only when chance alone would give
# one that large less often than this, over all the looks at the step (``Criteria.looks``).
SHIFT_ALPHA = 0.01

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
BOOTSTRAP_ROWS = 20_000
LIVE_METRICS = ("roc_auc", "accuracy", *(m for m in METRICS if m not in ("roc_auc", "accuracy")))


@dataclass(frozen=True)
class Criteria:
    """What a step must show (the rollout's parameters)."""

    metric: str | None = "roc_auc"  # None: judge without labels
    margin: float = 0.02  # how much worse than stable the candidate's live metric may be
    min_requests: int = 200  # per version
    min_labels: int = 200  # per version, when a metric is judged
    max_error_rate_increase: float = 0.01
    max_p99_ratio: float = 1.5  # candidate p99 over stable p99 ...
    p99_slack_ms: float = 10.0  # ... or this much over it: a pause of the machine is no regression
    max_prediction_psi: float = 0.25
    min_agreement: float | None = None  # shadow: share of requests both answered alike
    confidence: float = 0.95
    # How often a step's evidence is judged, at most (a rollout looks every poll_seconds for up
    # to max_step_seconds): the shift test shares SHIFT_ALPHA among the looks (Bonferroni), or
    # a candidate that predicts as the stable version does would fail by chance at one look
    # of many far more often than at one.
    looks: int = 1

    def check(self) -> Criteria:
        """These criteria, if they can be met.

        Raises:
            ConfigurationError: an unknown metric or a value out of its range.
        """
        if self.metric is not None and self.metric not in LIVE_METRICS:
            raise ConfigurationError(
                f"Unknown live metric {self.metric!r}; choose one of {', '.join(LIVE_METRICS)}."
            )
        if not 0 < self.confidence < 1:
            raise ConfigurationError(f"confidence must be in (0, 1), not {self.confidence}.")
        if self.margin < 0 or self.max_error_rate_increase < 0 or self.max_prediction_psi < 0:
            raise ConfigurationError("margin and the maximum increases cannot be negative.")
        if self.looks < 1:
            raise ConfigurationError(f"looks must be at least 1, not {self.looks}.")
        if self.min_requests < 1 or self.min_labels < 0:
            raise ConfigurationError("min_requests must be at least 1, min_labels at least 0.")
        if self.p99_slack_ms < 0:
            raise ConfigurationError(f"p99_slack_ms cannot be negative, not {self.p99_slack_ms}.")
        if self.max_p99_ratio < 1:
            raise ConfigurationError(f"max_p99_ratio must be at least 1, not {self.max_p99_ratio}.")
        if self.min_agreement is not None and not 0 <= self.min_agreement <= 1:
            raise ConfigurationError(f"min_agreement must be in [0, 1], not {self.min_agreement}.")
        return self


@dataclass
class Figures:
    """What one version did in a step."""

    version: str
    role: str  # stable | candidate
    requests: int = 0
    errors: int = 0
    error_rate: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    prediction_psi: float | None = None  # the candidate's, against the stable version
    # How likely a PSI this large is from sampling alone (a chi-square test of the same bins):
    # a canary's two sides answer different requests, and on a few hundred of them a PSI over
    # 0.25 comes from chance now and then.
    prediction_shift_p: float | None = None
    agreement: float | None = None  # shadow: share of paired rows predicted alike
    labels: int = 0
    metric: float | None = None
    interval: tuple[float, float] | None = None


@dataclass
class Analysis:
    """A step's figures and its verdict, with every reason."""

    mode: str
    metric: str | None
    stable: Figures
    candidate: Figures
    verdict: str = INCONCLUSIVE
    reasons: list[str] = field(default_factory=list)
    difference: float | None = None  # candidate - stable, of the live metric
    difference_interval: tuple[float, float] | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (the artifact, the MLflow run, the audit entry and the operator API)."""
        return asdict(self)

    def table(self) -> list[dict[str, Any]]:
        """One row per version: the comparison table people read."""
        rows = []
        for f in (self.stable, self.candidate):
            low_high = f.interval
            rows.append(
                {
                    "version": f"v{f.version} ({f.role})",
                    "requests": f.requests,
                    "errors": f"{f.errors} ({f.error_rate:.2%})",
                    "p50 ms": _fmt(f.p50_ms, 2),
                    "p99 ms": _fmt(f.p99_ms, 2),
                    "prediction PSI": _fmt(f.prediction_psi, 4),
                    "agreement": "" if f.agreement is None else f"{f.agreement:.1%}",
                    "labels": f.labels,
                    f"live {self.metric or 'metric'}": _fmt(f.metric, 4),
                    "interval": ""
                    if low_high is None
                    else f"[{low_high[0]:.4f}, {low_high[1]:.4f}]",
                    "verdict": self.verdict if f.role == "candidate" else "",
                }
            )
        return rows


def _fmt(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


@dataclass
class _Side:
    """One version's answers, row by row (requests expanded to their rows)."""

    request_ids: list[str]
    ok: Any  # per request: answered without error
    seconds: Any
    row_keys: list[tuple[str, int]]
    predictions: list[Any]
    scores: Any  # per row, or None
    labels: list[Any]  # per row, None where unlabelled


def analyse(evidence: dict[str, Any], criteria: Criteria, since: float = 0.0) -> Analysis:
    """The figures and verdict of the evidence a two-version server kept (its
    ``/rollout/evidence``), from ``since`` (a Unix time) on.

    Raises:
        ConfigurationError: the evidence is not a two-version server's, or the criteria are
            not ones that can be met.
    """
    import numpy as np

    criteria.check()
    stable_v, candidate_v = evidence.get("stable"), evidence.get("candidate")
    if not stable_v or not candidate_v:
        raise ConfigurationError("This evidence is not a two-version server's (no candidate).")
    mode = str(evidence.get("mode", "canary"))
    at = np.asarray(evidence["at"], dtype=np.float64)
    keep = at >= since
    sides = {v: _side(evidence, keep, v) for v in (stable_v, candidate_v)}
    stable = _figures(sides[stable_v], stable_v, "stable")
    candidate = _figures(sides[candidate_v], candidate_v, "candidate")
    result = Analysis(mode, criteria.metric, stable, candidate)
    pairs = _pairs(sides[stable_v], sides[candidate_v]) if mode == "shadow" else None
    shift = _prediction_shift(sides[stable_v], sides[candidate_v])
    if shift is not None:
        candidate.prediction_psi, candidate.prediction_shift_p = shift
    if pairs is not None and pairs[0]["predictions"]:
        a, b = pairs
        same = [x == y for x, y in zip(a["predictions"], b["predictions"], strict=True)]
        candidate.agreement = float(np.mean(same))
    if criteria.metric is not None:
        classes = list(evidence.get("classes") or [])
        _live_metric(result, sides[stable_v], sides[candidate_v], pairs, criteria, classes)
    _judge(result, criteria)
    return result


def _side(evidence: dict[str, Any], keep: Any, version: str) -> _Side:
    import numpy as np

    index = [
        i
        for i, (v, k) in enumerate(zip(evidence["version"], keep, strict=True))
        if v == version and k
    ]
    status = np.asarray([evidence["status"][i] for i in index], dtype=np.int64)
    ok = status < 400
    request_ids = [evidence["request_id"][i] for i in index]
    good = [i for i, fine in zip(index, ok, strict=True) if fine]
    row_keys: list[tuple[str, int]] = []
    predictions: list[Any] = []
    scores: list[list[float]] = []
    labels: list[Any] = []
    has_scores = bool(good) and all(evidence["scores"][i] is not None for i in good)
    for i in good:
        rows = evidence["predictions"][i] or []
        rid = evidence["request_id"][i]
        row_keys.extend((rid, r) for r in range(len(rows)))
        predictions.extend(rows)
        if has_scores:
            scores.append(evidence["scores"][i])
        given = evidence["labels"][i]
        labels.extend(
            given if given is not None and len(given) == len(rows) else [None] * len(rows)
        )
    return _Side(
        request_ids,
        ok,
        np.asarray([evidence["seconds"][i] for i in index], dtype=np.float64),
        row_keys,
        predictions,
        np.fromiter(itertools.chain.from_iterable(scores), np.float64) if has_scores else None,
        labels,
    )


def _figures(side: _Side, version: str, role: str) -> Figures:
    import numpy as np

    figures = Figures(version, role, requests=len(side.request_ids))
    figures.errors = int((~side.ok).sum())
    figures.error_rate = figures.errors / figures.requests if figures.requests else 0.0
    fine = side.seconds[side.ok] * 1000
    if fine.size:
        figures.p50_ms, figures.p99_ms = (float(x) for x in np.percentile(fine, [50, 99]))
    figures.labels = sum(label is not None for label in side.labels)
    return figures


def _pairs(a: _Side, b: _Side) -> tuple[dict[str, Any], dict[str, Any]]:
    """The rows both versions answered, aligned (shadow: the same requests)."""
    import numpy as np

    where = {key: i for i, key in enumerate(b.row_keys)}
    ia, ib = [], []
    for i, key in enumerate(a.row_keys):
        j = where.get(key)
        if j is not None:
            ia.append(i)
            ib.append(j)

    def pick(side: _Side, idx: list[int]) -> dict[str, Any]:
        return {
            "predictions": [side.predictions[i] for i in idx],
            "scores": None if side.scores is None else side.scores[np.asarray(idx, dtype=np.int64)],
            "labels": [side.labels[i] for i in idx],
        }

    return pick(a, ia), pick(b, ib)


def _prediction_shift(stable: _Side, candidate: _Side) -> tuple[float, float] | None:
    """PSI of the candidate's predictions against the stable version's, and the p-value of
    that shift: over the stable scores' deciles when both have scores (or numbers), else over
    the predicted labels."""
    import numpy as np

    if not stable.predictions or not candidate.predictions:
        return None
    if stable.scores is not None and candidate.scores is not None:
        a, b = stable.scores, candidate.scores
    else:
        a, b = _numbers(stable.predictions), _numbers(candidate.predictions)
        if a is None or b is None or len(np.unique(a)) <= 10:  # labels: counts per label
            names = sorted({str(p) for p in (*stable.predictions, *candidate.predictions)})
            index = {name: i for i, name in enumerate(names)}
            return _shift(
                np.bincount([index[str(p)] for p in stable.predictions], minlength=len(names)),
                np.bincount([index[str(p)] for p in candidate.predictions], minlength=len(names)),
            )
    edges = np.unique(np.quantile(a, np.linspace(0, 1, 11)[1:-1]))
    return _shift(
        np.bincount(np.searchsorted(edges, a, side="left"), minlength=len(edges) + 1),
        np.bincount(np.searchsorted(edges, b, side="left"), minlength=len(edges) + 1),
    )


def _shift(stable: Any, candidate: Any) -> tuple[float, float]:
    """PSI of two count vectors over the same bins, and the chi-square test's p-value that
    both come from one distribution (1.0 when there is one bin with counts)."""
    import numpy as np
    from scipy.stats import chi2_contingency

    table = np.vstack([stable, candidate])
    table = table[:, table.sum(axis=0) > 0]
    p = 1.0 if table.shape[1] < 2 else float(chi2_contingency(table).pvalue)
    return psi(stable, candidate), p


def _numbers(values: list[Any]) -> Any:
    """``values`` as float64, or None when they are not all numbers (labels)."""
    import numpy as np

    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def _labelled(part: dict[str, Any] | _Side) -> tuple[Any, Any, list[Any]]:
    """(row index of labelled rows, their labels, their predictions)."""
    import numpy as np

    labels = part["labels"] if isinstance(part, dict) else part.labels
    predictions = part["predictions"] if isinstance(part, dict) else part.predictions
    idx = np.asarray([i for i, y in enumerate(labels) if y is not None], dtype=np.int64)
    return idx, [labels[i] for i in idx], [predictions[i] for i in idx]


def _live_metric(
    result: Analysis,
    stable: _Side,
    candidate: _Side,
    pairs: tuple[dict[str, Any], dict[str, Any]] | None,
    criteria: Criteria,
    classes: list[Any],
) -> None:
    """Each version's live metric with its interval, and the interval of the difference."""
    from scipy import stats

    metric = str(criteria.metric)
    z = float(stats.norm.ppf(0.5 + criteria.confidence / 2))
    if pairs is not None:  # shadow: both versions on the same labelled rows
        a, b = pairs
        idx, labels, pa = _labelled(a)
        pb = [b["predictions"][i] for i in idx]
        sa = None if a["scores"] is None else a["scores"][idx]
        sb = None if b["scores"] is None else b["scores"][idx]
        sides = [(labels, pa, sa), (labels, pb, sb)]
    else:
        sides = []
        for side in (stable, candidate):
            idx, labels, predicted = _labelled(side)
            sides.append((labels, predicted, None if side.scores is None else side.scores[idx]))
    # (A side with no labelled rows yet has no scores either: that is thin evidence, not this.)
    if metric != "accuracy" and any(s is None and len(y) for y, _, s in sides):
        raise ConfigurationError(
            f"The live metric {metric!r} needs class probabilities, which this model's answers "
            f"do not carry: judge it on accuracy."
        )
    if min(len(labels) for labels, _, _ in sides) < max(criteria.min_labels, 2):
        return
    positive = _positive(sides, classes)
    estimates = []
    for (labels, predicted, scores), figures in zip(
        sides, (result.stable, result.candidate), strict=True
    ):
        value, low, high, parts = _estimate(metric, labels, predicted, scores, positive, z)
        figures.metric, figures.interval = value, (low, high)
        estimates.append(parts)
    result.difference, result.difference_interval = _difference(
        metric, estimates, paired=pairs is not None, z=z
    )


def _positive(sides: list[tuple[list[Any], list[Any], Any]], classes: list[Any]) -> str | None:
    """The positive class of a binary model, as text: the class its scores are the
    probability of (the second, as the server keeps them), else the larger label seen."""
    if len(classes) == 2:
        return str(classes[1])
    seen = sorted({str(y) for labels, _, _ in sides for y in labels})
    return seen[-1] if seen else None


def _estimate(
    metric: str, labels: list[Any], predicted: list[Any], scores: Any, positive: Any, z: float
) -> tuple[float, float, float, Any]:
    import numpy as np

    if metric == "accuracy":
        correct = np.asarray(
            [str(p) == str(y) for p, y in zip(predicted, labels, strict=True)], float
        )
        p = float(correct.mean())
        half = z * math.sqrt(max(p * (1 - p), 1e-12) / len(correct))
        return p, max(0.0, p - half), min(1.0, p + half), correct
    y = np.asarray([str(label) == positive for label in labels], dtype=np.int64)
    if metric == "roc_auc":
        if y.min() == y.max():
            raise ConfigurationError("roc_auc needs labels of both classes; send more feedback.")
        auc, v01, v10 = _delong(y, scores)
        var = v01.var(ddof=1) / len(v01) + v10.var(ddof=1) / len(v10)
        half = z * math.sqrt(var)
        return auc, max(0.0, auc - half), min(1.0, auc + half), (y, v01, v10, auc)
    return _bootstrap(metric, y, scores)


def _delong(y: Any, scores: Any) -> tuple[float, Any, Any]:
    """AUC and DeLong's structural components (Sun and Xu's fast algorithm: three ranks)."""
    import numpy as np
    from scipy.stats import rankdata

    pos, neg = scores[y == 1], scores[y == 0]
    m, n = len(pos), len(neg)
    tz = rankdata(np.concatenate([pos, neg]))
    tx, ty = rankdata(pos), rankdata(neg)
    auc = float((tz[:m].sum() - m * (m + 1) / 2) / (m * n))
    v01 = (tz[:m] - tx) / n
    v10 = 1.0 - (tz[m:] - ty) / m
    return auc, v01, v10


def _bootstrap(
    metric: str, y: Any, scores: Any, rounds: int = 200
) -> tuple[float, float, float, Any]:
    import numpy as np

    from modelops.evaluation import evaluate_binary

    rng = np.random.default_rng(0)
    if len(y) > BOOTSTRAP_ROWS:
        keep = rng.choice(len(y), BOOTSTRAP_ROWS, replace=False)
        y, scores = y[keep], scores[keep]
    value = evaluate_binary(y, scores).metrics[metric]
    draws = rng.integers(0, len(y), size=(rounds, len(y)))
    values = np.asarray([evaluate_binary(y[d], scores[d]).metrics[metric] for d in draws])
    low, high = np.percentile(values, [2.5, 97.5])
    return float(value), float(low), float(high), values


def _difference(
    metric: str, parts: list[Any], paired: bool, z: float
) -> tuple[float, tuple[float, float]]:
    """The candidate's metric minus the stable one's, with its interval."""
    import numpy as np

    a, b = parts
    if metric == "accuracy":
        diff = float(b.mean() - a.mean())
        if paired:
            se = float((b - a).std(ddof=1) / math.sqrt(len(a)))
        else:
            se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    elif metric == "roc_auc":
        (_, a01, a10, auc_a), (_, b01, b10, auc_b) = a, b
        var = a01.var(ddof=1) / len(a01) + a10.var(ddof=1) / len(a10)
        var += b01.var(ddof=1) / len(b01) + b10.var(ddof=1) / len(b10)
        if paired:  # the same rows: the two AUCs move together
            var -= 2 * (np.cov(a01, b01)[0, 1] / len(a01) + np.cov(a10, b10)[0, 1] / len(a10))
        diff, se = auc_b - auc_a, math.sqrt(max(var, 0.0))
    else:
        # Bootstrap draws. Paired, both sides drew the same rows (the same seed over the same
        # rows); unpaired, shuffling one side's draws makes them independent of the other's.
        draws = b - a if paired else b - np.random.default_rng(1).permutation(a)
        low, high = np.percentile(draws, [2.5, 97.5])
        return float(np.median(draws)), (float(low), float(high))
    return diff, (diff - z * se, diff + z * se)


def _judge(result: Analysis, criteria: Criteria) -> None:
    s, c = result.stable, result.candidate
    fails, thin = [], []
    for f in (s, c):
        if f.requests < criteria.min_requests:
            thin.append(f"v{f.version} has {f.requests} request(s), {criteria.min_requests} needed")
    if c.requests and c.error_rate > s.error_rate + criteria.max_error_rate_increase:
        fails.append(
            f"the candidate's error rate {c.error_rate:.2%} is over the stable "
            f"{s.error_rate:.2%} + {criteria.max_error_rate_increase:.2%}"
        )
    if c.p99_ms is not None and s.p99_ms is not None:
        bound = max(s.p99_ms * criteria.max_p99_ratio, s.p99_ms + criteria.p99_slack_ms)
        if c.p99_ms > bound:
            fails.append(f"the candidate's p99 {c.p99_ms:.1f} ms is over {bound:.1f} ms")
    psi_over = c.prediction_psi is not None and c.prediction_psi > criteria.max_prediction_psi
    alpha = SHIFT_ALPHA / criteria.looks
    if psi_over and (c.prediction_shift_p or 0.0) < alpha:
        fails.append(
            f"the candidate's predictions moved: PSI {c.prediction_psi:.3f} > "
            f"{criteria.max_prediction_psi} (p = {c.prediction_shift_p:.2g} < {alpha:.2g})"
        )
    low_agreement = c.agreement is not None and c.agreement < (criteria.min_agreement or 0)
    if criteria.min_agreement is not None and low_agreement:
        fails.append(f"agreement {c.agreement:.1%} < {criteria.min_agreement:.1%}")
    if criteria.metric is not None:
        if result.difference_interval is None:
            thin.append(
                f"{min(s.labels, c.labels)} label(s) per version, {criteria.min_labels} needed "
                f"to judge {criteria.metric}"
            )
        else:
            sign = 1 if DIRECTION.get(criteria.metric, True) else -1
            low, high = sorted(sign * x for x in result.difference_interval)
            name = f"live {criteria.metric}"
            if high < -criteria.margin:
                fails.append(
                    f"{name} {c.metric:.4f} is worse than the stable {s.metric:.4f} by more than "
                    f"{criteria.margin} (difference interval {result.difference_interval[0]:+.4f} "
                    f"to {result.difference_interval[1]:+.4f})"
                )
            elif low < -criteria.margin:
                thin.append(
                    f"{name}: the difference interval {result.difference_interval[0]:+.4f} to "
                    f"{result.difference_interval[1]:+.4f} does not yet exclude a loss over "
                    f"{criteria.margin}"
                )
    # Too few requests make every figure noise (a PSI over 14 answers can be anything): no
    # verdict but "not yet" until both versions answered enough.
    if any(f.requests < criteria.min_requests for f in (s, c)):
        fails = []
    result.verdict = FAIL if fails else INCONCLUSIVE if thin else PASS
    result.reasons = fails or thin or ["every criterion is met"]
