"""The one undo mechanism for registry writes: a journal that makes alias moves transactional.

MLflow has no multi-write transaction. Every change that moves an alias, sets a tag and writes
an audit event goes through :func:`transaction`: each write is journalled with what was there
before, and if any later step fails the journal puts everything back, newest first — so an
alias never points at a version without the audit record of how it got there.

What it guarantees: a failure that raises leaves aliases and tags as they were, or an error that
names what could not be restored. A process killed between two writes cannot undo anything;
the README ("What a promotion guarantees") says what such a half-done move looks like.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from modelops.errors import RegistryError
from modelops.registry.aliases import alias_version
from modelops.registry.audit import audit_key, event_payload, read_events, write_event
from modelops.registry.versions import get_version
from modelops.types import AuditEvent

if TYPE_CHECKING:
    from mlflow import MlflowClient


class AliasJournal:
    """Registry writes that can be undone in reverse order."""

    def __init__(self, client: MlflowClient, name: str) -> None:
        self.client = client
        self.name = name
        self._undo: list[tuple[str, tuple[Any, ...]]] = []
        self.touched: set[str] = set()  # versions whose aliases or tags changed

    def set_alias(self, alias: str, version: str) -> None:
        """Point ``alias`` at ``version``."""
        before = alias_version(self.client, self.name, alias)
        self._undo.append(("alias", (alias, before)))
        self.touched.update(v for v in (before, str(version)) if v)
        self.client.set_registered_model_alias(self.name, alias, str(version))

    def delete_alias(self, alias: str) -> None:
        """Remove ``alias`` if it is set."""
        before = alias_version(self.client, self.name, alias)
        if before is None:
            return
        self._undo.append(("alias", (alias, before)))
        self.touched.add(str(before))
        self.client.delete_registered_model_alias(self.name, alias)

    def set_tag(self, version: str, key: str, value: str) -> None:
        """Set a version tag."""
        before = self.client.get_model_version(self.name, version).tags.get(key)
        self._undo.append(("tag", (version, key, before)))
        self.touched.add(str(version))
        self.client.set_model_version_tag(self.name, version, key, value)

    def delete_tag(self, version: str, key: str) -> None:
        """Delete a version tag if present."""
        before = self.client.get_model_version(self.name, version).tags.get(key)
        if before is None:
            return
        self._undo.append(("tag", (version, key, before)))
        self.touched.add(str(version))
        self.client.delete_model_version_tag(self.name, version, key)

    def audit(self, version: str, event: AuditEvent) -> AuditEvent:
        """Append an audit event to ``version``."""
        written = write_event(self.client, self.name, str(version), event)
        self._undo.append(("tag", (str(version), audit_key(event.when), None)))
        return written

    def complete(self, version: str, event: AuditEvent, **changes: Any) -> AuditEvent:
        """Rewrite a "started" event as completed (the last write of a multi-step move)."""
        done = event.model_copy(update={"state": "completed", **changes})
        key = audit_key(event.when)
        self._undo.append(("tag", (str(version), key, event_payload(event))))
        write_event(self.client, self.name, str(version), done)
        return done

    def undo(self) -> list[str]:
        """Revert every write, newest first; returns what could not be reverted."""
        problems = []
        for kind, args in reversed(self._undo):
            try:
                if kind == "alias":
                    alias, before = args
                    if before is None:
                        self.client.delete_registered_model_alias(self.name, alias)
                    else:
                        self.client.set_registered_model_alias(self.name, alias, before)
                else:
                    version, key, before = args
                    if before is None:
                        self.client.delete_model_version_tag(self.name, version, key)
                    else:
                        self.client.set_model_version_tag(self.name, version, key, before)
            except Exception as exc:  # keep undoing the rest
                problems.append(f"{kind} {args}: {exc}")
        self._undo.clear()
        return problems


@contextlib.contextmanager
def transaction(client: MlflowClient, name: str) -> Iterator[AliasJournal]:
    """A journal whose writes are all undone if the block raises.

    Raises:
        RegistryError: the block failed and undoing its writes failed too (says which).
    """
    journal = AliasJournal(client, name)
    try:
        yield journal
    except BaseException as exc:
        problems = journal.undo()
        if problems:
            raise RegistryError(
                f"{exc} — and undoing the partial change failed for: {'; '.join(problems)}. "
                f"Check the aliases of {name!r} with `modelops versions {name}`."
            ) from exc
        raise
    if journal.touched:
        mirror_stages(client, name, journal.touched)
        _refresh_descriptions(client, name, journal.touched)


def _refresh_descriptions(client: MlflowClient, name: str, versions: set[str]) -> None:
    from modelops.registry.describe import refresh_descriptions

    try:
        refresh_descriptions(client, name, versions)
    except Exception:  # a description is a courtesy: the move itself is done and audited
        return


def mirror_stages(client: MlflowClient, name: str, versions: set[str]) -> None:
    """With ``MODELOPS_MIRROR_STAGES=true``, set MLflow's deprecated stage of each version to
    the one its aliases and tags now give (production → Production, staging → Staging,
    archived → Archived, else None), for clients that still read ``current_stage`` or load
    ``models:/<name>/Production``. Without it, stages are never touched."""
    import warnings

    from modelops.registry.stages import stage_of
    from modelops.settings import get_settings

    if not versions or not get_settings().mirror_stages:
        return
    aliases: dict[str, list[str]] = {}
    for alias, version in (client.get_registered_model(name).aliases or {}).items():
        aliases.setdefault(str(version), []).append(alias)
    for version in sorted(versions, key=int):
        mv = client.get_model_version(name, version)
        stage = stage_of(aliases.get(version, []), dict(mv.tags or {})).value
        if mv.current_stage != stage:
            with warnings.catch_warnings():  # stages are deprecated: that is the point here
                warnings.simplefilter("ignore")
                client.transition_model_version_stage(
                    name, version, stage, archive_existing_versions=False
                )


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
    with transaction(client, name) as journal:
        journal.set_alias(alias, version)
        return journal.audit(version, event)
