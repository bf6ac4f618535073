"""The command line as a new user meets it: subprocesses from a project folder, README commands."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

VENV = Path(sys.executable).parents[1]
# What a user's shell may hold: none of it is a documented variable, so none may be read.
STRAY = {
    "TRACKING_URI": "sqlite:////nowhere/stray.db",
    "EXPERIMENT_NAME": "stray",
    "UI_URL": "http://stray",
    "DEPLOY_NAMESPACE": "stray",
}


def _env(home: Path, **extra: str) -> dict[str, str]:
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "MODELOPS_", "PREFECT_API_URL"))
    }
    # A Prefect server per command, as before the local one (tests/e2e/test_local_server.py).
    return {**keep, **STRAY, "HOME": str(home), "MODELOPS_PREFECT": "temporary", **extra}


def _run(
    cmd: str, cwd: Path, env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        shlex.split(cmd), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder as after `make install`: `.venv` is the environment under test."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / ".venv").symlink_to(VENV)
    return folder


def test_printed_follow_up_commands_work_outside_make(project: Path, tmp_path: Path) -> None:
    run_home, user_home = tmp_path / "run-home", tmp_path / "user-home"
    run_home.mkdir()
    user_home.mkdir()
    # The main job, with MODELOPS_HOME unset (as outside make): the default is ./.modelops.
    done = _run(".venv/bin/python -m flows.lifecycle", project, _env(run_home))
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert (project / ".modelops" / "mlflow.db").is_file()
    assert not list(run_home.rglob("mlflow.db")), "a stray MLflow store appeared in HOME"
    url = re.search(r"serving: (http://127\.0\.0\.1:\d+)/invocations", done.stdout)[1]
    hints = [
        line.strip()
        for line in done.stdout.splitlines()
        if line.strip().startswith((".venv/bin/python -m modelops", "stop it:"))
    ]
    versions = next(h for h in hints if " versions " in h)
    stop = next(h for h in hints if h.startswith("stop it:")).removeprefix("stop it:").strip()

    # The printed commands, from the project folder, in another shell: HOME elsewhere again.
    listed = _run(versions, project, _env(user_home), timeout=120)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()]
    assert rows[1][:3] == ["1", "Production", "production"], listed.stdout
    assert httpx.get(f"{url}/health", timeout=5).status_code == 200
    curl = (
        next(
            line.strip() for line in done.stdout.splitlines() if line.strip().startswith("try it:")
        )
        .removeprefix("try it:")
        .strip()
    )
    tried = subprocess.run(curl, shell=True, capture_output=True, text=True, timeout=30)
    assert len(json.loads(tried.stdout)["predictions"]) == 1, tried.stdout + tried.stderr
    stopped = _run(stop, project, _env(user_home), timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    assert f"stopped lead-scoring v1 at {url}" in stopped.stdout
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/health", timeout=2)
    assert list(user_home.iterdir()) == [], "the follow-up commands wrote into HOME"


def test_failures_are_one_line_with_an_exit_code_that_says_which(
    project: Path, tmp_path: Path
) -> None:
    env = _env(tmp_path)
    missing = _run(".venv/bin/python -m flows.training --data /nonexistent/leads.csv", project, env)
    assert missing.returncode == 3
    errors = [line for line in missing.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: Data file not found: '/nonexistent/leads.csv'. Check the data_path "
        f"parameter (relative paths are resolved against '{project}')."
    ]
    assert "Traceback" not in missing.stderr and len(missing.stderr.splitlines()) < 30

    gate = _run(".venv/bin/modelops train --thresholds '{\"roc_auc\": 0.99}'", project, env)
    assert gate.returncode == 4
    assert "error: Quality gate failed on roc_auc" in gate.stderr
    assert "Traceback" not in gate.stderr

    nothing = _run(".venv/bin/modelops versions lead-scoring", project, env, timeout=120)
    assert nothing.returncode == 2
    assert nothing.stderr.strip() == (
        "error: No registered model named 'lead-scoring'. Check the name (and MLFLOW_TRACKING_URI "
        "/ MLFLOW_REGISTRY_URI), or train it first."
    )
