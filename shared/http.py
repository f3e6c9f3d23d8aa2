"""HTTP plumbing every service shares: RFC 9457 problems, health, readiness, metrics, auth for reads.

A service builds its FastAPI app with :func:`create_service_app`, which adds
``/healthz``, ``/readyz``, ``/metrics``, the topics' AsyncAPI document and JSON
Schemas (``shared.topic_docs``) and the problem+json error handlers, so
every error any route raises carries a stable ``code``.
"""

from __future__ import annotations

import asyncio
import hmac
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Final

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.metrics import exposition
from shared.settings import Scope

PROBLEM_JSON: Final = "application/problem+json"
ReadinessCheck = Callable[[], Awaitable[None]]


class Problem(Exception):
    """An RFC 9457 problem with a stable machine-readable ``code``."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def body(self, instance: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": f"https://ketnap.example/problems/{self.code}",
            "title": self.code.replace("_", " "),
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
            **self.extra,
        }
        if instance:
            doc["instance"] = instance
        return doc


def problem_response(problem: Problem, instance: str | None = None) -> Response:
    return Response(
        orjson.dumps(problem.body(instance)),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


PROBLEM_SCHEMA: Final = {
    "description": "An RFC 9457 problem",
    "content": {
        PROBLEM_JSON: {
            "schema": {
                "type": "object",
                "required": ["type", "title", "status", "code", "detail"],
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "code": {"type": "string"},
                    "detail": {"type": "string"},
                    "instance": {"type": "string"},
                },
            }
        }
    },
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting problem+json for these statuses."""
    return dict.fromkeys(statuses, PROBLEM_SCHEMA)


def _install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return problem_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return problem_response(
            Problem(400, "invalid_request", detail or "invalid request"), request.url.path
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(
            exc.status_code, "http_error"
        )
        return problem_response(Problem(exc.status_code, code, str(exc.detail)), request.url.path)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        return problem_response(Problem(500, "internal_error", "internal error"), request.url.path)


class Readiness:
    """Readiness = every registered check (database, broker) answers within the timeout."""

    def __init__(self, timeout: float = 2.0) -> None:
        self.checks: dict[str, ReadinessCheck] = {}
        self.timeout = timeout

    def add(self, name: str, check: ReadinessCheck) -> None:
        self.checks[name] = check

    async def report(self) -> dict[str, str]:
        async def one(check: ReadinessCheck) -> str:
            try:
                await asyncio.wait_for(check(), self.timeout)
            except Exception as exc:  # any failure means "not ready"; the reason is reported, not raised
                return f"error: {type(exc).__name__}"
            return "ok"

        results = await asyncio.gather(*(one(c) for c in self.checks.values()))
        return dict(zip(self.checks, results, strict=True))


def create_service_app(
    *,
    title: str,
    description: str,
    version: str = "1.0.0",
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    readiness: Readiness,
) -> FastAPI:
    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan)
    _install_problem_handlers(app)

    @app.get("/healthz", tags=["operations"], summary="Alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Broker and database reachable",
        responses={503: {"description": "Not ready"}},
    )
    async def readyz() -> JSONResponse:
        checks = await readiness.report()
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "checks": checks}, status_code=200 if ready else 503
        )

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}}},
    )
    async def metrics() -> Response:
        body, content_type = exposition()
        return Response(body, media_type=content_type)

    from shared.topic_docs import install_topic_docs  # it builds on this module's problems

    install_topic_docs(app)
    return app


async def single_valued(request: Request) -> None:
    """Refuse a query parameter given twice (``400 invalid_request``): every parameter of
    every service is single-valued, and taking one copy silently would answer a question
    the caller may not have asked. A router dependency: ``dependencies=[Depends(single_valued)]``."""
    counts = Counter(name for name, _ in request.query_params.multi_items())
    if repeated := sorted(name for name, n in counts.items() if n > 1):
        raise Problem(400, "invalid_request", f"given more than once: {', '.join(repeated)}")


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def match_token(presented: str | None, scopes: Mapping[str, Scope]) -> Scope | None:
    """The scope of a presented token, compared in constant time against every known token."""
    if not presented:
        return None
    found: Scope | None = None
    candidate = presented.encode()
    for token, scope in scopes.items():
        if hmac.compare_digest(candidate, token.encode()):
            found = scope
    return found
