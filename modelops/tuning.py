"""Hyper-parameter search: candidates from a grid, each fitted and scored on a validation part.

No Prefect here: the ``tuning`` flow fans :func:`score_candidate` out over a task runner (Dask
by default) and sends the best candidate through the training spine (fit on the whole training
part, held-out evaluation, gate, registration, staging).
"""

from __future__ import annotations

import itertools
import random
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, get_args

from modelops.errors import ConfigurationError
from modelops.evaluation import DIRECTION, METRICS, evaluate_binary
from modelops.training import EstimatorConfig, EstimatorKind, build_pipeline

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from modelops.data import DatasetSchema

_PARALLEL_KINDS = {"random_forest"}  # kinds whose n_jobs spreads one fit over every core
VALIDATION_FRACTION = 0.25  # of the training part: scores candidates; the test part stays unseen


@dataclass(frozen=True)
class SearchCandidate:
    """One point of the search: an estimator kind and its hyper-parameters."""

    index: int
    config: EstimatorConfig

    @property
    def label(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in sorted(self.config.params.items()))
        return f"{self.config.kind}({params})"


@dataclass
class CandidateResult:
    """What fitting and scoring one candidate gave: metrics, or the error that stopped it."""

    index: int
    kind: str
    params: dict[str, Any]
    status: str  # "finished" or "failed"
    metrics: dict[str, float] = field(default_factory=dict)
    fit_seconds: float = 0.0
    error: str | None = None
    worker: str = ""  # host:pid of the process that fitted it

    def row(self, metric: str) -> dict[str, Any]:
        """One row of the results table."""
        return {
            "candidate": self.index,
            "estimator": self.kind,
            "params": ", ".join(f"{k}={v!r}" for k, v in sorted(self.params.items())),
            "status": self.status,
            metric: round(self.metrics[metric], 4) if metric in self.metrics else None,
            "fit_seconds": round(self.fit_seconds, 3),
            "worker": self.worker,
            "error": self.error or "",
        }

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def expand_search(
    search: dict[str, dict[str, Any]], n_candidates: int | None = None, seed: int = 42
) -> list[SearchCandidate]:
    """The candidates of a grid: every combination of each estimator kind's parameter values.

    Args:
        search: estimator kind -> {hyper-parameter: value or list of values}, e.g.
            ``{"logistic_regression": {"C": [0.1, 1, 10]}, "random_forest": {}}`` (an empty
            mapping is the kind with its defaults).
        n_candidates: draw this many distinct combinations at random (seeded) instead of
            taking the whole grid.
        seed: seed of the random draw.

    Raises:
        ConfigurationError: an unknown estimator kind, an unknown hyper-parameter name, an
            empty value list, or an empty search — all before anything is trained.
    """
    if not isinstance(search, dict) or not search:
        raise ConfigurationError(
            "The search is empty. Give estimator kinds with value lists, e.g. "
            '{"logistic_regression": {"C": [0.1, 1.0]}, "random_forest": {"max_depth": [4, 8]}}.'
        )
    kinds = get_args(EstimatorKind)
    unknown = sorted(set(search) - set(kinds))
    if unknown:
        raise ConfigurationError(
            f"Unknown estimator kind(s) in the search: {', '.join(unknown)}. "
            f"Known: {', '.join(kinds)}."
        )
    candidates: list[EstimatorConfig] = []
    for kind, grid in search.items():
        grid = grid or {}
        if not isinstance(grid, dict):
            raise ConfigurationError(
                f"The search for {kind} must map hyper-parameter names to value lists, got {grid!r}"
            )
        _check_names(kind, grid)
        names = sorted(grid)
        values = [v if isinstance(v, list | tuple) else [v] for v in (grid[n] for n in names)]
        empty = [n for n, v in zip(names, values, strict=True) if not v]
        if empty:
            raise ConfigurationError(
                f"No values to try for {kind}: {', '.join(empty)} (give at least one value)"
            )
        for combo in itertools.product(*values):
            params = dict(zip(names, combo, strict=True))
            candidates.append(EstimatorConfig(kind=kind, params=params))  # type: ignore[arg-type]
    if n_candidates is not None:
        if n_candidates < 1:
            raise ConfigurationError(f"n_candidates must be at least 1, got {n_candidates}")
        if n_candidates < len(candidates):
            picked = sorted(random.Random(seed).sample(range(len(candidates)), n_candidates))
            candidates = [candidates[i] for i in picked]
    return [SearchCandidate(index=i, config=c) for i, c in enumerate(candidates)]


def largest_first(candidates: list[SearchCandidate]) -> list[SearchCandidate]:
    """The candidates in the order to hand them to workers: the costliest fits first.

    With fewer workers than candidates the search ends when the last worker does; started in
    grid order, the biggest fits tend to come last and one of them runs alone at the end
    (8 gradient-boosting candidates on 2 workers: 15 % longer than needed). Longest first
    evens that out. The cost is a rough guess from the parameters that scale a fit (trees x
    depth, boosting iterations); a wrong guess only costs that evening-out.
    """
    return sorted(candidates, key=lambda c: -_relative_cost(c.config))


def _relative_cost(config: EstimatorConfig) -> float:
    def number(name: str, default: float) -> float:
        value = config.params.get(name, default)
        return float(value) if isinstance(value, int | float) and value else default

    if config.kind in ("gradient_boosting", "random_forest"):
        trees = number("n_estimators", 100 if config.kind == "gradient_boosting" else 200)
        depth = number("max_depth", 3 if config.kind == "gradient_boosting" else 12)
        return trees * depth * number("subsample", 1.0)
    if config.kind == "hist_gradient_boosting":
        return number("max_iter", 100) * 5
    return 10.0  # a linear model: cheap


def _check_names(kind: str, grid: dict[str, Any]) -> None:
    from modelops.training import _make_estimator

    valid = set(_make_estimator(EstimatorConfig(kind=kind), seed=0).get_params())  # type: ignore[arg-type]
    bad = sorted(set(grid) - valid)
    if bad:
        raise ConfigurationError(
            f"Unknown hyper-parameter(s) for {kind}: {', '.join(bad)}. "
            f"Valid names: {', '.join(sorted(valid))}."
        )


def check_metric(metric: str) -> str:
    """The metric candidates are ranked by must be one the evaluation reports."""
    if metric not in METRICS:
        raise ConfigurationError(
            f"Unknown search metric {metric!r}. Choose one of: {', '.join(METRICS)}."
        )
    return metric


@dataclass(frozen=True)
class SearchData:
    """The training part, split again: candidates fit on ``fit`` and are scored on ``val``."""

    schema: DatasetSchema
    X_fit: pd.DataFrame
    y_fit: np.ndarray
    X_val: pd.DataFrame
    y_val: np.ndarray


def search_data(
    schema: DatasetSchema, X_train: pd.DataFrame, y_train: np.ndarray, seed: int
) -> SearchData:
    """Carve a stratified validation part out of the training part (the test part is kept for
    the chosen model's held-out evaluation, so the reported metrics are not the ones it was
    picked on)."""
    from sklearn.model_selection import train_test_split

    try:
        X_fit, X_val, y_fit, y_val = train_test_split(
            X_train, y_train, test_size=VALIDATION_FRACTION, random_state=seed, stratify=y_train
        )
    except ValueError as exc:
        raise ConfigurationError(
            f"The training part is too small to hold out a validation part for the search: "
            f"{exc}. Use more rows."
        ) from exc
    return SearchData(schema, X_fit, y_fit, X_val, y_val)


def score_candidate(
    data: SearchData, candidate: SearchCandidate, seed: int, single_threaded: bool = False
) -> CandidateResult:
    """Fit one candidate on the fit part and score it on the validation part.

    ``single_threaded`` fits estimators that take ``n_jobs`` with one (unless the search set
    it): on a Dask worker with one thread, each candidate has one core to itself.

    Never raises for the candidate's own failure (bad hyper-parameter combination, a fit that
    does not converge to anything usable): the result says ``failed`` with the error, so one
    bad candidate does not sink the search.
    """
    import os
    import socket

    config = candidate.config
    worker = f"{socket.gethostname()}:{os.getpid()}"
    started = time.perf_counter()
    try:
        pipeline = build_pipeline(data.schema, config, seed=seed)
        model = pipeline.named_steps["model"]
        if single_threaded and config.kind in _PARALLEL_KINDS and "n_jobs" not in config.params:
            model.set_params(n_jobs=1)
        pipeline.fit(data.X_fit, data.y_fit)
        proba = pipeline.predict_proba(data.X_val)[:, 1]
        metrics = evaluate_binary(data.y_val, proba).metrics
    except Exception as exc:  # the candidate failed, not the search
        last = traceback.extract_tb(exc.__traceback__)[-1:]
        where = f" ({last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno})" if last else ""
        return CandidateResult(
            candidate.index,
            config.kind,
            dict(config.params),
            "failed",
            fit_seconds=time.perf_counter() - started,
            error=f"{type(exc).__name__}: {exc}{where}"[:1000],
            worker=worker,
        )
    return CandidateResult(
        candidate.index,
        config.kind,
        dict(config.params),
        "finished",
        metrics=metrics,
        fit_seconds=time.perf_counter() - started,
        worker=worker,
    )


def best_or_none(results: list[CandidateResult], metric: str) -> CandidateResult | None:
    """The finished candidate with the best ``metric`` (ties: the earlier candidate), or None
    when none finished."""
    finished = [r for r in results if r.status == "finished" and metric in r.metrics]
    if not finished:
        return None
    sign = 1 if DIRECTION[metric] else -1
    return max(finished, key=lambda r: (sign * r.metrics[metric], -r.index))


def best_candidate(results: list[CandidateResult], metric: str) -> CandidateResult:
    """The finished candidate with the best ``metric`` (ties: the earlier candidate).

    Raises:
        ConfigurationError: every candidate failed (their errors are listed).
    """
    best = best_or_none(results, metric)
    if best is None:
        errors = "; ".join(f"#{r.index} {r.kind}: {r.error}" for r in results[:5])
        raise ConfigurationError(f"Every candidate of the search failed: {errors}")
    return best


def results_markdown(results: list[CandidateResult], metric: str, best: int | None) -> str:
    """The results table as markdown, best candidate marked."""
    lines = [
        f"| # | estimator | params | status | {metric} | fit s | error |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: r.index):
        row = r.row(metric)
        mark = " **(best)**" if r.index == best else ""
        value = "" if row[metric] is None else f"{row[metric]:.4f}"
        lines.append(
            f"| {r.index}{mark} | {r.kind} | {row['params']} | {r.status} | {value} "
            f"| {row['fit_seconds']} | {row['error'].replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n"
