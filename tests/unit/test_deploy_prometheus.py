"""deploy/prometheus: alert rules pass `promtool check rules` and their unit tests, every alert
the operating guide promises exists and is tested firing, and every metric a rule reads is one
a service declares.

promtool comes from Debian's `prometheus` package (.ci/run installs it on a fresh machine).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from _metric_catalog import declared_series, metric_names, missing_modules

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
TEST_FILES = sorted((PROM / "tests").glob("*.yml"))
K8S = ROOT / "deploy" / "k8s"

# What issue 6 asks an SRE to be woken for, by alert name.
REQUIRED_ALERTS = {
    "CctriageConsumerLagGrowing",  # consumer lag growing
    "CctriageEventToRouteSlow",  # event-to-route p99 over its 100 ms objective
    "CctriageDeadLetterRateHigh",  # dead-letter rate
    "CctriageStressedCustomerWaiting",  # stressed customers waiting longer than N seconds
    "CctriageStressedCustomerStillWaiting",  # ... and still waiting in the queue
    "CctriageNoSeniorAgentAvailable",  # no senior agent available
    "CctriageModelErrors",  # model errors
    "CctriageTriageWorkerDown",  # a worker down (up == 0)
    "CctriageTriageWorkersAbsent",  # ... or absent
    "CctriageRoutingDown",
}

promtool = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    promtool is None, reason="promtool missing: apt-get install prometheus (.ci/run does it)"
)


def _rules() -> list[dict]:
    return [rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"]]


def _alerts() -> dict[str, dict]:
    return {rule["alert"]: rule for rule in _rules() if "alert" in rule}


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120, cwd=PROM)


@needs_promtool
def test_promtool_checks_the_rule_files() -> None:
    result = _run("check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_unit_tests_pass() -> None:
    result = _run("test", "rules", *map(str, TEST_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_unit_tests_fail_when_a_threshold_moves(tmp_path: Path) -> None:
    """The unit tests pin behaviour: moving the objective from 100 ms to 300 ms breaks them."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    for path in RULE_FILES:
        text = path.read_text().replace("p99_5m > 0.1", "p99_5m > 0.3")
        (tmp_path / "rules" / path.name).write_text(text)
    for path in TEST_FILES:
        shutil.copy(path, tmp_path / "tests" / path.name)
    result = _run("test", "rules", *map(str, sorted((tmp_path / "tests").glob("*.yml"))))
    assert result.returncode != 0
    assert "CctriageEventToRouteSlow" in result.stdout + result.stderr


@needs_promtool
def test_compose_prometheus_config_is_valid() -> None:
    result = _run("check", "config", "prometheus.compose.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_promised_alerts_exist() -> None:
    assert REQUIRED_ALERTS <= set(_alerts())


def test_every_alert_is_unit_tested_firing() -> None:
    fired: set[str] = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    fired.add(check["alertname"])
    assert set(_alerts()) - fired == set()


def test_every_alert_has_a_severity_summary_and_description() -> None:
    for name, rule in _alerts().items():
        assert rule["labels"]["severity"] in ("page", "ticket"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


# Metrics an alert needs that no service declares yet, with who should add them. The alert is
# kept (and unit-tested) so it works the day the metric lands; the test below fails then, so
# that this list is emptied rather than left to rot.
PENDING_METRICS: dict[str, str] = {}


def test_rules_only_read_declared_metrics() -> None:
    if missing_modules():
        pytest.skip(f"service metrics modules not built yet: {missing_modules()}")
    declared = declared_series()
    known = declared | {rule["record"] for rule in _rules() if "record" in rule} | set(PENDING_METRICS)
    for rule in _rules():
        unknown = metric_names(rule["expr"]) - known
        assert not unknown, f"{rule.get('alert') or rule.get('record')} reads undeclared {sorted(unknown)}"
    assert not set(PENDING_METRICS) & declared, "a pending metric landed: remove it from PENDING_METRICS"


def test_alert_jobs_match_the_scrape_jobs() -> None:
    """Rules select job="cctriage-triage"/"cctriage-routing": compose names its jobs so, and
    Kubernetes takes the job from the pods' app.kubernetes.io/name."""
    compose = yaml.safe_load((PROM / "prometheus.compose.yml").read_text())
    compose_jobs = {job["job_name"] for job in compose["scrape_configs"]}
    k8s_apps = {
        doc["metadata"]["labels"]["app.kubernetes.io/name"]
        for path in K8S.glob("*.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc["kind"] == "Deployment"
    }
    for job in ("cctriage-triage", "cctriage-routing"):
        assert job in compose_jobs
        assert job in k8s_apps
    kubernetes = yaml.safe_load((PROM / "prometheus.kubernetes.yml").read_text())
    relabels = kubernetes["scrape_configs"][0]["relabel_configs"]
    assert {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
            "action": "replace", "target_label": "job"} in relabels
