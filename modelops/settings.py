"""Configuration from the environment variables the field already uses.

Only the documented variables are read (``MODELOPS_*``, ``MLFLOW_*``, ``ML_MODEL_DEPLOY_*``): a
field is never filled from its bare name, so ``HOME`` or a stray ``TRACKING_URI`` in someone's
shell cannot redirect the project. Built by :func:`get_settings` when needed, never at import
time: importing this module creates no directory, sets no tracking URI and opens no connection.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelops.errors import ConfigurationError
from modelops.home import DEFAULT_HOME, HOME_ENV, resolve
from modelops.uris import redact, split_credentials


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class Settings(BaseSettings):
    """Where MLflow and Kubernetes live; every field has an embedded default."""

    # validate_by_name=False: fields are read from their documented variable only.
    # env_ignore_empty: a variable set to "" (``MLFLOW_EXPERIMENT_NAME=``) means the default.
    model_config = SettingsConfigDict(extra="ignore", validate_by_name=False, env_ignore_empty=True)

    home: Path = Field(
        default=Path(DEFAULT_HOME),
        validation_alias=_env(HOME_ENV),
        description="Folder for the embedded defaults: the MLflow SQLite file, artifacts, "
        "local serving records. Relative paths are resolved against the working directory.",
    )
    tracking_uri: str | None = Field(default=None, validation_alias=_env("MLFLOW_TRACKING_URI"))
    registry_uri: str | None = Field(default=None, validation_alias=_env("MLFLOW_REGISTRY_URI"))
    experiment_name: str = Field(
        default="modelops", validation_alias=_env("MLFLOW_EXPERIMENT_NAME")
    )
    ui_url: str | None = Field(
        default=None,
        validation_alias=_env("MODELOPS_MLFLOW_UI_URL"),
        description="Base URL of the MLflow UI, for links in Prefect artifacts.",
    )
    deploy_namespace: str = Field(
        default="default", validation_alias=_env("ML_MODEL_DEPLOY_NAMESPACE")
    )
    deploy_image: str | None = Field(default=None, validation_alias=_env("ML_MODEL_DEPLOY_IMAGE"))
    mirror_stages: bool = Field(
        default=False,
        validation_alias=_env("MODELOPS_MIRROR_STAGES"),
        description="Also set MLflow's deprecated stages (Staging/Production/Archived) on "
        "every alias move, for clients that still read them during a migration.",
    )
    require_staging: bool = Field(
        default=True,
        validation_alias=_env("MODELOPS_REQUIRE_STAGING"),
        description="Production only for the version that holds `staging`. false: any version "
        "may go straight to production (as the original module allowed); each such move is "
        "recorded in the audit trail as an override by policy.",
    )
    lock_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        validation_alias=_env("MODELOPS_LOCK_LEASE_SECONDS"),
        description="How long a model's registry lock (promotion, deployment, rollout) outlives "
        "a holder that stopped renewing it (killed, cut off from the store): what the next "
        "writer waits after a crash. The holder renews it every third of it.",
    )
    templates_dir: Path | None = Field(
        default=None,
        validation_alias=_env("MODELOPS_TEMPLATES_DIR"),
        description="Folder of Kubernetes manifest templates (serving/, batch/); default: the "
        "templates shipped inside the installed package.",
    )

    @property
    def home_dir(self) -> Path:
        """``home`` as an absolute path."""
        return resolve(self.home)

    @property
    def resolved_tracking_uri(self) -> str:
        """The tracking URI in force: the environment's, else a SQLite file under ``home``."""
        if self.tracking_uri:
            return self.tracking_uri
        return f"sqlite:///{self.home_dir / 'mlflow.db'}"

    @property
    def resolved_registry_uri(self) -> str:
        """The registry URI in force: the environment's, else the tracking URI."""
        return self.registry_uri or self.resolved_tracking_uri

    @property
    def default_artifact_location(self) -> str | None:
        """Artifact root for new experiments in a SQLite store: beside the database file.

        MLflow would otherwise put artifacts in ``./mlruns`` relative to whatever directory the
        process happens to run in. For a tracking server (http) the server decides.
        """
        uri = self.resolved_tracking_uri
        if uri.startswith("sqlite:///"):
            db = Path(uri.removeprefix("sqlite:///"))
            if db.name in ("", ":memory:"):  # an in-memory store: artifacts under home
                return (self.home_dir / "mlartifacts").as_uri()
            return (db.parent / "mlartifacts").resolve().as_uri()
        return None

    @property
    def ui_base_url(self) -> str | None:
        """Where a person can open the MLflow UI, when we can know it."""
        if self.ui_url:
            return split_credentials(self.ui_url)[0].rstrip("/")
        uri = self.resolved_tracking_uri
        if uri.startswith(("http://", "https://")):
            return split_credentials(uri)[0].rstrip("/")  # a link never carries a password
        return None

    @property
    def shown_tracking_uri(self) -> str:
        """The tracking URI as it may be shown to people (credentials removed)."""
        return str(redact(self.resolved_tracking_uri))


def get_settings() -> Settings:
    """Read the settings from the environment now (nothing is cached).

    Raises:
        ConfigurationError: a variable holds a value its setting cannot take (the first such
            variable is named, with what is wrong).
    """
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(part) for part in first["loc"])
        raise ConfigurationError(
            f"{name}={first['input']!r} is not a valid value: {first['msg']}. Set it to one "
            f"(see docs/configuration.md) or unset it."
        ) from None
