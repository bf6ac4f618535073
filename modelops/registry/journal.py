"""The one undo mechanism for registry writes: a journal that makes alias moves transactional.

MLflow has no multi-write transaction. Every change that moves an alias, sets a tag and writes
an audit event goes through :func:`transaction`: each write is journalled with what was there
before, and if any later step fails the journal puts everything back, newest first — so an
alias never points at a version without the audit record of how it got there.

What it guarantees: a failure that raises leaves aliases and tags as they were, or an error that
names what could not be restored. A process killed between two writes cannot undo anything;
``docs/promotion.md`` ("What a promotion guarantees") says what such a half-done move looks like.

A transaction runs only under the model's promotion lock (:mod:`modelops.registry.locks`): the
journal refuses to start without it, so no door into the registry can forget it. The journal
knows nothing of what people see: callers refresh descriptions after commit
(:func:`modelops.registry.describe.refresh_views`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from modelops.errors import RegistryError
from modelops.registry.aliases import alias_version
from modelops.registry.audit import audit_key, event_payload, write_event
from modelops.registry.locks import PROMOTION, is_held
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
        RegistryError: the block failed and undoing its writes failed too (says which), or
            the caller does not hold the model's promotion lock.
    """
    if not is_held(client, name, PROMOTION):
        raise RegistryError(
            f"Changing the aliases of {name!r} needs its promotion lock, held and not lost "
            f"(modelops.registry.locks.model_lock): a change without it could interleave "
            f"with another writer's."
        )
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
