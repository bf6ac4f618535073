"""The run summary people read at a glance in the Prefect UI."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.runtime import flow_run

from modelops.errors import ConfigurationError
from modelops.settings import get_settings
from tasks.common import COMPUTE_TASK, artifact_key, markdown_artifact


def check_stages(promote_to: str, deploy: Any) -> None:
    """Refuse stage combinations that cannot work, before any work is done.

    Raises:
        ConfigurationError: deploying was asked for without promoting to production.
    """
    if deploy and promote_to != "production":
        raise ConfigurationError(
            f"deploy={deploy!r} serves the production version, but promote_to={promote_to!r} "
            f"stops before production. Use promote_to=production, or deploy=false."
        )


@task(name="publish_lifecycle_summary", **COMPUTE_TASK)
def publish_lifecycle_summary(
    trained: Any, promoted: dict[str, Any] | None, served: dict[str, Any] | None,
    promote_to: str, deploy: Any,
) -> dict[str, Any]:  # fmt: skip
    """One markdown artifact: data, validation, gate, version and aliases, deployment, links."""
    settings = get_settings()
    ui = settings.ui_base_url
    name, version = trained.model_name, trained.version
    aliases = ["staging"] if not promoted else ["production"]
    lines = [
        f"## {name} v{version} — lifecycle run `{flow_run.name}`",
        "",
        f"- **data**: {trained.rows:,} rows; validation "
        f"{trained.validation.get('successful_expectations')}/"
        f"{trained.validation.get('evaluated_expectations')} expectations met",
        "- **quality gate**: PASSED",
        "",
        "| metric | value | threshold | result |",
        "|---|---:|---:|---|",
        *[f"| {r['metric']} | {r['value']:.4f} | {r['comparison']} {r['threshold']:.4f} | "
          f"{'pass' if r['passed'] else 'FAIL'} |" for r in trained.gate],
        "",
        f"- **registered**: `{name}` version **{version}**, aliases: "
        + ", ".join(f"`@{a}`" for a in aliases),
    ]  # fmt: skip
    if promoted:
        previous = promoted.get("previous_production")
        lines.append(f"- **production**: version {promoted['version']}"
                     + (f" (previous production: {previous})" if previous else ""))  # fmt: skip
    else:
        lines.append(f"- **stopped after**: {promote_to}")
    if served:
        lines.append(f"- **serving**: {served.get('target')} at `{served.get('url')}`")
    elif deploy:
        lines.append("- **serving**: not deployed")
    run_link = (f"[{trained.mlflow_run_id}]({ui}/#/experiments/{trained.mlflow_experiment_id}/runs/{trained.mlflow_run_id})"
                if ui else f"`{trained.mlflow_run_id}`")  # fmt: skip
    version_link = (f"[{name} v{version}]({ui}/#/models/{name}/versions/{version})"
                    if ui else f"`models:/{name}/{version}`")  # fmt: skip
    lines += ["", f"MLflow run: {run_link} · model version: {version_link}"]
    markdown_artifact("\n".join(lines), key=artifact_key(name, "lifecycle-summary"),
                      description=f"{name} lifecycle summary")  # fmt: skip
    return {
        "model_name": name, "version": version, "aliases": aliases,
        "metrics": trained.metrics, "mlflow_run_id": trained.mlflow_run_id,
        "production": promoted["version"] if promoted else None,
        "serving_url": served.get("url") if served else None,
    }  # fmt: skip
