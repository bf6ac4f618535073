"""Real servers on loopback: an `mlflow server` backed by the throwaway PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support import mlflow_server as running_mlflow


@pytest.fixture(scope="module")
def mlflow_server(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` on loopback with the PostgreSQL backend and a local artifact store."""
    artifacts = tmp_path_factory.mktemp("mlflow-artifacts")
    log = artifacts.parent / f"mlflow-server-{artifacts.name}.log"
    destination = ("--artifacts-destination", artifacts.as_uri(), "--workers", "2")
    with running_mlflow(postgres_url, log, *destination) as url:
        yield url
