"""The feed: reference events (branches, targets) first, then candidate events, province by province.

Streaming: reference events are built per 2025 province, candidate events per
legacy district [huyện] (a few dozen communes at most), each chunk sorted by
send order before it is yielded; nothing national is ever held. Send order is
the event time, moved by the mess (late quarters, out-of-order events,
resubmissions). Branches are always registered before any candidate event
names them, so the feed can be sent in order, one request after another.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ketnap.generate import clock, mess
from ketnap.generate.commune import Commune, describe
from ketnap.generate.config import GeneratorConfig
from ketnap.generate.mess import MessRates
from ketnap.generate.pipeline import Step, Window, simulate
from ketnap.generate.plan import Group, Plan, Site, make_plan
from ketnap.generate.seeding import IdMint, rng_for
from ketnap.generate.targets import Target, group_targets, national_targets
from ketnap.generate.wire import DUPLICATE, NATIONAL, Emitted, deployment, envelope
from shared.orgtree import OrgTrees, load_org_trees

_REFORM = clock.at(date(2025, 7, 1))


def generate(config: GeneratorConfig, trees: OrgTrees | None = None) -> Iterator[Emitted]:
    """The whole feed: every reference event, then every candidate event."""
    plan = make_plan(trees or load_org_trees(), config.seed, config.scale)
    yield from reference_feed(config, plan)
    yield from candidate_feed(config, plan)


def estimate_events(config: GeneratorConfig, plan: Plan) -> int:
    """About how many events ``generate`` yields (within ~10%): for progress bars."""
    years = max(0.0, (config.cutoff - config.begin) / clock.MINUTES_PER_DAY / 365.25) + 0.35
    per_site = _BRANCHES_PER_SITE + _TARGETS_PER_SITE_YEAR * len(config.years) + _EVENTS_PER_SITE_YEAR * years
    return round(len(plan) * per_site)


_BRANCHES_PER_SITE = 14.6
_TARGETS_PER_SITE_YEAR = 4.3
_EVENTS_PER_SITE_YEAR = 84.0


def rates_of(config: GeneratorConfig) -> MessRates:
    return MessRates() if config.mess else mess.CLEAN


class Chunk:
    """Events waiting to be yielded in send order (key, then creation order)."""

    def __init__(self) -> None:
        self.items: list[tuple[int, int, Emitted]] = []

    def add(self, key: int, emitted: Emitted) -> None:
        self.items.append((key, len(self.items), emitted))

    def drain(self) -> Iterator[Emitted]:
        self.items.sort(key=lambda item: (item[0], item[1]))
        for _, _, emitted in self.items:
            yield emitted
        self.items = []


# --- reference events -------------------------------------------------------------------------


def reference_feed(config: GeneratorConfig, plan: Plan) -> Iterator[Emitted]:
    """Branch registrations and targets of each 2025 province, then the national targets."""
    mint, rates = IdMint(config.seed), rates_of(config)
    province_targets: list[Target] = []
    for index, group in enumerate(plan.groups):
        communes = [describe(config.seed, site) for site in group.sites]
        rng = rng_for(config.seed, "references", group.province_id)
        targets = group_targets(rng, config, communes)
        province_targets += [t for t in targets if t.unit_id.startswith("P")]
        refs = _References(config, mint, group, rng, rates, showcase=index == 0)
        yield from refs.run(communes, targets)
    rng = rng_for(config.seed, "national")
    for n, target in enumerate(national_targets(rng, config, province_targets)):
        event = envelope(
            mint("ref/VN", n), "/deployments/national", "target.set", target.moment, target.data()
        )
        yield Emitted(event, NATIONAL)


@dataclass
class _References:
    config: GeneratorConfig
    mint: IdMint
    group: Group
    rng: random.Random
    rates: MessRates
    showcase: bool
    chunk: Chunk = field(default_factory=Chunk)
    count: int = 0

    def run(self, communes: list[Commune], targets: list[Target]) -> Iterator[Emitted]:
        registered = self._registration_day()
        for commune in communes:
            for branch in commune.branches:
                self._emit(self._register(commune.site, branch.id, branch.name, branch.kind, registered))
        for target in targets:
            source = deployment(
                self.group.name if target.tree == "2025" else _province_name(communes, target)
            )
            self._emit(envelope(self._id(), source, "target.set", target.moment, target.data()))
        if self.showcase and self.chunk.items:
            self._showcase(communes[0].site)
        return self.chunk.drain()

    def _register(self, site: Site, branch_id: str, name: str, kind: str, when: int) -> dict[str, Any]:
        """A branch named with its commune in both trees."""
        parents = {"legacy": site.legacy_id, "2025": site.new_id}
        data = {"branch_id": branch_id, "name": name, "kind": str(kind), "parents": parents}
        return envelope(self._id(), deployment(site.province_name), "org.branch_registered", when, data)

    def _registration_day(self) -> int:
        """Branches join the system in June of the year before the feed's first year."""
        day = clock.day_index(date(self.config.first_year - 1, 6, 1)) + self.rng.randrange(28)
        return clock.off_sunday(day * clock.MINUTES_PER_DAY + 8 * 60)

    def _id(self) -> str:
        self.count += 1
        return self.mint(f"ref/{self.group.province_id}", self.count)

    def _emit(self, event: dict[str, Any]) -> None:
        key = _moment_of(event)
        self.chunk.add(key, Emitted(event, self.group.province_id))
        delay = mess.resubmission_delay(self.rng, self.rates)
        if delay is not None:
            self.chunk.add(key + delay, Emitted(event, self.group.province_id, DUPLICATE, counts=False))
        if self.rng.random() < self.rates.invalid:
            self._invalid(event, key, self.rng.choice(mess.REFERENCE_ERRORS))

    def _invalid(self, template: dict[str, Any], key: int, code: str) -> None:
        if code == "unknown_unit":
            if template["type"] != "vn.ketnap.target.set":
                return
            district = next(iter(self.group.sites)).district_id
            bad = mess.bad_target(template, self._id(), district)
        else:
            bad = mess.bad_reference(template, self._id(), code)
        self.chunk.add(key + 1, Emitted(bad, self.group.province_id, code, counts=False))

    def _showcase(self, site: Site) -> None:
        """One of each reference error in the first province, whatever the scale."""
        branch = next(e.event for _, _, e in self.chunk.items if e.type.endswith("branch_registered"))
        target = next((e.event for _, _, e in self.chunk.items if e.type.endswith("target.set")), None)
        self._invalid(branch, _moment_of(branch), "invalid_schema")
        self._invalid(branch, _moment_of(branch), "unknown_type")
        if target is not None:
            self._invalid(target, _moment_of(target), "unknown_unit")


def _province_name(communes: list[Commune], target: Target) -> str:
    """The legacy province a legacy target belongs to (its own name, or its commune's province)."""
    for c in communes:
        if target.unit_id in (c.site.legacy_id, c.site.province_id):
            return c.site.province_name
    return communes[0].site.province_name


def _moment_of(event: dict[str, Any]) -> int:
    time = str(event["time"])
    day = date(int(time[:4]), int(time[5:7]), int(time[8:10]))
    return clock.at(day, int(time[11:13]) * 60 + int(time[14:16]))


# --- candidate events ------------------------------------------------------------------------


def candidate_feed(config: GeneratorConfig, plan: Plan) -> Iterator[Emitted]:
    """Every candidate event, district by district, each district in send order."""
    for index in range(len(plan.groups)):
        yield from group_candidates(config, plan, index)


def group_candidates(config: GeneratorConfig, plan: Plan, index: int) -> Iterator[Emitted]:
    """The candidate events of one 2025 province: independent of the others (its legacy provinces
    are whole, so are their candidate numbers), hence the same whether generated alone or in turn."""
    mint, rates, group = IdMint(config.seed), rates_of(config), plan.groups[index]
    subjects = _Subjects()
    foreign = _foreign_branches(config.seed, plan).get(group.province_id)
    first = plan.groups[0].sites[0]
    for _, sites in itertools.groupby(group.sites, key=lambda s: s.district_id):
        chunk = Chunk()
        for site in sites:
            context = _Context(config, mint, rates, group.province_id, foreign)
            _SiteFeed(context, site, chunk, subjects, showcase=site is first).run()
        yield from chunk.drain()


class _Subjects:
    """Pseudonymous candidate ids ``cand-<legacy province code>-<n>``, numbered per province."""

    def __init__(self) -> None:
        self.counters: dict[str, Iterator[int]] = {}

    def for_province(self, province_id: str) -> Callable[[], str]:
        counter = self.counters.setdefault(province_id, itertools.count(1))
        code = province_id[1:]
        return lambda: f"cand-{code}-{next(counter):06d}"


def _foreign_branches(seed: int, plan: Plan) -> dict[str, str]:
    """For each 2025 province, a branch of the next one: what an ``out_of_scope`` event names."""
    groups = plan.groups
    if len(groups) < 2:
        return {}
    firsts = [g.sites[0].legacy_id for g in groups]
    return {g.province_id: f"B-{firsts[(i + 1) % len(groups)]}-01" for i, g in enumerate(groups)}


@dataclass(frozen=True, slots=True)
class _Context:
    config: GeneratorConfig
    mint: IdMint
    rates: MessRates
    sender: str
    foreign_branch: str | None


class _SiteFeed:
    """The candidate events of one commune, with their mess, added to the district's chunk."""

    def __init__(self, ctx: _Context, site: Site, chunk: Chunk, subjects: _Subjects, showcase: bool) -> None:
        self.ctx, self.site, self.chunk = ctx, site, chunk
        self.commune = describe(ctx.config.seed, site)
        self.subjects = subjects.for_province(site.province_id)
        self.rng = rng_for(ctx.config.seed, "mess", site.legacy_id)
        self.pending: list[str] = list(mess.CANDIDATE_ERRORS) if showcase else []
        self.late: dict[int, int] = {}
        self.count = 0

    def run(self) -> None:
        config = self.ctx.config
        sim = rng_for(config.seed, "candidates", self.site.legacy_id)
        window = Window(config.start, config.begin, config.cutoff)
        for candidate in simulate(sim, self.commune, window, self.subjects):
            for step in candidate.steps:
                self._step(step, candidate.subject)

    def _id(self) -> str:
        self.count += 1
        return self.ctx.mint(self.site.legacy_id, self.count)

    def _source(self, moment: int) -> str:
        return deployment(self.site.province_name if moment < _REFORM else self.site.new_province_name)

    def _key(self, moment: int) -> int:
        quarter = clock.quarter_of(moment // clock.MINUTES_PER_DAY)
        if quarter not in self.late:
            self.late[quarter] = mess.late_shift(self.rng, self.ctx.rates)
        return moment + self.late[quarter] + mess.displacement(self.rng, self.ctx.rates)

    def _step(self, step: Step, subject: str) -> None:
        event = envelope(self._id(), self._source(step.moment), step.type, step.moment, step.data, subject)
        key = self._key(step.moment)
        if step.type == "candidate.admitted" and self.rng.random() < self.ctx.rates.correction:
            key = self._correction(event, step.moment, key)
        self._add(key, Emitted(event, self.ctx.sender))
        delay = mess.resubmission_delay(self.rng, self.ctx.rates)
        if delay is not None:
            self._add(key + delay, Emitted(event, self.ctx.sender, DUPLICATE, counts=False))
        if self.rng.random() < self.ctx.rates.invalid:
            self.pending.append(self.rng.choice(mess.CANDIDATE_ERRORS))
        if self.pending:
            self._invalid(event, key)

    def _add(self, key: int, emitted: Emitted) -> None:
        self.chunk.add(key, emitted)

    def _correction(self, event: dict[str, Any], moment: int, key: int) -> int:
        """Send a wrong admission and its void first; returns the key for the right one."""
        other = next(b.id for b in self.commune.branches if b.id != event["data"]["branch_id"])
        wrong, void, void_moment = mess.correction(self.rng, event, moment, (self._id(), self._id()), other)
        if void_moment > self.ctx.config.cutoff:
            return key
        self._add(key, Emitted(wrong, self.ctx.sender, counts=False))
        self._add(key + 1, Emitted(void, self.ctx.sender, counts=False))
        return key + 2

    def _invalid(self, template: dict[str, Any], key: int) -> None:
        """Build the first pending invalid event this template can carry."""
        for code in list(self.pending):
            built = self._build_invalid(code, template)
            if built is not None:
                self.pending.remove(code)
                self._add(key + 3, Emitted(built[1], self.ctx.sender, built[0], counts=False))
                return

    def _build_invalid(self, code: str, template: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """(the code the intake should answer, the event), or None if the template does not fit."""
        rng = self.rng
        if code == "invalid_schema":
            return code, mess.invalid_schema(rng, template, self._id())
        if code == "unknown_type":
            return code, mess.unknown_type(template, self._id())
        if code == "future_time":
            return code, mess.future_time(template, self._id())
        if code == "id_conflict":
            return (code, mess.id_conflict(rng, template)) if template["type"].endswith(".admitted") else None
        branch = self.ctx.foreign_branch if code == "out_of_scope" else None
        if branch is None:  # no other province in the feed: an unregistered branch instead
            code, branch = "unknown_branch", f"B-{self.site.legacy_id}-{len(self.commune.branches) + 1:02d}"
        moment = _moment_of(template)
        return code, mess.sourced_at(template["source"], moment, self._id(), self.subjects(), branch)
