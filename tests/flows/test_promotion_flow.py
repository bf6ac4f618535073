"""The `promotion` and `rollback` flows on a real MLflow store, under prefect_test_harness."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flows.promotion import promotion
from flows.rollback import rollback
from modelops.api import ModelStage, get_model_metadata, load_production_model, promote_model
from modelops.errors import ConfigurationError, ModelNotFound, PromotionRefused, RegistryError
from modelops.registry import read_events
from modelops.settings import get_settings
from modelops.tracking import get_client

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def _client() -> Any:
    s = get_settings()
    return get_client(s.resolved_tracking_uri, s.resolved_registry_uri)


def _aliases(name: str = "lead-scoring") -> dict[str, str]:
    return {k: str(v) for k, v in _client().get_registered_model(name).aliases.items()}


def _events(version: str, name: str = "lead-scoring") -> list[dict]:
    return [e.model_dump() for e in read_events(_client().get_model_version(name, version))]


def test_first_promotion_needs_no_champion(make_version: Any) -> None:
    make_version()
    result = promotion(actor="alice", reason="first release")
    assert result.model_dump() == {
        "name": "lead-scoring",
        "version": "1",
        "previous_production": None,
        "changed": True,
    }
    assert _aliases() == {"production": "1"}  # staging cleared: nothing awaits promotion
    last = _events("1")[-1]
    assert (last["action"], last["actor"], last["reason"]) == ("promote", "alice", "first release")
    assert last["from_version"] is None and last["flow_run_id"]


def test_better_challenger_wins_and_old_champion_is_kept_for_rollback(
    make_version: Any, held_out_csv: Path
) -> None:
    make_version()
    promotion()
    make_version()  # v2, staged, as good as v1
    result = promotion(
        held_out_path=str(held_out_csv), margin=0.01, compare_metrics=["roc_auc", "log_loss"]
    )
    assert result.version == "2" and result.previous_production == "1"
    assert _aliases() == {"production": "2", "previous-production": "1"}
    v1 = _client().get_model_version("lead-scoring", "1")
    assert v1.tags["modelops.archived"] == "true"
    promote, archive = _events("2")[-1], _events("1")[-1]
    assert promote["action"] == "promote" and promote["from_version"] == "1"
    assert set(promote["metrics"]) == {
        "champion.roc_auc",
        "challenger.roc_auc",
        "champion.log_loss",
        "challenger.log_loss",
    }
    assert archive["action"] == "archive" and archive["to_version"] == "2"
    meta = {r["version"]: r for r in get_model_metadata("lead-scoring")}
    assert meta[2]["stage"] == "Production" and meta[1]["stage"] == "Archived"
    assert meta[1]["aliases"] == ["previous-production"]
    assert [e["action"] for e in meta[1]["audit"]] == ["set-staging", "promote", "archive"]
    assert meta[2]["run_id"] and meta[2]["created"] and meta[2]["source"].startswith("models:/")


def test_worse_challenger_is_refused_and_production_is_unchanged(
    make_version: Any, held_out_csv: Path
) -> None:
    make_version()
    promotion()
    make_version(good=False)
    state = promotion(held_out_path=str(held_out_csv), return_state=True)
    assert state.is_failed()
    with pytest.raises(PromotionRefused, match="Challenger version 2 is worse than champion"):
        state.result()
    assert _aliases() == {"production": "1", "staging": "2"}
    refusal = _events("2")[-1]
    assert refusal["action"] == "promotion-refused" and "roc_auc" in refusal["reason"]
    assert "challenger.roc_auc" in refusal["metrics"]


def test_unstaged_version_is_refused_unless_overridden(make_version: Any) -> None:
    make_version(stage=False)
    state = promotion(version="1", return_state=True)
    with pytest.raises(PromotionRefused, match="does not hold the 'staging' alias"):
        state.result()
    assert _aliases() == {}
    assert _events("1")[-1]["action"] == "promotion-refused"

    result = promotion(version="1", override_staging_reason="hotfix approved by bob")
    assert result.version == "1" and _aliases() == {"production": "1"}
    assert _events("1")[-1]["staging_override"] == "hotfix approved by bob"


def test_rollback_restores_previous_production_in_one_step(
    make_version: Any, held_out_csv: Path
) -> None:
    make_version()
    promotion()
    make_version()
    promotion(held_out_path=str(held_out_csv), margin=0.05)
    result = rollback(reason="latency regression", actor="oncall")
    assert result.model_dump() == {"name": "lead-scoring", "version": "1", "rolled_back": "2"}
    assert _aliases() == {"production": "1"}
    v2 = _client().get_model_version("lead-scoring", "2")
    assert v2.tags["modelops.archived"] == "true"
    assert _events("2")[-1]["action"] == "rolled-back"
    assert _events("1")[-1] | {"time": None} == _events("1")[-1] | {
        "action": "rollback",
        "from_version": "2",
        "to_version": "1",
        "actor": "oncall",
        "reason": "latency regression",
        "time": None,
    }
    assert "modelops.archived" not in _client().get_model_version("lead-scoring", "1").tags
    predictions = load_production_model("lead-scoring").predict(
        pd.read_csv(held_out_csv, nrows=4).drop(columns="won").astype("float64")
    )
    assert len(predictions) == 4

    state = rollback(reason="again", return_state=True)
    with pytest.raises(PromotionRefused, match="no 'previous-production' version"):
        state.result()
    assert _aliases() == {"production": "1"}


def _wrong_columns(tmp: Path, held_out_csv: Path) -> str:
    path = tmp / "held_out_wrong.csv"
    pd.read_csv(held_out_csv).drop(columns=["email_confidence"]).to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"model_name": "no-such-model"}, ModelNotFound, "No registered model named"),
        ({"version": "99"}, ModelNotFound, "Model 'lead-scoring' has no version 99"),
        ({"version": "models:/other-model/1"}, RegistryError, "of model 'other-model'"),
        ({"model_name": "empty-model", "version": "latest"}, ModelNotFound, "has no versions yet"),
        ({"version": "champion"}, ModelNotFound, "has no alias 'champion'"),
        (
            {"held_out_path": "WRONG_COLUMNS"},
            ConfigurationError,
            "missing column(s) ['email_confidence']",
        ),
        ({"held_out_path": None}, ConfigurationError, "pass held_out_path"),
    ],
    ids=[
        "unknown model",
        "unknown version",
        "other model's version",
        "latest on empty model",
        "unknown alias",
        "held-out columns do not match signature",
        "champion but no held-out",
    ],
)
def test_bad_input_changes_nothing(
    make_version: Any,
    held_out_csv: Path,
    tmp_path: Path,
    registry_snapshot: Any,
    kwargs: dict,
    error: type[Exception],
    message: str,
) -> None:
    make_version()
    promotion()
    make_version()  # v2 staged, v1 production
    make_version(name="other-model")
    _client().create_registered_model("empty-model")
    if kwargs.get("held_out_path") == "WRONG_COLUMNS":
        kwargs["held_out_path"] = _wrong_columns(tmp_path, held_out_csv)
    before = registry_snapshot()
    state = promotion(**{"held_out_path": str(held_out_csv), **kwargs}, return_state=True)
    assert state.is_failed()
    with pytest.raises(error) as info:
        state.result()
    assert message in str(info.value)
    assert registry_snapshot() == before


def test_python_api_and_cli_show_stages_and_history(
    make_version: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from modelops.cli import main

    make_version()
    make_version(stage=False)
    row = promote_model("lead-scoring", 1, "Production", actor="api-user")
    assert row["stage"] == "Production" and row["aliases"] == ["production"]
    with pytest.raises(PromotionRefused):
        promote_model("lead-scoring", "latest", ModelStage.PRODUCTION)
    promote_model("lead-scoring", "latest", "Staging", reason="candidate")
    assert [r["version"] for r in get_model_metadata("lead-scoring", stage="staging")] == [2]
    archived = promote_model("lead-scoring", 2, "Archived", reason="superseded")
    assert archived["stage"] == "Archived" and archived["aliases"] == []

    assert main(["versions", "lead-scoring", "--json", "--stage", "Production"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["version"], r["stage"]) for r in rows] == [(1, "Production")]
    assert rows[0]["audit"][-1]["actor"] == "api-user"
    assert main(["versions", "lead-scoring"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["version", "stage", "aliases"]
    assert table[1].split()[:2] == ["2", "Archived"] and table[2].split()[:3] == [
        "1",
        "Production",
        "production",
    ]
    assert main(["versions", "nope"]) == 2
    assert "No registered model named 'nope'" in capsys.readouterr().err
