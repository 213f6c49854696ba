"""The project's own labelled support messages (models/data/support_messages.jsonl)."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections import Counter
from difflib import SequenceMatcher
from itertools import product
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = ROOT / "models" / "data"

_spec = importlib.util.spec_from_file_location(
    "build_support_messages", DATA_DIR / "build_support_messages.py"
)
builder = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = builder  # dataclasses look their module up here
_spec.loader.exec_module(builder)

FIELDS = {"id", "text", "channel", "sentiment", "stressed", "category", "split"}
NEAR_DUPLICATE_JACCARD = 0.6  # word bigrams
NEAR_DUPLICATE_RATIO = 0.8  # difflib ratio over the word sequence


def _load(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return _load(builder.MESSAGES_PATH)


def test_every_record_has_the_schema_and_allowed_values(records):
    for record in records:
        assert set(record) == FIELDS, record.get("id")
        assert re.fullmatch(r"sm-\d{4}", record["id"]), record["id"]
        assert isinstance(record["text"], str) and record["text"].strip(), record["id"]
        assert record["channel"] in builder.CHANNELS, record["id"]
        assert record["sentiment"] in builder.SENTIMENTS, record["id"]
        assert isinstance(record["stressed"], bool), record["id"]
        assert record["category"] in builder.CATEGORIES, record["id"]
        assert record["split"] in builder.SPLITS, record["id"]


def test_ids_are_unique(records):
    counts = Counter(r["id"] for r in records)
    assert [i for i, n in counts.items() if n > 1] == []


def test_no_two_messages_share_normalised_text(records):
    counts = Counter(builder.normalise(r["text"]) for r in records)
    assert [t for t, n in counts.items() if n > 1] == []


def _near_duplicates(records: list[dict]) -> list[tuple[str, str]]:
    """Pairs that differ by a few words: same word sequence mostly, or mostly the same bigrams."""
    words = [(r["id"], builder.normalise(r["text"]).split()) for r in records]
    bigrams = [{tuple(w[i:i + 2]) for i in range(len(w) - 1)} or {tuple(w)} for _, w in words]
    close = []
    matcher = SequenceMatcher(autojunk=False)
    for i, (first_id, first) in enumerate(words):
        matcher.set_seq2(first)
        for j in range(i + 1, len(words)):
            second_id, second = words[j]
            a, b = bigrams[i], bigrams[j]
            # Jaccard cannot reach the bar when one set is much smaller than the other.
            if min(len(a), len(b)) >= NEAR_DUPLICATE_JACCARD * max(len(a), len(b)):
                shared = len(a & b)
                if shared / (len(a) + len(b) - shared) >= NEAR_DUPLICATE_JACCARD:
                    close.append((first_id, second_id))
                    continue
            matcher.set_seq1(second)
            if (matcher.real_quick_ratio() >= NEAR_DUPLICATE_RATIO
                    and matcher.quick_ratio() >= NEAR_DUPLICATE_RATIO
                    and matcher.ratio() >= NEAR_DUPLICATE_RATIO):
                close.append((first_id, second_id))
    return close


def test_no_message_is_a_near_duplicate_of_another(records):
    # Across the whole set, so in particular no test message echoes a training message.
    assert _near_duplicates(records) == []


def test_the_near_duplicate_check_catches_light_rewording_and_reordering():
    messages = [
        {"id": "sm-9001", "text": "Please reset my password."},
        {"id": "sm-9002", "text": "please could you reset my password"},
        {"id": "sm-9003", "text": "hi um yeah i just wanted to reset my password for the online account"},
        {"id": "sm-9004", "text": "Thanks, all good now. Order 55120 arrived this morning."},
        {"id": "sm-9005", "text": "Order 55120 arrived this morning. Thanks, all good now!"},
    ]
    assert _near_duplicates(messages) == [("sm-9001", "sm-9002"), ("sm-9004", "sm-9005")]


def test_the_set_is_large_and_covers_every_category_and_channel(records):
    assert len(records) >= 700
    by_category = Counter(r["category"] for r in records)
    by_channel = Counter(r["channel"] for r in records)
    assert min(by_category[c] for c in builder.CATEGORIES) >= 20, by_category
    assert by_category["plain_request"] >= 200
    assert min(by_channel[c] for c in builder.CHANNELS) >= 120, by_channel
    # Every category is written in every channel, so no style is confounded with a label.
    strata = Counter((r["category"], r["channel"]) for r in records)
    assert [s for s in product(builder.CATEGORIES, builder.CHANNELS) if strata[s] < 3] == []


def test_label_mix_matches_the_brief(records):
    total = len(records)
    neutral = sum(r["sentiment"] == "neutral" for r in records) / total
    stressed = sum(r["stressed"] for r in records) / total
    assert 0.35 <= neutral <= 0.50, neutral
    assert 0.30 <= stressed <= 0.42, stressed
    for split in builder.SPLITS:
        part = [r for r in records if r["split"] == split]
        labels = Counter((r["sentiment"], r["stressed"]) for r in part)
        # Both splits must hold every sentiment, and stressed and calm examples.
        assert all(any(s == sentiment for s, _ in labels) for sentiment in builder.SENTIMENTS)
        assert any(stress for _, stress in labels) and any(not stress for _, stress in labels)


def test_about_thirty_percent_is_test_in_every_category_and_channel(records):
    def test_share(key: str, value: str) -> float:
        group = [r for r in records if r[key] == value]
        return sum(r["split"] == "test" for r in group) / len(group)

    overall = sum(r["split"] == "test" for r in records) / len(records)
    assert 0.27 <= overall <= 0.33, overall
    # Small categories (four groups of five) round up to 2 of 5 per group, hence 0.42.
    for category in builder.CATEGORIES:
        assert 0.22 <= test_share("category", category) <= 0.42, category
    for channel in builder.CHANNELS:
        assert 0.25 <= test_share("channel", channel) <= 0.35, channel


def test_fixed_labels_follow_the_labelling_rules(records):
    fixed = {
        "plain_request": ({"neutral"}, {False}),
        "calm_with_trigger_words": ({"neutral"}, {False}),
        "thanks": ({"positive"}, {False}),
        "mild_annoyance": ({"negative"}, {False}),
        "angry": ({"negative"}, {True}),
        "anxious": ({"negative"}, {True}),
        "urgent_stakes": ({"negative", "neutral"}, {True}),
        "cancel_threat": ({"negative"}, {True}),
        "complaint_threat": ({"negative"}, {True}),
        "legal_threat": ({"negative"}, {True}),
        "sarcasm": ({"negative"}, {True, False}),
    }
    wrong = [
        r["id"] for r in records
        if r["category"] in fixed
        and (r["sentiment"] not in fixed[r["category"]][0]
             or r["stressed"] not in fixed[r["category"]][1])
    ]
    assert wrong == []
    # Nobody who is pleased needs a senior agent now.
    assert [r["id"] for r in records if r["stressed"] and r["sentiment"] == "positive"] == []


def test_channels_read_like_their_channel(records):
    for record in records:
        text, channel = record["text"], record["channel"]
        if channel == "voice":
            # Speech-to-text output: lower case, no sentence punctuation.
            assert text == text.lower() and not re.search(r"[.,!?;:]", text), record["id"]
        elif channel == "social":
            assert "@" in text, record["id"]
        elif channel == "email":
            assert "\n" in text, record["id"]
    voice = " ".join(r["text"] for r in records if r["channel"] == "voice")
    assert re.search(r"\bum\b", voice) and re.search(r"\b(\w+) \1\b", voice)
    emails = [r["text"] for r in records if r["channel"] == "email"]
    assert sum(t.count("\n\n") >= 3 for t in emails) >= 50  # greeting, two paragraphs, signature
    assert sum(t.count("\n\n") >= 4 for t in emails) >= 15  # long: three or more paragraphs


def test_held_back_plain_requests_are_the_test_plain_requests(records):
    held_back = _load(builder.PLAIN_TEST_PATH)
    expected = [r for r in records if r["category"] == "plain_request" and r["split"] == "test"]
    assert held_back == expected
    assert len(held_back) >= 60


def test_committed_files_match_the_sources():
    stale = [p.name for p, content in builder.build().items()
             if p.read_text(encoding="utf-8") != content]
    assert stale == [], "run .venv/bin/python models/data/build_support_messages.py"


def _source(text: str, category: str = "plain_request", channel: str = "chat"):
    return builder.SourceMessage(category, channel, "neutral", False, text, "x.txt:1")


def test_published_ids_and_splits_do_not_move_when_messages_are_added(records):
    sources = [_source(r["text"], r["category"], r["channel"]) for r in records]
    sources.append(_source("Could you post me a spare remote for the TV box?"))
    rebuilt = {r["id"]: r for r in builder.assign(sources, records)}
    assert all(rebuilt[r["id"]]["split"] == r["split"] for r in records)
    newest = max(records, key=lambda r: int(r["id"][3:]))["id"]
    added = rebuilt[f"sm-{int(newest[3:]) + 1:04d}"]
    assert added["text"] == "Could you post me a spare remote for the TV box?"


def test_a_new_stratum_is_split_thirty_percent(tmp_path):
    sources = [_source(f"Question number {n} about roaming in country {n * 7}") for n in range(10)]
    assigned = builder.assign(sources, [])
    assert [r["id"] for r in assigned] == [f"sm-{n:04d}" for n in range(1, 11)]
    assert Counter(r["split"] for r in assigned) == {"train": 7, "test": 3}


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("fax neu no Please reset my password", "channel"),
        ("chat happy no Please reset my password", "sentiment"),
        ("chat neu maybe Please reset my password", "stressed"),
        ("chat neu no", "expected"),
        ("chat neu no ?!", "no words"),
    ],
)
def test_a_bad_source_line_is_rejected_naming_the_field(line, field):
    with pytest.raises(builder.SourceError, match=field):
        builder.parse_line(line, "plain_request", "plain_request.txt:7")


def test_a_duplicate_source_message_is_rejected(tmp_path):
    for category in builder.CATEGORIES:
        (tmp_path / f"{category}.txt").write_text("", encoding="utf-8")
    (tmp_path / "thanks.txt").write_text("chat pos no Thanks, all sorted!\n", encoding="utf-8")
    (tmp_path / "mixed.txt").write_text("voice pos no thanks all sorted\n", encoding="utf-8")
    with pytest.raises(builder.SourceError, match="duplicate of thanks.txt:1"):
        builder.read_sources(tmp_path)
