"""Scenario 9, model-based: a hypothesis state machine drives the running services.

Steps: submit new candidates, resubmit (HTTP) and re-publish (topic) accepted
events, void a counted event, send a candidate's events reordered one request at
a time, crash quota before its commit (frozen, fed, SIGKILLed), crash quota or
reporting right after a database commit (the consumer's test hook), restart a
service gracefully. After every step, once the system is quiet, every branch
tally and the province and commune rollups must equal the pure model (the quota
domain replayed over everything accepted so far).
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from shared.consumer import FAULT_EXIT_CODE, FAULT_KILL_ENV
from shared.topics import CANDIDATE_EVENTS
from tests.reliability.conftest import OpenCluster
from tests.reliability.harness import (
    Client,
    Cluster,
    ClusterSpec,
    Figures,
    Raw,
    Verdict,
    publish_raw,
    scaled,
    verify,
)
from tests.reliability.model import Event, World, candidate_story, cloudevent, make_world, province_token

pytestmark = [pytest.mark.reliability, pytest.mark.e2e, pytest.mark.timeout(scaled(900, 7200))]

EXAMPLES = scaled(1, 8)
STEPS = scaled(4, 20)
CRASH_BUDGET = scaled(1, 6)  # crash and restart steps per example: each costs a process start


class Context:
    """What outlives one example: the cluster, the loop it runs on, the client, and the findings."""

    def __init__(self, cluster: Cluster, world: World, loop: asyncio.AbstractEventLoop) -> None:
        self.cluster, self.world, self.loop = cluster, world, loop
        self.client = Client(cluster)
        self.steps: Counter[str] = Counter()
        self.serial = 0
        self.last: Verdict | None = None

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Run on the test's loop (the machine itself runs in a worker thread)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=600)

    def new_id(self) -> str:
        self.serial += 1
        return f"m{self.serial:05d}"


def make_machine(ctx: Context) -> type[RuleBasedStateMachine]:
    def voidable() -> list[str]:
        """Accepted candidate events that are not voids themselves (a void of a void is refused)."""
        return sorted(
            i
            for i in ctx.client.ledger.accepted
            if i.startswith("m") and not i.endswith("-v") and "-x" not in i
        )

    class Pipeline(RuleBasedStateMachine):
        """Steps against the running system; the model is every event the intake accepted."""

        def __init__(self) -> None:
            super().__init__()
            self.crashes = 0

        def post(self, events: list[Event]) -> None:
            ctx.run(ctx.client.post(events, province_token(ctx.world.provinces[0])))

        def story(self, rng: random.Random) -> list[Event]:
            branch = rng.choice(ctx.world.branches)
            return candidate_story(rng, f"{ctx.new_id()}", branch, ctx.world.branches)

        @rule(n=st.integers(1, 4), rng=st.randoms(use_true_random=False))
        def submit(self, n: int, rng: random.Random) -> None:
            ctx.steps["submit"] += 1
            self.post([e for _ in range(n) for e in self.story(rng)])

        @precondition(lambda self: bool(ctx.client.ledger.accepted))
        @rule(k=st.integers(1, 20), rng=st.randoms(use_true_random=False))
        def duplicate(self, k: int, rng: random.Random) -> None:
            """The same events again: over HTTP (answered duplicate) and straight on the topic."""
            ctx.steps["duplicate"] += 1
            ids = rng.sample(sorted(ctx.client.ledger.accepted), min(k, len(ctx.client.ledger.accepted)))
            events = [ctx.client.sent[i] for i in ids]
            answer = ctx.run(ctx.client.post(events))
            assert {r["status"] for r in answer["results"]} == {"duplicate"}, answer["results"][:3]
            stamp = datetime.now(UTC).isoformat()
            raw: list[Raw] = [
                (
                    str(e.get("subject") or e["data"]["branch_id"]).encode(),
                    orjson.dumps({**e, "recordedtime": stamp}),
                    [],
                )
                for e in events
                if "subject" in e
            ]
            ctx.run(publish_raw(ctx.cluster.broker.bootstrap, CANDIDATE_EVENTS, raw))

        @precondition(lambda self: bool(voidable()))
        @rule(rng=st.randoms(use_true_random=False))
        def void(self, rng: random.Random) -> None:
            ctx.steps["void"] += 1
            target = ctx.client.sent[rng.choice(voidable())]
            void = cloudevent(
                "candidate.voided",
                {"voids": target["id"], "reason": "entered in error"},
                datetime.fromisoformat(target["time"]),
                subject=target["subject"],
                event_id=f"{target['subject']}-x{ctx.new_id()}",
            )
            self.post([void])

        @rule(rng=st.randoms(use_true_random=False))
        def reorder(self, rng: random.Random) -> None:
            """A candidate's events one request each, in a shuffled order (held until their sourced)."""
            ctx.steps["reorder"] += 1
            events = self.story(rng)
            rng.shuffle(events)
            for event in events:
                self.post([event])

        @precondition(lambda self: self.crashes < CRASH_BUDGET)
        @rule(rng=st.randoms(use_true_random=False))
        def crash_before_commit(self, rng: random.Random) -> None:
            """Quota frozen, fed, then SIGKILLed: what it may have fetched it never committed."""
            ctx.steps["crash_before_commit"] += 1
            self.crashes += 1
            replica = ctx.cluster.of("quota")[0]
            replica.send(signal.SIGSTOP)
            self.post(self.story(rng))
            ctx.run(replica.kill())
            ctx.run(ctx.cluster.back(replica))

        @precondition(lambda self: self.crashes < CRASH_BUDGET)
        @rule(service=st.sampled_from(["quota", "reporting"]), rng=st.randoms(use_true_random=False))
        def crash_after_commit(self, service: str, rng: random.Random) -> None:
            """Restarted with the hook at 1: it dies right after its next database commit."""
            ctx.steps[f"crash_after_commit:{service}"] += 1
            self.crashes += 1
            replica = ctx.cluster.of(service)[0]
            before = replica.exits.count(FAULT_EXIT_CODE)
            ctx.run(ctx.cluster.restart(replica, {FAULT_KILL_ENV: "1"}))
            self.post(self.story(rng))
            ctx.run(self.died(replica, before))
            ctx.run(ctx.cluster.back(replica))

        @precondition(lambda self: self.crashes < CRASH_BUDGET)
        @rule(service=st.sampled_from(["intake", "quota", "reporting"]))
        def restart(self, service: str) -> None:
            ctx.steps[f"restart:{service}"] += 1
            self.crashes += 1
            ctx.run(ctx.cluster.restart(ctx.cluster.of(service)[0]))

        async def died(self, replica: Any, before: int) -> None:
            deadline = time.monotonic() + 120
            while replica.exits.count(FAULT_EXIT_CODE) == before:
                assert time.monotonic() < deadline, f"{replica.name} did not die after its commit"
                await asyncio.sleep(0.1)

        @invariant()
        def matches_the_model(self) -> None:
            ctx.last = ctx.run(verify(ctx.cluster, ctx.world, ctx.client.accepted_events(), thorough=False))
            assert ctx.last.ok, ctx.last.explain()
            assert ctx.last.dead_lettered == 0

    return Pipeline


def scripted(machine: type[RuleBasedStateMachine]) -> None:
    """Every kind of step once, in a fixed order, the model checked after each; then hypothesis explores."""
    state: Any = machine()
    rng = random.Random(9)
    steps: list[Callable[[], None]] = [
        lambda: state.submit(n=3, rng=rng),
        lambda: state.duplicate(k=5, rng=rng),
        lambda: state.void(rng=rng),
        lambda: state.reorder(rng=rng),
        lambda: state.crash_before_commit(rng=rng),
        lambda: state.crash_after_commit(service="quota", rng=rng),
        lambda: state.crash_after_commit(service="reporting", rng=rng),
        lambda: state.restart(service="intake"),
    ]
    state.matches_the_model()
    for step in steps:
        step()
        state.matches_the_model()
    state.teardown()


async def test_model_based(open_cluster: OpenCluster, book: list[Figures]) -> None:
    started = time.monotonic()
    world = make_world(("P22",), communes_per_province=2, branches_per_commune=2, tag="m")
    figures = Figures("09 model-based (hypothesis state machine)")
    book.append(figures)
    async with open_cluster(ClusterSpec(world.tokens())) as cluster:
        ctx = Context(cluster, world, asyncio.get_running_loop())
        await ctx.client.post(world.registrations())
        machine = make_machine(ctx)
        options = settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            phases=(
                Phase.explicit,
                Phase.generate,
            ),  # no shrinking: every step costs seconds of a real system
        )
        failure: BaseException | None = None
        try:
            await asyncio.to_thread(scripted, machine)
            await asyncio.to_thread(run_state_machine_as_test, machine, settings=options)
        except BaseException as error:  # recorded in the figures, then raised
            failure = error
        ledger = ctx.client.ledger
        figures.sent, figures.accepted = len(ctx.client.sent), len(ledger.accepted)
        figures.rejected = len(ledger.rejected)
        figures.faults = sum(
            n for step, n in ctx.steps.items() if step.startswith(("crash", "restart", "duplicate"))
        )
        figures.fill(cluster, ctx.last)
        figures.seconds = time.monotonic() - started
        figures.passed = failure is None and ctx.last is not None and ctx.last.ok
        figures.notes = (
            f"every kind of step once, then {EXAMPLES} hypothesis example(s) of up to {STEPS} steps; "
            f"model checked after each step; steps run: {dict(ctx.steps)}"
        )
        if failure is not None:
            raise failure
        assert not ledger.rejected, {i: ledger.codes[i] for i in list(ledger.rejected)[:10]}
