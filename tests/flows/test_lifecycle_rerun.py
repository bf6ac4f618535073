"""A lifecycle re-run on unchanged data does nothing new: one version, one promotion in the
audit trail, the same local server — and it says what it reused."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.lifecycle import lifecycle
from modelops.cli import main as cli
from modelops.registry import read_events
from modelops.serving.local import running_server
from modelops.settings import get_settings
from modelops.tracking import get_client

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def test_the_lifecycle_twice_makes_one_version_one_promotion_and_keeps_the_server(
    mlflow_store: str, sample_csv: Path
) -> None:
    settings = get_settings()
    common = {
        "data_path": str(sample_csv),
        "promote_to": "production",
        "deploy": "local",
        "actor": "ci",
    }
    try:
        first = lifecycle(**common)
        server = running_server(settings.home_dir, "lead-scoring")
        assert server is not None and server.version == "1"
        second = lifecycle(**common)
        again = running_server(settings.home_dir, "lead-scoring")
    finally:
        assert cli(["stop", "lead-scoring"]) == 0

    assert (first.version, second.version, second.production) == ("1", "1", "1")
    client = get_client(settings.resolved_tracking_uri, settings.resolved_registry_uri)
    assert [str(v.version) for v in client.search_model_versions("name = 'lead-scoring'")] == ["1"]
    events = read_events(client.get_model_version("lead-scoring", "1"))
    assert [e.action for e in events if e.action == "promote"] == ["promote"]
    assert [e.action for e in events].count("set-staging") == 1  # staging not asked for again
    # The same server process, not restarted.
    assert again is not None and (again.pid, again.url) == (server.pid, server.url)
    assert first.reused == []
    assert second.reused == [
        "reused version 1: same data, parameters and code",
        "production already version 1: nothing promoted",
        f"version 1 already served at {server.url}: left as it is",
    ]
