"""Inputs follow the model's signature column by column, and bad values are named, not dumped."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from mlflow.types import ColSpec, DataType, Schema

from modelops.errors import ConfigurationError
from modelops.serving.scoring import conform


def _schema(**columns: DataType) -> Schema:
    return Schema([ColSpec(t, n) for n, t in columns.items()])


def test_each_column_takes_its_signature_type() -> None:
    frame = pd.DataFrame(
        {
            "is_partner": [True, False, True],  # a boolean signature keeps booleans (the defect:
            "flag": [True, False, None],  #      they used to be cast to float64 and refused)
            "amount": [1, 2, 3],
            "score": ["0.5", 1, True],
            "when": ["2024-05-01", "2024-05-02 10:00", None],
            "region": ["emea", None, "amer"],
            "extra": [1, 2, 3],
        }
    )
    schema = _schema(
        is_partner=DataType.boolean,
        flag=DataType.double,
        amount=DataType.long,
        score=DataType.double,
        when=DataType.datetime,
        region=DataType.string,
    )
    out = conform(frame, schema)
    assert list(out.columns) == ["is_partner", "flag", "amount", "score", "when", "region"]
    assert out["is_partner"].dtype == bool
    assert out["flag"].tolist()[:2] == [1.0, 0.0] and np.isnan(out["flag"].iloc[2])
    assert out["amount"].dtype == "int64" and out["score"].tolist() == [0.5, 1.0, 1.0]
    assert out["when"].dtype.kind == "M" and pd.isna(out["when"].iloc[2])
    assert out["region"].tolist()[::2] == ["emea", "amer"] and pd.isna(out["region"].iloc[1])


def test_text_booleans_are_understood() -> None:
    out = conform(pd.DataFrame({"ok": ["true", "False", "1"]}), _schema(ok=DataType.boolean))
    assert out["ok"].tolist() == [True, False, True]


@pytest.mark.parametrize(
    ("column", "kind", "message"),
    [
        (["1", "two", "3"], DataType.double, "column 'x': expected numbers, got 'two'"),
        ([1, None, 3], DataType.long, "column 'x': has missing values"),
        ([1.5, 2, 3], DataType.long, "column 'x': expected whole numbers, got 1.5"),
        (["2024-01-01", "soon"], DataType.datetime, "column 'x': expected dates or times"),
        (["yes", "maybe"], DataType.boolean, "column 'x': expected true/false, got 'maybe'"),
    ],
)
def test_bad_values_are_named_without_dumping_the_table(
    column: list, kind: DataType, message: str
) -> None:
    frame = pd.DataFrame({"x": column, "other": range(len(column))})
    frame = pd.concat([frame] * 500, ignore_index=True)  # a big table must not be echoed
    with pytest.raises(ConfigurationError) as info:
        conform(frame, _schema(x=kind))
    assert message in str(info.value)
    assert len(str(info.value)) < 300


def test_a_missing_column_is_named() -> None:
    with pytest.raises(ConfigurationError, match=r"Missing input column\(s\) \['b'\]"):
        conform(pd.DataFrame({"a": [1.0]}), _schema(a=DataType.double, b=DataType.double))


# The server's fast path for all-numeric models parses plain numbers into arrays, skipping the
# DataFrame; whatever it takes must come out as the general path makes it, and whatever it
# does not take must reach the general path (which converts it or names what is wrong).
NUMERIC = ["a", "b"]


def _numeric_model(fast: bool) -> object:
    from types import SimpleNamespace

    from modelops.serving.model import Column

    return SimpleNamespace(
        engine="onnx", numeric_fast_path=fast, columns=[Column(n, "double") for n in NUMERIC]
    )


@pytest.mark.parametrize(
    "payload",
    [
        {"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2.5], [None, "3"], [True, 0]]}},
        {"dataframe_split": {"columns": ["b", "a"], "data": [[2.5, 1], [3, None], [0, True]]}},
        {"dataframe_records": [{"a": 1, "b": 2.5}, {"a": None, "b": "3"}, {"b": 0, "a": True}]},
        {"instances": [{"a": 1, "b": 2.5}, {"a": None, "b": 3}, {"a": 1, "b": 0}]},
        {"inputs": {"a": [1, None, 1], "b": [2.5, 3, 0]}},
        {"dataframe_split": {"columns": ["a", "b"], "data": [["true", 2.5], [None, 3], [1, 0]]}},
    ],
    ids=["split", "reordered", "records", "instances", "columns", "text-boolean"],
)
def test_the_numeric_fast_path_reads_what_the_general_path_reads(payload: dict) -> None:
    import orjson

    from modelops.serving.protocols import parse_invocation

    body = orjson.dumps(payload)
    fast, _ = parse_invocation(body, "application/json", _numeric_model(True))
    general, _ = parse_invocation(body, "application/json", _numeric_model(False))
    assert isinstance(general, pd.DataFrame) and len(fast) == len(general) == 3
    for name in NUMERIC:
        np.testing.assert_array_equal(np.asarray(fast[name]), general[name].to_numpy())


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            {"dataframe_split": {"columns": ["a", "a", "b"], "data": [[1, 1, 2]]}},
            "['a'] appear more than once",
        ),
        ({"dataframe_split": {"columns": ["a"], "data": [[1]]}}, "Missing input column(s) ['b']"),
        ({"dataframe_records": [{"a": 1, "c": 2}]}, "Missing input column(s) ['b']"),
        ({"dataframe_split": {"columns": ["a", "b"], "data": [[1, "x"]]}}, "column 'b'"),
        ({"dataframe_split": {"columns": ["a", "b"], "data": [[1, [2]]]}}, "column 'b'"),
        ({"dataframe_split": {"columns": ["a", "b"], "data": []}}, "Empty batch"),
    ],
)
def test_what_the_fast_path_refuses_gets_the_general_paths_message(
    payload: dict, message: str
) -> None:
    import orjson

    from modelops.serving.protocols import BadRequest, parse_invocation

    with pytest.raises(BadRequest, match=re.escape(message)):
        parse_invocation(orjson.dumps(payload), "application/json", _numeric_model(True))
