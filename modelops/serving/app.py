"""The model server's ASGI app: a thin HTTP layer over a loaded version.

Routes: ``POST /invocations`` (MLflow's scoring protocol, so no client changes), the Open
Inference Protocol v2 (``/v2``, ``/v2/health/live``, ``/v2/health/ready``, and
``/v2/models/{name}[/versions/{version}]`` with ``/ready`` and ``/infer``; JSON or binary
tensors; errors as ``{"error": ...}``),
``/ping`` and ``/health`` (probes), ``/version`` (which model answers, from which run, loaded
when, with which engine) and ``/metrics`` (Prometheus). Every answer carries
``model_version`` and ``mlflow_run_id`` in its body and as ``X-Model-Version`` /
``X-MLflow-Run-Id`` headers, and a request id (``X-Request-Id``, honoured or generated).
Bad input is always a 4xx with a one-line message; the server keeps serving.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelops.serving import protocols
from modelops.serving.model import ServedModel
from modelops.serving.protocols import BadRequest
from modelops.serving.telemetry import Telemetry, TelemetryConfig

log = logging.getLogger("modelops.serving")
CONFIG_ENV = "MODELOPS_SERVE_CONFIG"


@dataclass
class ServeConfig:
    """Everything a worker needs to serve one version (written by ``modelops serve``)."""

    model_dir: str
    name: str
    version: str
    alias: str | None = None
    run_id: str | None = None
    fast_path: bool = True
    max_body_bytes: int = 16 * 1024 * 1024
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)

    def write(self, path: Path) -> Path:
        """Save as JSON (the workers read it back)."""
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def read(cls, path: str | Path) -> ServeConfig:
        """Load a saved config."""
        data = json.loads(Path(path).read_text())
        return cls(**{**data, "telemetry": TelemetryConfig(**data.get("telemetry", {}))})


def create_app(config: ServeConfig | None = None) -> Starlette:
    """The app for one version; with no ``config``, the one ``MODELOPS_SERVE_CONFIG`` names
    (how uvicorn's workers build it: ``create_app`` is the factory)."""
    if config is None:
        config = ServeConfig.read(os.environ[CONFIG_ENV])
    model = ServedModel(
        Path(config.model_dir),
        config.name,
        config.version,
        alias=config.alias,
        run_id=config.run_id,
        fast_path=config.fast_path,
    )
    telemetry = Telemetry(model, config.telemetry)
    lineage = {"X-Model-Version": model.version, "X-MLflow-Run-Id": model.run_id or ""}

    def reply(
        body: bytes,
        status: int,
        request_id: str,
        media: str = protocols.JSON,
        headers: dict[str, str] | None = None,
    ) -> Response:
        return Response(
            body,
            status,
            media_type=media,
            headers={**lineage, "X-Request-Id": request_id, **(headers or {})},
        )

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > config.max_body_bytes:
            raise BadRequest(
                f"The body is {declared} bytes; at most {config.max_body_bytes} are "
                f"accepted (MODELOPS_SERVE_MAX_BODY_BYTES).",
                413,
                "REQUEST_LIMIT_EXCEEDED",
            )
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > config.max_body_bytes:
                raise BadRequest(
                    f"The body is over {config.max_body_bytes} bytes "
                    f"(MODELOPS_SERVE_MAX_BODY_BYTES).",
                    413,
                    "REQUEST_LIMIT_EXCEEDED",
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def score(request: Request, parse: Any, render: Any, v2: bool = False) -> Response:
        started = time.perf_counter()
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        inputs, answer, rows = None, None, 0
        try:
            body = await read_body(request)
            inputs, params, request_id = parse(body, request, request_id)
            rows = len(inputs)
            if model.engine in ("transformers", "pyfunc"):  # slow: keep the loop responsive
                from starlette.concurrency import run_in_threadpool

                answer = await run_in_threadpool(model.predict, inputs)
            else:
                answer = model.predict(inputs)
            content, extra = render(answer, params, request_id)
            response = reply(content, 200, request_id, **extra)
        except BadRequest as exc:
            response = reply(exc.v2_body() if v2 else exc.body(), exc.status, request_id)
        except Exception as exc:  # the model itself failed on inputs that fit its signature
            log.exception("prediction failed (request %s)", request_id)
            # What scikit-learn raises for an input it refuses is the input's fault (MLflow's
            # own server answers 400 too); anything else is the server's.
            refused = isinstance(exc, ValueError | TypeError)
            error = BadRequest(
                f"The model could not score this input: {type(exc).__name__}: "
                f"{(str(exc).splitlines() or [''])[0][:300]}",
                400 if refused else 500,
                "BAD_REQUEST" if refused else "INTERNAL_ERROR",
            )
            response = reply(error.v2_body() if v2 else error.body(), error.status, request_id)
        telemetry.record(
            time.perf_counter() - started, rows, response.status_code, answer, inputs, request_id
        )
        return response

    async def invocations(request: Request) -> Response:
        def parse(body: bytes, req: Request, rid: str) -> tuple[Any, dict, str]:
            inputs, params = protocols.parse_invocation(
                body, req.headers.get("content-type"), model
            )
            return inputs, params, rid

        def render(answer: Any, params: dict, rid: str) -> tuple[bytes, dict]:
            return protocols.invocation_body(answer, model, params), {}

        return await score(request, parse, render)

    def v2_error(message: str, status: int = 404) -> Response:
        return Response(
            orjson.dumps({"error": message}), status, media_type=protocols.JSON, headers=lineage
        )

    def unknown(request: Request) -> Response | None:
        """A 404 for a name or version this server does not serve (``None``: it does)."""
        name = request.path_params["name"]
        wanted = request.path_params.get("version", model.version)
        if name == model.name and wanted == model.version:
            return None
        return v2_error(
            f"This server serves {model.name!r} version {model.version}, "
            f"not {name!r} version {wanted}."
        )

    async def infer(request: Request) -> Response:
        if (missing := unknown(request)) is not None:
            return missing

        def parse(body: bytes, req: Request, rid: str) -> tuple[Any, Any, str]:
            parsed = protocols.parse_v2(body, model, req.headers.get(protocols.HEADER_LENGTH))
            return parsed.inputs, parsed, str(parsed.id or rid)

        def render(answer: Any, parsed: Any, rid: str) -> tuple[bytes, dict]:
            content, header_length = protocols.v2_body(answer, model, parsed)
            if header_length is None:
                return content, {}
            return content, {
                "media": "application/octet-stream",
                "headers": {protocols.HEADER_LENGTH: str(header_length)},
            }

        return await score(request, parse, render, v2=True)

    async def ping(request: Request) -> Response:
        return Response("\n", 200, media_type=protocols.JSON, headers=lineage)

    async def version(request: Request) -> Response:
        about = {**model.describe(), "telemetry": telemetry.describe(), "pid": os.getpid()}
        return Response(orjson.dumps(about), 200, media_type=protocols.JSON, headers=lineage)

    server_metadata = orjson.dumps(
        {"name": "modelops", "version": _version(), "extensions": ["binary_tensor_data"]}
    )

    async def v2_server(request: Request) -> Response:
        return Response(server_metadata, 200, media_type=protocols.JSON, headers=lineage)

    async def v2_model(request: Request) -> Response:
        if (missing := unknown(request)) is not None:
            return missing
        return Response(
            orjson.dumps(protocols.v2_metadata(model)),
            200,
            media_type=protocols.JSON,
            headers=lineage,
        )

    async def v2_model_ready(request: Request) -> Response:
        if (missing := unknown(request)) is not None:
            return missing
        body = {"name": model.name, "ready": True}
        return Response(orjson.dumps(body), 200, media_type=protocols.JSON, headers=lineage)

    async def v2_ready(request: Request) -> Response:
        return Response(orjson.dumps({"ready": True}), 200, media_type=protocols.JSON)

    async def v2_live(request: Request) -> Response:
        return Response(orjson.dumps({"live": True}), 200, media_type=protocols.JSON)

    async def metrics(request: Request) -> Response:
        body, media = telemetry.metrics.exposition()
        return Response(body, 200, media_type=media)

    async def http_error(request: Request, exc: Exception) -> Response:
        """Unknown routes and methods: the v2 error shape under ``/v2``, MLflow's elsewhere."""
        status = getattr(exc, "status_code", 500)
        detail = str(getattr(exc, "detail", "") or "Not Found")
        if request.url.path.startswith("/v2"):
            return v2_error(f"{detail}: {request.method} {request.url.path}", status)
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(status, "BAD_REQUEST")
        return Response(
            BadRequest(f"{detail}: {request.method} {request.url.path}", status, code).body(),
            status,
            media_type=protocols.JSON,
            headers=lineage,
        )

    model_routes = ["/v2/models/{name}", "/v2/models/{name}/versions/{version}"]
    routes = [
        Route("/invocations", invocations, methods=["POST"]),
        Route("/ping", ping, methods=["GET"]),
        Route("/health", ping, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/v2", v2_server, methods=["GET"]),
        Route("/v2/health/ready", v2_ready, methods=["GET"]),
        Route("/v2/health/live", v2_live, methods=["GET"]),
        *(Route(path, v2_model, methods=["GET"]) for path in model_routes),
        *(Route(f"{path}/ready", v2_model_ready, methods=["GET"]) for path in model_routes),
        *(Route(f"{path}/infer", infer, methods=["POST"]) for path in model_routes),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        telemetry.close()  # log what is left, end the inference run

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: http_error, 405: http_error},
    )
    app.state.model, app.state.telemetry = model, telemetry
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("modelops-flows")
    except PackageNotFoundError:  # run from a checkout without installing it
        return "0+unknown"
