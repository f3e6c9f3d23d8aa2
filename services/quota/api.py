"""The quota service's read API (CONTRACT.md section 3, Quota).

Decisions where the contract is silent (also in services/quota/README.md):

- ``tallies`` always lists every metric with every category, zeros included, summed
  over the local dates of the year; a branch has no targets (``targets: {}``);
- a province's tallies sum its branches through the asked tree (default: the tree in
  force on 31 December of the year): a branch counts in the province of the parent it
  declared in that tree; in ``2025`` a branch that declared only a legacy parent is
  placed through the official crosswalk. A branch not yet registered counts in no
  province until it is (provinces are resolved at query time);
- ``targets`` are those for metric ``admitted``, category ``all`` of that unit, tree and
  year, per kind, with ``attainment_pct`` (absent when the target is 0);
- ``GET /v1/due``: ``unit_id`` may be a unit of the tree in force today (or ``tree=``),
  a branch id, or left out (everything); ``limit`` caps the items (default 1,000);
- read auth (``KETNAP_READ_AUTH=true``): a province token reads only branches,
  candidates and units of its provinces; rejections and the unfiltered due list
  need a national token. ``401 unauthorized`` without a known token,
  ``403 out_of_scope`` outside it.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel
from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.quota import store
from services.quota.domain import CATEGORIES, METRICS, CandidateState, Status, attainment_pct
from services.quota.tables import branches, candidates, rejections, tallies, targets
from shared.http import Problem, bearer_token, match_token, problem_responses, single_valued
from shared.orgtree import OrgTrees, TreeVersion, local_date, tree_in_force
from shared.scope import TokenScope
from shared.settings import Settings

Tree = Literal["legacy", "2025"]
CURSOR_PATTERN = r"^[0-9]{1,18}$"
# Branch, candidate and unit ids as the intake accepts them (shared.events.Identifier). Declared on the
# parameters so the OpenAPI says what is valid, and so that no string PostgreSQL cannot hold (NUL)
# reaches a query: that was a 500.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$"
CODE_PATTERN = r"^[a-z_]{1,64}$"
Id = Annotated[str, Path(pattern=ID_PATTERN)]
Year = Annotated[int, Query(ge=2000, le=2100, description="Calendar year (local dates, Asia/Ho_Chi_Minh)")]


class Target(BaseModel):
    value: int
    attainment_pct: str | None = None


class Tallies(BaseModel):
    id: str
    year: int
    tree: str | None = None
    tallies: dict[str, dict[str, int]]
    targets: dict[str, Target]


class Candidate(BaseModel):
    id: str
    branch_id: str | None
    stage: str | None
    milestones: dict[str, str]
    drop_reason: str | None = None
    flags: list[dict[str, str]]
    held: list[dict[str, Any]]


class RejectionItem(BaseModel):
    id: str
    code: str
    detail: str
    service: str
    rejected_at: datetime
    event: dict[str, Any] | str


class Rejections(BaseModel):
    items: list[RejectionItem]
    next: str | None


class DueItem(BaseModel):
    id: str
    branch_id: str | None
    admitted: date
    due: date
    overdue_days: int


class Due(BaseModel):
    items: list[DueItem]


class Reader:
    """What the routes need: the engine, the org trees and the read-auth settings."""

    def __init__(self, engine: AsyncEngine, org: OrgTrees, settings: Settings) -> None:
        self.engine, self.org, self.settings = engine, org, settings
        self.scopes = {t: TokenScope.parse(s) for t, s in settings.token_scopes().items()}

    def scope(self, request: Request) -> TokenScope:
        """The caller's scope: national when reads are open, else from the bearer token (401 if none)."""
        if not self.settings.read_auth:
            return TokenScope(national=True)
        token = bearer_token(request)
        entries = match_token(token, dict.fromkeys(self.scopes, ()))
        if entries is None or token is None:
            raise Problem(
                401, "unauthorized", "a known bearer token is needed", headers={"WWW-Authenticate": "Bearer"}
            )
        return self.scopes[token]


def _reader(request: Request) -> Reader:
    reader: Reader = request.app.state.quota_reader
    return reader


ReaderDep = Annotated[Reader, Depends(_reader)]


def _out_of_scope(what: str) -> Problem:
    return Problem(403, "out_of_scope", f"{what} is outside the provinces of this token")


def _year_span(year: int) -> tuple[date, date]:
    return date(year, 1, 1), date(year, 12, 31)


def _shape(rows: Any) -> dict[str, dict[str, int]]:
    shaped = {metric: dict.fromkeys(CATEGORIES, 0) for metric in METRICS}
    for metric, category, total in rows:
        shaped.setdefault(metric, {})[category] = int(total)
    return shaped


async def _branch(connection: Any, branch_id: str | None) -> Any:
    if branch_id is None:
        return None
    return (await connection.execute(select(branches).where(branches.c.branch_id == branch_id))).first()


def _branch_covered(scope: TokenScope, row: Any | None) -> bool:
    if scope.national:
        return True
    if row is None:
        return False
    return scope.holds("legacy", row.province_legacy) or scope.holds("2025", row.province_2025)


router = APIRouter(prefix="/v1", tags=["quota"], dependencies=[Depends(single_valued)])


@router.get(
    "/branches/{branch_id}/tallies",
    response_model=Tallies,
    summary="A branch's tallies for a year",
    responses=problem_responses(400, 401, 403, 404),
)
async def branch_tallies(branch_id: Id, year: Year, request: Request, reader: ReaderDep) -> Tallies:
    scope = reader.scope(request)
    first, last = _year_span(year)
    async with reader.engine.connect() as connection:
        branch = await _branch(connection, branch_id)
        known = branch is not None or await connection.scalar(
            select(func.count()).select_from(tallies).where(tallies.c.branch_id == branch_id).limit(1)
        )
        if not known:
            raise Problem(404, "not_found", f"no branch {branch_id!r}")
        if not _branch_covered(scope, branch):
            raise _out_of_scope(f"branch {branch_id}")
        query = (
            select(tallies.c.metric, tallies.c.category, func.sum(tallies.c.value))
            .where(tallies.c.branch_id == branch_id, tallies.c.day >= first, tallies.c.day <= last)
            .group_by(tallies.c.metric, tallies.c.category)
        )
        rows = (await connection.execute(query)).all()
    return Tallies(id=branch_id, year=year, tallies=_shape(rows), targets={})


@router.get(
    "/provinces/{unit_id}/tallies",
    response_model=Tallies,
    response_model_exclude_none=True,
    summary="A province's tallies and targets for a year, through one org tree",
    responses=problem_responses(400, 401, 403, 404),
)
async def province_tallies(
    unit_id: Id, year: Year, request: Request, reader: ReaderDep, tree: Tree | None = None
) -> Tallies:
    scope = reader.scope(request)
    chosen: TreeVersion = tree or tree_in_force(date(year, 12, 31))
    unit = reader.org[chosen].get(unit_id)
    if unit is None or unit.level != "province":
        raise Problem(404, "not_found", f"no province {unit_id!r} in the {chosen} tree")
    if not scope.covers(unit_id, chosen, reader.org):
        raise _out_of_scope(f"province {unit_id}")
    province = branches.c.province_legacy if chosen == "legacy" else branches.c.province_2025
    first, last = _year_span(year)
    query = (
        select(tallies.c.metric, tallies.c.category, func.sum(tallies.c.value))
        .select_from(tallies.join(branches, branches.c.branch_id == tallies.c.branch_id))
        .where(province == unit_id, tallies.c.day >= first, tallies.c.day <= last)
        .group_by(tallies.c.metric, tallies.c.category)
    )
    async with reader.engine.connect() as connection:
        rows = (await connection.execute(query)).all()
        goals = await _targets(connection, unit_id, chosen, year)
    shaped = _shape(rows)
    admitted = shaped["admitted"]["all"]
    return Tallies(
        id=unit_id,
        year=year,
        tree=chosen,
        tallies=shaped,
        targets={
            kind: Target(value=v, attainment_pct=attainment_pct(admitted, v)) for kind, v in goals.items()
        },
    )


async def _targets(connection: Any, unit_id: str, tree: str, year: int) -> dict[str, int]:
    c = targets.c
    query = select(c.kind, c.value).where(
        c.unit_id == unit_id, c.tree == tree, c.year == year, c.metric == "admitted", c.category == "all"
    )
    return {r.kind: int(r.value) for r in await connection.execute(query)}


@router.get(
    "/candidates/{candidate_id}",
    response_model=Candidate,
    summary="A candidate's stage, milestones, flags and held events",
    responses=problem_responses(400, 401, 403, 404),
)
async def candidate(candidate_id: Id, request: Request, reader: ReaderDep) -> Candidate:
    scope = reader.scope(request)
    async with reader.engine.connect() as connection:
        row = (
            await connection.execute(select(candidates).where(candidates.c.candidate_id == candidate_id))
        ).first()
        if row is None:
            raise Problem(404, "not_found", f"no candidate {candidate_id!r}")
        branch = (
            await connection.execute(select(branches).where(branches.c.branch_id == row.branch_id))
        ).first()
    if not _branch_covered(scope, branch):
        raise _out_of_scope(f"candidate {candidate_id}")
    return _candidate(CandidateState.from_dict(orjson.loads(row.state)), row.branch_id)


def _candidate(state: CandidateState, branch_id: str | None) -> Candidate:
    milestones = {m.name: m.time.isoformat() for m in state.milestones}
    if state.dropped is not None:
        milestones["dropped"] = state.dropped.time.isoformat()
    held = [
        {
            "id": event.id,
            "type": str(event.type),
            "time": event.time.isoformat(),
            "held_since": decision.held_since.isoformat() if decision and decision.held_since else None,
            "detail": decision.detail if decision else None,
        }
        for event in state.held
        if (decision := state.decision(event.id)) is None or decision.status is Status.HELD
    ]
    return Candidate(
        id=state.candidate_id,
        branch_id=branch_id,
        stage=state.stage,
        milestones=milestones,
        drop_reason=state.drop_reason,
        flags=[{"code": str(f.code), "event_id": f.event_id, "detail": f.detail} for f in state.flags],
        held=held,
    )


@router.get(
    "/rejections",
    response_model=Rejections,
    summary="Events this service rejected, oldest first, by cursor",
    responses=problem_responses(400, 401, 403),
)
async def list_rejections(
    request: Request,
    reader: ReaderDep,
    code: Annotated[str | None, Query(pattern=CODE_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[
        str | None, Query(pattern=CURSOR_PATTERN, description="the `next` of the previous page")
    ] = None,
) -> Rejections:
    if not reader.scope(request).national:
        raise _out_of_scope("the rejection list")
    cursor = _cursor(after)
    c = rejections.c
    query = select(rejections).where(c.seq > cursor).order_by(c.seq).limit(limit + 1)
    if code:
        query = query.where(c.code == code)
    async with reader.engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    page = rows[:limit]
    items = [
        RejectionItem(
            id=r.event_id,
            code=r.code,
            detail=r.detail,
            service=r.service,
            rejected_at=store.utc(r.rejected_at) or datetime.now(UTC),
            event=orjson.loads(r.event),
        )
        for r in page
    ]
    return Rejections(items=items, next=str(page[-1].seq) if len(rows) > limit else None)


def _cursor(after: str | None) -> int:
    if after is None:
        return 0
    # ASCII digits only: str.isdigit() also accepts '¹' or '٣', which int() refuses (was a 500).
    if not re.fullmatch(CURSOR_PATTERN, after, flags=re.ASCII):
        raise Problem(400, "invalid_request", "after: not a cursor returned as 'next'")
    return int(after)


@router.get(
    "/due",
    response_model=Due,
    summary="Probationary members whose 12 months end within N days or have passed",
    responses=problem_responses(400, 401, 403, 404),
)
async def due(
    request: Request,
    reader: ReaderDep,
    unit_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    within_days: Annotated[int, Query(ge=0, le=3660)] = 30,
    tree: Tree | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Due:
    scope = reader.scope(request)
    today = local_date(datetime.now(UTC))
    chosen: TreeVersion = tree or tree_in_force(today)
    async with reader.engine.connect() as connection:
        where = await _unit_filter(connection, reader, scope, unit_id, chosen)
        c = candidates.c
        query = (
            select(c.candidate_id, c.branch_id, c.admitted_on, c.due_on)
            .select_from(candidates.outerjoin(branches, branches.c.branch_id == c.branch_id))
            .where(c.stage == "admitted", c.due_on <= today + timedelta(days=within_days), *where)
            .order_by(c.due_on, c.candidate_id)
            .limit(limit)
        )
        rows = (await connection.execute(query)).all()
    return Due(
        items=[
            DueItem(
                id=r.candidate_id,
                branch_id=r.branch_id,
                admitted=r.admitted_on,
                due=r.due_on,
                overdue_days=max(0, (today - r.due_on).days),
            )
            for r in rows
        ]
    )


async def _unit_filter(
    connection: Any, reader: Reader, scope: TokenScope, unit_id: str | None, tree: TreeVersion
) -> list[Any]:
    """SQL conditions selecting the candidates under ``unit_id`` (404 if it names nothing)."""
    if unit_id is None or unit_id == "VN":
        if not scope.national:
            raise _out_of_scope("the whole country")
        return []
    unit = reader.org[tree].get(unit_id)
    if unit is not None:
        if not scope.covers(unit_id, tree, reader.org):
            raise _out_of_scope(f"unit {unit_id}")
        b = branches.c
        column = {
            ("legacy", "province"): b.province_legacy,
            ("2025", "province"): b.province_2025,
            ("legacy", "district"): b.district_legacy,
            ("legacy", "commune"): b.parent_legacy,
            ("2025", "commune"): b.parent_2025,
        }[(tree, unit.level)]
        return [column == unit_id]
    branch = await _branch(connection, unit_id)
    if branch is None:
        raise Problem(404, "not_found", f"no unit or branch {unit_id!r} in the {tree} tree")
    if not _branch_covered(scope, branch):
        raise _out_of_scope(f"branch {unit_id}")
    return [and_(candidates.c.branch_id == unit_id)]
