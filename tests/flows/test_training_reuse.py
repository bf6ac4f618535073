"""Runs that remember: a `training` run with a known training key reuses the registered version
(nothing trained, nothing registered), anything that changes the model makes a new one, and a
version whose files are gone is trained again with the reason said."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from flows.training import training
from modelops import training_key
from modelops.registry import read_events
from modelops.settings import get_settings
from modelops.tracking import get_client

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

REUSED = "reused version 1: same data, parameters and code"


def _client() -> Any:
    s = get_settings()
    return get_client(s.resolved_tracking_uri, s.resolved_registry_uri)


def _versions(name: str = "lead-scoring") -> list[str]:
    return sorted(str(v.version) for v in _client().search_model_versions(f"name = '{name}'"))


def _children(parent_run_id: str) -> set[str]:
    client = _client()
    experiment = client.get_run(parent_run_id).info.experiment_id
    runs = client.search_runs(
        [experiment], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'"
    )
    return {r.info.run_name for r in runs}


def _artifacts(flow_run_id: UUID) -> dict[str, Any]:
    from prefect.client.orchestration import get_client as prefect_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with prefect_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a for a in found if a.key}


def test_the_same_run_twice_makes_one_version_and_trains_nothing_the_second_time(
    mlflow_store: str, sample_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.perf_counter()
    first = training(data_path=str(sample_csv))
    first_seconds = time.perf_counter() - started
    started = time.perf_counter()
    state = training(data_path=str(sample_csv), return_state=True)
    second_seconds = time.perf_counter() - started
    assert state.is_completed(), state.message
    second = state.result()

    assert (first.version, second.version) == ("1", "1")
    assert _versions() == ["1"]
    assert first.reused is None and second.reused == REUSED
    assert first.training_key == second.training_key and len(first.training_key) == 64
    assert second.metrics == pytest.approx(first.metrics)

    # Nothing was fitted, validated or evaluated in the second run: only the data was read
    # (its digest is part of the key).
    assert "fit_model" in _children(first.mlflow_run_id)
    assert _children(second.mlflow_run_id) == {"load_dataset"}
    assert second_seconds < 0.6 * first_seconds, (first_seconds, second_seconds)

    # The key is on the version and its run, readable; the second parent run says it reused.
    client = _client()
    version = client.get_model_version("lead-scoring", "1")
    assert version.tags[training_key.KEY_TAG] == first.training_key
    parts = json.loads(
        Path(client.download_artifacts(version.run_id, training_key.KEY_FILE)).read_text()
    )
    assert parts["data"]["digest"] and parts["params"]["random_seed"] == 42
    assert parts["params"]["estimator"]["params"]["max_iter"] == 1000  # defaults resolved
    assert set(parts["libraries"]) >= {"scikit-learn", "numpy", "onnx", "skl2onnx"}
    assert parts["code"]["package"]
    assert client.get_run(version.run_id).data.tags[training_key.KEY_TAG] == first.training_key
    parent = client.get_run(second.mlflow_run_id).data.tags
    assert parent[training_key.REUSED_TAG] == "1"
    assert parent["modelops.reuse"] == REUSED
    assert parent[training_key.KEY_TAG] == first.training_key

    # Staging was asked for again and was already there: one audit entry, the first run's.
    (event,) = read_events(client.get_model_version("lead-scoring", "1"))
    assert event.action == "set-staging" and event.flow_run_id != str(
        state.state_details.flow_run_id
    )
    artifacts = _artifacts(state.state_details.flow_run_id)
    assert REUSED in artifacts["lead-scoring-reuse"].data

    # People see the key short.
    from modelops.cli import main as cli

    capsys.readouterr()
    assert cli(["versions", "lead-scoring"]) == 0
    table = capsys.readouterr().out
    assert "training key" in table and first.training_key[:12] in table
    assert first.training_key not in table


def _changed_byte(sample_csv: Path, tmp_path: Path) -> dict[str, Any]:
    lines = sample_csv.read_text().splitlines(keepends=True)
    header = lines[1].split(",")
    # One digit of one value: a change a digest of the first rows only would miss, far down.
    row = lines[-1].split(",")
    row[0] = row[0][:-1] + ("1" if row[0][-1] != "1" else "2")
    lines[-1] = ",".join(row)
    assert len(header) == len(row)
    copy = tmp_path / "leads.csv"
    copy.write_text("".join(lines))
    return {"data_path": str(copy)}


@pytest.mark.parametrize("change", ["data", "parameter", "seed", "code", "force"])
def test_anything_that_changes_the_model_makes_a_new_version(
    mlflow_store: str,
    sample_csv: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    change: str,
) -> None:
    first = training(data_path=str(sample_csv))
    again: dict[str, Any] = {"data_path": str(sample_csv)}
    if change == "data":
        again = _changed_byte(sample_csv, tmp_path)
    elif change == "parameter":
        again["estimator"] = {"kind": "logistic_regression", "params": {"C": 0.5}}
    elif change == "seed":
        again["random_seed"] = 7
    elif change == "code":
        code = {**training_key.code_version(), "commit": "another-commit"}
        monkeypatch.setattr(training_key, "code_version", lambda: code)
    else:
        again["force_retrain"] = True
    second = training(**again)
    assert second.version == "2" and second.reused is None
    assert _versions() == ["1", "2"]
    assert "fit_model" in _children(second.mlflow_run_id)
    if change != "force":
        assert second.training_key != first.training_key
    else:
        assert second.training_key == first.training_key


def test_a_version_whose_model_file_is_gone_is_trained_again_and_says_why(
    mlflow_store: str, sample_csv: Path
) -> None:
    from urllib.parse import urlparse

    first = training(data_path=str(sample_csv))
    client = _client()
    location = Path(urlparse(client.get_model_version_download_uri("lead-scoring", "1")).path)
    (model_file,) = location.glob("model.skops")
    model_file.unlink()

    second = training(data_path=str(sample_csv))
    assert second.version == "2" and second.reused is None
    assert second.training_key == first.training_key
    reason = client.get_run(second.mlflow_run_id).data.tags["modelops.reuse"]
    assert "version 1 has the same key but its model file is missing (model.skops)" in reason
    assert "fit_model" in _children(second.mlflow_run_id)
    # The next identical run reuses the rebuilt version, not the broken one.
    assert training(data_path=str(sample_csv)).reused == (
        "reused version 2: same data, parameters and code"
    )


def test_two_identical_runs_started_together_make_one_version(
    mlflow_store: str, sample_csv: Path
) -> None:
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(training(data_path=str(sample_csv)))
        except BaseException as exc:  # reported below, with the thread's error
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert sorted(r.version for r in results) == ["1", "1"]
    assert sorted(str(r.reused) for r in results) == ["None", REUSED]
    assert _versions() == ["1"]


def test_a_tuning_run_with_the_same_search_and_seed_reuses_its_version(
    mlflow_store: str, sample_csv: Path
) -> None:
    from flows.tuning import tuning

    search = {"logistic_regression": {"C": [0.1, 1.0]}}
    common: dict[str, Any] = {"data_path": str(sample_csv), "runner": "sequential"}
    first = tuning(search=search, **common)
    second = tuning(search=search, **common)
    assert (first.version, second.version) == ("1", "1")
    assert second.reused == REUSED and _children(second.mlflow_run_id) == {"load_dataset"}
    other = tuning(search={"logistic_regression": {"C": [0.1, 10.0]}}, **common)
    assert other.version == "2" and other.reused is None  # another search space: another key


def test_a_text_training_run_with_the_same_inputs_reuses_its_version(
    mlflow_store: str, tmp_path: Path
) -> None:
    import pandas as pd
    from support_text import build_tiny_bert

    from flows.text_training import text_training
    from modelops.text.sample import SAMPLE_TEXTS

    tiny = str(build_tiny_bert(tmp_path / "tiny-bert", pd.read_csv(SAMPLE_TEXTS)["text"].tolist()))
    common: dict[str, Any] = {
        "base_model": tiny,
        "fine_tune": {"epochs": 1, "batch_size": 16, "learning_rate": 1e-3},
        "thresholds": {"macro_f1": 0.0},
    }
    first = text_training(**common)
    second = text_training(**common)
    assert (first.version, second.version) == ("1", "1")
    assert second.reused == REUSED
    assert _children(second.mlflow_run_id) == {"load_text_dataset"}
    assert _versions("emotion-classifier") == ["1"]
