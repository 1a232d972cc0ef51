"""deploy/monitoring/: the alerting rules pass `promtool check rules` and their unit tests
(`promtool test rules`), every metric the rules and the dashboard read is one the code
exports, and every alert has its runbook entry."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.runtime.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
RULE = MONITORING / "prometheus-rule.yaml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
RUNBOOKS = ROOT / "docs" / "operations.md"
PROMTOOL = ROOT / ".tools" / "bin" / "promtool"
METRIC = re.compile(r"\btuning_[a-z0-9_]+")
"""A metric the code exports (a recorded series is `tuning:...`, with colons)."""
SUFFIXES = ("_total", "_bucket", "_count", "_sum")


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # A failure, not a skip: CI has apt, so a missing promtool means the setup is broken.
    assert PROMTOOL.exists(), (
        f"promtool is not installed at {PROMTOOL.relative_to(ROOT)}: run `bash bin/test`, "
        "whose bin/_setup.sh takes it from Debian's prometheus package (needs apt-get)"
    )
    return subprocess.run(
        [str(PROMTOOL), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def rule() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(RULE.read_text())
    return loaded


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """The PrometheusRule's groups as a plain rules file, beside the unit tests."""
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule()["spec"]["groups"]}))
    shutil.copy(MONITORING / "tests" / "alerts-test.yaml", tmp_path)
    return tmp_path


def test_the_rules_pass_promtool_check(rules_dir: Path) -> None:
    result = promtool("check", "rules", "rules.yaml", cwd=rules_dir)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_fire_as_their_unit_tests_say(rules_dir: Path) -> None:
    result = promtool("test", "rules", "alerts-test.yaml", cwd=rules_dir)
    assert result.returncode == 0, result.stdout + result.stderr


def test_it_is_a_prometheus_operator_rule() -> None:
    loaded = rule()
    assert loaded["apiVersion"] == "monitoring.coreos.com/v1"
    assert loaded["kind"] == "PrometheusRule"


def exported_names() -> set[str]:
    """Every metric name the processes export, as Prometheus sees them."""
    names = set()
    for family in Metrics.create().registry.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    # Counters and histograms not yet observed have no samples: their suffixed names.
    for family in Metrics.create().registry.collect():
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + s for s in ("_bucket", "_count", "_sum"))
    return names


def expressions() -> list[str]:
    groups = rule()["spec"]["groups"]
    found = [r["expr"] for g in groups for r in g["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    found += [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    return found


def test_every_metric_read_is_one_the_code_exports() -> None:
    exported = exported_names()
    read = {name for expr in expressions() for name in METRIC.findall(expr)}
    assert read, "the rules read no metric"
    assert read <= exported, f"not exported by core/runtime/metrics.py: {sorted(read - exported)}"


def test_every_recorded_series_read_is_recorded() -> None:
    groups = rule()["spec"]["groups"]
    recorded = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    read = {name for expr in expressions() for name in re.findall(r"\btuning:[a-z0-9_:]+", expr)}
    assert read <= recorded, sorted(read - recorded)


def test_every_alert_has_a_runbook_entry() -> None:
    headings = {
        line.removeprefix("### ").strip().lower()
        for line in RUNBOOKS.read_text().splitlines()
        if line.startswith("### ")
    }
    for group in rule()["spec"]["groups"]:
        for alert in (r for r in group["rules"] if "alert" in r):
            url = alert["annotations"]["runbook_url"]
            anchor = url.partition("#")[2]
            assert url.startswith("docs/operations.md#"), alert["alert"]
            assert anchor in headings, f"{alert['alert']}: no '### {anchor}' in docs/operations.md"
            assert alert["labels"]["severity"] in {"page", "ticket", "info"}, alert["alert"]


def test_the_dashboard_is_grafana_json_with_a_panel_per_signal() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    titles = [p["title"] for p in dashboard["panels"]]
    assert dashboard["uid"] == "tuning-platform" and len(set(titles)) == len(titles)
    read = " ".join(expressions())
    # What issue 19 asks the dashboard to show, each by the metric that carries it.
    for metric in (
        "tuning_rpcs_total",
        "tuning_rpc_duration_seconds_bucket",
        "tuning_queue_depth",
        "tuning_oldest_queued_job_age_seconds",
        "tuning_upstream_requests_total",
        "tuning_upstream_request_duration_seconds_bucket",
        "tuning_token_refreshes_total",
        "tuning_status_cache_age_seconds",
        "tuning_lease_losses_total",
        "tuning_dead_letters_total",
    ):
        assert metric in read, metric
