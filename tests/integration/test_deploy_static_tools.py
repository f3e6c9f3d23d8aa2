"""The deploy checks that shell out (promtool, hadolint, shellcheck, openssl) fail on broken copies.

`make lint-deploy` installs promtool and shellcheck; without them these tests skip
(the lint step itself fails instead). No Docker engine, cluster or broker is used.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deploy.check import _tool, check_dockerfile, check_prometheus, check_shell

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy/prometheus"


def _require(tool: str) -> None:
    if _tool(tool) is None:
        pytest.skip(f"{tool} not installed (make lint-deploy installs it)")


def _prometheus_copy(tmp_path: Path) -> Path:
    target = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS, target)
    return target


def test_prometheus_config_and_rule_tests_pass() -> None:
    _require("promtool")
    assert check_prometheus(PROMETHEUS / "prometheus.yml", PROMETHEUS / "rules.test.yml") == []


def test_promtool_rejects_a_broken_config(tmp_path: Path) -> None:
    _require("promtool")
    copy = _prometheus_copy(tmp_path)
    config = copy / "prometheus.yml"
    config.write_text(config.read_text().replace("scrape_interval: 15s", "scrape_interval: fifteen"))
    problems = check_prometheus(config)
    assert any("promtool check config" in p for p in problems), problems


def test_promtool_rejects_a_rule_that_does_not_parse(tmp_path: Path) -> None:
    _require("promtool")
    copy = _prometheus_copy(tmp_path)
    rules = copy / "rules.yml"
    rules.write_text(rules.read_text().replace('up{job="ketnap"} == 0', 'up{job="ketnap" == 0'))
    problems = check_prometheus(copy / "prometheus.yml")
    assert any("promtool check config" in p for p in problems), problems


def test_rule_tests_fail_when_an_alert_stops_firing(tmp_path: Path) -> None:
    """A threshold raised past the test series makes `promtool test rules` fail."""
    _require("promtool")
    copy = _prometheus_copy(tmp_path)
    rules = copy / "rules.yml"
    rules.write_text(
        rules.read_text().replace(
            "sum by (service, topic) (ketnap_consumer_lag) > 10000",
            "sum by (service, topic) (ketnap_consumer_lag) > 50000",
        )
    )
    problems = check_prometheus(copy / "prometheus.yml", copy / "rules.test.yml")
    assert any("promtool test rules" in p and "KetnapConsumerLagHigh" in p for p in problems), problems


def test_dockerfile_passes() -> None:
    _require("hadolint")
    assert check_dockerfile(ROOT / "deploy/Dockerfile") == []


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ('RUN pip install --no-cache-dir "uv==${UV_VERSION}"', "RUN pip install uv", "hadolint"),
        (
            "ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm",
            "ARG PYTHON_IMAGE=python:3.11-slim\nRUN cd /src",
            "hadolint",
        ),
        ("USER 10001:10001", "USER root", "non-root USER"),
        ('ENTRYPOINT ["ketnap"]', 'ENTRYPOINT ["python", "-m", "ketnap"]', "ENTRYPOINT must be"),
    ],
)
def test_dockerfile_fails_on_broken_copy(tmp_path: Path, old: str, new: str, problem: str) -> None:
    _require("hadolint")
    text = (ROOT / "deploy/Dockerfile").read_text()
    assert old in text
    broken = tmp_path / "Dockerfile"
    broken.write_text(text.replace(old, new))
    problems = check_dockerfile(broken)
    assert any(problem in p for p in problems), problems


def test_shellcheck_passes_and_fails_on_broken_copy(tmp_path: Path) -> None:
    _require("shellcheck")
    scripts = sorted((ROOT / "deploy").rglob("*.sh"))
    assert len(scripts) >= 5
    assert check_shell(scripts) == []
    broken = tmp_path / "init.sh"
    broken.write_text((ROOT / "deploy/kafka/init.sh").read_text().replace('"$BOOTSTRAP"', "$BOOTSTRAP"))
    assert any("SC2086" in p for p in check_shell([broken]))


def test_dev_secrets_script_creates_every_secret_compose_mounts(tmp_path: Path) -> None:
    _require("openssl")
    script = tmp_path / "secrets/make-dev-secrets.sh"
    script.parent.mkdir()
    shutil.copy(ROOT / "deploy/secrets/make-dev-secrets.sh", script)
    subprocess.run(["bash", str(script)], check=True, capture_output=True, timeout=120)
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, secret in compose["secrets"].items():
        path = tmp_path / "secrets" / Path(secret["file"]).name
        assert path.is_file(), name
        assert path.stat().st_size > 0, name
    # A second run keeps what exists (operators' real secrets are never overwritten).
    before = {p.name: p.read_bytes() for p in script.parent.iterdir() if p.is_file()}
    subprocess.run(["bash", str(script)], check=True, capture_output=True, timeout=120)
    assert {p.name: p.read_bytes() for p in script.parent.iterdir() if p.is_file()} == before


def test_command_line_exits_non_zero_on_a_broken_tree(tmp_path: Path) -> None:
    """`python -m deploy.check --root` on a copy with one broken file names it and exits 1."""
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "deploy", root / "deploy", ignore=shutil.ignore_patterns("secrets", "__pycache__"))
    compose = (ROOT / "docker-compose.yml").read_text()
    (root / "docker-compose.yml").write_text(
        compose.replace("stop_grace_period: 30s", "stop_grace_period: 5s")
    )
    proc = subprocess.run(
        [sys.executable, "-m", "deploy.check", "compose", "grafana", "k8s", "--root", str(root)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout
    assert "FAIL compose" in proc.stdout
    assert "ok   grafana" in proc.stdout
    assert "ok   k8s" in proc.stdout
    assert "stop_grace_period must exceed" in proc.stdout
