"""Every column type, with and without missing values, under awkward names: each trains, is
served (one row and many) and batch-scores, through the real flows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

MODEL = "types matrix ü.v1"


def make_table(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """A table the tests build: each kind of feature, with and without nulls; the label
    depends on several of them so a model can learn something."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)

    def with_nulls(values: Any, frac: float = 0.1) -> pd.Series:
        series = pd.Series(values, dtype=object)
        series[rng.random(n) < frac] = None
        return series

    return pd.DataFrame(
        {
            "flag": rng.random(n) < 0.3 + 0.4 * y,
            "flag with nulls": with_nulls(rng.random(n) < 0.3 + 0.4 * y),
            "count": rng.integers(0, 10, n) + 3 * y,
            "count.nulls": with_nulls(rng.integers(0, 10, n)),
            "ratio": rng.random(n) + y * 0.5,
            "ratio nulls": with_nulls(rng.random(n)),
            "segment": np.where(y == 1, rng.choice(["a b", "c.d"], n), rng.choice(["c.d", "é"], n)),
            "segment nulls": with_nulls(rng.choice(["x", "y"], n)),
            "signup date": pd.date_range("2024-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
            "東京 größe": with_nulls(
                pd.date_range("2023-01-01", periods=n, freq="h").strftime("%Y-%m-%d %H:%M")
            ),
            "label": y,
        }
    )


@pytest.fixture(scope="module")
def trained(module_mlflow_store: str, prefect_harness: None, tmp_path_factory: Any) -> dict:
    from flows.training import training

    folder = tmp_path_factory.mktemp("types")
    table = make_table()
    table.to_csv(folder / "train.csv", index=False)
    result = training(
        data_path=str(folder / "train.csv"),
        target="label",
        model_name=MODEL,
        thresholds={"roc_auc": 0.6},
    )
    return {"result": result, "folder": folder, "table": table}


def test_every_type_trains_and_the_signature_keeps_missing_values_legal(trained: dict) -> None:
    from modelops.model_io import read_mlmodel
    from modelops.settings import get_settings
    from modelops.tracking import get_client

    s = get_settings()
    assert trained["result"].version == "1" and trained["result"].metrics["roc_auc"] > 0.6
    import tempfile

    def leftovers() -> set[Path]:
        return set(Path(tempfile.gettempdir()).glob("modelops-mlmodel-*"))

    before = leftovers()
    mlmodel, example = read_mlmodel(
        get_client(s.resolved_tracking_uri), MODEL, "1", with_example=True
    )
    assert leftovers() == before  # nothing left on disk
    assert set(example.columns) == set(make_table(5).columns) - {"label"}
    inputs = {c.name: c for c in mlmodel.signature.inputs.inputs}
    assert set(inputs) == set(make_table(5).columns) - {"label"}
    assert inputs["signup date"].type.name == "datetime" and inputs["signup date"].required
    assert not inputs["flag with nulls"].required and not inputs["segment nulls"].required


def test_every_type_batch_scores_from_parquet_with_nulls(trained: dict) -> None:
    from flows.batch_scoring import batch_scoring

    folder: Path = trained["folder"]
    fresh = make_table(50, seed=3).drop(columns="label")
    fresh.loc[0:4, ["flag with nulls", "count.nulls", "ratio nulls", "segment nulls"]] = None
    fresh.to_parquet(folder / "new.parquet", index=False)
    result = batch_scoring(
        input_uri=str(folder / "new.parquet"),
        output_uri=str(folder / "scored.parquet"),
        model_name=MODEL,
        version="1",
    )
    scored = pd.read_parquet(folder / "scored.parquet")
    assert result["rows"] == len(scored) == 50
    assert set(scored["prediction"]) <= {0, 1} and set(scored["model_version"]) == {"1"}


def test_every_type_is_served_one_row_and_many(trained: dict) -> None:
    from flows.deployment import deployment
    from modelops.cli import main as cli

    rows = make_table(20, seed=5).drop(columns="label")
    rows.loc[
        0, ["flag with nulls", "count.nulls", "ratio nulls", "segment nulls", "東京 größe"]
    ] = None
    split = json.loads(rows.to_json(orient="split", index=False, date_format="iso"))
    try:
        record = deployment(
            model_name=MODEL, version="1", target="local", workers=1, timeout_seconds=120
        )
        for payload, expected in (
            ({"dataframe_split": {"columns": split["columns"], "data": split["data"][:1]}}, 1),
            ({"dataframe_split": split}, 20),
            ({"dataframe_records": rows.head(3).to_dict(orient="records")}, 3),
        ):
            body = json.dumps(payload, default=str)
            answer = httpx.post(
                f"{record.url}/invocations",
                content=body,
                timeout=30,
                headers={"Content-Type": "application/json"},
            )
            assert answer.status_code == 200, answer.text[:500]
            assert len(answer.json()["predictions"]) == expected
    finally:
        cli(["stop", MODEL])
