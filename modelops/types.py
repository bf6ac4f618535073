"""Hand-off types: what one step gives the next, what flows take and what they return.

Every value that crosses a task or flow boundary has its type here, so a reader can see the
whole data flow in one file. Domain results that carry behaviour (``Evaluation`` and
``GateDecision`` in :mod:`modelops.evaluation`, ``Comparison`` in
:mod:`modelops.registry.champion`) live with that behaviour.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import pandas as pd

    from modelops.data import DatasetInfo, DatasetSchema


# ----------------------------------------------------------------------------- audit trail


class AuditEvent(BaseModel):
    """One entry of a model version's audit trail: who moved what, when, why.

    Stored as JSON in a version tag ``modelops.audit.<UTC time>`` (see
    :mod:`modelops.registry.audit`); every promotion, refusal, archive and rollback is one.
    Unknown fields are kept, so events written by newer code still read back whole.
    """

    model_config = ConfigDict(extra="allow")

    action: str
    actor: str
    reason: str = ""
    alias: str | None = None
    from_version: str | None = None
    to_version: str | None = None
    time: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())
    flow_run_id: str | None = None
    mlflow_run_id: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    compared_with: str | None = None
    staging_override: str | None = None
    basis: str | None = None  # what decided it: the comparison, the gate, an override
    # Multi-step moves (promote, rollback) are written first as "started" and marked
    # "completed" last; one interrupted by a killed process is finished or "abandoned" by the
    # next promotion or rollback of the model (modelops.registry.promotion.recover).
    state: str | None = None
    restores_previous: str | None = None  # rollback: what previous-production becomes
    archive_existing: bool | None = None  # promote: retire the old champion archived (None: yes)
    recovered: str | None = None  # how an interrupted move was finished or abandoned

    @property
    def when(self) -> datetime:
        """``time`` as a datetime."""
        return datetime.fromisoformat(self.time)

    def to_json(self) -> str:
        """The stored form: sorted keys, unset optional fields left out."""
        return json.dumps(self.model_dump(mode="json", exclude_none=True), sort_keys=True)


# ----------------------------------------------------------------------------- training spine


@dataclass
class LoadedData:
    """A loaded table with its schema and identity; handed between steps in memory."""

    frame: pd.DataFrame
    schema: DatasetSchema
    info: DatasetInfo


@dataclass
class Split:
    """A stratified train/test split with the target encoded as 0/1."""

    X_train: pd.DataFrame
    X_test: pd.DataFrame
    y_train: Any
    y_test: Any
    labels: tuple[Any, Any]  # (negative, positive) as they appear in the data
    # Positions (0-based, sorted) in the loaded table of the held-out rows; None when no part
    # is held out (the library's cross-validated small tables fit on every row).
    test_rows: Any = None

    @property
    def sizes(self) -> dict[str, int]:
        """Row counts per part."""
        return {"train_rows": len(self.X_train), "test_rows": len(self.X_test)}


@dataclass
class LoggedModel:
    """A model logged to MLflow (a ``LoggedModel`` under a run), ready to be registered."""

    run_id: str
    model_id: str
    model_uri: str


@dataclass
class TrainedModel:
    """A fitted scikit-learn pipeline, kept in memory for evaluation, and where MLflow has it
    (``logged`` is None when it was trained without MLflow: the Python API's
    ``enable_mlflow=False``)."""

    pipeline: Any
    labels: tuple[Any, Any] = (0, 1)  # (negative, positive)
    logged: LoggedModel | None = None


@dataclass
class TextData:
    """A validated text table split for training and evaluation, labels as indices."""

    train_texts: list[str]
    train_targets: list[int]
    test_texts: list[str]
    test_targets: list[int]
    labels: list[str]
    report: dict[str, Any]
    source: str = ""  # where the table was read
    digest: str = ""  # its content digest (modelops.data.dataset_digest): part of the key


class RegisteredVersion(BaseModel):
    """A model version as the flows report it."""

    name: str
    version: str
    run_id: str
    source: str
    created: bool


class TrainingKey(BaseModel):
    """What a trained model is a function of (:mod:`modelops.training_key`): data digest,
    resolved parameters, code and library versions, as a hex digest and its readable parts."""

    digest: str
    parts: dict[str, Any]

    @property
    def short(self) -> str:
        """The first 12 characters, as people are shown it."""
        return self.digest[:12]


class Reuse(BaseModel):
    """Whether a training run reuses a registered version with its key instead of training.

    ``version`` is None when the run trains; ``reason`` then says why (no version with this key,
    its artifacts gone, forced), else what was reused."""

    key: TrainingKey
    version: RegisteredVersion | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    reason: str


# ----------------------------------------------------------------------------- flow results


class TrainingResult(BaseModel):
    """What a successful training run produced."""

    model_name: str
    version: str
    alias: str | None
    mlflow_run_id: str
    mlflow_experiment_id: str = ""
    metrics: dict[str, float]
    rows: int
    gate: list[dict[str, Any]] = Field(default_factory=list)
    validation: dict[str, Any] = Field(default_factory=dict)
    training_key: str = ""
    # "reused version N: same data, parameters and code" when nothing was trained
    reused: str | None = None


class Candidate(BaseModel):
    """The version asked to be promoted, and where the lifecycle aliases stood when it was
    resolved (the champion it must beat)."""

    name: str
    version: str
    run_id: str | None
    champion: str | None
    staging: str | None
    staging_override: str | None = None


class TextTrainingResult(TrainingResult):
    """What a successful text-training run produced."""

    labels: list[str]
    train_samples_per_second: float


class SnapshotResult(BaseModel):
    """A pre-trained snapshot registered as a version."""

    model_name: str
    version: str
    alias: str | None
    mlflow_run_id: str
    metadata: dict[str, Any]


class PromotionResult(BaseModel):
    """What a promotion did: ``production`` now points at ``version``."""

    name: str
    version: str
    previous_production: str | None
    changed: bool


class RollbackResult(BaseModel):
    """What a rollback did: ``production`` is back on ``version``."""

    name: str
    version: str
    rolled_back: str | None


class RolloutResult(BaseModel):
    """How a live rollout ended: ``promoted`` (the candidate is production and serves alone),
    ``aborted`` (a step failed: the candidate was taken out of traffic and tagged), or
    ``inconclusive`` (not enough evidence in time: nothing changed)."""

    name: str
    stable: str
    candidate: str
    mode: str
    outcome: str
    reason: str
    production: str | None
    previous_production: str | None = None
    url: str | None = None
    steps: list[dict[str, Any]] = Field(default_factory=list)  # each step's analysis


class ServingTarget(BaseModel):
    """A resolved model version and the request that smoke-tests it."""

    name: str
    version: str
    run_id: str | None
    payload: dict[str, Any]
    rows: int
    flavors: list[str] = Field(default_factory=list)


class DeploymentRecord(BaseModel):
    """Where a model version now serves, as recorded in MLflow and on the version."""

    target: str  # "local" or "kubernetes"
    version: str
    url: str | None = None
    previous_version: str | None = None
    # kubernetes
    namespace: str | None = None
    deployment: str | None = None
    service: str | None = None
    image: str | None = None
    action: str | None = None  # created, patched or unchanged
    cluster: str | None = None  # how the cluster was reached
    # local
    pid: int | None = None
    log: str | None = None
    stop: str | None = None  # the command that stops it
    # a request it answers (from the version's input example): what to try it with
    example: dict[str, Any] | None = None
    # provenance, filled when recorded
    time: str | None = None
    flow_run_id: str | None = None
    mlflow_run_id: str | None = None


class LifecycleResult(BaseModel):
    """What the lifecycle flow did, stage by stage."""

    model_name: str
    version: str
    aliases: list[str]
    metrics: dict[str, float]
    mlflow_run_id: str
    production: str | None = None
    serving_url: str | None = None
    input_example: dict[str, Any] | None = None
    # what a re-run found already done: the reused version, unchanged production and server
    reused: list[str] = Field(default_factory=list)


@dataclass
class RecordedInputs:
    """What a version was trained from, as recorded on its runs."""

    model_name: str
    version: str
    run_id: str  # the version's run (the fit)
    parts: dict[str, Any]  # the training key's readable parts
    metrics: dict[str, float]  # the held-out metrics it was gated on
    estimator: dict[str, Any] | None = None  # tabular and tuning: the estimator fitted
    base_model: str | None = None  # text: the base snapshot and its revision
    revision: str | None = None
    held_out_rows: list[int] | None = None  # tabular: the split's held-out positions

    @property
    def kind(self) -> str:
        """ "tabular", "tuning" or "text"."""
        return str(self.parts.get("kind", "tabular"))

    @property
    def params(self) -> dict[str, Any]:
        """The resolved parameters of the key."""
        return dict(self.parts.get("params") or {})


@dataclass
class Rebuild:
    """A model retrained from recorded inputs, with what it predicts on the held-out rows."""

    key: TrainingKey
    metrics: dict[str, float]
    proba: Any  # held-out probabilities (rows x classes)
    held_out: Any  # the held-out inputs the recorded version is scored on too
    rows: list[int] | None = None
    logged: LoggedModel | None = None
    warnings: list[str] = dc_field(default_factory=list)


class Reproduction(BaseModel):
    """A version rebuilt from its recorded inputs, and how the rebuild compares."""

    model_name: str
    version: str
    verdict: str  # identical, within tolerance, different
    tolerance: float
    metrics: list[dict[str, Any]]  # metric, recorded, rebuilt, difference
    max_prediction_difference: float | None
    held_out_rows: int
    warnings: list[str] = Field(default_factory=list)
    registered_version: str | None = None
    mlflow_run_id: str = ""
