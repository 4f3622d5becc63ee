"""The monitoring profile: Prometheus scrapes every replica of every service on the
port its settings class says, and the Grafana dashboard queries only metrics the
services define (services/**/*metrics.py), with their own label names, through the
provisioned data source. Metrics other services have promised but not written yet
are listed in PENDING, each with who owes it."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

from prometheus_client.metrics import MetricWrapperBase

from tests.deploy.helpers import COMPOSE, DEPLOY, SERVICES, load_yaml

PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "takeaction.json"
SERVICES_DIR = COMPOSE.parent / "services"

#: Queried by the dashboard, not defined yet: name -> (owner, type and labels).
PENDING: dict[str, tuple[str, str]] = {}
#: What the dashboard must show (the issue's list), by the metric that shows it.
MUST_SHOW = {
    "messages in per topic": "triage_messages_in_total",
    "messages out per topic": "triage_messages_out_total",
    "ingest messages out": "kafka_messages_out_total",
    "consumer lag": "publish_consumer_lag",
    "classification latency histogram": "triage_classify_seconds_bucket",
    "decisions by kind": "triage_decisions_total",
    "queue depth by status": "triage_queue_depth",
    "publish outcomes": "publish_replies_total",
    "rate-limit pauses": "publish_rate_limit_pauses_total",
    "triage DLQ": "triage_dead_letters_total",
    "publish DLQ": "publish_dead_letters_total",
    "ingest DLQ": "ingest_mentions_total",
    "triage web DLQ": "triage_web_dead_letters_total",
}
OUR_METRIC = re.compile(r"\b(?:ingest|triage|publish|kafka)_[a-z0-9_]+\b")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def _defined_metrics() -> dict[str, tuple[str, ...]]:
    """Sample name -> label names, for every metric the services define."""
    defined: dict[str, tuple[str, ...]] = {}
    for path in sorted(SERVICES_DIR.rglob("*metrics.py")):
        module = importlib.import_module(
            ".".join(path.relative_to(SERVICES_DIR.parent).with_suffix("").parts)
        )
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase):
                kind: str = getattr(value, "_type")  # noqa: B009 - no public accessor
                name: str = getattr(value, "_name")  # noqa: B009
                labels: tuple[str, ...] = tuple(getattr(value, "_labelnames"))  # noqa: B009
                for suffix in SUFFIXES.get(kind, ("",)):
                    defined[name.removesuffix("_total") + suffix if suffix else name] = labels
    return defined


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def _panels() -> list[dict[str, Any]]:
    return [p for p in _dashboard()["panels"] if p["type"] != "row"]


def _expressions() -> list[str]:
    return [t["expr"] for p in _panels() for t in p["targets"]]


def _without_strings(expr: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)


# --- Prometheus --------------------------------------------------------------------------


def test_prometheus_scrapes_every_replica_of_every_service() -> None:
    jobs = {job["job_name"]: job for job in load_yaml(PROMETHEUS)["scrape_configs"]}
    for name, service in SERVICES.items():
        job = jobs[name]
        assert job["metrics_path"] == "/metrics"
        # DNS A records: one target per replica of a scaled service.
        assert job["dns_sd_configs"] == [
            {"names": [name], "type": "A", "port": service.metrics_port, "refresh_interval": "30s"}
        ], name


def test_prometheus_gets_the_config_compose_mounts() -> None:
    prometheus = load_yaml(COMPOSE)["services"]["prometheus"]
    assert (
        "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro"
        in prometheus["volumes"]
    )
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]


# --- Grafana -----------------------------------------------------------------------------


def test_the_dashboard_uses_the_provisioned_data_source() -> None:
    (source,) = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")[
        "datasources"
    ]
    assert source["url"] == "http://prometheus:9090"
    for panel in _panels():
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"], panel["title"]


def test_grafana_finds_the_dashboard_where_compose_mounts_it() -> None:
    grafana = load_yaml(COMPOSE)["services"]["grafana"]
    mounts = dict(
        v.rsplit(":", 1)[0].split(":", 1) for v in grafana["volumes"] if v.startswith("./")
    )
    inside = mounts["./deploy/grafana/dashboards"]
    (provider,) = load_yaml(GRAFANA / "provisioning" / "dashboards" / "takeaction.yml")["providers"]
    assert provider["options"]["path"] == inside
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{inside}/{DASHBOARD.name}"
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"


def test_the_dashboard_shows_what_ops_asked_for() -> None:
    text = " ".join(_expressions())
    missing = [what for what, metric in MUST_SHOW.items() if metric not in text]
    assert not missing, f"no panel for {missing}"


def test_every_queried_metric_is_defined_or_pending() -> None:
    defined = _defined_metrics()
    for expr in _expressions():
        for name in OUR_METRIC.findall(_without_strings(expr)):
            assert name in defined or name in PENDING, f"{name} is defined nowhere: {expr}"
    pending = {n for e in _expressions() for n in OUR_METRIC.findall(e) if n not in defined}
    assert pending == set(PENDING), "PENDING lists exactly the metrics still to be written"


def test_queries_use_the_metrics_own_labels() -> None:
    defined = _defined_metrics()
    for expr in _expressions():
        grouped = {
            label.strip()
            for group in re.findall(r"\bby \(([^)]*)\)", expr)
            for label in group.split(",")
        }
        matched = set(re.findall(r"[{,]\s*([a-z_]+)\s*=~?", expr))
        for name in OUR_METRIC.findall(_without_strings(expr)):
            if name in defined:
                allowed = {*defined[name], "le"} if name.endswith("_bucket") else set(defined[name])
                unknown = (grouped | matched) - allowed
                assert not unknown, f"{name} has no label {sorted(unknown)}: {expr}"


def test_expressions_are_balanced_and_jobs_exist() -> None:
    pairs = {"(": ")", "{": "}", "[": "]"}
    for expr in _expressions():
        stack: list[str] = []
        for char in _without_strings(expr):
            if char in pairs:
                stack.append(pairs[char])
            elif char in pairs.values():
                assert stack, expr
                assert stack.pop() == char, expr
        assert not stack, expr
    jobs = {job["job_name"] for job in load_yaml(PROMETHEUS)["scrape_configs"]}
    for expr in _expressions():
        for selector in re.findall(r'job=~"([^"]+)"', expr):
            assert set(selector.split("|")) <= jobs, expr


def test_panels_do_not_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in _dashboard()["panels"]:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(box["x"], box["x"] + box["w"])
            for y in range(box["y"], box["y"] + box["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_dashboard_json_is_tidy() -> None:
    """Stored as ``json.dumps(indent=2)`` writes it, so a diff shows real changes."""
    text = DASHBOARD.read_text(encoding="utf-8")
    assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n"
    assert Path(DASHBOARD).name == f"{_dashboard()['uid']}.json"
