"""HTTP routes of the reporting service: rollups, lagging branches, exports (CONTRACT §3 Reporting).

Routes translate query parameters and call `ReportingReads`; every refusal is
problem+json with a stable ``code``. With ``KETNAP_READ_AUTH=true`` a known bearer
token is needed (``401 unauthorized``) and a province token reads only its
provinces' subtrees (``403 out_of_scope``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from services.reporting.api_params import (
    EXPORT_PARAMETERS,
    LAGGING_PARAMETERS,
    ROLLUP_PARAMETERS,
    UNIT_PATH_SCHEMA,
)
from services.reporting.export import CSV_TYPE, XLSX_TYPE, lines, to_csv, to_xlsx
from services.reporting.metrics import QUERY_SECONDS
from services.reporting.reads import Question, ReportingReads
from shared.http import Problem, bearer_token, match_token, problem_responses, single_valued
from shared.scope import TokenScope

router = APIRouter(prefix="/v1", tags=["reporting"], dependencies=[Depends(single_valued)])
NATIONAL_SCOPE = TokenScope(national=True)


class UnitOut(BaseModel):
    id: str
    name: str
    level: str
    tree: Literal["legacy", "2025"]


class AttainmentOut(BaseModel):
    value: int
    attainment_pct: str | None = None


class ChildOut(BaseModel):
    id: str
    name: str
    level: str
    value: int


class ReportingOut(BaseModel):
    branches: int
    branches_with_events: int


class RollupOut(BaseModel):
    """A unit's figure for one period, metric and category (``period.from`` on the wire)."""

    unit: UnitOut
    period: dict[str, str]
    metric: str
    category: str
    value: int
    targets: dict[str, AttainmentOut]
    children: list[ChildOut]
    unmapped: int
    reporting: ReportingOut
    as_of: str


class LaggingBranchOut(BaseModel):
    id: str
    name: str
    kind: str | None
    commune_id: str | None
    last_admission: str | None


class LaggingOut(BaseModel):
    unit: UnitOut
    years: list[int]
    branches: list[LaggingBranchOut]


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


def _reads(request: Request) -> ReportingReads:
    reads: ReportingReads = request.app.state.reporting
    return reads


def caller_scope(request: Request) -> TokenScope:
    """National when reads are open; else the scope of the bearer token (401 without a known one)."""
    settings = request.app.state.settings
    if not settings.read_auth:
        return NATIONAL_SCOPE
    scopes: dict[str, TokenScope] = request.app.state.scopes
    token = bearer_token(request)
    if match_token(token, dict.fromkeys(scopes, ())) is None or token is None:
        raise Problem(
            401, "unauthorized", "a known bearer token is needed", headers={"WWW-Authenticate": "Bearer"}
        )
    return scopes[token]


def _asked(request: Request, reads: ReportingReads, question: Question) -> None:
    reads.check_scope(caller_scope(request), question.unit, question.tree)


# Read as plain strings so a refusal keeps its contract code; documented in api_params.
PeriodParam = Annotated[str | None, Query(include_in_schema=False)]
TreeParam = Annotated[str | None, Query(include_in_schema=False)]
MetricParam = Annotated[str, Query(include_in_schema=False)]
CategoryParam = Annotated[str, Query(include_in_schema=False)]
UnitQuery = Annotated[str, Query(include_in_schema=False)]
UnitPath = Annotated[
    str, Path(description="VN, a province, district or commune id", json_schema_extra=UNIT_PATH_SCHEMA)
]


@router.get(
    "/rollups/{unit_id}",
    summary="A unit's figure for a period, its children, targets and attainment",
    responses={200: {"model": RollupOut}, **problem_responses(400, 401, 403, 404)},
    openapi_extra={"parameters": ROLLUP_PARAMETERS},
)
async def get_rollup(
    request: Request,
    unit_id: UnitPath,
    period: PeriodParam = None,
    tree: TreeParam = None,
    metric: MetricParam = "admitted",
    category: CategoryParam = "all",
) -> Response:
    reads = _reads(request)
    with QUERY_SECONDS.labels("rollups").time():
        question = reads.question(unit_id, period, tree, metric, category)
        _asked(request, reads, question)
        return _json(await reads.rollup(question))


@router.get(
    "/lagging",
    summary="Branches under a unit with no admission in the last N full years",
    responses={200: {"model": LaggingOut}, **problem_responses(400, 401, 403, 404)},
    openapi_extra={"parameters": LAGGING_PARAMETERS},
)
async def get_lagging(
    request: Request,
    unit_id: UnitQuery,
    years: Annotated[int, Query(include_in_schema=False)] = 3,
    tree: TreeParam = None,
) -> Response:
    reads = _reads(request)
    with QUERY_SECONDS.labels("lagging").time():
        unit, chosen, window = reads.lagging_question(unit_id, years, tree)
        reads.check_scope(caller_scope(request), unit, chosen)
        return _json(await reads.lagging(unit, chosen, window))


@router.get(
    "/export",
    summary="The unit and its children as CSV or XLSX, with Vietnamese column headers",
    response_class=Response,
    responses={
        200: {"content": {CSV_TYPE: {}, XLSX_TYPE: {}}, "description": "The file"},
        **problem_responses(400, 401, 403, 404),
    },
    openapi_extra={"parameters": EXPORT_PARAMETERS},
)
async def get_export(
    request: Request,
    unit_id: UnitQuery,
    period: PeriodParam = None,
    format: Annotated[str, Query(include_in_schema=False)] = "csv",
    tree: TreeParam = None,
    metric: MetricParam = "admitted",
    category: CategoryParam = "all",
) -> Response:
    reads = _reads(request)
    if format not in ("csv", "xlsx"):
        raise Problem(400, "invalid_format", "format must be csv or xlsx")
    with QUERY_SECONDS.labels("export").time():
        question = reads.question(unit_id, period, tree, metric, category)
        _asked(request, reads, question)
        found, targets = await reads.table(question)
    rows = lines(found, targets)
    stem = f"ketnap_{question.unit.id}_{_safe(question.period.label)}_{question.tree}_{metric}_{category}"
    if format == "csv":
        body, media = to_csv(rows), CSV_TYPE
    else:
        body, media = to_xlsx(rows, f"{question.unit.name} {question.period.label}"), XLSX_TYPE
    disposition = f'attachment; filename="{stem}.{format}"'
    return Response(body, media_type=media, headers={"Content-Disposition": disposition})


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]+", "_", label)
