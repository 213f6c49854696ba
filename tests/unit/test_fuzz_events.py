"""Bad-input campaign (issue 7), unit part: the shared validator and the triage worker's decode path.

Whatever bytes arrive, ``Triage._validate`` (the worker's real decode step) either hands the
event on for processing or queues exactly one dead letter: the original key and value
untouched, the original headers kept, a ``dlq.reason`` from the closed vocabulary and, when
one field is at fault, ``dlq.field`` naming it. Nothing raises, and no customer text or
customer id reaches an error, a header or a log line.

Hypothesis example counts scale with FUZZ_EXAMPLES (tests/fuzz_cases.py); ``make fuzz`` runs
the long campaign.
"""

from __future__ import annotations

import json
import logging
import math
import random
import string
import sys
import time
from types import SimpleNamespace

import fuzz_cases
import pytest
from cctriage.events.v1 import events_pb2
from cctriage_common import events as support_events
from cctriage_common.deadletter import Reason, Stage, parse_dead_letter
from cctriage_common.events import ValidationPolicy, decode_json, decode_protobuf
from cctriage_triage.policy import PolicyConfig
from cctriage_triage.processor import Outputs, Triage
from fuzz_cases import SECRET, examples, leaked
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# caplog is reset per example (check_record); the model of the worker is module-scoped.
FUZZ = settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


def fuzz(share: float = 1.0) -> settings:
    return settings(FUZZ, max_examples=examples(share))


TOPIC = "support-events"
ORIGINAL_HEADERS = [("content-type", b"application/x-protobuf"), ("trace-id", b"abc123")]
# The worker's dead-letter topic: _validate only queues (topic, key, value, headers) for it.
DEAD_LETTERS = "dead-letter-topic"


@pytest.fixture(scope="module")
def triage():
    async def on_fatal(exc: BaseException) -> None:
        raise AssertionError("the decode path asked to stop the worker") from exc

    worker = Triage(
        config=PolicyConfig(),
        conversations={},
        message_scores=None,
        conversation_flags=None,
        supervisor_alerts=None,
        dead_letters=DEAD_LETTERS,
        model_provider=lambda: None,
        on_fatal=on_fatal,
    )
    yield worker
    worker.close()


_offsets = iter(range(10**9))


def worker_decode(triage: Triage, key: bytes | None, value: bytes | None) -> tuple[str, object]:
    """The worker's decode step on one record: ("processed", item) or ("dead", (key, value, headers,
    offset))."""
    offset = next(_offsets)
    message = SimpleNamespace(
        key=key,
        value=value,
        timestamp=time.time(),
        topic=TOPIC,
        partition=3,
        offset=offset,
        headers=list(ORIGINAL_HEADERS),
    )
    outputs = Outputs()
    item = triage._validate(SimpleNamespace(message=message), outputs)
    if item is not None:
        assert outputs.records == [], "a processed event must not also be dead-lettered"
        return "processed", item
    assert len(outputs.records) == 1, "an event that is not processed is dead-lettered exactly once"
    topic, dead_key, dead_value, headers = outputs.records[0]
    assert topic == DEAD_LETTERS
    return "dead", (dead_key, dead_value, headers, offset)


def too_big_to_copy(key: bytes | None, value: bytes | None) -> bool:
    headers = sum(len(n) + len(v) for n, v in ORIGINAL_HEADERS) + 400  # dlq.* headers, generously
    return len(key or b"") + len(value or b"") + headers > support_events.MAX_EVENT_BYTES


def check_record(triage: Triage, key: bytes | None, value: bytes | None, caplog) -> tuple[str, object]:
    """The must-hold for one record, whatever it is; returns what worker_decode returned."""
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        outcome, detail = worker_decode(triage, key, value)
    result = decode_protobuf(value or b"")
    if outcome == "processed":
        assert result.ok and key in (None, result.event.conversation_id.encode())
        assert detail.decoded.event_id and detail.decoded.conversation_id
    else:
        dead_key, dead_value, headers, offset = detail
        # aiokafka refuses (asserts) a record with neither key nor value: the worker would crash.
        assert dead_key is not None or dead_value is not None
        if too_big_to_copy(key, value):
            # Over the 1 MiB an event may be: reason and source offset only (and no crash).
            assert (dead_key, dead_value) == (None, b"")
            assert ("dlq.value_omitted", b"too_large") in headers
            headers = ORIGINAL_HEADERS + [h for h in headers if h[0] != "dlq.value_omitted"]
        elif key is None and value is None:
            assert (dead_key, dead_value) == (None, b"")
        else:
            assert (dead_key, dead_value) == (key, value), "the dead letter carries the original bytes"
            assert headers[: len(ORIGINAL_HEADERS)] == ORIGINAL_HEADERS, "original headers are kept"
        letter = parse_dead_letter(headers)
        assert letter.reason in set(Reason) and letter.service == "triage"
        assert (letter.source_topic, letter.source_partition, letter.source_offset) == (TOPIC, 3, offset)
        if not result.ok:
            first = result.errors[0]
            assert letter.reason == Reason(first.code)
            assert letter.stage == (Stage.DECODE if result.event is None else Stage.VALIDATE)
            if first.schema_field is not None:
                assert letter.field == first.schema_field, "dlq.field names the field at fault"
        else:
            assert letter.reason == Reason.KEY_MISMATCH and letter.field == "conversation_id"
        for name, data in headers[len(ORIGINAL_HEADERS) :]:
            assert not leaked(data.decode("ascii")), (name, data)
    logged = " ".join(
        f"{record.getMessage()} {sorted(map(str, record.__dict__.values()))}" for record in caplog.records
    )
    assert not leaked(logged), "customer text or id in a log line"
    return outcome, detail


# --- the named corpus: each nasty case, dead-lettered with the reason and field it deserves ------

CASES = fuzz_cases.protobuf_cases()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_named_nasty_record_is_dead_lettered_with_its_reason_and_field(triage, case, caplog):
    outcome, (_, _, headers, _) = check_record(triage, case.key, case.value, caplog)
    assert outcome == "dead"
    letter = parse_dead_letter(headers)
    assert (letter.reason.value, letter.field) == (case.reason, case.field)


def test_a_record_with_neither_key_nor_value_is_dead_lettered_in_a_form_a_producer_takes(triage, caplog):
    outcome, (key, value, headers, _) = check_record(triage, None, None, caplog)
    assert outcome == "dead" and parse_dead_letter(headers).reason == Reason.UNDECODABLE


def test_the_named_corpus_covers_the_issue_list():
    names = {case.name for case in CASES}
    for needed in (
        "truncated_inside_text",
        "random_bytes",
        "conversation_flag_bytes",
        "text_of_one_megabyte",
        "invalid_utf8_in_text",
        "nul_in_text",
        "missing_event_id",
        "missing_conversation_id",
        "unknown_channel_number",
        "no_payload",
        "very_long_metadata",
        "tombstone_null_value",
    ):
        assert needed in names


# --- generated input ---------------------------------------------------------------------------

ID_CHARS = string.ascii_letters + string.digits + "-_.:/"
ids = st.text(ID_CHARS, min_size=1, max_size=40)
# Any text a customer may type: every code point but NUL and lone surrogates (which UTF-8 cannot carry).
customer_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=300
)
EARLIEST = support_events.EARLIEST_OCCURRED_AT_S
# Fixed once: hypothesis needs the same strategy bounds on every run.
STARTED = time.time()


@st.composite
def valid_events(draw) -> events_pb2.SupportEvent:
    kind = draw(st.sampled_from(["customer", "agent", "bot", "opened", "joined", "closed"]))
    at = draw(st.floats(min_value=EARLIEST, max_value=STARTED, allow_nan=False))
    message = fuzz_cases.event(
        conversation_id=draw(ids), event_id=draw(ids), at=at, kind=kind, text=SECRET + draw(customer_text)
    )
    message.channel = draw(
        st.sampled_from([v.number for v in events_pb2.Channel.DESCRIPTOR.values if v.number])
    )
    message.metadata.clear()
    message.metadata.update(
        draw(
            st.dictionaries(
                st.text(string.ascii_letters, min_size=1, max_size=20),
                st.just(SECRET) | customer_text,
                max_size=5,
            )
        )
    )
    if kind == "closed":
        message.conversation_closed.reason = draw(
            st.sampled_from([v.number for v in events_pb2.CloseReason.DESCRIPTOR.values])
        )
    return message


@fuzz()
@given(message=valid_events())
def test_generated_valid_events_are_processed(triage, message, caplog):
    key = message.conversation_id.encode()
    outcome, item = check_record(triage, key, message.SerializeToString(), caplog)
    assert outcome == "processed", decode_protobuf(message.SerializeToString()).reasons()
    assert item.decoded == message


@fuzz(2)
@given(data=st.binary(max_size=400), key=st.none() | st.binary(max_size=20))
def test_random_bytes_are_processed_or_dead_lettered(triage, data, key, caplog):
    check_record(triage, key, data, caplog)


@fuzz(2)
@given(message=valid_events(), seed=st.integers(0, 2**32 - 1), rounds=st.integers(1, 4))
def test_corrupted_valid_events_are_processed_or_dead_lettered(triage, message, seed, rounds, caplog):
    rng = random.Random(seed)
    data = message.SerializeToString()
    for _ in range(rounds):
        data = fuzz_cases.mutate(data, rng)
    check_record(triage, message.conversation_id.encode(), data, caplog)


@fuzz()
@given(
    message=valid_events(),
    other=st.sampled_from(
        [
            "ConversationFlag",
            "MessageScore",
            "SupervisorAlert",
            "RouteConversationRequest",
            "Timestamp",
            "Customer",
        ]
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_valid_bytes_of_another_message_type_are_dead_lettered(triage, message, other, seed, caplog):
    from cctriage.routing.v1 import routing_pb2
    from cctriage.triage.v1 import triage_pb2

    rng = random.Random(seed)
    kinds = {
        "ConversationFlag": lambda: triage_pb2.ConversationFlag(
            flag_id=f"{message.conversation_id}/{rng.randrange(99)}",
            conversation_id=message.conversation_id,
            sequence=rng.randrange(1, 99),
            stress=rng.random(),
            stressed=True,
            event_id=message.event_id,
        ),
        "MessageScore": lambda: triage_pb2.MessageScore(
            event_id=message.event_id,
            conversation_id=message.conversation_id,
            stress=rng.random(),
            model_version="m",
        ),
        "SupervisorAlert": lambda: triage_pb2.SupervisorAlert(
            alert_id="a", conversation_id=message.conversation_id, summary=SECRET, severity=2
        ),
        "RouteConversationRequest": lambda: routing_pb2.RouteConversationRequest(
            conversation_id=message.conversation_id, idempotency_key="k", sequence=3
        ),
        "Timestamp": lambda: fuzz_cases.timestamp(time.time()),
        "Customer": lambda: message.customer,
    }
    data = kinds[other]().SerializeToString()
    outcome, _ = check_record(triage, message.conversation_id.encode(), data, caplog)
    assert outcome == "dead", f"a {other} was taken for a SupportEvent"


# One broken field at a time: (proto path the dead letter must name, how to break it).
def _text(size: int) -> str:
    return SECRET + "x" * size


BREAKERS = {
    "event_id": lambda m, v: setattr(m, "event_id", "ev\x01" + v),
    "tenant_id": lambda m, v: setattr(m, "tenant_id", "acme " + v),
    "channel": lambda m, v: setattr(m, "channel", 6 + 97 * len(v)),
    "customer.tier": lambda m, v: setattr(m.customer, "tier", -1 - 97 * len(v)),
    "customer.language": lambda m, v: setattr(m.customer, "language", "english-" + "x" * 40),
    "customer.customer_id": lambda m, v: setattr(m.customer, "customer_id", f"{SECRET_ID_LOCAL}@example.com"),
    "queue": lambda m, v: setattr(m, "queue", " billing\t" + v),
    "occurred_at": lambda m, v: m.occurred_at.CopyFrom(fuzz_cases.timestamp(time.time() + 3600 + len(v))),
    "message_posted.text": lambda m, v: setattr(m.message_posted, "text", _text(70_000 + len(v))),
    "message_posted.transcript_confidence": lambda m, v: setattr(
        m.message_posted, "transcript_confidence", 1.5 + len(v)
    ),
    "message_posted.author_role": lambda m, v: setattr(m.message_posted, "author_role", 0),
    "metadata": lambda m, v: m.metadata.update({"note": _text(3000)}),
    "payload": lambda m, v: m.ClearField("message_posted"),
}
SECRET_ID_LOCAL = "jane.SECRET"


@fuzz()
@given(
    field=st.sampled_from(sorted(BREAKERS)),
    value=st.text(ID_CHARS, max_size=10),
    at=st.floats(min_value=EARLIEST, max_value=STARTED, allow_nan=False),
)
def test_one_broken_field_is_dead_lettered_naming_that_field(triage, field, value, at, caplog):
    message = fuzz_cases.event(conversation_id="conv-1", at=at)
    BREAKERS[field](message, value)
    outcome, detail = check_record(triage, b"conv-1", message.SerializeToString(), caplog)
    assert outcome == "dead"
    assert parse_dead_letter(detail[2]).field == field


def test_out_of_order_timestamps_and_newer_enums_are_not_errors():
    """Order is the broker's (per conversation); event times may go backwards (clock skew, late
    transcripts) and are still valid. Unknown enum numbers pass when accepting a newer schema."""
    earlier = fuzz_cases.event(at=time.time() - 3600)
    later = fuzz_cases.event(at=time.time() - 7200)
    assert decode_protobuf(earlier.SerializeToString()).ok and decode_protobuf(later.SerializeToString()).ok
    newer = fuzz_cases.event()
    newer.channel = 42
    newer.message_posted.author_role = 9
    data = newer.SerializeToString()
    assert decode_protobuf(data).code == "invalid_field"
    assert decode_protobuf(data, ValidationPolicy(accept_newer_schema=True)).ok


# --- JSON (what cctriage-publish reads) ----------------------------------------------------------

JSON_CASES = fuzz_cases.json_cases()


@pytest.mark.parametrize("name,line,field", JSON_CASES, ids=[case[0] for case in JSON_CASES])
def test_named_nasty_json_line_is_rejected_naming_the_field(name, line, field):
    result = decode_json(line)
    assert not result.ok and result.errors
    assert result.errors[0].field == field, result.reasons()
    assert not leaked(result.reasons()), result.reasons()
    for error in result.errors:
        assert error.code in {reason.value for reason in Reason}


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**20, max_value=10**400)
    | st.floats()
    | st.text(max_size=30)
    | st.just(SECRET)
    | st.just("\x00\x1b\ud800")
)
json_garbage = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)
JSON_PATHS = [
    ("eventId",),
    ("conversationId",),
    ("tenantId",),
    ("channel",),
    ("occurredAt",),
    ("metadata",),
    ("customer",),
    ("customer", "tier"),
    ("customer", "language"),
    ("customer", "customerId"),
    ("messagePosted",),
    ("messagePosted", "text"),
    ("messagePosted", "authorRole"),
    ("messagePosted", "transcriptConfidence"),
    ("conversationOpened",),
    ("agentJoined",),
    ("conversationClosed",),
    ("metadata", "campaign"),
    ("unknownField",),
]


def _dumps(document: object) -> str:
    # allow_nan: hypothesis floats include NaN/inf, which a careless publisher's JSON may carry too.
    return json.dumps(document, allow_nan=True)


@fuzz(3)
@given(replacements=st.lists(st.tuples(st.sampled_from(JSON_PATHS), json_garbage), max_size=4))
def test_json_with_garbage_in_any_field_never_raises_and_names_a_field(replacements):
    document = fuzz_cases.json_event()
    for path, value in replacements:
        target = document
        for part in path[:-1]:
            if not isinstance(target.get(part), dict):
                target[part] = {}
            target = target[part]
        target[path[-1]] = value
    result = decode_json(_dumps(document))
    if result.ok:
        return
    assert not leaked(result.reasons()), result.reasons()
    assert all("does not match the protobuf JSON mapping" not in e.reason for e in result.errors), (
        "the field checker let through something json_format rejects (its message may quote the value)"
    )
    for error in result.errors:
        assert error.reason and error.code in {reason.value for reason in Reason}


@fuzz(2)
@given(line=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_line_is_valid_or_rejected_without_raising(line):
    result = decode_json(line)
    assert result.ok or result.errors


@fuzz()
@given(message=valid_events())
def test_valid_events_survive_the_json_mapping_round_trip(message):
    """What a JSON publisher sends for a valid event decodes to the same event."""
    document = support_events.to_json_dict(message)
    result = decode_json(json.dumps(document))
    assert result.ok, result.reasons()
    expected = events_pb2.SupportEvent()
    expected.CopyFrom(message)
    if math.isnan(expected.message_posted.transcript_confidence):
        return
    assert result.event == expected


def test_lone_surrogates_leave_no_exception_pending():
    """Found by fuzzing: upb's enum name lookup with a lone surrogate left a UnicodeEncodeError
    pending, which a trace function (debuggers, coverage, hypothesis) turns into a SystemError."""
    previous = sys.gettrace()
    sys.settrace(lambda frame, event, arg: None)
    try:
        result = decode_json(json.dumps(fuzz_cases.json_event(channel="CHANNEL_\ud800")))
    finally:
        sys.settrace(previous)
    assert result.errors[0].field == "channel"


python_values = st.recursive(
    json_scalars
    | st.binary(max_size=8)
    | st.builds(object)
    | st.tuples(st.integers())
    | st.sets(st.integers()),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.text(max_size=8) | st.integers() | st.none() | st.tuples(st.integers()), children, max_size=3
        )
    ),
    max_leaves=15,
)


@fuzz(2)
@given(
    replacements=st.lists(st.tuples(st.sampled_from(JSON_PATHS), python_values), max_size=3),
    extra_keys=st.dictionaries(
        st.integers() | st.none() | st.tuples(st.integers()), python_values, max_size=2
    ),
)
def test_python_callers_dicts_of_any_shape_never_raise(replacements, extra_keys):
    """SupportEventPublisher.publish(dict) and decode_message take Python dicts: found by fuzzing,
    a non-string key (an int, a tuple) raised TypeError/AttributeError instead of an error naming
    the object it was in."""
    document = fuzz_cases.json_event()
    for path, value in replacements:
        target = document
        for part in path[:-1]:
            if not isinstance(target.get(part), dict):
                target[part] = {}
            target = target[part]
        target[path[-1]] = value
    document.update(extra_keys)
    result = support_events.decode_message(document)
    assert result.ok or result.errors
    assert not leaked(result.reasons())
    assert all("does not match the protobuf JSON mapping" not in e.reason for e in result.errors)


def test_non_string_keys_name_the_object_they_are_in():
    assert support_events.decode_message({1: "x"}).errors[0].reason == "has a key that is not a string (int)"
    metadata = support_events.decode_message(fuzz_cases.json_event(metadata={("a",): "b"}))
    assert [e.field for e in metadata.errors] == ["metadata"]
