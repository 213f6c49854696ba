"""The train-only support messages (models/data/support_train_extra) that the model trains on.

They must parse, carry the labels their file promises, and echo no message the model is
tested on (the support test split) nor the demo's calm traffic (whose false-stress rate the
model card reports): otherwise the figures measured there would flatter the model.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from difflib import SequenceMatcher
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXTRA_DIR = ROOT / "models" / "data" / "support_train_extra"
NEAR_DUPLICATE_JACCARD = 0.6  # the thresholds of tests/unit/test_support_dataset.py
NEAR_DUPLICATE_RATIO = 0.8


def _corpora():
    spec = importlib.util.spec_from_file_location(
        "cctriage_training_corpora", ROOT / "models/training/corpora.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9£ ]+", " ", text.lower()).split()


def _close(first: str, second: str) -> bool:
    a, b = _words(first), _words(second)
    bigrams_a = {tuple(a[i : i + 2]) for i in range(len(a) - 1)} or {tuple(a)}
    bigrams_b = {tuple(b[i : i + 2]) for i in range(len(b) - 1)} or {tuple(b)}
    shared = len(bigrams_a & bigrams_b)
    if shared / (len(bigrams_a) + len(bigrams_b) - shared) >= NEAR_DUPLICATE_JACCARD:
        return True
    return SequenceMatcher(None, a, b, autojunk=False).ratio() >= NEAR_DUPLICATE_RATIO


def test_calm_problem_reports_parse_as_unstressed_and_not_negative():
    rows = _corpora().support_extra_rows(EXTRA_DIR)
    assert len(rows) >= 60
    assert all(r.stressed is False and r.sentiment in (1, 2) for r in rows)
    assert any("\n" in r.text for r in rows), "email line breaks are kept"


def test_no_extra_message_echoes_a_support_message_or_the_demo_traffic():
    from cctriage_sim import texts

    extra = [r.text for r in _corpora().support_extra_rows(EXTRA_DIR)]
    support = [
        json.loads(line)["text"]
        for line in (ROOT / "models/data/support_messages.jsonl").read_text().splitlines()
        if line.strip()
    ]
    demo = (
        [
            opening.format(thing=thing, issue=issue)
            for topic in texts.TOPICS.values()
            for opening in texts.OPENING
            for thing in topic["thing"]
            for issue in topic["issue"]
        ]
        + [issue for topic in texts.TOPICS.values() for issue in topic["issue"]]
        + texts.CALM_TRICKY
    )
    echoes = [(e, other) for e in extra for other in support + demo if _close(e, other)]
    assert echoes == []


def test_a_light_rewording_counts_as_an_echo():
    assert _close(
        "My parcel hasn't arrived and tracking hasn't moved.",
        "my parcel hasnt arrived and the tracking hasn't moved",
    )
    assert not _close("My parcel hasn't arrived.", "How do I change my billing address?")


def test_tweeteval_sentiment_train_is_read_once_its_texts_exist(tmp_path, capsys):
    corpora = _corpora()
    folder = tmp_path / "tweeteval" / "sentiment"
    folder.mkdir(parents=True)
    (folder / "mapping.txt").write_text("0\tnegative\n1\tneutral\n2\tpositive\n")
    (folder / "train_labels.txt").write_text("1\n0\n2\n")
    (folder / "train_text.txt").write_text("")
    # As ../shared/data ships it today: labels, no texts.
    assert corpora.tweeteval_sentiment_rows(tmp_path) == []
    assert "empty" in capsys.readouterr().out

    (folder / "train_text.txt").write_text("the game is on at 8 \nworst service ever\nlove it\n")
    rows = corpora.tweeteval_sentiment_rows(tmp_path)
    assert [(r.text, r.sentiment, r.source) for r in rows] == [
        ("the game is on at 8", 1, "tweeteval_sentiment"),
        ("worst service ever", 0, "tweeteval_sentiment"),
        ("love it", 2, "tweeteval_sentiment"),
    ]

    (folder / "train_text.txt").write_text("only one line\n")
    with pytest.raises(ValueError, match="1 texts for 3 labels"):
        corpora.tweeteval_sentiment_rows(tmp_path)
