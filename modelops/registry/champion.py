"""Champion/challenger: score two versions on the same held-out data and compare them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelops.errors import ConfigurationError
from modelops.evaluation import DIRECTION, evaluate_binary

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient


@dataclass
class Comparison:
    """Champion vs challenger on the same held-out data, and which rows those were."""

    passed: bool
    rows: list[dict[str, Any]] = field(default_factory=list)
    rows_scored: int = 0
    # Which rows were scored, for people: "the challenger's held-out part of <source>", or
    # "the file <path>".
    rows_used: str = "held-out rows"
    # Of the rows scored, how many the champion was trained on (None: its training rows are
    # not known, e.g. a version logged by hand); its scores on those rows would be optimistic.
    champion_overlap: int | None = None
    # Rows of the challenger's held-out part left out because the champion trained on them.
    excluded: int = 0

    def overlap_text(self) -> str:
        """What the comparison did about rows the champion had seen in training."""
        if self.champion_overlap is None:
            return "the champion's training rows are not recorded: overlap not checked"
        if self.excluded:
            return (
                f"{self.excluded:,} row(s) the champion was trained on were left out; "
                f"the champion saw {self.champion_overlap:,} of the rows scored"
            )
        return f"the champion was trained on {self.champion_overlap:,} of the rows scored"

    def markdown(self, name: str, champion: str, challenger: str) -> str:
        """The comparison as a markdown table."""
        lines = [
            f"**Champion/challenger for {name}: "
            f"{'challenger wins' if self.passed else 'challenger REFUSED'}** "
            f"(champion v{champion}, challenger v{challenger}, {self.rows_scored:,} held-out rows)",
            "",
            f"- rows scored: {self.rows_used}",
            f"- overlap: {self.overlap_text()}",
            "",
            "| metric | champion | challenger | difference | allowed | result |",
            "|---|---:|---:|---:|---|---|",
        ]
        for r in self.rows:
            verdict = "ok" if r["passed"] else "**worse**"
            lines.append(
                f"| {r['metric']} | {r['champion']:.4f} | {r['challenger']:.4f} | "
                f"{r['difference']:+.4f} | {r['allowed']} | {verdict} |"
            )
        return "\n".join(lines)

    def text(self) -> str:
        """The comparison as plain-text rows for error messages and logs."""
        return "\n".join(
            f"  {r['metric']:<18} champion {r['champion']:.4f}  challenger "
            f"{r['challenger']:.4f}  ({r['difference']:+.4f})"
            for r in self.rows
        )

    def decisive_metrics(self) -> dict[str, float]:
        """``champion.<metric>`` and ``challenger.<metric>`` for the audit trail, with how many
        of the rows scored the champion had trained on (when known) and how many were left out
        for that."""
        counts: dict[str, float] = {}
        if self.champion_overlap is not None:
            counts["comparison.champion_overlap"] = float(self.champion_overlap)
        if self.excluded:
            counts["comparison.excluded"] = float(self.excluded)
        return (
            {f"challenger.{r['metric']}": r["challenger"] for r in self.rows}
            | {f"champion.{r['metric']}": r["champion"] for r in self.rows}
            | counts
        )

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable view."""
        return {
            "passed": self.passed,
            "rows": self.rows,
            "rows_scored": self.rows_scored,
            "rows_used": self.rows_used,
            "champion_overlap": self.champion_overlap,
            "excluded": self.excluded,
        }


def check_comparison(metrics: list[str], margin: float) -> None:
    """Refuse comparison settings that cannot work, before any model is loaded.

    Raises:
        ConfigurationError: an unknown metric, no metric, or a negative margin.
    """
    unknown = sorted(set(metrics) - set(DIRECTION))
    if unknown or not metrics:
        raise ConfigurationError(
            f"Comparison metrics must be a non-empty subset of {', '.join(DIRECTION)}; "
            f"got unknown {unknown}"
            if unknown
            else "Give at least one comparison metric."
        )
    if margin < 0:
        raise ConfigurationError(f"margin must be >= 0, got {margin}")


def compare(
    champion: dict[str, float], challenger: dict[str, float], metrics: list[str], margin: float
) -> Comparison:
    """The challenger passes if, on every metric, it is not worse than the champion by more
    than ``margin`` (absolute; lower-is-better metrics such as log_loss are handled).

    Raises:
        ConfigurationError: an unknown metric or a negative margin.
    """
    check_comparison(metrics, margin)
    rows = []
    for name in metrics:
        higher = DIRECTION[name]
        diff = challenger[name] - champion[name]
        ok = diff >= -margin if higher else diff <= margin
        rows.append(
            {
                "metric": name,
                "champion": champion[name],
                "challenger": challenger[name],
                "difference": diff,
                "allowed": f">= {-margin:+.4f}" if higher else f"<= {margin:+.4f}",
                "passed": bool(ok),
            }
        )
    return Comparison(passed=all(r["passed"] for r in rows), rows=rows)


@dataclass
class ScoringModel:
    """A registered sklearn model ready to score a held-out table."""

    version: str
    model: Any
    inputs: list[str]
    target: str | None
    positive_label: str | None
    signature: Any = None


def load_scoring_model(client: MlflowClient, name: str, version: str) -> ScoringModel:
    """Load a version's sklearn flavour (for probabilities) and its declared inputs."""
    from modelops.model_io import load_sklearn

    model, info = load_sklearn(client, name, version)
    schema = info.signature.inputs if info.signature is not None else None
    inputs = list(schema.input_names()) if schema is not None else []
    meta = info.metadata or {}
    return ScoringModel(
        version, model, inputs, meta.get("target"), meta.get("positive_label"), info.signature
    )


def score_on(model: ScoringModel, frame: pd.DataFrame, target: str) -> dict[str, float]:
    """Metrics of ``model`` on ``frame``.

    Raises:
        ConfigurationError: the frame lacks columns the model's signature needs, or the target.
    """
    missing = [c for c in model.inputs if c not in frame.columns]
    if missing:
        raise ConfigurationError(
            f"The held-out data does not match the signature of version {model.version}: "
            f"missing column(s) {missing}; the model expects {model.inputs}."
        )
    if target not in frame.columns:
        raise ConfigurationError(
            f"The held-out data has no target column {target!r} (columns: {list(frame.columns)})."
        )
    from modelops.training import encode_target

    positive: Any = model.positive_label
    values = set(frame[target].dropna().unique().tolist())
    if positive is not None and positive not in values:
        for candidate in values:  # metadata stores labels as text
            if str(candidate) == positive:
                positive = candidate
    y, _ = encode_target(frame[target], positive if positive in values else None)
    from modelops.serving.scoring import conform

    X = conform(frame, model.signature) if model.signature is not None else frame[model.inputs]
    try:
        proba = model.model.predict_proba(X)[:, 1]
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"Version {model.version} could not score the held-out data: {exc}"
        ) from exc
    return evaluate_binary(y, proba).metrics
