"""``ketnap up``: the embedded broker and the three services as separate processes, supervised.

A service that dies is restarted with a message, as an orchestrator would. On
Ctrl-C or SIGTERM every child is stopped (SIGTERM, then SIGKILL after the grace
period) and nothing is left behind; children also get SIGTERM from the kernel if
this process itself is killed (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx
from rich.console import Console

from shared.embedded_broker import EmbeddedBroker

SERVICES = ("intake", "quota", "reporting")
READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 25.0
console = Console(stderr=True)


def _die_with_parent() -> None:
    """Runs in the child before exec: ask the kernel to SIGTERM it when its parent dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def dev_token(data_dir: Path) -> str:
    """A national dev token, kept in the data dir so that restarts reuse it."""
    path = data_dir / "dev-token"
    if not path.exists():
        path.write_text(f"dev-{secrets.token_urlsafe(24)}")
    return path.read_text().strip()


@dataclass
class Child:
    name: str
    port: int
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ketnap", self.name],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def terminate(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.terminate()

    def wait_or_kill(self, deadline: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class System:
    data_dir: Path
    kafka_port: int
    ports: dict[str, int]
    children: list[Child] = field(default_factory=list)
    stopping: bool = False
    extra_tokens: dict[str, list[str]] = field(default_factory=dict)  # e.g. the demo's province tokens

    def __post_init__(self) -> None:
        self.data_dir = self.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.broker = EmbeddedBroker(self.kafka_port, log_path=self.data_dir / "broker.log")
        self.token = dev_token(self.data_dir)

    def child_env(self, name: str) -> dict[str, str]:
        return {
            **os.environ,
            "KETNAP_ENV": "dev",
            "KETNAP_KAFKA_BOOTSTRAP": self.broker.bootstrap,
            "KETNAP_DATABASE_URL": f"sqlite+aiosqlite:///{self.data_dir / name}.db",
            "KETNAP_HTTP_PORT": str(self.ports[name]),
            "KETNAP_TOKENS": json.dumps({self.token: ["*"], **self.extra_tokens}),
            "KETNAP_READ_AUTH": "false",
            # Tansu completes a rejoin only after a session timeout: keep restarts quick.
            "KETNAP_KAFKA_SESSION_TIMEOUT_MS": "3000",
        }

    def start(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        self.broker.start()
        console.print(f"[bold]broker[/] Kafka protocol on {self.broker.bootstrap} (Tansu, memory only)")
        for name in SERVICES:
            child = Child(name, self.ports[name], self.child_env(name), self.data_dir / f"{name}.log")
            child.start()
            self.children.append(child)

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> bool:
        deadline = time.monotonic() + timeout
        pending = list(self.children)
        while pending and time.monotonic() < deadline and not self.stopping:
            pending = [c for c in pending if not _ready(c.url)]
            self.restart_dead()
            time.sleep(0.2)
        return not pending

    def print_urls(self) -> None:
        for child in self.children:
            console.print(f"[bold]{child.name:<10}[/] {child.url}  (docs {child.url}/docs, log {child.log})")
        console.print(f"[bold]dev token[/]  {self.token}  (national scope)")

    def restart_dead(self) -> None:
        for child in self.children:
            if not child.alive() and not self.stopping:
                code = child.process.returncode if child.process else None
                child.restarts += 1
                console.print(f"[yellow]{child.name} exited ({code}); restarting (#{child.restarts})[/]")
                child.start()

    def supervise(self) -> None:
        while not self.stopping:
            self.restart_dead()
            time.sleep(0.5)

    def stop(self) -> None:
        self.stopping = True
        for child in self.children:
            child.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        for child in self.children:
            child.wait_or_kill(deadline)
        self.broker.stop()

    def run_until_stopped(self) -> int:
        try:
            self.start()
            if not self.wait_ready():
                console.print("[red]services did not become ready; see the logs in the data dir[/]")
                return 1
            self.print_urls()
            console.print("ready; Ctrl-C stops everything")
            self.supervise()
            return 0
        finally:
            self.stop()
            console.print("stopped")

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False
