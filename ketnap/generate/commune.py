"""A commune's standing traits, drawn once from its own random stream.

``performance`` is how well it really recruits (log-normal around 1); ``planned``
is what its planners believe (the same, blurred): targets follow ``planned``,
admissions follow ``performance``, so some communes pass their targets and
some lag, as the seed articles report.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ketnap.generate import params
from ketnap.generate.branches import Branch, make_branches
from ketnap.generate.plan import Site
from ketnap.generate.seeding import rng_for


@dataclass(frozen=True, slots=True)
class Commune:
    site: Site
    branches: tuple[Branch, ...]
    performance: float
    planned: float
    ethnic_share: float
    religious_share: float

    @property
    def base_rate(self) -> float:
        """Expected admissions a year at performance 1 and a year factor of 1."""
        return sum(b.rate for b in self.branches)

    def expected(self, year: int, *, planned: bool = False) -> float:
        """Expected admissions in ``year`` (as planners see it when ``planned``)."""
        factor = self.planned if planned else self.performance
        return self.base_rate * factor * params.YEAR_FACTOR.get(year, 1.0)

    def expected_private_sector(self, year: int) -> float:
        """Expected admissions of private-sector workers, as planners see it."""
        share = sum(b.rate * params.P_PRIVATE_SECTOR.get(b.kind, 0.0) for b in self.branches)
        return share * self.planned * params.YEAR_FACTOR.get(year, 1.0)


def describe(seed: int, site: Site) -> Commune:
    """The commune's branches and traits; the same for a seed whatever else is generated."""
    rng = rng_for(seed, "commune", site.legacy_id)
    branches = make_branches(rng, site.legacy_id, site.name)
    performance = _lognormal(rng, params.COMMUNE_SPREAD)
    planned = performance * _lognormal(rng, params.PLANNING_NOISE)
    return Commune(site, branches, performance, planned, _ethnic(rng, site), _religious(rng))


def _lognormal(rng: random.Random, sigma: float) -> float:
    """Mean 1: exp(N(-sigma^2/2, sigma))."""
    return math.exp(rng.gauss(-sigma * sigma / 2, sigma))


def _ethnic(rng: random.Random, site: Site) -> float:
    base = params.ETHNIC_MINORITY_SHARE.get(site.province_id, params.DEFAULT_ETHNIC_SHARE)
    return min(0.98, base * _lognormal(rng, 0.5))


def _religious(rng: random.Random) -> float:
    ordinary, parish, parish_share = params.RELIGIOUS_SHARE
    return parish if rng.random() < parish_share else ordinary
