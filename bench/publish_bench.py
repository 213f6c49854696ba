"""Publishing benchmark: what validation and cctriage-publish cost, against baselines in the same run.

Run: ``.venv/bin/python bench/publish_bench.py [--events 5000] [--repeats 3]``.

1. Decoding per event, in one process: ``cctriage_common.events.decode_json`` (field checks,
   json_format, every rule) against bare ``json_format.Parse``; ``decode_protobuf`` (what the
   triage worker runs on every Kafka value) against bare ``SupportEvent.FromString``.
2. Publishing through a real embedded broker: the ``cctriage-publish`` command on a JSON-lines
   file (process start, validation, per-line report, acks=all) and the Python client's
   ``publish_many`` on dicts (validation, serialization, acks=all, idempotent), against a bare
   kafka-python producer sending the same events already serialized, with the same producer
   settings (the shared ``cctriage_common.kafka`` ones: acks=all, idempotent, batch size).

Realistic events: the mix of a contact centre (opened, customer and agent messages of about 20
to 60 words, agent joined, closed) over many conversations. Prints a table and writes
``bench/results/publish_bench.json``. Figures are medians of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cctriage.events.v1 import events_pb2
from cctriage_common.broker import BrokerSettings, kafka_broker
from cctriage_common.events import decode_json, decode_protobuf
from cctriage_common.kafka import KafkaSettings, kafka_python_producer_config
from cctriage_common.settings import load
from cctriage_common.topics import create_topics
from google.protobuf import json_format

RESULTS = Path(__file__).resolve().parent / "results" / "publish_bench.json"

_CUSTOMER = [
    "I was charged twice for the same subscription this month and nobody answers my emails.",
    "my internet has been down since Monday morning and I work from home, this is costing me money",
    "Thanks, that fixed it. Have a good day!",
    "This is the third time I'm writing. Cancel my account if you can't fix it today.",
    "Could you tell me when the engineer will arrive? I need to plan around it.",
    "The refund you promised last Friday never reached my account. I want to speak to a manager.",
]
_AGENT = [
    "I'm sorry about that, let me look into your account right away.",
    "I can see the duplicate charge and I'm refunding it now; it takes 3-5 working days.",
    "Could you confirm the postcode of the installation address?",
]


def make_events(count: int, seed: int = 11) -> list[dict]:
    rng = random.Random(seed)
    events: list[dict] = []
    conversation = 0
    while len(events) < count:
        conversation += 1
        base = {
            "conversationId": f"conv-{conversation:06d}",
            "tenantId": "acme-telecom",
            "queue": rng.choice(["billing", "technical-support", "retention"]),
            "channel": rng.choice(["CHANNEL_CHAT", "CHANNEL_EMAIL", "CHANNEL_VOICE", "CHANNEL_SOCIAL"]),
            "customer": {
                "customerId": f"cus-{rng.randrange(10**6):06d}",
                "tier": "CUSTOMER_TIER_STANDARD",
                "language": "en-GB",
            },
            "source": "bench",
        }
        turns = [{"conversationOpened": {"subject": "billing question", "requiredSkills": ["billing"]}}]
        turns.append({"agentJoined": {"agentId": f"agt-{rng.randrange(100):03d}"}})
        for turn in range(rng.randrange(2, 9)):
            if turn % 2 == 0:
                turns.append(
                    {
                        "messagePosted": {
                            "messageId": f"m-{turn}",
                            "authorRole": "AUTHOR_ROLE_CUSTOMER",
                            "text": rng.choice(_CUSTOMER),
                        }
                    }
                )
            else:
                turns.append(
                    {
                        "messagePosted": {
                            "messageId": f"m-{turn}",
                            "authorRole": "AUTHOR_ROLE_AGENT",
                            "authorId": "agt-001",
                            "text": rng.choice(_AGENT),
                        }
                    }
                )
        turns.append({"conversationClosed": {"reason": "CLOSE_REASON_RESOLVED"}})
        for index, payload in enumerate(turns):
            events.append(
                {
                    "eventId": f"evt-{conversation:06d}-{index:02d}",
                    **base,
                    "occurredAt": f"2026-11-20T10:{index:02d}:00Z",
                    **payload,
                }
            )
    return events[:count]


def rates(pairs: dict[str, tuple], repeats: int) -> dict[str, float]:
    """Median items per second of each (fn, items); the candidates alternate within each repeat,
    so that load from other processes on this shared machine hits them alike."""
    measured: dict[str, list[float]] = {name: [] for name in pairs}
    for _ in range(repeats):
        for name, (fn, items) in pairs.items():
            started = time.perf_counter()
            for item in items:
                fn(item)
            measured[name].append(len(items) / (time.perf_counter() - started))
    return {name: statistics.median(values) for name, values in measured.items()}


def decoding(events: list[dict], repeats: int) -> dict[str, float]:
    lines = [json.dumps(e) for e in events]
    blobs = [decode_json(line).event.SerializeToString() for line in lines]
    assert all(decode_protobuf(b).ok for b in blobs)
    return rates(
        {
            "json_format_parse_per_s": (
                lambda line: json_format.Parse(line, events_pb2.SupportEvent()),
                lines,
            ),
            "decode_json_per_s": (decode_json, lines),
            "from_string_per_s": (events_pb2.SupportEvent.FromString, blobs),
            "decode_protobuf_per_s": (decode_protobuf, blobs),
        },
        repeats,
    )


def publishing(events: list[dict], repeats: int) -> dict[str, float]:
    from kafka import KafkaProducer

    cli = Path(sys.executable).parent / "cctriage-publish"
    blobs = [
        (e["conversationId"].encode(), decode_json(e).event.SerializeToString(deterministic=True))
        for e in events
    ]
    from cctriage_publish.client import SupportEventPublisher

    cli_rates, raw_rates, client_rates = [], [], []
    # The bare producer gets the same settings the client builds on: the shared ones, with
    # kafka-python's own idempotence default.
    bare_config = kafka_python_producer_config(load(KafkaSettings), "bench-bare")
    del bare_config["enable_idempotence"]
    with kafka_broker() as bootstrap, tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        path.write_text("".join(json.dumps(e) + "\n" for e in events))
        for run in range(repeats):
            topic = f"bench-cli-{run}-{os.getpid()}"
            create_topics(bootstrap, [(topic, 8, {})])
            started = time.perf_counter()
            proc = subprocess.run(
                [str(cli), str(path), "--bootstrap-servers", bootstrap, "--topic", topic, "--errors-only"],
                capture_output=True,
                timeout=600,
            )
            elapsed = time.perf_counter() - started
            if proc.returncode != 0:
                raise SystemExit(f"cctriage-publish failed: {proc.stdout[-500:]!r} {proc.stderr[-500:]!r}")
            cli_rates.append(len(events) / elapsed)

            topic = f"bench-raw-{run}-{os.getpid()}"
            create_topics(bootstrap, [(topic, 8, {})])
            started = time.perf_counter()
            producer = KafkaProducer(**dict(bare_config, bootstrap_servers=bootstrap))
            futures = [producer.send(topic, key=key, value=value) for key, value in blobs]
            producer.flush()
            for future in futures:
                future.get()
            producer.close()
            raw_rates.append(len(events) / (time.perf_counter() - started))

            topic = f"bench-client-{run}-{os.getpid()}"
            create_topics(bootstrap, [(topic, 8, {})])
            with SupportEventPublisher(bootstrap, topic) as publisher:
                started = time.perf_counter()
                results = publisher.publish_many(events)
                client_rates.append(len(events) / (time.perf_counter() - started))
            assert all(r.status == "published" for r in results)
    return {
        "producer_batch_size": bare_config["batch_size"],
        "python_client_publish_many_per_s": statistics.median(client_rates),
        "cctriage_publish_cli_per_s": statistics.median(cli_rates),
        "bare_kafka_python_producer_per_s": statistics.median(raw_rates),
    }


def run(events_count: int = 5000, repeats: int = 5) -> dict:
    """Measure decoding and publishing; what ``main`` prints and writes (bench/run_all.py calls it)."""
    events = make_events(events_count)
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "broker": os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        or f"embedded {load(BrokerSettings).embedded_broker}",
        "events": len(events),
        "mean_json_bytes": round(statistics.mean(len(json.dumps(e)) for e in events)),
        "decoding": decoding(events, repeats),
        "publishing": publishing(events, repeats),
        "repeats": repeats,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    result = run(args.events, args.repeats)
    d, p = result["decoding"], result["publishing"]
    rows = [
        (
            "decode_json (all rules)",
            d["decode_json_per_s"],
            "json_format.Parse",
            d["json_format_parse_per_s"],
        ),
        (
            "decode_protobuf (all rules)",
            d["decode_protobuf_per_s"],
            "SupportEvent.FromString",
            d["from_string_per_s"],
        ),
        (
            "client.publish_many (dicts)",
            p["python_client_publish_many_per_s"],
            "bare KafkaProducer",
            p["bare_kafka_python_producer_per_s"],
        ),
        (
            "cctriage-publish (process, report)",
            p["cctriage_publish_cli_per_s"],
            "bare KafkaProducer",
            p["bare_kafka_python_producer_per_s"],
        ),
    ]
    print(
        f"{result['events']} events, mean {result['mean_json_bytes']} JSON bytes, median of {args.repeats}, "
        f"{result['broker']}, producer batch_size {p['producer_batch_size']}"
    )
    print(f"{'measured':38} {'events/s':>10}   {'baseline':26} {'events/s':>10}  ratio")
    for name, value, base_name, base in rows:
        print(f"{name:38} {value:10,.0f}   {base_name:26} {base:10,.0f}  {value / base:5.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
