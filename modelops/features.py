"""Feature transforms that run inside a fitted pipeline, so a logged model is self-contained.

Kept dependency-light (numpy and pandas only): a model that uses them loads wherever this
package is installed, without the rest of the project being imported.
"""

from __future__ import annotations

from typing import Any

EPOCH = "1970-01-01"
PARTS = ("days", "weekday", "month")  # what each date/time column becomes


def datetime_parts(X: Any) -> Any:
    """Each date/time column as days since 1970-01-01, day of week and month (NaN when missing).

    Accepts datetime values or text (``2024-05-01``, ``2024-05-01 13:45``); a value that is
    not a date becomes NaN here (inputs are checked before they reach a model). As numbers, a
    timestamp column costs three features, not one per distinct value as it would one-hot.
    """
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(X)
    columns = []
    for name in frame.columns:
        stamps = to_datetime(frame[name])
        days = (stamps - pd.Timestamp(EPOCH)) / pd.Timedelta(days=1)
        columns += [days, stamps.dt.dayofweek, stamps.dt.month]
    if not columns:
        return np.zeros((len(frame), 0))
    return np.column_stack([np.asarray(c, dtype="float64") for c in columns])


def to_datetime(values: Any) -> Any:
    """Dates and times from datetime values or text, NaT where there is none."""
    import pandas as pd

    series = pd.Series(values)
    if pd.api.types.is_datetime64_any_dtype(series):
        return series.dt.tz_localize(None) if series.dt.tz is not None else series
    return pd.to_datetime(series, errors="coerce", format="mixed")


def looks_like_datetime(values: Any, sample: int = 200) -> bool:
    """Whether a text column holds dates or times (every sampled value parses as ISO 8601)."""
    import pandas as pd

    series = pd.Series(values).dropna()
    if series.empty:
        return False
    head = series.head(sample).astype(str)
    if not head.str.contains(r"\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{4}", regex=True).all():
        return False
    return bool(pd.to_datetime(head, errors="coerce", format="mixed").notna().all())


def is_boolean_values(values: Any) -> bool:
    """Whether a column holds only True/False (and missing values)."""
    import pandas as pd

    series = pd.Series(values)
    if pd.api.types.is_bool_dtype(series):
        return True
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = pd.Series(series.cat.categories, dtype=object)
    elif series.dtype != object:  # numbers, dates, strings: a typed column is not True/False
        return False
    # One C pass over the values (a per-value ``map(type)`` took 0.13 s per 1M-row column).
    return pd.api.types.infer_dtype(series, skipna=True) == "boolean"
