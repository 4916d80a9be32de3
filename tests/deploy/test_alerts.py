"""The alert rules of deploy/prometheus: they read only metrics the kernel exports, and
Prometheus' own promtool checks them and runs their unit tests (qmk-alerts.test.yml:
each alert fires where it should and not below its threshold). promtool is Debian's
prometheus package (make test installs it as root); without it those two skip."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from qmk.http.metrics import METRICS
from support.paths import ROOT

RULES = ROOT / "deploy" / "prometheus" / "qmk-alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "qmk-alerts.test.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="no promtool (Debian's prometheus package; make test installs it)"
)


def _exported() -> set[str]:
    """Every series name /metrics can show (counters with _total, histograms' parts)."""
    names = set()
    for name, kind, _ in METRICS:
        if kind == "counter":
            names.add(f"{name}_total")
        elif kind == "histogram":
            names.update(f"{name}_{part}" for part in ("bucket", "sum", "count"))
        else:
            names.add(name)
    return names


def _rules() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_every_alert_reads_only_metrics_the_kernel_exports():
    rules = _rules()
    used = {m for rule in rules for m in re.findall(r"\bqmk_[a-z_]+", rule["expr"])}
    assert used and used <= _exported(), used - _exported()
    wanted = {
        "qmk_jobs_finished_total",  # job failure rate
        "qmk_queue_oldest_seconds",  # queue age
        "qmk_workers_lost_total",  # worker loss
        "qmk_audit_chain_problems",  # audit-chain errors
        "qmk_data_disk_free_bytes",  # disk reserve
        "qmk_result_storage_bytes",  # result-storage quota
    }
    assert wanted <= used


def test_every_alert_is_unit_tested():
    alerts = {rule["alert"] for rule in _rules()}
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    assert alerts == tested


@needs_promtool
def test_promtool_accepts_the_rules():
    check = subprocess.run(
        [PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr


@needs_promtool
def test_the_rules_unit_tests_pass_in_promtool():
    run = subprocess.run(
        [PROMTOOL, "test", "rules", RULE_TESTS.name],
        cwd=RULE_TESTS.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
