"""Values are checked against the model once, before either engine, the same way whichever
path parsed them: a numeric Batch (one array) or a conformed DataFrame."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from modelops.serving.model import Column
from modelops.serving.protocols import BadRequest, parse_invocation

NAMES = ["a", "b"]


def _model(fast: bool, missing_ok: frozenset[str] | None = frozenset({"b"})) -> Any:
    return SimpleNamespace(
        engine="onnx",
        numeric_fast_path=fast,
        columns=[Column(n, "double") for n in NAMES],
        missing_ok=missing_ok,
    )


def _parse(rows: list[list[Any]], fast: bool, **kw: Any) -> Any:
    body = orjson.dumps({"dataframe_split": {"columns": NAMES, "data": rows}})
    return parse_invocation(body, "application/json", _model(fast, **kw))[0]


@pytest.mark.parametrize("fast", [True, False], ids=["batch", "frame"])
@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([[1.0, 2.0], ["Infinity", 2.0]], "Column 'a', row 2: inf is not a number"),
        ([[1.0, 2.0], [1e39, 2.0], [-1e39, 2.0]], "Column 'a', row 2"),  # the sum would hide it
        ([[None, 2.0]], "Column 'a', row 1: a missing value"),
        ([[1.0, 2.0], [1.0, "-inf"]], "Column 'b', row 2: -inf"),
    ],
)
def test_a_value_no_engine_can_score_is_named(rows: list, message: str, fast: bool) -> None:
    with pytest.raises(BadRequest, match=message.replace("(", r"\(")):
        _parse(rows, fast)


@pytest.mark.parametrize("fast", [True, False], ids=["batch", "frame"])
def test_what_the_model_takes_passes(fast: bool) -> None:
    big = [[3e38, 3e38] for _ in range(4)]  # each fine, though their sum is not
    assert len(_parse(big, fast)) == 4
    gaps = _parse([[1.0, None]], fast)  # b is imputed
    assert math.isnan(float(gaps["b"][0]))
    unknown = _parse([[None, 1.0]], fast, missing_ok=None)  # not probed: the model decides
    assert math.isnan(float(unknown["a"][0]))
