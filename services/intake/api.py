"""``POST /v1/events``: authenticate, read the body, hand the items to the intake, answer per event.

The route translates HTTP into :meth:`Intake.ingest` and back; it decides nothing
about events. Whole-request errors are RFC 9457 problems with a stable ``code``
(checked in this order): ``401 unauthorized``, ``415 unsupported_media_type``,
``413 payload_too_large``, ``400 malformed_body``; ``503 broker_unavailable`` or
``database_unavailable`` with ``Retry-After``. The token never reaches a log line:
only its scope does.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from typing import Any, Final

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.exc import DBAPIError

from services.intake import body, openapi
from services.intake.domain.decide import ACCEPTED, DUPLICATE, REJECTED, Plan, Result
from services.intake.handlers import ConcurrentWriters, Intake
from services.intake.metrics import BATCH_SIZE, REQUEST_SECONDS, observe_plan
from services.intake.publisher import BrokerUnavailable
from services.intake.store import DatabaseUnavailable
from shared.http import Problem, bearer_token, match_token, single_valued
from shared.logging import get_logger
from shared.scope import TokenScope
from shared.settings import Scope

CORRELATION_ID: Final = "X-Correlation-ID"
RETRY_AFTER_S: Final = "5"
_FLAGS: Final = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_CORRELATION_OK = re.compile(r"^[\x21-\x7e]{1,128}$")

router = APIRouter(tags=["events"], dependencies=[Depends(single_valued)])


def correlation_id(request: Request) -> str:
    """The caller's ``X-Correlation-ID`` if it is printable ASCII (<= 128 chars), else a new one."""
    given = request.headers.get(CORRELATION_ID, "")
    return given if _CORRELATION_OK.fullmatch(given) else uuid.uuid4().hex


def dry_run_flag(value: str | None) -> bool:
    """``?dry_run=true|false|1|0`` (absent: false); anything else is ``400 invalid_request``."""
    if value is None:
        return False
    flag = _FLAGS.get(value.strip().lower())
    if flag is None:
        raise Problem(400, "invalid_request", f"dry_run must be true or false, not {value!r}")
    return flag


def authorise(
    request: Request, tokens: Mapping[str, Scope], scopes: Mapping[Scope, TokenScope]
) -> TokenScope:
    entries = match_token(bearer_token(request), tokens)
    if entries is None:
        raise Problem(
            401,
            "unauthorized",
            "a valid bearer token is required (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": 'Bearer realm="ketnap"'},
        )
    return scopes[entries]


@router.post(
    "/v1/events",
    summary="Submit events (one, an array, or NDJSON)",
    description=(
        "Validates each event, checks the token's provinces, and publishes what is new to Kafka "
        "(CONTRACT §2-§4). The answer has one result per event, in request order: `202` if any "
        "event was new, `200` if nothing was. `?dry_run=true` answers the same way but publishes "
        "and records nothing."
    ),
    status_code=202,
    response_class=Response,
    responses=openapi.responses(),
    openapi_extra={"requestBody": openapi.request_body(), "parameters": [openapi.DRY_RUN]},
)
async def post_events(request: Request) -> Response:
    with request.app.state.collector.request():
        return await _post_events(request)


async def _post_events(request: Request) -> Response:
    started = time.perf_counter()
    cid = correlation_id(request)
    echo = {CORRELATION_ID: cid}
    state = request.app.state
    try:
        scope = authorise(request, state.tokens, state.scopes)
        dry_run = dry_run_flag(request.query_params.get("dry_run"))
        kind = body.media_type(request.headers.get("content-type"))
        body.check_length(request.headers.get("content-length"))
        items = body.split_items(await body.read_capped(request.stream()), kind)
        BATCH_SIZE.observe(len(items))
        plan = await _ingest(state.intake, items, scope, dry_run=dry_run, correlation_id=cid)
    except Problem as problem:
        problem.headers |= echo
        _log_refused(problem, cid)
        raise
    _observe(plan, scope, cid, dry_run=dry_run, started=started)
    status = 202 if plan.counts()[ACCEPTED] else 200
    return Response(orjson.dumps(answer(plan)), status, headers=echo, media_type="application/json")


def _observe(plan: Plan, scope: TokenScope, cid: str, *, dry_run: bool, started: float) -> None:
    """Metrics and the request's one log line: counts and the scope, never the token."""
    if not dry_run:
        observe_plan(plan)
    elapsed = time.perf_counter() - started
    REQUEST_SECONDS.observe(elapsed)
    get_logger("intake").info(  # a fresh proxy: honours the current logging configuration
        "events_answered",
        correlation_id=cid,
        scope=scope.describe(),
        dry_run=dry_run,
        events=len(plan.results),
        **plan.counts(),
        ms=round(elapsed * 1000, 2),
    )


async def _ingest(
    intake: Intake, items: list[object], scope: TokenScope, *, dry_run: bool, correlation_id: str
) -> Plan:
    retry = {"Retry-After": RETRY_AFTER_S}
    try:
        return await intake.ingest(items, scope, dry_run=dry_run, correlation_id=correlation_id)
    except BrokerUnavailable as down:
        detail = f"{down}; nothing was accepted, retry"
        raise Problem(503, "broker_unavailable", detail, headers=retry) from down
    except (DatabaseUnavailable, DBAPIError, OSError) as down:
        raise Problem(
            503,
            "database_unavailable",
            f"intake database unavailable ({_reason(down)}); retry",
            headers=retry,
        ) from down
    except ConcurrentWriters as busy:
        raise Problem(503, "concurrent_writers", f"{busy}; retry", headers=retry) from busy


def _reason(down: Exception) -> str:
    """The failure's kind only: a driver's message may quote SQL and the events' values."""
    return str(down) if isinstance(down, DatabaseUnavailable) else type(down).__name__


def answer(plan: Plan) -> dict[str, Any]:
    counts = plan.counts()
    return {
        "accepted": counts[ACCEPTED],
        "duplicates": counts[DUPLICATE],
        "rejected": counts[REJECTED],
        "results": [_result(r) for r in plan.results],
    }


def _result(result: Result) -> dict[str, Any]:
    if result.status != REJECTED:
        return {"id": result.id, "status": result.status}
    return {"id": result.id, "status": result.status, "error": {"code": result.code, "detail": result.detail}}


def _log_refused(problem: Problem, cid: str) -> None:
    get_logger("intake").info("request_refused", correlation_id=cid, status=problem.status, code=problem.code)
