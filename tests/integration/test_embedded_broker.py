"""The embedded broker's lifecycle: ready means it answers Kafka, stop frees the port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from cctriage_common.broker import (
    BROKER_KINDS,
    BrokerError,
    BrokerSettings,
    EmbeddedBroker,
    api_versions,
    free_port,
    kafka_broker,
    wait_until_ready,
)
from cctriage_common.topics import ALL, SUPPORT_EVENTS
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient


def test_an_open_port_that_does_not_speak_kafka_is_not_ready():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        accepted: list[socket.socket] = []
        threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
        with pytest.raises(BrokerError, match="did not answer ApiVersions"):
            wait_until_ready("127.0.0.1", port, timeout_s=1.5)
        for conn in accepted:
            conn.close()


@pytest.mark.parametrize("kind", BROKER_KINDS)
def test_each_broker_answers_kafka_and_frees_its_port_on_stop(kind, tmp_path):
    broker = EmbeddedBroker(kind, data_dir=tmp_path).start()
    try:
        versions = api_versions(broker.host, broker.port)
        assert {0, 1, 3, 19} <= versions.keys()  # Produce, Fetch, Metadata, CreateTopics
        process = broker.process
    finally:
        broker.stop()
    assert process.returncode is not None
    with socket.socket() as probe:  # nothing listens any more
        assert probe.connect_ex(("127.0.0.1", broker.port)) != 0


def test_external_kafka_is_used_as_is_and_nothing_starts():
    with kafka_broker(BrokerSettings(bootstrap_servers="kafka-1:9092,kafka-2:9092")) as bootstrap:
        assert bootstrap == "kafka-1:9092,kafka-2:9092"


def test_cli_runs_until_sigterm_then_exits_cleanly(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    cli = subprocess.Popen(
        [sys.executable, "-m", "cctriage_common.broker", "--port", str(port), "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        line = ""
        while not line.startswith("KAFKA_BOOTSTRAP_SERVERS=") and time.monotonic() < deadline:
            line = cli.stdout.readline()
        assert line.strip() == f"KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{port}"
        api_versions("127.0.0.1", port)
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(15) == 0
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait(5)


def _child_pids() -> set[int]:
    """Pids whose parent is this test process (from /proc: no library needed)."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():
            children.add(int(stat.parent.name))
    return children


def test_kafka_bootstrap_servers_points_every_tool_at_an_external_kafka(tmp_path, monkeypatch):
    # A real broker started here, on its own port, stands in for the external Kafka. With only
    # the environment variable set, nothing else may start a broker, and the topics CLI and the
    # publishing CLI must both land on that one.
    with EmbeddedBroker(data_dir=tmp_path / "external") as external:
        prefix = f"ext-{uuid.uuid4().hex[:8]}."
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": external.bootstrap, "CCTRIAGE_TOPIC_PREFIX": prefix}
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", external.bootstrap)

        before = _child_pids()
        with kafka_broker() as bootstrap:
            assert bootstrap == external.bootstrap
            assert _child_pids() == before, "an embedded broker was started anyway"

        port = free_port()
        broker_cli = subprocess.run(
            [
                sys.executable,
                "-m",
                "cctriage_common.broker",
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert broker_cli.returncode == 0, broker_cli.stderr
        assert "not starting an embedded broker" in broker_cli.stdout + broker_cli.stderr
        assert "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1" not in broker_cli.stdout

        topics_cli = subprocess.run(
            [sys.executable, "-m", "cctriage_common.topics", "create"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert topics_cli.returncode == 0, topics_cli.stderr
        admin = KafkaAdminClient(bootstrap_servers=external.bootstrap)
        try:
            on_external = {name for name in admin.list_topics() if name.startswith(prefix)}
        finally:
            admin.close()
        assert on_external == {prefix + spec.name for spec in ALL}

        example = Path(__file__).resolve().parents[2] / "docs" / "examples" / "events.jsonl"
        publish_cli = subprocess.run(
            [sys.executable, "-m", "cctriage_publish", str(example)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert publish_cli.returncode == 0, publish_cli.stdout + publish_cli.stderr
        events = len(example.read_text().splitlines())
        consumer = KafkaConsumer(bootstrap_servers=external.bootstrap)
        try:
            topic = prefix + SUPPORT_EVENTS.name
            partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
            assert sum(consumer.end_offsets(partitions).values()) == events
        finally:
            consumer.close()
