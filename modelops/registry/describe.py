"""A one-line, human-readable description on every version: what it was trained on, the gate
it passed, and where it stands now — so the MLflow UI's version list reads as sentences, while
the full audit trail stays in the ``modelops.audit.*`` tags (and the API's promotionHistory)."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
    from modelops.registry.stages import stage_of

    aliases: dict[str, list[str]] = {}
    for alias, number in (client.get_registered_model(name).aliases or {}).items():
        aliases.setdefault(str(number), []).append(alias)
    for version in versions:
        mv = client.get_model_version(name, version)
        tags = dict(mv.tags or {})
        summary = tags.get(SUMMARY_TAG)
        if not summary:
            continue
        held = sorted(aliases.get(version, []))
        where = stage_of(held, tags).value + (f" ({', '.join(held)})" if held else "")
        text = f"{summary} · now: {where}"
        if mv.description != text:
            client.update_model_version(name, version, description=text)
