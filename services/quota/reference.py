"""The reference-event handler: branch registrations and targets, both idempotent upserts.

A branch keeps, per tree, the parent named by its latest registration (by event time,
then id) and the province that parent lies in (in ``2025``, through the official
crosswalk when only a legacy parent was named); name and kind come from the latest
registration. Targets: the latest ``target.set`` per (unit, tree, year, metric,
category, kind) wins (``targets.latest``). Replaying either changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from services.quota import store, wire
from services.quota.domain import Target, latest_targets, target_from_cloudevent
from services.quota.effects import Effects
from shared.consumer import Batch
from shared.events import BranchRegistered, short_type
from shared.orgtree import OrgTrees, TreeVersion

REFERENCE_TYPES = frozenset({wire.BRANCH_REGISTERED, wire.TARGET_SET})


def _precedes(a: Sequence[Any] | None, b: Sequence[Any]) -> bool:
    """Is registration ``a`` = [time, event_id, ...] older than ``b``? (None: nothing yet)."""
    return a is None or (datetime.fromisoformat(a[0]), a[1]) < (datetime.fromisoformat(b[0]), b[1])


def _merge_branch(
    stored: dict[str, Any] | None, decoded: wire.Decoded, org: OrgTrees
) -> dict[str, Any] | None:
    """The branch row after one registration; None when it changes nothing (older or repeated)."""
    data: BranchRegistered = decoded.data
    mark = [decoded.time.isoformat(), decoded.id]
    registered = orjson.loads(stored["registered"]) if stored else {}
    changed = False
    if _precedes(registered.get("info"), mark):
        registered["info"] = [*mark, data.name, str(data.kind)]
        changed = True
    trees: tuple[TreeVersion, ...] = ("legacy", "2025")
    for tree in trees:
        parent = data.parents.get(tree)
        if parent is not None and _precedes(registered.get(tree), mark):
            registered[tree] = [*mark, parent]
            changed = True
    return _branch_row(data.branch_id, registered, org) if changed else None


def _branch_row(branch_id: str, registered: dict[str, Any], org: OrgTrees) -> dict[str, Any]:
    legacy = registered["legacy"][2] if "legacy" in registered else None
    declared_2025 = registered["2025"][2] if "2025" in registered else None
    v2025 = declared_2025 or (org.to_2025(legacy) if legacy else None)
    return {
        "branch_id": branch_id,
        "name": registered["info"][2],
        "kind": registered["info"][3],
        "parent_legacy": legacy,
        "parent_2025": v2025,
        "province_legacy": _province(org, "legacy", legacy),
        "province_2025": _province(org, "2025", v2025),
        "district_legacy": _district(org, legacy),
        "registered": orjson.dumps(registered).decode(),
    }


def _province(org: OrgTrees, tree: str, unit_id: str | None) -> str | None:
    if unit_id is None or unit_id not in org[tree]:  # type: ignore[index]
        return None
    return org[tree].province_of(unit_id)  # type: ignore[index]


def _district(org: OrgTrees, unit_id: str | None) -> str | None:
    if unit_id is None or unit_id not in org.legacy:
        return None
    unit = org.legacy.unit(unit_id)
    chain = (unit, *org.legacy.ancestors(unit_id))
    return next((u.id for u in chain if u.level == "district"), None)


def _unknown_parent(data: BranchRegistered, org: OrgTrees) -> str | None:
    """Why a registration names no real parent (as the intake would say it), or None.

    The intake refuses these; a record that reached the topic another way (a replay,
    another producer) is rejected ``unknown_unit`` here rather than stored unplaced.
    """
    trees: tuple[TreeVersion, ...] = ("legacy", "2025")
    for tree in trees:
        parent = data.parents.get(tree)
        if parent is not None and not org[tree].attachable(parent):
            return f"parents.{tree}: {parent} is not a commune of the {tree} tree"
    return None


def _target_row(target: Target) -> dict[str, Any]:
    return {
        "unit_id": target.key.unit_id,
        "tree": target.key.tree,
        "year": target.key.year,
        "metric": target.key.metric,
        "category": target.key.category,
        "kind": target.key.kind,
        "value": target.value,
        "time": target.time.astimezone(UTC),
        "event_id": target.event_id,
        "source_doc": target.source_doc,
    }


def _stored_target(row: Mapping[str, Any]) -> Target:
    return Target.from_dict({**row, "time": store.utc(row["time"]).isoformat()})  # type: ignore[union-attr]


async def _apply_targets(connection: AsyncConnection, incoming: list[Target]) -> None:
    if not incoming:
        return
    keys = sorted({_target_key(t) for t in incoming})
    stored = [_stored_target(r) for r in await store.stored_targets(connection, keys)]
    before = {t.key: t for t in stored}
    winners = latest_targets([*stored, *incoming])
    await store.save_targets(connection, [_target_row(t) for k, t in winners.items() if before.get(k) != t])


def _target_key(target: Target) -> tuple[str, str, int, str, str, str]:
    k = target.key
    return (k.unit_id, k.tree, k.year, k.metric, k.category, k.kind)


async def handle_reference(batch: Batch, org: OrgTrees) -> None:
    """One batch of ``ketnap.reference-events``: branch registrations and targets."""
    effects = Effects(batch.now)
    registrations: list[wire.Decoded] = []
    incoming: list[Target] = []
    for record in batch.records:
        item = wire.decode(record, REFERENCE_TYPES)
        if isinstance(item, wire.Poison):
            effects.poison(item)
            continue
        kind = short_type(item.type)
        if wire.is_branch(item):
            if unknown := _unknown_parent(item.data, org):
                effects.poison(wire.Poison(item.id, "unknown_unit", unknown, item.raw), kind)
                continue
            registrations.append(item)
        else:
            try:
                target = target_from_cloudevent(item.raw)
            except ValueError as exc:
                effects.poison(wire.Poison(item.id, "invalid_schema", str(exc), item.raw), kind)
                continue
            if target.key.unit_id not in org[cast(TreeVersion, target.key.tree)]:
                detail = f"unit_id: {target.key.unit_id} is not a unit of the {target.key.tree} tree"
                effects.poison(wire.Poison(item.id, "unknown_unit", detail, item.raw), kind)
                continue
            incoming.append(target)
        effects.outcomes[(kind, "applied")] += 1
    branch_ids = sorted({r.data.branch_id for r in registrations})
    known = await store.stored_branches(batch.connection, branch_ids)
    changed: dict[str, dict[str, Any]] = {}
    for item in registrations:
        row = _merge_branch(known.get(item.data.branch_id), item, org)
        if row is not None:
            known[item.data.branch_id] = changed[item.data.branch_id] = row
    await store.save_branches(batch.connection, list(changed.values()))
    await _apply_targets(batch.connection, incoming)
    await effects.write(batch.connection, {})
    batch.after_commit(effects.report)
