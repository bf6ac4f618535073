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
