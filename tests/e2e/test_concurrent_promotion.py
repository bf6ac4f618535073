"""Two promotions of one model at the same time, against MLflow server on PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from modelops import registry
from modelops.registry import AliasState

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.usefixtures("prefect_harness")]


def test_concurrent_promotions_leave_one_production_and_a_consistent_history(
    mlflow_server: str,
    monkeypatch: pytest.MonkeyPatch,
    held_out_csv: Path,
    tmp_path: Path,
    version_factory: Any,
) -> None:
    from flows.promotion import promotion
    from modelops.settings import get_settings
    from modelops.tracking import get_client

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "concurrency")
    monkeypatch.setenv("MODELOPS_HOME", str(tmp_path))
    for _ in range(3):
        version_factory(stage=False)
    client = get_client(get_settings().resolved_tracking_uri)
    promotion(version="1", override_staging_reason="initial release")

    def promote(version: str) -> Any:
        return promotion(
            version=version,
            override_staging_reason=f"race {version}",
            held_out_path=str(held_out_csv),
            margin=1.0,
            return_state=True,
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        states = list(pool.map(promote, ["2", "3"]))
    assert all(s.is_completed() for s in states), [s.message for s in states]

    state = AliasState.read(client, "lead-scoring")
    assert {state.production, state.previous_production} == {"2", "3"}
    winner, runner_up = state.production, state.previous_production

    # Serialised: the later promotion saw the earlier one's result as its champion.
    def last_promotion(version: str) -> dict:
        events = registry.read_events(client.get_model_version("lead-scoring", version))
        return [e.model_dump() for e in events if e.action == "promote"][-1]

    winner_event, runner_event = last_promotion(winner), last_promotion(runner_up)
    assert winner_event["from_version"] == runner_up
    assert runner_event["from_version"] == "1"
    # ...and each was compared with the champion it actually replaced.
    assert winner_event["compared_with"] == runner_up
    assert runner_event["compared_with"] == "1"
    for version in ("1", runner_up):
        assert client.get_model_version("lead-scoring", version).tags["modelops.archived"] == "true"
    assert "modelops.archived" not in client.get_model_version("lead-scoring", winner).tags
    holders = [
        v.version
        for v in client.search_model_versions("name = 'lead-scoring'")
        if "production" in client.get_model_version("lead-scoring", v.version).aliases
    ]
    assert [str(v) for v in holders] == [winner]
