"""The `local` target for real: `modelops serve` on loopback answers real HTTP predictions,
naming the version that answered."""

from __future__ import annotations

from typing import Any

import httpx
import pandas as pd
import pytest

from flows.deployment import deployment
from modelops.cli import main as cli
from modelops.data import SAMPLE_DATA
from modelops.serving.local import running_server
from modelops.settings import get_settings

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def test_local_target_serves_predictions_and_can_be_stopped(
    make_version: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from modelops.api import promote_model

    make_version()
    promote_model("lead-scoring", 1, "Production")
    try:
        record = deployment(target="local", workers=1, timeout_seconds=120)
        assert record.target == "local" and record.version == "1"
        rows = pd.read_csv(SAMPLE_DATA, nrows=5).drop(columns="won").astype("float64")
        payload = {"dataframe_split": rows.to_dict(orient="split") | {"index": None}}
        payload["dataframe_split"].pop("index")
        answer = httpx.post(f"{record.url}/invocations", json=payload, timeout=30).json()
        assert len(answer["predictions"]) == 5 and set(answer["predictions"]) <= {0, 1}
        assert answer["model_version"] == "1" and answer["mlflow_run_id"]
        assert httpx.get(f"{record.url}/health", timeout=5).status_code == 200

        # Redeploying another version swaps servers only after the new one answered.
        make_version()
        again = deployment(version="2", target="local", workers=1, timeout_seconds=120)
        assert again.previous_version == "1" and again.url != record.url
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{record.url}/health", timeout=2)
    finally:
        assert cli(["stop", "lead-scoring"]) == 0
    assert "stopped lead-scoring v2" in capsys.readouterr().out
    assert running_server(get_settings().home_dir, "lead-scoring") is None


def test_local_batch_scoring_traces_every_row_to_its_version(make_version: Any, tmp_path) -> None:
    from flows.batch_scoring import batch_scoring
    from modelops.api import promote_model

    make_version()
    promote_model("lead-scoring", 1, "Production")
    out = tmp_path / "scored.parquet"
    result = batch_scoring(input_uri=str(SAMPLE_DATA), output_uri=str(out))
    scored = pd.read_parquet(out)
    assert result["rows"] == len(scored) == 5000
    assert set(scored["prediction"]) <= {0, 1}
    assert set(scored["model_version"]) == {"1"} and scored["mlflow_run_id"].notna().all()
