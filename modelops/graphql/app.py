"""The operator API as an ASGI app: ``/graphql`` (every request authenticated) and ``/healthz``."""

from __future__ import annotations

import os
from typing import Any

from modelops.graphql.auth import AuthConfig, AuthError


def create_app(auth: AuthConfig | None = None) -> Any:
    """The Starlette app. GraphiQL only when ``MODELOPS_API_GRAPHIQL=true``.

    Raises:
        ConfigurationError: no way to verify tokens is configured.
    """
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route
    from strawberry.asgi import GraphQL

    from modelops.graphql.errors import Code
    from modelops.graphql.schema import schema

    verifier = auth or AuthConfig.from_env()
    graphiql = os.environ.get("MODELOPS_API_GRAPHIQL", "").lower() in ("1", "true")

    class Authenticated(GraphQL):  # type: ignore[type-arg]
        async def get_context(self, request: Any, response: Any = None) -> Any:
            return {"request": request, "response": response, "principal": request.state.principal}

    graphql = Authenticated(schema, graphql_ide="graphiql" if graphiql else None)

    class Guarded:
        """Every request to /graphql carries a valid token, or gets 401 and never reaches the
        schema (the GraphiQL page itself, when enabled, is the one exception)."""

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            request = Request(scope)
            page = request.method == "GET" and "text/html" in request.headers.get("accept", "")
            if scope["type"] == "http" and not (graphiql and page):
                try:
                    principal = verifier.verify(request.headers.get("authorization"))
                except AuthError as exc:
                    body = {
                        "data": None,
                        "errors": [
                            {
                                "message": str(exc),
                                "extensions": {"code": Code.UNAUTHENTICATED.value},
                            }
                        ],
                    }
                    await JSONResponse(
                        body, status_code=401, headers={"WWW-Authenticate": "Bearer"}
                    )(scope, receive, send)
                    return
                scope.setdefault("state", {})["principal"] = principal
            elif scope["type"] != "http":
                await JSONResponse({"error": "websockets are not served"}, 400)(
                    scope, receive, send
                )
                return
            await graphql(scope, receive, send)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[Route("/graphql", Guarded(), methods=["GET", "POST"]), Route("/healthz", healthz)]
    )


def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the API on uvicorn (refuses to start without a token key)."""
    import uvicorn

    app = create_app()
    uvicorn.run(app, host=host, port=port, log_level="info")
