"""cctriage-publish and the Python client against the real embedded broker.

The issue's must-hold: a file of 1,000 valid and 10 malformed events -> the 1,000 are on the
topic exactly once (consumed back and compared), the 10 are reported with their line numbers
and reasons, and the exit code is non-zero. The CLI runs as a subprocess, as a user runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cctriage.events.v1 import events_pb2
from cctriage_common.broker import free_port
from cctriage_common.events import decode_json
from cctriage_publish.client import PublisherError, SupportEventPublisher
from google.protobuf import json_format
from google.protobuf.internal import encoder
from kafka import KafkaConsumer, TopicPartition

CLI_TIMEOUT_S = 120


def cli_command() -> list[str]:
    script = Path(sys.executable).parent / "cctriage-publish"
    if script.exists():
        return [str(script)]
    found = shutil.which("cctriage-publish")
    return [found] if found else [sys.executable, "-m", "cctriage_publish"]


def run_cli(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None):
    full_env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    full_env.update(env or {})
    return subprocess.run(
        [*cli_command(), *args],
        input=stdin,
        capture_output=True,
        timeout=CLI_TIMEOUT_S,
        env=full_env,
    )


def make_event(conversation: int, turn: int) -> dict:
    """A realistic event in the JSON mapping; turn 0 opens, the rest alternate customer/agent."""
    base = {
        "eventId": f"evt-{conversation:03d}-{turn:03d}",
        "conversationId": f"conv-{conversation:03d}",
        "tenantId": "acme-telecom",
        "queue": "billing" if conversation % 2 else "technical-support",
        "channel": ["CHANNEL_CHAT", "CHANNEL_EMAIL", "CHANNEL_VOICE", "CHANNEL_SOCIAL"][conversation % 4],
        "customer": {
            "customerId": f"cus-{conversation:04d}",
            "tier": "CUSTOMER_TIER_STANDARD",
            "language": "en",
        },
        "occurredAt": f"2026-11-20T10:{conversation % 60:02d}:{turn % 60:02d}Z",
        "source": "it-test",
        "metadata": {"batch": "must-hold"},
    }
    if turn == 0:
        base["conversationOpened"] = {"subject": f"case {conversation}", "requiredSkills": ["billing"]}
    else:
        role = "AUTHOR_ROLE_CUSTOMER" if turn % 2 else "AUTHOR_ROLE_AGENT"
        base["messagePosted"] = {
            "messageId": f"m-{turn}",
            "authorRole": role,
            "text": f"message {turn} of conversation {conversation}: still waiting on my refund, ünïcödé ✓",
        }
    return base


# (line content, field the error must name) for the 10 malformed lines.
def malformed_lines() -> list[tuple[bytes, str]]:
    good = make_event(999, 1)
    lines = []

    def variant(field: str, **changes) -> None:
        event = json.loads(json.dumps(good))
        for key, value in changes.items():
            if value is None:
                event.pop(key, None)
            else:
                event[key] = value
        lines.append((json.dumps(event).encode(), field))

    lines.append((b'{"eventId": "evt-broken", "conversationId": ', "invalid JSON"))
    variant("event_id", eventId=None)
    variant("channel", channel="CHANNEL_FAX")
    variant("message_posted.text", messagePosted={"authorRole": "AUTHOR_ROLE_CUSTOMER", "text": 42})
    variant("eventID", eventID="x")
    variant("customer.language", customer={"customerId": "cus-1", "language": "english please"})
    variant("message_posted.author_role", messagePosted={"text": "hello"})
    variant("message_posted.text", messagePosted={"authorRole": "AUTHOR_ROLE_CUSTOMER", "text": "x" * 70_000})
    variant("occurred_at", occurredAt="2099-01-01T00:00:00Z")
    lines.append((b'{"eventId": "evt-bad-utf8", "text": "\xff\xfe"}', "UTF-8"))
    return lines


def consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 60.0) -> list:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest", group_id=None
    )
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
            if len(records) >= expected:
                # Read a little longer: anything beyond `expected` is a duplicate we must see.
                for batch in consumer.poll(timeout_ms=1500).values():
                    records.extend(batch)
                break
        return records
    finally:
        consumer.close()


def test_thousand_valid_and_ten_malformed_events_publish_exactly_once(tmp_path, kafka_topics):
    topic = kafka_topics.create(partitions=4, purpose="support-events")
    valid = [make_event(c, t) for c in range(50) for t in range(20)]
    bad = malformed_lines()
    # Spread the malformed lines through the file at known line numbers.
    lines: list[bytes] = []
    bad_at: dict[int, str] = {}
    bad_iter = iter(bad)
    for index, event in enumerate(valid):
        if index % 100 == 37:
            content, field = next(bad_iter)
            lines.append(content)
            bad_at[len(lines)] = field
        lines.append(json.dumps(event).encode())
    assert len(bad_at) == 10
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    proc = run_cli(str(path), "--bootstrap-servers", kafka_topics.bootstrap, "--topic", topic)

    assert proc.returncode == 1, proc.stderr.decode()
    report = proc.stdout.decode().splitlines()
    assert report[-1].startswith("1010 lines: 1000 published, 10 invalid, 0 failed")
    invalid = {int(r.split(":")[0].split()[1]): r for r in report if "INVALID" in r}
    assert set(invalid) == set(bad_at)
    for number, field in bad_at.items():
        assert field in invalid[number], (number, invalid[number])
    # The oversized text is reported by size, never echoed.
    assert "xxxxxxxx" not in proc.stdout.decode()

    records = consume_all(kafka_topics.bootstrap, topic, expected=1000)
    ids = [events_pb2.SupportEvent.FromString(r.value).event_id for r in records]
    assert len(ids) == 1000 and len(set(ids)) == 1000, "every valid event exactly once"
    expected = {e["eventId"]: e for e in valid}
    assert set(ids) == set(expected)
    by_conversation: dict[str, list[tuple[int, int, str]]] = {}
    for record in records:
        event = events_pb2.SupportEvent.FromString(record.value)
        assert json_format.MessageToDict(event) == expected[event.event_id], "payload survives unchanged"
        assert record.key == event.conversation_id.encode()
        assert dict(record.headers)["event-id"] == event.event_id.encode()
        by_conversation.setdefault(event.conversation_id, []).append(
            (record.partition, record.offset, event.event_id)
        )
    for conversation, seen in by_conversation.items():
        assert len({partition for partition, _, _ in seen}) == 1, f"{conversation} split across partitions"
        in_offset_order = [event_id for _, _, event_id in sorted(seen)]
        assert in_offset_order == sorted(in_offset_order), f"{conversation} out of order"
    assert len({r.partition for r in records}) > 1, "conversations spread over partitions"


def test_cli_reads_stdin_and_reports_json(kafka_topics):
    topic = kafka_topics.create(partitions=2, purpose="support-events")
    lines = [json.dumps(make_event(1, 0)), "", json.dumps(make_event(1, 1)), '{"eventId": "evt-x"}']
    proc = run_cli(
        "-",
        "--report",
        "json",
        "--topic",
        topic,
        stdin="\n".join(lines).encode(),
        env={"KAFKA_BOOTSTRAP_SERVERS": kafka_topics.bootstrap},
    )
    assert proc.returncode == 1, proc.stderr.decode()
    entries = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [e.get("line") for e in entries[:-1]] == [1, 3, 4]
    assert entries[0]["status"] == "published" and entries[0]["partition"] in (0, 1)
    assert entries[0]["partition"] == entries[1]["partition"], "one conversation, one partition"
    assert entries[1]["offset"] > entries[0]["offset"]
    assert entries[2]["status"] == "invalid"
    assert {"field": "conversation_id", "reason": "is required", "code": "missing_field"} in entries[2][
        "errors"
    ]
    summary = entries[-1]["summary"]
    assert summary["published"] == 2 and summary["invalid"] == 1 and summary["blank"] == 1
    assert summary["idempotent"] is True


def test_cli_publishes_length_delimited_protobuf(tmp_path, kafka_topics):
    topic = kafka_topics.create(partitions=2, purpose="support-events")
    events = [decode_json(make_event(2, turn)).event for turn in range(3)]
    missing_channel = decode_json(make_event(2, 3)).event
    missing_channel.ClearField("channel")
    blob = b""
    for event in [*events, missing_channel]:
        data = event.SerializeToString()
        blob += encoder._VarintBytes(len(data)) + data
    path = tmp_path / "events.pb"
    path.write_bytes(blob)

    proc = run_cli(
        str(path), "--format", "protobuf", "--bootstrap-servers", kafka_topics.bootstrap, "--topic", topic
    )

    assert proc.returncode == 1
    out = proc.stdout.decode().splitlines()
    assert out[3].startswith("record 4: evt-002-003: INVALID channel: is required")
    assert out[-1].startswith("4 records: 3 published, 1 invalid")
    records = consume_all(kafka_topics.bootstrap, topic, expected=3)
    assert sorted(r.value for r in records) == sorted(e.SerializeToString(deterministic=True) for e in events)


def test_live_feed_gets_results_as_they_land_and_sigterm_flushes_and_reports(kafka_topics):
    topic = kafka_topics.create(partitions=2, purpose="support-events")
    proc = subprocess.Popen(
        [*cli_command(), "-", "--bootstrap-servers", kafka_topics.bootstrap, "--topic", topic],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    watchdog = threading.Timer(60, proc.kill)  # readline() has no timeout: bound the test anyway
    watchdog.start()
    try:
        proc.stdin.write((json.dumps(make_event(8, 0)) + "\n" + json.dumps(make_event(8, 1)) + "\n").encode())
        proc.stdin.flush()
        # stdin stays open, as with `tail -f events.jsonl | cctriage-publish -`: results still come.
        first = [proc.stdout.readline().decode() for _ in range(2)]
        assert first[0].startswith("line 1: evt-008-000: OK partition")
        assert first[1].startswith("line 2: evt-008-001: OK partition")
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 1, "interrupted: not everything the feed had was published"
    assert out.decode().splitlines()[-1].startswith("2 lines: 2 published, 0 invalid, 0 failed")
    assert "interrupted after line 2" in err.decode()
    assert len(consume_all(kafka_topics.bootstrap, topic, expected=2)) == 2


def test_cli_exits_zero_when_every_line_is_published(kafka_topics):
    topic = kafka_topics.create(partitions=2, purpose="support-events")
    example = Path(__file__).resolve().parents[2] / "docs" / "examples" / "events.jsonl"
    proc = run_cli(str(example), "--bootstrap-servers", kafka_topics.bootstrap, "--topic", topic)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    lines = example.read_text().splitlines()
    assert proc.stdout.decode().splitlines()[-1].startswith(f"{len(lines)} lines: {len(lines)} published")


def test_cli_fails_clearly_when_topic_is_missing_and_does_not_create_it(kafka_topics):
    missing = kafka_topics.name("not-created")
    proc = run_cli(
        "-",
        "--bootstrap-servers",
        kafka_topics.bootstrap,
        "--topic",
        missing,
        stdin=json.dumps(make_event(3, 1)).encode(),
        env={"CCTRIAGE_PUBLISH_CONNECT_TIMEOUT_S": "3"},
    )
    assert proc.returncode == 2
    assert missing in proc.stderr.decode() and "cctriage-topics create" in proc.stderr.decode()
    consumer = KafkaConsumer(bootstrap_servers=kafka_topics.bootstrap)
    try:
        assert missing not in consumer.topics(), "the publisher must never auto-create its topic"
    finally:
        consumer.close()


def test_cli_fails_clearly_when_kafka_is_unreachable():
    port = free_port()
    proc = run_cli(
        "-",
        "--bootstrap-servers",
        f"127.0.0.1:{port}",
        stdin=json.dumps(make_event(3, 1)).encode(),
        env={"CCTRIAGE_PUBLISH_CONNECT_TIMEOUT_S": "2"},
    )
    assert proc.returncode == 2
    assert f"127.0.0.1:{port}" in proc.stderr.decode()


def test_client_publishes_objects_dicts_and_json_keyed_by_conversation(kafka_topics):
    topic = kafka_topics.create(partitions=4, purpose="support-events")
    as_proto = decode_json(make_event(5, 0)).event
    inputs = [
        as_proto,
        make_event(5, 1),
        json.dumps(make_event(5, 2)),
        {"eventId": "evt-half"},
        make_event(6, 1),
    ]
    with SupportEventPublisher(kafka_topics.bootstrap, topic) as publisher:
        assert publisher.idempotent, "the embedded broker supports the idempotent producer"
        results = publisher.publish_many(inputs, timeout=30)
        single = publisher.publish(make_event(5, 3), timeout=30)
    assert [r.status for r in results] == ["published", "published", "published", "invalid", "published"]
    assert len({r.partition for r in results[:3]} | {single.partition}) == 1, (
        "conversation conv-005 on one partition"
    )
    assert [r.offset for r in results[:3]] + [single.offset] == sorted(
        [r.offset for r in results[:3]] + [single.offset]
    )
    assert results[3].event_id == "evt-half"
    assert "conversation_id: is required" in results[3].reason
    records = consume_all(kafka_topics.bootstrap, topic, expected=5)
    assert sorted(events_pb2.SupportEvent.FromString(r.value).event_id for r in records) == sorted(
        ["evt-005-000", "evt-005-001", "evt-005-002", "evt-005-003", "evt-006-001"]
    )


def test_client_refuses_a_topic_that_does_not_exist(kafka_topics):
    with pytest.raises(PublisherError, match="cctriage-topics create"):
        SupportEventPublisher(kafka_topics.bootstrap, kafka_topics.name("absent"), connect_timeout_s=3)
