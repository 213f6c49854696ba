"""Training data: what the shipped model learns from, and nothing it is tested on.

- sentiment (3 classes):
  - airline: the 80% of ``airline/train.csv`` that ``cctriage_common.evaluate`` does not hold out
    (CC BY-NC-SA 4.0);
  - VADER ``hutto_ICWSM_2014`` sentences (tweets, Amazon, movie and NYT snippets) with mean
    human valence; |valence| <= 0.5 is neutral (from the vaderSentiment 3.3.2 sdist, MIT;
    ``train.py --vader-cap`` takes a fixed sample of them);
  - UCI "Sentiment Labelled Sentences" (Amazon, IMDb, Yelp; positive/negative, CC BY 4.0) from
    the ``sentiment@5.0.2`` npm package's test fixtures;
  - the project's own support messages, train split only (repeated, ``train.py --support-repeat``).
- TweetEval sentiment *train* split, once ``../shared/data`` holds its texts (today
  ``train_text.txt`` is empty: labels only, so nothing is read; research use);
- emotion (anger, joy, optimism, sadness): TweetEval emotion train split (research use); its
  tweets also count for sentiment (anger/sadness negative, joy/optimism positive) unless
  ``train.py --no-emotion-sentiment`` keeps them for the emotion head only.
- stress: the project's own support messages, train split only.

TweetEval sentiment val, the airline hold-out and the support test split are never read here.
The registry sets are fetched with pip and npm into a cache folder, never into the repository.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cctriage_common.evaluate import load_airline, load_support, load_tweeteval_emotion

VADER_NEUTRAL_BAND = 0.5
VADER_FILES = (
    "tweets_GroundTruth.txt",
    "amazonReviewSnippets_GroundTruth.txt",
    "movieReviewSnippets_GroundTruth.txt",
    "nytEditorialSnippets_GroundTruth.txt",
)
UCI_FILES = ("amazon.json", "imdb.json", "yelp.json")


@dataclass(frozen=True)
class Row:
    """One training message. A task label is None when the source does not label it."""

    text: str
    source: str
    sentiment: int | None = None  # index into SENTIMENT_LABELS
    emotion: int | None = None  # index into EMOTION_LABELS
    stressed: bool | None = None


def _run(cmd: list[str], cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, timeout=600)


def fetch_vader(cache: Path) -> Path:
    """The hutto_ICWSM_2014 folder from the vaderSentiment 3.3.2 sdist (fetched once)."""
    cache = cache.resolve()
    target = cache / "hutto_ICWSM_2014"
    if (target / VADER_FILES[0]).exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-binary",
                ":all:",
                "--no-deps",
                "vaderSentiment==3.3.2",
                "-d",
                tmp,
            ],
            Path(tmp),
        )
        with tarfile.open(Path(tmp) / "vaderSentiment-3.3.2.tar.gz") as sdist:
            inner = sdist.extractfile("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz")
            assert inner is not None
            with tarfile.open(fileobj=inner) as data:
                data.extractall(cache, filter="data")
    return target


def fetch_uci(cache: Path) -> Path:
    """The UCI sentence fixtures from the sentiment@5.0.2 npm package (fetched once)."""
    cache = cache.resolve()
    target = cache / "uci_sentences"
    if (target / UCI_FILES[0]).exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        _run(["npm", "pack", "--silent", "sentiment@5.0.2"], Path(tmp))
        with tarfile.open(Path(tmp) / "sentiment-5.0.2.tgz") as package:
            for name in UCI_FILES:
                member = package.extractfile(f"package/test/fixtures/{name}")
                assert member is not None
                (target / name).write_bytes(member.read())
    return target


def vader_rows(folder: Path, neutral_band: float = VADER_NEUTRAL_BAND) -> list[Row]:
    """Sentences with a mean human valence within +-``neutral_band`` (of -4..+4) are neutral."""
    rows = []
    for name in VADER_FILES:
        for line in (folder / name).read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.split("\t")
            if len(parts) < 3 or not parts[2].strip():
                continue
            valence = float(parts[1])
            label = 0 if valence < -neutral_band else 2 if valence > neutral_band else 1
            rows.append(Row(parts[2].strip(), f"vader:{name.split('_')[0]}", sentiment=label))
    return rows


def uci_rows(folder: Path) -> list[Row]:
    rows = []
    for name in UCI_FILES:
        for item in json.loads((folder / name).read_text(encoding="utf-8")):
            rows.append(Row(item["text"].strip(), f"uci:{name[:-5]}", sentiment=2 if item["class"] else 0))
    return rows


def airline_rows(data_dir: Path) -> list[Row]:
    index = {"negative": 0, "neutral": 1, "positive": 2}
    return [Row(e.text, "airline", sentiment=index[e.label]) for e in load_airline(data_dir, "train")]


def emotion_rows(data_dir: Path, with_sentiment: bool = True) -> list[Row]:
    """TweetEval emotion tweets. With ``with_sentiment`` they also carry a sentiment label:
    every one of them expresses an emotion (anger and sadness negative, joy and optimism
    positive). Without it they train the emotion head only, so the only tweets the sentiment
    head sees are not all polar ones."""
    index = {"anger": 0, "joy": 1, "optimism": 2, "sadness": 3}
    polarity = {"anger": 0, "joy": 2, "optimism": 2, "sadness": 0}
    return [
        Row(t, "tweeteval_emotion", sentiment=polarity[e] if with_sentiment else None, emotion=index[e])
        for t, e in load_tweeteval_emotion(data_dir, "train")
    ]


def tweeteval_sentiment_rows(data_dir: Path) -> list[Row]:
    """TweetEval sentiment train tweets, labelled by the split's own mapping.txt. The shared
    data ships their labels but an empty text file; until the texts are there this returns no
    rows (and says so), and a text file that does not match the labels line for line raises."""
    folder = data_dir / "tweeteval" / "sentiment"
    texts_path, labels_path = folder / "train_text.txt", folder / "train_labels.txt"
    if not texts_path.exists() or texts_path.stat().st_size == 0:
        print(f"note: {texts_path} is missing or empty; no TweetEval sentiment tweets", flush=True)
        return []
    index = {"negative": 0, "neutral": 1, "positive": 2}
    mapping = {}
    for line in (folder / "mapping.txt").read_text(encoding="utf-8").splitlines():
        if line.strip():
            code, name = line.split("\t")
            mapping[code.strip()] = index[name.strip()]
    texts = texts_path.read_text(encoding="utf-8").splitlines()
    labels = labels_path.read_text(encoding="utf-8").splitlines()
    if len(texts) != len(labels):
        raise ValueError(f"{texts_path}: {len(texts)} texts for {len(labels)} labels in {labels_path}")
    return [
        Row(text.strip(), "tweeteval_sentiment", sentiment=mapping[label.strip()])
        for text, label in zip(texts, labels, strict=True)
        if text.strip()
    ]


def support_rows(path: Path) -> list[Row]:
    index = {"negative": 0, "neutral": 1, "positive": 2}
    if not path.exists():
        print(f"warning: {path} not found; training without the project's support messages", flush=True)
        return []
    return [
        Row(e.text, "support", sentiment=index[e.label], stressed=bool(e.stressed))
        for e in load_support(path, "train")
    ]


SUPPORT_EXTRA_DIR = Path(__file__).resolve().parents[1] / "data" / "support_train_extra"
_SENTIMENT_CODES = {"neg": 0, "neu": 1, "pos": 2}


def support_extra_rows(folder: Path = SUPPORT_EXTRA_DIR) -> list[Row]:
    """Train-only support messages (``models/data/support_train_extra/*.txt``, the source format
    of ``support_src``: ``<channel> <neg|neu|pos> <yes|no> <text>``). They never enter the test
    split, so the figures measured on it stay comparable from one model to the next."""
    rows = []
    for path in sorted(folder.glob("*.txt")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split(maxsplit=3)
            if len(parts) < 4 or parts[1] not in _SENTIMENT_CODES or parts[2] not in ("yes", "no"):
                raise ValueError(f"{path}:{number}: expected '<channel> <neg|neu|pos> <yes|no> <text>'")
            text = parts[3].replace("\\n", "\n").strip()
            rows.append(
                Row(text, "support", sentiment=_SENTIMENT_CODES[parts[1]], stressed=parts[2] == "yes")
            )
    return rows


def load_all(
    data_dir: Path,
    support_path: Path,
    cache: Path,
    vader_neutral_band: float = VADER_NEUTRAL_BAND,
    support_extra: bool = False,
    emotion_sentiment: bool = True,
) -> dict[str, list[Row]]:
    """Every training source by name."""
    return {
        "airline": airline_rows(data_dir),
        "vader": vader_rows(fetch_vader(cache), vader_neutral_band),
        "uci": uci_rows(fetch_uci(cache)),
        "tweeteval_emotion": emotion_rows(data_dir, emotion_sentiment),
        "tweeteval_sentiment": tweeteval_sentiment_rows(data_dir),
        "support": support_rows(support_path) + (support_extra_rows() if support_extra else []),
    }
