"""`ketnap up` brings the broker and the three services to ready, and SIGTERM leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from shared.embedded_broker import free_port

pytestmark = pytest.mark.e2e


def descendants(pid: int) -> set[int]:
    import psutil

    try:
        return {p.pid for p in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def test_up_ready_then_clean_stop(tmp_path: Path) -> None:
    import psutil

    ports = {name: free_port() for name in ("kafka", "intake", "quota", "reporting")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ketnap",
            "up",
            "--data-dir",
            str(tmp_path),
            "--kafka-port",
            str(ports["kafka"]),
            "--intake-port",
            str(ports["intake"]),
            "--quota-port",
            str(ports["quota"]),
            "--reporting-port",
            str(ports["reporting"]),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        deadline = time.monotonic() + 60
        ready: set[str] = set()
        while time.monotonic() < deadline and len(ready) < 3:
            for name in ("intake", "quota", "reporting"):
                try:
                    if httpx.get(f"http://127.0.0.1:{ports[name]}/readyz", timeout=1).status_code == 200:
                        ready.add(name)
                except httpx.HTTPError:
                    pass
            time.sleep(0.3)
        assert ready == {"intake", "quota", "reporting"}
        children = descendants(proc.pid)
        assert len(children) >= 4  # broker + three services
        metrics = httpx.get(f"http://127.0.0.1:{ports['quota']}/metrics").text
        assert "ketnap_events_processed_total" in metrics
        docs = httpx.get(f"http://127.0.0.1:{ports['intake']}/openapi.json").json()
        assert "/healthz" in docs["paths"]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out.decode()
    text = out.decode()
    assert "dev token" in text
    assert f"127.0.0.1:{ports['reporting']}" in text
    leftovers = {
        pid for pid in children if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
    }
    assert not leftovers
