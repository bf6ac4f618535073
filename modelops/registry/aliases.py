"""Alias state, owned here and nowhere else: the lifecycle aliases, where they point, and the
stage a version is in because of them.

Aliases are the source of truth for where a version stands (MLflow stages are deprecated):
``staging`` names the candidate awaiting promotion, ``production`` the champion, and
``previous-production`` what a rollback restores. ``modelops.archived`` tags a retired version.
A version's stage (:class:`ModelStage`) is derived from its aliases and that tag by
:func:`stage_of`; the seed-compatible stage API (:mod:`modelops.registry.stages`) sits on top.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from modelops.errors import ConfigurationError
from modelops.registry.store import is_missing, registered_model

if TYPE_CHECKING:
    from mlflow import MlflowClient

PRODUCTION = "production"
STAGING = "staging"
PREVIOUS_PRODUCTION = "previous-production"
LIFECYCLE_ALIASES = (PRODUCTION, STAGING, PREVIOUS_PRODUCTION)
ARCHIVED_TAG = "modelops.archived"


class ModelStage(StrEnum):
    """Where a version stands, derived from its aliases and tags."""

    NONE = "None"
    STAGING = "Staging"
    PRODUCTION = "Production"
    ARCHIVED = "Archived"

    @classmethod
    def parse(cls, value: str | ModelStage | None) -> ModelStage:
        """Accept ``"production"``, ``"Production"``, ``ModelStage.PRODUCTION`` or None."""
        if value is None:
            return cls.NONE
        if isinstance(value, ModelStage):
            return value
        for stage in cls:
            if stage.value.lower() == str(value).strip().lower():
                return stage
        raise ConfigurationError(
            f"Unknown stage {value!r}; use one of {', '.join(s.value for s in cls)}."
        )


def stage_of(aliases: list[str], tags: Mapping[str, str]) -> ModelStage:
    """The stage a version is in, from its aliases (production wins) and archive tag."""
    if PRODUCTION in aliases:
        return ModelStage.PRODUCTION
    if STAGING in aliases:
        return ModelStage.STAGING
    if tags.get(ARCHIVED_TAG) == "true":
        return ModelStage.ARCHIVED
    return ModelStage.NONE


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version ``alias`` points at, or None when the alias is unset."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if is_missing(exc) or "alias" in str(exc).lower():
            return None
        raise


def by_version(aliases: Mapping[str, Any] | None) -> dict[str, list[str]]:
    """A registered model's ``{alias: version}`` turned around: ``{version: [aliases, sorted]}``."""
    held: dict[str, list[str]] = {}
    for alias, version in (aliases or {}).items():
        held.setdefault(str(version), []).append(alias)
    return {version: sorted(names) for version, names in held.items()}


def aliases_by_version(client: MlflowClient, name: str) -> dict[str, list[str]]:
    """Which aliases each version of ``name`` holds (one registry read).

    Raises:
        ModelNotFound: no such registered model.
    """
    return by_version(registered_model(client, name).aliases)


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
