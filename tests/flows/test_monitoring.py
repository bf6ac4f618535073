"""The monitoring flow on data nobody tuned for: drift and decay are caught and named, the same
distribution resampled is not flagged, bad input changes nothing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from flows.monitoring import monitoring
from flows.training import training
from modelops import ModelStage, promote_model
from modelops.errors import ConfigurationError, ModelNotFound

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

FEATURES = {
    "tenure": {"kind": "numeric"},
    "spend": {"kind": "numeric", "nullable": True},
    "channel": {"kind": "categorical"},
    "vip": {"kind": "boolean"},
}


def _customers(n: int, seed: int) -> pd.DataFrame:
    """Churn-like data with every column kind: numbers, a category, a flag, some nulls."""
    rng = np.random.default_rng(seed)
    tenure = rng.gamma(2.0, 12.0, n)
    spend = rng.lognormal(3.0, 0.6, n)
    spend[rng.random(n) < 0.03] = np.nan
    channel = rng.choice(["web", "store", "phone"], n, p=[0.5, 0.3, 0.2])
    vip = rng.random(n) < 0.15
    logit = -1.0 + 0.04 * tenure - 0.01 * np.nan_to_num(spend, nan=20) + (channel == "web") + vip
    stayed = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(
        {
            "tenure": tenure,
            "spend": spend,
            "channel": channel,
            "vip": vip,
            "stayed": np.where(stayed, "yes", "no"),
        }
    )


@pytest.fixture(scope="module")
def production(module_mlflow_store: str, prefect_harness: None, tmp_path_factory: Any) -> dict:
    folder = tmp_path_factory.mktemp("monitoring")
    train = folder / "customers.csv"
    _customers(6000, seed=1).to_csv(train, index=False)
    result = training(
        data_path=str(train),
        target="stayed",
        model_name="churn watch",
        features=FEATURES,
        thresholds={"roc_auc": 0.6},
    )
    promote_model("churn watch", result.version, stage=ModelStage.PRODUCTION)
    return {"folder": folder, "version": result.version}


def _write(df: pd.DataFrame, folder: Path, name: str) -> str:
    path = folder / name
    df.to_parquet(path, index=False)
    return str(path)


def _version_tags(version: str) -> dict[str, str]:
    return dict(MlflowClient().get_model_version("churn watch", version).tags)


def _degraded_events() -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter

    with get_client(sync_client=True) as client:
        page = client.read_events(  # the server allows at most 50 per page
            EventFilter(event=EventNameFilter(name=["modelops.model.degraded"])), limit=50
        )
    return list(page.events)


def _wait_for_events(count: int, timeout: float = 30) -> list[Any]:
    """Events reach the API from a background worker: wait until ``count`` are there."""
    deadline = time.monotonic() + timeout
    while True:
        events = _degraded_events()
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.2)


def test_the_same_distribution_resampled_is_never_flagged(production: dict) -> None:
    from modelops import monitoring
    from modelops.steps.monitoring import features_of, resolve_watched

    watched = resolve_watched(MlflowClient(), "churn watch", "production")
    for seed in range(20):
        window = _customers(2000, seed=100 + seed)
        X = features_of(watched, window)
        result = monitoring.compare(
            X, watched.profile, watched.sample, watched.model.predict_proba(X)[:, 1]
        )
        assert not result.degraded, (seed, result.breaches)
    ok = monitoring_run(production, _customers(2000, seed=7))
    assert ok["degraded"] is False and ok["breaches"] == []
    assert "modelops.monitoring.degraded" not in _version_tags(production["version"])


def monitoring_run(production: dict, window: pd.DataFrame, **kwargs: Any) -> dict:
    path = _write(window, production["folder"], f"window-{len(window)}-{id(window)}.parquet")
    return monitoring(model_name="churn watch", data_path=path, **kwargs)


@pytest.mark.parametrize(
    ("feature", "inject"),
    [
        ("tenure", lambda df: df.assign(tenure=df["tenure"] + 25)),  # shifted mean
        (
            "channel",
            lambda df: df.assign(
                channel=np.where(np.arange(len(df)) % 3 == 0, "chatbot", df["channel"])
            ),
        ),  # a new category
        (
            "spend",
            lambda df: df.assign(spend=df["spend"].where(np.arange(len(df)) % 2 == 0)),
        ),  # nulls
    ],
)
def test_drift_in_one_feature_is_caught_and_named(
    production: dict, feature: str, inject: Any
) -> None:
    before = len(_degraded_events())
    result = monitoring_run(production, inject(_customers(2000, seed=42)))
    assert result["degraded"] is True
    drifted = [b for b in result["breaches"] if b.startswith("feature ")]
    assert drifted and all(repr(feature) in b for b in drifted), result["breaches"]
    assert max(result["psi"], key=result["psi"].get) == feature
    # The version carries the breach, the audit trail says so, the event is in Prefect.
    tags = _version_tags(production["version"])
    assert repr(feature) in tags["modelops.monitoring.degraded"]
    audit = [v for k, v in tags.items() if k.startswith("modelops.audit.")]
    assert any('"action": "degraded"' in a for a in audit)
    events = _wait_for_events(before + 1)
    assert len(events) == before + 1
    event = events[0]
    assert event.resource["modelops.model"] == "churn watch"
    assert event.resource["modelops.version"] == production["version"]
    assert any(repr(feature) in b for b in event.payload["breaches"])
    # One MLflow run per check, with a metric per feature.
    run = MlflowClient().get_run(result["mlflow_run_id"])
    assert run.data.tags["modelops.verdict"] == "degraded"
    assert run.data.metrics[f"psi.{feature}"] > 0.2


def test_degraded_labels_are_caught(production: dict) -> None:
    before = len(_wait_for_events(0))
    window = _customers(2000, seed=5)
    labelled = window.assign(stayed=np.where(window["stayed"] == "yes", "no", "yes"))
    path = _write(labelled, production["folder"], "labelled.parquet")
    result = monitoring_run(
        production, window, labelled_path=path, metric_drop_max={"roc_auc": 0.05}
    )
    assert result["degraded"] is True
    assert any(b.startswith("roc_auc fell") for b in result["breaches"]), result["breaches"]
    assert result["performance"]["roc_auc"] < 0.5
    (event, *_) = _wait_for_events(before + 1)
    assert any(b.startswith("roc_auc fell") for b in event.payload["breaches"])


def test_bad_input_changes_nothing(production: dict) -> None:
    version = production["version"]
    tags_before = _version_tags(version)
    time.sleep(2)  # events of earlier tests have arrived
    events_before = len(_degraded_events())
    folder = production["folder"]
    with pytest.raises(ConfigurationError, match="fewer than min_rows=100"):
        monitoring_run(production, _customers(20, seed=3))
    with pytest.raises(ConfigurationError, match=r"lacks feature column.*channel"):
        monitoring_run(production, _customers(500, seed=3).drop(columns="channel"))
    wrong = _customers(500, seed=3).assign(stayed=np.where(np.arange(500) % 2, 1, 0))
    with pytest.raises(ConfigurationError, match="are not the model's"):
        monitoring_run(
            production,
            _customers(500, seed=3),
            labelled_path=_write(wrong, folder, "wrong.parquet"),
        )
    with pytest.raises(ModelNotFound, match="promote a version to 'production' first"):
        training(
            data_path=str(folder / "customers.csv"),
            target="stayed",
            model_name="never promoted",
            features=FEATURES,
            thresholds={"roc_auc": 0.6},
        )
        monitoring(model_name="never promoted", data_path=str(folder / "customers.csv"))
    assert _version_tags(version) == tags_before

    time.sleep(2)  # anything emitted would have arrived by now
    assert len(_degraded_events()) == events_before
