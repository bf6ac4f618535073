"""The model registry on MLflow aliases: versions, aliases, the audit trail, promotion policy.

From the bottom up (each module imports only those above it in this list):

- :mod:`~modelops.registry.store`: the registered-model lookup and MLflow's "does not exist".
- :mod:`~modelops.registry.aliases`: alias state, owned here alone — the lifecycle aliases,
  where they point, aliases by version, and the stage a version is in (``stage_of``).
- :mod:`~modelops.registry.versions`: lookups, ``models:/`` URIs, safe filters, idempotent
  registration, resolving "3" / "latest" / "staging" / ``models:/name/3`` to a version.
- :mod:`~modelops.registry.audit`: audit events stored as version tags.
- :mod:`~modelops.registry.locks`: the model lock every door takes before moving an alias.
- :mod:`~modelops.registry.journal`: the one undo mechanism (transactional alias moves).
- :mod:`~modelops.registry.describe`: what people see, refreshed after a change commits.
- :mod:`~modelops.registry.listing`: batched version listings, history, production-at.
- :mod:`~modelops.registry.champion`: champion/challenger scoring and comparison.
- :mod:`~modelops.registry.approval`: four eyes on production promotions.
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
from modelops.registry.journal import AliasJournal, transaction
from modelops.registry.locks import model_lock
from modelops.registry.promotion import move_alias
from modelops.registry.store import registered_model
from modelops.registry.versions import (
    SOURCE_RUN_TAG,
    ensure_registered_model,
    get_version,
    model_uri,
    register_version,
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
    "model_lock",
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
