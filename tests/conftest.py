"""Shared fixtures: quiet telemetry, a throwaway MLflow store per test, one Prefect harness."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Before anything imports prefect, mlflow or great_expectations.
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# Commands the tests run leave no Prefect server behind (tests/e2e/test_local_server.py tests
# the one a user's commands leave running, and stops it).
os.environ.setdefault("MODELOPS_PREFECT", "temporary")
for _var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_NAME"):
    os.environ.pop(_var, None)  # a developer's own server must never receive test data

ROOT = Path(__file__).resolve().parents[1]

from support import register_fixture_version, snapshot_registry  # noqa: E402  (after the environment is set)
from support_k8s import cluster  # noqa: E402, F401  (the emulated Kubernetes API fixture)
from support_pg import postgres_url  # noqa: E402, F401  (a throwaway PostgreSQL server)


def _point_mlflow_at(mp: pytest.MonkeyPatch, folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mp.setenv("MODELOPS_HOME", str(folder))
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    mp.setenv("MLFLOW_EXPERIMENT_NAME", "tests")
    return uri


@pytest.fixture
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh MLflow SQLite store for one test; returns its tracking URI."""
    return _point_mlflow_at(monkeypatch, tmp_path / "mlflow")


@pytest.fixture(scope="module")
def module_mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One MLflow SQLite store shared by a module's tests."""
    with pytest.MonkeyPatch.context() as mp:
        yield _point_mlflow_at(mp, tmp_path_factory.mktemp("mlflow"))


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A temporary Prefect API (~20 s to start), shared by the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    from modelops.orchestration.engine import engine_settings

    with engine_settings(), prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def sample_csv() -> Path:
    """The bundled lead-scoring sample."""
    from modelops.data import SAMPLE_DATA

    return SAMPLE_DATA


@pytest.fixture
def registry_snapshot():
    """The :func:`snapshot_registry` function."""
    return snapshot_registry


@pytest.fixture
def make_version(mlflow_store: str):
    """:func:`register_fixture_version` against this test's own MLflow store."""
    return register_fixture_version


@pytest.fixture(scope="session")
def held_out_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Held-out lead data the fixtures' models never saw."""
    from modelops.sample import write_leads

    return write_leads(tmp_path_factory.mktemp("held_out") / "held_out.csv", 4000, seed=99)


@pytest.fixture
def version_factory():
    """:func:`register_fixture_version`, for tests that point MLflow somewhere themselves."""
    return register_fixture_version
