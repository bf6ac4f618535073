"""Registration idempotency and audited alias moves, on a real MLflow SQLite store."""

from __future__ import annotations

from typing import Any

import pytest
from mlflow import MlflowClient

from modelops import registry
from modelops.errors import ModelNotFound


def _logged_model(client: MlflowClient) -> tuple[str, str]:
    """A run with a logged model (no training needed: the registry only needs its id)."""
    exp = (
        client.create_experiment("registry-tests")
        if not client.get_experiment_by_name("registry-tests")
        else client.get_experiment_by_name("registry-tests").experiment_id
    )
    run = client.create_run(exp)
    model = client.create_logged_model(exp, source_run_id=run.info.run_id, name="model")
    client.finalize_logged_model(model.model_id, "READY")
    return model.model_id, run.info.run_id


@pytest.fixture
def client(mlflow_store: str) -> MlflowClient:
    return MlflowClient(tracking_uri=mlflow_store, registry_uri=mlflow_store)


def test_registering_the_same_run_twice_gives_one_version(client: MlflowClient) -> None:
    model_id, run_id = _logged_model(client)
    first, created = registry.register_version(client, "m", model_id, run_id)
    again, created_again = registry.register_version(client, "m", model_id, run_id)
    assert (created, created_again) == (True, False)
    assert str(first.version) == str(again.version) == "1"
    assert len(client.search_model_versions("name = 'm'")) == 1
    other_model, other_run = _logged_model(client)
    second, _ = registry.register_version(client, "m", other_model, other_run)
    assert str(second.version) == "2"
    assert client.get_model_version("m", "2").tags[registry.SOURCE_RUN_TAG] == other_run


def test_a_race_past_the_check_converges_on_the_first_version(client: MlflowClient) -> None:
    model_id, run_id = _logged_model(client)
    registry.ensure_registered_model(client, "m", None)
    # Another worker registered this run between our check and our create:
    client.create_model_version("m", f"models:/{model_id}", run_id=run_id, model_id=model_id)
    client.create_model_version("m", f"models:/{model_id}", run_id=run_id, model_id=model_id)
    version, created = registry.register_version(client, "m", model_id, run_id)
    assert not created and str(version.version) == "1"


def test_alias_move_is_audited_and_a_retry_is_a_no_op(client: MlflowClient) -> None:
    for _ in range(2):
        registry.register_version(client, "m", *_logged_model(client))
    first = registry.move_alias(
        client,
        "m",
        "staging",
        "1",
        action="set-staging",
        actor="ci",
        reason="gate",
        flow_run_id="fr-1",
    )
    moved = registry.move_alias(
        client,
        "m",
        "staging",
        "2",
        action="set-staging",
        actor="ci",
        reason="gate",
        flow_run_id="fr-2",
        metrics={"roc_auc": 0.8},
    )
    retried = registry.move_alias(
        client,
        "m",
        "staging",
        "2",
        action="set-staging",
        actor="ci",
        reason="gate",
        flow_run_id="fr-2",
    )
    assert first.from_version is None and moved.from_version == "1"
    assert retried == moved
    events = registry.read_events(client.get_model_version("m", "2"))
    assert len(events) == 1 and events[0].metrics == {"roc_auc": 0.8}
    assert registry.alias_version(client, "m", "staging") == "2"
    assert registry.alias_version(client, "m", "production") is None


class _FailingTags(MlflowClient):
    """A client whose audit write fails, as when the store drops the connection mid-step."""

    def set_model_version_tag(self, *args: Any, **kwargs: Any) -> None:
        raise ConnectionResetError("connection reset by peer")


def test_alias_is_put_back_when_its_audit_record_cannot_be_written(mlflow_store: str) -> None:
    good = MlflowClient(tracking_uri=mlflow_store, registry_uri=mlflow_store)
    for _ in range(2):
        registry.register_version(good, "m", *_logged_model(good))
    registry.move_alias(good, "m", "staging", "1", action="a", actor="x", reason="r")
    bad = _FailingTags(tracking_uri=mlflow_store, registry_uri=mlflow_store)
    with pytest.raises(ConnectionResetError):
        registry.move_alias(bad, "m", "staging", "2", action="a", actor="x", reason="r")
    assert registry.alias_version(good, "m", "staging") == "1"
    with pytest.raises(ConnectionResetError):
        registry.move_alias(bad, "m", "production", "2", action="a", actor="x", reason="r")
    assert registry.alias_version(good, "m", "production") is None
    assert registry.read_events(good.get_model_version("m", "2")) == []


def test_missing_version_is_a_clear_error(client: MlflowClient) -> None:
    registry.register_version(client, "m", *_logged_model(client))
    with pytest.raises(ModelNotFound, match="Model 'm' has no version 7"):
        registry.get_version(client, "m", 7)
