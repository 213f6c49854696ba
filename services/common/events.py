"""Decode and validate support events: the one validator the publisher and the triage worker share.

    from cctriage_common.events import decode_json, decode_protobuf

    result = decode_json(line)              # a JSON line, a dict, or JSON bytes
    result = decode_protobuf(kafka_value)   # serialized cctriage.events.v1.SupportEvent
    if result.ok:
        handle(result.event)
    else:
        for error in result.errors:         # ValidationError(field="message_posted.author_role", ...)
            print(error)

Nothing here raises on bad input: every problem comes back as a ``ValidationError`` naming the
field by its proto path (``customer.language``, ``metadata["campaign"]``,
``conversation_opened.required_skills[2]``) and a reason. Reasons never contain customer text,
customer ids or metadata values: they are safe to log, to print and to put in a dead-letter
header. The limits are one frozen settings object, ``ValidationPolicy``, so the publisher and
the worker enforce the same ones.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from cctriage.events.v1 import events_pb2
from cctriage_common.settings import SettingsError, env_field
from google.protobuf import json_format, unknown_fields
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

SupportEvent = events_pb2.SupportEvent

DEFAULT_MAX_TEXT_BYTES = 64 * 1024
# Kafka's default message.max.bytes is 1 MiB; an event never needs to come close.
MAX_EVENT_BYTES = 1024 * 1024
# A JSON line may be longer than its protobuf (escapes, names); bound it before parsing.
MAX_JSON_BYTES = 4 * MAX_EVENT_BYTES
MAX_ID_CHARS = 256
MAX_NAME_CHARS = 256
MAX_SUBJECT_BYTES = 4096
MAX_METADATA_ENTRIES = 64
MAX_METADATA_KEY_CHARS = 128
MAX_METADATA_VALUE_BYTES = 2048
MAX_REQUIRED_SKILLS = 32
MAX_SKILL_CHARS = 64
# Nothing in a contact centre happened before this; a smaller value is a unit or default bug.
EARLIEST_OCCURRED_AT_S = 946_684_800  # 2000-01-01T00:00:00Z

PAYLOAD_FIELDS = ("conversation_opened", "message_posted", "agent_joined", "conversation_closed")


@dataclasses.dataclass(frozen=True)
class ValidationPolicy:
    """Limits every support event is held to, by the publisher and by the triage worker alike."""

    max_text_bytes: int = env_field(
        "CCTRIAGE_EVENT_MAX_TEXT_BYTES",
        DEFAULT_MAX_TEXT_BYTES,
        "Largest message text accepted, in UTF-8 bytes.",
    )
    max_future_skew_s: float = env_field(
        "CCTRIAGE_EVENT_MAX_FUTURE_SKEW_S",
        300.0,
        "How far occurred_at may lie ahead of this machine's clock (clock skew), in seconds.",
    )
    accept_newer_schema: bool = env_field(
        "CCTRIAGE_EVENT_ACCEPT_NEWER_SCHEMA",
        False,
        "Accept unknown protobuf fields and unknown enum numbers (from a newer contract) instead of "
        "rejecting them.",
    )

    def validate(self) -> None:
        if self.max_text_bytes <= 0:
            raise SettingsError(f"CCTRIAGE_EVENT_MAX_TEXT_BYTES={self.max_text_bytes} must be positive")
        if self.max_text_bytes > MAX_EVENT_BYTES // 2:
            raise SettingsError(
                f"CCTRIAGE_EVENT_MAX_TEXT_BYTES={self.max_text_bytes} must be at most {MAX_EVENT_BYTES // 2}"
            )
        if self.max_future_skew_s < 0:
            raise SettingsError(
                f"CCTRIAGE_EVENT_MAX_FUTURE_SKEW_S={self.max_future_skew_s} must not be negative"
            )


DEFAULT_POLICY = ValidationPolicy()


# Error codes: the dead-letter vocabulary (cctriage_common.deadletter.Reason), so that a consumer
# can put the first error's code in ``dlq.reason`` as is.
UNDECODABLE = "undecodable"
MISSING_FIELD = "missing_field"
INVALID_FIELD = "invalid_field"
UNSUPPORTED_EVENT = "unsupported_event"
TOO_LARGE = "too_large"

_SCHEMA_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*\Z")
_MAP_KEY = re.compile(r'\["(?:[^"\\]|\\.)*"\]')


@dataclasses.dataclass(frozen=True)
class ValidationError:
    """One problem with one event: the proto field path ("" for the event as a whole), why, and a code.

    ``code`` is one of UNDECODABLE, MISSING_FIELD, INVALID_FIELD, UNSUPPORTED_EVENT, TOO_LARGE;
    when not given it follows from the error (required -> missing, over a limit -> too large).
    """

    field: str
    reason: str
    code: str = ""

    def __post_init__(self) -> None:
        if not self.code:
            if "the limit is" in self.reason:
                code = TOO_LARGE
            elif self.field == "payload" and self.reason.startswith("is required"):
                code = UNSUPPORTED_EVENT
            elif self.reason.startswith("is required"):
                code = MISSING_FIELD
            elif not self.field:
                code = UNDECODABLE
            else:
                code = INVALID_FIELD
            object.__setattr__(self, "code", code)

    @property
    def schema_field(self) -> str | None:
        """The plain proto path (``metadata``, not ``metadata["k"]``), or None for the whole event
        or an unknown field: what a ``dlq.field`` header may carry."""
        path = _MAP_KEY.sub("", self.field)
        return path if len(path) <= 128 and _SCHEMA_PATH.match(path) else None

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason, "code": self.code}


@dataclasses.dataclass(frozen=True)
class DecodedEvent:
    """The outcome of decoding and validating one event.

    ``event`` is None when the input could not be turned into a SupportEvent at all (not JSON,
    not protobuf, wrong types); it is set, with ``errors``, when it decoded but broke a rule.
    ``event_id`` is the event's id when one could be read safely, else "" (for reports).
    """

    event: SupportEvent | None
    errors: tuple[ValidationError, ...]
    event_id: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors and self.event is not None

    @property
    def code(self) -> str:
        """The first error's code ("" when valid): a dead-letter reason."""
        return self.errors[0].code if self.errors else ""

    def reasons(self) -> str:
        """All errors on one line, e.g. for a dead-letter header."""
        return "; ".join(str(error) for error in self.errors)


# ----------------------------------------------------------------------------------------------
# Semantic validation of a SupportEvent
# ----------------------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_WHITESPACE = re.compile(r"\s")
# BCP 47 shape (RFC 5646 "langtag"): language, script, region, variants, extensions, private
# use. Checks shape, not registry membership. The primary subtag is held to ISO 639's 2-3
# letters: the 4-8 letter forms RFC 5646 reserves are unused, and "English" is a mistake.
_LANGUAGE_TAG = re.compile(
    r"^(?:[A-Za-z]{2,3}(?:-[A-Za-z]{3}){0,3})"
    r"(?:-[A-Za-z]{4})?"
    r"(?:-(?:[A-Za-z]{2}|[0-9]{3}))?"
    r"(?:-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*"
    r"(?:-[0-9A-WY-Za-wy-z](?:-[A-Za-z0-9]{2,8})+)*"
    r"(?:-[Xx](?:-[A-Za-z0-9]{1,8})+)?$"
)
_EMAIL_LIKE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE_LIKE = re.compile(r"^\+[0-9][0-9().-]{6,}$")


def _utf8_problem(value: str) -> str | None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8 (contains an unpaired surrogate)"
    return None


def _check_id(errors: list[ValidationError], path: str, value: str, *, required: bool) -> None:
    """Ids are opaque, but they become Kafka keys, table keys and log fields: keep them plain."""
    if not value:
        if required:
            errors.append(ValidationError(path, "is required"))
        return
    problem = _utf8_problem(value)
    if problem:
        errors.append(ValidationError(path, problem))
    elif len(value) > MAX_ID_CHARS:
        errors.append(ValidationError(path, f"is {len(value)} characters; the limit is {MAX_ID_CHARS}"))
    elif _CONTROL.search(value):
        errors.append(ValidationError(path, "contains control characters"))
    elif _WHITESPACE.search(value):
        errors.append(ValidationError(path, "contains whitespace; ids must be a single token"))


def _check_name(errors: list[ValidationError], path: str, value: str, limit: int = MAX_NAME_CHARS) -> None:
    if not value:
        return
    problem = _utf8_problem(value)
    if problem:
        errors.append(ValidationError(path, problem))
    elif len(value) > limit:
        errors.append(ValidationError(path, f"is {len(value)} characters; the limit is {limit}"))
    elif _CONTROL.search(value):
        errors.append(ValidationError(path, "contains control characters"))
    elif value != value.strip():
        errors.append(ValidationError(path, "has leading or trailing whitespace"))


def _check_text(errors: list[ValidationError], path: str, value: str, limit: int) -> None:
    """Customer-written text: the reason may say how big it is, never what it says."""
    problem = _utf8_problem(value)
    if problem:
        errors.append(ValidationError(path, problem))
        return
    size = len(value.encode("utf-8"))
    if size > limit:
        errors.append(ValidationError(path, f"is {size} bytes (UTF-8); the limit is {limit} bytes"))
    if "\x00" in value:
        errors.append(ValidationError(path, "contains NUL characters"))


def _enum_names(enum: EnumDescriptor) -> str:
    return ", ".join(v.name for v in enum.values if v.number != 0)


def _check_enum(
    errors: list[ValidationError],
    path: str,
    enum: EnumDescriptor,
    number: int,
    policy: ValidationPolicy,
    *,
    required: bool,
) -> None:
    if number == 0:
        if required:
            errors.append(ValidationError(path, f"is required (one of {_enum_names(enum)})"))
        return
    if enum.values_by_number.get(number) is None and not policy.accept_newer_schema:
        errors.append(
            ValidationError(
                path,
                f"unknown {enum.name} value {number}; known values are {_enum_names(enum)} "
                "(a newer contract? upgrade cctriage)",
            )
        )


def _format_ts(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _check_occurred_at(
    errors: list[ValidationError], event: SupportEvent, policy: ValidationPolicy, now: float
) -> None:
    if not event.HasField("occurred_at"):
        errors.append(ValidationError("occurred_at", "is required (when it happened at the source)"))
        return
    ts = event.occurred_at
    if not 0 <= ts.nanos <= 999_999_999:
        errors.append(ValidationError("occurred_at.nanos", f"must be 0..999999999, got {ts.nanos}"))
        return
    if ts.seconds < EARLIEST_OCCURRED_AT_S:
        errors.append(
            ValidationError(
                "occurred_at", f"is before {_format_ts(EARLIEST_OCCURRED_AT_S)} (a unit or default bug?)"
            )
        )
        return
    ahead = ts.seconds + ts.nanos / 1e9 - now
    if ahead > policy.max_future_skew_s:
        errors.append(
            ValidationError(
                "occurred_at",
                f"is {ahead:.0f} s in the future; at most {policy.max_future_skew_s:.0f} s of clock skew "
                "is accepted",
            )
        )


def _check_customer(errors: list[ValidationError], customer: Any, policy: ValidationPolicy) -> None:
    _check_id(errors, "customer.customer_id", customer.customer_id, required=False)
    if customer.customer_id and (
        _EMAIL_LIKE.match(customer.customer_id) or _PHONE_LIKE.match(customer.customer_id)
    ):
        # The id travels into state stores and routing decisions: it must be pseudonymous.
        errors.append(
            ValidationError(
                "customer.customer_id",
                "looks like an e-mail address or phone number; use an opaque, pseudonymous id",
            )
        )
    _check_enum(
        errors, "customer.tier", events_pb2.CustomerTier.DESCRIPTOR, customer.tier, policy, required=False
    )
    _check_name(errors, "customer.segment", customer.segment)
    language = customer.language
    if language:
        if "_" in language and _LANGUAGE_TAG.match(language.replace("_", "-")):
            errors.append(
                ValidationError(
                    "customer.language", "is not a BCP 47 language tag: use '-' not '_' (e.g. en-GB)"
                )
            )
        elif len(language) > 35 or not _LANGUAGE_TAG.match(language):
            errors.append(
                ValidationError(
                    "customer.language", "is not a BCP 47 language tag (e.g. en, en-GB, pt-BR, zh-Hant)"
                )
            )


def _check_metadata(errors: list[ValidationError], metadata: Mapping[str, str]) -> None:
    if len(metadata) > MAX_METADATA_ENTRIES:
        errors.append(
            ValidationError("metadata", f"has {len(metadata)} entries; the limit is {MAX_METADATA_ENTRIES}")
        )
    for key in sorted(metadata):
        # Keys are the publisher's own names, not customer data: name them, clipped.
        path = f"metadata[{json.dumps(key[:40], ensure_ascii=True)}]"
        if not key:
            errors.append(ValidationError("metadata", "has an empty key"))
        elif len(key) > MAX_METADATA_KEY_CHARS or _CONTROL.search(key) or _utf8_problem(key):
            errors.append(
                ValidationError(path, f"key must be 1..{MAX_METADATA_KEY_CHARS} printable UTF-8 characters")
            )
        value = metadata[key]
        problem = _utf8_problem(value)
        if problem:
            errors.append(ValidationError(path, problem))
        elif len(value.encode("utf-8")) > MAX_METADATA_VALUE_BYTES:
            errors.append(
                ValidationError(
                    path,
                    f"value is {len(value.encode('utf-8'))} bytes; the limit is {MAX_METADATA_VALUE_BYTES}",
                )
            )


def _check_payload(
    errors: list[ValidationError], event: SupportEvent, kind: str, policy: ValidationPolicy
) -> None:
    if kind == "conversation_opened":
        opened = event.conversation_opened
        _check_text(errors, "conversation_opened.subject", opened.subject, MAX_SUBJECT_BYTES)
        if len(opened.required_skills) > MAX_REQUIRED_SKILLS:
            errors.append(
                ValidationError(
                    "conversation_opened.required_skills",
                    f"has {len(opened.required_skills)} skills; the limit is {MAX_REQUIRED_SKILLS}",
                )
            )
        for index, skill in enumerate(opened.required_skills):
            path = f"conversation_opened.required_skills[{index}]"
            if not skill:
                errors.append(ValidationError(path, "is empty"))
            else:
                _check_name(errors, path, skill, MAX_SKILL_CHARS)
        _check_id(errors, "conversation_opened.previous_agent_id", opened.previous_agent_id, required=False)
    elif kind == "message_posted":
        message = event.message_posted
        _check_id(errors, "message_posted.message_id", message.message_id, required=False)
        _check_enum(
            errors,
            "message_posted.author_role",
            events_pb2.AuthorRole.DESCRIPTOR,
            message.author_role,
            policy,
            required=True,
        )
        _check_id(errors, "message_posted.author_id", message.author_id, required=False)
        if not message.text:
            errors.append(ValidationError("message_posted.text", "is required"))
        else:
            _check_text(errors, "message_posted.text", message.text, policy.max_text_bytes)
        confidence = message.transcript_confidence
        if not math.isfinite(confidence) or not 0.0 <= confidence <= 1.0:
            errors.append(ValidationError("message_posted.transcript_confidence", "must be between 0 and 1"))
    elif kind == "agent_joined":
        _check_id(errors, "agent_joined.agent_id", event.agent_joined.agent_id, required=True)
    elif kind == "conversation_closed":
        _check_enum(
            errors,
            "conversation_closed.reason",
            events_pb2.CloseReason.DESCRIPTOR,
            event.conversation_closed.reason,
            policy,
            required=False,
        )


def validate(
    event: SupportEvent, policy: ValidationPolicy = DEFAULT_POLICY, *, now: float | None = None
) -> list[ValidationError]:
    """Every rule a SupportEvent must meet; an empty list means it is valid."""
    now = time.time() if now is None else now
    errors: list[ValidationError] = []
    _check_id(errors, "event_id", event.event_id, required=True)
    _check_id(errors, "conversation_id", event.conversation_id, required=True)
    _check_id(errors, "tenant_id", event.tenant_id, required=True)
    _check_name(errors, "queue", event.queue)
    _check_name(errors, "source", event.source)
    if event.HasField("customer"):
        _check_customer(errors, event.customer, policy)
    _check_enum(errors, "channel", events_pb2.Channel.DESCRIPTOR, event.channel, policy, required=True)
    _check_occurred_at(errors, event, policy, now)
    _check_metadata(errors, event.metadata)
    kind = event.WhichOneof("payload")
    if kind is None:
        errors.append(
            ValidationError("payload", f"is required: set exactly one of {', '.join(PAYLOAD_FIELDS)}")
        )
    else:
        _check_payload(errors, event, kind, policy)
    return errors


def _safe_event_id(value: object) -> str:
    # Only what looks like an id is echoed in reports: a corrupted record's "event id" may be
    # shifted customer text, which has whitespace.
    if (
        isinstance(value, str)
        and 0 < len(value) <= MAX_ID_CHARS
        and not _CONTROL.search(value)
        and not _WHITESPACE.search(value)
    ):
        if _utf8_problem(value) is None:
            return value
    return ""


# ----------------------------------------------------------------------------------------------
# Protobuf bytes
# ----------------------------------------------------------------------------------------------


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise IndexError
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _locate_wire_problem(data: bytes, descriptor: Descriptor, prefix: str) -> ValidationError | None:
    """Walk the wire format to name the field a protobuf decode error comes from."""
    problem = _walk_wire(data, descriptor, prefix)
    return None if problem is None else dataclasses.replace(problem, code=UNDECODABLE)


def _walk_wire(data: bytes, descriptor: Descriptor, prefix: str) -> ValidationError | None:
    pos = 0
    while pos < len(data):
        try:
            tag, pos = _read_varint(data, pos)
        except IndexError:
            return ValidationError(prefix.rstrip("."), "truncated protobuf (incomplete field tag)")
        number, wire_type = tag >> 3, tag & 7
        field = descriptor.fields_by_number.get(number)
        path = prefix + (field.name if field else f"<field {number}>")
        try:
            if number == 0:
                return ValidationError(prefix.rstrip("."), "not a protobuf SupportEvent (field number 0)")
            if wire_type == 0:
                _, pos = _read_varint(data, pos)
            elif wire_type == 1:
                pos += 8
            elif wire_type == 5:
                pos += 4
            elif wire_type == 2:
                length, pos = _read_varint(data, pos)
                chunk = data[pos : pos + length]
                if len(chunk) < length:
                    return ValidationError(path, "truncated protobuf (field runs past the end)")
                pos += length
                if field is not None and field.type == FieldDescriptor.TYPE_STRING:
                    try:
                        chunk.decode("utf-8")
                    except UnicodeDecodeError:
                        return ValidationError(path, "is not valid UTF-8")
                elif field is not None and field.type == FieldDescriptor.TYPE_MESSAGE:
                    inner = _walk_wire(chunk, field.message_type, path + ".")
                    if inner is not None:
                        return inner
            else:
                return ValidationError(path, f"unsupported protobuf wire type {wire_type}")
        except IndexError:
            return ValidationError(path, "truncated protobuf")
        if pos > len(data):
            return ValidationError(path, "truncated protobuf (field runs past the end)")
    return None


def _unknown_field_errors(message: Any, prefix: str = "") -> list[ValidationError]:
    errors = [
        ValidationError(
            f"{prefix}<field {unknown.field_number}>",
            "unknown field (not in this contract: a newer publisher? upgrade cctriage)",
        )
        for unknown in unknown_fields.UnknownFieldSet(message)
    ]
    for field, value in message.ListFields():
        if field.type != FieldDescriptor.TYPE_MESSAGE or field.message_type.GetOptions().map_entry:
            continue
        if field.message_type.full_name == Timestamp.DESCRIPTOR.full_name:
            continue
        items = value if field.is_repeated else [value]
        for index, item in enumerate(items):
            suffix = f"[{index}]" if field.is_repeated else ""
            errors.extend(_unknown_field_errors(item, f"{prefix}{field.name}{suffix}."))
    return errors


def decode_protobuf(
    data: bytes, policy: ValidationPolicy = DEFAULT_POLICY, *, now: float | None = None
) -> DecodedEvent:
    """Decode a serialized SupportEvent (a Kafka value) and validate it."""
    if not isinstance(data, bytes | bytearray | memoryview):
        return DecodedEvent(None, (ValidationError("", f"expected bytes, got {type(data).__name__}"),))
    data = bytes(data)
    if not data:
        return DecodedEvent(None, (ValidationError("", "empty value: not a SupportEvent"),))
    if len(data) > MAX_EVENT_BYTES:
        return DecodedEvent(
            None, (ValidationError("", f"event is {len(data)} bytes; the limit is {MAX_EVENT_BYTES}"),)
        )
    if data.lstrip()[:1] == b"{":
        # 0x7B would be field 15 with the deprecated group wire type: never a SupportEvent.
        return DecodedEvent(
            None,
            (
                ValidationError(
                    "",
                    "value is JSON, expected protobuf bytes (publish JSON with cctriage-publish, "
                    "which converts it)",
                ),
            ),
        )
    event = SupportEvent()
    try:
        event.ParseFromString(data)
    except DecodeError:
        located = _locate_wire_problem(data, SupportEvent.DESCRIPTOR, "")
        error = located or ValidationError("", "not a valid protobuf SupportEvent")
        return DecodedEvent(None, (error,))
    errors: list[ValidationError] = []
    if not policy.accept_newer_schema:
        errors.extend(_unknown_field_errors(event))
    errors.extend(validate(event, policy, now=now))
    return DecodedEvent(event, tuple(errors), _safe_event_id(event.event_id))


# ----------------------------------------------------------------------------------------------
# The protobuf JSON mapping
# ----------------------------------------------------------------------------------------------


class _JsonObject(dict):
    """A JSON object that remembers keys it saw more than once (json.loads keeps the last)."""

    duplicates: tuple[str, ...] = ()


def _object_pairs(pairs: list[tuple[str, Any]]) -> _JsonObject:
    obj = _JsonObject()
    seen: list[str] = []
    for key, value in pairs:
        if key in obj:
            seen.append(key)
        obj[key] = value
    obj.duplicates = tuple(seen)
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _key_for_path(key: str) -> str:
    return json.dumps(key[:40], ensure_ascii=True)


_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _name_for_path(key: str) -> str:
    """An object key as it may appear in an error: a field-name-like key (a typo of a field) is
    shown; anything else (free text used as a key, control characters) is not echoed."""
    return key if _FIELD_NAME.fullmatch(key) else f"<key of {len(key)} characters>"


class _JsonChecker:
    """Checks a decoded JSON value against the protobuf JSON mapping of a message, field by field.

    json_format.ParseDict is the converter; this runs first so that every error names the field
    by its proto path and never echoes a value (ParseDict's messages can quote customer text).
    """

    def __init__(self, policy: ValidationPolicy) -> None:
        self.policy = policy
        self.errors: list[ValidationError] = []

    def error(self, path: str, reason: str) -> None:
        self.errors.append(ValidationError(path, reason))

    def message(self, value: Any, descriptor: Descriptor, prefix: str) -> None:
        if not isinstance(value, dict):
            self.error(prefix.rstrip("."), f"must be a JSON object, got {_json_type(value)}")
            return
        for key in getattr(value, "duplicates", ()):
            self.error(prefix + _name_for_path(key), "is given more than once in the same object")
        by_name: dict[str, FieldDescriptor] = {}
        for field in descriptor.fields:
            by_name[field.json_name] = field
            by_name[field.name] = field
        seen: dict[str, str] = {}
        oneofs: dict[str, list[str]] = {}
        for key, item in value.items():
            if not isinstance(key, str):  # a dict from a Python caller, not JSON
                self.error(prefix.rstrip("."), f"has a key that is not a string ({type(key).__name__})")
                continue
            field = by_name.get(key)
            if field is None:
                suggestion = difflib.get_close_matches(key, list(by_name), n=1)
                hint = f"; did you mean {suggestion[0]!r}?" if suggestion else ""
                self.error(prefix + _name_for_path(key), f"unknown field{hint}")
                continue
            path = prefix + field.name
            if field.name in seen:
                self.error(path, f"is given twice (as {seen[field.name]!r} and {key!r})")
                continue
            seen[field.name] = key
            if item is None:
                continue  # the JSON mapping: null means "not set"
            if field.containing_oneof is not None:
                oneofs.setdefault(field.containing_oneof.name, []).append(field.name)
            self.field(item, field, path)
        for oneof, names in oneofs.items():
            if len(names) > 1:
                self.error(prefix + oneof, f"only one may be set, got {', '.join(names)}")

    def field(self, value: Any, field: FieldDescriptor, path: str) -> None:
        if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry:
            if not isinstance(value, dict):
                self.error(path, f"must be a JSON object of string values, got {_json_type(value)}")
                return
            value_field = field.message_type.fields_by_name["value"]
            for key in getattr(value, "duplicates", ()):
                self.error(f"{path}[{_key_for_path(key)}]", "is given more than once in the same object")
            for key, item in value.items():
                if not isinstance(key, str):
                    self.error(path, f"has a key that is not a string ({type(key).__name__})")
                    continue
                if _utf8_problem(key):
                    reason = "key is not valid UTF-8 (contains an unpaired surrogate)"
                    self.error(f"{path}[{_key_for_path(key)}]", reason)
                self.scalar(item, value_field, f"{path}[{_key_for_path(key)}]")
            return
        if field.is_repeated:
            if not isinstance(value, list):
                self.error(path, f"must be a JSON array, got {_json_type(value)}")
                return
            for index, item in enumerate(value):
                if item is None:
                    self.error(f"{path}[{index}]", "must not be null")
                else:
                    self.scalar(item, field, f"{path}[{index}]")
            return
        self.scalar(value, field, path)

    def scalar(self, value: Any, field: FieldDescriptor, path: str) -> None:
        kind = field.type
        if kind == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type.full_name == Timestamp.DESCRIPTOR.full_name:
                self.timestamp(value, path)
            else:
                self.message(value, field.message_type, path + ".")
        elif kind == FieldDescriptor.TYPE_STRING:
            if not isinstance(value, str):
                self.error(path, f"must be a string, got {_json_type(value)}")
            else:
                problem = _utf8_problem(value)
                if problem:
                    self.error(path, problem)
        elif kind == FieldDescriptor.TYPE_ENUM:
            self.enum(value, field.enum_type, path)
        elif kind == FieldDescriptor.TYPE_BOOL:
            if not isinstance(value, bool):
                self.error(path, f"must be true or false, got {_json_type(value)}")
        elif kind in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
            self.number(value, path, single=kind == FieldDescriptor.TYPE_FLOAT)
        elif kind in (
            FieldDescriptor.TYPE_UINT32,
            FieldDescriptor.TYPE_INT32,
            FieldDescriptor.TYPE_UINT64,
            FieldDescriptor.TYPE_INT64,
        ):
            self.integer(value, kind, path)
        else:  # bytes and the rest: nothing in this contract uses them yet
            if not isinstance(value, str):
                self.error(path, f"must be a string, got {_json_type(value)}")

    def timestamp(self, value: Any, path: str) -> None:
        example = "an RFC 3339 timestamp with a time zone, e.g. 2026-11-22T09:15:02Z"
        if not isinstance(value, str):
            self.error(path, f"must be {example}, got {_json_type(value)}")
            return
        try:
            Timestamp().FromJsonString(value)
        except ValueError:
            self.error(path, f"must be {example}")

    def enum(self, value: Any, enum: EnumDescriptor, path: str) -> None:
        if isinstance(value, str):
            if _utf8_problem(value):
                # Checked first: looking a lone surrogate up in upb's values_by_name leaves a
                # UnicodeEncodeError pending, which surfaces later as a SystemError (found by fuzzing).
                self.error(path, f"unknown {enum.name} value (not valid UTF-8)")
                return
            if value in enum.values_by_name:
                return
            shown = f" {value!r}" if re.fullmatch(r"[A-Za-z0-9_]{1,48}", value) else ""
            self.error(path, f"unknown {enum.name} value{shown}; known values are {_enum_names(enum)}")
        elif isinstance(value, int) and not isinstance(value, bool):
            if not -(2**31) <= value < 2**31:
                self.error(path, f"{enum.name} number out of range")
            # Known-ness of numbers is a rule of validate(), shared with protobuf input.
        else:
            self.error(
                path, f"must be a {enum.name} name (e.g. {enum.values[1].name}), got {_json_type(value)}"
            )

    def number(self, value: Any, path: str, single: bool = False) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            self.error(path, f"must be a number, got {_json_type(value)}")
        elif isinstance(value, str):
            if value in ("NaN", "Infinity", "-Infinity"):
                return  # the JSON mapping's names for the special values
            try:
                parsed = float(value)
            except ValueError:
                self.error(path, "must be a number (a string that is not one was given)")
                return
            if not math.isfinite(parsed):
                self.error(path, "must be a number within the range of a double")
            elif single and abs(parsed) > FLOAT32_MAX:
                self.error(path, f"must be a number within the range of a float (±{FLOAT32_MAX:.4g})")
        elif not _fits_a_double(value):
            # 1e400 in JSON parses to inf; json_format would reject it with a message that quotes it.
            self.error(path, "must be a number within the range of a double")
        elif single and abs(value) > FLOAT32_MAX:
            self.error(path, f"must be a number within the range of a float (±{FLOAT32_MAX:.4g})")

    def integer(self, value: Any, kind: int, path: str) -> None:
        if isinstance(value, bool):
            self.error(path, "must be an integer, got a boolean")
            return
        if isinstance(value, str):
            if not re.fullmatch(r"-?[0-9]{1,20}", value):
                self.error(path, "must be an integer (a string that is not one was given)")
                return
            value = int(value)
        elif isinstance(value, float):
            if not math.isfinite(value):
                self.error(path, "must be an integer, got a number out of range")
                return
            if not value.is_integer():
                self.error(path, "must be an integer, got a fraction")
                return
            value = int(value)
        elif not isinstance(value, int):
            self.error(path, f"must be an integer, got {_json_type(value)}")
            return
        bounds = {
            FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
            FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
            FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
            FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
        }[kind]
        if not bounds[0] <= value <= bounds[1]:
            self.error(path, f"must be between {bounds[0]} and {bounds[1]}")


FLOAT32_MAX = float.fromhex("0x1.fffffep+127")


def _fits_a_double(value: int | float) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return abs(value) <= 1.7976931348623157e308


def parse_json_text(text: str | bytes) -> tuple[Any, ValidationError | None]:
    """Parse one JSON document; duplicate keys are remembered, NaN/Infinity literals rejected."""
    if isinstance(text, bytes | bytearray):
        if len(text) > MAX_JSON_BYTES:
            return None, ValidationError("", f"line is {len(text)} bytes; the limit is {MAX_JSON_BYTES}")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, ValidationError("", f"not valid UTF-8 (byte {exc.start + 1})")
    if len(text) > MAX_JSON_BYTES:
        return None, ValidationError("", f"line is {len(text)} characters; the limit is {MAX_JSON_BYTES}")
    try:
        return json.loads(text, object_pairs_hook=_object_pairs, parse_constant=_reject_constant), None
    except json.JSONDecodeError as exc:
        # exc.msg names the syntax problem ("Expecting ',' delimiter"), never the content.
        return None, ValidationError("", f"invalid JSON: {exc.msg} at column {exc.colno}")
    except RecursionError:
        return None, ValidationError("", "invalid JSON: nested too deeply")
    except ValueError as exc:
        if "not valid JSON" in str(exc):
            reason = str(exc)  # NaN/Infinity literals, from _reject_constant: names no content
        elif "digits" in str(exc):
            reason = "a number has too many digits"  # Python's int conversion limit (4300 digits)
        else:
            reason = "cannot be parsed"
        return None, ValidationError("", f"invalid JSON: {reason}")


def decode_json(
    value: str | bytes | Mapping[str, Any],
    policy: ValidationPolicy = DEFAULT_POLICY,
    *,
    now: float | None = None,
) -> DecodedEvent:
    """Decode one event in the protobuf JSON mapping (lowerCamel or snake_case names) and validate it.

    ``value`` is a JSON text (str or UTF-8 bytes) or an already-decoded dict.
    """
    if isinstance(value, str | bytes | bytearray):
        document, error = parse_json_text(value)
        if error is not None:
            return DecodedEvent(None, (error,))
    else:
        document = value
    if not isinstance(document, Mapping):
        return DecodedEvent(
            None, (ValidationError("", f"an event must be a JSON object, got {_json_type(document)}"),)
        )
    if not isinstance(document, dict):
        document = dict(document)
    event_id = _safe_event_id(document.get("eventId", document.get("event_id")))
    checker = _JsonChecker(policy)
    checker.message(document, SupportEvent.DESCRIPTOR, "")
    if checker.errors:
        return DecodedEvent(None, tuple(checker.errors), event_id)
    event = SupportEvent()
    try:
        json_format.ParseDict(document, event)
    except (json_format.ParseError, ValueError, TypeError):
        # The checker should have caught it; ParseDict's own message may quote the value.
        return DecodedEvent(
            None, (ValidationError("", "does not match the protobuf JSON mapping of SupportEvent"),), event_id
        )
    errors = validate(event, policy, now=now)
    return DecodedEvent(event, tuple(errors), _safe_event_id(event.event_id))


def decode_message(
    value: SupportEvent | Mapping[str, Any] | str | bytes,
    policy: ValidationPolicy = DEFAULT_POLICY,
    *,
    now: float | None = None,
) -> DecodedEvent:
    """Validate whatever a Python caller hands over: a SupportEvent, a dict, JSON text or protobuf bytes."""
    if isinstance(value, SupportEvent):
        errors: list[ValidationError] = []
        if not policy.accept_newer_schema:
            errors.extend(_unknown_field_errors(value))
        errors.extend(validate(value, policy, now=now))
        return DecodedEvent(value, tuple(errors), _safe_event_id(value.event_id))
    if isinstance(value, str | Mapping):
        return decode_json(value, policy, now=now)
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        if data.lstrip()[:1] == b"{":
            return decode_json(data, policy, now=now)
        return decode_protobuf(data, policy, now=now)
    return DecodedEvent(
        None,
        (
            ValidationError(
                "", f"expected a SupportEvent, dict, JSON text or bytes, got {type(value).__name__}"
            ),
        ),
    )


def to_json_dict(event: SupportEvent) -> dict[str, Any]:
    """The protobuf JSON mapping of an event (lowerCamel names), as docs/events.md documents it."""
    return json_format.MessageToDict(event)


def field_paths(descriptor: Descriptor = SupportEvent.DESCRIPTOR, prefix: str = "") -> Iterable[str]:
    """Every proto field path of the contract (for the JSON Schema agreement test and docs)."""
    for field in descriptor.fields:
        path = prefix + field.name
        yield path
        if (
            field.type == FieldDescriptor.TYPE_MESSAGE
            and not field.message_type.GetOptions().map_entry
            and field.message_type.full_name != Timestamp.DESCRIPTOR.full_name
        ):
            yield from field_paths(field.message_type, path + ".")
