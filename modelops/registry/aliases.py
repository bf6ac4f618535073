"""The lifecycle aliases and where they point.

Aliases are the source of truth for where a version stands (MLflow stages are deprecated):
``staging`` names the candidate awaiting promotion, ``production`` the champion, and
``previous-production`` what a rollback restores. ``modelops.archived`` tags a retired version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from modelops.registry.versions import is_missing, registered_model

if TYPE_CHECKING:
    from mlflow import MlflowClient

PRODUCTION = "production"
STAGING = "staging"
PREVIOUS_PRODUCTION = "previous-production"
LIFECYCLE_ALIASES = (PRODUCTION, STAGING, PREVIOUS_PRODUCTION)
ARCHIVED_TAG = "modelops.archived"


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version ``alias`` points at, or None when the alias is unset."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if is_missing(exc) or "alias" in str(exc).lower():
            return None
        raise


@dataclass(frozen=True)
class AliasState:
    """Where the lifecycle aliases of one model point (None: unset)."""

    production: str | None
    previous_production: str | None
    staging: str | None

    @classmethod
    def read(cls, client: MlflowClient, name: str) -> AliasState:
        """Read the aliases from the registered model (search_model_versions omits them)."""
        aliases = {k: str(v) for k, v in (registered_model(client, name).aliases or {}).items()}
        return cls(aliases.get(PRODUCTION), aliases.get(PREVIOUS_PRODUCTION), aliases.get(STAGING))
