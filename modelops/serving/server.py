"""``modelops serve``: resolve a version, fetch it once, verify the fast path, then serve.

The command resolves the version (a number, an alias, ``latest``) and reports it, downloads its
files once into ``$MODELOPS_HOME/serving/models/<model>/v<N>/`` (reused by later starts and by
every worker), converts and verifies the ONNX fast path there, and then replaces itself
(``exec``) with a lean uvicorn process: the workers load the local copy without importing
MLflow, so an idle server holds no more than the model and the HTTP stack.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from modelops.errors import ConfigurationError
from modelops.naming import model_stem
from modelops.serving.app import CONFIG_ENV, ServeConfig, VersionConfig
from modelops.serving.evidence import KEPT_FILES, prune
from modelops.serving.telemetry import TelemetryConfig
from modelops.serving.traffic import TrafficConfig
from modelops.settings import Settings, get_settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

DISABLE_TELEMETRY_ENV = "MODELOPS_DISABLE_RUNTIME_LOGGING"


def prepare(
    model_name: str,
    ref: str,
    *,
    settings: Settings | None = None,
    fast_path: bool = True,
    sample_dir: str | None = None,
    sample_rate: float = 1.0,
    max_body_bytes: int | None = None,
    candidate: str | None = None,
    traffic: TrafficConfig | None = None,
    evidence_path: str | None = None,
    control_token: str | None = None,
    lease_seconds: float | None = None,
) -> ServeConfig:
    """Resolve, fetch and verify a version (and a candidate beside it); returns the config the
    workers start from.

    Raises:
        ModelNotFound: no such model, version or alias.
        ConfigurationError: the candidate is the version that already answers, or the traffic
            split is not one a server can run.
    """
    from modelops.tracking import get_client

    settings = settings or get_settings()
    client = get_client(settings.resolved_tracking_uri, settings.resolved_registry_uri)
    stable = _fetch(client, settings, model_name, ref, fast_path)
    second = None
    if candidate is not None:
        traffic = (traffic or TrafficConfig()).check()
        second = _fetch(client, settings, model_name, candidate, fast_path)
        if second.version == stable.version:
            raise ConfigurationError(
                f"The candidate {candidate!r} is version {stable.version} of {model_name!r}, "
                f"the version that already answers ({ref}): a candidate must be another "
                f"version (e.g. --candidate staging)."
            )
        if evidence_path is None:
            folder = settings.home_dir / "serving" / "rollouts" / model_stem(model_name)
            stamp = time.strftime("%Y%m%dT%H%M%S")
            name = f"v{stable.version}-v{second.version}-{stamp}-{os.getpid()}.db"
            evidence_path = str(folder / name)
            prune(folder, KEPT_FILES - 1)  # room for this server's
    env_limit = os.environ.get("MODELOPS_SERVE_MAX_BODY_BYTES")
    env = os.environ.get
    telemetry = TelemetryConfig(
        enabled=env(DISABLE_TELEMETRY_ENV, "").lower() not in ("1", "true", "yes"),
        tracking_uri=settings.resolved_tracking_uri,
        experiment_name=settings.experiment_name,
        artifact_location=settings.default_artifact_location,
        sample_dir=sample_dir or env("MODELOPS_SERVE_SAMPLE_DIR") or None,
        sample_rate=sample_rate,
        flush_seconds=float(env("MODELOPS_SERVE_FLUSH_SECONDS", 5)),
        flush_every=int(env("MODELOPS_SERVE_FLUSH_EVERY", 1000)),
        max_buffered=int(env("MODELOPS_SERVE_MAX_BUFFERED", 50_000)),
    )
    return ServeConfig(
        model_dir=stable.model_dir,
        name=model_name,
        version=stable.version,
        alias=stable.alias,
        run_id=stable.run_id,
        fast_path=fast_path,
        telemetry=telemetry,
        max_body_bytes=max_body_bytes or int(env_limit or 16 * 1024 * 1024),
        candidate=second,
        traffic=traffic if second is not None else None,
        evidence_path=evidence_path if second is not None else None,
        evidence_limit=int(env("MODELOPS_SERVE_MAX_EVIDENCE", 200_000)),
        control_token=control_token if second is not None else None,
        lease_seconds=lease_seconds if second is not None else None,
    )


def _fetch(
    client: MlflowClient, settings: Settings, model_name: str, ref: str, fast_path: bool
) -> VersionConfig:
    """Resolve ``ref``, download the version once into the serving folder, and verify its
    fast path and missing-value checks there."""
    from modelops.model_io import download_version
    from modelops.registry.versions import resolve_version
    from modelops.serving import fast_path as onnx
    from modelops.serving import missing
    from modelops.serving.model import (
        FAST_PATH_REPORT,
        MISSING_REPORT,
        read_mlmodel,
        signature_columns,
    )

    version = resolve_version(client, model_name, ref)
    number = str(version.version)
    folder = settings.home_dir / "serving" / "models" / model_stem(model_name) / f"v{number}"
    if not (folder / "MLmodel").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".v{number}-", dir=folder.parent))
        local = download_version(client, model_name, number, dst=str(staging))
        # Whole or not at all: a half download is never served. If another server fetched it
        # meanwhile, the rename fails and that copy is used.
        with contextlib.suppress(OSError):
            local.rename(folder)
        shutil.rmtree(staging, ignore_errors=True)
    columns = signature_columns(read_mlmodel(folder))
    if fast_path and not (folder / FAST_PATH_REPORT).is_file():
        onnx.prepare(folder, columns)
    if not (folder / MISSING_REPORT).is_file():  # whatever the engine: both check the same
        missing.prepare(folder, columns)
    alias = None if str(ref).isdigit() or str(ref).lower() == "latest" else str(ref)
    return VersionConfig(str(folder), number, alias, version.run_id)


def exec_server(config: ServeConfig, host: str, port: int, workers: int) -> None:
    """Replace this process with the uvicorn server for ``config`` (never returns)."""
    folder = Path(config.model_dir)
    path = config.write(folder / f"serve-{os.getpid()}.json")
    os.environ[CONFIG_ENV] = str(path)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(
        sys.executable,
        [
            sys.executable,
            "-m",
            "modelops.serving.server",
            "--host",
            host,
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
    )


def main(argv: list[str] | None = None) -> int:
    """Run uvicorn with the app factory (the process ``exec_server`` becomes)."""
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m modelops.serving.server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    if CONFIG_ENV not in os.environ:
        raise ConfigurationError(f"{CONFIG_ENV} is not set: start the server with modelops serve.")
    made = None  # the metrics folder this process made, removed when the server stops
    if args.workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        made = tempfile.mkdtemp(prefix="modelops-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = made
    try:
        uvicorn.run(
            "modelops.serving.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=10,
        )
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
