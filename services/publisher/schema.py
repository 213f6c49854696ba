"""Generate docs/support-event.schema.json, the JSON Schema of SupportEvent's protobuf JSON mapping.

    python -m cctriage_publish.schema            # rewrite docs/support-event.schema.json
    python -m cctriage_publish.schema --check    # exit 1 when the committed schema is stale

Built from proto/cctriage/events/v1/events.proto itself (compiled with grpc_tools, dev
dependency, so that the proto's comments become the descriptions), plus the validator's
limits from ``cctriage_common.events``. Property names are the lowerCamel JSON names; the
decoder also accepts the proto's snake_case names, which the schema lists as aliases.
The schema checks shape; ``cctriage-publish --dry-run`` checks every rule.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from cctriage_common import events as rules
from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = ROOT / "proto"
PROTO = "cctriage/events/v1/events.proto"
SCHEMA_PATH = ROOT / "docs" / "support-event.schema.json"
SCHEMA_ID = "https://github.com/cctriage/cctriage/blob/main/docs/support-event.schema.json"

_ID = {"type": "string", "minLength": 1, "maxLength": rules.MAX_ID_CHARS, "pattern": r"^[^\s\x00-\x1f\x7f]+$"}
_NAME = {"type": "string", "maxLength": rules.MAX_NAME_CHARS}
# Extra constraints by proto field path: the validator's rules that JSON Schema can express.
CONSTRAINTS: dict[str, dict[str, Any]] = {
    "event_id": _ID,
    "conversation_id": _ID,
    "tenant_id": _ID,
    "queue": _NAME,
    "source": _NAME,
    "customer.customer_id": {**_ID, "minLength": 0},
    "customer.segment": _NAME,
    "customer.language": {
        "type": "string",
        "maxLength": 35,
        "pattern": r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$",
        "examples": ["en", "en-GB", "pt-BR", "zh-Hant"],
    },
    "metadata": {"maxProperties": rules.MAX_METADATA_ENTRIES},
    "conversation_opened.subject": {"type": "string", "maxLength": rules.MAX_SUBJECT_BYTES},
    "conversation_opened.required_skills": {"maxItems": rules.MAX_REQUIRED_SKILLS},
    "conversation_opened.previous_agent_id": {**_ID, "minLength": 0},
    "message_posted.message_id": {**_ID, "minLength": 0},
    "message_posted.author_id": {**_ID, "minLength": 0},
    "message_posted.text": {"type": "string", "minLength": 1, "maxLength": rules.DEFAULT_MAX_TEXT_BYTES},
    "message_posted.transcript_confidence": {"type": "number", "minimum": 0, "maximum": 1},
    "agent_joined.agent_id": _ID,
}
# Required by the validator (proto3 has no "required"); enums listed here may not be UNSPECIFIED.
REQUIRED = {
    "": ["event_id", "conversation_id", "tenant_id", "channel", "occurred_at"],
    "message_posted": ["author_role", "text"],
    "agent_joined": ["agent_id"],
}

T = descriptor_pb2.FieldDescriptorProto


def compile_proto() -> descriptor_pb2.FileDescriptorSet:
    """events.proto with its imports and comments, compiled by grpc_tools' protoc."""
    import grpc_tools
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "events.pb"
        args = [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            "--include_source_info",
            "--include_imports",
            f"--descriptor_set_out={out}",
            PROTO,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def _comments(file: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    found = {}
    for location in file.source_code_info.location:
        text = (location.leading_comments or location.trailing_comments).strip()
        if text:
            found[tuple(location.path)] = " ".join(line.strip() for line in text.splitlines())
    return found


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def build_schema(file_set: descriptor_pb2.FileDescriptorSet | None = None) -> dict[str, Any]:
    file_set = file_set or compile_proto()
    (file,) = [f for f in file_set.file if f.name == PROTO]
    comments = _comments(file)
    package = "." + file.package
    messages = {f"{package}.{m.name}": (index, m) for index, m in enumerate(file.message_type)}
    enums = {f"{package}.{e.name}": (index, e) for index, e in enumerate(file.enum_type)}
    defs: dict[str, Any] = {}

    for index, enum in enums.values():
        values = [v.name for v in enum.value if v.number != 0]
        defs[enum.name] = {
            "description": comments.get((5, index), f"{enum.name} (a name from the proto)."),
            "type": "string",
            "enum": values,
        }

    def field_schema(field: T, path: str, source_path: tuple[int, ...]) -> dict[str, Any]:
        if field.type == T.TYPE_MESSAGE and field.type_name == ".google.protobuf.Timestamp":
            schema: dict[str, Any] = {
                "type": "string",
                "format": "date-time",
                "examples": ["2026-11-22T09:15:02Z", "2026-11-22T10:15:02.250+01:00"],
            }
        elif field.type == T.TYPE_MESSAGE:
            _, entry = messages.get(field.type_name, (None, None))
            if entry is None:  # a map entry: nested type of the containing message
                schema = {"type": "object", "additionalProperties": {"type": "string"}}
                if path == "metadata":
                    schema["additionalProperties"]["maxLength"] = rules.MAX_METADATA_VALUE_BYTES
                    schema["propertyNames"] = {"minLength": 1, "maxLength": rules.MAX_METADATA_KEY_CHARS}
            else:
                schema = {"$ref": f"#/$defs/{entry.name}"}
        elif field.type == T.TYPE_ENUM:
            schema = {"$ref": f"#/$defs/{field.type_name.rsplit('.', 1)[1]}"}
        elif field.type == T.TYPE_STRING:
            schema = {"type": "string"}
        elif field.type == T.TYPE_UINT32:
            schema = {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}
        elif field.type in (T.TYPE_FLOAT, T.TYPE_DOUBLE):
            schema = {"type": "number"}
        elif field.type == T.TYPE_BOOL:
            schema = {"type": "boolean"}
        else:
            raise ValueError(f"{path}: add a JSON Schema mapping for proto type {field.type}")
        if field.label == T.LABEL_REPEATED and not schema.get("type") == "object":
            schema = {"type": "array", "items": schema}
        extra = CONSTRAINTS.get(path, {})
        if "$ref" in schema and extra:
            schema = {"allOf": [schema], **extra}
        else:
            schema.update(extra)
        description = comments.get(source_path)
        if description:
            schema = {"description": description, **schema}
        return schema

    def message_schema(
        index: int, message: descriptor_pb2.DescriptorProto, prefix: str, pointer: str
    ) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        not_both = []
        for field_index, field in enumerate(message.field):
            path = prefix + field.name
            camel = field.json_name or _camel(field.name)
            properties[camel] = field_schema(field, path, (4, index, 2, field_index))
            if camel != field.name:
                properties[field.name] = {"$ref": f"{pointer}/properties/{camel}"}
                not_both.append({"required": [camel, field.name]})
        schema: dict[str, Any] = {
            "type": "object",
            "description": comments.get((4, index), message.name),
            "properties": properties,
            "additionalProperties": False,
        }
        all_of: list[dict[str, Any]] = []
        for name in REQUIRED.get(prefix.rstrip("."), []):
            camel = _camel(name)
            spellings = [camel, name] if camel != name else [name]
            all_of.append({"anyOf": [{"required": [s]} for s in spellings]})
        if not_both:
            # The same field under both spellings is ambiguous: the decoder rejects it.
            all_of.append({"not": {"anyOf": not_both}})
        oneofs: dict[int, list[str]] = {}
        for field in message.field:
            if field.HasField("oneof_index"):
                oneofs.setdefault(field.oneof_index, []).append(field.name)
        for names in oneofs.values():
            # Exactly one payload, under either spelling.
            spellings = sorted({s for n in names for s in (n, _camel(n))})
            all_of.append({"oneOf": [{"required": [s]} for s in spellings]})
        if all_of:
            schema["allOf"] = all_of
        return schema

    payload_prefix = {
        "ConversationOpened": "conversation_opened.",
        "MessagePosted": "message_posted.",
        "AgentJoined": "agent_joined.",
        "ConversationClosed": "conversation_closed.",
        "Customer": "customer.",
    }
    for index, message in messages.values():
        if message.name == "SupportEvent":
            continue
        prefix = payload_prefix.get(message.name, message.name + ".")
        defs[message.name] = message_schema(index, message, prefix, f"#/$defs/{message.name}")

    index, event = messages[f"{package}.SupportEvent"]
    root = message_schema(index, event, "", "#")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "cctriage.events.v1.SupportEvent (protobuf JSON mapping)",
        "description": (
            "One support event per JSON line, as cctriage-publish reads it. Generated from "
            f"proto/{PROTO} by `python -m cctriage_publish.schema`; do not edit by hand. "
            "Shape only: `cctriage-publish --dry-run` checks every rule (UTF-8 byte limits, "
            "timestamps in the future, e-mail-like customer ids). See docs/events.md."
        ),
        **{k: v for k, v in root.items() if k != "description"},
        "$comment": root["description"],
        "$defs": defs,
    }


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed schema is stale")
    args = parser.parse_args(argv)
    text = render(build_schema())
    if args.check:
        if not SCHEMA_PATH.exists() or SCHEMA_PATH.read_text() != text:
            print(
                f"{SCHEMA_PATH.relative_to(ROOT)} is stale; run `python -m cctriage_publish.schema`",
                file=sys.stderr,
            )
            return 1
        print(f"{SCHEMA_PATH.relative_to(ROOT)} is up to date")
        return 0
    SCHEMA_PATH.write_text(text)
    print(f"wrote {SCHEMA_PATH.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
