"""A whole running system (`ketnap up` on free ports) shared by the e2e tests of a session."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shared.embedded_broker import free_port

SERVICES = ("intake", "quota", "reporting")


@dataclass(frozen=True)
class RunningSystem:
    data_dir: Path
    kafka_bootstrap: str
    urls: dict[str, str]
    token: str
    process: subprocess.Popen[bytes]


def wait_ready(urls: dict[str, str], timeout: float = 90.0) -> set[str]:
    deadline, ready = time.monotonic() + timeout, set()
    while time.monotonic() < deadline and len(ready) < len(urls):
        for name, url in urls.items():
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    ready.add(name)
            except httpx.HTTPError:
                pass
        time.sleep(0.3)
    return ready


def start_system(data_dir: Path) -> RunningSystem:
    ports = {name: free_port() for name in ("kafka", *SERVICES)}
    args = [
        sys.executable,
        "-m",
        "ketnap",
        "up",
        "--data-dir",
        str(data_dir),
        "--kafka-port",
        str(ports["kafka"]),
    ]
    for name in SERVICES:
        args += [f"--{name}-port", str(ports[name])]
    log = open(data_dir / "up.out", "wb")  # noqa: SIM115 - kept open for the child's lifetime
    process = subprocess.Popen(
        args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "200"}
    )
    urls = {name: f"http://127.0.0.1:{ports[name]}" for name in SERVICES}
    ready = wait_ready(urls)
    if ready != set(SERVICES):
        stop_system(process)
        raise RuntimeError(f"not ready: {set(SERVICES) - ready}; see {data_dir}")
    token = (data_dir / "dev-token").read_text().strip()
    return RunningSystem(data_dir, f"127.0.0.1:{ports['kafka']}", urls, token, process)


def stop_system(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


@pytest.fixture(scope="session")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    running = start_system(tmp_path_factory.mktemp("system"))
    yield running
    stop_system(running.process)
