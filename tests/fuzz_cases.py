"""Named nasty inputs and generators for the bad-input campaign (issue 7).

Shared by tests/unit/test_fuzz_*.py (the validator, the worker's decode path, the CLI) and
tests/integration/test_fuzz_reconciliation.py (a real worker on the embedded broker).

Every case that carries customer-like content carries ``SECRET`` (message text, subject,
metadata values) or ``SECRET_ID`` (the customer id): a test fails if either shows up in an
error, a report, a dead-letter header or a log line.

``FUZZ_EXAMPLES`` (default 60) scales the hypothesis example counts; ``make fuzz`` raises it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import time
import uuid
from collections.abc import Callable

from cctriage.events.v1 import events_pb2
from cctriage.routing.v1 import routing_pb2
from cctriage.triage.v1 import triage_pb2
from cctriage_common import events as support_events
from google.protobuf.timestamp_pb2 import Timestamp

SECRET = "SECRET my card 4111 1111 and I am furious"
SECRET_ID = "cus-SECRETID-0042"
# Markers searched for in outputs: parts of the above that no reason or header could contain by chance.
LEAK_MARKERS = ("SECRET", "my card")

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))


def examples(share: float = 1.0) -> int:
    """Hypothesis example count for one test: ``share`` of FUZZ_EXAMPLES, at least 10."""
    return max(10, int(FUZZ_EXAMPLES * share))


def leaked(text: str) -> list[str]:
    return [marker for marker in LEAK_MARKERS if marker in text]


def timestamp(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def event(
    conversation_id: str = "conv-fuzz",
    event_id: str | None = None,
    at: float | None = None,
    kind: str = "customer",
    text: str = SECRET,
) -> events_pb2.SupportEvent:
    """A valid event of one kind: customer, agent, bot, opened, joined, closed."""
    message = events_pb2.SupportEvent(
        event_id=event_id or f"ev-{uuid.uuid4().hex}",
        conversation_id=conversation_id,
        tenant_id="acme",
        queue="billing",
        channel=events_pb2.CHANNEL_CHAT,
        source="fuzz",
        customer=events_pb2.Customer(
            customer_id=SECRET_ID, tier=events_pb2.CUSTOMER_TIER_STANDARD, language="en-GB"
        ),
        metadata={"campaign": SECRET},
    )
    message.occurred_at.CopyFrom(timestamp(time.time() - 600 if at is None else at))
    roles = {
        "customer": events_pb2.AUTHOR_ROLE_CUSTOMER,
        "agent": events_pb2.AUTHOR_ROLE_AGENT,
        "bot": events_pb2.AUTHOR_ROLE_BOT,
    }
    if kind in roles:
        message.message_posted.author_role = roles[kind]
        message.message_posted.text = text
        if kind != "customer":
            message.message_posted.author_id = "agent-7"
    elif kind == "opened":
        message.conversation_opened.subject = SECRET
        message.conversation_opened.required_skills.append("billing")
    elif kind == "joined":
        message.agent_joined.agent_id = "agent-7"
    elif kind == "closed":
        message.conversation_closed.reason = events_pb2.CLOSE_REASON_RESOLVED
    else:
        raise ValueError(kind)
    return message


def _changed(change: Callable[[events_pb2.SupportEvent], None], **kwargs) -> bytes:
    message = event(**kwargs)
    change(message)
    return message.SerializeToString()


def _replace_bytes(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1 and len(old) == len(new)
    return data.replace(old, new)


@dataclasses.dataclass(frozen=True)
class Case:
    """One Kafka record for the events topic, and what the triage worker must do with it.

    ``reason`` is the dead-letter reason (``dlq.reason``) and ``field`` the ``dlq.field``
    header (None: the event as a whole, e.g. not protobuf at all).
    """

    name: str
    key: bytes | None
    value: bytes | None
    reason: str
    field: str | None


def _case(
    name: str, value: bytes | None, reason: str, field: str | None, key: bytes | None = b"conv-fuzz"
) -> Case:
    return Case(name, key, value, reason, field)


def protobuf_cases() -> list[Case]:
    """Records that must be dead-lettered, each with the reason and field the worker must give."""
    good = event().SerializeToString()
    flag = triage_pb2.ConversationFlag(
        flag_id="conv-fuzz/7", conversation_id="conv-fuzz", sequence=7, stress=0.93, stressed=True
    )
    score = triage_pb2.MessageScore(event_id="ev-1", conversation_id="conv-fuzz", stress=0.5, negative=0.7)
    route = routing_pb2.RouteConversationRequest(conversation_id="conv-fuzz")
    text_marker = event(text="XXXXXXXXXXXX").SerializeToString()
    id_marker = event(event_id="ev-YYYYYYYY").SerializeToString()
    many_metadata = {f"k{i}": "v" for i in range(support_events.MAX_METADATA_ENTRIES + 1)}
    huge_metadata = {f"key-{i:05d}": SECRET * 10 for i in range(10_000)}
    return [
        _case("random_bytes", b"\xff\x00 not protobuf at all \x80\x80", "undecodable", None),
        _case(
            "truncated_inside_text", good[: good.rindex(SECRET.encode()) + 5], "undecodable", "message_posted"
        ),
        _case("truncated_inside_a_length", good[:1] + b"\x80", "undecodable", "event_id"),
        _case("length_prefix_past_the_end", b"\x0a\xff\xff\xff\xff\x0f", "undecodable", "event_id"),
        _case("deprecated_group_wire_type", b"\x0b" * 64, "undecodable", "event_id"),
        _case(
            "json_on_the_protobuf_topic",
            json.dumps({"eventId": "ev-1", "text": SECRET}).encode(),
            "undecodable",
            None,
        ),
        _case("empty_value", b"", "undecodable", None),
        _case("tombstone_null_value", None, "undecodable", None),
        _case("conversation_flag_bytes", flag.SerializeToString(), "invalid_field", None),
        _case("message_score_bytes", score.SerializeToString(), "invalid_field", None),
        _case("routing_request_bytes", route.SerializeToString(), "missing_field", "event_id"),
        _case(
            "invalid_utf8_in_text",
            _replace_bytes(text_marker, b"XXXXXXXXXXXX", b"\xff\xfe\xfd" * 4),
            "undecodable",
            "message_posted.text",
        ),
        _case(
            "invalid_utf8_in_event_id",
            _replace_bytes(id_marker, b"YYYYYYYY", b"\xc3\x28" * 4),
            "undecodable",
            "event_id",
        ),
        _case(
            "nul_in_text",
            event(text="hello\x00" + SECRET).SerializeToString(),
            "invalid_field",
            "message_posted.text",
        ),
        _case(
            "control_character_in_event_id",
            event(event_id="ev-\x07bell").SerializeToString(),
            "invalid_field",
            "event_id",
        ),
        _case("missing_event_id", _changed(lambda e: e.ClearField("event_id")), "missing_field", "event_id"),
        _case(
            "missing_conversation_id",
            _changed(lambda e: e.ClearField("conversation_id")),
            "missing_field",
            "conversation_id",
            key=b"",
        ),
        _case(
            "missing_occurred_at",
            _changed(lambda e: e.ClearField("occurred_at")),
            "missing_field",
            "occurred_at",
        ),
        _case(
            "text_of_one_megabyte",
            event(text="é" * 500_000).SerializeToString(),
            "too_large",
            "message_posted.text",
        ),
        _case(
            "unknown_channel_number",
            _changed(lambda e: setattr(e, "channel", 99)),
            "invalid_field",
            "channel",
        ),
        _case(
            "negative_author_role",
            _changed(lambda e: setattr(e.message_posted, "author_role", -7)),
            "invalid_field",
            "message_posted.author_role",
        ),
        _case(
            "unknown_close_reason",
            _changed(lambda e: setattr(e.conversation_closed, "reason", 17), kind="closed"),
            "invalid_field",
            "conversation_closed.reason",
        ),
        _case(
            "unknown_customer_tier",
            _changed(lambda e: setattr(e.customer, "tier", 9)),
            "invalid_field",
            "customer.tier",
        ),
        _case(
            "no_payload", _changed(lambda e: e.ClearField("message_posted")), "unsupported_event", "payload"
        ),
        _case(
            "too_many_metadata_entries",
            _changed(lambda e: e.metadata.update(many_metadata)),
            "too_large",
            "metadata",
        ),
        _case("very_long_metadata", _changed(lambda e: e.metadata.update(huge_metadata)), "too_large", None),
        _case(
            "metadata_value_over_limit",
            _changed(lambda e: e.metadata.update({"note": SECRET * 100})),
            "too_large",
            "metadata",
        ),
        _case(
            "occurred_at_in_the_future",
            _changed(lambda e: e.occurred_at.CopyFrom(timestamp(time.time() + 86_400))),
            "invalid_field",
            "occurred_at",
        ),
        _case(
            "occurred_at_in_1970",
            _changed(lambda e: e.occurred_at.CopyFrom(timestamp(1.0))),
            "invalid_field",
            "occurred_at",
        ),
        _case(
            "negative_nanos",
            _changed(lambda e: setattr(e.occurred_at, "nanos", -1)),
            "invalid_field",
            "occurred_at.nanos",
        ),
        _case("unknown_field_number", good + b"\xa0\x06\x01", "invalid_field", None),
        _case(
            "customer_id_is_an_email",
            _changed(lambda e: setattr(e.customer, "customer_id", "jane@example.com")),
            "invalid_field",
            "customer.customer_id",
        ),
        _case(
            "transcript_confidence_nan",
            _changed(lambda e: setattr(e.message_posted, "transcript_confidence", float("nan"))),
            "invalid_field",
            "message_posted.transcript_confidence",
        ),
        _case(
            "agent_joined_without_agent",
            _changed(lambda e: e.agent_joined.ClearField("agent_id"), kind="joined"),
            "missing_field",
            "agent_joined.agent_id",
        ),
        _case(
            "empty_required_skill",
            _changed(lambda e: e.conversation_opened.required_skills.append(""), kind="opened"),
            "invalid_field",
            "conversation_opened.required_skills[1]",
        ),
        _case(
            "key_is_another_conversation", good, "key_mismatch", "conversation_id", key=b"conv-someone-else"
        ),
    ]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One random corruption of a serialized event: truncate, flip, insert, splice or drop bytes."""
    if not data:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 32)))
    choice = rng.randrange(5)
    position = rng.randrange(len(data))
    if choice == 0:
        return data[:position]
    if choice == 1:
        out = bytearray(data)
        out[position] ^= 1 << rng.randrange(8)
        return bytes(out)
    if choice == 2:
        return (
            data[:position] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8))) + data[position:]
        )
    if choice == 3:
        other = event(conversation_id="conv-other").SerializeToString()
        return data[:position] + other[rng.randrange(len(other)) :]
    return data[:position] + data[position + rng.randrange(1, 8) :]


def json_event(**overrides) -> dict:
    """A valid event in the JSON mapping; ``None`` for a key removes it."""
    document = {
        "eventId": f"ev-{uuid.uuid4().hex[:12]}",
        "conversationId": "conv-json",
        "tenantId": "acme",
        "queue": "billing",
        "channel": "CHANNEL_CHAT",
        "customer": {"customerId": SECRET_ID, "tier": "CUSTOMER_TIER_VIP", "language": "en-GB"},
        "occurredAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 600)),
        "metadata": {"campaign": SECRET},
        "messagePosted": {"authorRole": "AUTHOR_ROLE_CUSTOMER", "text": SECRET},
    }
    for key, value in overrides.items():
        if value is None:
            document.pop(key, None)
        else:
            document[key] = value
    return document


def _line(document: dict) -> bytes:
    return json.dumps(document).encode()


def json_cases() -> list[tuple[str, bytes, str | None]]:
    """(name, JSON line without its newline, a field the first error must name; "" = the line as
    a whole). Every one of these is invalid."""
    posted = {"authorRole": "AUTHOR_ROLE_CUSTOMER", "text": SECRET}
    return [
        ("syntax_error", b'{"eventId": "ev-1", ' + SECRET.encode(), ""),
        ("trailing_comma", _line(json_event())[:-1] + b",}", ""),
        ("single_quotes", b"{'eventId': 'ev-1'}", ""),
        ("not_an_object", b'["ev-1", "' + SECRET.encode() + b'"]', ""),
        ("a_bare_string", json.dumps(SECRET).encode(), ""),
        ("nan_literal", _line(json_event())[:-1] + b', "x": NaN}', ""),
        (
            "invalid_utf8",
            _line(json_event(messagePosted=posted | {"text": "XX"})).replace(b"XX", b"\xff\xfe"),
            "",
        ),
        ("nested_too_deeply", b'{"metadata": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", ""),
        (
            "number_with_5000_digits",
            _line(json_event(conversationOpened={"priorContactCount": 1}, messagePosted=None)).replace(
                b'"priorContactCount": 1', b'"priorContactCount": ' + b"9" * 5000
            ),
            "",
        ),
        ("event_id_is_a_number", _line(json_event(eventId=12345)), "event_id"),
        ("event_id_is_null", _line(json_event(eventId=None)), "event_id"),
        ("conversation_id_missing", _line(json_event(conversationId=None)), "conversation_id"),
        (
            "text_is_an_object",
            _line(
                json_event(messagePosted={"authorRole": "AUTHOR_ROLE_CUSTOMER", "text": {"nested": [SECRET]}})
            ),
            "message_posted.text",
        ),
        (
            "metadata_nested_garbage",
            _line(json_event(metadata={"a": {"b": [1, {"c": SECRET}]}})),
            'metadata["a"]',
        ),
        (
            "huge_float",
            _line(json_event(messagePosted=posted)).replace(
                b'"text"', b'"transcriptConfidence": 1e400, "text"'
            ),
            "message_posted.transcript_confidence",
        ),
        (
            "float32_overflow",
            _line(json_event(messagePosted=posted)).replace(
                b'"text"', b'"transcriptConfidence": 3.5e38, "text"'
            ),
            "message_posted.transcript_confidence",
        ),
        (
            "huge_integer",
            _line(json_event(conversationOpened={"priorContactCount": 10**30}, messagePosted=None)),
            "conversation_opened.prior_contact_count",
        ),
        (
            "boolean_for_integer",
            _line(json_event(conversationOpened={"priorContactCount": True}, messagePosted=None)),
            "conversation_opened.prior_contact_count",
        ),
        ("unknown_channel_name", _line(json_event(channel="CHANNEL_PIGEON")), "channel"),
        (
            "unknown_author_role_name",
            _line(json_event(messagePosted=posted | {"authorRole": "AUTHOR_ROLE_CAT"})),
            "message_posted.author_role",
        ),
        ("unknown_channel_number", _line(json_event(channel=99)), "channel"),
        ("enum_as_object", _line(json_event(channel={"name": "CHANNEL_CHAT"})), "channel"),
        (
            "text_of_one_megabyte",
            _line(json_event(messagePosted=posted | {"text": SECRET + "x" * 1_000_000})),
            "message_posted.text",
        ),
        (
            "nul_in_text",
            _line(json_event(messagePosted=posted | {"text": SECRET + "\x00"})),
            "message_posted.text",
        ),
        (
            "lone_surrogate_in_text",
            _line(json_event(messagePosted=posted | {"text": SECRET + "\ud800"})),
            "message_posted.text",
        ),
        ("lone_surrogate_as_enum_name", _line(json_event(channel="CHANNEL_\ud800")), "channel"),
        (
            "lone_surrogate_in_metadata_key",
            _line(json_event(metadata={"\udc00": "v"})),
            'metadata["\\udc00"]',
        ),
        ("control_characters_in_event_id", _line(json_event(eventId="ev-\x1b[31m")), "event_id"),
        ("no_payload", _line(json_event(messagePosted=None)), "payload"),
        ("two_payloads", _line(json_event(agentJoined={"agentId": "agent-7"})), "payload"),
        ("timestamp_without_zone", _line(json_event(occurredAt="2026-11-20T10:00:00")), "occurred_at"),
        ("timestamp_in_year_9999", _line(json_event(occurredAt="9999-12-31T23:59:59Z")), "occurred_at"),
        ("timestamp_as_epoch_number", _line(json_event(occurredAt=1763632800)), "occurred_at"),
        ("free_text_as_a_key", _line(json_event() | {SECRET: 1}), f"<key of {len(SECRET)} characters>"),
        (
            "very_long_metadata",
            _line(json_event(metadata={f"k{i}": SECRET * 60 for i in range(100)})),
            "metadata",
        ),
        ("duplicate_key", _line(json_event())[:-1] + b', "eventId": "ev-2"}', "eventId"),
    ]
