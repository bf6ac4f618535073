"""Promotion as a transaction, and the champion/challenger rule."""

from __future__ import annotations

from typing import Any

import pytest
from mlflow import MlflowClient

from modelops import registry
from modelops.errors import ConfigurationError
from modelops.registry import champion, promotion


class _AuditFails(MlflowClient):
    """The store drops the connection when the audit record is written: after the aliases
    have already moved. That is the worst moment for a promotion to fail."""

    def set_model_version_tag(self, name: str, version: str, key: str, value: Any) -> None:
        if key.startswith(registry.AUDIT_PREFIX):
            raise ConnectionResetError("connection reset by peer")
        super().set_model_version_tag(name, version, key, value)


def test_failure_after_the_alias_moves_undoes_the_whole_promotion(
    make_version: Any, mlflow_store: str, registry_snapshot: Any
) -> None:
    make_version()
    good = MlflowClient(tracking_uri=mlflow_store, registry_uri=mlflow_store)
    promotion.promote_to_production(good, "lead-scoring", "1", actor="a", reason="r")
    make_version()
    before = registry_snapshot()
    assert before["lead-scoring"]["aliases"] == {"production": "1", "staging": "2"}

    failing = _AuditFails(tracking_uri=mlflow_store, registry_uri=mlflow_store)
    with pytest.raises(ConnectionResetError):
        promotion.promote_to_production(failing, "lead-scoring", "2", actor="a", reason="r")
    assert registry_snapshot() == before  # aliases, archive tag and audit tags all as before

    promotion.promote_to_production(good, "lead-scoring", "2", actor="a", reason="r")
    before_rollback = registry_snapshot()
    with pytest.raises(ConnectionResetError):
        promotion.rollback_production(failing, "lead-scoring", actor="a", reason="r")
    assert registry_snapshot() == before_rollback


def test_promoting_the_champion_again_changes_nothing(make_version: Any, mlflow_store: str) -> None:
    make_version()
    client = MlflowClient(tracking_uri=mlflow_store, registry_uri=mlflow_store)
    first = promotion.promote_to_production(client, "lead-scoring", "1", actor="a", reason="r")
    again = promotion.promote_to_production(client, "lead-scoring", "1", actor="a", reason="r")
    assert first.changed and not again.changed
    assert len(registry.read_events(client.get_model_version("lead-scoring", "1"))) == 2


def test_comparison_margin_and_direction() -> None:
    held = {"roc_auc": 0.80, "log_loss": 0.50}
    assert champion.compare(
        held, {"roc_auc": 0.795, "log_loss": 0.505}, ["roc_auc", "log_loss"], margin=0.01
    ).passed
    worse = champion.compare(
        held, {"roc_auc": 0.78, "log_loss": 0.52}, ["roc_auc", "log_loss"], margin=0.01
    )
    assert [r["passed"] for r in worse.rows] == [False, False]
    assert "| roc_auc | 0.8000 | 0.7800 | -0.0200 | >= -0.0100 | **worse** |" in worse.markdown(
        "m", "1", "2"
    )
    with pytest.raises(ConfigurationError, match="unknown"):
        champion.compare(held, held, ["auc"], 0.0)
    with pytest.raises(ConfigurationError, match="margin must be >= 0"):
        champion.compare(held, held, ["roc_auc"], -0.1)


def test_an_interrupted_move_that_never_moved_is_abandoned_and_an_old_one_is_superseded(
    make_version: Any, mlflow_store: str
) -> None:
    from modelops.registry import AliasState, read_events, write_event
    from modelops.types import AuditEvent

    make_version()
    make_version()
    client = MlflowClient(tracking_uri=mlflow_store, registry_uri=mlflow_store)
    promotion.promote_to_production(client, "lead-scoring", "1", actor="a", reason="r")
    # A process wrote its record for promoting v2 and was killed before production moved.
    write_event(
        client,
        "lead-scoring",
        "2",
        AuditEvent(
            action="promote",
            alias="production",
            from_version="1",
            to_version="2",
            actor="k",
            reason="killed",
            state="started",
        ),
    )
    (fixed,) = promotion.recover(client, "lead-scoring", actor="next-run")
    assert fixed.state == "abandoned" and "nothing had moved" in str(fixed.recovered)
    assert AliasState.read(client, "lead-scoring").production == "1"
    assert read_events(client.get_model_version("lead-scoring", "2"))[-1].state == "abandoned"
    assert promotion.recover(client, "lead-scoring", actor="next-run") == []
