"""The monitoring files shipped in deploy/ against the real tools and the real metrics:
promtool checks the alert rules and runs their unit tests, lints a live /metrics page,
and checks every dashboard query; every metric the rules and the dashboard name is one
the gateway exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support import REPO, basic_header, event_body

DEPLOY = REPO / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "opennsps-dashboard.json"
METRIC_NAME = re.compile(r"\b(opennsps_[a-z_]+)")
SUFFIXES = ("_bucket", "_sum", "_count")


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.fail("promtool is not installed: `make test` installs the Debian package prometheus")
    return subprocess.run(
        ["promtool", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=RULES.parent,
        check=False,
    )


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert queries and all(q.strip() for q in queries)
    return queries


def rule_queries() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def test_the_alert_rules_are_valid_and_fire_as_their_tests_say() -> None:
    checked = promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    # promtool checks expressions as recording rules; the dashboard's $instance variable
    # stands for a regular expression.
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{n}", "expr": q.replace("$instance", ".*")}
                    for n, q in enumerate(dashboard_queries())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules))
    checked = promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24


def test_the_metrics_page_passes_promtool_and_has_every_metric_the_files_name(
    gateway: str,
) -> None:
    httpx.post(f"{gateway}/espf/events", json=event_body(1), headers=basic_header())
    text = httpx.get(f"{gateway}/metrics", timeout=10).text
    linted = promtool("check", "metrics", stdin=text)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    exported = {
        line.split()[2] for line in text.splitlines() if line.startswith("# TYPE opennsps_")
    }
    named = {
        name
        for query in [*rule_queries(), *dashboard_queries()]
        for name in METRIC_NAME.findall(query)
    }
    for name in named:
        base = next((name[: -len(s)] for s in SUFFIXES if name.endswith(s)), name)
        assert name in exported or base in exported, f"{name} is not exported"
