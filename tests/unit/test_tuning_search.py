"""modelops.tuning on known inputs: grid expansion, the seeded random draw, ranking, the
validation part and the order candidates go to workers."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from modelops import tuning
from modelops.errors import ConfigurationError

GRID = {
    "logistic_regression": {"C": [0.1, 1.0], "max_iter": [100, 200]},
    "random_forest": {},
}


def _points(candidates: list[tuning.SearchCandidate]) -> list[tuple[int, str, dict]]:
    return [(c.index, c.config.kind, c.config.params) for c in candidates]


def test_the_grid_is_every_combination_in_a_stable_order() -> None:
    assert _points(tuning.expand_search(GRID)) == [
        (0, "logistic_regression", {"C": 0.1, "max_iter": 100}),
        (1, "logistic_regression", {"C": 0.1, "max_iter": 200}),
        (2, "logistic_regression", {"C": 1.0, "max_iter": 100}),
        (3, "logistic_regression", {"C": 1.0, "max_iter": 200}),
        (4, "random_forest", {}),  # an empty mapping: the kind with its defaults
    ]


def test_a_single_value_counts_as_a_list_of_one() -> None:
    (only,) = tuning.expand_search({"logistic_regression": {"C": 0.5}})
    assert only.config.params == {"C": 0.5}
    assert only.label == "logistic_regression(C=0.5)"


def test_the_random_draw_is_seeded_and_keeps_grid_order() -> None:
    whole = _points(tuning.expand_search(GRID))
    picked = sorted(random.Random(3).sample(range(5), 2))  # the draw as specified
    drawn = tuning.expand_search(GRID, n_candidates=2, seed=3)
    assert [(kind, params) for _, kind, params in _points(drawn)] == [
        (whole[i][1], whole[i][2]) for i in picked
    ]
    assert [c.index for c in drawn] == [0, 1]  # renumbered
    assert _points(tuning.expand_search(GRID, n_candidates=2, seed=3)) == _points(drawn)
    assert _points(tuning.expand_search(GRID, n_candidates=9)) == whole  # more than the grid


@pytest.mark.parametrize(
    ("search", "n", "message"),
    [
        ({}, None, "The search is empty"),
        ({"xgboost": {}}, None, "Unknown estimator kind(s) in the search: xgboost"),
        ({"logistic_regression": {"Cee": [1]}}, None, "Unknown hyper-parameter(s)"),
        ({"logistic_regression": {"C": []}}, None, "No values to try for logistic_regression: C"),
        ({"logistic_regression": [1, 2]}, None, "must map hyper-parameter names"),
        (GRID, 0, "n_candidates must be at least 1, got 0"),
    ],
)
def test_a_bad_search_is_refused_before_training(search: dict, n: int | None, message: str) -> None:
    with pytest.raises(ConfigurationError) as err:
        tuning.expand_search(search, n_candidates=n)
    assert message in str(err.value)


def _result(index: int, status: str = "finished", **metrics: float) -> tuning.CandidateResult:
    return tuning.CandidateResult(index, "logistic_regression", {}, status, metrics=metrics)


def test_the_best_candidate_by_direction_ties_to_the_earlier() -> None:
    results = [
        _result(0, roc_auc=0.8, log_loss=0.40),
        _result(1, roc_auc=0.9, log_loss=0.50),
        _result(2, roc_auc=0.9, log_loss=0.30),
        _result(3, "failed"),
    ]
    assert tuning.best_candidate(results, "roc_auc").index == 1  # tie with 2: the earlier
    assert tuning.best_candidate(results, "log_loss").index == 2  # lower is better


def test_every_candidate_failed_is_an_error_naming_them() -> None:
    failed = [
        tuning.CandidateResult(0, "random_forest", {}, "failed", error="ValueError: bad depth")
    ]
    assert tuning.best_or_none(failed, "roc_auc") is None
    with pytest.raises(ConfigurationError, match="#0 random_forest: ValueError: bad depth"):
        tuning.best_candidate(failed, "roc_auc")


def test_costliest_fits_go_first() -> None:
    candidates = tuning.expand_search(
        {
            "logistic_regression": {},
            "gradient_boosting": {"n_estimators": [50, 400]},
            "hist_gradient_boosting": {},
        }
    )
    # gradient boosting: trees x depth(3): 150 and 1200; hist: 100 x 5 = 500; linear: 10.
    order = [(c.config.kind, c.config.params) for c in tuning.largest_first(candidates)]
    assert order == [
        ("gradient_boosting", {"n_estimators": 400}),
        ("hist_gradient_boosting", {}),
        ("gradient_boosting", {"n_estimators": 50}),
        ("logistic_regression", {}),
    ]


def test_the_validation_part_is_a_stratified_quarter_of_the_training_part() -> None:
    from modelops.data import DatasetSchema, FeatureSpec

    X = pd.DataFrame({"x": np.arange(80, dtype="float64")})
    y = np.array([0] * 60 + [1] * 20)
    schema = DatasetSchema(target="y", features={"x": FeatureSpec(kind="numeric")})
    data = tuning.search_data(schema, X, y, seed=0)
    assert len(data.X_val) == 20 and len(data.X_fit) == 60
    assert int(data.y_val.sum()) == 5  # a quarter of each class
    assert set(data.X_val["x"]).isdisjoint(data.X_fit["x"])


def test_scoring_a_candidate_reports_its_failure_instead_of_raising() -> None:
    from modelops.data import DatasetSchema, FeatureSpec

    X = pd.DataFrame({"x": np.linspace(0, 1, 40)})
    y = (X["x"] > 0.5).to_numpy(dtype="int64")
    schema = DatasetSchema(target="y", features={"x": FeatureSpec(kind="numeric")})
    data = tuning.search_data(schema, X, y, seed=0)
    (bad,) = tuning.expand_search({"logistic_regression": {"C": -1.0}})
    result = tuning.score_candidate(data, bad, seed=0)
    assert result.status == "failed" and result.error and "C" in result.error
    (good,) = tuning.expand_search({"logistic_regression": {"C": 1.0}})
    scored = tuning.score_candidate(data, good, seed=0)
    assert scored.status == "finished" and scored.metrics["roc_auc"] == pytest.approx(1.0)
