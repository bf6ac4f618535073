"""Promotion policy: staging first, production by champion/challenger, rollback, refusals.

Every function here that moves an alias takes the model's promotion lock
(:func:`~modelops.registry.locks.model_lock`, re-entrant: a flow or the API may already hold it
around its whole decision) and runs its writes in a :func:`~modelops.registry.journal.transaction`,
so production never points at a version without its audit record, and every refusal is itself
an audit event. Descriptions and mirrored stages are refreshed once the change has committed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelops.errors import PromotionRefused, RegistryError
from modelops.registry.aliases import (
    ARCHIVED_TAG,
    PREVIOUS_PRODUCTION,
    PRODUCTION,
    STAGING,
    AliasState,
    alias_version,
)
from modelops.registry.audit import read_events, write_event
from modelops.registry.describe import refresh_views
from modelops.registry.journal import AliasJournal, transaction
from modelops.registry.locks import model_lock
from modelops.registry.versions import all_versions, get_version
from modelops.settings import get_settings
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


@contextlib.contextmanager
def change(client: MlflowClient, name: str) -> Iterator[AliasJournal]:
    """One change of a model's aliases and tags: under its promotion lock, journalled (undone
    if the block raises), and once committed, descriptions and mirrored stages refreshed."""
    with model_lock(client, name):
        with transaction(client, name) as journal:
            yield journal
        refresh_views(client, name, journal.touched)


def move_alias(
    client: MlflowClient,
    name: str,
    alias: str,
    version: str | int,
    *,
    action: str,
    actor: str,
    reason: str,
    flow_run_id: str | None = None,
    metrics: dict[str, float] | None = None,
    **extra: Any,
) -> AuditEvent:
    """Point ``alias`` at ``version`` and record the move, as one undoable step.

    Re-running the same move from the same flow run (a retry) changes nothing and returns the
    event already recorded.

    Returns:
        The audit event.
    """
    version = str(version)
    with model_lock(client, name):
        previous = alias_version(client, name, alias)
        if previous == version and flow_run_id:
            for event in reversed(read_events(get_version(client, name, version))):
                if (event.flow_run_id, event.action, event.alias) == (flow_run_id, action, alias):
                    return event
        event = AuditEvent(
            action=action,
            alias=alias,
            from_version=previous,
            to_version=version,
            actor=actor,
            reason=reason,
            flow_run_id=flow_run_id,
            metrics=metrics or {},
            **extra,
        )
        with change(client, name) as journal:
            journal.set_alias(alias, version)
            written = journal.audit(version, event)
        return written


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


REQUIRE_STAGING_OFF = "staging-first switched off by policy (MODELOPS_REQUIRE_STAGING=false)"


def check_staged(
    version: ModelVersion,
    staging: str | None,
    override_reason: str | None,
    require_staging: bool | None = None,
) -> str | None:
    """Refuse a version that does not hold ``staging`` unless an override reason is given or
    staging-first is switched off (``MODELOPS_REQUIRE_STAGING=false``, for code written for the
    original module, which moved any version straight to production).

    Args:
        version: the version asked for.
        staging: the version ``staging`` points at.
        override_reason: why this unstaged version may go anyway.
        require_staging: the policy (default: ``Settings.require_staging``).

    Returns:
        None when the version is staged; else the override to record in the audit trail (the
        reason given, or :data:`REQUIRE_STAGING_OFF`).

    Raises:
        PromotionRefused: not staged, no override, and staging-first in force.
    """
    if staging == str(version.version):
        return None
    if override_reason and override_reason.strip():
        return override_reason
    if not (get_settings().require_staging if require_staging is None else require_staging):
        return REQUIRE_STAGING_OFF
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
    with model_lock(client, name):
        state = AliasState.read(client, name)
        if state.production == version:
            return AliasChange(name, version, state.previous_production, changed=False)
        champion = state.production
        if expected_champion is not _UNCHECKED and expected_champion != champion:
            raise RegistryError(
                f"Production of {name!r} moved from {expected_champion} to {champion} after "
                f"this promotion compared against it; nothing was changed. Run the promotion "
                f"again."
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

        def finish(journal: AliasJournal, _: AuditEvent) -> None:
            _retire_champion(journal, champion, version, archive_existing, base)
            if state.staging == version:
                journal.delete_alias(STAGING)
            journal.delete_tag(version, ARCHIVED_TAG)

        # archive_existing is part of the plan: recover() finishes a killed move the same way.
        event = _move_production(
            client,
            name,
            "promote",
            champion,
            version,
            base,
            finish,
            archive_existing=archive_existing,
        )
        after = AliasState.read(client, name)
    if after.production != version:
        raise RegistryError(
            f"Another promotion of {name!r} changed production to {after.production} while this "
            f"one moved it to {version}: a writer that did not wait for the model's promotion "
            f"lock. Check `modelops history {name}`."
        )
    return AliasChange(name, version, champion, changed=True, event=event)


def _move_production(
    client: MlflowClient,
    name: str,
    action: str,
    champion: str | None,
    version: str,
    base: dict[str, Any],
    finish: Callable[[AliasJournal, AuditEvent], None],
    **plan: Any,
) -> AuditEvent:
    """Move ``production`` from ``champion`` to ``version`` in one change: the "started" record
    first (with ``plan``, what recover() needs to finish it), then the alias, then ``finish``
    (the rest of the move), then the record marked completed — so a process killed after any
    write leaves a move the next writer can finish or abandon from its record."""
    intent = AuditEvent(
        action=action,
        alias=PRODUCTION,
        from_version=champion,
        to_version=version,
        state="started",
        **plan,
        **base,
    )
    with change(client, name) as journal:
        journal.audit(version, intent)
        journal.set_alias(PRODUCTION, version)
        finish(journal, intent)
        return journal.complete(version, intent)


def _finish_rollback(
    journal: AliasJournal,
    intent: AuditEvent,
    base: dict[str, Any],
    resuming: AuditEvent | None = None,
) -> None:
    """Everything a rollback does after production moved back (``intent`` has the plan)."""
    target, bad = str(intent.to_version), intent.from_version
    earlier = intent.restores_previous
    journal.delete_tag(target, ARCHIVED_TAG)
    if earlier is not None:
        journal.set_alias(PREVIOUS_PRODUCTION, str(earlier))
    else:
        journal.delete_alias(PREVIOUS_PRODUCTION)
    if bad is not None:
        journal.set_tag(bad, ARCHIVED_TAG, "true")
        event = AuditEvent(
            action="rolled-back", alias=PRODUCTION, from_version=bad, to_version=target, **base
        )
        _audit_once(journal, bad, event, resuming)


def _retire_champion(
    journal: AliasJournal,
    champion: str | None,
    version: str,
    archive: bool,
    base: dict[str, Any],
    resuming: AuditEvent | None = None,
) -> None:
    """The old champion keeps ``previous-production`` (and the archived tag), with its event."""
    if champion is None:
        return
    journal.set_alias(PREVIOUS_PRODUCTION, champion)
    if archive:
        journal.set_tag(champion, ARCHIVED_TAG, "true")
    event = AuditEvent(
        action="archive" if archive else "demote",
        alias=PREVIOUS_PRODUCTION,
        from_version=champion,
        to_version=version,
        **base,
    )
    _audit_once(journal, champion, event, resuming)


def _audit_once(
    journal: AliasJournal, version: str, event: AuditEvent, resuming: AuditEvent | None
) -> None:
    """Write ``event`` — unless this finishes an interrupted move (``resuming``, its started
    record) whose process wrote it already before it was killed. Alias and tag writes need no
    such check: writing the same value again changes nothing."""
    if resuming is not None:
        for seen in read_events(get_version(journal.client, journal.name, version)):
            same = (seen.action, seen.to_version) == (event.action, event.to_version)
            if same and seen.when >= resuming.when:
                return
    journal.audit(version, event)


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
    with model_lock(client, name):
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
        event = _move_production(
            client,
            name,
            "rollback",
            bad,
            target,
            base,
            lambda journal, intent: _finish_rollback(journal, intent, base),
            restores_previous=earlier,
        )
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
    with model_lock(client, name):
        versions = all_versions(client, name)
        events = [(str(v.version), e) for v in versions for e in read_events(v)]
        started = [(v, e) for v, e in events if e.state == "started"]
        if not started:
            return []
        moves = [
            e for _, e in events if e.action in ("promote", "rollback") and e.state != "abandoned"
        ]
        newest = max(moves, key=lambda e: e.when)
        production = AliasState.read(client, name).production
        return [
            _settle(
                client,
                name,
                version,
                event,
                finish=event is newest,
                production=production,
                actor=actor,
            )
            for version, event in started
        ]


def _settle(
    client: MlflowClient,
    name: str,
    version: str,
    event: AuditEvent,
    *,
    finish: bool,
    production: str | None,
    actor: str,
) -> AuditEvent:
    """Finish one started move from its record, or mark it abandoned."""
    with change(client, name) as journal:
        if not finish or production != event.to_version:
            why = "superseded by a later move" if not finish else "nothing had moved"
            return journal.complete(
                version, event, state="abandoned", recovered=f"abandoned: {why}"
            )
        base = {"actor": event.actor, "reason": event.reason, "flow_run_id": event.flow_run_id}
        if event.action == "promote":
            # Any of the rest may have been written before the kill: each write below is
            # idempotent, and the old champion's event is written only if it is missing.
            archive = event.archive_existing is not False  # older records: archiving, the default
            to_version = str(event.to_version)
            _retire_champion(journal, event.from_version, to_version, archive, base, event)
            if AliasState.read(client, name).staging == to_version:
                journal.delete_alias(STAGING)
            journal.delete_tag(to_version, ARCHIVED_TAG)
        else:
            _finish_rollback(journal, event, base, resuming=event)
        note = f"finished by {actor} after the process that started it was interrupted"
        return journal.complete(version, event, recovered=note)
