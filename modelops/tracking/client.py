"""Where MLflow lives: a client per store (created safely when runs race a fresh database), the
experiment a run goes to (restored if someone deleted it), and the one place that touches
MLflow's process-wide tracking URI."""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient

# MLflow retries each HTTP request 7 times over ~4 minutes by default, which made a step wait
# minutes on a server that is down for good, and then the task's own retries multiplied that.
# Requests retry briefly here and the task retry policy (modelops.errors.is_transient) decides
# the rest: a server back within ~40 s is survived, one down for good fails in under a minute.
# MLflow reads these only from the environment; a value already set there wins.
HTTP_RETRY_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}


@functools.lru_cache(maxsize=16)
def get_client(tracking_uri: str, registry_uri: str | None = None) -> MlflowClient:
    """A cached ``MlflowClient`` for a store, initialised once, safely.

    Concurrent first runs on a fresh store race MLflow's schema migration (SQLite:
    ``table _alembic_tmp_experiments already exists``; PostgreSQL: ``duplicate key ...
    alembic_version``). A SQLite store is created under a file lock beside it (and switched to
    WAL journaling); other SQL stores retry while another process is creating them.
    """
    import os

    from mlflow import MlflowClient

    if tracking_uri.startswith(("http://", "https://")):
        for key, value in HTTP_RETRY_DEFAULTS.items():
            os.environ.setdefault(key, value)

    def make() -> MlflowClient:
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri or tracking_uri)
        client.search_experiments(max_results=1)  # creates and migrates a SQL store's tables
        client.search_registered_models(max_results=1)
        return client

    uris = {tracking_uri, registry_uri or tracking_uri}
    sqlite = [Path(u.removeprefix("sqlite:///")) for u in uris if u.startswith("sqlite:///")]
    if any(db.name not in (":memory:", "") for db in sqlite):
        return _under_file_lock([db for db in sqlite if db.name not in (":memory:", "")], make)
    if any(u.split(":", 1)[0].split("+")[0] in ("postgresql", "mysql", "mssql") for u in uris):
        return _retrying_creation_race(make)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri or tracking_uri)


# What a process sees when another is creating or migrating the same fresh database.
_CREATION_RACE = ("already exists", "duplicate key", "database is locked", "out-of-date")


def _retrying_creation_race(make: Callable[[], MlflowClient], attempts: int = 20) -> MlflowClient:
    """Make a client of a SQL store that other processes may be creating at the same moment.

    Two first runs on a fresh PostgreSQL database both try to create MLflow's tables, and one
    fails (``duplicate key ... alembic_version``); a moment later the tables exist and it works.
    """
    for attempt in range(attempts):
        try:
            return make()
        except Exception as exc:
            text = str(exc).lower()
            if attempt == attempts - 1 or not any(race in text for race in _CREATION_RACE):
                raise
            time.sleep(0.25 * (attempt + 1))
    raise AssertionError("unreachable")


def _under_file_lock(dbs: list[Path], make: Callable[[], MlflowClient]) -> MlflowClient:
    """Make a client of SQLite stores while holding a lock file beside each, so concurrent
    first runs do not race the schema migration; the stores are switched to WAL journaling
    (readers no longer block the writer), which the file keeps."""
    import fcntl
    import sqlite3

    with contextlib.ExitStack() as stack:
        for db in sorted(set(dbs)):
            db.parent.mkdir(parents=True, exist_ok=True)
            lock = stack.enter_context(open(db.with_name(db.name + ".lock"), "a"))
            fcntl.flock(lock, fcntl.LOCK_EX)
        client = make()
        for db in set(dbs):
            with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
        return client


def ensure_experiment(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    """The id of experiment ``name``, creating it if needed (safe when two runs race).

    A deleted experiment of that name is restored: MLflow keeps its name reserved, so creating
    it again would fail, and its runs are this project's history.
    """
    from mlflow.exceptions import MlflowException

    existing = client.get_experiment_by_name(name)
    if existing is not None:
        if existing.lifecycle_stage == "deleted":
            client.restore_experiment(existing.experiment_id)
        return existing.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        found = client.get_experiment_by_name(name)
        assert found is not None
        return found.experiment_id


_GLOBAL_URI_LOCK = threading.RLock()


@contextlib.contextmanager
def use_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's process-wide tracking URI at ``uri`` for a block, then put it back.

    The one place this project touches MLflow's global state, for the one call that needs it:
    MLflow's SQL registry resolves a ``models:/<id>`` source in ``create_model_version`` with the
    process-wide URI instead of the client's. Everything else passes URIs explicitly
    (:mod:`modelops.model_io`). ``mlflow.set_tracking_uri`` also writes
    ``MLFLOW_TRACKING_URI`` into ``os.environ``; both are restored on exit, and a lock keeps two
    threads from swapping the URI under each other.
    """
    import os

    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    with _GLOBAL_URI_LOCK:
        saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
        saved_global = tracking_utils._tracking_uri  # None means "follow the environment"
        mlflow.set_tracking_uri(uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(saved_global)  # type: ignore[arg-type]  # None = unset
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
