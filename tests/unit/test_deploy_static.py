"""The deployment files pass their offline checks, and each check fails on a broken copy.

In-process checks only (schemas, structure, wiring); the ones that run promtool,
hadolint and shellcheck are in tests/integration/test_deploy_static_tools.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy import catalogue
from deploy.check import (
    _rule_problems,
    check_compose,
    check_grafana,
    check_k8s,
    seconds,
)
from shared import metrics as shared_metrics
from shared.settings import Settings
from shared.topics import TOPICS

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DASHBOARD = ROOT / "deploy/grafana/dashboards/ketnap.json"
DATASOURCES = ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml"
K8S = ROOT / "deploy/k8s"
KAFKA = ROOT / "deploy/kafka"


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def _write_yaml(path: Path, doc: Any) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# --- the catalogue scan ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("rate(ketnap_intake_event_total[5m])", "unknown metric 'ketnap_intake_event_total'"),
        ('ketnap_consumer_lag{servce="quota"}', "label 'servce' is not a label of ketnap_consumer_lag"),
        ("sum by (provnce) (rate(ketnap_intake_events_total[5m]))", "groups by unknown label 'provnce'"),
        ("sum(rate(ketnap_outbox_backlog_bucket[5m]))", "unknown metric 'ketnap_outbox_backlog_bucket'"),
        ("vector(1)", "names no metric: 'vector(1)'"),
    ],
)
def test_catalogue_names_what_is_wrong(expr: str, problem: str) -> None:
    assert problem in catalogue.expression_problems(expr)


@pytest.mark.parametrize(
    "expr",
    [
        "histogram_quantile(0.99, sum by (service, le) (rate(ketnap_freshness_seconds_bucket[5m])))",
        'sort(max by (unit_id) (ketnap_attainment_ratio{unit_id=~"P[0-9]+", tree="$tree"}))',
        "ketnap_outbox_backlog > 1000 and deriv(ketnap_outbox_backlog[15m]) > 0",
        'up{job="ketnap"} == 0',
        "sum(ketnap_intake_request_seconds_count) / sum(ketnap_intake_request_seconds_sum) offset 5m",
    ],
)
def test_catalogue_accepts_valid_expressions(expr: str) -> None:
    assert catalogue.expression_problems(expr) == []


def test_catalogue_labels_agree_with_the_metrics_the_services_declare() -> None:
    declared = {
        m._name + ("_total" if m._type == "counter" else ""): frozenset(m._labelnames)
        for m in vars(shared_metrics).values()
        if hasattr(m, "_labelnames") and hasattr(m, "_type")
    }
    assert declared, "shared.metrics declares no metric: the scan above is broken"
    for name, labels in declared.items():
        assert name in catalogue.METRICS, f"{name} is exposed but not in deploy/catalogue.py"
        assert catalogue.METRICS[name].labels == labels, name


# --- compose --------------------------------------------------------------------------


def test_compose_file_passes() -> None:
    assert check_compose(COMPOSE) == []


def test_compose_is_not_yaml(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("services:", "services: [", 1))
    assert check_compose(broken)


def _broken_compose(tmp_path: Path, change: Any) -> list[str]:
    doc = _compose()
    change(doc)
    return check_compose(_write_yaml(tmp_path / "docker-compose.yml", doc))


def test_compose_schema_rejects_an_unknown_key(tmp_path: Path) -> None:
    problems = _broken_compose(tmp_path, lambda d: d["services"]["quota"].update(healthchek={}))
    assert any("compose-spec: services/quota" in p and "healthchek" in p for p in problems), problems


def test_compose_schema_rejects_a_bad_condition(tmp_path: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        d["services"]["intake"]["depends_on"]["kafka"]["condition"] = "healthy"

    assert any("compose-spec" in p for p in _broken_compose(tmp_path, change))


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            lambda d: d["services"]["quota"]["depends_on"].update(kafak={"condition": "service_healthy"}),
            "quota: depends on unknown service 'kafak'",
        ),
        (
            lambda d: d["services"]["quota"]["secrets"].remove("quota_db_password"),
            "quota: KETNAP_DATABASE_PASSWORD_FILE=/run/secrets/quota_db_password but that secret is not",
        ),
        (
            lambda d: d["services"]["reporting"]["secrets"].append("reporting_tls"),
            "reporting: secret 'reporting_tls' is not declared",
        ),
        (
            lambda d: d["services"]["intake"]["environment"].update(KETNAP_ENV="dev"),
            "intake: KETNAP_ENV must be 'production'",
        ),
        (
            lambda d: d["services"]["intake"]["environment"].update(
                KETNAP_KAFKA_SECURITY_PROTOCOL="PLAINTEXT"
            ),
            "intake: KETNAP_KAFKA_SECURITY_PROTOCOL must be 'SASL_SSL'",
        ),
        (
            lambda d: d["services"]["postgres"].update(image="postgres:latest"),
            "postgres: image 'postgres:latest' is not pinned",
        ),
        (
            lambda d: d["services"]["quota"].update(stop_grace_period="15s"),
            "quota: stop_grace_period must exceed KETNAP_SHUTDOWN_GRACE_S=20",
        ),
        (
            lambda d: d["services"]["reporting"]["depends_on"].pop("migrate-reporting"),
            "reporting: must depend on migrate-reporting",
        ),
        (lambda d: d["services"]["quota"].pop("healthcheck"), "quota: no healthcheck"),
        (lambda d: d["services"]["quota"].update(healthcheck={"disable": True}), "quota: no healthcheck"),
        (lambda d: d["services"]["intake"].update(read_only=False), "intake: read_only must be true"),
        (
            lambda d: [
                d["services"][s]["depends_on"].pop("kafka-init") for s in ("intake", "quota", "reporting")
            ],
            "kafka-init: one-shot that no service",
        ),
    ],
)
def test_compose_wiring_fails_on_broken_copy(tmp_path: Path, change: Any, problem: str) -> None:
    problems = _broken_compose(tmp_path, change)
    assert any(p.startswith(problem) for p in problems), problems


def test_compose_production_env_is_accepted_by_the_real_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each service's compose environment, with its secrets as files, starts in production."""
    secrets = {"ketnap_tokens": json.dumps({"n" * 40: ["*"], "p" * 40: ["P22", "legacy:P10"]})}
    for name, svc in _compose()["services"].items():
        if "build" not in svc:
            continue
        for key in [k for k in os.environ if k.startswith("KETNAP_")]:
            monkeypatch.delenv(key)
        for key, raw in svc["environment"].items():
            value = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(raw))  # compose's ${VAR:-default}
            if value.startswith("/run/secrets/"):
                secret = tmp_path / value.removeprefix("/run/secrets/")
                secret.write_text(secrets.get(secret.name, "s3cret-" + secret.name))
                value = str(secret)
            monkeypatch.setenv(key, value)
        settings = Settings()
        assert settings.env == "production", name
        assert settings.resolved_database_url().startswith("postgresql+asyncpg://"), name
        assert len(settings.token_scopes()) == 2, name


def test_every_service_gets_its_own_database_and_kafka_identity() -> None:
    services = _compose()["services"]
    for svc in ("intake", "quota", "reporting"):
        env = services[svc]["environment"]
        assert env["KETNAP_DATABASE_URL"].endswith(f"{svc}@postgres:5432/ketnap_{svc}".split("@")[1])
        assert env["KETNAP_DATABASE_URL"].startswith(f"postgresql+asyncpg://{svc}@")
        assert env["KETNAP_KAFKA_SASL_USERNAME"] == svc
        assert services[f"migrate-{svc}"]["environment"]["KETNAP_DATABASE_URL"] == env["KETNAP_DATABASE_URL"]
    assert "ketnap_${svc}" in (ROOT / "deploy/postgres/init-databases.sh").read_text()


def test_seconds_parses_compose_durations() -> None:
    assert [seconds(d) for d in ("30s", "1m30s", "2h", "1m", 45)] == [30, 90, 7200, 60, 45]
    with pytest.raises(ValueError, match="not a duration"):
        seconds("30 seconds")


# --- kafka topics and ACLs --------------------------------------------------------------


def _conf_lines(path: Path) -> list[list[str]]:
    lines = (ln.split() for ln in path.read_text().splitlines())
    return [ln for ln in lines if ln and not ln[0].startswith("#")]


def test_topics_conf_matches_shared_topics() -> None:
    declared: dict[str, tuple[int, dict[str, str]]] = {}
    for name, count, pairs in _conf_lines(KAFKA / "topics.conf"):
        declared[name] = (int(count), dict(kv.split("=", 1) for kv in pairs.split(",")))
    assert set(declared) == {t.name for t in TOPICS}
    for topic in TOPICS:
        partitions, configs = declared[topic.name]
        assert partitions == topic.partitions, topic.name
        assert configs.items() >= topic.configs.items(), topic.name
        assert configs["cleanup.policy"] == topic.configs.get("cleanup.policy", "delete"), topic.name


def test_acls_name_only_known_services_topics_and_operations() -> None:
    topics = {t.name for t in TOPICS}
    rows = _conf_lines(KAFKA / "acls.conf")
    for principal, operation, rtype, rname, *pattern in rows:
        assert principal in {"intake", "quota", "reporting"}
        assert operation in {"Read", "Write", "Describe"}
        if rtype == "topic":
            assert rname in topics, rname
        else:
            assert (rtype, rname, pattern) == ("group", f"ketnap-{principal}", ["prefixed"])
    writers = {rname: {r[0] for r in rows if r[1] == "Write" and r[3] == rname} for rname in topics}
    assert writers["ketnap.tally-changes"] == {"quota"}
    assert writers["ketnap.rollups"] == {"reporting"}
    assert writers["ketnap.candidate-events"] == {"intake"}


# --- prometheus rules (expressions; promtool runs in the integration test) ---------------


def test_rules_use_only_catalogued_metrics() -> None:
    assert _rule_problems(ROOT / "deploy/prometheus/rules.yml") == []


def test_rules_fail_on_an_unknown_metric(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(
        (ROOT / "deploy/prometheus/rules.yml").read_text().replace("ketnap_consumer_lag", "ketnap_lag")
    )
    assert any("unknown metric 'ketnap_lag'" in p for p in _rule_problems(rules))


def test_rules_cover_every_required_alert() -> None:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/rules.yml").read_text())
    exprs = {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"]}
    for metric in ("ketnap_consumer_lag", "ketnap_rejections_total", "ketnap_outbox_backlog", "up"):
        assert any(re.search(rf"\b{metric}\b", e) for e in exprs.values()), metric
    assert "ketnap_invariant_violations_total" in exprs["KetnapInvariantViolation"]
    assert "probe_success" in exprs["KetnapNotReady"]


# --- grafana ----------------------------------------------------------------------------


def test_dashboard_passes() -> None:
    assert check_grafana(DASHBOARD, DATASOURCES) == []


def _broken_dashboard(tmp_path: Path, change: Any) -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    change([p for p in dash["panels"] if p["type"] != "row"], dash)
    path = tmp_path / "ketnap.json"
    path.write_text(json.dumps(dash))
    return check_grafana(path, DATASOURCES)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            lambda ps, d: ps[0]["targets"][0].update(expr="rate(ketnap_intake_evnts_total[5m])"),
            "unknown metric 'ketnap_intake_evnts_total'",
        ),
        (
            lambda ps, d: ps[1].update(datasource={"type": "prometheus", "uid": "prom"}),
            "is not a provisioned uid",
        ),
        (lambda ps, d: ps[2].pop("datasource"), "is not a provisioned uid"),
        (lambda ps, d: ps[0].update(title="Intake"), "no panel titled 'Intake rate by province'"),
        (lambda ps, d: d["templating"]["list"].pop(), "undefined variable $kind"),
        (lambda ps, d: ps[3].update(targets=[]), "no targets"),
        (lambda ps, d: ps[4].update(id=ps[5]["id"]), "used twice"),
        (lambda ps, d: ps[0]["gridPos"].update(x=20), "bad gridPos"),
    ],
)
def test_dashboard_fails_on_broken_copy(tmp_path: Path, change: Any, problem: str) -> None:
    problems = _broken_dashboard(tmp_path, change)
    assert any(problem in p for p in problems), problems


def test_dashboard_that_is_not_json_fails(tmp_path: Path) -> None:
    path = tmp_path / "ketnap.json"
    path.write_text(DASHBOARD.read_text()[:-20])
    assert check_grafana(path, DATASOURCES)


# --- kubernetes -------------------------------------------------------------------------


def test_k8s_manifests_pass() -> None:
    assert check_k8s(K8S) == []


def _broken_k8s(tmp_path: Path, file: str, change: Any) -> list[str]:
    directory = tmp_path / "k8s"
    shutil.copytree(K8S, directory)
    docs = list(yaml.safe_load_all((directory / file).read_text()))
    change(docs)
    (directory / file).write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return check_k8s(directory)


def _pod(docs: list[Any]) -> Any:
    return docs[0]["spec"]["template"]["spec"]


@pytest.mark.parametrize(
    ("file", "change", "problem"),
    [
        (
            "quota.yaml",
            lambda ds: _pod(ds)["containers"][0].update(readinesProbe={}),
            "Deployment/ketnap-quota",
        ),
        ("quota.yaml", lambda ds: ds[0]["spec"].update(replicas="2"), "Deployment/ketnap-quota"),
        ("intake.yaml", lambda ds: ds[0]["spec"].update(replicas=1), "replicas must be at least 2"),
        (
            "intake.yaml",
            lambda ds: _pod(ds).update(terminationGracePeriodSeconds=25),
            "terminationGracePeriodSeconds must exceed shutdown grace + preStop = 25s",
        ),
        (
            "reporting.yaml",
            lambda ds: _pod(ds)["containers"][0]["readinessProbe"]["httpGet"].update(path="/healthz"),
            "readinessProbe must GET /readyz",
        ),
        (
            "reporting.yaml",
            lambda ds: _pod(ds)["containers"][0]["securityContext"].update(readOnlyRootFilesystem=False),
            "needs readOnlyRootFilesystem",
        ),
        (
            "reporting.yaml",
            lambda ds: _pod(ds)["containers"][0].pop("resources"),
            "needs cpu+memory requests",
        ),
        ("quota.yaml", lambda ds: ds.pop(2), "ketnap-quota: no PodDisruptionBudget selects its pods"),
        ("migrations.yaml", lambda ds: ds.pop(0), "ketnap-intake: no Job runs `ketnap migrate intake`"),
    ],
)
def test_k8s_fails_on_broken_copy(tmp_path: Path, file: str, change: Any, problem: str) -> None:
    problems = _broken_k8s(tmp_path, file, change)
    assert any(problem in p for p in problems), problems


def test_k8s_file_missing_from_kustomization_fails(tmp_path: Path) -> None:
    problems = _broken_k8s(tmp_path, "kustomization.yaml", lambda ds: ds[0]["resources"].remove("quota.yaml"))
    assert any("quota.yaml is not listed in kustomization.yaml" in p for p in problems), problems


def test_k8s_placeholder_tokens_fail_closed_in_production(tmp_path: Path) -> None:
    """The committed placeholder Secret must never let a production service start."""
    shared = next(
        d
        for d in yaml.safe_load_all((K8S / "secret.yaml").read_text())
        if d["metadata"]["name"] == "ketnap-shared"
    )
    tokens = tmp_path / "tokens.json"
    tokens.write_text(shared["stringData"]["tokens.json"])
    with pytest.raises(ValueError, match="shorter than"):
        Settings(
            env="production",
            read_auth=True,
            database_url="postgresql+asyncpg://quota@db/ketnap_quota",
            kafka_security_protocol="SASL_SSL",
            tokens_file=tokens,
        )
