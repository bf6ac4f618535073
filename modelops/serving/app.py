"""The model server's ASGI app: a thin HTTP layer over a loaded version (or two: a stable
version and a rollout's candidate, see :mod:`modelops.serving.traffic`).

Routes: ``POST /invocations`` (MLflow's scoring protocol, so no client changes), the Open
Inference Protocol v2 (``/v2``, ``/v2/health/live``, ``/v2/health/ready``, and
``/v2/models/{name}[/versions/{version}]`` with ``/ready`` and ``/infer``; JSON or binary
tensors; errors as ``{"error": ...}``),
``/ping`` and ``/health`` (probes), ``/version`` (which model answers, from which run, loaded
when, with which engine) and ``/metrics`` (Prometheus). Every answer carries
``model_version`` and ``mlflow_run_id`` in its body and as ``X-Model-Version`` /
``X-MLflow-Run-Id`` headers, and a request id (``X-Request-Id``, honoured or generated).
Bad input is always a 4xx with a one-line message; the server keeps serving.

With a candidate, ``POST /feedback`` takes the labels of answered requests and
``GET /rollout/evidence`` gives every answer of either version with its label (the live
analysis's input); ``/version`` describes both versions and the split.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import math
import os
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelops.errors import ConfigurationError
from modelops.serving import protocols
from modelops.serving.evidence import Evidence, FeedbackConflict, Split
from modelops.serving.model import ServedModel
from modelops.serving.protocols import BadRequest
from modelops.serving.telemetry import Prometheus, Telemetry, TelemetryConfig
from modelops.serving.traffic import TrafficConfig, candidate_answers, parse_feedback

log = logging.getLogger("modelops.serving")
CONFIG_ENV = "MODELOPS_SERVE_CONFIG"


@dataclass(frozen=True)
class VersionConfig:
    """A second version a server holds beside the first (the rollout's candidate)."""

    model_dir: str
    version: str
    alias: str | None = None
    run_id: str | None = None


@dataclass
class ServeConfig:
    """Everything a worker needs to serve one version, or a stable version and a candidate
    (written by ``modelops serve``)."""

    model_dir: str
    name: str
    version: str
    alias: str | None = None
    run_id: str | None = None
    fast_path: bool = True
    max_body_bytes: int = 16 * 1024 * 1024
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    candidate: VersionConfig | None = None
    traffic: TrafficConfig | None = None  # how the candidate takes traffic (with a candidate)
    evidence_path: str | None = None  # where the answers and labels are kept (with a candidate)
    evidence_limit: int = 200_000
    # A rollout's hold on the split: the token its PUT /rollout/traffic must show, and how long
    # the candidate keeps traffic unless the rollout renews it (None: for as long as it runs).
    control_token: str | None = None
    lease_seconds: float | None = None

    def write(self, path: Path) -> Path:
        """Save as JSON (the workers read it back)."""
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def read(cls, path: str | Path) -> ServeConfig:
        """Load a saved config."""
        data = json.loads(Path(path).read_text())
        candidate, traffic = data.get("candidate"), data.get("traffic")
        return cls(
            **{
                **data,
                "telemetry": TelemetryConfig(**data.get("telemetry", {})),
                "candidate": VersionConfig(**candidate) if candidate else None,
                "traffic": TrafficConfig(**traffic) if traffic else None,
            }
        )


def new_request_id() -> str:
    """A request id for a request that came without one: a version 7 UUID (RFC 9562) in hex,
    its first 48 bits the time in milliseconds. Ids that grow with time are appended at the
    end of the rollout evidence's request-id index, where random ones (version 4) land all
    over it: a canary's evidence cost 14 µs per answer at first and 32 µs at 200,000 kept
    with random ids, 12 µs throughout with these (and they are cheaper to make)."""
    bits = int.from_bytes(os.urandom(10), "big")  # 80: the top 12 and the low 62 are used
    value = time.time_ns() // 1_000_000 << 80 | 7 << 76 | (bits >> 68) << 64 | 2 << 62
    return f"{value | bits & (1 << 62) - 1:032x}"


def create_app(config: ServeConfig | None = None) -> Starlette:
    """The app for one version (or two, with a candidate); with no ``config``, the one
    ``MODELOPS_SERVE_CONFIG`` names (how uvicorn's workers build it: ``create_app`` is the
    factory)."""
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
    candidate, evidence, traffic = None, None, config.traffic or TrafficConfig()
    if config.candidate is not None:
        candidate = ServedModel(
            Path(config.candidate.model_dir),
            config.name,
            config.candidate.version,
            alias=config.candidate.alias,
            run_id=config.candidate.run_id,
            fast_path=config.fast_path,
        )
        lease = config.lease_seconds
        evidence = Evidence(
            config.evidence_path or Path(config.model_dir).parent / "evidence.db",
            limit=config.evidence_limit,
            split=Split(True, traffic.weight, time.time() + lease if lease else math.inf),
        )
    served = [model] if candidate is None else [model, candidate]
    families = Prometheus(config.name, [m.version for m in served])
    recorders = {m.version: Telemetry(m, config.telemetry, families) for m in served}
    telemetry = recorders[model.version]
    lineages = {
        m.version: {"X-Model-Version": m.version, "X-MLflow-Run-Id": m.run_id or ""} for m in served
    }
    lineage = lineages[model.version]
    by_version = {m.version: m for m in served}
    sticky = (traffic.sticky_header or "").lower()

    def in_traffic() -> bool:
        """Whether the candidate takes part now (not after an abort or a lapsed lease)."""
        return evidence is not None and evidence.split.on(time.time())

    def pick(request: Request) -> ServedModel:
        """The version that answers this request (the stable one unless canary says not)."""
        if candidate is None or traffic.mode != "canary" or not in_traffic():
            return model
        assert evidence is not None
        key = request.headers.get(sticky) if sticky else None
        return candidate if candidate_answers(evidence.split.weight, key) else model

    def reply(
        body: bytes,
        status: int,
        request_id: str,
        served: ServedModel = model,
        media: str = protocols.JSON,
        headers: dict[str, str] | None = None,
    ) -> Response:
        return Response(
            body,
            status,
            media_type=media,
            headers={**lineages[served.version], "X-Request-Id": request_id, **(headers or {})},
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

    def model_failed(exc: Exception, request_id: str) -> BadRequest:
        """The model itself failed on inputs that fit its signature."""
        log.exception("prediction failed (request %s)", request_id)
        # What scikit-learn raises for an input it refuses is the input's fault (MLflow's
        # own server answers 400 too); anything else is the server's.
        refused = isinstance(exc, ValueError | TypeError)
        return BadRequest(
            f"The model could not score this input: {type(exc).__name__}: "
            f"{(str(exc).splitlines() or [''])[0][:300]}",
            400 if refused else 500,
            "BAD_REQUEST" if refused else "INTERNAL_ERROR",
        )

    # A candidate with the stable version's signature takes the stable version's parsed input
    # as it is (parsing a request is most of its CPU); another one parses the body itself.
    same_inputs = candidate is not None and candidate.columns == model.columns

    async def shadow(
        body: bytes, request: Request, parse: Any, request_id: str, parsed: Any
    ) -> None:
        """Score a request with the candidate after the stable answer went: kept for the
        analysis, never sent. On the event loop (a thread per request costs more than an
        ONNX answer), as the stable version is; slow engines in a thread, as there."""
        assert candidate is not None and evidence is not None
        inputs, answer, rows, status, seconds = None, None, 0, 200, 0.0
        try:
            inputs = parsed if same_inputs else parse(body, request, request_id, candidate)[0]
            rows = len(inputs)
            started = time.perf_counter()
            if candidate.engine in ("transformers", "pyfunc"):
                answer = await run_in_threadpool(candidate.predict, inputs)
            else:
                answer = candidate.predict(inputs)
            seconds = time.perf_counter() - started
        except BadRequest as exc:
            status = exc.status
        except Exception as exc:
            status = model_failed(exc, request_id).status
        evidence.add(request_id, candidate.version, False, status, seconds, rows, answer)
        recorders[candidate.version].record(seconds, rows, status, answer, inputs, request_id)

    async def score(
        request: Request,
        parse: Any,
        render: Any,
        v2: bool = False,
        pinned: ServedModel | None = None,
    ) -> Response:
        started = time.perf_counter()
        request_id = request.headers.get("x-request-id") or new_request_id()
        served = pinned or pick(request)
        inputs, answer, rows, body, scored = None, None, 0, b"", 0.0
        try:
            body = await read_body(request)
            inputs, params, request_id = parse(body, request, request_id, served)
            rows = len(inputs)
            predicting = time.perf_counter()
            if served.engine in ("transformers", "pyfunc"):  # slow: keep the loop responsive
                answer = await run_in_threadpool(served.predict, inputs)
            else:
                answer = served.predict(inputs)
            scored = time.perf_counter() - predicting  # the model's time: what versions compare
            content, extra = render(answer, params, request_id, served)
            response = reply(content, 200, request_id, served, **extra)
        except BadRequest as exc:
            response = reply(exc.v2_body() if v2 else exc.body(), exc.status, request_id, served)
        except Exception as exc:
            error = model_failed(exc, request_id)
            response = reply(
                error.v2_body() if v2 else error.body(), error.status, request_id, served
            )
        seconds = time.perf_counter() - started
        recorders[served.version].record(
            seconds, rows, response.status_code, answer, inputs, request_id
        )
        if evidence is not None and pinned is None:
            status = response.status_code
            evidence.add(request_id, served.version, True, status, scored, rows, answer)
            if traffic.mode == "shadow" and status < 400 and in_traffic():
                response.background = BackgroundTask(
                    shadow, body, request, parse, request_id, inputs
                )
        return response

    async def invocations(request: Request) -> Response:
        def parse(
            body: bytes, req: Request, rid: str, served: ServedModel
        ) -> tuple[Any, dict, str]:
            inputs, params = protocols.parse_invocation(
                body, req.headers.get("content-type"), served
            )
            return inputs, params, rid

        def render(answer: Any, params: dict, rid: str, served: ServedModel) -> tuple[bytes, dict]:
            return protocols.invocation_body(answer, served, params), {}

        return await score(request, parse, render)

    async def feedback(request: Request) -> Response:
        request_id = request.headers.get("x-request-id") or new_request_id()
        if evidence is None:
            error = BadRequest(
                "This server holds one version: feedback is taken during a rollout (modelops "
                "serve --candidate, or modelops rollout).",
                404,
                "NOT_FOUND",
            )
            return reply(error.body(), error.status, request_id)
        try:
            body = orjson.loads(await read_body(request))
        except orjson.JSONDecodeError as exc:
            error = BadRequest(f"The body is not valid JSON: {exc}")
            return reply(error.body(), error.status, request_id)
        classes = model.classes if model.is_classifier else None
        try:
            counts = evidence.label(parse_feedback(body, classes))
        except FeedbackConflict as exc:
            error = BadRequest(str(exc), 409, "RESOURCE_ALREADY_EXISTS")
            return reply(error.body(), error.status, request_id)
        except ConfigurationError as exc:
            error = BadRequest(str(exc))
            return reply(error.body(), error.status, request_id)
        return reply(orjson.dumps(counts), 200, request_id)

    async def evidence_route(request: Request) -> Response:
        if evidence is None:
            return reply(
                BadRequest("This server holds one version: no rollout evidence.", 404).body(),
                404,
                new_request_id(),
            )
        try:
            since = float(request.query_params.get("since", 0))
        except ValueError:
            return reply(BadRequest("since must be a Unix time in seconds.").body(), 400, "")
        kept = await run_in_threadpool(evidence.read, since)
        about = {
            "model_name": model.name,
            "stable": model.version,
            "candidate": candidate.version if candidate else None,
            "mode": traffic.mode,
            "weight": traffic.weight,
            "classes": model.classes,
            **kept,
        }
        return Response(orjson.dumps(about), 200, media_type=protocols.JSON, headers=lineage)

    async def split_route(request: Request) -> Response:
        """``GET``: the split now; ``PUT`` (a rollout, with its token): change it — a weight,
        a renewed lease, or ``{"active": false}`` to take the candidate out at once."""
        if evidence is None:
            return reply(BadRequest("This server holds one version.", 404).body(), 404, "")
        if request.method == "PUT":
            if not config.control_token:
                error = BadRequest(
                    "This server's split is fixed: only a rollout's server can be changed.", 403
                )
                return reply(error.body(), error.status, "")
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given, f"Bearer {config.control_token}"):
                return reply(BadRequest("Wrong or missing rollout token.", 401).body(), 401, "")
            try:
                evidence.set_split(
                    _changed_split(evidence.split, orjson.loads(await read_body(request)))
                )
            except (orjson.JSONDecodeError, ConfigurationError) as exc:
                return reply(BadRequest(str(exc).splitlines()[0]).body(), 400, "")
        now = evidence.split
        body = {
            "mode": traffic.mode,
            "active": now.active,
            "weight": now.weight,
            "until": None if math.isinf(now.until) else now.until,
            "in_traffic": in_traffic(),
        }
        return Response(orjson.dumps(body), 200, media_type=protocols.JSON, headers=lineage)

    def v2_error(message: str, status: int = 404) -> Response:
        return Response(
            orjson.dumps({"error": message}), status, media_type=protocols.JSON, headers=lineage
        )

    def unknown(request: Request) -> Response | None:
        """A 404 for a name or version this server does not serve (``None``: it does)."""
        name = request.path_params["name"]
        wanted = request.path_params.get("version", model.version)
        if name == model.name and wanted in by_version:
            return None
        held = " and ".join(by_version)
        return v2_error(
            f"This server serves {model.name!r} version {held}, not {name!r} version {wanted}."
        )

    def named(request: Request) -> ServedModel | None:
        """The version a path names (``None``: the path names none, traffic decides)."""
        wanted = request.path_params.get("version")
        return by_version[wanted] if wanted is not None else None

    async def infer(request: Request) -> Response:
        if (missing := unknown(request)) is not None:
            return missing

        def parse(body: bytes, req: Request, rid: str, served: ServedModel) -> tuple[Any, Any, str]:
            parsed = protocols.parse_v2(body, served, req.headers.get(protocols.HEADER_LENGTH))
            return parsed.inputs, parsed, str(parsed.id or rid)

        def render(answer: Any, parsed: Any, rid: str, served: ServedModel) -> tuple[bytes, dict]:
            content, header_length = protocols.v2_body(answer, served, parsed)
            if header_length is None:
                return content, {}
            return content, {
                "media": "application/octet-stream",
                "headers": {protocols.HEADER_LENGTH: str(header_length)},
            }

        return await score(request, parse, render, v2=True, pinned=named(request))

    async def ping(request: Request) -> Response:
        return Response("\n", 200, media_type=protocols.JSON, headers=lineage)

    async def version(request: Request) -> Response:
        about = {**model.describe(), "telemetry": telemetry.describe(), "pid": os.getpid()}
        if candidate is not None and evidence is not None:
            about["rollout"] = {
                **asdict(traffic),
                "candidate": {
                    **candidate.describe(),
                    "telemetry": recorders[candidate.version].describe(),
                },
                "evidence": await run_in_threadpool(evidence.describe),
            }
        return Response(orjson.dumps(about), 200, media_type=protocols.JSON, headers=lineage)

    server_metadata = orjson.dumps(
        {"name": "modelops", "version": _version(), "extensions": ["binary_tensor_data"]}
    )

    async def v2_server(request: Request) -> Response:
        return Response(server_metadata, 200, media_type=protocols.JSON, headers=lineage)

    async def v2_model(request: Request) -> Response:
        if (missing := unknown(request)) is not None:
            return missing
        about = protocols.v2_metadata(named(request) or model)
        if request.path_params.get("version") is None:
            about["versions"] = list(by_version)
        return Response(
            orjson.dumps(about),
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
        Route("/feedback", feedback, methods=["POST"]),
        Route("/rollout/evidence", evidence_route, methods=["GET"]),
        Route("/rollout/traffic", split_route, methods=["GET", "PUT"]),
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
        for recorder in recorders.values():
            recorder.close()  # log what is left, end the inference run
        if evidence is not None:
            evidence.close()

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: http_error, 405: http_error},
    )
    app.state.model, app.state.telemetry = model, telemetry
    return app


def _changed_split(split: Split, change: Any) -> Split:
    """``split`` with what a ``PUT /rollout/traffic`` body changes (weight, lease_seconds,
    active).

    Raises:
        ConfigurationError: another key, or a value out of range.
    """
    if not isinstance(change, dict) or not set(change) <= {"weight", "lease_seconds", "active"}:
        raise ConfigurationError("Send an object with weight, lease_seconds and/or active.")
    weight = change.get("weight", split.weight)
    if not isinstance(weight, int | float) or isinstance(weight, bool) or not 0 < weight < 1:
        raise ConfigurationError(f"weight must be in (0, 1), not {weight!r}.")
    until = split.until
    if "lease_seconds" in change:
        lease = change["lease_seconds"]
        if not isinstance(lease, int | float) or isinstance(lease, bool) or lease <= 0:
            raise ConfigurationError(f"lease_seconds must be a positive number, not {lease!r}.")
        until = time.time() + lease
    active = change.get("active", split.active)
    if not isinstance(active, bool):
        raise ConfigurationError(f"active must be true or false, not {active!r}.")
    # Once out, a candidate stays out: an abort is never undone by a late renewal.
    return Split(active and split.active, float(weight), until)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("modelops-flows")
    except PackageNotFoundError:  # run from a checkout without installing it
        return "0+unknown"
