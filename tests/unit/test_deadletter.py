from datetime import UTC, datetime

import pytest
from cctriage_common.deadletter import (
    DeadLetter,
    Reason,
    Stage,
    dead_letter_headers,
    dead_letter_record,
    parse_dead_letter,
)


def letter(**changes) -> DeadLetter:
    fields = dict(
        reason=Reason.INVALID_FIELD,
        stage=Stage.VALIDATE,
        service="triage",
        source_topic="support-events",
        source_partition=3,
        source_offset=1207,
        field="message_posted.text",
        error="ValidationError",
        failed_at=datetime(2026, 11, 22, 5, 30, 0, 123000, tzinfo=UTC),
    )
    return DeadLetter(**{**fields, **changes})


def test_headers_name_reason_field_stage_and_source():
    assert dict(dead_letter_headers(letter())) == {
        "dlq.reason": b"invalid_field",
        "dlq.stage": b"validate",
        "dlq.service": b"triage",
        "dlq.source.topic": b"support-events",
        "dlq.source.partition": b"3",
        "dlq.source.offset": b"1207",
        "dlq.failed_at": b"2026-11-22T05:30:00.123Z",
        "dlq.field": b"message_posted.text",
        "dlq.error": b"ValidationError",
    }


@pytest.mark.parametrize("optional", [{}, {"field": None, "error": None}])
def test_headers_parse_back_to_the_same_dead_letter(optional):
    original = letter(**optional)
    assert parse_dead_letter(dead_letter_headers(original)) == original
    assert parse_dead_letter(dict(dead_letter_headers(original))) == original


def test_record_keeps_original_key_value_and_headers_and_replaces_an_old_reason():
    value = b"\x0a\x03\xff\xfe not even protobuf"
    old = dead_letter_headers(letter(reason=Reason.UNDECODABLE, stage=Stage.DECODE))
    key, out_value, headers = dead_letter_record(
        b"conv-1", value, [("traceparent", b"00-ab"), *old], letter()
    )
    assert (key, out_value) == (b"conv-1", value)
    assert headers[0] == ("traceparent", b"00-ab")
    assert [h for h in headers if h[0] == "dlq.reason"] == [("dlq.reason", b"invalid_field")]


@pytest.mark.parametrize(
    "changes",
    [
        {"reason": "customer says: I will sue you"},
        {"field": "text contains 'I am furious'"},
        {"error": "ValueError: invalid text 'I am furious'"},
        {"service": "Triage Worker"},
        {"source_offset": -1},
        {"failed_at": datetime(2026, 1, 1)},
    ],
)
def test_free_text_cannot_enter_the_headers(changes):
    with pytest.raises(ValueError):
        letter(**changes)


def test_parse_names_the_missing_or_bad_header():
    headers = dict(dead_letter_headers(letter()))
    with pytest.raises(ValueError, match="dlq.source.offset is missing"):
        parse_dead_letter({k: v for k, v in headers.items() if k != "dlq.source.offset"})
    with pytest.raises(ValueError, match="dlq.failed_at"):
        parse_dead_letter({**headers, "dlq.failed_at": b"yesterday"})
    with pytest.raises(ValueError, match="dlq.source.partition"):
        parse_dead_letter({**headers, "dlq.source.partition": b"three"})


def test_a_fresh_letter_round_trips_at_millisecond_precision():
    fresh = DeadLetter(Reason.UNDECODABLE, Stage.DECODE, "triage", "support-events", 0, 0)
    assert parse_dead_letter(dead_letter_headers(fresh)) == fresh
