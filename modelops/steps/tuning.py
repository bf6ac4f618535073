"""The search's record: one nested MLflow run per candidate, the results table, the best one.

The search itself (candidates, the validation part, fitting and scoring one candidate, ranking)
is :mod:`modelops.tuning`; the ``tuning`` flow fans the scoring out and hands the results here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelops import tracking, tuning
from modelops.params import TuningParams
from modelops.steps.training import data_identity, record_key, schema_identity
from modelops.training_key import TABULAR_LIBRARIES, make_key
from modelops.types import LoadedData, TrainingKey


def tuning_key(
    ctx: tracking.TrackingContext | None, data: LoadedData, params: TuningParams
) -> TrainingKey:
    """The key of a ``tuning`` run: the data digest, the resolved schema, the search space
    (which candidates, how many, picked by which metric), the seed, the split, the gate, the
    code and library versions; where candidates run (Dask or not) picks the same best one, so
    it is left out. Recorded on the parent run."""
    key = make_key(
        "tuning",
        data_identity(data),
        {
            "schema": schema_identity(data),
            "search": params.search,
            "n_candidates": params.n_candidates,
            "metric": params.metric,
            "test_size": params.test_size,
            "random_seed": params.random_seed,
            "thresholds": params.thresholds,
        },
        TABULAR_LIBRARIES,
    )
    record_key(ctx, ctx.parent_run_id if ctx else None, key)
    return key


RESULTS_MARKDOWN = "search/results.md"
RESULTS_JSON = "search/results.json"


@dataclass
class SearchRecord:
    """What :func:`record_search` wrote: the ranked table, and the best candidate (None when
    every candidate failed)."""

    results: list[tuning.CandidateResult]
    metric: str
    best: tuning.CandidateResult | None
    markdown: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(r.status == "failed" for r in self.results)

    def chosen(self) -> tuning.CandidateResult:
        """The best candidate.

        Raises:
            ConfigurationError: every candidate failed (their errors are listed).
        """
        return tuning.best_candidate(self.results, self.metric)


def record_search(
    ctx: tracking.TrackingContext, results: list[tuning.CandidateResult], metric: str
) -> SearchRecord:
    """One nested MLflow run per candidate (params, validation metrics; FAILED with its error),
    the results table as MLflow artifacts, and the best candidate tagged on the parent run.

    Every candidate is recorded even when all of them failed (then nothing is tagged best):
    the table is what tells a person why.
    """
    best = tuning.best_or_none(results, metric)
    for r in results:
        tags = {
            "modelops.candidate": str(r.index),
            "modelops.search_metric": metric,
            "modelops.best_candidate": str(best is not None and r.index == best.index).lower(),
        }
        if r.error:
            tags["error.message"] = r.error[:4900]
        tracking.record_run(
            ctx,
            f"candidate-{r.index}-{r.kind}",
            {"estimator": r.kind, **r.params},
            {**{f"val_{k}": v for k, v in r.metrics.items()}, "fit_seconds": r.fit_seconds},
            tags=tags,
            status="FINISHED" if r.status == "finished" else "FAILED",
        )
    markdown = tuning.results_markdown(results, metric, best.index if best else None)
    tracking.log_text(ctx, ctx.parent_run_id, markdown, RESULTS_MARKDOWN)
    tracking.log_json(ctx, ctx.parent_run_id, [r.as_dict() for r in results], RESULTS_JSON)
    record = SearchRecord(results, metric, best, markdown, [r.row(metric) for r in results])
    if best is not None:
        tracking.set_tags(
            ctx,
            ctx.parent_run_id,
            {
                "modelops.search.best": str(best.index),
                "modelops.search.candidates": str(len(results)),
                "modelops.search.failed": str(record.failed),
            },
        )
    return record
