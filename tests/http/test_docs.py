"""docs/http.md and the monitoring examples follow the route and metric tables."""

from __future__ import annotations

import json
import re

import pytest

from qmk.http.metrics import METRICS
from qmk.http.routes import OTHER_ROUTES, SYSCALL_ROUTES
from support.paths import DOCS, EXAMPLES

PAGE = (DOCS / "http.md").read_text()


def test_every_route_is_in_the_page():
    for route in SYSCALL_ROUTES:
        assert f"| `{route.method} {route.path}` | `{route.syscall}`" in PAGE, route.path
    for other in OTHER_ROUTES:
        assert f"| `{other.method} {other.path}` |" in PAGE, other.path


def test_every_metric_is_in_the_page():
    for name, kind, _ in METRICS:
        shown = f"{name}_total" if kind == "counter" else name
        assert f"| `{shown}` | {kind} |" in PAGE, name


def test_the_dashboard_reads_only_metrics_that_exist():
    names = {name for name, _, _ in METRICS}
    dashboard = json.loads((EXAMPLES / "monitoring" / "grafana-dashboard.json").read_text())
    used = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            for metric in re.findall(r"qmk_[a-z_]+", target["expr"]):
                used.add(re.sub(r"_(total|bucket|count|sum)$", "", metric))
    assert used <= names, used - names
    assert {"qmk_jobs", "qmk_queue_depth", "qmk_worker_utilisation"} <= used


def test_the_scrape_config_scrapes_metrics():
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((EXAMPLES / "monitoring" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
