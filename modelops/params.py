"""Flow parameters that several flows share, defined once.

``training`` and ``lifecycle`` take the same training parameters; rather than copy a list of
keyword arguments, each flow takes one pydantic model and :func:`keyword_parameters` exposes its
fields as the flow's keyword parameters. Prefect builds the UI form, the deployment schema and
the validation of ``-p key=value`` from that signature, and ``modelops <command> --help`` lists
the same fields with the same descriptions: one definition, every surface.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    ValidationError,
    model_validator,
)

from modelops.data import FeatureSpec
from modelops.errors import ConfigurationError
from modelops.evaluation import check_thresholds
from modelops.naming import check_alias, check_model_name
from modelops.training import EstimatorConfig

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")


def _as_value_error(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Pydantic reports ValueError as a parameter error; ours raise ConfigurationError."""

    @functools.wraps(check)
    def run(value: Any) -> Any:
        try:
            return check(value)
        except ConfigurationError as exc:
            raise ValueError(str(exc)) from exc

    return run


ModelName = Annotated[str, AfterValidator(_as_value_error(check_model_name))]
StageAlias = Annotated[
    str | None,
    BeforeValidator(lambda v: None if v in ("", "none", "None") else v),  # "" means no alias
    AfterValidator(_as_value_error(lambda v: None if v is None else check_alias(v))),
]


def _comma_separated(value: Any) -> Any:
    """``10,50`` (the command line's spelling) or one number, as a list."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [value]
    return value


# A rollout's steps: the candidate's share of requests at each, in percent (10,50 or [10, 50]).
RolloutSteps = Annotated[list[float], BeforeValidator(_comma_separated)]


BinaryThresholds = Annotated[
    dict[str, float], AfterValidator(_as_value_error(lambda v: check_thresholds(v, "binary")))
]
TextThresholds = Annotated[
    dict[str, float], AfterValidator(_as_value_error(lambda v: check_thresholds(v, "text")))
]


class _TrainingData(BaseModel):
    """What every training flow takes: the data, the model name, the gate, the staging."""

    data_path: str | None = Field(
        default=None,
        description="CSV or Parquet path/URI; empty for the bundled lead-scoring sample.",
    )
    target: str = Field(default="won", description="The binary label column.")
    model_name: ModelName = Field(default="lead-scoring", description="The registered model name.")
    thresholds: BinaryThresholds = Field(
        default_factory=lambda: {"roc_auc": 0.7, "precision": 0.6},
        description="The quality gate: minimum held-out metric values (maximum for losses "
        "such as log_loss) a model needs to be registered.",
    )
    test_size: float = Field(default=0.2, gt=0, lt=1, description="Held-out fraction.")
    random_seed: int = Field(default=42, description="Seed for the split and the estimator.")
    features: dict[str, FeatureSpec] | None = Field(
        default=None,
        description="Declared feature schema; default: `<data>.schema.json` beside the file, "
        "else inferred from the data.",
    )
    min_rows: int = Field(default=100, ge=1, description="Fewest rows a training table may have.")
    stage_alias: StageAlias = Field(
        default="staging",
        description="The alias the new version gets once registered (empty: none); "
        "production is reached through promotion only.",
    )
    actor: str | None = Field(
        default=None,
        description="Who to record in the audit trail; default the deployment or OS user.",
    )
    force_retrain: bool = Field(
        default=False,
        description="Train even when a registered version has this run's training key (the "
        "same data, parameters and code), which is otherwise reused.",
    )


class TrainingParams(_TrainingData):
    """Parameters of the ``training`` flow (and the training stage of ``lifecycle``)."""

    estimator: EstimatorConfig = Field(
        default_factory=EstimatorConfig,
        description="scikit-learn estimator kind and hyper-parameters.",
    )


def _default_search() -> dict[str, dict[str, Any]]:
    return {
        "logistic_regression": {"C": [0.1, 1.0, 10.0]},
        "hist_gradient_boosting": {"learning_rate": [0.05, 0.1], "max_depth": [3, None]},
    }


class TuningParams(_TrainingData):
    """Parameters of the ``tuning`` flow: a search instead of one estimator."""

    search: dict[str, dict[str, Any]] = Field(
        default_factory=_default_search,
        description="Estimator kind -> {hyper-parameter: [values]}; every combination is a "
        'candidate, e.g. {"random_forest": {"max_depth": [4, 8]}, "logistic_regression": {}}.',
    )
    n_candidates: int | None = Field(
        default=None,
        ge=1,
        description="Try this many combinations drawn at random (seeded); default all.",
    )
    metric: str = Field(
        default="roc_auc", description="The validation metric that picks the best candidate."
    )
    runner: Literal["dask", "sequential"] = Field(
        default="dask",
        description='Where candidates run: "dask" (a local Dask cluster, or dask_address) or '
        '"sequential" (one after another in the flow process).',
    )
    dask_address: str | None = Field(
        default=None,
        description="Scheduler address of an existing Dask cluster (e.g. tcp://host:8786); "
        "default a local cluster started for the run.",
    )
    dask_workers: int | None = Field(
        default=None, ge=1, description="Workers of the local cluster (default one per core)."
    )

    @model_validator(mode="after")
    def _check_search(self) -> TuningParams:
        from modelops.tuning import check_metric, expand_search

        try:
            check_metric(self.metric)
            expand_search(self.search, self.n_candidates, self.random_seed)
        except ConfigurationError as exc:
            raise ValueError(str(exc)) from exc
        if self.dask_address and self.runner != "dask":
            raise ValueError(f"dask_address is only used with runner=dask, not {self.runner!r}")
        return self


class LifecycleParams(TrainingParams):
    """Parameters of the ``lifecycle`` flow: training, then how far to take the model."""

    promote_to: Literal["staging", "production"] = Field(
        default="staging",
        description='Stop at "staging", or go on to "production" (champion/challenger).',
    )
    held_out_path: str | None = Field(
        default=None,
        description="Data for champion/challenger (default: the challenger's held-out rows).",
    )
    compare_metrics: list[str] = Field(
        default_factory=lambda: ["roc_auc"],
        description="Metrics the challenger must not be worse on.",
    )
    margin: float = Field(
        default=0.0, ge=0, description="How much worse the challenger may be and still win."
    )
    deploy: Literal[False, "local", "kubernetes"] = Field(
        default=False,
        description='false (stop after the registry), "local" or "kubernetes" (serves '
        "production; needs promote_to=production).",
    )
    namespace: str | None = Field(
        default=None, description='Kubernetes namespace for deploy="kubernetes".'
    )

    @model_validator(mode="after")
    def _deploy_needs_production(self) -> LifecycleParams:
        if self.deploy and self.promote_to != "production":
            raise ValueError(
                f"deploy={self.deploy!r} serves the production version, but "
                f"promote_to={self.promote_to!r} stops before production. Use "
                f"promote_to=production, or deploy=false."
            )
        return self

    def training(self) -> TrainingParams:
        """The training stage's parameters."""
        return TrainingParams.model_validate(
            self.model_dump(include=set(TrainingParams.model_fields))
        )


def describe_validation_error(exc: ValidationError) -> str:
    """One line per invalid parameter: ``name: what is wrong``."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "parameters"
        message = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"{where}: {message}")
    return "; ".join(lines)


def keyword_parameters(model: type[M]) -> Callable[[Callable[[M], R]], Callable[..., R]]:
    """Expose ``model``'s fields as the keyword parameters of ``fn(params: model)``.

    The wrapper's signature lists every field (type, constraints, default) and its docstring
    lists their descriptions, so Prefect's parameter schema, its UI form and ``--help`` show
    them; the call validates the keywords into one ``model`` and passes it on.

    Raises:
        ConfigurationError: (from the wrapper) the keywords do not make a valid ``model``.
    """

    def decorate(fn: Callable[[M], R]) -> Callable[..., R]:
        parameters, doc_args = [], []
        for name, field in model.model_fields.items():
            annotation: Any = field.annotation
            if field.metadata:
                annotation = Annotated[(annotation, *field.metadata)]  # keep gt/lt/validators
            default = field.get_default(call_default_factory=True)
            parameters.append(
                inspect.Parameter(
                    name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
                )
            )
            doc_args.append(f"    {name}: {field.description or ''}")
        signature = inspect.Signature(
            parameters, return_annotation=inspect.signature(fn).return_annotation
        )

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> R:
            bound = signature.bind(*args, **kwargs)
            try:
                params = model.model_validate(dict(bound.arguments))
            except ValidationError as exc:
                raise ConfigurationError(
                    f"Invalid parameters: {describe_validation_error(exc)}"
                ) from None
            return fn(params)

        del wrapper.__wrapped__  # inspect.signature must see the fields, not ``params``
        wrapper.__signature__ = signature  # type: ignore[attr-defined]
        wrapper.__params_model__ = model  # type: ignore[attr-defined]  # for cross-field checks
        wrapper.__annotations__ = {}
        summary = inspect.cleandoc(fn.__doc__ or "")
        wrapper.__doc__ = summary + "\n\nArgs:\n" + "\n".join(doc_args)
        return wrapper

    return decorate


class MonitoringParams(BaseModel):
    """Parameters of the ``monitoring`` flow."""

    model_name: ModelName = Field(default="lead-scoring", description="The registered model.")
    version: str = Field(default="production", description="Alias or version number to watch.")
    data_path: str | None = Field(default=None, description="File/URI of recent inputs.")
    sample_dir: str | None = Field(
        default=None,
        description="Folder the model server writes request samples to (instead of data_path).",
    )
    labelled_path: str | None = Field(
        default=None, description="File/URI of recent inputs with their true labels."
    )
    psi_max: float = Field(default=0.2, gt=0, description="Highest acceptable PSI per feature.")
    metric_drop_max: dict[str, float] = Field(
        default_factory=lambda: {"roc_auc": 0.05},
        description="Largest acceptable drop per metric from its value at registration.",
    )
    min_rows: int = Field(default=100, ge=1, description="Fewest rows a window may have.")
    max_rows: int | None = Field(default=None, ge=1, description="Use only the newest rows.")
    retrain_on_breach: bool = Field(
        default=False, description="Start the training deployment when a threshold is breached."
    )
    training_deployment: str = Field(
        default="training/lead-scoring", description="The deployment retraining runs."
    )
    actor: str | None = Field(default=None, description="Who to record in the audit trail.")

    @model_validator(mode="after")
    def _check(self) -> MonitoringParams:
        if not (self.data_path or self.sample_dir):
            raise ValueError("Give data_path (recent inputs) or sample_dir (the server's samples).")
        check_thresholds({k: 0.5 for k in self.metric_drop_max}, "binary", required=False)
        bad = [k for k, v in self.metric_drop_max.items() if not 0 <= v <= 1]
        if bad:
            raise ValueError(f"metric_drop_max must be between 0 and 1: {', '.join(bad)}")
        return self
