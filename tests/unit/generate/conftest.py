"""One small feed generated once for the module's tests (1% of the communes, 2020-2026)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ketnap.generate import Emitted, GeneratorConfig, generate
from shared.orgtree import OrgTrees, load_org_trees

VN = timezone(timedelta(hours=7))
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=VN)


@pytest.fixture(scope="session")
def trees() -> OrgTrees:
    return load_org_trees()


@pytest.fixture(scope="session")
def config() -> GeneratorConfig:
    return GeneratorConfig(now=NOW, seed=7, scale=0.01, first_year=2020, last_year=2026)


@pytest.fixture(scope="session")
def feed(config: GeneratorConfig, trees: OrgTrees) -> list[Emitted]:
    return list(generate(config, trees))


@pytest.fixture(scope="session")
def counted(feed: list[Emitted]) -> list[Emitted]:
    """The events that make the final tallies."""
    return [item for item in feed if item.counts]
