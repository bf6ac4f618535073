"""The shipper: one MLflow run per server process, which receives the batches of aggregates.

It goes through the same MLflow path as every other write of this project
(:func:`modelops.tracking.get_client`, :func:`modelops.tracking.ensure_experiment`): the same
short HTTP retries, the same credentials from MLflow's environment variables, and an experiment
deleted in the UI is restored rather than every flush failing to open a run in it. MLflow is
imported on the telemetry thread as the server starts (see ``Telemetry``), not on a request.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from modelops.serving.telemetry.tags import ENGINE_TAG, ENVIRONMENT_TAG, engine_id, environment_tag
from modelops.tracking import PID_TAG, RUN_NAME_TAG, ensure_experiment, get_client, metric_entities

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from modelops.serving.model import ServedModel
    from modelops.serving.telemetry.config import TelemetryConfig


# A server process's only MLflow traffic is this shipper's, and its retry is the buffer: a flush
# that fails goes again with the next one. So each request is tried once and waits 10 s at most
# (what the server always did): a flush held in MLflow's backoff would hold records that are
# neither buffered nor counted as lost, and the count of dropped requests would lag. Set for this
# process over what the environment says (the parent ``modelops serve`` set its own defaults).
SERVER_HTTP_SETTINGS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


class Shipper:
    """Logs batches of aggregates to this process's inference run."""

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self.client, self.run_id = client, run_id

    @classmethod
    def start(cls, model: ServedModel, config: TelemetryConfig) -> Shipper:
        """Open the inference run (creating or restoring its experiment)."""
        tags = {
            RUN_NAME_TAG: f"serving-{model.name}-v{model.version}-{os.getpid()}",
            "modelops.flow": "serving",
            "modelops.model_name": model.name,
            "modelops.model_version": model.version,
            "modelops.training_run_id": model.run_id or "",
            ENGINE_TAG: engine_id(model),
            ENVIRONMENT_TAG: config.environment or environment_tag(),
            PID_TAG: str(os.getpid()),
        }
        uri = config.tracking_uri or ""
        if uri.startswith(("http://", "https://")):
            os.environ.update(SERVER_HTTP_SETTINGS)
        client = get_client(uri)
        experiment_id = ensure_experiment(client, config.experiment_name, config.artifact_location)
        run = client.create_run(experiment_id, tags=tags)
        return cls(client, run.info.run_id)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """One batch of aggregates, at ``step`` (the batch number)."""
        self.client.log_batch(self.run_id, metrics=metric_entities(metrics, step))

    def finish(self) -> None:
        """End the run (server shutdown)."""
        self.client.set_terminated(self.run_id, "FINISHED")
