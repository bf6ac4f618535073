"""Search tasks: score candidates on a task runner (Dask by default), record them in MLflow."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from prefect import get_run_logger, task

from modelops import tracking, tuning
from modelops.errors import ConfigurationError
from modelops.params import TuningParams
from modelops.steps import tuning as search_steps
from modelops.tracking import TrackingContext
from modelops.types import LoadedData, Split, TrainingKey
from tasks.common import IO_TASK, artifact_key, markdown_artifact, table_artifact

# A candidate's own failure is a result, not an exception (see modelops.tuning.score_candidate):
# what is left to retry is a transient fault of the runner (a lost worker's connection).
score_candidate = task(
    name="score_candidate", task_run_name="candidate-{candidate.index}", **IO_TASK
)(tuning.score_candidate)


# What a candidate needs on a worker, imported as the worker starts (while the flow is still
# loading and validating the data) instead of when the first candidate arrives.
WORKER_PRELOAD = [
    "tasks.tuning",
    "sklearn.compose",
    "sklearn.ensemble",
    "sklearn.impute",
    "sklearn.linear_model",
    "sklearn.metrics",
    "sklearn.pipeline",
    "sklearn.preprocessing",
]


DASK_LOGGERS = (
    "distributed",
    "distributed.scheduler",
    "distributed.nanny",
    "distributed.core",
    "distributed.worker",
    "distributed.http.proxy",
)


class SearchRunner:
    """Where the candidates run, started in the background as soon as the flow starts: a Dask
    cluster (``address``, or a local one with a single-threaded worker process per core, so
    each fit has a core to itself), or nothing (``sequential``: one after another here).

    Starting a local cluster and importing scikit-learn in its workers takes seconds; done
    while the flow loads, validates and splits the data, it costs the search nothing.
    Likewise the cluster is shut down in the background once the candidates are scored.
    """

    def __init__(self, runner: str, address: str | None = None, workers: int | None = None):
        import concurrent.futures

        self.runner, self.address, self.workers = runner, address, workers
        self._threads = concurrent.futures.ThreadPoolExecutor(1, "dask-runner")
        self._started = None if runner == "sequential" else self._threads.submit(self._start)
        self._closed: Any = None

    @property
    def where(self) -> str:
        return (
            "this process" if self._started is None else f"Dask ({self.address or 'local cluster'})"
        )

    def _start(self) -> Any:
        from prefect_dask import DaskTaskRunner

        if self.address:
            dask = DaskTaskRunner(address=self.address)
        else:
            dask = DaskTaskRunner(
                cluster_kwargs={
                    "n_workers": self.workers or os.cpu_count() or 1,
                    "threads_per_worker": 1,
                    "processes": True,
                    "dashboard_address": ":0",
                    "preload": WORKER_PRELOAD,
                }
            )
        dask.__enter__()
        dask.client.wait_for_workers(1, timeout=120)
        return dask

    def get(self) -> Any:
        """The started Dask task runner, or None for sequential.

        Raises:
            ConfigurationError: the cluster could not be started or reached (says which).
        """
        if self._started is None:
            return None
        try:
            return self._started.result()
        except Exception as exc:
            where = (
                f"the Dask scheduler at {self.address}" if self.address else "a local Dask cluster"
            )
            raise ConfigurationError(
                f"Could not start or reach {where}: {type(exc).__name__}: {exc}. Check "
                f"dask_address (tcp://host:8786), or use runner=sequential."
            ) from exc

    def close_in_background(self) -> None:
        """Shut the cluster down while the flow goes on."""
        if self._started is not None and self._closed is None:
            self._closed = self._threads.submit(self._stop)

    def _stop(self) -> None:
        if self._started is not None and self._started.exception() is None:
            self._started.result().__exit__(None, None, None)

    def close(self) -> None:
        """Wait for the shutdown (starting it if needed)."""
        self.close_in_background()
        if self._closed is not None:
            with contextlib.suppress(Exception):
                self._closed.result(timeout=120)
        self._threads.shutdown(wait=True)


@contextlib.contextmanager
def search_runner(runner: str, address: str | None, workers: int | None) -> Iterator[SearchRunner]:
    """A :class:`SearchRunner` for a flow body, closed however the body ends; Dask's per-worker
    INFO chatter is kept out of the run log (its warnings stay)."""
    quiet = [
        logging.getLogger(n)
        for n in (
            *DASK_LOGGERS,
            *(name for name in logging.root.manager.loggerDict if name.startswith("distributed.")),
        )
    ]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(max(lg.getEffectiveLevel(), logging.WARNING))
    started = SearchRunner(runner, address, workers)
    try:
        yield started
    finally:
        started.close()
        for lg, level in zip(quiet, levels, strict=True):
            lg.setLevel(level)


def search_candidates(
    runner: SearchRunner,
    data: tuning.SearchData,
    candidates: list[tuning.SearchCandidate],
    seed: int,
) -> list[tuning.CandidateResult]:
    """Score every candidate, fanned out on the runner; results in candidate order."""
    logger = get_run_logger()
    dask = runner.get()
    if dask is None:
        results = [score_candidate(data, c, seed) for c in candidates]
    else:
        scattered = dask.client.scatter(data, broadcast=True)  # sent once, not per candidate
        futures = {
            c.index: dask.submit(
                score_candidate,
                {"data": scattered, "candidate": c, "seed": seed, "single_threaded": True},
            )
            for c in tuning.largest_first(candidates)
        }
        results = [futures[c.index].result() for c in candidates]
        runner.close_in_background()
    failed = [r for r in results if r.status == "failed"]
    for r in failed:
        logger.warning("Candidate %s (%s) failed: %s", r.index, r.kind, r.error)
    logger.info(
        "Scored %s candidate(s) in %s: %s finished, %s failed",
        len(results),
        runner.where,
        len(results) - len(failed),
        len(failed),
    )
    return results


@task(name="compute_tuning_key", **IO_TASK)
def compute_tuning_key(ctx: TrackingContext, data: LoadedData, params: TuningParams) -> TrainingKey:
    """The run's training key: data digest, search space and seed, code and library versions."""
    key = search_steps.tuning_key(ctx, data, params)
    get_run_logger().info("Training key %s", key.short)
    return key


@task(name="record_search", **IO_TASK)
def record_search(
    ctx: tracking.TrackingContext,
    results: list[tuning.CandidateResult],
    metric: str,
    model_name: str,
) -> tuning.CandidateResult:
    """Record every candidate in MLflow and the results table in Prefect; return the best.

    Raises:
        ConfigurationError: every candidate failed.
    """
    record = search_steps.record_search(ctx, results, metric)
    table_artifact(
        record.rows,
        key=artifact_key(model_name, "search-results"),
        description=f"{len(results)} candidates ranked by validation {metric}",
    )
    best = record.chosen()  # raises when every candidate failed, after the table is shown
    markdown_artifact(
        record.markdown,
        key=artifact_key(model_name, "search-summary"),
        description=f"Best: #{best.index} {best.kind} ({metric}={best.metrics[metric]:.4f})",
    )
    get_run_logger().info(
        "Best candidate: #%s %s %s (%s=%.4f)",
        best.index,
        best.kind,
        best.params,
        metric,
        best.metrics[metric],
    )
    return best


@task(name="prepare_search", **IO_TASK)
def prepare_search(split: Split, schema: Any, seed: int) -> tuning.SearchData:
    """The validation part the candidates are scored on, carved from the training part."""
    return tuning.search_data(schema, split.X_train, split.y_train, seed)
