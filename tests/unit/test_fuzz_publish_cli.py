"""Bad-input campaign (issue 7), unit part: ``cctriage-publish --dry-run`` on fuzzed files.

Every non-blank line (or protobuf record) gets exactly one result, in order, valid or invalid
with errors naming the field; the summary adds up; the exit code is 0 when every line is valid,
1 when any is not, 2 for a usage error; nothing raises and no customer text is echoed.
The publishing path itself (Kafka) is exercised in tests/integration/test_fuzz_reconciliation.py.
"""

from __future__ import annotations

import io
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import fuzz_cases
import pytest
from cctriage_common.deadletter import Reason
from cctriage_common.events import decode_json, decode_protobuf
from cctriage_publish import cli
from fuzz_cases import SECRET, examples, leaked
from google.protobuf.internal import encoder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CODES = {reason.value for reason in Reason}
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


def run_cli(path: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = cli.main([str(path), "--dry-run", "--report", "json", *args])
    finally:
        sys.stdout, sys.stderr = saved
    return code, out.getvalue(), err.getvalue()


def check_report(code: int, out: str, err: str, expected: dict[int, str]) -> list[dict]:
    """``expected``: input line/record number -> "valid" or "invalid" for every non-blank one."""
    assert "Traceback" not in err, err
    rows = [json.loads(line) for line in out.splitlines()]
    summary = rows.pop()["summary"]
    for row in rows:
        # The id label is whatever the record claims as its id (a corrupted record may claim
        # shifted bytes): only ever one printable token. Errors never carry content.
        assert not re.search(r"[\s\x00-\x1f\x7f]", row["event_id"]), row["event_id"]
        assert not leaked(json.dumps(row.get("errors", []), ensure_ascii=False) + err), row
    assert [row["line"] for row in rows] == sorted(expected), "one result per line, in input order"
    assert {row["line"]: row["status"] for row in rows} == expected
    for row in rows:
        if row["status"] == "invalid":
            assert row["errors"], row
            for error in row["errors"]:
                assert error["reason"] and error["code"] in CODES, error
    invalid = sum(status == "invalid" for status in expected.values())
    assert (summary["total"], summary["invalid"], summary["valid"], summary["published"]) == (
        len(expected),
        invalid,
        len(expected) - invalid,
        0,
    )
    assert code == (1 if invalid else 0), (code, invalid)
    return rows


# --- JSON lines --------------------------------------------------------------------------------

JSON_CASES = fuzz_cases.json_cases()
ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-_"

valid_lines = st.builds(
    lambda event_id, text, kind: json.dumps(
        fuzz_cases.json_event(
            eventId=f"ev-{event_id}",
            messagePosted={"authorRole": kind, "text": SECRET + text},
        )
    ).encode(),
    st.text(ID_CHARS, min_size=1, max_size=20),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=200),
    st.sampled_from(["AUTHOR_ROLE_CUSTOMER", "AUTHOR_ROLE_AGENT", "AUTHOR_ROLE_BOT", "AUTHOR_ROLE_SYSTEM"]),
)
# Bytes without a line break: whatever a broken exporter may write on one line.
garbage_lines = st.binary(max_size=200).map(lambda data: data.replace(b"\n", b" "))
lines = st.one_of(
    valid_lines.map(lambda line: ("valid", line)),
    st.sampled_from(JSON_CASES).map(lambda case: ("invalid", case[1])),
    garbage_lines.map(lambda line: ("oracle", line)),
    st.sampled_from([b"", b"   ", b"\t", b"\r"]).map(lambda line: ("blank", line)),
)


def expected_status(kind: str, line: bytes, number: int) -> str | None:
    if number == 1 and line.startswith(b"\xef\xbb\xbf"):
        line = line[3:]  # a byte order mark opening the file is not content
    if kind == "blank" or not line.strip():
        return None
    if kind == "oracle":
        return "valid" if decode_json(line.strip()).ok else "invalid"
    return kind


@fuzz()
@given(items=st.lists(lines, min_size=1, max_size=25), crlf=st.booleans())
def test_fuzzed_jsonl_file_every_line_one_result_and_exit_code(tmp_path, items, crlf):
    newline = b"\r\n" if crlf else b"\n"
    path = tmp_path / "events.jsonl"
    path.write_bytes(newline.join(line for _, line in items) + newline)
    expected = {}
    for number, (kind, line) in enumerate(items, start=1):
        status = expected_status(kind, line, number)
        if status is not None:
            expected[number] = status
    check_report(*run_cli(path), expected)


def test_every_named_nasty_json_line_is_reported_naming_its_field(tmp_path):
    """The named corpus, each case between two valid lines: the valid ones still pass."""
    content = []
    expected = {}
    for _name, line, _field in JSON_CASES:
        content += [json.dumps(fuzz_cases.json_event()).encode(), line]
        expected[len(content) - 1] = "valid"
        expected[len(content)] = "invalid"
    path = tmp_path / "nasty.jsonl"
    path.write_bytes(b"\n".join(content) + b"\n")
    rows = check_report(*run_cli(path), expected)
    invalid = [row for row in rows if row["status"] == "invalid"]
    assert [row["errors"][0]["field"] for row in invalid] == [field for _, _, field in JSON_CASES]


# --- length-delimited protobuf -----------------------------------------------------------------


def delimited(record: bytes) -> bytes:
    out = io.BytesIO()
    encoder._EncodeVarint(out.write, len(record))
    return out.getvalue() + record


PROTO_CORPUS = [case.value or b"" for case in fuzz_cases.protobuf_cases() if case.reason != "key_mismatch"]


@fuzz()
@given(
    choices=st.lists(
        st.tuples(st.sampled_from(["valid", "corpus", "mutated", "random"]), st.integers(0, 2**32)),
        min_size=1,
        max_size=12,
    ),
    tail=st.sampled_from([b"", b"\x80", b"\xff\xff", b"\x05abc", b"\xff" * 11]),
)
def test_fuzzed_protobuf_stream_every_record_one_result_and_exit_code(tmp_path, choices, tail):
    records = []
    for kind, seed in choices:
        rng = random.Random(seed)
        good = fuzz_cases.event(conversation_id=f"conv-{seed}").SerializeToString()
        if kind == "valid":
            records.append(good)
        elif kind == "corpus":
            records.append(PROTO_CORPUS[seed % len(PROTO_CORPUS)])
        elif kind == "mutated":
            records.append(fuzz_cases.mutate(good, rng))
        else:
            records.append(rng.randbytes(rng.randrange(0, 64)))
    path = tmp_path / "events.pb"
    path.write_bytes(b"".join(delimited(r) for r in records) + tail)
    expected = {n: "valid" if decode_protobuf(r).ok else "invalid" for n, r in enumerate(records, start=1)}
    if tail:
        # A broken length prefix ends the stream: reported once, as the record where it broke.
        expected[len(records) + 1] = "invalid"
    rows = check_report(*run_cli(path, "--format", "protobuf"), expected)
    if tail:
        assert "the rest of the input cannot be read" in rows[-1]["errors"][0]["reason"]


# --- usage errors: exit 2, and the real command's exit codes ------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--format", "xml"],
        ["--report", "yaml"],
        ["--no-such-option"],
        ["--max-text-bytes", "zero"],
        ["a.jsonl", "b.jsonl"],
    ],
    ids=["format", "report", "unknown-option", "non-integer", "two-inputs"],
)
def test_usage_errors_exit_two(tmp_path, args, capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["--dry-run", *args])
    assert stopped.value.code == 2
    assert "usage: cctriage-publish" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--max-text-bytes", "0"], ["--max-text-bytes", "-5"], []])
def test_unusable_settings_or_input_exit_two(tmp_path, args):
    code, out, err = run_cli(tmp_path / "missing-file.jsonl", *args)
    assert code == 2 and out == "" and err.startswith("cctriage-publish: ")


def test_installed_command_exit_codes_on_the_named_corpus(tmp_path):
    """The real process: 1 for a file with nasty lines, 0 for a clean one, 2 for a usage error."""
    nasty = tmp_path / "nasty.jsonl"
    nasty.write_bytes(b"\n".join([json.dumps(fuzz_cases.json_event()).encode()] + [c[1] for c in JSON_CASES]))
    clean = tmp_path / "clean.jsonl"
    clean.write_bytes(b"\n".join(json.dumps(fuzz_cases.json_event()).encode() for _ in range(3)))
    command = [sys.executable, "-m", "cctriage_publish", "--dry-run", "--errors-only"]
    runs = {
        name: subprocess.run([*command, *extra], capture_output=True, timeout=60)
        for name, extra in [("nasty", [str(nasty)]), ("clean", [str(clean)]), ("usage", ["--format", "xml"])]
    }
    assert [runs[n].returncode for n in ("nasty", "clean", "usage")] == [1, 0, 2]
    for run in runs.values():
        assert b"Traceback" not in run.stderr
        assert not leaked((run.stdout + run.stderr).decode(errors="replace"))
    assert runs["nasty"].stdout.decode().count("INVALID") == len(JSON_CASES)


def test_an_oversized_protobuf_record_is_skipped_and_the_next_ones_still_read(tmp_path):
    """Found by fuzzing: a record over 1 MiB used to end the run ("the rest cannot be read")
    although its length prefix was fine; the valid records after it were never published."""
    huge = next(case.value for case in fuzz_cases.protobuf_cases() if case.name == "very_long_metadata")
    assert len(huge) > 1024 * 1024
    good = [fuzz_cases.event(conversation_id=f"conv-{n}").SerializeToString() for n in range(2)]
    path = tmp_path / "events.pb"
    path.write_bytes(delimited(good[0]) + delimited(huge) + delimited(good[1]))
    rows = check_report(*run_cli(path, "--format", "protobuf"), {1: "valid", 2: "invalid", 3: "valid"})
    assert rows[1]["errors"][0]["code"] == "too_large"
