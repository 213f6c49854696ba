"""Assemble the project's own labelled support messages from hand-written sources.

Run: .venv/bin/python models/data/build_support_messages.py          (rewrite outputs)
     .venv/bin/python models/data/build_support_messages.py --check  (exit 1 if stale)

Sources: models/data/support_src/<category>.txt, one message per line:
    <channel> <sentiment> <stressed> <text>
with channel in chat|email|voice|social, sentiment in neg|neu|pos, stressed in
yes|no, and a literal backslash-n in the text for a line break. Lines starting with
'#' and blank lines are ignored. The file name is the category.

Outputs:
- models/data/support_messages.jsonl: every message, sorted by id.
- models/data/support_plain_requests_test.jsonl: the held-back plain requests
  (category plain_request, split test), for the "plain requests stay neutral" check.
- the counts block in models/data/README.md.

Ids and splits are stable: a message whose normalised text is already in the
committed JSONL keeps its id and split. New messages get the next free id and are
put in test until their (category, channel) stratum reaches 30% test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
SOURCE_DIR = DATA_DIR / "support_src"
MESSAGES_PATH = DATA_DIR / "support_messages.jsonl"
PLAIN_TEST_PATH = DATA_DIR / "support_plain_requests_test.jsonl"
README_PATH = DATA_DIR / "README.md"

CHANNELS = ("chat", "email", "voice", "social")
SENTIMENTS = ("negative", "neutral", "positive")
CATEGORIES = (
    "plain_request",
    "thanks",
    "mild_annoyance",
    "angry",
    "anxious",
    "urgent_stakes",
    "cancel_threat",
    "complaint_threat",
    "repeat_contact",
    "sarcasm",
    "negation",
    "calm_with_trigger_words",
    "legal_threat",
    "chargeback",
    "mixed",
)
SPLITS = ("train", "test")
TEST_FRACTION = 0.30

_SENTIMENT_CODES = {"neg": "negative", "neu": "neutral", "pos": "positive"}
_STRESSED_CODES = {"yes": True, "no": False}
COUNTS_START = "<!-- counts:start (written by build_support_messages.py) -->"
COUNTS_END = "<!-- counts:end -->"


class SourceError(ValueError):
    """A source line that cannot be turned into a labelled message."""


@dataclass(frozen=True)
class SourceMessage:
    category: str
    channel: str
    sentiment: str
    stressed: bool
    text: str
    where: str  # file:line, for error messages


def normalise(text: str) -> str:
    """Text reduced for duplicate detection: case, accents, punctuation and spacing ignored."""
    folded = unicodedata.normalize("NFKD", text).casefold()
    words = re.findall(r"[a-z0-9]+", folded)
    return " ".join(words)


def parse_line(line: str, category: str, where: str) -> SourceMessage:
    parts = line.split(maxsplit=3)
    if len(parts) < 4:
        raise SourceError(f"{where}: expected '<channel> <sentiment> <stressed> <text>'")
    channel, sentiment_code, stressed_code, text = parts
    if channel not in CHANNELS:
        raise SourceError(f"{where}: channel {channel!r} not in {CHANNELS}")
    if sentiment_code not in _SENTIMENT_CODES:
        raise SourceError(f"{where}: sentiment {sentiment_code!r} not in {tuple(_SENTIMENT_CODES)}")
    if stressed_code not in _STRESSED_CODES:
        raise SourceError(f"{where}: stressed {stressed_code!r} not in {tuple(_STRESSED_CODES)}")
    text = text.replace("\\n", "\n").strip()
    if not normalise(text):
        raise SourceError(f"{where}: text has no words")
    return SourceMessage(
        category=category,
        channel=channel,
        sentiment=_SENTIMENT_CODES[sentiment_code],
        stressed=_STRESSED_CODES[stressed_code],
        text=text,
        where=where,
    )


def read_sources(source_dir: Path = SOURCE_DIR) -> list[SourceMessage]:
    found = {p.stem for p in source_dir.glob("*.txt")}
    unknown = found - set(CATEGORIES)
    if unknown:
        raise SourceError(f"source files for unknown categories: {sorted(unknown)}")
    messages: list[SourceMessage] = []
    seen: dict[str, str] = {}
    for category in CATEGORIES:
        path = source_dir / f"{category}.txt"
        if not path.exists():
            raise SourceError(f"missing source file {path.name}")
        for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            message = parse_line(line, category, f"{path.name}:{number}")
            key = normalise(message.text)
            if key in seen:
                raise SourceError(f"{message.where}: duplicate of {seen[key]}")
            seen[key] = message.where
            messages.append(message)
    return messages


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _id_number(message_id: str) -> int:
    return int(message_id.removeprefix("sm-"))


def assign(messages: list[SourceMessage], previous: list[dict]) -> list[dict]:
    """Give each message an id and a split, keeping those of already published messages."""
    known = {normalise(r["text"]): (r["id"], r["split"]) for r in previous}
    next_number = max((_id_number(r["id"]) for r in previous), default=0) + 1

    records: list[dict] = []
    fresh: list[dict] = []
    for message in messages:
        record = {
            "id": None,
            "text": message.text,
            "channel": message.channel,
            "sentiment": message.sentiment,
            "stressed": message.stressed,
            "category": message.category,
            "split": None,
        }
        prior = known.get(normalise(message.text))
        if prior is not None:
            record["id"], record["split"] = prior
        else:
            record["id"] = f"sm-{next_number:04d}"
            next_number += 1
            fresh.append(record)
        records.append(record)

    strata: dict[tuple[str, str], list[dict]] = {}
    for record in records:
        strata.setdefault((record["category"], record["channel"]), []).append(record)
    for members in strata.values():
        target = math.floor(TEST_FRACTION * len(members) + 0.5)
        have = sum(1 for r in members if r["split"] == "test")
        # Hash order rather than file order, so test picks are spread through each file.
        new = sorted(
            (r for r in members if r["split"] is None),
            key=lambda r: hashlib.sha256(normalise(r["text"]).encode()).hexdigest(),
        )
        for record in new:
            record["split"] = "test" if have < target else "train"
            have += record["split"] == "test"
    return sorted(records, key=lambda r: _id_number(r["id"]))


def render_jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def _table(title: str, rows: list[str], counts: Counter, total_key=None) -> list[str]:
    lines = [f"| {title} | train | test | total |", "|---|---:|---:|---:|"]
    for row in rows:
        train, test = counts[(row, "train")], counts[(row, "test")]
        lines.append(f"| {row} | {train} | {test} | {train + test} |")
    train = sum(v for (_, s), v in counts.items() if s == "train")
    test = sum(v for (_, s), v in counts.items() if s == "test")
    lines.append(f"| **all** | {train} | {test} | {train + test} |")
    return lines


def render_counts(records: list[dict]) -> str:
    by_category = Counter((r["category"], r["split"]) for r in records)
    by_channel = Counter((r["channel"], r["split"]) for r in records)
    by_sentiment = Counter((r["sentiment"], r["split"]) for r in records)
    by_stressed = Counter(("stressed" if r["stressed"] else "not stressed", r["split"]) for r in records)
    total = len(records)
    test = sum(r["split"] == "test" for r in records)
    stressed = sum(r["stressed"] for r in records)
    neutral = sum(r["sentiment"] == "neutral" for r in records)
    plain_test = sum(r["category"] == "plain_request" and r["split"] == "test" for r in records)
    lines = [
        COUNTS_START,
        f"{total} messages; {test} in test ({test / total:.1%}); "
        f"{stressed} stressed ({stressed / total:.1%}); {neutral} neutral ({neutral / total:.1%}); "
        f"{plain_test} held-back plain requests in `support_plain_requests_test.jsonl`.",
        "",
        *_table("category", list(CATEGORIES), by_category),
        "",
        *_table("channel", list(CHANNELS), by_channel),
        "",
        *_table("sentiment", list(SENTIMENTS), by_sentiment),
        "",
        *_table("stressed", ["stressed", "not stressed"], by_stressed),
        COUNTS_END,
    ]
    return "\n".join(lines)


def render_readme(readme: str, records: list[dict]) -> str:
    start, end = readme.find(COUNTS_START), readme.find(COUNTS_END)
    if start < 0 or end < start:
        raise SourceError(f"{README_PATH.name} lacks the counts markers")
    return readme[:start] + render_counts(records) + readme[end + len(COUNTS_END):]


def build() -> dict[Path, str]:
    """Everything the builder writes, as path -> expected content."""
    records = assign(read_sources(), read_jsonl(MESSAGES_PATH))
    plain_test = [r for r in records if r["category"] == "plain_request" and r["split"] == "test"]
    return {
        MESSAGES_PATH: render_jsonl(records),
        PLAIN_TEST_PATH: render_jsonl(plain_test),
        README_PATH: render_readme(README_PATH.read_text(encoding="utf-8"), records),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if any output is stale")
    args = parser.parse_args(argv)
    try:
        outputs = build()
    except SourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    stale = [p for p, content in outputs.items()
             if not p.exists() or p.read_text(encoding="utf-8") != content]
    if args.check:
        for path in stale:
            print(f"stale: {path.relative_to(DATA_DIR.parent.parent)}", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_text(outputs[path], encoding="utf-8")
        print(f"wrote {path.relative_to(DATA_DIR.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
