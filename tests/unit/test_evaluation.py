"""Metrics and the quality gate."""

from __future__ import annotations

import numpy as np
import pytest

from modelops.errors import ConfigurationError, QualityGateFailed
from modelops.evaluation import (
    METRICS,
    apply_gate,
    check_thresholds,
    evaluate_binary,
    plot_curves,
)


def test_metrics_match_scikit_learn_and_curves_are_thinned() -> None:
    from sklearn.metrics import log_loss, roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 50_000)
    proba = np.clip(y * 0.3 + rng.random(50_000) * 0.7, 0, 1)
    ev = evaluate_binary(y, proba)
    assert set(ev.metrics) == set(METRICS)
    assert ev.metrics["roc_auc"] == pytest.approx(roc_auc_score(y, proba))
    assert ev.metrics["log_loss"] == pytest.approx(log_loss(y, proba))
    assert len(ev.curves["roc"][0]) <= 2000 and len(ev.curves["pr"][0]) <= 2000
    assert ev.curves["confusion"].sum() == 50_000
    figures = plot_curves(ev, ("lost", "won"))
    assert set(figures) == {"roc_curve.png", "precision_recall_curve.png", "confusion_matrix.png"}


def _cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 20_000)
    noisy = np.clip(y * 0.25 + rng.random(20_000) * 0.75, 0, 1)
    return {
        "continuous": (y, noisy),
        "many ties": (y, np.round(noisy, 1)),
        "scores exactly at the threshold": (y, np.where(noisy > 0.4, 0.5, noisy)),
        "perfect": (y, y * 0.9 + 0.05),
        "inverted": (y, 1.0 - (y * 0.9 + 0.05)),
        "all equal": (y, np.full(20_000, 0.3)),
        "rare positives": ((rng.random(20_000) < 0.01).astype(int), rng.random(20_000)),
        "two rows": (np.array([0, 1]), np.array([0.2, 0.7])),
        "boolean labels": (y.astype(bool), noisy),
        "float labels": (y.astype(float), noisy),
        "zero and one scores": (y, np.where(noisy > 0.5, 1.0, 0.0)),
    }


@pytest.mark.parametrize("case", list(_cases()))
def test_one_sort_metrics_are_scikit_learns(case: str) -> None:
    """The one-sort path gives scikit-learn's numbers and curves for every kind of input."""
    from modelops.evaluation import _one_sort, _scikit_learn

    y, proba = _cases()[case]
    fast = _one_sort(y, proba.astype("float64"), 0.5)
    assert fast is not None
    values, roc, pr, confusion = fast
    want_values, want_roc, want_pr, want_confusion = _scikit_learn(y, proba, 0.5)
    assert set(values) == set(METRICS)
    for name, want in want_values.items():
        assert values[name] == pytest.approx(want, rel=1e-9, abs=1e-12), name
    for got, want in [*zip(roc, want_roc, strict=True), *zip(pr, want_pr, strict=True)]:
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(confusion, want_confusion)


@pytest.mark.parametrize(
    "y, proba",
    [
        (np.zeros(10, dtype=int), np.linspace(0, 1, 10)),  # one class: roc_auc is undefined
        (np.array([0, 1, 2, 1]), np.array([0.1, 0.6, 0.7, 0.8])),  # not 0/1 labels
        (np.array([0, 1, 0, 1]), np.array([0.1, np.nan, 0.7, 0.8])),  # a missing score
    ],
    ids=["one class", "three labels", "nan score"],
)
def test_inputs_outside_the_fast_path_get_scikit_learns_answer(
    y: np.ndarray, proba: np.ndarray
) -> None:
    import warnings

    from modelops.evaluation import _one_sort, _scikit_learn

    assert _one_sort(y, proba, 0.5) is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            want = _scikit_learn(y, proba, 0.5)[0]
        except ValueError as exc:
            with pytest.raises(ValueError, match=str(exc)[:30].replace("(", r"\(")):
                evaluate_binary(y, proba)
            return
        got = evaluate_binary(y, proba).metrics
    assert got.keys() == want.keys()
    np.testing.assert_allclose(list(got.values()), list(want.values()), equal_nan=True)


def test_gate_passes_and_fails_with_the_right_direction() -> None:
    metrics = {"roc_auc": 0.8, "precision": 0.55, "log_loss": 0.5}
    decision = apply_gate(metrics, {"roc_auc": 0.7, "log_loss": 0.6})
    assert decision.passed
    decision.raise_if_failed()

    failed = apply_gate(metrics, {"roc_auc": 0.7, "precision": 0.6, "log_loss": 0.4})
    assert not failed.passed
    assert [r["passed"] for r in failed.rows] == [True, False, False]
    with pytest.raises(QualityGateFailed) as info:
        failed.raise_if_failed()
    assert "failed on precision, log_loss" in str(info.value)
    assert "log_loss           0.5000  needs <= 0.4000  FAIL" in str(info.value)
    assert info.value.decision["passed"] is False
    assert "| precision | 0.5500 | >= 0.6000 | **FAIL** |" in failed.markdown()


def test_gate_boundary_is_inclusive_and_empty_gate_passes() -> None:
    assert apply_gate({"roc_auc": 0.7}, {"roc_auc": 0.7}).passed
    assert apply_gate({"roc_auc": 0.1}, {}).passed


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        ({"auc": 0.7}, "Unknown metric(s) in thresholds: auc"),
        ({"roc_auc": float("nan")}, "must be finite"),
    ],
)
def test_bad_thresholds_are_configuration_errors(thresholds: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_thresholds(thresholds, "binary")


def test_lifecycle_refuses_deploying_what_it_does_not_promote() -> None:
    from pydantic import ValidationError

    from modelops.params import LifecycleParams

    LifecycleParams(promote_to="production", deploy="local")
    LifecycleParams(promote_to="staging", deploy=False)
    with pytest.raises(ValidationError, match="Use promote_to=production, or deploy=false"):
        LifecycleParams(promote_to="staging", deploy="kubernetes")
