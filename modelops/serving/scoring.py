"""Scoring requests: the smoke request built from a version's input example, checking an
answer, and scoring a whole file in this process (batch scoring)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from modelops.errors import ConfigurationError, DeploymentFailed

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

    from modelops.serving.model import Column
    from modelops.types import ServingTarget


def example_and_flavors(
    client: MlflowClient, name: str, version: str
) -> tuple[dict, int, list[str]]:
    """The scoring request built from the input example, its rows, and the model's flavours.

    Raises:
        ConfigurationError: the version was logged without an input example.
    """
    from modelops.model_io import read_mlmodel

    model, example = read_mlmodel(client, name, version, with_example=True)
    if example is None:
        raise ConfigurationError(
            f"Version {version} of {name!r} has no input example, so it cannot be smoke-tested. "
            f"Log models with input_example=... (the training flows do)."
        )
    flavors = sorted(model.flavors)
    if hasattr(example, "to_json"):
        # to_json writes missing values as null; json.dumps would write NaN, which is not JSON
        # and which a strict scoring server (or the API server's proxy) rejects.
        split = json.loads(example.to_json(orient="split", index=False, date_format="iso"))
        return {"dataframe_split": split}, len(example), flavors
    return {"inputs": list(example)}, len(example), flavors


def first_row(payload: dict[str, Any]) -> dict[str, Any]:
    """A scoring request cut to its first row: a compact example to show people."""
    if "dataframe_split" in payload:
        split = payload["dataframe_split"]
        return {"dataframe_split": {"columns": split["columns"], "data": split["data"][:1]}}
    if "inputs" in payload and isinstance(payload["inputs"], list):
        return {"inputs": payload["inputs"][:1]}
    return payload


def check_predictions(answer: Any, rows: int) -> list[Any]:
    """The predictions in a scoring-server answer, if there is exactly one per input row.

    Raises:
        DeploymentFailed: the answer has another shape.
    """
    predictions = answer.get("predictions") if isinstance(answer, dict) else None
    if not isinstance(predictions, list) or len(predictions) != rows:
        got = len(predictions) if isinstance(predictions, list) else type(predictions).__name__
        raise DeploymentFailed(
            f"Smoke test: expected {rows} prediction(s), got {got}: {str(answer)[:300]}"
        )
    return predictions


def score_http(url: str, payload: dict[str, Any], rows: int, timeout: float = 30) -> list[Any]:
    """POST a scoring request to ``url/invocations`` and check there is one prediction per row.

    Raises:
        DeploymentFailed: the request failed or the answer has the wrong shape.
    """
    import httpx

    try:
        response = httpx.post(f"{url}/invocations", json=payload, timeout=timeout)
    except httpx.HTTPError as exc:
        raise DeploymentFailed(f"Smoke test request to {url} failed: {exc}") from exc
    if response.status_code != 200:
        raise DeploymentFailed(
            f"Smoke test got HTTP {response.status_code} from {url}: {response.text[:500]}"
        )
    return check_predictions(response.json(), rows)


def conform(frame: pd.DataFrame, schema: Any) -> pd.DataFrame:
    """:func:`conform_columns` for an MLflow ``ModelSignature`` or input ``Schema``."""
    from modelops.serving.model import Column

    inputs = getattr(schema, "inputs", schema)
    specs = getattr(inputs, "inputs", inputs)
    columns = [
        Column(s.name, getattr(s.type, "name", str(s.type)), getattr(s, "required", True))
        for s in specs
    ]
    return conform_columns(frame, columns)


def conform_columns(
    frame: pd.DataFrame, columns: list[Column], refuse_extra: bool = False
) -> pd.DataFrame:
    """The columns a model's input signature names, in its order, converted to its types.

    Conversion follows the signature column by column: numbers and booleans (``True`` → 1.0)
    into double columns, whole numbers into integer columns, ``true``/``false`` into boolean
    ones, ISO 8601 text into datetime ones; missing values stay missing where the type can
    hold them. Extra columns are dropped, or refused with ``refuse_extra`` (a request naming a
    column the model does not know is usually a typo, and a silent drop would hide it).

    Raises:
        ConfigurationError: a column is missing (or extra), or holds values its type cannot
            take; the message names the column and shows a few values, never the whole table.
    """
    import pandas as pd

    expected = [c.name for c in columns]
    if frame.columns.has_duplicates:
        twice = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise ConfigurationError(f"Column(s) {twice} appear more than once; name each column once.")
    missing = [c.name for c in columns if c.name not in frame.columns and c.required]
    extra = [str(c) for c in frame.columns if c not in set(expected)] if refuse_extra else []
    if missing or extra:
        parts = ([f"missing input column(s) {missing}"] if missing else []) + (
            [f"unexpected column(s) {extra}"] if extra else []
        )
        message = "; ".join(parts)
        raise ConfigurationError(
            f"{message[0].upper()}{message[1:]}; the model expects {expected}."
        )
    converted, problems = {}, []
    for column in columns:
        if column.name not in frame.columns:
            converted[column.name] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
            continue
        try:
            converted[column.name] = _convert(frame[column.name], column.type)
        except (ValueError, TypeError) as exc:
            problems.append(f"column {column.name!r}: {exc}")
    if problems:
        raise ConfigurationError(
            "Input does not match the model's signature: " + "; ".join(problems)
        )
    return pd.DataFrame(converted, index=frame.index)


_TRUE, _FALSE = {"true", "1", "yes", "t", "y"}, {"false", "0", "no", "f", "n"}


def _bool_like(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"expected true/false, got {value!r}")


def _number_like(value: Any) -> Any:
    """A number, or what JSON and CSV make of one (True, "0.5", "false"), else unchanged."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return float(value.strip().lower() == "true")
    return value


def _sample(series: pd.Series, bad: pd.Series) -> str:
    values = series[bad].head(3).tolist()
    return ", ".join(repr(v) for v in values)


def _convert(series: pd.Series, kind: str) -> pd.Series:
    """One column in the signature's type (``double``, ``long``, ``boolean``, ``datetime``,
    ``string``, ...); ValueError says what is wrong with which values."""
    import pandas as pd

    from modelops.features import to_datetime

    if kind in ("double", "float"):
        if series.dtype.kind in "biuf":
            return series.astype("float64")
        numbers = pd.to_numeric(series.map(_number_like), errors="coerce")
        bad = numbers.isna() & series.notna()
        if bad.any():
            raise ValueError(f"expected numbers, got {_sample(series, bad)}")
        return numbers.astype("float64")
    if kind in ("integer", "long"):
        numbers = pd.to_numeric(series, errors="coerce")
        bad = (numbers.isna() & series.notna()) | (numbers.notna() & (numbers % 1 != 0))
        if bad.any():
            raise ValueError(f"expected whole numbers, got {_sample(series, bad)}")
        if numbers.isna().any():
            raise ValueError("has missing values, which an integer column cannot hold")
        return numbers.astype("int64" if kind == "long" else "int32")
    if kind == "boolean":
        if series.dtype.kind == "b":
            return series
        flags = series.map(_bool_like)
        return flags.astype("bool") if flags.notna().all() else flags
    if kind == "datetime":
        stamps = to_datetime(series)
        bad = stamps.isna() & series.notna()
        if bad.any():
            raise ValueError(
                f"expected dates or times (e.g. 2024-05-01), got {_sample(series, bad)}"
            )
        return stamps
    if kind == "string":
        if series.dtype.kind in "OUS" or str(series.dtype) in ("str", "string"):
            return series
        return series.map(lambda v: v if v is None or v != v else str(v))
    return series


def score_file(
    client: MlflowClient, target: ServingTarget, input_uri: str, output_uri: str
) -> dict[str, Any]:
    """Score a CSV/Parquet file in this process; every output row names its model version and
    MLflow run, so a prediction can be traced back to how it was made.

    Raises:
        ConfigurationError: the file lacks input columns the model's signature needs.
    """
    from modelops.data import load_table, write_table
    from modelops.model_io import load_pyfunc

    frame = load_table(input_uri)
    started = time.monotonic()
    model = load_pyfunc(client, target.name, target.version)
    signature = model.metadata.signature
    try:
        features = conform(frame, signature) if signature is not None else frame
    except ConfigurationError as exc:
        raise ConfigurationError(f"{input_uri!r}: {exc}") from None
    out = frame.copy()
    out["prediction"] = list(model.predict(features))
    out["model_version"] = target.version
    out["mlflow_run_id"] = target.run_id
    seconds = time.monotonic() - started
    write_table(out, output_uri)
    return {
        "target": "local",
        "rows": len(out),
        "output": output_uri,
        "version": target.version,
        "seconds": round(seconds, 3),
    }
