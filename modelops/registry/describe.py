"""What people see of a version, derived from its aliases after they move: a one-line
description (what it was trained on, the gate it passed, where it stands now — so the MLflow UI's
version list reads as sentences, while the full audit trail stays in the ``modelops.audit.*``
tags and the API's promotionHistory), and, when asked for, MLflow's deprecated stage mirrored.

Nothing here moves an alias: callers run :func:`refresh_views` after their change committed.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from modelops.registry.aliases import aliases_by_version, stage_of
from modelops.settings import get_settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

SUMMARY_TAG = "modelops.summary"


def training_summary(client: MlflowClient, parent_run_id: str) -> str:
    """ "leads.csv, 5,000 rows · gate passed: roc_auc 0.805 ≥ 0.700, precision 0.706 ≥ 0.600"."""
    run = client.get_run(parent_run_id)
    inputs = run.inputs.dataset_inputs if run.inputs else []
    data = inputs[0].dataset.name if inputs else "data"
    rows = sum(int(run.data.metrics.get(k, 0)) for k in ("split.train_rows", "split.test_rows"))
    gate = []
    for key, value in sorted(run.data.tags.items()):
        if key.startswith("modelops.gate.") and ":" in value:
            figures = value.split(":")[0].replace(">=", "≥").replace("<=", "≤").strip()
            gate.append(f"{key.removeprefix('modelops.gate.')} {figures}")
    verdict = run.data.tags.get("modelops.gate", "")
    parts = [f"{data}, {rows:,} rows" if rows else data]
    if gate:
        parts.append(f"gate {verdict or 'passed'}: " + ", ".join(gate))
    return " · ".join(parts)


def describe_new_version(client: MlflowClient, name: str, version: str, parent_run_id: str) -> None:
    """Write the training summary on a newly registered version (never fails a run)."""
    try:
        client.set_model_version_tag(
            name, version, SUMMARY_TAG, training_summary(client, parent_run_id)
        )
        refresh_descriptions(client, name, {version})
    except Exception:  # a description is a courtesy: registration already succeeded
        return


def refresh_descriptions(client: MlflowClient, name: str, versions: set[str]) -> None:
    """Rewrite ``<summary> · now: <stage>`` on these versions after their aliases moved."""
    aliases = aliases_by_version(client, name)
    for version in versions:
        mv = client.get_model_version(name, version)
        tags = dict(mv.tags or {})
        summary = tags.get(SUMMARY_TAG)
        if not summary:
            continue
        held = aliases.get(version, [])
        where = stage_of(held, tags).value + (f" ({', '.join(held)})" if held else "")
        text = f"{summary} · now: {where}"
        if mv.description != text:
            client.update_model_version(name, version, description=text)


def mirror_stages(client: MlflowClient, name: str, versions: set[str]) -> None:
    """With ``MODELOPS_MIRROR_STAGES=true``, set MLflow's deprecated stage of each version to
    the one its aliases and tags now give (production → Production, staging → Staging,
    archived → Archived, else None), for clients that still read ``current_stage`` or load
    ``models:/<name>/Production``. Without it, stages are never touched."""
    if not versions or not get_settings().mirror_stages:
        return
    aliases = aliases_by_version(client, name)
    for version in sorted(versions, key=int):
        mv = client.get_model_version(name, version)
        stage = stage_of(aliases.get(version, []), dict(mv.tags or {})).value
        if mv.current_stage != stage:
            with warnings.catch_warnings():  # stages are deprecated: that is the point here
                warnings.simplefilter("ignore")
                client.transition_model_version_stage(
                    name, version, stage, archive_existing_versions=False
                )


def refresh_views(client: MlflowClient, name: str, versions: set[str]) -> None:
    """After a committed alias change: mirror stages (when asked for) and rewrite descriptions.

    A mirroring failure is raised (a user who asked for stages relies on them); a description
    is a courtesy and never fails a change that is already done and audited.
    """
    if not versions:
        return
    mirror_stages(client, name, versions)
    try:
        refresh_descriptions(client, name, versions)
    except Exception:
        return
