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
    """Run the intake service (configured by KETNAP_* environment variables)."""
    _run_service("intake")


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


@app.command()
def demo(
    data_dir: DataDir = Path("data"),
    kafka_port: KafkaPort = 9092,
) -> None:
    """``up`` plus a synthetic national feed, then a summary; the system keeps running until Ctrl-C."""
    from ketnap.up import System

    system = System(data_dir, kafka_port, dict(SERVICE_PORTS))
    raise typer.Exit(system.run_until_stopped())
