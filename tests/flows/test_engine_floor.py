"""Flow runs are not rounded up to a whole second (Prefect's heartbeat thread), wherever this
project's flows run, unless the user asks for heartbeats."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from prefect import flow

pytestmark = pytest.mark.usefixtures("prefect_harness")


@flow
def _child() -> int:
    return 1


@flow
def _parent() -> int:
    return _child()


# A measured time: beside three other busy test workers it took 4.1 s once (CI, 2026-12-02),
# so it runs with the timing tests, alone.
@pytest.mark.timing
def test_a_flow_and_its_subflow_take_a_fraction_of_a_second() -> None:
    _parent()  # warm
    started = time.perf_counter()
    for _ in range(5):
        assert _parent() == 1
    elapsed = time.perf_counter() - started
    # With the heartbeat floor each flow and subflow run takes at least 1 s: 10 s here.
    assert elapsed < 4.0, f"5 flow runs with a subflow took {elapsed:.2f} s: the floor is back"


def _heartbeat_after_importing_flows(env: dict[str, str]) -> str:
    code = (
        "import flows\nfrom prefect.settings import get_current_settings\n"
        "print(get_current_settings().flows.heartbeat_frequency)"
    )
    clean = {k: v for k, v in os.environ.items() if "HEARTBEAT" not in k}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


def test_importing_the_flows_turns_heartbeats_off_unless_the_user_chose_them() -> None:
    # Every way of running a flow (the CLI, a worker's flow-run process) imports `flows` first.
    assert _heartbeat_after_importing_flows({}) == "None"
    assert _heartbeat_after_importing_flows({"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "60"}) == "60"
