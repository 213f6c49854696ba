"""Grafana dashboards and provisioning: current with their generator, valid against Grafana's
dashboard format, every PromQL expression parses (promtool, when installed, and a PromQL
parser), and every metric a panel reads is one a service declares."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from _metric_catalog import declared_series, metric_names, missing_modules

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
PROVISIONING = GRAFANA / "provisioning"
RULE_FILES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
PANEL_TYPES = {"row", "timeseries", "stat", "gauge", "bargauge", "table", "heatmap", "text"}
# What issue 6 asks the two dashboards to show, by words in panel titles.
SRE_TOPICS = ("events consumed", "consumer lag", "event to route", "dead-letter", "cpu", "memory")
SUPERVISOR_TOPICS = ("stress", "flags", "waiting conversations", "wait", "senior occupancy", "assignments")


def _dashboard(name: str) -> dict:
    return json.loads((GRAFANA / "dashboards" / name).read_text())


def _targets(dashboard: dict) -> list[dict]:
    return [t for p in dashboard["panels"] if p["type"] != "row" for t in p["targets"]]


def _as_promql(expr: str) -> str:
    """Grafana's interval variables are not PromQL: give them a value before parsing."""
    return re.sub(r"\$__(rate_interval|interval|range)", "5m", expr)


def test_dashboards_are_current_with_their_generator() -> None:
    result = subprocess.run(
        [sys.executable, str(GRAFANA / "build_dashboards.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_there_is_an_sre_and_a_supervisor_dashboard() -> None:
    assert {p.name for p in DASHBOARDS} == {"cctriage-sre.json", "cctriage-supervisor.json"}
    for name, topics in (("cctriage-sre.json", SRE_TOPICS), ("cctriage-supervisor.json", SUPERVISOR_TOPICS)):
        titles = " | ".join(p["title"].lower() for p in _dashboard(name)["panels"])
        for topic in topics:
            assert topic in titles, f"{name} has no panel about {topic!r}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_follows_the_grafana_format(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", dashboard["uid"])
    assert dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    occupied: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        assert panel["type"] in PANEL_TYPES, panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                 for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "cctriage-prometheus", panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert panel["targets"] and len(ref_ids) == len(set(ref_ids)), panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_target_parses_as_promql(path: Path) -> None:
    for target in _targets(json.loads(path.read_text())):
        try:
            metric_names(_as_promql(target["expr"]))
        except ValueError as exc:
            pytest.fail(f"{target['expr']!r}: {exc}")


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing: apt-get install prometheus")
def test_promtool_accepts_every_target(tmp_path: Path) -> None:
    """promtool is Prometheus' own parser: check every expression as a recording rule."""
    rules = [
        {"record": f"dashboard:check:{i}", "expr": _as_promql(t["expr"])}
        for i, t in enumerate(t for path in DASHBOARDS for t in _targets(json.loads(path.read_text())))
    ]
    rule_file = tmp_path / "dashboard-exprs.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(["promtool", "check", "rules", str(rule_file)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout


def test_the_promql_check_rejects_a_broken_expression() -> None:
    with pytest.raises(ValueError):
        metric_names(_as_promql("sum(rate(cctriage_triage_events_total[$__rate_interval])"))


def test_panels_only_read_declared_metrics() -> None:
    if missing_modules():
        pytest.skip(f"service metrics modules not built yet: {missing_modules()}")
    recorded = {
        rule["record"]
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    known = declared_series() | recorded
    for path in DASHBOARDS:
        for target in _targets(json.loads(path.read_text())):
            unknown = metric_names(_as_promql(target["expr"])) - known
            assert not unknown, f"{path.name}: {target['expr']!r} reads undeclared {sorted(unknown)}"


def test_provisioning_points_at_the_dashboards_and_the_datasource_uid() -> None:
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    assert [d["uid"] for d in datasources["datasources"]] == ["cctriage-prometheus"]
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "cctriage.yml").read_text())["providers"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{providers[0]['options']['path']}:ro" in mounts
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
