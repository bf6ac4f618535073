"""The lifecycle's champion/challenger comparison scores rows the challenger was not trained on.

Defect 5 of issue 20: with no ``held_out_path`` the lifecycle used to score both versions on
the training file itself, rows the challenger had been fitted on. Now the comparison takes the
challenger's own held-out part (the rows its split recorded), says so in the table, and leaves
out the rows the champion was trained on (their count goes into the table and the audit trail).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from flows.lifecycle import lifecycle
from modelops.registry import read_events
from modelops.settings import get_settings
from modelops.tracking import get_client

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]
NAME = "lead-scoring"


def _client() -> Any:
    s = get_settings()
    return get_client(s.resolved_tracking_uri, s.resolved_registry_uri)


def _test_rows(frame: pd.DataFrame, seed: int) -> set[int]:
    """The held-out positions, worked out here with scikit-learn as the split is specified:
    stratified on the target, 20 % held out, ``random_state=seed``."""
    positions = np.arange(len(frame))
    _, test = train_test_split(
        positions, test_size=0.2, random_state=seed, stratify=(frame["won"] == 1).to_numpy()
    )
    return {int(i) for i in test}


def _promotion(version: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The promote event of ``version``, its run's comparison.json and the markdown artifact."""
    client = _client()
    (event,) = [
        e.model_dump()
        for e in read_events(client.get_model_version(NAME, version))
        if e.action == "promote"
    ]
    path = client.download_artifacts(event["mlflow_run_id"], "comparison.json")
    return event, json.loads(Path(path).read_text()), path


def test_the_challenger_is_compared_on_rows_it_was_not_trained_on(
    mlflow_store: str, sample_csv: Path
) -> None:
    frame = pd.read_csv(sample_csv)
    common = {"data_path": str(sample_csv), "promote_to": "production", "actor": "ci"}
    lifecycle(**common, random_seed=42)  # version 1: the champion, no comparison
    result = lifecycle(**common, random_seed=7)  # version 2: the challenger
    assert result.production == "2"

    event, comparison, _ = _promotion("2")
    challenger_test = _test_rows(frame, 7)
    champion_train = set(range(len(frame))) - _test_rows(frame, 42)
    seen_by_champion = challenger_test & champion_train
    # Scored: the challenger's held-out rows, minus those the champion was trained on.
    assert comparison["rows_scored"] == len(challenger_test) - len(seen_by_champion)
    assert comparison["rows_scored"] < len(frame)  # not the training file
    assert comparison["excluded"] == len(seen_by_champion) > 0
    assert comparison["champion_overlap"] == 0
    assert "challenger's held-out part" in comparison["rows_used"]
    assert event["metrics"]["comparison.excluded"] == len(seen_by_champion)
    assert event["metrics"]["comparison.champion_overlap"] == 0


def test_the_table_says_which_rows_were_scored(mlflow_store: str, sample_csv: Path) -> None:
    from modelops.registry.champion import Comparison

    frame = pd.read_csv(sample_csv)
    common = {"data_path": str(sample_csv), "promote_to": "production", "actor": "ci"}
    lifecycle(**common)
    # The same seed: the same held-out rows as the champion's; forced, or the run would reuse v1.
    lifecycle(**common, model_name=NAME, force_retrain=True)
    _, comparison, _ = _promotion("2")
    assert comparison["rows_scored"] == len(_test_rows(frame, 42))
    assert comparison["excluded"] == 0 and comparison["champion_overlap"] == 0
    table = Comparison(
        passed=comparison["passed"],
        rows=comparison["rows"],
        rows_scored=comparison["rows_scored"],
        rows_used=comparison["rows_used"],
        champion_overlap=comparison["champion_overlap"],
    ).markdown(NAME, "1", "2")
    assert f"rows scored: the challenger's held-out part of {sample_csv.as_uri()}" in table or (
        f"rows scored: the challenger's held-out part of {sample_csv}" in table
    )
    assert "the champion was trained on 0 of the rows scored" in table
