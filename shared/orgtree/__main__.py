"""`python -m shared.orgtree`: counts per tree and level, crosswalk coverage, build cost."""

from __future__ import annotations

import gc
import time
import tracemalloc

from shared.orgtree.build import build_org_trees
from shared.orgtree.model import LEVELS, OrgTrees
from shared.orgtree.source import read_source


def _timed_build() -> tuple[OrgTrees, float]:
    started = time.perf_counter()
    trees = build_org_trees(read_source())
    return trees, time.perf_counter() - started


def _retained_mib() -> tuple[float, float]:
    """Memory the built trees keep, and the peak while building (tracemalloc, MiB)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    trees = build_org_trees(read_source())
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del trees
    return (current - before) / 2**20, (peak - before) / 2**20


def _report(trees: OrgTrees) -> list[str]:
    lines = []
    for version in ("legacy", "2025"):
        tree = trees[version]
        counts = ", ".join(f"{level} {sum(1 for _ in tree.units(level))}" for level in LEVELS)
        lines.append(f"{version:>6}: {counts} (total {len(tree)})")
    attachable = sum(1 for u in trees.legacy.units() if trees.legacy.attachable(u.id))
    reached = set(trees.crosswalk.values())
    unreached = [u for u in trees.v2025.units("commune") if u.id not in reached]
    lines.append(
        f"crosswalk: {len(trees.crosswalk)}/{attachable} attachable legacy units have a 2025 home"
        f" ({len(trees.divided)} divided, sent to the default new ward),"
        f" {len(trees.crosswalk_exceptions)} exceptions"
    )
    lines.extend(f"  exception {uid}: {why}" for uid, why in sorted(trees.crosswalk_exceptions.items()))
    lines.append(f"  2025 communes receiving a legacy unit: {len(reached)}/{len(reached) + len(unreached)}")
    lines.extend(f"  receives none by default: {u.id} {u.name}" for u in unreached)
    return lines


def main() -> None:
    trees, seconds = _timed_build()
    retained, peak = _retained_mib()
    for line in _report(trees):
        print(line)
    print(f"build: {seconds * 1000:.0f} ms; memory retained {retained:.1f} MiB, peak {peak:.1f} MiB")


if __name__ == "__main__":
    main()
