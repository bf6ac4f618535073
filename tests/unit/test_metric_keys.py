"""Metric keys made from free text (feature names, class labels) are one function, used by the
monitoring check and by the model server's telemetry, and MLflow accepts what it makes."""

from __future__ import annotations

import importlib
from collections import Counter

import pytest

from modelops.naming import metric_key

# Names a data set or a classifier really has, and the ones MLflow refuses as they are:
# ':' (refused on Windows), empty and '.'/'..' path segments, a leading slash.
TRICKY = [
    "income ($)",
    "東京",
    "大阪",
    "",
    "a//b",
    "x/..",
    "./y",
    "/root",
    "a:b",
    "ok-name.1",
    "x" * 300,
]


def _monitoring_module():
    for name in ("modelops.steps.monitoring", "modelops.steps.monitor"):
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError:
            continue
    raise AssertionError("the monitoring step module is gone")


def test_the_monitoring_step_and_telemetry_use_the_one_function() -> None:
    from modelops.serving.telemetry import aggregate

    assert _monitoring_module().metric_key is metric_key
    assert aggregate.metric_key is metric_key


@pytest.mark.parametrize("name", TRICKY, ids=repr)
def test_mlflow_accepts_every_key_made_from_free_text(name: str) -> None:
    from mlflow.utils.validation import _validate_metric_name

    for prefix in ("psi.", "labels.candidate."):
        key = prefix + metric_key(name)
        _validate_metric_name(key)  # raises on a key a tracking store would refuse
        assert ":" not in key and len(key) <= 250


def test_names_in_other_scripts_keep_apart() -> None:
    # A monitoring check with columns 東京 and 大阪 logged one "psi.__" for both.
    assert metric_key("東京") != metric_key("大阪")
    assert metric_key("東京") == "東京"


def test_telemetry_logs_every_label_under_a_key_mlflow_accepts(tmp_path) -> None:
    from mlflow import MlflowClient

    from modelops.serving.telemetry.aggregate import Record, aggregate_records

    labels = Counter({name: 1 for name in TRICKY})
    records = [Record(0.01, 1, 200, candidates=labels, dominant=labels)]
    metrics = aggregate_records(records, dropped=0, logged=0)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.create_run(client.create_experiment("keys"))
    from modelops.tracking import metric_entities

    client.log_batch(run.info.run_id, metrics=metric_entities(metrics))  # nothing refused
    logged = client.get_run(run.info.run_id).data.metrics
    assert sum(k.startswith("labels.candidate.") for k in logged) == len(TRICKY)
