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
for _var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_NAME"):
    os.environ.pop(_var, None)  # a developer's own server must never receive test data

ROOT = Path(__file__).resolve().parents[1]


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

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def sample_csv() -> Path:
    """The bundled lead-scoring sample."""
    from modelops.data import SAMPLE_DATA

    return SAMPLE_DATA


def snapshot_registry() -> dict:
    """Every registered model's aliases and every version's tags, for before/after checks."""
    from modelops.settings import get_settings
    from modelops.tracking import get_client

    s = get_settings()
    client = get_client(s.resolved_tracking_uri, s.resolved_registry_uri)
    snapshot = {}
    for model in client.search_registered_models():
        versions = client.search_model_versions(f"name = '{model.name}'")
        snapshot[model.name] = {
            "aliases": {k: str(v) for k, v in model.aliases.items()},
            "versions": sorted((str(v.version), tuple(sorted(v.tags.items()))) for v in versions),
        }
    return snapshot


@pytest.fixture
def registry_snapshot():
    """The :func:`snapshot_registry` function."""
    return snapshot_registry


def register_fixture_version(
    name: str = "lead-scoring", good: bool = True, stage: bool = True
) -> str:
    """Register a real sklearn model version fast (no flow) in the store the environment names.

    A "bad" model is trained on shuffled labels: a challenger that must lose.
    """
    import numpy as np

    from modelops import registry
    from modelops.data import resolve_schema
    from modelops.models import log_sklearn_model
    from modelops.sample import make_leads
    from modelops.settings import get_settings
    from modelops.tracking import child_run, start_parent_run
    from modelops.training import EstimatorConfig, build_pipeline, fit_pipeline, split_dataset

    df = make_leads(3000, seed=11)
    if not good:
        df["won"] = np.random.default_rng(0).permutation(df["won"].to_numpy())
    schema = resolve_schema(df, "won", str(ROOT / "modelops/sample_data/leads.csv"))
    split = split_dataset(df, schema)
    model = fit_pipeline(build_pipeline(schema, EstimatorConfig()), split)
    ctx = start_parent_run(get_settings(), "fixture")
    with child_run(ctx, "train_model") as run_id:
        info = log_sklearn_model(
            ctx, run_id, model, split.X_train.head(3),
            metadata={"target": "won", "positive_label": "1"},
        )  # fmt: skip
    client = ctx.client()
    version, _ = registry.register_version(client, name, info.model_id, run_id)
    if stage:
        registry.set_alias_audited(
            client, name, "staging", str(version.version), action="set-staging",
            actor="fixture", reason="fixture",
        )  # fmt: skip
    return str(version.version)


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
