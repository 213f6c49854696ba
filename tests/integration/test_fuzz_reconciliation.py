"""Bad-input campaign (issue 7), end to end: reconciliation to the event with a real triage worker.

A real ``python -m cctriage_triage`` worker (real ONNX model) on the embedded broker, a real
routing server, and on the support-events topic a mixed stream:

- valid events of several conversations, interleaved, with event times going backwards,
  bot/agent messages, agent joins, a close for a conversation never seen, a second close,
  messages after the close;
- duplicates: the same record again, and the same event id with different content;
- the named nasty records of tests/fuzz_cases.py and random corruptions of valid events,
  produced as raw bytes straight to the topic (no CLI validation in the way);
- what ``cctriage-publish`` let through from a JSON-lines file full of nasty lines.

Then, to the event: every record published is either processed or dead-lettered, never both,
never twice. "Processed" is one of the worker's outcomes ``scored`` (a customer message, one
entry on the message-scores topic), ``applied`` (any other event, including a close of an
unknown conversation), ``duplicate`` (an event id the conversation has seen: dropped, not
scored again) or ``after_close`` (an event for a closed conversation: ignored). Dead-lettered
means one record on the dead-letter topic with the original key and bytes and ``dlq.*``
headers pointing back at the source offset. The worker answers /healthz throughout.

Sizes scale with FUZZ_CONVERSATIONS and FUZZ_RANDOM_INVALID (``make fuzz``).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import random
import re
import subprocess
import sys
import threading
import time

import fuzz_cases
import pytest
from cctriage.events.v1 import events_pb2
from cctriage.triage.v1 import triage_pb2
from cctriage_common.deadletter import Reason, parse_dead_letter
from cctriage_common.events import decode_protobuf
from cctriage_common.kafka import KafkaSettings, kafka_python_producer_config
from cctriage_common.topics import TopicSettings, ensure_topics
from cctriage_routing.testing import running_server
from fuzz_cases import leaked
from triage_support import CALM, ESCALATING, read_all, wait_for, worker_factory

pytestmark = pytest.mark.slow

PARTITIONS = 4
CONVERSATIONS = int(os.environ.get("FUZZ_CONVERSATIONS", "8"))
RANDOM_INVALID = int(os.environ.get("FUZZ_RANDOM_INVALID", "24"))
SEED = int(os.environ.get("FUZZ_SEED", "7"))
PROCESSED = ("scored", "applied", "duplicate", "after_close")
# Above this, a record's dead letter cannot carry it (it would be over the 1 MiB an event may be,
# and over a default Kafka topic's limit): key and value are left out, dlq.value_omitted says so.
# Only a broker that allows bigger records (the embedded one does) lets such a record in at all.
OVERSIZED = 1024 * 1024 - 2048
KNOWN_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*")


@dataclasses.dataclass
class Published:
    """One record on the support-events topic and what the worker must make of it."""

    name: str
    key: bytes | None
    value: bytes | None
    outcome: str = ""  # one of PROCESSED, or "dead_lettered"
    reason: str | None = None  # dlq.reason when dead-lettered
    field: str | None = None  # dlq.field when dead-lettered
    event_id: str = ""


def expected_outcomes(stream: list[Published]) -> None:
    """The worker's contract, written out: fills in ``outcome`` (and the dead-letter reason and
    field) for every record, in topic order per conversation."""
    seen: dict[str, set[str]] = collections.defaultdict(set)
    closed: set[str] = set()
    for record in stream:
        result = decode_protobuf(record.value or b"")
        if not result.ok:
            first = result.errors[0]
            # dlq.field: the known part of the path (customer for customer.<field 9>, metadata
            # for metadata["k"]); none when the event as a whole is at fault.
            known = KNOWN_PATH.match(first.field)
            record.outcome, record.reason = "dead_lettered", first.code
            record.field = known.group(0) if known else None
            continue
        event = result.event
        if record.key is not None and record.key != event.conversation_id.encode():
            record.outcome, record.reason, record.field = "dead_lettered", "key_mismatch", "conversation_id"
            continue
        record.event_id = event.event_id
        conversation = event.conversation_id
        kind = event.WhichOneof("payload")
        if event.event_id in seen[conversation]:
            record.outcome = "duplicate"
            continue
        seen[conversation].add(event.event_id)
        if conversation in closed and kind != "conversation_closed":
            record.outcome = "after_close"
        elif kind == "message_posted" and event.message_posted.author_role == events_pb2.AUTHOR_ROLE_CUSTOMER:
            record.outcome = "scored"
        else:
            record.outcome = "applied"
        if kind == "conversation_closed":
            closed.add(conversation)


def valid_stream(rng: random.Random) -> list[Published]:
    """Conversations interleaved at random (each in its own order), with the awkward cases."""
    queues = []
    start = time.time() - 3000  # the stream's clock: conversation n opens at start + n
    for number in range(CONVERSATIONS):
        cid = f"conv-{number:03d}-{rng.randrange(10**6)}"
        at = start + number
        texts = ESCALATING if number % 3 == 0 else CALM
        events = [fuzz_cases.event(cid, at=at, kind="opened")]
        for step, text in enumerate(texts):
            # Event times jump backwards now and then (late transcripts, clock skew): still valid.
            jitter = -rng.uniform(60, 600) if rng.random() < 0.3 else rng.uniform(1, 30)
            events.append(fuzz_cases.event(cid, at=at + 30 * step + jitter, kind="customer", text=text))
            if step == 1:
                events.append(
                    fuzz_cases.event(cid, at=at + 30 * step + 5, kind="agent", text="Let me check.")
                )
                events.append(fuzz_cases.event(cid, at=at + 30 * step + 6, kind="bot", text="Survey link"))
        events.append(fuzz_cases.event(cid, at=at + 400, kind="joined"))
        records = [Published("valid", cid.encode(), e.SerializeToString()) for e in events]
        # The same record again (a publisher retry), and the same id with other content.
        records.insert(
            rng.randrange(2, len(records)), Published("duplicate_record", records[1].key, records[1].value)
        )
        twin = events_pb2.SupportEvent()
        twin.CopyFrom(events[2])
        twin.message_posted.text = "A different text under a used event id."
        records.append(Published("duplicate_id_other_content", cid.encode(), twin.SerializeToString()))
        closing = fuzz_cases.event(cid, at=at + 500, kind="closed")
        records.append(Published("valid", cid.encode(), closing.SerializeToString()))
        late = fuzz_cases.event(cid, at=at + 510, kind="customer", text="Hello? Anyone there?")
        records.append(Published("message_after_close", cid.encode(), late.SerializeToString()))
        second = fuzz_cases.event(cid, at=at + 520, kind="closed")
        records.append(Published("second_close", cid.encode(), second.SerializeToString()))
        queues.append(collections.deque(records))
    # On the stream's clock, not the wall clock's: a close ~2,000 s ahead of the stream moved its
    # partition's stream time past the grace, and later openings there became late events.
    stranger = fuzz_cases.event(f"conv-never-seen-{rng.randrange(10**6)}", at=start + 300, kind="closed")
    queues.append(
        collections.deque(
            [
                Published(
                    "close_of_unknown_conversation",
                    stranger.conversation_id.encode(),
                    stranger.SerializeToString(),
                )
            ]
        )
    )
    stream = []
    while queues:
        queue = rng.choice(queues)
        stream.append(queue.popleft())
        if not queue:
            queues.remove(queue)
    return stream


def invalid_records(rng: random.Random) -> list[Published]:
    records = [Published(f"corpus:{case.name}", case.key, case.value) for case in fuzz_cases.protobuf_cases()]
    three_mb = fuzz_cases.event("conv-big", text="x" * 3_000_000).SerializeToString()
    records.append(Published("three_megabyte_text", b"conv-big", three_mb))
    while len(records) < len(fuzz_cases.protobuf_cases()) + 1 + RANDOM_INVALID:
        original = fuzz_cases.event(
            f"conv-mut-{rng.randrange(10**6)}", kind=rng.choice(["customer", "opened"])
        )
        data = fuzz_cases.mutate(original.SerializeToString(), rng)
        if not decode_protobuf(data).ok:  # a corruption that still decodes is just another event
            records.append(Published("random_corruption", original.conversation_id.encode(), data))
    return records


def publish_with_cli(bootstrap: str, prefix: str, tmp_path) -> list[tuple[int, int, str]]:
    """cctriage-publish on a file of valid and nasty JSON lines; (partition, offset, line kind)."""
    lines, kinds = [], []
    for number in range(6):
        document = fuzz_cases.json_event(conversationId=f"conv-cli-{number}")
        lines.append(json.dumps(document).encode())
        kinds.append("valid")
    for name, line, _field in fuzz_cases.json_cases():
        lines.insert(len(lines) // 2, line)
        kinds.insert(len(kinds) // 2, name)
    path = tmp_path / "nasty.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "CCTRIAGE_TOPIC_PREFIX": prefix}
    run = subprocess.run(
        [sys.executable, "-m", "cctriage_publish", "--report", "json", str(path)],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert run.returncode == 1, run.stderr.decode()
    assert b"Traceback" not in run.stderr and not leaked((run.stdout + run.stderr).decode(errors="replace"))
    rows = [json.loads(line) for line in run.stdout.decode().splitlines()]
    summary = rows.pop()["summary"]
    assert (summary["published"], summary["invalid"]) == (6, len(fuzz_cases.json_cases()))
    published = []
    for row in rows:
        kind = kinds[row["line"] - 1]
        assert row["status"] == ("published" if kind == "valid" else "invalid"), (kind, row)
        if row["status"] == "published":
            published.append((row["partition"], row["offset"], kind))
    return published


class HealthWatch(threading.Thread):
    """Polls /healthz every 200 ms; remembers every failure and whether the process exited."""

    def __init__(self, worker) -> None:
        super().__init__(daemon=True, name="healthz")
        self.worker = worker
        self.stopped = threading.Event()
        self.polls = 0
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.stopped.wait(0.2):
            self.polls += 1
            if self.worker.process.poll() is not None:
                self.failures.append(f"worker exited with {self.worker.process.returncode}")
                return
            try:
                status, _ = self.worker.get("/healthz")
            except OSError as exc:
                status = type(exc).__name__
            if status != 200:
                self.failures.append(str(status))

    def stop(self) -> None:
        self.stopped.set()
        self.join(5)


def test_mixed_stream_reconciles_to_the_event(kafka_bootstrap, kafka_topics, tmp_path):
    rng = random.Random(SEED)
    prefix = kafka_topics.prefix
    ensure_topics(
        kafka_bootstrap, prefix=prefix, settings=TopicSettings(prefix=prefix, partitions=PARTITIONS)
    )
    events_topic = f"{prefix}support-events"
    valid = valid_stream(rng)
    invalid = invalid_records(rng)
    stream = list(valid)
    for record in invalid:
        stream.insert(rng.randrange(len(stream) + 1), record)

    with (
        running_server(tmp_path) as target,
        worker_factory(kafka_bootstrap, prefix, tmp_path, target, partitions=PARTITIONS) as factory,
    ):
        worker = factory.start().wait_ready(120)
        health = HealthWatch(worker)
        health.start()
        try:
            from kafka import KafkaProducer
            from kafka.errors import MessageSizeTooLargeError

            producer = KafkaProducer(
                **kafka_python_producer_config(KafkaSettings(bootstrap_servers=kafka_bootstrap)),
                max_request_size=8 * 1024 * 1024,
            )
            by_source: dict[tuple[int, int], Published] = {}
            refused = []
            try:
                for record in stream:
                    try:
                        sent = producer.send(events_topic, key=record.key, value=record.value).get(30)
                    except MessageSizeTooLargeError:  # a Kafka with the default limit: never published
                        assert len(record.value) >= OVERSIZED, record.name
                        refused.append(record)
                        continue
                    by_source[(sent.partition, sent.offset)] = record
            finally:
                producer.close(10)
            for partition, offset, kind in publish_with_cli(kafka_bootstrap, prefix, tmp_path):
                by_source[(partition, offset)] = Published(f"cli:{kind}", None, None)
            # The CLI's records, as the worker reads them, join the expectation in topic order.
            cli_records = {
                (r.partition, r.offset): r
                for r in read_all(kafka_bootstrap, events_topic)
                if by_source.get((r.partition, r.offset), Published("", None, None)).name.startswith("cli:")
            }
            for source, record in cli_records.items():
                by_source[source].key, by_source[source].value = record.key, record.value
            ordered = [by_source[source] for source in sorted(by_source, key=lambda s: (s[0], s[1]))]
            expected_outcomes(ordered)
            expected = collections.Counter(record.outcome for record in by_source.values())
            published = len(by_source)
            dead = [source for source, record in by_source.items() if record.outcome == "dead_lettered"]

            def outcomes() -> collections.Counter:
                if worker.process.poll() is not None:
                    raise AssertionError(f"the worker died ({worker.process.returncode}):\n{worker.tail()}")
                return collections.Counter(
                    {
                        outcome: int(worker.metric("cctriage_triage_events_total", {"outcome": outcome}))
                        for outcome in (*PROCESSED, "dead_lettered")
                    }
                )

            # Bounded, and scaled for the long campaign (the worker scores ~40 messages/s here).
            budget = 120 + published / 5
            wait_for(
                lambda: sum(outcomes().values()) >= published, budget, 0.5, f"{published} events consumed"
            )
            letters = wait_for(
                lambda: len(d := read_all(kafka_bootstrap, f"{prefix}support-events-dlq")) >= len(dead) and d,
                60,
                0.5,
                f"{len(dead)} dead letters",
            )
            scored = wait_for(
                lambda: (
                    len(s := read_all(kafka_bootstrap, f"{prefix}message-scores")) >= expected["scored"] and s
                ),
                60,
                0.5,
                f"{expected['scored']} scores",
            )
            time.sleep(2)  # anything counted twice would show up by now
            counted = outcomes()
            assert worker.process.poll() is None and worker.ready()
        finally:
            health.stop()

        print(
            f"\nreconciliation: {len(refused)} refused by the broker, {published} published = "
            f"{dict(counted)}; {len(letters)} dead letters, {len(scored)} scores, "
            f"/healthz polled {health.polls} times"
        )
        # published == processed + dead-lettered, to the event, and each outcome as the contract says.
        assert sum(counted.values()) == published
        assert counted == expected, f"worker counted {dict(counted)}, the contract says {dict(expected)}"
        assert sum(counted[o] for o in PROCESSED) + counted["dead_lettered"] == published
        assert expected["duplicate"] >= 2 * CONVERSATIONS and expected["after_close"] == CONVERSATIONS
        assert expected["dead_lettered"] == len(invalid) - len(refused)

        # Every dead letter: one per invalid record, original key and bytes, reason and field.
        sources = collections.Counter()
        for letter in letters:
            headers = parse_dead_letter(letter.headers)
            source = (headers.source_partition, headers.source_offset)
            sources[source] += 1
            record = by_source[source]
            assert record.outcome == "dead_lettered", (record.name, headers)
            if len(record.value or b"") >= OVERSIZED:
                assert (letter.key, letter.value) == (None, b""), record.name
                assert ("dlq.value_omitted", b"too_large") in letter.headers
            else:
                assert (letter.key, letter.value) == (record.key, record.value), record.name
            assert (headers.reason.value, headers.field) == (record.reason, record.field), record.name
            for _, data in letter.headers:
                assert not leaked(data.decode("utf-8", "replace"))
        assert sorted(sources) == sorted(dead) and max(sources.values()) == 1, (
            "each invalid record exactly once"
        )
        named = {record.name: record for record in by_source.values() if record.name.startswith("corpus:")}
        for case in fuzz_cases.protobuf_cases():
            if f"corpus:{case.name}" in named:
                assert (named[f"corpus:{case.name}"].reason, named[f"corpus:{case.name}"].field) == (
                    case.reason,
                    case.field,
                ), case.name
        by_reason = collections.Counter(record.reason for record in by_source.values() if record.reason)
        for reason in Reason:
            assert (
                worker.metric("cctriage_triage_dead_letters_total", {"reason": reason.value})
                == by_reason[reason.value]
            ), reason

        # Scored exactly once each: duplicates and messages after the close never reach the model's output.
        scored_ids = [triage_pb2.MessageScore.FromString(r.value).event_id for r in scored]
        wanted = [record.event_id for record in by_source.values() if record.outcome == "scored"]
        assert sorted(scored_ids) == sorted(wanted)
        # Nor do they flag twice: every flag comes from a first-seen event, one flag per event.
        flag_events = [
            triage_pb2.ConversationFlag.FromString(r.value).event_id
            for r in read_all(kafka_bootstrap, f"{prefix}conversation-flags")
        ]
        first_seen = {
            record.event_id for record in by_source.values() if record.outcome in ("scored", "applied")
        }
        assert flag_events and len(flag_events) == len(set(flag_events)) and set(flag_events) <= first_seen

        assert health.polls > 10 and health.failures == [], health.failures
        log = worker.log_path.read_text(errors="replace")
        assert "Traceback" not in log and not leaked(log), worker.tail()
