"""cctriage-publish: validate support events and publish them to Kafka, reporting every line.

    cctriage-publish events.jsonl                    # JSON lines (protobuf JSON mapping)
    cat events.jsonl | cctriage-publish -            # from stdin
    cctriage-publish --dry-run events.jsonl          # validate only, no Kafka needed
    cctriage-publish --format protobuf events.pb     # varint length-delimited SupportEvents
    cctriage-publish --report json events.jsonl      # one JSON object per line, then a summary

Every input line (record, for protobuf) gets one result: published (with partition and offset),
invalid (the errors name the field; nothing was sent), or failed (valid, not acknowledged by
Kafka). Valid lines are published even when others are invalid. Exit code: 0 when every line
was published (or, with --dry-run, is valid), 1 when any line was invalid or failed or the run
was interrupted (SIGTERM, Ctrl-C: what was sent is acknowledged and reported first), 2 when
nothing could be done (unreadable input, Kafka unreachable, topic missing, bad option).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO, Any

from cctriage_common.events import (
    MAX_EVENT_BYTES,
    MAX_JSON_BYTES,
    TOO_LARGE,
    DecodedEvent,
    ValidationError,
    ValidationPolicy,
    decode_json,
    decode_protobuf,
)
from cctriage_common.kafka import KafkaSettings
from cctriage_common.logs import JsonFormatter
from cctriage_common.settings import SettingsError, load
from cctriage_common.topics import SUPPORT_EVENTS, TopicSettings
from cctriage_publish.client import (
    PendingPublish,
    PublisherError,
    PublisherSettings,
    PublishResult,
    SupportEventPublisher,
)

EXIT_OK, EXIT_SOME_FAILED, EXIT_UNUSABLE = 0, 1, 2
# Results are printed in input order as soon as they are known; this bounds memory on endless stdin.
MAX_PENDING = 10_000
# Lines decoded before they are sent together.
CHUNK = 500


def _read_jsonl(stream: IO[bytes]) -> Iterator[tuple[str, int, bytes | None]]:
    """("record", number, line), ("blank", number, None) or ("too_long", number, None).

    Memory stays bounded: a line longer than MAX_JSON_BYTES is skipped to its end, not read whole.
    """
    number = 0
    while True:
        line = stream.readline(MAX_JSON_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_JSON_BYTES:
            while line and not line.endswith(b"\n"):
                line = stream.readline(1 << 20)
            yield "too_long", number, None
            continue
        if number == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]  # a UTF-8 byte order mark, as some Windows editors write
        stripped = line.strip()
        yield ("record", number, stripped) if stripped else ("blank", number, None)


def _read_varint(stream: IO[bytes]) -> int | None:
    """A length prefix; None at a clean end of input. Raises ValueError when cut short."""
    result = shift = 0
    for index in range(10):
        byte = stream.read(1)
        if not byte:
            if index == 0:
                return None
            raise ValueError("input ends inside a length prefix")
        result |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return result
        shift += 7
    raise ValueError("length prefix is longer than 10 bytes")


class _StreamBroken(Exception):
    """The protobuf stream cannot be followed past this record."""


def _skip(stream: IO[bytes], length: int) -> int:
    """Read past ``length`` bytes in bounded chunks; how many were there."""
    skipped = 0
    while skipped < length:
        chunk = stream.read(min(1 << 20, length - skipped))
        if not chunk:
            break
        skipped += len(chunk)
    return skipped


def _read_delimited(stream: IO[bytes]) -> Iterator[tuple[int, bytes | int]]:
    """(number, record bytes), or (number, length) for a record over the size limit, skipped
    without being held in memory: the records after it are still read (found by fuzzing: one
    oversized record used to end the run)."""
    number = 0
    while True:
        number += 1
        try:
            length = _read_varint(stream)
        except ValueError as exc:
            raise _StreamBroken(number, str(exc)) from None
        if length is None:
            return
        if length > MAX_EVENT_BYTES:
            skipped = _skip(stream, length)
            if skipped < length:
                raise _StreamBroken(number, f"input ends after {skipped} of {length} bytes")
            yield number, length
            continue
        data = stream.read(length)
        if len(data) < length:
            raise _StreamBroken(number, f"input ends after {len(data)} of {length} bytes")
        yield number, data


def _feed(stream: IO[bytes], fmt: str, records: queue.Queue) -> None:
    """Reader thread. Puts ("record", number, bytes), ("blank", number, None), ("too_long",
    number, None) (a JSON line), ("too_big", number, length) (a protobuf record), ("broken",
    number, reason) and finally ("end", 0, None)."""
    try:
        if fmt == "jsonl":
            for item in _read_jsonl(stream):
                records.put(item)
        else:
            try:
                for number, data in _read_delimited(stream):
                    kind = "record" if isinstance(data, bytes) else "too_big"
                    records.put((kind, number, data))
            except _StreamBroken as broken:
                records.put(("broken", *broken.args))
    except (OSError, ValueError) as exc:  # closed or unreadable input
        records.put(("broken", 0, f"input could not be read: {type(exc).__name__}"))
    finally:
        records.put(("end", 0, None))


@dataclasses.dataclass
class _Summary:
    total: int = 0
    published: int = 0
    valid: int = 0
    invalid: int = 0
    failed: int = 0
    blank: int = 0

    def count(self, result: PublishResult) -> None:
        self.total += 1
        setattr(self, result.status, getattr(self, result.status) + 1)


class _Reporter:
    def __init__(self, out: IO[str], fmt: str, unit: str, errors_only: bool) -> None:
        self.out = out
        self.json = fmt == "json"
        self.unit = unit
        self.errors_only = errors_only

    def record(self, number: int, result: PublishResult) -> None:
        if self.errors_only and result.ok:
            return
        if self.json:
            self.out.write(json.dumps({"line": number, **result.as_dict()}) + "\n")
            return
        label = result.event_id or "-"
        if result.status == "published":
            detail = f"OK partition {result.partition} offset {result.offset}"
        elif result.status == "valid":
            detail = "OK (valid, not published: dry run)"
        elif result.status == "invalid":
            detail = "INVALID " + result.reason
        else:
            detail = "FAILED " + result.reason
        self.out.write(f"{self.unit} {number}: {label}: {detail}\n")

    def summary(self, summary: _Summary, context: dict[str, Any]) -> None:
        if self.json:
            self.out.write(json.dumps({"summary": {**dataclasses.asdict(summary), **context}}) + "\n")
            return
        done = f"{summary.valid} valid" if context["dry_run"] else f"{summary.published} published"
        where = "" if context["dry_run"] else f" to {context['topic']}"
        self.out.write(
            f"{summary.total} {self.unit}s: {done}, {summary.invalid} invalid, "
            f"{summary.failed} failed{where} ({context['seconds']:.1f} s)\n"
        )


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="cctriage-publish",
        description="Validate support events and publish them to Kafka, keyed by conversation_id.",
        epilog="Exit code: 0 all published (or valid with --dry-run), 1 some line invalid or failed (or "
        "interrupted), "
        "2 nothing could be done. JSON mapping and rules: docs/events.md.",
    )
    parser.add_argument("input", nargs="?", default="-", help="file to read, or - for stdin (default)")
    parser.add_argument(
        "--format",
        choices=("jsonl", "protobuf"),
        default="jsonl",
        help="jsonl: one event per line, protobuf JSON mapping (default); protobuf: SupportEvents, each "
        "prefixed with its varint length (writeDelimitedTo)",
    )
    parser.add_argument("--dry-run", action="store_true", help="validate only; publish nothing")
    parser.add_argument("--report", choices=("text", "json"), default="text", help="per-line report format")
    parser.add_argument("--errors-only", action="store_true", help="report only lines that were not OK")
    parser.add_argument("--bootstrap-servers", help="host:port,... (default: KAFKA_BOOTSTRAP_SERVERS)")
    parser.add_argument(
        "--topic",
        help="topic to publish to (default: the declared support-events topic, with CCTRIAGE_TOPIC_PREFIX)",
    )
    parser.add_argument(
        "--max-text-bytes",
        type=int,
        help="largest message text accepted, in UTF-8 bytes (default: CCTRIAGE_EVENT_MAX_TEXT_BYTES, 65536)",
    )
    return parser.parse_args(argv)


def _fatal(message: str) -> int:
    print(f"cctriage-publish: {message}", file=sys.stderr)
    return EXIT_UNUSABLE


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``cctriage-publish``; returns the exit code."""
    args = _parse_args(argv)
    # Diagnostics go to stderr as JSON lines; stdout carries only the report.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter("publisher"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)

    try:
        settings = load(PublisherSettings)
        kafka = load(KafkaSettings)
        policy = load(ValidationPolicy)
        if args.max_text_bytes is not None:
            policy = dataclasses.replace(policy, max_text_bytes=args.max_text_bytes)
            policy.validate()
        topic = args.topic or SUPPORT_EVENTS.full_name(load(TopicSettings).prefix)
    except SettingsError as exc:
        return _fatal(str(exc).replace("CCTRIAGE_EVENT_MAX_TEXT_BYTES", "--max-text-bytes"))

    try:
        stream: IO[bytes] = sys.stdin.buffer if args.input == "-" else open(args.input, "rb")  # noqa: SIM115
    except OSError as exc:
        return _fatal(f"cannot read {args.input}: {exc.strerror}")

    publisher: SupportEventPublisher | None = None
    if not args.dry_run:
        try:
            publisher = SupportEventPublisher(
                args.bootstrap_servers or settings.bootstrap_servers,
                topic,
                policy=policy,
                delivery_timeout_s=settings.delivery_timeout_s,
                connect_timeout_s=settings.connect_timeout_s,
                kafka=kafka,
            )
        except PublisherError as exc:
            stream.close()
            return _fatal(str(exc))

    unit = "line" if args.format == "jsonl" else "record"
    reporter = _Reporter(sys.stdout, args.report, unit, args.errors_only)
    summary = _Summary()
    started = time.monotonic()
    pending: collections.deque[tuple[int, PendingPublish]] = collections.deque()

    def settle(block: bool) -> None:
        wrote = False
        while pending and (block or pending[0][1].done() or len(pending) > MAX_PENDING):
            number, item = pending.popleft()
            result = item.result(timeout=settings.delivery_timeout_s + 5)
            summary.count(result)
            reporter.record(number, result)
            wrote = True
        if wrote:
            sys.stdout.flush()  # a live feed (tail -f | cctriage-publish -) sees results as they land

    def handle(chunk: list[tuple[int, DecodedEvent]]) -> None:
        # Decode a chunk, then send it in a tight loop: interleaving validation with send() makes
        # kafka-python open more, smaller batches, each waking its sender thread (measured).
        for number, decoded in chunk:
            if not decoded.ok:
                result = PublishResult(decoded.event_id, "invalid", errors=decoded.errors)
            elif publisher is None:
                result = PublishResult(decoded.event_id, "valid")
            else:
                pending.append((number, publisher.send_valid(decoded.event)))
                continue
            pending.append((number, PendingPublish(decoded.event_id, result=result)))
        settle(block=False)

    # A reader thread feeds the main loop, so that results of a slow feed are reported while it
    # waits, and SIGTERM/Ctrl-C are noticed even while the input blocks.
    records: queue.Queue[tuple[str, int, Any]] = queue.Queue(maxsize=2 * CHUNK)
    reader = threading.Thread(target=_feed, args=(stream, args.format, records), daemon=True, name="input")
    reader.start()
    stopping = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():  # signal handlers live there only
        previous = {
            sig: signal.signal(sig, lambda *_: stopping.set()) for sig in (signal.SIGTERM, signal.SIGINT)
        }
    decode = decode_json if args.format == "jsonl" else decode_protobuf
    last_line = 0
    ended = False
    try:
        while not ended and not stopping.is_set():
            try:
                items = [records.get(timeout=0.2)]
            except queue.Empty:
                settle(block=False)
                continue
            while len(items) < CHUNK and items[-1][0] != "end":
                try:
                    items.append(records.get_nowait())
                except queue.Empty:
                    break
            chunk: list[tuple[int, DecodedEvent]] = []
            for kind, number, data in items:
                if kind == "end":
                    ended = True
                    break
                last_line = number
                if kind == "blank":
                    summary.blank += 1
                elif kind == "too_long":
                    error = ValidationError(
                        "", f"line is longer than the limit of {MAX_JSON_BYTES} bytes", TOO_LARGE
                    )
                    chunk.append((number, DecodedEvent(None, (error,))))
                elif kind == "too_big":
                    error = ValidationError(
                        "", f"record is {data} bytes; the limit is {MAX_EVENT_BYTES}", TOO_LARGE
                    )
                    chunk.append((number, DecodedEvent(None, (error,))))
                elif kind == "broken":
                    error = ValidationError("", f"{data}; the rest of the input cannot be read")
                    chunk.append((number, DecodedEvent(None, (error,))))
                else:
                    chunk.append((number, decode(data, policy)))
            handle(chunk)
    finally:
        for sig, handler_before in previous.items():
            signal.signal(sig, handler_before)
        if stopping.is_set():
            print(
                f"cctriage-publish: interrupted after {unit} {last_line}; what was read is reported below, "
                "nothing after it was read",
                file=sys.stderr,
            )
        settle(block=True)
        if publisher is not None:
            publisher.close(timeout=settings.delivery_timeout_s)
        if stream is not sys.stdin.buffer:
            stream.close()

    reporter.summary(
        summary,
        {
            "dry_run": args.dry_run,
            "topic": topic,
            "idempotent": publisher.idempotent if publisher is not None else None,
            "interrupted": stopping.is_set(),
            "seconds": round(time.monotonic() - started, 3),
        },
    )
    sys.stdout.flush()
    all_ok = summary.invalid == 0 and summary.failed == 0 and not stopping.is_set()
    code = EXIT_OK if all_ok else EXIT_SOME_FAILED
    if stream is sys.stdin.buffer and reader.is_alive():
        # Interrupted while the reader still waits on stdin (a live feed). A normal interpreter
        # exit then aborts now and then ("could not acquire lock for <stdin> at interpreter
        # shutdown", exit -6; 1 run in 25 under load): the report is written and flushed and the
        # producer closed, so leave without finalizing.
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
