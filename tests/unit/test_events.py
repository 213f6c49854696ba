"""The shared support-event validator: every rule names its field and never echoes customer text."""

from __future__ import annotations

import calendar
import copy
import json

import pytest
from cctriage.events.v1 import events_pb2
from cctriage_common.events import (
    DEFAULT_MAX_TEXT_BYTES,
    DEFAULT_POLICY,
    ValidationPolicy,
    decode_json,
    decode_message,
    decode_protobuf,
    field_paths,
    validate,
)
from cctriage_common.settings import SettingsError, load
from google.protobuf.internal import encoder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# 2026-11-22T06:26:40Z: fixed, so "in the future" is deterministic.
NOW = float(calendar.timegm((2026, 11, 22, 6, 26, 40)))
SECRET = "my card number is 4111 1111 1111 1111 and I am furious"


def message_event(**overrides) -> dict:
    event = {
        "eventId": "evt-1",
        "conversationId": "conv-1",
        "tenantId": "acme",
        "queue": "billing",
        "channel": "CHANNEL_CHAT",
        "customer": {"customerId": "cus-1", "tier": "CUSTOMER_TIER_VIP", "language": "en-GB"},
        "occurredAt": "2026-11-22T06:00:00Z",
        "source": "chat-gateway",
        "metadata": {"campaign": "winter"},
        "messagePosted": {"messageId": "m-1", "authorRole": "AUTHOR_ROLE_CUSTOMER", "text": SECRET},
    }
    for key, value in overrides.items():
        if value is None:
            event.pop(key, None)
        else:
            event[key] = value
    return event


def errors_of(document, policy: ValidationPolicy = DEFAULT_POLICY) -> dict[str, str]:
    result = decode_json(json.dumps(document) if not isinstance(document, str) else document, policy, now=NOW)
    assert not result.ok
    for error in result.errors:
        assert SECRET not in str(error) and "4111" not in str(error), "customer text leaked into an error"
    return {error.field: error.reason for error in result.errors}


def test_valid_event_decodes_from_camel_and_snake_case_names():
    camel = decode_json(json.dumps(message_event()), now=NOW)
    assert camel.ok, camel.errors
    snake = {
        "event_id": "evt-1",
        "conversation_id": "conv-1",
        "tenant_id": "acme",
        "queue": "billing",
        "channel": "CHANNEL_CHAT",
        "customer": {"customer_id": "cus-1", "tier": "CUSTOMER_TIER_VIP", "language": "en-GB"},
        "occurred_at": "2026-11-22T06:00:00Z",
        "source": "chat-gateway",
        "metadata": {"campaign": "winter"},
        "message_posted": {"message_id": "m-1", "author_role": "AUTHOR_ROLE_CUSTOMER", "text": SECRET},
    }
    result = decode_json(snake, now=NOW)
    assert result.ok, result.errors
    assert result.event == camel.event
    assert result.event.message_posted.author_role == events_pb2.AUTHOR_ROLE_CUSTOMER
    assert result.event_id == "evt-1"


@pytest.mark.parametrize("field", ["eventId", "conversationId", "tenantId"])
def test_required_ids(field):
    snake = {"eventId": "event_id", "conversationId": "conversation_id", "tenantId": "tenant_id"}[field]
    assert errors_of(message_event(**{field: None}))[snake] == "is required"
    assert errors_of(message_event(**{field: ""}))[snake] == "is required"


def test_ids_must_be_single_printable_tokens():
    errors = errors_of(message_event(conversationId="conv 1", eventId="a\u0007b", tenantId="t" * 300))
    assert "whitespace" in errors["conversation_id"]
    assert "control characters" in errors["event_id"]
    assert "300 characters" in errors["tenant_id"]


def test_occurred_at_required_parseable_and_not_in_the_future():
    assert "is required" in errors_of(message_event(occurredAt=None))["occurred_at"]
    assert "RFC 3339" in errors_of(message_event(occurredAt="22/11/2026 09:15"))["occurred_at"]
    assert "RFC 3339" in errors_of(message_event(occurredAt=1795300000))["occurred_at"]
    future = errors_of(message_event(occurredAt="2026-11-23T00:00:00Z"))["occurred_at"]
    assert "in the future" in future
    assert "before 2000" in errors_of(message_event(occurredAt="1970-01-01T00:00:00Z"))["occurred_at"]
    # Within the allowed clock skew (300 s by default) is fine.
    near = "2026-11-22T06:28:00Z"  # NOW is 06:26:40Z
    assert decode_json(message_event(occurredAt=near), now=NOW).ok


def test_future_skew_is_configurable():
    ahead = message_event(occurredAt="2026-11-22T07:00:00Z")
    assert not decode_json(ahead, now=NOW).ok
    assert decode_json(ahead, ValidationPolicy(max_future_skew_s=3600), now=NOW).ok


def test_payload_required_and_only_one():
    assert "exactly one of" in errors_of(message_event(messagePosted=None))["payload"]
    errors = errors_of(message_event(agentJoined={"agentId": "agt-1"}))
    assert errors["payload"] == "only one may be set, got message_posted, agent_joined"


def test_channel_required_and_known():
    assert errors_of(message_event(channel=None))["channel"].startswith("is required (one of CHANNEL_CHAT")
    assert errors_of(message_event(channel="CHANNEL_UNSPECIFIED"))["channel"].startswith("is required")
    named = errors_of(message_event(channel="CHANNEL_FAX"))["channel"]
    assert named.startswith("unknown Channel value 'CHANNEL_FAX'; known values are CHANNEL_CHAT")
    numbered = errors_of(message_event(channel=42))["channel"]
    assert "unknown Channel value 42" in numbered and "newer contract" in numbered


def test_unknown_enum_numbers_pass_when_accepting_a_newer_schema():
    lenient = ValidationPolicy(accept_newer_schema=True)
    result = decode_json(message_event(channel=42), lenient, now=NOW)
    assert result.ok and result.event.channel == 42


def test_author_role_required_for_messages_and_text_required():
    errors = errors_of(message_event(messagePosted={"text": "hello"}))
    assert errors["message_posted.author_role"].startswith("is required (one of AUTHOR_ROLE_CUSTOMER")
    errors = errors_of(message_event(messagePosted={"authorRole": "AUTHOR_ROLE_AGENT"}))
    assert errors["message_posted.text"] == "is required"
    assert (
        "unknown AuthorRole value 9"
        in errors_of(message_event(messagePosted={"authorRole": 9, "text": "x"}))[
            "message_posted.author_role"
        ]
    )


def test_text_size_limit_counts_utf8_bytes_and_is_configurable():
    text = "é" * (DEFAULT_MAX_TEXT_BYTES // 2 + 1)  # fewer characters than the limit, more bytes
    errors = errors_of(message_event(messagePosted={"authorRole": "AUTHOR_ROLE_CUSTOMER", "text": text}))
    assert errors["message_posted.text"] == f"is {len(text.encode())} bytes (UTF-8); the limit is 65536 bytes"
    small = ValidationPolicy(max_text_bytes=len(SECRET) - 1)
    assert "the limit is" in errors_of(message_event(), small)["message_posted.text"]
    assert decode_json(message_event(), ValidationPolicy(max_text_bytes=len(SECRET)), now=NOW).ok


def test_text_with_nul_or_unpaired_surrogate_is_rejected_without_echo():
    nul = message_event(messagePosted={"authorRole": "AUTHOR_ROLE_CUSTOMER", "text": SECRET + "\x00"})
    assert errors_of(nul)["message_posted.text"] == "contains NUL characters"
    # Valid JSON, but "\ud800" alone cannot be encoded as UTF-8.
    line = json.dumps(message_event()).replace("furious", "furious \\ud800")
    assert "UTF-8" in errors_of(line)["message_posted.text"]


def test_invalid_utf8_bytes_in_a_json_line():
    line = json.dumps(message_event()).encode().replace(b"furious", b"furious \xff")
    result = decode_json(line, now=NOW)
    assert not result.ok and result.errors[0].reason.startswith("not valid UTF-8 (byte ")


def test_language_tag_shape():
    def language_error(tag):
        customer = {"customerId": "cus-1", "language": tag}
        return errors_of(message_event(customer=customer)).get("customer.language")

    assert "use '-' not '_'" in language_error("en_GB")
    assert "not a BCP 47 language tag" in language_error("English")
    assert "not a BCP 47 language tag" in language_error("e")
    assert "not a BCP 47 language tag" in language_error("en-")
    for tag in ["en", "en-GB", "pt-BR", "zh-Hant", "zh-Hant-TW", "es-419", "de-CH-1996", "sgn-ase"]:
        customer = {"customerId": "cus-1", "language": tag}
        assert decode_json(message_event(customer=customer), now=NOW).ok, tag


def test_customer_id_must_be_pseudonymous_and_is_not_echoed():
    for identity in ["jane.doe@example.com", "+441632960961"]:
        errors = errors_of(message_event(customer={"customerId": identity}))
        assert "e-mail address or phone number" in errors["customer.customer_id"]
        assert identity not in json.dumps(errors)
    assert decode_json(message_event(customer={"customerId": "12345678"}), now=NOW).ok


def test_customer_tier_unknown_value():
    errors = errors_of(message_event(customer={"tier": "CUSTOMER_TIER_GOLD"}))
    assert errors["customer.tier"].startswith("unknown CustomerTier value 'CUSTOMER_TIER_GOLD'")


def test_wrong_json_types_name_the_field():
    errors = errors_of(
        message_event(
            queue=7,
            customer=["cus-1"],
            metadata={"campaign": 5},
            messagePosted={"authorRole": True, "text": ["a"], "transcriptConfidence": "high"},
        )
    )
    assert errors["queue"] == "must be a string, got a number"
    assert errors["customer"] == "must be a JSON object, got an array"
    assert errors['metadata["campaign"]'] == "must be a string, got a number"
    assert errors["message_posted.author_role"].startswith("must be a AuthorRole name")
    assert errors["message_posted.text"] == "must be a string, got an array"
    assert errors["message_posted.transcript_confidence"].startswith("must be a number")


def test_unknown_and_duplicate_fields():
    errors = errors_of(message_event(eventID="evt-1", colour="red"))
    assert errors["eventID"] == "unknown field; did you mean 'eventId'?"
    assert errors["colour"] == "unknown field"
    both = message_event()
    both["event_id"] = "evt-2"
    assert errors_of(both)["event_id"] == "is given twice (as 'eventId' and 'event_id')"
    line = json.dumps(message_event())[:-1] + ', "tenantId": "other"}'
    assert errors_of(line)["tenantId"] == "is given more than once in the same object"


def test_not_json_and_not_an_object():
    assert errors_of("{not json")[""].startswith("invalid JSON: Expecting property name")
    assert errors_of("[1, 2]")[""] == "an event must be a JSON object, got an array"
    assert errors_of('{"eventId": NaN}')[""] == "invalid JSON: NaN is not valid JSON"


def test_null_means_not_set():
    result = decode_json(message_event(queue=None, source=None) | {"queue": None}, now=NOW)
    assert result.ok and result.event.queue == ""


def test_metadata_limits():
    too_many = {f"k{i}": "v" for i in range(65)}
    assert "65 entries" in errors_of(message_event(metadata=too_many))["metadata"]
    assert (
        "value is 3000 bytes" in errors_of(message_event(metadata={"note": "x" * 3000}))['metadata["note"]']
    )


def test_payload_specific_rules():
    opened = message_event(
        messagePosted=None, conversationOpened={"requiredSkills": ["billing", "", "b" * 65]}
    )
    errors = errors_of(opened)
    assert errors["conversation_opened.required_skills[1]"] == "is empty"
    assert "65 characters" in errors["conversation_opened.required_skills[2]"]
    joined = errors_of(message_event(messagePosted=None, agentJoined={}))
    assert joined["agent_joined.agent_id"] == "is required"
    closed = errors_of(message_event(messagePosted=None, conversationClosed={"reason": 99}))
    assert "unknown CloseReason value 99" in closed["conversation_closed.reason"]
    confidence = message_event(
        messagePosted={"authorRole": "AUTHOR_ROLE_CUSTOMER", "text": "x", "transcriptConfidence": 1.5}
    )
    assert errors_of(confidence)["message_posted.transcript_confidence"] == "must be between 0 and 1"
    negative = message_event(messagePosted=None, conversationOpened={"priorContactCount": -1})
    assert (
        errors_of(negative)["conversation_opened.prior_contact_count"] == "must be between 0 and 4294967295"
    )


def test_all_errors_are_reported_together():
    errors = errors_of(message_event(eventId=None, tenantId=None, channel=None, messagePosted={"text": "x"}))
    assert {"event_id", "tenant_id", "channel", "message_posted.author_role"} <= set(errors)


# --- protobuf bytes (the Kafka value; the triage worker's path) ---------------------------------


def valid_proto() -> events_pb2.SupportEvent:
    return decode_json(message_event(), now=NOW).event


def test_protobuf_roundtrip_is_valid():
    data = valid_proto().SerializeToString()
    result = decode_protobuf(data, now=NOW)
    assert result.ok and result.event == valid_proto() and result.event_id == "evt-1"


def test_protobuf_semantic_errors_match_json_ones():
    event = valid_proto()
    event.message_posted.author_role = events_pb2.AUTHOR_ROLE_UNSPECIFIED
    event.customer.language = "en_GB"
    result = decode_protobuf(event.SerializeToString(), now=NOW)
    assert {e.field for e in result.errors} == {"message_posted.author_role", "customer.language"}
    assert result.event is not None, "decoded but invalid: the event is kept for the dead-letter path"


def test_protobuf_invalid_utf8_names_the_field():
    # message_posted { author_role: 1, text: <0xC3 0x28, not UTF-8> }, written by hand.
    text = encoder._VarintBytes((4 << 3) | 2) + b"\x02\xc3\x28"
    message = encoder._VarintBytes((2 << 3) | 0) + b"\x01" + text
    wire = encoder._VarintBytes((11 << 3) | 2) + encoder._VarintBytes(len(message)) + message
    result = decode_protobuf(wire, now=NOW)
    assert [(e.field, e.reason) for e in result.errors] == [("message_posted.text", "is not valid UTF-8")]


def test_protobuf_truncated_and_garbage():
    data = valid_proto().SerializeToString()
    truncated = decode_protobuf(data[:-5], now=NOW)
    assert not truncated.ok and "truncated protobuf" in truncated.errors[0].reason
    assert truncated.errors[0].field == "message_posted"
    assert decode_protobuf(b"", now=NOW).errors[0].reason == "empty value: not a SupportEvent"
    assert not decode_protobuf(b"\xff\xff\xff", now=NOW).ok
    json_value = decode_protobuf(json.dumps(message_event()).encode(), now=NOW)
    assert "value is JSON, expected protobuf bytes" in json_value.errors[0].reason


def test_protobuf_unknown_fields_reported_unless_accepting_newer_schema():
    data = valid_proto().SerializeToString() + encoder._VarintBytes((99 << 3) | 0) + b"\x01"
    result = decode_protobuf(data, now=NOW)
    assert [(e.field, e.reason.split(" (")[0]) for e in result.errors] == [("<field 99>", "unknown field")]
    assert decode_protobuf(data, ValidationPolicy(accept_newer_schema=True), now=NOW).ok


def test_protobuf_oversized_value():
    result = decode_protobuf(b"\x0a" + b"x" * (1024 * 1024 + 1), now=NOW)
    assert "the limit is 1048576" in result.errors[0].reason


def test_validate_a_message_object_directly():
    event = valid_proto()
    assert validate(event, now=NOW) == []
    event.ClearField("occurred_at")
    assert [e.field for e in validate(event, now=NOW)] == ["occurred_at"]
    assert decode_message(event, now=NOW).errors[0].field == "occurred_at"
    assert decode_message(valid_proto().SerializeToString(), now=NOW).ok
    assert decode_message(json.dumps(message_event()).encode(), now=NOW).ok
    assert not decode_message(42).ok


def test_policy_from_environment_and_its_limits():
    policy = load(
        ValidationPolicy, {"CCTRIAGE_EVENT_MAX_TEXT_BYTES": "1024", "CCTRIAGE_EVENT_MAX_FUTURE_SKEW_S": "60"}
    )
    assert policy.max_text_bytes == 1024 and policy.max_future_skew_s == 60
    with pytest.raises(SettingsError, match="CCTRIAGE_EVENT_MAX_TEXT_BYTES"):
        load(ValidationPolicy, {"CCTRIAGE_EVENT_MAX_TEXT_BYTES": "0"})


def test_field_paths_cover_the_contract():
    paths = set(field_paths())
    assert {
        "event_id",
        "customer.language",
        "message_posted.author_role",
        "conversation_closed.reason",
    } <= paths


def test_error_reasons_never_contain_text_of_any_string_field():
    """Fuzz-ish: put the secret in every string field in turn, break the event, check errors."""
    base = message_event(channel="CHANNEL_FAX", occurredAt="2099-01-01T00:00:00Z")
    for path in [
        ("queue",),
        ("source",),
        ("customer", "segment"),
        ("messagePosted", "text"),
        ("messagePosted", "authorId"),
    ]:
        event = copy.deepcopy(base)
        target = event
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = SECRET + "\x01"
        errors_of(event)  # asserts the secret is absent


# --- never raises, whatever arrives ---------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
FIELD_NAMES = [
    "eventId",
    "channel",
    "customer",
    "occurredAt",
    "messagePosted",
    "metadata",
    "conversationOpened",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(replacements=st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=3))
def test_decode_json_never_raises_and_always_names_a_reason(replacements):
    result = decode_json(message_event() | replacements, now=NOW)
    assert result.ok or all(error.reason for error in result.errors)
    assert all("does not match the protobuf JSON mapping" not in e.reason for e in result.errors), (
        "the field checker let through something json_format rejects"
    )


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200))
def test_decode_protobuf_never_raises(data):
    result = decode_protobuf(data, now=NOW)
    assert result.ok or result.errors


@settings(max_examples=200, deadline=None)
@given(position=st.integers(min_value=0), byte=st.integers(min_value=0, max_value=255))
def test_decode_protobuf_survives_any_single_byte_corruption(position, byte):
    data = bytearray(valid_proto().SerializeToString())
    data[position % len(data)] = byte
    result = decode_protobuf(bytes(data), now=NOW)
    assert result.ok or result.errors
    assert all(SECRET not in str(error) for error in result.errors)


def test_error_codes_are_dead_letter_reasons_and_fields_fit_the_header():
    from cctriage_common.deadletter import DeadLetter, Reason, Stage

    cases = {
        "missing_field": decode_json(message_event(eventId=None), now=NOW),
        "unsupported_event": decode_json(message_event(messagePosted=None), now=NOW),
        "too_large": decode_json(
            message_event(messagePosted={"authorRole": "AUTHOR_ROLE_CUSTOMER", "text": "x" * 70_000}), now=NOW
        ),
        "invalid_field": decode_json(message_event(metadata={'a"b\x01': "v"}), now=NOW),
        "undecodable": decode_protobuf(b"\x0a\x05abc", now=NOW),
    }
    for code, result in cases.items():
        assert result.code == code, (code, result.errors)
        error = result.errors[0]
        # The triage worker puts these straight into dlq.* headers: they must be accepted there.
        DeadLetter(
            Reason(error.code), Stage.VALIDATE, "triage", "support-events", 0, 0, field=error.schema_field
        )
    assert cases["invalid_field"].errors[0].schema_field == "metadata"
    assert cases["too_large"].errors[0].schema_field == "message_posted.text"
    assert decode_json("{oops", now=NOW).errors[0].schema_field is None
    unknown = decode_protobuf(valid_proto().SerializeToString() + b"\xa0\x06\x01", now=NOW).errors[0]
    assert unknown.field == "<field 100>" and unknown.schema_field is None
    odd_key = decode_json('{"what ever": 1}', now=NOW).errors[0]
    # A key that is not field-name-like may be free text: not echoed (issue 7 fuzzing).
    assert odd_key.field == "<key of 9 characters>" and odd_key.schema_field is None
