"""Evaluate the shipped sentiment/stress model on every labelled set it is judged by.

Run: ``python -m cctriage_common.evaluate [--data-dir ../shared/data] [--json out.json]``
(or ``make eval``). Prints accuracy, macro-recall and the confusion matrix per data set, the
stress precision/recall on the project's support test set and how often plain requests are
classified neutral.

The evaluation sets are defined here, once, and the training pipeline imports them from here
so that what is held out for testing is never trained on:
- ``airline``: a deterministic 20% of ``airline/train.csv`` (by a hash of the tweet text, so
  duplicate tweets always land on the same side);
- ``tweeteval``: the TweetEval sentiment validation split (the training pipeline never reads it);
- ``support``: the ``split == "test"`` rows of ``models/data/support_messages.jsonl``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cctriage_common.sentiment import SENTIMENT_LABELS, SentimentModel, default_model_dir

AIRLINE_TEST_SHARE = 5  # one bucket in five: 20% held out
PLAIN_REQUEST_CATEGORY = "plain_request"


def default_data_dir() -> Path:
    """``../shared/data`` beside the checkout."""
    return default_model_dir().parent.parent / "shared" / "data"


def default_support_path() -> Path:
    return default_model_dir() / "data" / "support_messages.jsonl"


@dataclass(frozen=True)
class Example:
    text: str
    label: str  # negative / neutral / positive
    stressed: bool | None = None
    category: str | None = None


def airline_is_test(text: str) -> bool:
    """The airline hold-out rule: a stable hash of the tweet text."""
    digest = hashlib.sha256(text.strip().encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % AIRLINE_TEST_SHARE == 0


def load_airline(data_dir: Path, part: str) -> list[Example]:
    """``part`` is "train" (80%, for training) or "test" (20%, held out)."""
    if part not in ("train", "test"):
        raise ValueError(f"part must be train or test, not {part!r}")
    with (data_dir / "airline" / "train.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    want_test = part == "test"
    return [
        Example(row["text"], row["airline_sentiment"])
        for row in rows
        if airline_is_test(row["text"]) == want_test
    ]


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def load_tweeteval_sentiment_val(data_dir: Path) -> list[Example]:
    folder = data_dir / "tweeteval" / "sentiment"
    texts, labels = _lines(folder / "val_text.txt"), _lines(folder / "val_labels.txt")
    return [Example(t, SENTIMENT_LABELS[int(y)]) for t, y in zip(texts, labels, strict=True)]


def load_tweeteval_emotion(data_dir: Path, split: str) -> list[tuple[str, str]]:
    """(text, emotion) with emotion one of anger, joy, optimism, sadness."""
    folder = data_dir / "tweeteval" / "emotion"
    mapping = dict(line.split("\t") for line in _lines(folder / "mapping.txt") if line.strip())
    texts, labels = _lines(folder / f"{split}_text.txt"), _lines(folder / f"{split}_labels.txt")
    return [(t, mapping[y.strip()].strip()) for t, y in zip(texts, labels, strict=True)]


def load_support(path: Path, split: str) -> list[Example]:
    """The project's own labelled support messages, one split."""
    examples = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if row.get("split") not in ("train", "test"):
                raise ValueError(f"{path}:{number}: field 'split' must be train or test")
            if row["sentiment"] not in SENTIMENT_LABELS:
                raise ValueError(f"{path}:{number}: field 'sentiment' must be one of {SENTIMENT_LABELS}")
            if row["split"] == split:
                examples.append(
                    Example(row["text"], row["sentiment"], bool(row["stressed"]), row.get("category"))
                )
    return examples


def confusion(truth: Sequence[str], predicted: Sequence[str]) -> list[list[int]]:
    """Rows are the true label, columns the predicted one, in SENTIMENT_LABELS order."""
    index = {label: i for i, label in enumerate(SENTIMENT_LABELS)}
    matrix = [[0] * len(SENTIMENT_LABELS) for _ in SENTIMENT_LABELS]
    for t, p in zip(truth, predicted, strict=True):
        matrix[index[t]][index[p]] += 1
    return matrix


def sentiment_report(truth: Sequence[str], predicted: Sequence[str]) -> dict:
    matrix = confusion(truth, predicted)
    recalls = {
        label: (row[i] / sum(row) if sum(row) else None)
        for i, (label, row) in enumerate(zip(SENTIMENT_LABELS, matrix, strict=True))
    }
    present = [r for r in recalls.values() if r is not None]
    return {
        "n": len(truth),
        "accuracy": sum(row[i] for i, row in enumerate(matrix)) / max(len(truth), 1),
        "macro_recall": sum(present) / len(present) if present else 0.0,
        "recall": recalls,
        "confusion": matrix,
    }


def stress_report(truth: Sequence[bool], predicted: Sequence[bool]) -> dict:
    tp = sum(t and p for t, p in zip(truth, predicted, strict=True))
    fp = sum(p and not t for t, p in zip(truth, predicted, strict=True))
    fn = sum(t and not p for t, p in zip(truth, predicted, strict=True))
    return {
        "n": len(truth),
        "positives": tp + fn,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "true_positive": tp,
        "false_positive": fp,
        "false_negative": fn,
    }


def _score_all(model: SentimentModel, texts: Sequence[str], batch_size: int) -> list:
    # Sorting by length keeps padding small; the results go back in the original order.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    scores: list = [None] * len(texts)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        for i, s in zip(chunk, model.score([texts[i] for i in chunk]), strict=True):
            scores[i] = s
    return scores


def evaluate(
    model: SentimentModel,
    data_dir: Path,
    support_path: Path | None = None,
    batch_size: int = 64,
) -> dict:
    """Every figure the model card reports, as a dict."""
    sets = {
        "tweeteval_sentiment_val": load_tweeteval_sentiment_val(data_dir),
        "airline_heldout": load_airline(data_dir, "test"),
    }
    if support_path is not None and support_path.exists():
        sets["support_test"] = load_support(support_path, "test")
    report: dict = {"model": model.version, "stress_threshold": model.stress_threshold, "sets": {}}
    for name, examples in sets.items():
        started = time.perf_counter()
        scores = _score_all(model, [e.text for e in examples], batch_size)
        entry = sentiment_report([e.label for e in examples], [s.sentiment for s in scores])
        entry["seconds"] = round(time.perf_counter() - started, 2)
        if name == "support_test":
            entry["stress"] = stress_report(
                [bool(e.stressed) for e in examples], [s.stressed for s in scores]
            )
            plain = [s for e, s in zip(examples, scores, strict=True) if e.category == PLAIN_REQUEST_CATEGORY]
            entry["plain_request_neutral_rate"] = (
                sum(s.sentiment == "neutral" for s in plain) / len(plain) if plain else None
            )
            entry["plain_requests"] = len(plain)
            entry["plain_request_unstressed_rate"] = (
                sum(not s.stressed for s in plain) / len(plain) if plain else None
            )
        report["sets"][name] = entry
    return report


def format_report(report: dict) -> str:
    lines = [f"model {report['model']} (stress threshold {report['stress_threshold']:.3f})"]
    for name, entry in report["sets"].items():
        lines.append("")
        lines.append(
            f"{name}: n={entry['n']} accuracy={entry['accuracy']:.3f} "
            f"macro-recall={entry['macro_recall']:.3f}"
        )
        lines.append(
            "  " + "true \\ predicted".ljust(18) + "".join(f"{label:>10}" for label in SENTIMENT_LABELS)
        )
        for label, row in zip(SENTIMENT_LABELS, entry["confusion"], strict=True):
            lines.append(f"  {label:<18}" + "".join(f"{v:>10}" for v in row))
        if "stress" in entry:
            s = entry["stress"]
            lines.append(
                f"  stressed: precision={s['precision']:.3f} recall={s['recall']:.3f} "
                f"(tp={s['true_positive']} fp={s['false_positive']} fn={s['false_negative']})"
            )
            if entry["plain_request_neutral_rate"] is not None:
                lines.append(
                    f"  plain requests ({entry['plain_requests']}): neutral "
                    f"{entry['plain_request_neutral_rate']:.3f}, unstressed "
                    f"{entry['plain_request_unstressed_rate']:.3f}"
                )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cctriage_common.evaluate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--data-dir", type=Path, default=default_data_dir(), help="the shared data folder")
    parser.add_argument(
        "--model-dir", type=Path, default=None, help="folder with manifest.json (default models/)"
    )
    parser.add_argument("--support", type=Path, default=default_support_path(), help="support messages jsonl")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    model = SentimentModel.load(args.model_dir, intra_op_threads=args.threads)
    report = evaluate(model, args.data_dir, args.support)
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
