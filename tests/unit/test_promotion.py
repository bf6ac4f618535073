"""Promotion as a transaction, and the champion/challenger rule."""

from __future__ import annotations

from typing import Any

import pytest
from mlflow import MlflowClient

from modelops import registry
from modelops.errors import ConfigurationError, PromotionRefused, RegistryError
from modelops.registry import champion, promotion

_WRITES = (
    "set_registered_model_alias",
    "delete_registered_model_alias",
    "set_model_version_tag",
    "delete_model_version_tag",
)


class _FailsAt(MlflowClient):
    """A real client whose store drops the connection at its ``fail_at``-th alias or tag write
    (counting from 1; 0: never) — and, with ``dead_after``, at every write after it too, as a
    process killed there would never write again (so nothing can be undone either)."""

    def __init__(self, uri: str, fail_at: int = 0, dead_after: bool = False) -> None:
        super().__init__(tracking_uri=uri, registry_uri=uri)
        self.fail_at, self.dead_after, self.writes = fail_at, dead_after, 0

    def _write(self, method: str, *args: Any) -> Any:
        self.writes += 1
        if self.fail_at and (
            self.writes == self.fail_at or (self.dead_after and self.writes > self.fail_at)
        ):
            raise ConnectionResetError(f"connection reset by peer at write {self.writes}")
        return getattr(super(), method)(*args)

    def set_registered_model_alias(self, *args: Any) -> None:
        self._write("set_registered_model_alias", *args)

    def delete_registered_model_alias(self, *args: Any) -> None:
        self._write("delete_registered_model_alias", *args)

    def set_model_version_tag(self, *args: Any) -> None:
        self._write("set_model_version_tag", *args)

    def delete_model_version_tag(self, *args: Any) -> None:
        self._write("delete_model_version_tag", *args)


def _champion_and_staged_challenger(make_version: Any, uri: str) -> None:
    """v1 in production (with an archived v0-like history), v2 staged."""
    make_version()
    promotion.promote_to_production(_FailsAt(uri), "lead-scoring", "1", actor="a", reason="r")
    make_version()


@pytest.mark.slow  # a failure at each of ~15 writes, each checked against a full snapshot
def test_a_failure_at_any_write_of_a_promotion_or_rollback_undoes_all_of_it(
    make_version: Any, mlflow_store: str, registry_snapshot: Any
) -> None:
    """Each alias and tag write of a promotion (the started record, production, previous-
    production, the archive tag and event of the old champion, staging, the completed record)
    and of a rollback fails in turn: every time, the registry is left exactly as before."""
    _champion_and_staged_challenger(make_version, mlflow_store)
    counting = _FailsAt(mlflow_store)
    before = registry_snapshot()
    promotion.promote_to_production(counting, "lead-scoring", "2", actor="a", reason="r")
    promotion_writes = counting.writes
    after_promotion = registry_snapshot()
    counting.writes = 0
    promotion.rollback_production(counting, "lead-scoring", actor="a", reason="r")
    rollback_writes = counting.writes
    assert promotion_writes >= 6 and rollback_writes >= 5  # every step above is a write
    assert before["lead-scoring"]["aliases"] == {"production": "1", "staging": "2"}
    assert registry_snapshot()["lead-scoring"]["aliases"] == {"production": "1"}

    good = _FailsAt(mlflow_store)
    promotion.promote_to_production(good, "lead-scoring", "2", actor="a", reason="r")
    assert (
        registry_snapshot()["lead-scoring"]["aliases"] == after_promotion["lead-scoring"]["aliases"]
    )
    for n in range(1, rollback_writes + 1):
        now = registry_snapshot()
        with pytest.raises(ConnectionResetError, match=f"write {n}$"):
            promotion.rollback_production(
                _FailsAt(mlflow_store, n), "lead-scoring", actor="a", reason="r"
            )
        assert registry_snapshot() == now, f"rollback failing at write {n} left a change"
    promotion.rollback_production(good, "lead-scoring", actor="a", reason="r")
    for n in range(1, promotion_writes + 1):
        now = registry_snapshot()
        with pytest.raises(ConnectionResetError, match=f"write {n}$"):
            promotion.promote_to_production(
                _FailsAt(mlflow_store, n), "lead-scoring", "2", actor="a", reason="r"
            )
        assert registry_snapshot() == now, f"promotion failing at write {n} left a change"


def _events_since(client: MlflowClient, name: str, version: str, since: Any) -> list[Any]:
    from modelops.registry import read_events

    return [e for e in read_events(client.get_model_version(name, version)) if e.when >= since]


@pytest.mark.slow  # a kill at each of ~15 writes, each followed by a recovery: ~5 s
@pytest.mark.parametrize("archive", [True, False])
def test_a_move_killed_after_any_write_is_finished_as_it_was_asked_for(
    make_version: Any, mlflow_store: str, archive: bool
) -> None:
    """A process killed at any write after production moved (every later write lost, nothing
    undone) — a promotion, then a rollback — is finished by the next writer exactly as asked:
    every alias and tag in place, the archive_existing it was started with, each event once."""
    from modelops.registry import ARCHIVED_TAG, STAGING, AliasState, move_alias

    name = "interrupted"
    good = _FailsAt(mlflow_store)
    make_version(name)
    promotion.promote_to_production(good, name, "1", actor="a", reason="r")
    make_version(name)  # v2 staged

    def promote(client: MlflowClient) -> None:
        promotion.promote_to_production(
            client, name, "2", actor="a", reason="r", archive_existing=archive
        )

    def rollback(client: MlflowClient) -> None:
        promotion.rollback_production(client, name, actor="a", reason="r")

    def restage() -> None:
        move_alias(good, name, STAGING, "2", action="set-staging", actor="a", reason="again")

    # Bring v2 and v1 to the tags every later round starts from, counting the writes of each.
    promote(good)
    rollback(good)
    restage()
    counting = _FailsAt(mlflow_store)
    promote(counting)
    promotion_writes, counting.writes = counting.writes, 0
    rollback(counting)
    rollback_writes = counting.writes
    restage()
    # Kill points: after write 2 (production moved) up to the last (the completed record).
    for kill in range(3, max(promotion_writes, rollback_writes) + 1):
        if kill <= promotion_writes:
            with pytest.raises(RegistryError, match="undoing the partial change failed"):
                promote(_FailsAt(mlflow_store, kill, dead_after=True))
            assert AliasState.read(good, name).production == "2"  # moved, not finished
            (fixed,) = promotion.recover(good, name, actor="next-run")
            assert fixed.state == "completed" and fixed.archive_existing is archive, kill
            state = AliasState.read(good, name)
            assert (state.production, state.previous_production, state.staging) == ("2", "1", None)
            tags = good.get_model_version(name, "1").tags
            assert (tags.get(ARCHIVED_TAG) == "true") is archive, kill
            assert ARCHIVED_TAG not in good.get_model_version(name, "2").tags
            retired = [
                e
                for e in _events_since(good, name, "1", fixed.when)
                if e.action in ("archive", "demote")
            ]
            assert [e.action for e in retired] == ["archive" if archive else "demote"], kill
        else:
            promote(good)
        if kill <= rollback_writes:
            with pytest.raises(RegistryError, match="undoing the partial change failed"):
                rollback(_FailsAt(mlflow_store, kill, dead_after=True))
            (fixed,) = promotion.recover(good, name, actor="next-run")
            assert fixed.state == "completed" and fixed.action == "rollback", kill
            state = AliasState.read(good, name)
            assert (state.production, state.previous_production) == ("1", None), kill
            assert good.get_model_version(name, "2").tags.get(ARCHIVED_TAG) == "true"
            assert ARCHIVED_TAG not in good.get_model_version(name, "1").tags
            rolled = [
                e for e in _events_since(good, name, "2", fixed.when) if e.action == "rolled-back"
            ]
            assert len(rolled) == 1, kill
        else:
            rollback(good)
        restage()


def test_staging_first_unless_the_policy_is_switched_off(
    make_version: Any, mlflow_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Code written for the original module promotes any version straight to production; with
    MODELOPS_REQUIRE_STAGING=false that succeeds and is audited as an override by policy."""
    from modelops import ModelStage, promote_model
    from modelops.registry import AliasState, read_events

    make_version(stage=False)
    client = _FailsAt(mlflow_store)
    with pytest.raises(PromotionRefused, match="does not hold the 'staging' alias"):
        promote_model("lead-scoring", 1, ModelStage.PRODUCTION)
    assert AliasState.read(client, "lead-scoring").production is None
    monkeypatch.setenv("MODELOPS_REQUIRE_STAGING", "false")
    row = promote_model("lead-scoring", 1, ModelStage.PRODUCTION)
    assert row["stage"] == "Production"
    (promoted,) = [
        e
        for e in read_events(client.get_model_version("lead-scoring", "1"))
        if e.action == "promote"
    ]
    assert promoted.staging_override == promotion.REQUIRE_STAGING_OFF
    assert "MODELOPS_REQUIRE_STAGING=false" in str(promoted.staging_override)


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
