"""`reproduce`: a version rebuilt from its recorded inputs comes out the same (every estimator
kind exactly, a fine-tuned text model within the stated tolerance); changed data is refused,
naming both digests; only --register registers the rebuild."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from support_text import build_tiny_bert

from flows.reproduce import reproduce
from flows.training import training
from modelops.cli import main as cli
from modelops.errors import DataValidationError
from modelops.settings import get_settings
from modelops.steps.reproduce import TEXT_TOLERANCE
from modelops.text.sample import SAMPLE_TEXTS
from modelops.tracking import get_client

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def _client() -> Any:
    s = get_settings()
    return get_client(s.resolved_tracking_uri, s.resolved_registry_uri)


def _versions(name: str) -> list[str]:
    return sorted(str(v.version) for v in _client().search_model_versions(f"name = '{name}'"))


@pytest.mark.parametrize(
    "kind", ["logistic_regression", "random_forest", "gradient_boosting", "hist_gradient_boosting"]
)
def test_every_estimator_kind_reproduces_its_metrics_exactly(
    mlflow_store: str, sample_csv: Path, kind: str
) -> None:
    trained = training(data_path=str(sample_csv), estimator={"kind": kind})
    result = reproduce(model_name="lead-scoring", version=trained.version)
    assert result.verdict == "identical", result
    assert result.max_prediction_difference == 0.0
    assert result.held_out_rows == 1000
    shown = {r["metric"]: r for r in result.metrics}
    assert {"roc_auc", "precision", "recall", "f1", "accuracy", "log_loss"} <= set(shown)
    assert all(r["recorded"] == r["rebuilt"] == trained.metrics[m] for m, r in shown.items())
    assert _versions("lead-scoring") == ["1"]  # without --register nothing is registered


def test_register_makes_the_rebuild_a_version_that_says_what_it_reproduces(
    mlflow_store: str, sample_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    training(data_path=str(sample_csv))
    assert cli(["reproduce", "lead-scoring", "1", "--register"]) == 0
    out = capsys.readouterr().out
    assert "verdict: identical (tolerance 1e-09)" in out
    assert "roc_auc" in out and "largest prediction difference on the 1000 held-out rows" in out
    assert "registered as version 2 (tagged modelops.reproduces=1)" in out
    assert _versions("lead-scoring") == ["1", "2"]
    assert _client().get_model_version("lead-scoring", "2").tags["modelops.reproduces"] == "1"


def test_changed_data_is_refused_with_both_digests(
    mlflow_store: str, sample_csv: Path, tmp_path: Path
) -> None:
    data = tmp_path / "leads.csv"
    frame = pd.read_csv(sample_csv)
    frame.to_csv(data, index=False)
    training(data_path=str(data))
    frame.loc[len(frame) - 1, frame.columns[0]] += 1.0
    frame.to_csv(data, index=False)

    state = reproduce(model_name="lead-scoring", version="1", return_state=True)
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, DataValidationError)
    message = str(error)
    assert f"The data at {data}" in message and "its content digest is" in message
    digests = [w.strip(",.:") for w in message.split() if len(w.strip(",.:")) == 16]
    assert len(digests) == 2 and digests[0] != digests[1], message
    assert _versions("lead-scoring") == ["1"]

    missing = reproduce(
        model_name="lead-scoring",
        version="1",
        data_path=str(tmp_path / "gone.csv"),
        return_state=True,
    )
    assert missing.is_failed()
    assert f"looked at {tmp_path / 'gone.csv'}" in str(missing.result(raise_on_failure=False))


def test_a_tiny_text_model_reproduces_within_the_stated_tolerance(
    mlflow_store: str, tmp_path: Path
) -> None:
    from flows.text_training import text_training

    corpus = pd.read_csv(SAMPLE_TEXTS)["text"].tolist()
    tiny = str(build_tiny_bert(tmp_path / "tiny-bert", corpus))
    fast = {"epochs": 2, "batch_size": 16, "learning_rate": 1e-3}
    trained = text_training(base_model=tiny, fine_tune=fast, thresholds={"macro_f1": 0.0})
    result = reproduce(model_name="emotion-classifier", version=trained.version)
    assert result.tolerance == TEXT_TOLERANCE
    assert result.verdict in ("identical", "within tolerance"), result
    assert result.max_prediction_difference is not None
    assert result.max_prediction_difference <= TEXT_TOLERANCE
    assert {r["metric"] for r in result.metrics} >= {"accuracy", "macro_f1"}
    assert _versions("emotion-classifier") == ["1"]
