"""Offline checks of the Helm chart, run by scripts/helm-check inside its venv.

First, the settings that values.schema.json accepts under `config` must be exactly
those of common/src/config/mod.rs, less the ones the chart owns. Then, for the default
values and every values file in the variants directory: lint (strict, any warning
fails), render, write each manifest to a temporary directory, validate the built-in
kinds with kubernetes-validate (strict, any WARN fails) and the Prometheus Operator
kinds, whose schemas kubernetes-validate does not ship, against the fields this chart
relies on; every alert and dashboard query must parse as PromQL and name only
metrics the services register; no secret setting may sit in a ConfigMap. Last, every
file under broken/ must be refused, by lint or by render: a schema that lets those
through protects nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import helm_python as helm
import promql_parser
import yaml

KUBE_VERSION = "1.33.0"
RELEASE = "shortener"
NAMESPACE = "shortener"

# Settings that carry passwords or decide every code: they must come from a Secret.
SECRET_ENV = {
    "SHORTENER__DATABASE__URL",
    "SHORTENER__DATABASE__REPLICA_URLS",
    "SHORTENER__REDIS__URLS",
    "SHORTENER__IDS__CODE_KEY",
}

CRD_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}

# Crates whose source registers metrics; a metric named in a rule or the dashboard
# must be registered there, so a rename cannot silently empty a panel or an alert.
METRIC_SOURCES = ("common/src", "create-service/src", "lookup-service/src", "stats-service/src")
METRIC_PREFIX = "shortener_"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


class CheckError(Exception):
    pass


def registered_metric_names(repo: Path) -> set[str]:
    literals: set[str] = set()
    for source in METRIC_SOURCES:
        for path in (repo / source).rglob("*.rs"):
            literals.update(re.findall(r'"([a-z][a-z0-9_]*)"', path.read_text()))
    return literals


# Keys the chart sets itself or takes from the Secret, so the schema refuses them
# under `config`.
CHART_OWNED_KEYS = {
    "http.bind", "http.port", "ids.worker_id", "ids.pod_name",
    "database.url", "database.replica_urls", "redis.urls", "ids.code_key",
}


def config_keys_in_code(repo: Path, of_type: str | None = None) -> set[str]:
    """`section.key` of every field of the services' Settings (common/src/config/mod.rs),
    or of those whose Rust type is `of_type`."""
    source = (repo / "common/src/config/mod.rs").read_text()
    structs = {
        name: [
            field for field, kind in re.findall(r"^\s*pub (\w+): ([^,\n]+),", body, re.M)
            if of_type is None or kind == of_type
        ]
        for name, body in re.findall(r"pub struct (\w+) \{(.*?)\n\}", source, re.S)
    }
    top = re.search(r"pub struct Settings \{(.*?)\n\}", source, re.S)
    if not top:
        raise CheckError("common/src/config/mod.rs: no `pub struct Settings`")
    keys = set()
    for section, struct in re.findall(r"pub (\w+): (\w+),", top.group(1)):
        if struct not in structs:
            raise CheckError(f"common/src/config/mod.rs: no struct {struct} for section {section}")
        keys.update(f"{section}.{field}" for field in structs[struct])
    return keys


def check_schema_follows_config(repo: Path, chart: Path) -> str:
    """values.schema.json refuses unknown keys under `config`, as the services do;
    both lists must agree, or a valid key cannot be set (or a bad one crashes pods)."""
    schema = json.loads((chart / "values.schema.json").read_text())
    sections = schema["definitions"]["config"]["properties"]
    in_schema = {f"{s}.{k}" for s, node in sections.items() for k in node["properties"]}
    in_code = config_keys_in_code(repo)
    missing = in_code - CHART_OWNED_KEYS - in_schema
    unknown = in_schema - in_code
    owned = in_schema & CHART_OWNED_KEYS
    problems = []
    if missing:
        problems.append(f"settings missing from values.schema.json: {sorted(missing)}")
    if unknown:
        problems.append(f"values.schema.json allows keys the services refuse: {sorted(unknown)}")
    if owned:
        problems.append(f"values.schema.json allows chart-owned or secret keys: {sorted(owned)}")
    # A duration the schema let through as a number would stop the pods at start.
    not_durations = sorted(
        key for key in config_keys_in_code(repo, "Duration") - CHART_OWNED_KEYS
        if sections[key.split(".")[0]]["properties"].get(key.split(".")[1], {}).get("$ref")
        != "#/definitions/duration"
    )
    if not_durations:
        problems.append(f"durations not checked as durations by values.schema.json: {not_durations}")
    if problems:
        raise CheckError("; ".join(problems))
    return f"{len(in_schema)} settings of common/src/config/mod.rs in values.schema.json"


def metric_names_in(text: str) -> set[str]:
    return set(re.findall(rf"\b{METRIC_PREFIX}[a-z0-9_]+", text))


def check_metric_names(text: str, registered: set[str], where: str) -> int:
    names = metric_names_in(text)
    for name in sorted(names):
        base = name[len(METRIC_PREFIX):]
        candidates = {base} | {base[: -len(s)] for s in HISTOGRAM_SUFFIXES if base.endswith(s)}
        if not candidates & registered:
            raise CheckError(f"{where}: metric {name} is not registered by any service")
    return len(names)


GRAFANA_RANGE = re.compile(r"\$__(rate_interval|interval|range)\b")
GRAFANA_VARIABLE = re.compile(r"\$\{?\w+\}?")


def check_promql(expr: str, where: str) -> None:
    try:
        promql_parser.parse(expr)
    except ValueError as e:
        raise CheckError(f"{where}: PromQL does not parse ({e}): {expr}") from None


def check_dashboard(body: str, registered: set[str], where: str) -> int:
    """Every query parses once Grafana's variables are filled in, and names only
    metrics that exist."""
    try:
        dashboard = json.loads(body)
    except ValueError as e:
        raise CheckError(f"{where}: not JSON: {e}") from None
    queries = 0
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if not expr:
                continue
            filled = GRAFANA_VARIABLE.sub("1", GRAFANA_RANGE.sub("5m", expr))
            check_promql(filled, f"{where} panel {panel.get('title')!r}")
            queries += 1
    if queries == 0:
        raise CheckError(f"{where}: no queries")
    check_metric_names(body, registered, where)
    return queries


def require(doc: dict, path: str, kind: type, where: str):
    node = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise CheckError(f"{where}: missing {path}")
        node = node[part]
    if not isinstance(node, kind):
        raise CheckError(f"{where}: {path} must be {kind.__name__}, not {type(node).__name__}")
    return node


def allowed_keys(node: dict, allowed: set[str], where: str) -> None:
    unknown = set(node) - allowed
    if unknown:
        raise CheckError(f"{where}: unexpected field(s) {sorted(unknown)}")


DURATION = re.compile(r"^(0|([0-9]+(ms|s|m|h|d|w|y))+)$")


def check_service_monitor(doc: dict, services: dict[str, dict], where: str) -> None:
    """`services`: name -> rendered Service of the release."""
    allowed_keys(doc, {"apiVersion", "kind", "metadata", "spec"}, where)
    require(doc, "metadata.name", str, where)
    spec = require(doc, "spec", dict, where)
    allowed_keys(spec, {"selector", "endpoints", "namespaceSelector", "jobLabel"}, where + " spec")
    selector = require(spec, "selector", dict, where)
    endpoints = require(spec, "endpoints", list, where)
    if not endpoints:
        raise CheckError(f"{where}: spec.endpoints is empty")
    for endpoint in endpoints:
        allowed_keys(
            endpoint,
            {"port", "path", "interval", "scrapeTimeout", "honorLabels", "scheme"},
            where + " endpoint",
        )
        require(endpoint, "port", str, where)
        for field in ("interval", "scrapeTimeout"):
            if field in endpoint and not DURATION.match(str(endpoint[field])):
                raise CheckError(f"{where}: {field} {endpoint[field]!r} is not a duration")
    # The selector must pick exactly the three ClusterIP Services (not the headless one).
    match_labels = selector.get("matchLabels", {})
    expressions = selector.get("matchExpressions", [])
    picked = []
    for name, service in services.items():
        labels = service["metadata"].get("labels", {})
        ok = all(labels.get(k) == v for k, v in match_labels.items())
        for e in expressions:
            if e["operator"] == "In":
                ok = ok and labels.get(e["key"]) in e["values"]
            else:
                raise CheckError(f"{where}: operator {e['operator']} not checked here")
        if ok:
            picked.append(name)
            ports = [p.get("name") for p in service["spec"].get("ports", [])]
            for endpoint in endpoints:
                if endpoint["port"] not in ports:
                    raise CheckError(f"{where}: Service {name} has no port {endpoint['port']}")
    if any(name.endswith("-headless") for name in picked):
        raise CheckError(f"{where}: selects the headless Service (every pod scraped twice)")
    if not picked:
        raise CheckError(f"{where}: selects no Service of the release")


def check_prometheus_rule(doc: dict, registered: set[str], where: str) -> int:
    allowed_keys(doc, {"apiVersion", "kind", "metadata", "spec"}, where)
    require(doc, "metadata.name", str, where)
    groups = require(doc, "spec.groups", list, where)
    alerts = 0
    seen_groups = set()
    for group in groups:
        allowed_keys(group, {"name", "interval", "rules"}, where + " group")
        name = require(group, "name", str, where)
        if name in seen_groups:
            raise CheckError(f"{where}: duplicate group {name}")
        seen_groups.add(name)
        for rule in require(group, "rules", list, where):
            place = f"{where} group {name}"
            allowed_keys(rule, {"alert", "record", "expr", "for", "labels", "annotations"}, place)
            if ("alert" in rule) == ("record" in rule):
                raise CheckError(f"{place}: a rule needs exactly one of alert and record")
            expr = require(rule, "expr", str, place)
            if expr.count("(") != expr.count(")") or expr.count("{") != expr.count("}"):
                raise CheckError(f"{place}: unbalanced brackets in {expr!r}")
            check_promql(expr, place)
            check_metric_names(expr, registered, place)
            if "for" in rule and not DURATION.match(str(rule["for"])):
                raise CheckError(f"{place}: for {rule['for']!r} is not a duration")
            for field in ("labels", "annotations"):
                for key, value in rule.get(field, {}).items():
                    if not isinstance(value, str):
                        raise CheckError(f"{place}: {field}.{key} must be a string")
            if "alert" in rule:
                alerts += 1
                require(rule, "labels.severity", str, place)
                require(rule, "annotations.summary", str, place)
                require(rule, "annotations.runbook_url", str, place)
    if alerts == 0:
        raise CheckError(f"{where}: no alerts")
    return alerts


@contextlib.contextmanager
def engine_logs_silenced():
    """Lint's template engine writes a line to the process's stderr for every
    `required` or `fail` it tolerates; the findings reach the report anyway."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def lint(chart: Path, values: dict) -> None:
    with engine_logs_silenced():
        report = helm.lint(str(chart), values, strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    problems += [{"error": e} for e in report.get("errors", []) or []]
    if problems:
        lines = "; ".join(f"{m.get('path', '')}: {m.get('error')}" for m in problems)
        raise CheckError(f"lint: {lines}")


def render(chart: Path, values: dict) -> dict[str, str]:
    with helm.Chart.load(str(chart)) as loaded:
        return loaded.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)


DURATION_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def whole_seconds(duration: str) -> int:
    """Seconds, rounded up, of a duration as the services read it ("1m30s")."""
    parts = re.findall(r"([0-9]+)(ms|s|m|h|d)", duration)
    return -(-sum(int(n) * DURATION_UNITS_MS[unit] for n, unit in parts) // 1000)


def merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def check_drain_budget(doc: dict, values: dict, where: str) -> None:
    """A pod's grace period covers its preStop pause, its drain delay, its shutdown
    timeout and 15 s, the durations read as the services read them."""
    component = doc["metadata"].get("labels", {}).get("app.kubernetes.io/component")
    own = values.get(component, {})
    if not isinstance(own, dict) or own.get("terminationGracePeriodSeconds") is not None:
        return
    http = merged(values.get("config") or {}, own.get("config") or {}).get("http") or {}
    want = (
        int(own.get("preStopSleepSeconds") or 0)
        + whole_seconds(str(http.get("drain_delay") or "0s"))
        + whole_seconds(str(http.get("shutdown_timeout") or "20s"))
        + 15
    )
    got = doc["spec"]["template"]["spec"].get("terminationGracePeriodSeconds")
    if got != want:
        raise CheckError(f"{where}: terminationGracePeriodSeconds {got}, want {want}")


def check_ingress_tls(doc: dict, values: dict, where: str) -> None:
    """Every TLS entry names hosts the Ingress serves; with a cert-manager issuer,
    every host has a certificate, and the Ingress asks that issuer for them."""
    rules = [rule["host"] for rule in doc["spec"].get("rules", [])]
    tls = doc["spec"].get("tls", [])
    covered = [host for entry in tls for host in entry.get("hosts", [])]
    stray = sorted(set(covered) - set(rules))
    if stray:
        raise CheckError(f"{where}: TLS for hosts it does not serve: {stray}")
    issuer = (values.get("ingress", {}).get("certManager") or {}).get("clusterIssuer")
    if issuer:
        annotation = doc["metadata"].get("annotations", {}).get("cert-manager.io/cluster-issuer")
        if annotation != issuer:
            raise CheckError(f"{where}: cluster-issuer annotation {annotation!r}, want {issuer!r}")
        uncovered = sorted(set(rules) - set(covered))
        if uncovered:
            raise CheckError(f"{where}: hosts without a certificate: {uncovered}")
        if len(covered) != len(set(covered)):
            raise CheckError(f"{where}: a host has two TLS entries")


def check_variant(chart: Path, values: dict, out: Path, validate: Path, registered: set[str]) -> str:
    lint(chart, values)
    try:
        rendered = render(chart, values)
    except helm.HelmError as e:
        raise CheckError(f"render: {e}") from None
    out.mkdir(parents=True)
    builtin: list[Path] = []
    crds: list[tuple[dict, str]] = []
    names: set[tuple[str, str]] = set()
    services: dict[str, dict] = {}
    dashboard_queries = 0
    index = 0
    for template, text in sorted(rendered.items()):
        if template.endswith("NOTES.txt"):
            if "{{" in text:
                raise CheckError(f"{template}: unrendered template text")
            continue
        for doc in yaml.safe_load_all(text):
            if not doc:
                continue
            where = f"{template} {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            key = (doc.get("kind"), doc.get("metadata", {}).get("name"))
            if key in names:
                raise CheckError(f"{where}: rendered twice")
            names.add(key)
            if doc.get("metadata", {}).get("namespace") not in (None, NAMESPACE):
                if doc.get("kind") != "ConfigMap":
                    raise CheckError(f"{where}: namespace is not the release's")
            if doc.get("kind") == "ConfigMap":
                leaked = SECRET_ENV & set(doc.get("data", {}))
                if leaked:
                    raise CheckError(f"{where}: secret settings in a ConfigMap: {sorted(leaked)}")
                for name, body in doc.get("data", {}).items():
                    if name.endswith(".json"):
                        dashboard_queries += check_dashboard(body, registered, f"{where} {name}")
            if doc.get("kind") == "Service":
                services[doc["metadata"]["name"]] = doc
            if doc.get("kind") in ("Deployment", "StatefulSet"):
                defaults = yaml.safe_load((chart / "values.yaml").read_text())
                check_drain_budget(doc, merged(defaults, values), where)
            if doc.get("kind") == "Ingress":
                check_ingress_tls(doc, values, where)
            index += 1
            if (doc.get("apiVersion"), doc.get("kind")) in CRD_KINDS:
                crds.append((doc, where))
                continue
            path = out / f"{index:02d}-{doc['kind'].lower()}-{doc['metadata']['name']}.yaml"
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
            builtin.append(path)
    if not builtin:
        raise CheckError("nothing rendered")
    run = subprocess.run(
        [str(validate), "--strict", "-k", KUBE_VERSION, *map(str, builtin)],
        capture_output=True,
        text=True,
    )
    output = (run.stdout + run.stderr).splitlines()
    bad = [line for line in output if not line.startswith("INFO ")]
    if run.returncode != 0 or bad:
        raise CheckError("kubernetes-validate: " + " | ".join(bad or output[-3:]))
    alerts = 0
    for doc, where in crds:
        if doc["kind"] == "ServiceMonitor":
            check_service_monitor(doc, services, where)
        else:
            alerts += check_prometheus_rule(doc, registered, where)
    extra = f", {len(crds)} CRD objects checked ({alerts} alerts)" if crds else ""
    if dashboard_queries:
        extra += f", dashboard: {dashboard_queries} queries"
    return f"{len(builtin) + len(crds)} objects, {len(builtin)} validated against Kubernetes {KUBE_VERSION}{extra}"


def load_values(path: Path | None) -> dict:
    if path is None:
        return {}
    return helm.values_from_yaml(path.read_text())


def quiet_helm() -> None:
    """The engine logs each `required`/`fail` it meets to stderr; the report says it."""
    sink = logging.getLogger("helm-check.helm")
    sink.addHandler(logging.NullHandler())
    sink.propagate = False
    helm.enable_logging(logging.CRITICAL, sink)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("chart", type=Path)
    parser.add_argument("variants", type=Path)
    parser.add_argument("--validator", type=Path, required=True)
    parser.add_argument("--repo", type=Path, required=True)
    args = parser.parse_args()

    quiet_helm()
    registered = registered_metric_names(args.repo)
    variants: list[tuple[str, Path | None]] = [("default", None)]
    variants += [(p.name, p) for p in sorted(args.variants.glob("*.yaml"))]
    broken = sorted((args.variants / "broken").glob("*.yaml"))
    failures = 0
    try:
        print(f"ok    config keys: {check_schema_follows_config(args.repo, args.chart)}")
    except CheckError as e:
        failures += 1
        print(f"FAIL  config keys: {e}")
    with tempfile.TemporaryDirectory(prefix="helm-check-") as tmp:
        for name, path in variants:
            started = time.monotonic()
            try:
                summary = check_variant(
                    args.chart, load_values(path), Path(tmp) / name, args.validator, registered
                )
                print(f"ok    {name}: {summary} ({time.monotonic() - started:.1f} s)")
            except (CheckError, helm.HelmError) as e:
                failures += 1
                print(f"FAIL  {name}: {e}")
        for path in broken:
            name = f"broken/{path.name}"
            try:
                values = load_values(path)
                lint(args.chart, values)
                render(args.chart, values)
            except (CheckError, helm.HelmError) as e:
                # The first reason is the one that names the key.
                reason = " ".join(str(e).split()).split(" ; ")[0]
                print(f"ok    {name}: refused ({reason[:140]})")
            else:
                failures += 1
                print(f"FAIL  {name}: accepted, but it must be refused")
    if not broken:
        print("FAIL  no broken values files: the schema is not being tested")
        failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
