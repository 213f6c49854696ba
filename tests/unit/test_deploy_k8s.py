"""deploy/k8s validates against the Kubernetes OpenAPI schemas and hangs together.

Schemas come bundled with kubernetes-validate (no download at run time). Strict mode rejects
unknown fields, so a misspelt probe or resource key fails here instead of being silently
dropped by the API server. The cross-reference checks catch what a schema cannot: a Service
selecting no pod, a ConfigMap that does not exist, a probe on a port nobody listens on.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

kubernetes_validate = pytest.importorskip("kubernetes_validate")

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
# The oldest version we support (native gRPC probes are GA since 1.27) and the newest bundled.
VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
BUILT_IN_GROUPS = ("v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v2")


def _load(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _base_files() -> list[Path]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [K8S / name for name in kustomization["resources"]]


def _base_resources() -> list[dict]:
    return [doc for path in _base_files() for doc in _load(path)]


def _all_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


def _by_kind(resources: list[dict], kind: str) -> dict[str, dict]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def test_kustomization_lists_every_base_manifest() -> None:
    listed = {p.name for p in _base_files()}
    on_disk = {p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml"}
    assert listed == on_disk


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", _all_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_built_in_resources_match_the_kubernetes_schema(path: Path, version: str) -> None:
    for resource in _load(path):
        if resource["apiVersion"] not in BUILT_IN_GROUPS:
            continue
        kubernetes_validate.validate(resource, version, strict=True)


def test_the_validator_rejects_a_misspelt_field() -> None:
    deployment = copy.deepcopy(_by_kind(_base_resources(), "Deployment")["cctriage-triage"])
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def test_every_namespaced_resource_is_in_the_cctriage_namespace() -> None:
    for resource in _base_resources():
        if resource["kind"] != "Namespace":
            assert resource["metadata"]["namespace"] == "cctriage", resource["metadata"]["name"]


def _pod_specs(resources: list[dict]) -> dict[str, dict]:
    specs = {}
    for resource in resources:
        if resource["kind"] in ("Deployment", "Job"):
            specs[resource["metadata"]["name"]] = resource["spec"]["template"]
    return specs


def test_every_container_has_requests_limits_and_runs_unprivileged() -> None:
    for name, template in _pod_specs(_base_resources()).items():
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        for container in spec["containers"]:
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), name
            assert {"cpu", "memory"} <= set(resources["limits"]), name
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name


def test_config_maps_referenced_by_pods_exist() -> None:
    resources = _base_resources()
    config_maps = set(_by_kind(resources, "ConfigMap"))
    for name, template in _pod_specs(resources).items():
        for container in template["spec"]["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps, name


def test_selectors_match_pod_labels() -> None:
    resources = _base_resources()
    pod_labels = [t["metadata"]["labels"] for t in _pod_specs(resources).values()]

    def selects_some_pod(selector: dict) -> bool:
        return any(selector.items() <= labels.items() for labels in pod_labels)

    for deployment in _by_kind(resources, "Deployment").values():
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    for service in _by_kind(resources, "Service").values():
        assert selects_some_pod(service["spec"]["selector"]), service["metadata"]["name"]
    for pdb in _by_kind(resources, "PodDisruptionBudget").values():
        assert selects_some_pod(pdb["spec"]["selector"]["matchLabels"]), pdb["metadata"]["name"]


def _container(name: str) -> dict:
    return _by_kind(_base_resources(), "Deployment")[name]["spec"]["template"]["spec"]["containers"][0]


def _port_number(container: dict, port: int | str) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p["name"] == port)


def test_routing_is_probed_with_the_grpc_health_protocol_on_its_grpc_port() -> None:
    container = _container("cctriage-routing")
    grpc_port = _port_number(container, "grpc")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == grpc_port, probe


def test_triage_readiness_is_readyz_and_liveness_is_healthz() -> None:
    container = _container("cctriage-triage")
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    port = _port_number(container, container["readinessProbe"]["httpGet"]["port"])
    assert port == int(_config("cctriage-triage")["TRIAGE_WEB_PORT"])


def _config(name: str) -> dict[str, str]:
    return _by_kind(_base_resources(), "ConfigMap")[name]["data"]


def test_scrape_annotations_name_a_port_the_container_listens_on() -> None:
    for name, template in _pod_specs(_base_resources()).items():
        annotations = template["metadata"].get("annotations", {})
        if annotations.get("prometheus.io/scrape") != "true":
            continue
        ports = {p["containerPort"] for c in template["spec"]["containers"] for p in c["ports"]}
        assert int(annotations["prometheus.io/port"]) in ports, name
    routing = _by_kind(_base_resources(), "Deployment")["cctriage-routing"]["spec"]["template"]
    assert routing["metadata"]["annotations"]["prometheus.io/port"] == _config("cctriage-routing")[
        "ROUTING_METRICS_PORT"
    ]


def test_routing_is_a_recreated_singleton_on_its_journal_volume() -> None:
    resources = _base_resources()
    routing = _by_kind(resources, "Deployment")["cctriage-routing"]
    assert routing["spec"]["replicas"] == 1
    assert routing["spec"]["strategy"]["type"] == "Recreate"
    claim = routing["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
    assert claim in _by_kind(resources, "PersistentVolumeClaim")
    journal_dir = str(Path(_config("cctriage-routing")["ROUTING_JOURNAL_PATH"]).parent)
    mounts = {m["mountPath"] for m in _container("cctriage-routing")["volumeMounts"]}
    assert journal_dir in mounts


def test_worker_autoscaling_never_exceeds_the_partition_count() -> None:
    partitions = int(_config("cctriage-common")["CCTRIAGE_TOPIC_PARTITIONS"])
    hpa = _by_kind(_base_resources(), "HorizontalPodAutoscaler")["cctriage-triage"]
    assert hpa["spec"]["scaleTargetRef"]["name"] in _by_kind(_base_resources(), "Deployment")
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["maxReplicas"] <= partitions
    for path in (K8S / "optional").glob("*.yaml"):
        for resource in _load(path):
            if resource["kind"] == "ScaledObject":
                assert resource["spec"]["maxReplicaCount"] <= partitions
                assert resource["spec"]["scaleTargetRef"]["name"] == "cctriage-triage"
                kafka = next(t for t in resource["spec"]["triggers"] if t["type"] == "kafka")
                assert kafka["metadata"]["topic"] == "support-events"
            if resource["kind"] == "HorizontalPodAutoscaler":
                assert resource["spec"]["maxReplicas"] <= partitions


def test_the_topics_job_runs_the_topics_cli() -> None:
    job = _by_kind(_base_resources(), "Job")["cctriage-topics"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["cctriage-topics", "create"]
