"""cctriage-publish --dry-run: per-line reports, exit codes, formats (no Kafka needed)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cctriage_common.events import decode_json
from cctriage_publish import cli
from google.protobuf.internal import encoder

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples" / "events.jsonl"


def event(number: int, **overrides) -> dict:
    base = {
        "eventId": f"evt-{number}",
        "conversationId": "conv-1",
        "tenantId": "acme",
        "channel": "CHANNEL_EMAIL",
        "occurredAt": "2026-11-20T10:00:00Z",
        "messagePosted": {
            "authorRole": "AUTHOR_ROLE_CUSTOMER",
            "text": "Where is my refund? Nobody answers.",
        },
    }
    base.update(overrides)
    return base


def run(tmp_path: Path, content: bytes, *args: str) -> tuple[int, str, str]:
    path = tmp_path / "input"
    path.write_bytes(content)
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = cli.main([str(path), "--dry-run", *args])
    finally:
        sys.stdout, sys.stderr = saved
    return code, out.getvalue(), err.getvalue()


def jsonl(*items) -> bytes:
    return (
        b"\n".join(item if isinstance(item, bytes) else json.dumps(item).encode() for item in items) + b"\n"
    )


def test_every_line_valid_exits_zero(tmp_path):
    code, out, _ = run(tmp_path, EXAMPLES.read_bytes())
    lines = out.splitlines()
    count = len(EXAMPLES.read_text().splitlines())
    assert code == 0
    assert lines[0] == "line 1: evt-7f3a-0001: OK (valid, not published: dry run)"
    assert lines[-1].startswith(f"{count} lines: {count} valid, 0 invalid, 0 failed")


def test_invalid_lines_are_reported_with_line_number_and_field_and_exit_one(tmp_path):
    content = jsonl(
        event(1),
        b"{this is not json",
        event(3, channel="CHANNEL_PIGEON"),
        b"",
        event(5, messagePosted={"text": "hello"}),
        event(6),
    )
    code, out, _ = run(tmp_path, content)
    lines = out.splitlines()
    assert code == 1
    assert lines[0] == "line 1: evt-1: OK (valid, not published: dry run)"
    assert lines[1].startswith("line 2: -: INVALID invalid JSON: Expecting property name")
    assert lines[2].startswith("line 3: evt-3: INVALID channel: unknown Channel value 'CHANNEL_PIGEON'")
    assert lines[3].startswith("line 5: evt-5: INVALID message_posted.author_role: is required")
    assert lines[4] == "line 6: evt-6: OK (valid, not published: dry run)"
    assert lines[5].startswith("5 lines: 2 valid, 3 invalid, 0 failed")


def test_customer_text_never_appears_in_the_report(tmp_path):
    secret = "I will sue you, my account is 12-34-56"
    content = jsonl(
        event(1, messagePosted={"authorRole": "AUTHOR_ROLE_CUSTOMER", "text": secret + "\x00"}),
        event(2, messagePosted={"authorRole": "NOPE", "text": secret}),
        event(3, customer={"customerId": "jane@example.com"}, messagePosted={"text": secret}),
    )
    code, out, err = run(tmp_path, content)
    assert code == 1
    assert out.count("INVALID") == 3
    assert secret not in out + err and "jane@example.com" not in out + err


def test_byte_order_mark_and_crlf_line_endings_are_accepted(tmp_path):
    content = (
        b"\xef\xbb\xbf" + json.dumps(event(1)).encode() + b"\r\n" + json.dumps(event(2)).encode() + b"\r\n"
    )
    code, out, _ = run(tmp_path, content)
    assert code == 0, out


def test_an_over_long_line_is_reported_and_skipped_without_reading_it_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "MAX_JSON_BYTES", 1000)
    content = jsonl(event(1), b'{"eventId": "evt-2", "pad": "' + b"x" * 5000 + b'"}', event(3))
    code, out, _ = run(tmp_path, content)
    lines = out.splitlines()
    assert code == 1
    assert lines[1] == "line 2: -: INVALID line is longer than the limit of 1000 bytes"
    assert lines[2] == "line 3: evt-3: OK (valid, not published: dry run)"
    code, out, _ = run(tmp_path, content, "--report", "json")
    assert json.loads(out.splitlines()[1])["errors"][0]["code"] == "too_large"


def test_json_report_for_machines(tmp_path):
    code, out, _ = run(tmp_path, jsonl(event(1), event(2, tenantId="")), "--report", "json")
    entries = [json.loads(line) for line in out.splitlines()]
    assert code == 1
    assert entries[0] == {"line": 1, "event_id": "evt-1", "status": "valid"}
    assert entries[1] == {
        "line": 2,
        "event_id": "evt-2",
        "status": "invalid",
        "errors": [{"field": "tenant_id", "reason": "is required", "code": "missing_field"}],
    }
    summary = entries[2]["summary"]
    assert (summary["total"], summary["valid"], summary["invalid"], summary["dry_run"]) == (2, 1, 1, True)


def test_errors_only(tmp_path):
    code, out, _ = run(tmp_path, jsonl(event(1), event(2, eventId="")), "--errors-only")
    assert code == 1
    assert out.splitlines()[0].startswith("line 2: -: INVALID event_id: is required")
    assert len(out.splitlines()) == 2


def test_max_text_bytes_option(tmp_path):
    code, out, _ = run(tmp_path, jsonl(event(1)), "--max-text-bytes", "10")
    assert code == 1 and "message_posted.text: is 35 bytes (UTF-8); the limit is 10 bytes" in out
    code, _, err = run(tmp_path, jsonl(event(1)), "--max-text-bytes", "0")
    assert code == 2 and "--max-text-bytes" in err


def test_protobuf_length_delimited_input(tmp_path):
    good = decode_json(event(1)).event.SerializeToString()
    bad = decode_json(event(2)).event
    bad.ClearField("tenant_id")
    bad_bytes = bad.SerializeToString()
    blob = encoder._VarintBytes(len(good)) + good + encoder._VarintBytes(len(bad_bytes)) + bad_bytes
    code, out, _ = run(tmp_path, blob, "--format", "protobuf")
    assert code == 1
    assert out.splitlines()[:2] == [
        "record 1: evt-1: OK (valid, not published: dry run)",
        "record 2: evt-2: INVALID tenant_id: is required",
    ]
    # A cut-off stream: the records before it are still reported, the break is named.
    code, out, _ = run(tmp_path, blob[:-4], "--format", "protobuf")
    assert code == 1
    assert out.splitlines()[1].startswith("record 2: -: INVALID input ends after")


def test_unreadable_input_and_missing_kafka_exit_two(tmp_path, monkeypatch):
    assert cli.main([str(tmp_path / "missing.jsonl"), "--dry-run"]) == 2
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    (tmp_path / "one.jsonl").write_text(json.dumps(event(1)))
    assert cli.main([str(tmp_path / "one.jsonl")]) == 2


@pytest.mark.parametrize("entry", [["cctriage-publish"], [sys.executable, "-m", "cctriage_publish"]])
def test_installed_command_reads_stdin(entry):
    if entry[0] == "cctriage-publish":
        entry = [str(Path(sys.executable).parent / "cctriage-publish")]
    proc = subprocess.run(
        [*entry, "--dry-run", "-"],
        input=jsonl(event(1), b"[]"),
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.decode().splitlines() == [
        "line 1: evt-1: OK (valid, not published: dry run)",
        "line 2: -: INVALID an event must be a JSON object, got an array",
        proc.stdout.decode().splitlines()[-1],
    ]
    assert proc.stdout.decode().splitlines()[-1].startswith("2 lines: 1 valid, 1 invalid")
