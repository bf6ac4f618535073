"""Listing a model's versions, batched: one version search, one alias read, and run reads in
batches of 100 (never one call per version). The Python API's ``get_model_metadata`` and the
operator API's queries both read through here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from modelops.registry.aliases import PRODUCTION, ModelStage, by_version, stage_of
from modelops.registry.audit import AUDIT_PREFIX, read_events
from modelops.registry.store import registered_model
from modelops.registry.versions import all_versions
from modelops.types import AuditEvent

if TYPE_CHECKING:
    from mlflow import MlflowClient

_BATCH = 100


@dataclass
class VersionRow:
    """One version with what the API shows of it."""

    version: str
    status: str  # the stage: None, Staging, Production, Archived
    created_at: str | None
    run_id: str | None
    aliases: list[str]
    tags: dict[str, str]
    source: str
    description: str | None
    ready: str = "READY"  # MLflow's registration status of the version
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    events: list[AuditEvent] = field(default_factory=list)


def _iso(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


def _runs(client: MlflowClient, run_ids: set[str], view: Any = None) -> dict[str, Any]:
    """The runs with these ids, read in batches (``run_id IN (...)``) across experiments
    (deleted ones too with ``view=ViewType.ALL``: a deleted run must not hide its version)."""
    ids = sorted(i for i in run_ids if i)
    if not ids:
        return {}
    from mlflow.entities import ViewType

    experiments = [
        e.experiment_id
        for e in client.search_experiments(max_results=50_000, view_type=ViewType.ALL)
    ]
    found: dict[str, Any] = {}
    for start in range(0, len(ids), _BATCH):
        chunk = ids[start : start + _BATCH]
        quoted = ", ".join(f"'{i}'" for i in chunk if i.isalnum())  # run ids are hex: safe
        for run in client.search_runs(
            experiments,
            f"attributes.run_id IN ({quoted})",
            run_view_type=view or ViewType.ACTIVE_ONLY,
            max_results=_BATCH,
        ):
            found[run.info.run_id] = run
    return found


def versions(client: MlflowClient, name: str, stage: str | None = None) -> list[VersionRow]:
    """Every version of ``name`` (newest first), optionally only those in ``stage``.

    Raises:
        ModelNotFound: no such model.
    """
    from mlflow.entities import ViewType

    model = registered_model(client, name)
    held = by_version(model.aliases)
    wanted = ModelStage.parse(stage) if stage else None
    rows = []
    for mv in all_versions(client, name):
        aliases = held.get(str(mv.version), [])
        tags = dict(mv.tags or {})
        current = stage_of(aliases, tags)
        if wanted is not None and current != wanted:
            continue
        rows.append(
            VersionRow(
                version=str(mv.version),
                status=current.value,
                created_at=_iso(mv.creation_timestamp),
                run_id=mv.run_id,
                aliases=aliases,
                source=str(mv.source),
                description=mv.description or None,
                ready=str(mv.status),
                tags={k: v for k, v in tags.items() if not k.startswith(AUDIT_PREFIX)},
                events=read_events(mv),
            )
        )
    runs = _runs(client, {r.run_id for r in rows if r.run_id}, ViewType.ALL)
    parents = {r.data.tags.get("mlflow.parentRunId") for r in runs.values()}
    parent_runs = _runs(client, {p for p in parents if p}, ViewType.ALL)
    for row in rows:
        run = runs.get(row.run_id or "")
        if run is None:
            continue
        parent = parent_runs.get(run.data.tags.get("mlflow.parentRunId", ""))
        row.params = dict(run.data.params)
        row.metrics = {**(dict(parent.data.metrics) if parent else {}), **dict(run.data.metrics)}
    return rows


def history(client: MlflowClient, name: str) -> list[tuple[str, AuditEvent]]:
    """Every audit event of every version of ``name``, newest first, with its version."""
    registered_model(client, name)
    events = [(str(mv.version), e) for mv in all_versions(client, name) for e in read_events(mv)]
    return sorted(events, key=lambda pair: pair[1].when, reverse=True)


def production_at(client: MlflowClient, name: str, when: datetime) -> str | None:
    """Which version held ``production`` at ``when``, from the audit trail (None: none did)."""
    moves = [
        e
        for _, e in history(client, name)
        if e.alias == PRODUCTION
        and e.to_version
        and e.action in ("promote", "rollback")
        and e.state in (None, "completed")
    ]
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    for event in moves:  # newest first
        if event.when <= when:
            return event.to_version
    return None
