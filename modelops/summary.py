"""What a lifecycle run did, for people: the summary artifact and the "where to look" text."""

from __future__ import annotations

import json
import shlex
from typing import Any

from modelops.registry.versions import model_uri
from modelops.settings import Settings
from modelops.types import DeploymentRecord, LifecycleResult, PromotionResult, TrainingResult

SHOWN_METRICS = ("roc_auc", "precision", "recall", "f1", "accuracy", "log_loss")


def lifecycle_result(
    trained: TrainingResult,
    promoted: PromotionResult | None,
    served: DeploymentRecord | None,
    input_example: dict[str, Any] | None = None,
) -> LifecycleResult:
    """The lifecycle's typed result."""
    reused = [trained.reused] if trained.reused else []
    if promoted is not None and not promoted.changed:
        reused.append(f"production already version {promoted.version}: nothing promoted")
    if served is not None and served.action == "unchanged":
        reused.append(f"version {served.version} already served at {served.url}: left as it is")
    return LifecycleResult(
        model_name=trained.model_name,
        version=trained.version,
        aliases=["production"] if promoted else [trained.alias or "staging"],
        metrics=trained.metrics,
        mlflow_run_id=trained.mlflow_run_id,
        production=promoted.version if promoted else None,
        serving_url=served.url if served else None,
        input_example=input_example or (served.example if served else None),
        reused=reused,
    )


def lifecycle_markdown(
    trained: TrainingResult,
    result: LifecycleResult,
    promoted: PromotionResult | None,
    served: DeploymentRecord | None,
    promote_to: str,
    deploy: Any,
    run_name: str,
    ui_url: str | None,
) -> str:
    """One markdown page: data, validation, gate, version and aliases, deployment, links."""
    name, version = trained.model_name, trained.version
    validated = (
        f"validation {trained.validation.get('successful_expectations')}/"
        f"{trained.validation.get('evaluated_expectations')} expectations met"
        if trained.validation
        else f"validated when version {version} was trained (the same content digest)"
    )
    lines = [
        f"## {name} v{version} — lifecycle run `{run_name}`",
        "",
        *[f"- **nothing new**: {line}" for line in result.reused],
        f"- **data**: {trained.rows:,} rows; {validated}",
        "- **quality gate**: PASSED",
        "",
        "| metric | value | threshold | result |",
        "|---|---:|---:|---|",
        *[
            f"| {r['metric']} | {r['value']:.4f} | {r['comparison']} {r['threshold']:.4f} | "
            f"{'pass' if r['passed'] else 'FAIL'} |"
            for r in trained.gate
        ],
        "",
        f"- **registered**: `{name}` version **{version}**, aliases: "
        + ", ".join(f"`@{a}`" for a in result.aliases),
    ]
    if promoted:
        previous = promoted.previous_production
        lines.append(
            f"- **production**: version {promoted.version}"
            + (f" (previous production: {previous})" if previous else "")
        )
    else:
        lines.append(f"- **stopped after**: {promote_to}")
    if served:
        lines.append(f"- **serving**: {served.target} at `{served.url}`")
    elif deploy:
        lines.append("- **serving**: not deployed")
    run_link = (
        f"[{trained.mlflow_run_id}]({ui_url}/#/experiments/{trained.mlflow_experiment_id}"
        f"/runs/{trained.mlflow_run_id})"
        if ui_url
        else f"`{trained.mlflow_run_id}`"
    )
    version_link = (
        f"[{name} v{version}]({ui_url}/#/models/{name}/versions/{version})"
        if ui_url
        else f"`{model_uri(name, version)}`"
    )
    lines += ["", f"MLflow run: {run_link} · model version: {version_link}"]
    return "\n".join(lines)


def look_here(result: LifecycleResult, settings: Settings) -> str:
    """Where to look at what the main job made, as the commands a person types next."""
    name = result.model_name
    metrics = ", ".join(f"{k}={v:.3f}" for k, v in result.metrics.items() if k in SHOWN_METRICS)
    lines = [
        "",
        *[f"Nothing new: {line}" for line in result.reused],
        f"{name} version {result.version}: " + ", ".join(f"@{a}" for a in result.aliases),
        f"  metrics: {metrics}",
        f"  MLflow run: {result.mlflow_run_id}",
    ]
    if result.serving_url:
        lines.append(f"  serving: {result.serving_url}/invocations")
        if result.input_example:
            body = shlex.quote(json.dumps(result.input_example, ensure_ascii=False))
            lines.append(
                f"  try it:  curl -s {result.serving_url}/invocations "
                f"-H 'Content-Type: application/json' -d {body}"
            )
        lines.append(f"  stop it:  .venv/bin/python -m modelops stop {shlex.quote(name)}")
    ui = settings.ui_base_url
    lines += [
        "Look at it:",
        f"  open {ui}/#/models/{name}"
        if ui
        else f"  .venv/bin/mlflow ui --backend-store-uri {settings.shown_tracking_uri}\n"
        f"  then open http://127.0.0.1:5000/#/models/{name}",
        f"  .venv/bin/python -m modelops versions {shlex.quote(name)}",
    ]
    return "\n".join(lines) + "\n"
