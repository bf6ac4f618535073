"""Promotion policy: staging first, production by champion/challenger, rollback, refusals.

Every move runs in a :func:`~modelops.registry.journal.transaction`, so production never points
at a version without its audit record, and every refusal is itself an audit event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelops.errors import PromotionRefused, RegistryError
from modelops.registry.aliases import (
    ARCHIVED_TAG,
    PREVIOUS_PRODUCTION,
    PRODUCTION,
    STAGING,
    AliasState,
)
from modelops.registry.audit import read_events, write_event
from modelops.registry.journal import AliasJournal, move_alias, transaction
from modelops.registry.versions import all_versions, get_version
from modelops.types import AuditEvent

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion


@dataclass
class AliasChange:
    """What a promotion or rollback did to ``production``."""

    name: str
    version: str
    previous_production: str | None
    changed: bool
    event: AuditEvent | None = None


def stage_version(
    client: MlflowClient,
    name: str,
    version: str | int,
    *,
    actor: str,
    reason: str,
    flow_run_id: str | None = None,
    metrics: dict[str, float] | None = None,
    **extra: Any,
) -> AuditEvent:
    """Point ``staging`` at ``version``: the candidate awaiting promotion."""
    return move_alias(
        client,
        name,
        STAGING,
        version,
        action="set-staging",
        actor=actor,
        reason=reason,
        flow_run_id=flow_run_id,
        metrics=metrics,
        **extra,
    )


def record_refusal(
    client: MlflowClient,
    name: str,
    version: str,
    *,
    reason: str,
    actor: str,
    flow_run_id: str | None = None,
    metrics: dict[str, float] | None = None,
    **extra: Any,
) -> AuditEvent:
    """A refusal is history too: write it on the version it concerns."""
    event = AuditEvent(
        action="promotion-refused",
        alias=PRODUCTION,
        to_version=str(version),
        actor=actor,
        reason=reason,
        flow_run_id=flow_run_id,
        metrics=metrics or {},
        **extra,
    )
    return write_event(client, name, str(version), event)


def check_staged(version: ModelVersion, staging: str | None, override_reason: str | None) -> bool:
    """Refuse a version that does not hold ``staging`` unless an override reason is given.

    Returns:
        True when the override was used (it is recorded in the audit trail).

    Raises:
        PromotionRefused: not staged and no override.
    """
    if staging == str(version.version):
        return False
    if override_reason and override_reason.strip():
        return True
    raise PromotionRefused(
        f"Version {version.version} of {version.name!r} does not hold the 'staging' alias "
        f"(staging is {'version ' + staging if staging else 'unset'}). Promote the staged "
        f"version, or pass override_staging_reason to promote this one anyway (the override "
        f"is recorded in the audit trail)."
    )


_UNCHECKED = object()


def promote_to_production(
    client: MlflowClient,
    name: str,
    version: str,
    *,
    actor: str,
    reason: str,
    flow_run_id: str | None = None,
    metrics: dict[str, float] | None = None,
    archive_existing: bool = True,
    override_reason: str | None = None,
    expected_champion: str | object | None = _UNCHECKED,
    **extra: Any,
) -> AliasChange:
    """Move ``production`` to ``version`` as one undoable step.

    The old champion gets ``previous-production`` (for rollback) and, with
    ``archive_existing``, the archived tag. ``staging`` is cleared when it pointed at the
    promoted version: staging names the candidate *awaiting* promotion, and leaving it would
    make the next "promote staging" silently re-promote the current champion.
    Both versions get audit events. Promoting the current production version is a no-op.

    ``expected_champion`` is the production version the decision was made against (the one
    the challenger was compared with); if production has moved since, nothing is changed.

    Raises:
        RegistryError: production moved since the decision (``expected_champion``), a
            concurrent change was detected after the move, or undoing a failed move failed.
    """
    version = str(version)
    state = AliasState.read(client, name)
    if state.production == version:
        return AliasChange(name, version, state.previous_production, changed=False)
    champion = state.production
    if expected_champion is not _UNCHECKED and expected_champion != champion:
        raise RegistryError(
            f"Production of {name!r} moved from {expected_champion} to {champion} after this "
            f"promotion compared against it; nothing was changed. Run the promotion again."
        )
    base: dict[str, Any] = {
        "actor": actor,
        "reason": reason,
        "flow_run_id": flow_run_id,
        "metrics": metrics or {},
        **extra,
    }
    if override_reason:
        base["staging_override"] = override_reason
    if expected_champion is not _UNCHECKED:
        base["compared_with"] = expected_champion

    intent = AuditEvent(
        action="promote",
        alias=PRODUCTION,
        from_version=champion,
        to_version=version,
        state="started",
        **base,
    )
    with transaction(client, name) as journal:
        journal.audit(version, intent)  # the record first: a kill after any later write
        journal.set_alias(PRODUCTION, version)  # leaves a move recover() can finish
        _retire_champion(journal, champion, version, archive_existing, base)
        if state.staging == version:
            journal.delete_alias(STAGING)
        journal.delete_tag(version, ARCHIVED_TAG)
        event = journal.complete(version, intent)
    after = AliasState.read(client, name)
    if after.production != version:
        raise RegistryError(
            f"Another promotion of {name!r} changed production to {after.production} while this "
            f"one moved it to {version}. Run promotions of one model one at a time (the "
            f"promotion flow takes a lock for this)."
        )
    return AliasChange(name, version, champion, changed=True, event=event)


def _finish_rollback(journal: AliasJournal, intent: AuditEvent, base: dict[str, Any]) -> None:
    """Everything a rollback does after production moved back (``intent`` has the plan)."""
    target, bad = str(intent.to_version), intent.from_version
    earlier = getattr(intent, "restores_previous", None)
    journal.delete_tag(target, ARCHIVED_TAG)
    if earlier is not None:
        journal.set_alias(PREVIOUS_PRODUCTION, str(earlier))
    else:
        journal.delete_alias(PREVIOUS_PRODUCTION)
    if bad is not None:
        journal.set_tag(bad, ARCHIVED_TAG, "true")
        journal.audit(
            bad,
            AuditEvent(
                action="rolled-back",
                alias=PRODUCTION,
                from_version=bad,
                to_version=target,
                **base,
            ),
        )


def _retire_champion(
    journal: AliasJournal, champion: str | None, version: str, archive: bool, base: dict[str, Any]
) -> None:
    """The old champion keeps ``previous-production`` (and the archived tag), with its event."""
    if champion is None:
        return
    journal.set_alias(PREVIOUS_PRODUCTION, champion)
    if archive:
        journal.set_tag(champion, ARCHIVED_TAG, "true")
    journal.audit(
        champion,
        AuditEvent(
            action="archive" if archive else "demote",
            alias=PREVIOUS_PRODUCTION,
            from_version=champion,
            to_version=version,
            **base,
        ),
    )


def rollback_production(
    client: MlflowClient,
    name: str,
    *,
    actor: str,
    reason: str,
    flow_run_id: str | None = None,
    **extra: Any,
) -> AliasChange:
    """Put ``production`` back on ``previous-production`` in one undoable step.

    The rolled-back version is tagged archived; ``previous-production`` then points at the
    version that was production before the restored one (from its audit trail), or is removed,
    so repeated rollbacks walk back through history instead of ping-ponging.

    Raises:
        PromotionRefused: there is no previous production version, or the reason is empty.
    """
    if not reason or not reason.strip():
        raise PromotionRefused("A rollback needs a reason: say why production is being reverted.")
    state = AliasState.read(client, name)
    if state.previous_production is None:
        raise PromotionRefused(
            f"Model {name!r} has no 'previous-production' version to roll back to "
            f"(production is {state.production}). Promote a specific version instead."
        )
    target = state.previous_production
    bad = state.production
    earlier = None
    for event in reversed(read_events(get_version(client, name, target))):
        if event.action in ("promote", "rollback") and event.to_version == target:
            earlier = event.from_version
            break
    if earlier is not None and earlier in (bad, target):
        earlier = None
    base = {"actor": actor, "reason": reason, "flow_run_id": flow_run_id, **extra}
    intent = AuditEvent(
        action="rollback",
        alias=PRODUCTION,
        from_version=bad,
        to_version=target,
        state="started",
        restores_previous=earlier,
        **base,
    )
    with transaction(client, name) as journal:
        journal.audit(target, intent)
        journal.set_alias(PRODUCTION, target)
        _finish_rollback(journal, intent, base)
        event = journal.complete(target, intent)
    return AliasChange(name, target, bad, changed=True, event=event)


def recover(client: MlflowClient, name: str, *, actor: str) -> list[AuditEvent]:
    """Finish or abandon promotions and rollbacks of ``name`` that a killed process left half
    done (their record says "started").

    The record is written before the first alias moves, so: if ``production`` already points
    where the record says, the rest of the move (previous-production, archive tags, the old
    champion's event) is finished from the record; if not, nothing had moved and the record is
    marked abandoned. Only the newest move can be finished — an older started record was
    superseded by a later completed one. Run under the model's promotion lock.

    Returns:
        The records rewritten (completed or abandoned).
    """
    versions = all_versions(client, name)
    events = [(str(v.version), e) for v in versions for e in read_events(v)]
    started = [(v, e) for v, e in events if e.state == "started"]
    if not started:
        return []
    moves = [e for _, e in events if e.action in ("promote", "rollback") and e.state != "abandoned"]
    newest = max(moves, key=lambda e: e.when)
    production = AliasState.read(client, name).production
    fixed = []
    for version, event in started:
        note = f"finished by {actor} after the process that started it was interrupted"
        with transaction(client, name) as journal:
            if event is newest and production == event.to_version:
                base = {
                    "actor": event.actor,
                    "reason": event.reason,
                    "flow_run_id": event.flow_run_id,
                }
                if event.action == "promote":
                    current = AliasState.read(client, name)
                    if current.previous_production != event.from_version:
                        _retire_champion(
                            journal, event.from_version, str(event.to_version), True, base
                        )
                    if current.staging == event.to_version:
                        journal.delete_alias(STAGING)
                    journal.delete_tag(str(event.to_version), ARCHIVED_TAG)
                else:
                    _finish_rollback(journal, event, base)
                fixed.append(journal.complete(version, event, recovered=note))
            else:
                why = "superseded by a later move" if event is not newest else "nothing had moved"
                fixed.append(
                    journal.complete(
                        version, event, state="abandoned", recovered=f"abandoned: {why}"
                    )
                )
    return fixed
