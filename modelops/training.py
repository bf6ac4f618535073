"""Split, build and fit scikit-learn pipelines for a binary target."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from modelops.data import DatasetSchema
from modelops.errors import ConfigurationError
from modelops.types import Split

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

EstimatorKind = Literal[
    "logistic_regression", "random_forest", "gradient_boosting", "hist_gradient_boosting"
]
_DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "logistic_regression": {"max_iter": 1000},
    "random_forest": {"n_estimators": 200, "n_jobs": -1},
    "gradient_boosting": {},
    "hist_gradient_boosting": {},
}


class EstimatorConfig(BaseModel):
    """Which scikit-learn estimator to fit, and its hyper-parameters."""

    kind: EstimatorKind = Field(default="logistic_regression")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description='Hyper-parameters passed to the estimator, e.g. {"C": 0.5}.',
    )


def encode_target(series: pd.Series, positive_label: Any = None) -> tuple[Any, tuple[Any, Any]]:
    """Encode a binary target as 0/1.

    Args:
        series: the target column (exactly two distinct non-null values).
        positive_label: the value that means "positive"; by default 1/True, else the larger.

    Returns:
        The encoded int array and the (negative, positive) labels.

    Raises:
        ConfigurationError: the column is not binary, or ``positive_label`` is not one of its
            values.
    """
    values = sorted(series.dropna().unique().tolist(), key=lambda v: (str(type(v)), v))
    if len(values) != 2:
        raise ConfigurationError(
            f"The target {series.name!r} must have exactly two classes, found {len(values)}: "
            f"{values[:10]}"
        )
    if positive_label is None:
        positive = 1 if 1 in values else values[1]
    elif positive_label in values:
        positive = positive_label
    else:
        raise ConfigurationError(
            f"positive_label {positive_label!r} is not a value of {series.name!r} ({values})"
        )
    negative = values[0] if values[1] == positive else values[1]
    return (series == positive).to_numpy(dtype="int64"), (negative, positive)


def feature_frame(df: pd.DataFrame, schema: DatasetSchema) -> pd.DataFrame:
    """The declared feature columns, in the types the model is trained and served with.

    Numeric and boolean columns become float64 (booleans as 1.0/0.0), so the logged signature
    accepts missing values at inference time (an integer or bool schema would reject a NaN the
    pipeline's imputer handles); date/time columns become datetime64 (text is parsed).
    """
    from modelops.features import to_datetime

    X = df[list(schema.features)]
    changed = {}
    for name, spec in schema.features.items():
        column = X[name]
        if spec.kind in ("numeric", "boolean") and column.dtype != "float64":
            if spec.kind == "boolean" and column.dtype.kind not in "biuf":
                column = column.map(lambda v: float(v) if isinstance(v, bool | int) else v)
            changed[name] = column.astype("float64")
        elif spec.kind == "datetime" and column.dtype.kind != "M":
            changed[name] = to_datetime(column)
    return X.assign(**changed) if changed else X


def split_dataset(
    df: pd.DataFrame,
    schema: DatasetSchema,
    test_size: float = 0.2,
    seed: int = 42,
    positive_label: Any = None,
) -> Split:
    """Stratified train/test split of the declared features and the encoded target.

    Raises:
        ConfigurationError: ``test_size`` is out of range, or a class is too rare to stratify.
    """
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_size < 1.0:
        raise ConfigurationError(f"test_size must be between 0 and 1 (exclusive), got {test_size}")
    import numpy as np

    y, labels = encode_target(df[schema.target], positive_label)
    X = feature_frame(df, schema)
    # The row positions ride along so the held-out part can be named later (the promotion's
    # comparison scores the challenger on exactly these rows); an extra array does not change
    # which rows train_test_split picks.
    positions = np.arange(len(df))
    try:
        X_train, X_test, y_train, y_test, _, test_rows = train_test_split(
            X, y, positions, test_size=test_size, random_state=seed, stratify=y
        )
    except ValueError as exc:
        raise ConfigurationError(
            f"Cannot make a stratified split with test_size={test_size}: {exc}. Use more data "
            f"or a different test_size so each class has at least one row in each part."
        ) from exc
    return Split(X_train, X_test, y_train, y_test, labels, test_rows=np.sort(test_rows))


def _make_estimator(config: EstimatorConfig, seed: int) -> Any:
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LogisticRegression

    classes = {
        "logistic_regression": LogisticRegression,
        "random_forest": RandomForestClassifier,
        "gradient_boosting": GradientBoostingClassifier,
        "hist_gradient_boosting": HistGradientBoostingClassifier,
    }
    cls = classes[config.kind]
    params = {**_DEFAULT_PARAMS[config.kind], "random_state": seed, **config.params}
    try:
        return cls(**params)
    except TypeError as exc:
        valid = sorted(cls().get_params())
        raise ConfigurationError(
            f"Invalid hyper-parameter for {config.kind}: {exc}. Valid names: {', '.join(valid)}"
        ) from exc


def build_pipeline(schema: DatasetSchema, config: EstimatorConfig, seed: int = 42) -> Pipeline:
    """Preprocessing by declared feature kind, then the estimator.

    Numeric features are scaled (and median-imputed, with a missing-value indicator, when
    declared nullable); booleans (1.0/0.0) are imputed with the most frequent value; dates and
    times become days since 1970, weekday and month (see :mod:`modelops.features`), then are
    treated like nullable numbers; categorical ones are imputed and one-hot encoded, with at
    most 32 columns per feature (rare and unseen categories share one), so a column of ids
    cannot blow the model up.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    from modelops.features import datetime_parts

    def kind(k: str, nullable: bool | None = None) -> list[str]:
        return [
            n
            for n, s in schema.features.items()
            if s.kind == k and (nullable is None or s.nullable == nullable)
        ]

    dense, sparse = kind("numeric", nullable=False), kind("numeric", nullable=True)
    flags, dates, other = kind("boolean"), kind("datetime"), kind("categorical")
    parts: list[tuple[str, Any, list[str]]] = []
    if dense:
        parts.append(("numeric", StandardScaler(), dense))
    if sparse:
        parts.append(
            (
                "numeric_nullable",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True), StandardScaler()
                ),
                sparse,
            )
        )
    if flags:
        parts.append(("boolean", SimpleImputer(strategy="most_frequent"), flags))
    if dates:
        parts.append(
            (
                "datetime",
                make_pipeline(
                    FunctionTransformer(datetime_parts),
                    SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                    StandardScaler(),
                ),
                dates,
            )
        )
    if other:
        parts.append(
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(
                        handle_unknown="infrequent_if_exist", max_categories=32, sparse_output=False
                    ),
                ),
                other,
            )
        )
    pre = ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("preprocess", pre), ("model", _make_estimator(config, seed))])


def fit_pipeline(pipeline: Pipeline, split: Split) -> Pipeline:
    """Fit ``pipeline`` on the training part.

    Raises:
        ConfigurationError: the estimator rejected its hyper-parameters or the data.
    """
    try:
        return pipeline.fit(split.X_train, split.y_train)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"Training failed: {type(exc).__name__}: {exc}") from exc
