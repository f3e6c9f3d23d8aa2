"""The ``ketnap`` command: run the system (``up``, ``demo``), one service, migrations, tools."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer

from shared.settings import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)

SERVICE_PORTS = {"intake": 8001, "quota": 8002, "reporting": 8003}
SERVICES = tuple(SERVICE_PORTS)


def service_settings(name: str) -> Settings:
    """Settings from the environment, with the service's default port when none is set."""
    overrides: dict[str, object] = {"service": name}
    if "KETNAP_HTTP_PORT" not in os.environ:
        overrides["http_port"] = SERVICE_PORTS[name]
    return Settings(**overrides)  # type: ignore[arg-type]


def _run_service(name: str) -> None:
    from importlib import import_module

    from shared.runner import serve

    settings = service_settings(name)
    serve(import_module(f"services.{name}.app").create_app(settings), settings)


@app.command()
def intake() -> None:
    """Run the intake service (configured by KETNAP_* environment variables; KETNAP_INTAKE_WORKERS
    processes on one port)."""
    from services.intake.workers import run

    run(service_settings("intake"))


@app.command()
def quota() -> None:
    """Run the quota service (configured by KETNAP_* environment variables)."""
    _run_service("quota")


@app.command()
def reporting() -> None:
    """Run the reporting service (configured by KETNAP_* environment variables)."""
    _run_service("reporting")


@app.command()
def migrate(service: Annotated[str, typer.Argument(help="intake, quota or reporting")]) -> None:
    """Bring one service's database to the latest schema, then exit."""
    if service not in SERVICES:
        raise typer.BadParameter(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    from shared.db import make_engine
    from shared.db import migrate as run_migrations

    async def go() -> None:
        engine = make_engine(service_settings(service).resolved_database_url())
        try:
            await run_migrations(engine, service)
        finally:
            await engine.dispose()

    asyncio.run(go())
    typer.echo(f"{service}: database at the latest revision")


DataDir = Annotated[Path, typer.Option(help="Where the SQLite files and logs live.")]
KafkaPort = Annotated[int, typer.Option(help="Port of the embedded Kafka-protocol broker.")]


@app.command()
def up(
    data_dir: DataDir = Path("data"),
    kafka_port: KafkaPort = 9092,
    intake_port: int = SERVICE_PORTS["intake"],
    quota_port: int = SERVICE_PORTS["quota"],
    reporting_port: int = SERVICE_PORTS["reporting"],
) -> None:
    """The whole system on this machine: embedded broker and the three services, until Ctrl-C."""
    from ketnap.up import System

    system = System(
        data_dir, kafka_port, {"intake": intake_port, "quota": quota_port, "reporting": reporting_port}
    )
    raise typer.Exit(system.run_until_stopped())


Scale = Annotated[float, typer.Option(help="Share of the communes to cover, 0 < scale <= 1 (0.01 = 1%).")]
Years = Annotated[str, typer.Option(help="Years to cover, e.g. 2020-2026 (crossing the 2025-07-01 reform).")]
Seed = Annotated[int, typer.Option(help="Same seed, same feed, byte for byte.")]


@app.command()
def generate(
    scale: Scale = 1.0,
    years: Years = "2020-2026",
    seed: Seed = 1,
    now: Annotated[
        str | None, typer.Option(help="No valid event after this (ISO date or date-time; default: now).")
    ] = None,
    out: Annotated[str, typer.Option(help="NDJSON file to write, or - for stdout.")] = "-",
    mess: Annotated[bool, typer.Option(help="Include late, repeated, corrected and invalid events.")] = True,
    jobs: Annotated[int, typer.Option(min=1, help="Processes making candidate events (same output).")] = 2,
) -> None:
    """A synthetic national feed of events as NDJSON: branches, targets, then candidates."""
    import sys
    from datetime import datetime

    from ketnap.generate import GeneratorConfig, parse_now, parse_years
    from ketnap.generate.clock import VN_OFFSET
    from ketnap.generate.ndjson import write_feed

    try:
        first, last = parse_years(years)
        config = GeneratorConfig(parse_now(now, datetime.now(VN_OFFSET)), seed, scale, first, last, mess)
    except ValueError as bad:
        raise typer.BadParameter(str(bad)) from bad
    if out == "-":
        written = write_feed(config, sys.stdout.buffer, jobs)
    else:
        with open(out, "wb") as stream:
            written = write_feed(config, stream, jobs)
    expect = ", ".join(f"{k} {v:,}" for k, v in written.expect.most_common())
    speed = f"{written.seconds:.1f} s ({written.per_second:,.0f} events/s)"
    typer.echo(f"{written.events:,} events in {speed}: {expect}", err=True)


@app.command()
def demo(
    data_dir: Annotated[Path, typer.Option(help="Where the demo's SQLite files and logs live.")] = Path(
        "data/demo"
    ),
    kafka_port: KafkaPort = 9092,
    scale: Scale = 0.005,
    years: Years = "2020-2026",
    seed: Seed = 1,
    no_wait: Annotated[bool, typer.Option(help="Stop everything after the summary (for tests).")] = False,
    intake_port: int = SERVICE_PORTS["intake"],
    quota_port: int = SERVICE_PORTS["quota"],
    reporting_port: int = SERVICE_PORTS["reporting"],
    concurrency: Annotated[int, typer.Option(min=1, max=8, help="Requests in flight.")] = 3,
    drain_timeout: Annotated[float, typer.Option(help="Longest wait for the consumers, seconds.")] = 300.0,
) -> None:
    """``up`` plus a synthetic national feed, then a summary; the system keeps running until Ctrl-C."""
    from ketnap.demo import DemoOptions, run_demo
    from ketnap.generate import parse_years

    try:
        first, last = parse_years(years)
    except ValueError as bad:
        raise typer.BadParameter(str(bad)) from bad
    ports = {"intake": intake_port, "quota": quota_port, "reporting": reporting_port}
    options = DemoOptions(data_dir, kafka_port, ports, scale, first, last, seed, not no_wait, concurrency)
    options.drain_timeout_s = drain_timeout
    raise typer.Exit(run_demo(options))


@app.command("import")
def import_events(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="NDJSON or CSV file of events.")],
    token: Annotated[str, typer.Option(envvar="KETNAP_TOKEN", help="Bearer token (or KETNAP_TOKEN).")],
    url: Annotated[str, typer.Option(help="Base URL of the intake.")] = "http://127.0.0.1:8001",
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Events per request.")] = 5000,
    rejects: Annotated[Path | None, typer.Option(help="Write rejected rows and their codes here.")] = None,
    file_format: Annotated[
        str | None, typer.Option("--format", help="ndjson or csv (default: from the file extension).")
    ] = None,
) -> None:
    """Send a file of events to the intake in batches; safe to re-run (what is there comes back duplicate).

    Exit status: 0 if every row was accepted or already there, 1 if some were rejected,
    2 if the import stopped (bad token, intake unreachable after retries...).
    """
    from rich.console import Console

    from ketnap.importer import ImportAborted, print_summary, run_import

    console = Console(stderr=True)
    try:
        summary = run_import(
            file,
            url=url,
            token=token,
            batch_size=batch_size,
            rejects_path=rejects,
            file_format=file_format,
            console=console,
        )
    except ImportAborted as stopped:
        if stopped.summary is not None:
            print_summary(console, stopped.summary, rejects)
        console.print(
            f"[red]import stopped:[/] {stopped} (re-run to resume: accepted rows come back duplicate)"
        )
        raise typer.Exit(2) from stopped
    print_summary(console, summary, rejects)
    raise typer.Exit(1 if summary.rejected_total else 0)
