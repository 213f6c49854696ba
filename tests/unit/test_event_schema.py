"""docs/support-event.schema.json agrees with events.proto, and the examples agree with both."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from cctriage.events.v1 import events_pb2
from cctriage_common.events import decode_json, field_paths
from cctriage_publish import schema as schema_module
from google.protobuf.descriptor import FieldDescriptor

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCHEMA = json.loads((DOCS / "support-event.schema.json").read_text())


def schema_node(path: str) -> dict:
    """The schema of a proto field path (snake_case), following $refs."""
    node = SCHEMA
    for part in path.split("."):
        while "$ref" in node or ("allOf" in node and "properties" not in node):
            node = resolve(node["$ref"]) if "$ref" in node else resolve(node["allOf"][0]["$ref"])
        assert part in node["properties"], f"{path}: {part!r} missing from the schema"
        node = node["properties"][part]
    return node


def resolve(ref: str) -> dict:
    node = SCHEMA
    for part in ref.removeprefix("#/").split("/"):
        if part:
            node = node[part]
    return node


def test_every_proto_field_is_in_the_schema_under_both_names():
    descriptor_fields = {}

    def walk(descriptor, prefix=""):
        for field in descriptor.fields:
            descriptor_fields[prefix + field.name] = field
            if field.type == FieldDescriptor.TYPE_MESSAGE and not field.message_type.GetOptions().map_entry:
                if field.message_type.full_name != "google.protobuf.Timestamp":
                    walk(field.message_type, prefix + field.name + ".")

    walk(events_pb2.SupportEvent.DESCRIPTOR)
    assert set(descriptor_fields) == set(field_paths())
    for path, field in descriptor_fields.items():
        schema_node(path)  # the snake_case name
        parent = ".".join(path.split(".")[:-1])
        camel_path = (parent + "." if parent else "") + field.json_name
        schema_node(camel_path)


def test_enum_names_match_the_proto():
    for enum in events_pb2.DESCRIPTOR.enum_types_by_name.values():
        names = [v.name for v in enum.values if v.number != 0]
        assert SCHEMA["$defs"][enum.name]["enum"] == names


def test_committed_schema_is_generated_from_the_current_proto():
    assert (
        schema_module.render(schema_module.build_schema()) == (DOCS / "support-event.schema.json").read_text()
    ), "docs/support-event.schema.json is stale: run `python -m cctriage_publish.schema`"


def test_a_field_added_to_the_proto_shows_up_in_the_generated_schema():
    file_set = schema_module.compile_proto()
    (events,) = [f for f in file_set.file if f.name == schema_module.PROTO]
    (message,) = [m for m in events.message_type if m.name == "Customer"]
    message.field.add(name="loyalty_points", number=99, type=13, label=1, json_name="loyaltyPoints")
    generated = schema_module.build_schema(file_set)
    assert "loyaltyPoints" in generated["$defs"]["Customer"]["properties"]
    assert generated != SCHEMA


VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def test_schema_is_valid_and_accepts_the_examples():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    for number, line in enumerate((DOCS / "examples" / "events.jsonl").read_text().splitlines(), start=1):
        document = json.loads(line)
        assert not list(VALIDATOR.iter_errors(document)), f"example line {number}"
        assert decode_json(document).ok, f"example line {number}"


@pytest.mark.parametrize(
    "change",
    [
        {"eventId": None},
        {"channel": "CHANNEL_FAX"},
        {"unknownField": 1},
        {"agentJoined": {"agentId": "a"}},  # a second payload
        {"messagePosted": {"text": "hi"}},  # no author role
        {"event_id": "evt-2"},  # the same field under both names
    ],
)
def test_schema_and_decoder_both_reject(change):
    document = json.loads((DOCS / "examples" / "events.jsonl").read_text().splitlines()[2])
    for key, value in change.items():
        if value is None:
            document.pop(key)
        else:
            document[key] = value
    assert list(VALIDATOR.iter_errors(document))
    assert not decode_json(document).ok


def test_the_documented_example_event_is_valid():
    text = (DOCS / "events.md").read_text()
    example = text.split("```json\n", 1)[1].split("```", 1)[0]
    document = json.loads(example)
    assert decode_json(document).ok
    assert not list(VALIDATOR.iter_errors(document))
    for fragment in (
        text.split("The other payloads:", 1)[1].split("```json\n", 1)[1].split("```", 1)[0].splitlines()
    ):
        payload = json.loads(fragment)
        assert decode_json({**document, "messagePosted": None, **payload}).ok, fragment
