"""Scenario 10, HTTP fuzzing: schemathesis, every check, against the OpenAPI of all three services.

Each operation of each service gets valid (positive) and invalid (negative) inputs
generated from its own OpenAPI document, at least ``REQUESTS`` requests in all
(operations without inputs are repeated), with a national token on a cluster where
reads are closed. Every answer goes through every schemathesis check; failures
are collected, not stopped at: 0 server errors, 0 schema violations.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from datetime import date
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks
from schemathesis.core.result import Err

from tests.reliability.conftest import FUZZ_WRITER
from tests.reliability.harness import SERVICES, Cluster, Figures, scaled
from tests.reliability.model import NATIONAL_TOKEN

pytestmark = [pytest.mark.reliability, pytest.mark.e2e, pytest.mark.timeout(scaled(600, 7200))]

REQUESTS = scaled(30, 1_000)  # per operation
AUTH = {"Authorization": f"Bearer {NATIONAL_TOKEN}"}
WRITE_AUTH = {"Authorization": f"Bearer {FUZZ_WRITER}"}  # writes confined to one province no one reads

checks.load_all_checks()
ALL_CHECKS = list(checks.CHECKS.get_all())

PERIOD_FORMS = ("year", "half", "quarter", "month", "day")


def period_text(form: str, day: date, upper: bool) -> str:
    """The ``form`` (year, half, ...) holding ``day``; ``H``/``Q`` in either case."""
    half, quarter = ("H", "Q") if upper else ("h", "q")
    return {
        "year": f"{day.year}",
        "half": f"{day.year}-{half}{(day.month - 1) // 6 + 1}",
        "quarter": f"{day.year}-{quarter}{(day.month - 1) // 3 + 1}",
        "month": f"{day.year}-{day.month:02d}",
        "day": day.isoformat(),
    }[form]


@st.composite
def contract_periods(draw: st.DrawFn) -> str:
    """Any period CONTRACT §3 names, written independently of the service's parser: one
    year, half, quarter, month or day of 2000..2100, or a range of two of the same form
    in order. What reporting's ``format: ketnap-period`` promises beyond its pattern."""
    days = st.dates(date(2000, 1, 1), date(2100, 12, 31))
    form = draw(st.sampled_from(PERIOD_FORMS))
    first, last = sorted((draw(days), draw(days)))
    start = period_text(form, first, draw(st.booleans()))
    if draw(st.booleans()):
        return start
    return f"{start}..{period_text(form, last, draw(st.booleans()))}"


schemathesis.openapi.format("ketnap-period", contract_periods())


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx: Any, value: Any) -> bytes:
    """The intake documents NDJSON as a string; anything else generated goes as one JSON line
    (``json``, not orjson: negative cases include integers beyond 64 bits)."""
    return value.encode() if isinstance(value, str) else json.dumps(value).encode()


def failure_names(error: BaseException) -> list[tuple[str, str]]:
    """(check, first line) of every failure in what ``call_and_validate`` raised."""
    inner = getattr(error, "exceptions", None) or [error]
    out = []
    for failure in inner:
        name = getattr(failure, "title", None) or type(failure).__name__
        message = str(getattr(failure, "message", "") or failure).splitlines()
        out.append((str(name), message[0][:160] if message else ""))
    return out


def fuzz_operation(operation: Any, base_url: str, mode: GenerationMode, count: int) -> tuple[int, list[Any]]:
    """At least ``count`` requests (generated, then replayed when the space is small); failures found."""
    seen: list[Any] = []
    failures: list[Any] = []

    auth = WRITE_AUTH if operation.method.upper() == "POST" else AUTH

    def call(case: Any) -> None:
        response = case.call(base_url=base_url, headers=auth)
        try:
            case.validate_response(response, checks=ALL_CHECKS, headers=auth)
        except (Exception, BaseExceptionGroup) as error:  # a check failed: keep it and go on
            curl = case.as_curl_command(headers=auth, base_url=base_url)[:300]
            example = f"{response.status_code} <- {curl}"
            failures.extend((operation.label, mode.value, *f, example) for f in failure_names(error))

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=count, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case: Any) -> None:
        seen.append(case)
        call(case)

    with contextlib.suppress(Unsatisfiable):  # no invalid input exists for some operations
        run()
    sent = len(seen)
    rng = random.Random(10)
    while seen and sent < count:  # a small input space: the same requests again
        call(rng.choice(seen))
        sent += 1
    return sent, failures


def fuzz_service(url: str) -> tuple[Counter[str], list[Any]]:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    requests: Counter[str] = Counter()
    failures: list[Any] = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            failures.append((url, "-", "schema", "unusable operation", str(result.err())[:160], "-"))
            continue
        operation = result.ok()
        has_inputs = bool(operation.path_parameters or operation.query or operation.body or operation.headers)
        modes = [(GenerationMode.POSITIVE, REQUESTS)]
        if has_inputs:
            modes = [
                (GenerationMode.POSITIVE, REQUESTS // 2),
                (GenerationMode.NEGATIVE, REQUESTS - REQUESTS // 2),
            ]
        for mode, count in modes:
            sent, found = fuzz_operation(operation, url, mode, count)
            if sent < count:  # nothing invalid to generate: make up the number with valid inputs
                more, found_more = fuzz_operation(operation, url, GenerationMode.POSITIVE, count - sent)
                sent, found = sent + more, found + found_more
            requests[operation.label] += sent
            failures += found
    return requests, failures


async def test_http_fuzzing(read_auth_cluster: Cluster, book: list[Figures]) -> None:
    started, cluster = time.monotonic(), read_auth_cluster
    figures = Figures("10 HTTP fuzzing (schemathesis)")
    book.append(figures)
    requests: Counter[str] = Counter()
    failures: list[Any] = []
    for service in SERVICES:
        done, found = await asyncio.to_thread(fuzz_service, cluster.url(service))
        requests.update({f"{service} {label}": n for label, n in done.items()})
        failures += [(service, *f) for f in found]
    by_check = Counter(f[3] for f in failures)
    server_errors = [
        f
        for f in failures
        if any(n in f[3].lower().replace(" ", "_") for n in ("server_error", "server error"))
    ]
    fewest = min(requests.values())
    distinct = {(f[0], f[1], f[3], f[4]): f[5] for f in failures}
    figures.sent = sum(requests.values())
    figures.rejected = len(failures)
    figures.faults = figures.sent
    figures.seconds = time.monotonic() - started
    figures.passed = not failures and fewest >= REQUESTS
    figures.notes = (
        f"{len(requests)} operations over 3 services, {figures.sent:,} requests (fewest per operation: "
        f"{fewest:,}), all {len(ALL_CHECKS)} checks; failures by check: {dict(by_check) or 'none'}; "
        f"server errors: {len(server_errors)}"
    )
    assert fewest >= REQUESTS, requests
    assert not distinct, "\n".join(f"{k}: {v}" for k, v in distinct.items())
