"""modelops.monitoring on known inputs: PSI, the KS test, the comparison and the decay check.

Each expected value is worked out here by hand (or with scipy directly), not by the code under
test.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from modelops import monitoring


def test_psi_of_two_count_vectors() -> None:
    # shares 0.5/0.5 -> 0.25/0.75
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert monitoring.psi([50, 50], [25, 75]) == pytest.approx(expected)
    assert monitoring.psi([50, 50], [25, 75]) == pytest.approx(0.274653, abs=1e-6)
    assert monitoring.psi([3, 7], [30, 70]) == pytest.approx(0.0)  # same shares, any size


def test_psi_floors_an_empty_bin_instead_of_going_infinite() -> None:
    eps = 1e-4  # documented floor: a new category must not give an infinite PSI
    expected = (0.5 - 1.0) * math.log(0.5 / 1.0) + (0.5 - eps) * math.log(0.5 / eps)
    assert monitoring.psi([10, 0], [5, 5]) == pytest.approx(expected)


def test_psi_of_an_empty_side_is_zero() -> None:
    assert monitoring.psi([0, 0], [1, 2]) == 0.0
    assert monitoring.psi([1, 2], [0, 0]) == 0.0


def _numeric_profile() -> dict:
    return {
        "rows": 30,
        "features": {
            "x": {
                "kind": "numeric",
                "type": "numeric",
                "null_rate": 0.0,
                "edges": [0.0, 1.0],
                "counts": [10, 10, 10, 0],  # (-inf, 0], (0, 1], (1, inf), missing
                "mean": 0.5,
            }
        },
    }


def test_compare_counts_bins_and_runs_scipy_ks_against_the_sample() -> None:
    window = pd.DataFrame({"x": [-1.0, 0.5, 0.5, 2.0, np.nan]})
    sample = pd.DataFrame({"x": [-0.5, 0.2, 0.4, 0.9, 1.5, 3.0]})
    result = monitoring.compare(window, _numeric_profile(), sample, None, psi_max=10.0)
    (drift,) = result.features
    # By hand: -1 in (-inf, 0]; 0.5, 0.5 in (0, 1]; 2 in (1, inf); one missing.
    shares_ref = [1 / 3, 1 / 3, 1 / 3, 1e-4]
    shares_now = [1 / 5, 2 / 5, 1 / 5, 1 / 5]
    expected_psi = sum(
        (a - e) * math.log(a / e) for e, a in zip(shares_ref, shares_now, strict=True)
    )
    assert drift.psi == pytest.approx(expected_psi)
    ks = stats.ks_2samp([-0.5, 0.2, 0.4, 0.9, 1.5, 3.0], [-1.0, 0.5, 0.5, 2.0])
    assert drift.statistic == pytest.approx(ks.statistic)
    assert drift.p_value == pytest.approx(ks.pvalue)
    assert drift.null_rate_current == pytest.approx(0.2)
    assert result.rows == 5 and not result.degraded


def test_a_feature_breaches_when_its_psi_exceeds_the_limit() -> None:
    window = pd.DataFrame({"x": [5.0] * 20})  # everything in the last bin
    result = monitoring.compare(window, _numeric_profile(), None, None, psi_max=0.2)
    (drift,) = result.features
    assert drift.breached and drift.statistic is None  # no sample: no KS test
    assert result.degraded and result.breaches[0].startswith("feature 'x' PSI")
    assert result.worst is drift


def test_categorical_drift_counts_unseen_and_missing() -> None:
    profile = {
        "features": {
            "c": {
                "kind": "categorical",
                "type": "categorical",
                "null_rate": 0.0,
                "categories": ["a", "b"],
                "counts": [5, 5, 0, 0],  # a, b, unseen, missing
            }
        }
    }
    window = pd.DataFrame({"c": ["a", "a", "z", None]})
    (drift,) = monitoring.compare(window, profile, None, None, psi_max=100).features
    shares_ref, shares_now = [0.5, 0.5, 1e-4, 1e-4], [0.5, 1e-4, 0.25, 0.25]
    expected = sum((a - e) * math.log(a / e) for e, a in zip(shares_ref, shares_now, strict=True))
    assert drift.psi == pytest.approx(expected)
    assert drift.detail == "unseen categories 25.0%"


def test_prediction_shift_is_a_breach_of_its_own() -> None:
    profile = {
        "features": {},
        "prediction": {"edges": [0.5], "counts": [50, 50, 0], "mean": 0.5},
    }
    proba = np.array([0.9] * 10)  # every probability above 0.5 now
    result = monitoring.compare(pd.DataFrame(index=range(10)), profile, None, proba, psi_max=0.2)
    shares_ref, shares_now = [0.5, 0.5, 1e-4], [1e-4, 1.0, 1e-4]
    expected = sum((a - e) * math.log(a / e) for e, a in zip(shares_ref, shares_now, strict=True))
    assert result.prediction_psi == pytest.approx(expected)
    assert result.breaches == [f"prediction distribution PSI {expected:.3f} > 0.2"]


def test_compare_performance_flags_drops_beyond_the_allowance() -> None:
    result = monitoring.CheckResult(rows=100, features=[])
    monitoring.compare_performance(
        result,
        current={"roc_auc": 0.80, "log_loss": 0.50, "recall": 0.7},
        registered={"roc_auc": 0.90, "log_loss": 0.30, "recall": 0.71},
        metric_drop_max={"roc_auc": 0.05, "log_loss": 0.1, "recall": 0.05, "f1": 0.01},
    )
    # roc_auc fell 0.10 (> 0.05); log_loss rose 0.20 (a loss that grew, > 0.1); recall fell
    # 0.01 (within 0.05); f1 is not measured: not judged.
    assert result.breaches == [
        "roc_auc fell 0.9000 -> 0.8000 (worse by 0.1000 > 0.05)",
        "log_loss rose 0.3000 -> 0.5000 (worse by 0.2000 > 0.1)",
    ]


def test_a_profile_holds_deciles_quantiles_and_counts() -> None:
    from modelops.data import DatasetSchema, FeatureSpec

    X = pd.DataFrame({"x": np.arange(101, dtype="float64")})  # 0..100: deciles 10, 20, ... 90
    schema = DatasetSchema(target="y", features={"x": FeatureSpec(kind="numeric")})
    entry = monitoring.build_profile(X, schema)["features"]["x"]
    assert entry["edges"] == pytest.approx([10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0])
    assert entry["quantiles"]["0.5"] == 50.0 and entry["quantiles"]["1.0"] == 100.0
    # (-inf, 10] holds 0..10 (11 values), each later bin 10, (90, inf) 10, none missing.
    assert entry["counts"] == [11, 10, 10, 10, 10, 10, 10, 10, 10, 10, 0]
    assert entry["mean"] == 50.0


def test_a_window_too_small_or_missing_columns_is_refused() -> None:
    from modelops.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="fewer than min_rows=5"):
        monitoring.check_window(pd.DataFrame({"x": [1.0]}), ["x"], 5)
    with pytest.raises(ConfigurationError, match="lacks feature column"):
        monitoring.check_window(pd.DataFrame({"y": [1.0] * 5}), ["x"], 5)
