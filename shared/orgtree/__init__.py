"""The two official org trees of ketnap (legacy: 63 provinces; 2025: 34 provinces).

`load_org_trees()` builds both from the `vietnamadminunits` package data once per
process and returns the same immutable `OrgTrees` ever after. See docs/orgtree.md.
"""

from __future__ import annotations

from functools import cache

from shared.orgtree.build import build_org_trees
from shared.orgtree.dates import REFORM_DATE, VN_TZ, TreeVersion, local_date, tree_in_force
from shared.orgtree.model import Level, OrgTree, OrgTrees, Unit
from shared.orgtree.source import read_source

__all__ = [
    "REFORM_DATE",
    "VN_TZ",
    "Level",
    "OrgTree",
    "OrgTrees",
    "TreeVersion",
    "Unit",
    "build_org_trees",
    "load_org_trees",
    "local_date",
    "read_source",
    "tree_in_force",
]


@cache
def load_org_trees() -> OrgTrees:
    """Both trees built from the installed package data; cached for the process."""
    return build_org_trees(read_source())
