"""Where a hyper-parameter search runs: a Dask cluster (a local one started for the run, or an
existing one by address) through prefect-dask, or sequentially in the flow's process. Prefect
glue, not a task: it starts and stops runners and fans the ``score_candidate`` task out."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from prefect import get_run_logger

from modelops import tuning
from modelops.errors import ConfigurationError
from tasks.tuning import score_candidate

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
