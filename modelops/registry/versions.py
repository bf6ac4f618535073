"""Registered models and their versions: lookups, resolution, idempotent registration.

Every ``models:/`` URI is built by :func:`model_uri`, and every registry search filter by
:func:`name_filter` (which quotes the model name the way MLflow's filter grammar requires).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from modelops.errors import ConfigurationError, ModelNotFound, RegistryError
from modelops.registry.aliases import alias_version
from modelops.registry.store import already_exists, is_missing, registered_model

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

SOURCE_RUN_TAG = "modelops.source_run_id"
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))$")


def model_uri(name: str, version: str | int | None = None, *, alias: str | None = None) -> str:
    """``models:/<name>/<version>`` or ``models:/<name>@<alias>``: the one place these are built.

    Raises:
        ValueError: neither or both of ``version`` and ``alias`` given.
    """
    if (version is None) == (alias is None):
        raise ValueError("give exactly one of version and alias")
    return f"models:/{name}@{alias}" if alias is not None else f"models:/{name}/{version}"


def logged_model_uri(model_id: str) -> str:
    """``models:/<model id>``: a logged model that is not (yet) a registered version."""
    return f"models:/{model_id}"


def name_filter(name: str, tags: dict[str, str] | None = None, **clauses: str) -> str:
    """A search filter ``name = <name> [and key = 'value' ...]`` with the name quoted safely.

    MLflow's filter grammar takes a string in single or double quotes and has no escape inside
    them, so a name with a single quote is written in double quotes. (Names holding both
    quote characters are refused when they enter: :func:`modelops.naming.check_model_name`.)

    Raises:
        ConfigurationError: the name holds both quote characters.
    """
    if "'" not in name:
        quoted = f"'{name}'"
    elif '"' not in name:
        quoted = f'"{name}"'
    else:
        raise ConfigurationError(
            f"Model name {name!r} holds both ' and \": MLflow's registry cannot search for it."
        )
    parts = [f"name = {quoted}"]
    keyed = {**clauses, **{f"tags.`{k}`": v for k, v in (tags or {}).items()}}
    for key, value in keyed.items():
        if "'" in value or "`" in key.removeprefix("tags.`").removesuffix("`"):
            raise ConfigurationError(f"{key} {value!r} cannot be searched for")
        parts.append(f"{key} = '{value}'")
    return " and ".join(parts)


def ensure_registered_model(client: MlflowClient, name: str, description: str | None) -> None:
    """Create registered model ``name`` if it does not exist (safe when two runs race)."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
        return
    except MlflowException as exc:
        if not is_missing(exc):
            raise
    try:
        client.create_registered_model(name, description=description)
    except MlflowException as exc:
        if not already_exists(exc):
            raise


def all_versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    """Every version of ``name``, newest first (``search_model_versions`` omits aliases)."""
    found = client.search_model_versions(name_filter(name))
    return sorted(found, key=lambda v: int(v.version), reverse=True)


def versions_for_run(client: MlflowClient, name: str, run_id: str) -> list[ModelVersion]:
    """Versions of ``name`` created from ``run_id``, oldest first."""
    found = client.search_model_versions(name_filter(name, run_id=run_id))
    return sorted(found, key=lambda v: int(v.version))


def versions_with_tag(client: MlflowClient, name: str, key: str, value: str) -> list[ModelVersion]:
    """Versions of ``name`` tagged ``key=value``, oldest first."""
    found = client.search_model_versions(name_filter(name, tags={key: value}))
    return sorted(found, key=lambda v: int(v.version))


def get_version(client: MlflowClient, name: str, version: str | int) -> ModelVersion:
    """A model version, with a clear error when it does not exist.

    Raises:
        ModelNotFound: no such registered model or version.
    """
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        if is_missing(exc):
            raise ModelNotFound(
                f"Model {name!r} has no version {version}. List versions with "
                f"`modelops versions {name}`."
            ) from exc
        raise


def register_version(
    client: MlflowClient,
    name: str,
    model_id: str,
    run_id: str,
    tags: dict[str, str] | None = None,
    description: str | None = None,
) -> tuple[ModelVersion, bool]:
    """Register a logged model as a version of ``name``, at most once per run.

    A retry after a lost response, or a second registration of the same run, returns the
    version that already exists instead of creating another. If two callers race past the
    check, the later version is deleted and both get the earlier one.

    Args:
        client: the MLflow client.
        name: the registered model name.
        model_id: the logged model's id (``m-...``).
        run_id: the run that produced the model (the idempotency key).
        tags: tags for the new version.
        description: description of the registered model when it is created.

    Returns:
        The version, and whether this call created it.
    """
    from modelops.tracking import use_tracking_uri

    ensure_registered_model(client, name, description)
    existing = versions_for_run(client, name, run_id)
    if existing:
        return existing[0], False
    # MLflow's SQL registry resolves a models:/ source with the process-wide tracking URI.
    with use_tracking_uri(client.tracking_uri):
        created = client.create_model_version(
            name,
            source=logged_model_uri(model_id),
            run_id=run_id,
            tags={SOURCE_RUN_TAG: run_id, **(tags or {})},
            model_id=model_id,
        )
    winners = versions_for_run(client, name, run_id)
    if winners and winners[0].version != created.version:
        client.delete_model_version(name, created.version)
        return winners[0], False
    return created, True


def resolve_version(client: MlflowClient, name: str, ref: str | int) -> ModelVersion:
    """The version ``ref`` names: a number, ``"latest"``, an alias, or ``models:/name/N|@alias``.

    Raises:
        ModelNotFound: the model, version or alias does not exist, or the model has no versions.
        RegistryError: ``ref`` is a ``models:/`` URI of another model.
    """
    text = str(ref).strip()
    model = registered_model(client, name)
    match = _MODELS_URI.match(text)
    if match:
        if match["name"] != name:
            raise RegistryError(
                f"{text!r} is a version of model {match['name']!r}, not of {name!r}. Promote it "
                f"under its own name, or register it as a version of {name!r} first."
            )
        text = match["version"] or match["alias"]
    if text.isdigit():
        return get_version(client, name, text)
    if text.lower() == "latest":
        versions = all_versions(client, name)
        if not versions:
            raise ModelNotFound(
                f"Model {name!r} has no versions yet: train and register one first."
            )
        return versions[0]
    version = alias_version(client, name, text)
    if version is None:
        raise ModelNotFound(
            f"Model {name!r} has no alias {text!r}. Use a version number, 'latest', or one of its "
            f"aliases: {sorted(model.aliases or {})}."
        )
    return get_version(client, name, version)
