"""``ketnap intake`` as ``KETNAP_INTAKE_WORKERS`` processes sharing one port.

One intake process uses one core: the event loop validates, judges and encodes in
Python. More processes on the same database are correct as they are between
replicas: every id is claimed in the database (insert, on conflict nothing), so a
duplicate or an ``id_conflict`` is decided there whichever process asked.

uvicorn's supervisor (this process) binds the port, starts the workers, replaces
one that dies and stops them all on SIGTERM or SIGINT; each new connection goes
to a worker waiting in ``accept``, an idle one first as a rule. Before any worker
starts, the database is migrated once (the workers do not) and the workers'
Prometheus values are pointed at one fresh directory, so that ``/metrics`` sums
them whichever worker answers. A worker dies with its supervisor
(``PR_SET_PDEATHSIG``): a killed intake leaves no worker holding its port.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Final

import uvicorn
from fastapi import FastAPI

from shared.db import make_engine, migrate
from shared.metrics import MULTIPROC_ENV
from shared.runner import serve, uvicorn_options
from shared.settings import Settings

SUPERVISOR_ENV: Final = "KETNAP_INTAKE_SUPERVISOR_PID"
METRICS_DIR_PREFIX: Final = "ketnap-intake-metrics-"
_PR_SET_PDEATHSIG: Final = 1


def run(settings: Settings) -> None:
    """Serve the intake until SIGINT/SIGTERM in ``settings.intake_processes()`` processes."""
    workers = settings.intake_processes()
    if workers == 1:
        from services.intake.app import create_app

        serve(create_app(settings), settings)
        return
    if settings.migrate_on_start:
        asyncio.run(_migrate(settings))
    sweep_metrics_dirs(Path(tempfile.gettempdir()))
    metrics_dir = tempfile.mkdtemp(prefix=f"{METRICS_DIR_PREFIX}{os.getpid()}-")
    # Read by the workers, which inherit this environment when they are spawned.
    os.environ |= {
        "KETNAP_MIGRATE_ON_START": "false",
        MULTIPROC_ENV: metrics_dir,
        SUPERVISOR_ENV: str(os.getpid()),
    }
    try:
        uvicorn.run(f"{__name__}:worker_app", factory=True, workers=workers, **uvicorn_options(settings))
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def sweep_metrics_dirs(parent: Path) -> list[Path]:
    """Remove the metrics directories of supervisors that are gone; returns them.

    A supervisor removes its own on the way out, but one killed (SIGKILL, the OOM
    killer) cannot: on a host that restarts the intake, each such death left a
    directory of the workers' value files. The name carries the supervisor's pid; a
    directory whose pid is alive (another intake on this host) is left alone.
    """
    removed = []
    for path in parent.glob(f"{METRICS_DIR_PREFIX}*"):
        pid = path.name.removeprefix(METRICS_DIR_PREFIX).split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        pass
    return True


def worker_app() -> FastAPI:
    """The app of one worker process (called by uvicorn in the worker)."""
    from services.intake.app import create_app

    _die_with_supervisor()
    return create_app(Settings(service="intake"))


def _die_with_supervisor() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if str(os.getppid()) != os.environ.get(SUPERVISOR_ENV):
        os._exit(1)  # the supervisor died before the request above took effect


async def _migrate(settings: Settings) -> None:
    engine = make_engine(settings.resolved_database_url())
    try:
        await migrate(engine, "intake")
    finally:
        await engine.dispose()
