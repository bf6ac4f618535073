"""Splitting, target encoding and pipelines."""

from __future__ import annotations

import pandas as pd
import pytest

from modelops.data import FeatureSpec, resolve_schema
from modelops.errors import ConfigurationError
from modelops.sample import make_leads
from modelops.training import (
    EstimatorConfig,
    build_pipeline,
    encode_target,
    fit_pipeline,
    split_dataset,
)


def test_split_is_stratified_and_features_are_float() -> None:
    df = make_leads(1000)
    schema = resolve_schema(df, "won", "x.csv")
    split = split_dataset(df, schema, test_size=0.25, seed=1)
    assert split.sizes == {"train_rows": 750, "test_rows": 250}
    assert abs(split.y_train.mean() - split.y_test.mean()) < 0.01
    assert all(str(t) == "float64" for t in split.X_train.dtypes)  # ints widened for signatures
    assert split.labels == (0, 1)


def test_target_labels_are_encoded_with_a_sensible_positive_class() -> None:
    y, labels = encode_target(pd.Series(["no", "yes", "no"], name="t"))
    assert labels == ("no", "yes") and list(y) == [0, 1, 0]
    y, labels = encode_target(pd.Series([True, False], name="t"))
    assert labels == (False, True) and list(y) == [1, 0]
    y, labels = encode_target(pd.Series(["won", "lost"], name="t"), positive_label="won")
    assert labels == ("lost", "won") and list(y) == [1, 0]
    with pytest.raises(ConfigurationError, match="exactly two classes, found 3"):
        encode_target(pd.Series([1, 2, 3], name="t"))
    with pytest.raises(ConfigurationError, match="positive_label 'maybe' is not a value"):
        encode_target(pd.Series(["a", "b"], name="t"), positive_label="maybe")


def test_pipeline_handles_missing_values_and_categories_it_never_saw() -> None:
    df = make_leads(600)
    df["region"] = ["emea", "amer", "apac"] * 200
    features = {c: FeatureSpec(nullable=True) for c in df.columns if c not in ("won", "region")}
    features["region"] = FeatureSpec(kind="categorical")
    schema = resolve_schema(df, "won", "x.csv", features=features)
    split = split_dataset(df, schema)
    model = fit_pipeline(build_pipeline(schema, EstimatorConfig()), split)
    unseen = split.X_test.head(2).copy()
    unseen["region"] = "mars"
    unseen["completeness"] = float("nan")
    assert model.predict_proba(unseen).shape == (2, 2)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (EstimatorConfig(params={"Cee": 1}), "Invalid hyper-parameter for logistic_regression"),
        (EstimatorConfig(params={"C": -1.0}), "Training failed: InvalidParameterError"),
    ],
)
def test_bad_hyper_parameters_say_what_is_wrong(config: EstimatorConfig, message: str) -> None:
    df = make_leads(200)
    schema = resolve_schema(df, "won", "x.csv")
    with pytest.raises(ConfigurationError, match=message):
        fit_pipeline(build_pipeline(schema, config), split_dataset(df, schema))


def test_bad_test_size_and_too_rare_a_class() -> None:
    df = make_leads(200)
    schema = resolve_schema(df, "won", "x.csv")
    with pytest.raises(ConfigurationError, match="test_size must be between 0 and 1"):
        split_dataset(df, schema, test_size=1.5)
    df.loc[:, "won"] = 0
    df.loc[0, "won"] = 1
    with pytest.raises(ConfigurationError, match="Cannot make a stratified split"):
        split_dataset(df, schema)


def test_search_candidates_go_to_workers_costliest_first() -> None:
    """Longest-first: on 2 workers the bench's grid then ends without one big fit running
    alone (greedy list scheduling with the fits' relative costs: 800 vs 920 units)."""
    import heapq

    from modelops.tuning import _relative_cost, expand_search, largest_first

    grid = expand_search(
        {
            "gradient_boosting": {
                "n_estimators": [60, 100],
                "max_depth": [2, 3],
                "learning_rate": [0.05, 0.1],
            },
            "logistic_regression": {"C": [1.0]},
        }
    )
    ordered = largest_first(grid)
    assert sorted(c.index for c in ordered) == [c.index for c in grid]  # the same candidates
    assert ordered[0].config.params == {"n_estimators": 100, "max_depth": 3, "learning_rate": 0.05}
    assert ordered[-1].config.kind == "logistic_regression"

    def makespan(order: list, workers: int = 2) -> float:
        free = [0.0] * workers
        for c in order:
            heapq.heapreplace(free, free[0] + _relative_cost(c.config))
        return max(free)

    assert makespan(ordered) < makespan(grid)
