"""Loading tables, resolving schemas, the sample generator and the validation suite."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from modelops.data import (
    SAMPLE_DATA,
    FeatureSpec,
    infer_schema,
    load_table,
    resolve_data_uri,
    resolve_schema,
)
from modelops.errors import ConfigurationError, DataLoadError, DataValidationError
from modelops.sample import LEAD_FEATURES, make_leads, write_leads
from modelops.validation import validate_dataframe


def test_bundled_sample_is_exactly_what_the_generator_makes(tmp_path: Path) -> None:
    written = write_leads(tmp_path / "leads.csv", n_rows=5000, seed=7)
    assert written.read_bytes() == SAMPLE_DATA.read_bytes()
    assert (tmp_path / "leads.schema.json").read_text() == (
        SAMPLE_DATA.parent / "leads.schema.json"
    ).read_text()


def test_sample_is_deterministic_and_realistically_hard() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    a, b = make_leads(20_000, seed=3), make_leads(20_000, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(make_leads(20_000, seed=4))
    assert list(a.columns) == [*LEAD_FEATURES, "won"]
    assert 0.3 < a["won"].mean() < 0.6
    assert 0.03 < a["phone_confidence"].isna().mean() < 0.15
    X = a.drop(columns="won").fillna(0)
    X_tr, X_te, y_tr, y_te = train_test_split(X, a["won"], test_size=0.3, random_state=0)
    auc = roc_auc_score(
        y_te, LogisticRegression(max_iter=1000).fit(X_tr, y_tr).predict_proba(X_te)[:, 1]
    )
    assert 0.75 < auc < 0.85


def test_csv_and_parquet_load_the_same_table(tmp_path: Path) -> None:
    df = make_leads(300)
    df.to_parquet(tmp_path / "x.parquet", index=False)
    df.to_csv(tmp_path / "x.csv.gz", index=False)
    from_parquet = load_table(str(tmp_path / "x.parquet"))
    from_csv = load_table((tmp_path / "x.csv.gz").as_uri())
    pd.testing.assert_frame_equal(from_parquet, df)
    pd.testing.assert_frame_equal(from_csv, df, check_dtype=False)


def test_default_data_is_the_bundled_sample() -> None:
    assert resolve_data_uri(None) == str(SAMPLE_DATA)
    assert resolve_data_uri("  ") == str(SAMPLE_DATA)
    assert resolve_data_uri("s3://bucket/x.csv") == "s3://bucket/x.csv"


def test_directory_is_not_a_data_file(tmp_path: Path) -> None:
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(DataLoadError, match="is a directory"):
        load_table(str(tmp_path / "d.csv"))


def test_schema_resolution_order(tmp_path: Path) -> None:
    df = make_leads(100)
    declared = {"completeness": FeatureSpec(kind="numeric", min=0, max=1)}
    assert list(resolve_schema(df, "won", "x.csv", features=declared).features) == ["completeness"]
    sidecar = resolve_schema(df, "won", str(SAMPLE_DATA))
    assert sidecar.features["phone_confidence"].nullable
    assert not sidecar.features["completeness"].nullable
    inferred = resolve_schema(df, "won", str(tmp_path / "other.csv"))
    assert set(inferred.features) == set(LEAD_FEATURES)
    assert all(f.nullable for f in inferred.features.values())
    with pytest.raises(ConfigurationError, match="also declared as a feature"):
        resolve_schema(df, "won", "x.csv", features={"won": FeatureSpec()})
    with pytest.raises(ConfigurationError, match=r"min .* is greater than max"):
        resolve_schema(df, "won", "x.csv", features={"a": {"min": 2, "max": 1}})  # type: ignore[dict-item]


def test_validation_report_lists_every_failure_with_what_to_fix() -> None:
    df = make_leads(500)
    df["email_confidence"] = df["email_confidence"].astype(str)
    df.loc[:4, "completeness"] = -1.0
    df["phone_confidence"] = None
    schema = resolve_schema(df, "won", str(SAMPLE_DATA))
    with pytest.raises(DataValidationError) as info:
        validate_dataframe(df, schema, name="leads")
    failures = info.value.failures
    assert (
        "column 'completeness': 5 value(s) outside [0.0, 1.0], e.g. [-1.0, -1.0, -1.0, -1.0, -1.0]"
        in failures
    )
    assert any(f.startswith("column 'email_confidence': values must be numeric") for f in failures)
    assert "column 'phone_confidence': every value is missing" in failures
    report = info.value.report
    assert report["success"] is False
    assert report["results"][0]["success"] is False  # failures first
    assert str(len(failures)) + " of " in str(info.value)


def test_valid_sample_passes_with_categorical_and_boolean_features() -> None:
    df = make_leads(400)
    df["region"] = ["emea", "amer"] * 200
    df["is_partner"] = [True, False, False, True] * 100
    features = {
        **{k: FeatureSpec(**v) for k, v in LEAD_FEATURES.items()},
        "region": FeatureSpec(kind="categorical", values=["emea", "amer", "apac"]),
        "is_partner": FeatureSpec(kind="boolean"),
    }
    schema = resolve_schema(df, "won", "x.csv", features=features)
    report = validate_dataframe(df, schema)
    assert report["success"] and report["statistics"]["unsuccessful_expectations"] == 0


def test_bundled_text_sample_is_exactly_what_its_generator_makes(tmp_path: Path) -> None:
    from modelops.text.sample import LABELS, write_emotions

    written = write_emotions(tmp_path / "emotions.csv")
    assert written.read_bytes() == (SAMPLE_DATA.parent / "emotions.csv").read_bytes()
    counts = pd.read_csv(written)["label"].value_counts()
    assert sorted(counts.index) == sorted(LABELS) and set(counts) == {60}


def test_inferred_kinds_for_every_column_type() -> None:
    """True/False columns are boolean however pandas holds them (bool, object with missing
    values, numpy booleans, a categorical of True/False); numbers, 0/1, text and dates are not."""
    import numpy as np

    n = 60
    df = pd.DataFrame(
        {
            "won": [0, 1] * (n // 2),
            "flag": [True, False] * (n // 2),
            "flag_missing": pd.Series([True, None, False] * (n // 3), dtype=object),
            "flag_numpy": pd.Series([np.True_, np.False_] * (n // 2), dtype=object),
            "flag_category": pd.Series([True, False] * (n // 2)).astype("category"),
            "nullable_bool": pd.Series([True, None] * (n // 2), dtype="boolean"),
            "zero_one": [0, 1] * (n // 2),
            "amount": np.linspace(0, 1, n),
            "mixed": pd.Series([True, 1] * (n // 2), dtype=object),
            "text": ["a", "b"] * (n // 2),
            "when": [f"2026-01-0{i % 9 + 1}" for i in range(n)],
            "all_missing": pd.Series([None] * n, dtype=object),
        }
    )
    kinds = {k: v.kind for k, v in infer_schema(df, "won").features.items()}
    assert kinds == {
        "flag": "boolean",
        "flag_missing": "boolean",
        "flag_numpy": "boolean",
        "flag_category": "boolean",
        "nullable_bool": "boolean",
        "zero_one": "numeric",
        "amount": "numeric",
        "mixed": "categorical",
        "text": "categorical",
        "when": "datetime",
        "all_missing": "categorical",
    }
