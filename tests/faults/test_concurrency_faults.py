"""Two trainings of one model at once, and processes killed in the middle of moving aliases."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from proxy import FaultProxy
from test_mlflow_faults import MlflowServer

pytestmark = [pytest.mark.slow, pytest.mark.faults, pytest.mark.usefixtures("prefect_harness")]

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    keep = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MODELOPS_"))}
    # The subprocesses use this session's Prefect API instead of starting their own.
    return {**keep, "PREFECT_API_URL": str(PREFECT_API_URL.value()), **extra}


def _train_twice_at_once(env: dict[str, str], cwd: Path) -> list[subprocess.CompletedProcess[str]]:
    command = [sys.executable, "-m", "flows.training", "--random-seed"]
    procs = [
        subprocess.Popen(
            [*command, str(seed)],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


def _check_two_versions(tracking_uri: str) -> None:
    from mlflow import MlflowClient

    from modelops.registry import read_events

    client = MlflowClient(tracking_uri=tracking_uri)
    versions = client.search_model_versions("name = 'lead-scoring'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    assert len({v.run_id for v in versions}) == 2
    staged = str(client.get_model_version_by_alias("lead-scoring", "staging").version)
    for version in versions:  # each was staged once, with its record
        events = read_events(client.get_model_version("lead-scoring", version.version))
        assert [e.action for e in events] == ["set-staging"]
    assert staged in {"1", "2"}


def test_two_first_trainings_on_a_fresh_sqlite_store(tmp_path: Path) -> None:
    home = tmp_path / "fresh"  # does not exist yet: both runs create and migrate the store
    results = _train_twice_at_once(_env(MODELOPS_HOME=str(home)), tmp_path)
    for done in results:
        assert done.returncode == 0, done.stderr[-2000:]
    _check_two_versions(f"sqlite:///{home / 'mlflow.db'}")


def test_two_trainings_at_once_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE concurrent_training")
    uri = postgres_url.rsplit("/", 1)[0] + "/concurrent_training"
    env = _env(MLFLOW_TRACKING_URI=uri, MODELOPS_HOME=str(tmp_path / "home"))
    for done in _train_twice_at_once(env, tmp_path):
        assert done.returncode == 0, done.stderr[-2000:]
    _check_two_versions(uri)


PROMOTE = textwrap.dedent("""
    import sys
    from modelops import promote_model
    if sys.argv[1] == "promote":
        promote_model("lead-scoring", 2, "Production", actor="killed", reason="will not finish",
                      override_staging_reason="test")
    else:
        from modelops.registry import promotion
        from modelops.tracking import get_client
        import os
        client = get_client(os.environ["MLFLOW_TRACKING_URI"])
        promotion.rollback_production(client, "lead-scoring", actor="killed", reason="half")
""")


@pytest.mark.parametrize("move", ["promote", "rollback"])
def test_a_process_killed_between_alias_moves_leaves_a_recoverable_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version_factory: Any, move: str
) -> None:
    from mlflow import MlflowClient

    from modelops import promote_model
    from modelops.registry import AliasState, read_events
    from modelops.registry import promotion as policy

    server = MlflowServer(tmp_path)
    server.start()
    proxy = FaultProxy(server.port)
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy.url)
        monkeypatch.setenv("MODELOPS_HOME", str(tmp_path / "home"))
        for _ in range(3):
            version_factory()
        promote_model("lead-scoring", 1, "Production", override_staging_reason="first")
        if move == "rollback":
            promote_model("lead-scoring", 2, "Production", override_staging_reason="second")
        client = MlflowClient(tracking_uri=proxy.url)

        # The process is killed right after production moved, before anything else it meant
        # to do (previous-production, archive tags, the old champion's record, completion).
        proc = subprocess.Popen(
            [sys.executable, "-c", PROMOTE, move],
            cwd=tmp_path,
            # A short lease: the recovery below waits for the killed holder's lock to run out.
            env={
                **os.environ,
                "MLFLOW_TRACKING_URI": proxy.url,
                "MODELOPS_LOCK_LEASE_SECONDS": "5",
            },
        )
        killed, moved = threading.Event(), threading.Event()

        def kill_once_production_moved(method: str, path: str) -> None:
            # The first alias write is production's; the next request comes only once its
            # answer is back, so production has moved: kill the process there.
            if moved.is_set() and not killed.is_set():
                killed.set()
                os.kill(proc.pid, signal.SIGKILL)
            elif method == "POST" and path.endswith("/registered-models/alias"):
                moved.set()

        proxy.before = kill_once_production_moved
        proc.wait(timeout=300)
        proxy.before = None
        assert killed.is_set() and proc.returncode == -signal.SIGKILL, proc.returncode

        state = AliasState.read(client, "lead-scoring")
        moved_to = "2" if move == "promote" else "1"
        assert state.production == moved_to
        # Production has its record (written before the move), and it says the move started.
        records = read_events(client.get_model_version("lead-scoring", moved_to))
        assert (records[-1].action, records[-1].state) == (move, "started")

        fixed = policy.recover(client, "lead-scoring", actor="test")
        assert [e.state for e in fixed] == ["completed"]
        after = AliasState.read(client, "lead-scoring")
        record = read_events(client.get_model_version("lead-scoring", moved_to))[-1]
        assert record.state == "completed" and record.recovered
        if move == "promote":  # the rest of the promotion was finished from the record
            assert after.previous_production == "1"
            v1 = client.get_model_version("lead-scoring", "1")
            assert v1.tags["modelops.archived"] == "true"
            assert read_events(v1)[-1].action == "archive"
        else:  # the rest of the rollback was finished from the record
            assert after.previous_production is None
            assert client.get_model_version("lead-scoring", "2").tags["modelops.archived"] == "true"
        assert policy.recover(client, "lead-scoring", actor="test") == []  # nothing left
    finally:
        proxy.close()
        server.kill()
