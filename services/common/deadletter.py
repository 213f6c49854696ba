"""The dead-letter format: the original record, unchanged, with the reason in ``dlq.*`` headers.

A record that cannot be processed goes to the dead-letter topic (``support-events-dlq``) with
its ORIGINAL key and value bytes and its original headers, plus:

    dlq.reason            closed vocabulary, e.g. ``invalid_field`` (see Reason)
    dlq.field             the offending field path, e.g. ``message_posted.text`` (optional)
    dlq.stage             decode | validate | process
    dlq.error             exception class name, e.g. ``DecodeError`` (optional)
    dlq.source.topic      where the record was read
    dlq.source.partition  decimal
    dlq.source.offset     decimal
    dlq.failed_at         UTC, ISO 8601 with milliseconds, e.g. 2026-11-22T05:30:00.123Z
    dlq.service           the service that gave up, e.g. ``triage``

Headers never carry customer text: the reason is a code from a closed set, the field is a
schema path, the error is a class name, and each is checked against a strict pattern, so an
exception message (which may quote the input) cannot slip in. Replaying a dead letter means
producing its value and key back to ``dlq.source.topic`` once the cause is fixed.

    headers = dead_letter_headers(DeadLetter(Reason.INVALID_FIELD, Stage.VALIDATE, "triage",
                                             topic, partition, offset, field="occurred_at"))
    await producer.send(dlq_topic, key=record.key, value=record.value,
                        headers=[*record.headers, *headers])
    parse_dead_letter(received.headers)  # -> DeadLetter
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

PREFIX = "dlq."
REASON = "dlq.reason"
FIELD = "dlq.field"
STAGE = "dlq.stage"
ERROR = "dlq.error"
SOURCE_TOPIC = "dlq.source.topic"
SOURCE_PARTITION = "dlq.source.partition"
SOURCE_OFFSET = "dlq.source.offset"
FAILED_AT = "dlq.failed_at"
SERVICE = "dlq.service"


class Reason(enum.StrEnum):
    """Why a record was dead-lettered. Add members here; free text is never accepted."""

    UNDECODABLE = "undecodable"  # value is not a valid SupportEvent (protobuf or JSON)
    MISSING_FIELD = "missing_field"  # a required field is empty
    INVALID_FIELD = "invalid_field"  # a field has a value outside its allowed range/format
    KEY_MISMATCH = "key_mismatch"  # record key is not the event's conversation id
    UNSUPPORTED_EVENT = "unsupported_event"  # no payload, or a payload kind this version ignores
    TOO_LARGE = "too_large"  # over the size the service accepts
    PROCESSING_FAILED = "processing_failed"  # valid input, but processing raised
    LATE_EVENT = "late_event"  # older than the retention window, for a conversation no longer held


class Stage(enum.StrEnum):
    DECODE = "decode"
    VALIDATE = "validate"
    PROCESS = "process"


_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*\Z")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,127}\Z")
_SERVICE = re.compile(r"[a-z][a-z0-9_-]{0,31}\Z")
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}\Z")


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    reason: Reason
    stage: Stage
    service: str
    source_topic: str
    source_partition: int
    source_offset: int
    field: str | None = None
    error: str | None = None
    failed_at: datetime = dataclasses.field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        # Coerce so that parse -> build round-trips, and reject anything that is not a code.
        object.__setattr__(self, "reason", Reason(self.reason))
        object.__setattr__(self, "stage", Stage(self.stage))
        if not _SERVICE.match(self.service):
            raise ValueError(f"dlq.service must match {_SERVICE.pattern}")
        if not _TOPIC.match(self.source_topic):
            raise ValueError("dlq.source.topic is not a valid Kafka topic name")
        if self.source_partition < 0 or self.source_offset < 0:
            raise ValueError("dlq.source.partition and dlq.source.offset must not be negative")
        if self.field is not None and (len(self.field) > 128 or not _FIELD.match(self.field)):
            raise ValueError("dlq.field must be a schema field path like 'message_posted.text'")
        if self.error is not None and not _IDENTIFIER.match(self.error):
            raise ValueError("dlq.error must be an exception class name, not a message")
        if self.failed_at.tzinfo is None:
            raise ValueError("dlq.failed_at must be timezone-aware")
        # The header carries milliseconds; keep the same precision so a parsed letter compares equal.
        moment = self.failed_at.astimezone(UTC)
        object.__setattr__(self, "failed_at", moment.replace(microsecond=moment.microsecond // 1000 * 1000))


def _format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def dead_letter_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    """The ``dlq.*`` headers for ``letter``; append them to the original record's headers."""
    headers = [
        (REASON, letter.reason.value),
        (STAGE, letter.stage.value),
        (SERVICE, letter.service),
        (SOURCE_TOPIC, letter.source_topic),
        (SOURCE_PARTITION, str(letter.source_partition)),
        (SOURCE_OFFSET, str(letter.source_offset)),
        (FAILED_AT, _format_time(letter.failed_at)),
    ]
    if letter.field is not None:
        headers.append((FIELD, letter.field))
    if letter.error is not None:
        headers.append((ERROR, letter.error))
    return [(name, value.encode("ascii")) for name, value in headers]


def dead_letter_record(
    key: bytes | None,
    value: bytes | None,
    original_headers: Iterable[tuple[str, bytes]] | None,
    letter: DeadLetter,
) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """(key, value, headers) to produce to the dead-letter topic: key and value untouched.

    Any ``dlq.*`` headers already on the record (a replayed dead letter that failed again) are
    replaced, so a record carries exactly one reason: the latest.
    """
    kept = [(name, data) for name, data in (original_headers or ()) if not name.startswith(PREFIX)]
    return key, value, kept + dead_letter_headers(letter)


def parse_dead_letter(headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes]) -> DeadLetter:
    """Read the ``dlq.*`` headers back; ValueError naming the header if one is missing or bad."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    found = {name: data.decode("ascii") for name, data in items if name.startswith(PREFIX)}

    def need(name: str) -> str:
        if name not in found:
            raise ValueError(f"not a dead letter: header {name} is missing")
        return found[name]

    try:
        failed_at = datetime.strptime(need(FAILED_AT), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError as exc:
        if "missing" in str(exc):
            raise
        raise ValueError(f"header {FAILED_AT} is not an ISO 8601 UTC time") from None
    for name in (SOURCE_PARTITION, SOURCE_OFFSET):
        if not need(name).isdigit():
            raise ValueError(f"header {name} is not a decimal number")
    try:
        return DeadLetter(
            reason=Reason(need(REASON)),
            stage=Stage(need(STAGE)),
            service=need(SERVICE),
            source_topic=need(SOURCE_TOPIC),
            source_partition=int(need(SOURCE_PARTITION)),
            source_offset=int(need(SOURCE_OFFSET)),
            field=found.get(FIELD),
            error=found.get(ERROR),
            failed_at=failed_at,
        )
    except ValueError as exc:
        raise ValueError(f"bad dead-letter headers: {exc}") from None
