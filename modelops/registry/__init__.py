"""The model registry on MLflow aliases: versions, aliases, the audit trail, promotion policy.

- :mod:`~modelops.registry.versions`: lookups, ``models:/`` URIs, safe filters, idempotent
  registration, resolving "3" / "latest" / "staging" / ``models:/name/3`` to a version.
- :mod:`~modelops.registry.aliases`: the lifecycle aliases and where they point.
- :mod:`~modelops.registry.audit`: audit events stored as version tags.
- :mod:`~modelops.registry.journal`: the one undo mechanism (transactional alias moves).
- :mod:`~modelops.registry.champion`: champion/challenger scoring and comparison.
- :mod:`~modelops.registry.promotion`: the policy (staging first, production, rollback).
- :mod:`~modelops.registry.stages`: the seed-compatible stage API on top of all that.
"""

from __future__ import annotations

from modelops.registry.aliases import (
    ARCHIVED_TAG,
    LIFECYCLE_ALIASES,
    PREVIOUS_PRODUCTION,
    PRODUCTION,
    STAGING,
    AliasState,
    alias_version,
)
from modelops.registry.audit import AUDIT_PREFIX, read_events, write_event
from modelops.registry.journal import AliasJournal, move_alias, transaction
from modelops.registry.versions import (
    SOURCE_RUN_TAG,
    ensure_registered_model,
    get_version,
    model_uri,
    register_version,
    registered_model,
    resolve_version,
    versions_for_run,
)

__all__ = [
    "ARCHIVED_TAG",
    "AUDIT_PREFIX",
    "LIFECYCLE_ALIASES",
    "PREVIOUS_PRODUCTION",
    "PRODUCTION",
    "SOURCE_RUN_TAG",
    "STAGING",
    "AliasJournal",
    "AliasState",
    "alias_version",
    "ensure_registered_model",
    "get_version",
    "model_uri",
    "move_alias",
    "read_events",
    "register_version",
    "registered_model",
    "resolve_version",
    "transaction",
    "versions_for_run",
    "write_event",
]
