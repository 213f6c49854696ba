"""Runtime for the shipped sentiment/emotion/stress model (``models/``).

Needs onnxruntime and ``tokenizers`` only: no torch, no download. Load once per process::

    model = SentimentModel.load(intra_op_threads=settings.model_threads)
    scores = model.score(["I've called four times and nobody fixed it", "thanks!"])
    scores[0].negative, scores[0].emotions["anger"], scores[0].stress, scores[0].stressed

``score`` makes one ONNX run per call: messages are tokenized together and padded to the
longest message of the batch (dynamic padding), never to a fixed length. Long messages keep
their first and last tokens (the request and the sign-off threat both survive), so a
5,000-word email scores like any other message. Text that carries nothing to score (empty,
whitespace, control characters, undecodable bytes) gets a neutral, unstressed score without
a model run; emoji are spelled out by their Unicode names ("pouting face"), the same way the
training data was prepared, because the tokenizer's vocabulary has almost none of them.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

MANIFEST = "manifest.json"
SENTIMENT_LABELS = ("negative", "neutral", "positive")
# Longest text handed to the tokenizer: far beyond max_tokens, so nothing a model would see
# is lost, while a multi-megabyte paste cannot stall a worker in the tokenizer.
_MAX_CHARS_PER_TOKEN = 16
_SPACES = re.compile(r"\s+")


class ModelIntegrityError(RuntimeError):
    """The model files on disk are not the ones the manifest describes."""


def default_model_dir() -> Path:
    """``models/`` of the checkout this package is installed from."""
    return Path(__file__).resolve().parents[2] / "models"


@dataclass(frozen=True)
class MessageScores:
    """What the model says about one customer message.

    ``negative``/``neutral``/``positive`` sum to 1. ``emotions`` are probabilities over the
    emotions the model was trained on (anger, joy, optimism, sadness), summing to 1, or all 0
    when the message has no text. ``stress`` is the probability that a supervisor would want a
    senior agent on this message now; ``stressed`` is ``stress >= stress_threshold`` with the
    threshold shipped in the manifest (chosen for recall on the project's labelled messages).
    """

    negative: float
    neutral: float
    positive: float
    emotions: dict[str, float]
    stress: float
    stressed: bool
    empty: bool = False

    @property
    def sentiment(self) -> str:
        """The most probable of negative, neutral, positive."""
        values = (self.negative, self.neutral, self.positive)
        return SENTIMENT_LABELS[values.index(max(values))]


def prepare_text(text: str | bytes) -> str:
    """Text as the model sees it; the training pipeline applies the same function.

    Undecodable bytes are dropped, control and format characters removed, emoji and other
    pictographs replaced by their lower-case Unicode names, whitespace collapsed.
    """
    if isinstance(text, bytes | bytearray | memoryview):
        text = bytes(text).decode("utf-8", errors="replace")
    elif not isinstance(text, str):
        raise TypeError(f"message text must be str or bytes, not {type(text).__name__}")
    parts: list[str] = []
    for char in text:
        category = unicodedata.category(char)
        if char == "\ufffd" or category in ("Cc", "Cf", "Cs", "Co", "Cn"):
            parts.append(" " if char in "\t\n\r" else "")
        elif category == "Sk" and 0x1F3FB <= ord(char) <= 0x1F3FF:
            parts.append("")  # skin-tone modifier: no sentiment of its own
        elif category == "So":
            name = unicodedata.name(char, "")
            parts.append(f" {name.lower()} " if name else " ")
        else:
            parts.append(char)
    return _SPACES.sub(" ", "".join(parts)).strip()


def token_ids(tokenizer: Tokenizer, texts: Sequence[str], max_tokens: int) -> list[list[int]]:
    """Token ids with [CLS]/[SEP] for already prepared texts, at most ``max_tokens`` each.

    A longer message keeps its first three quarters and last quarter of the budget: the
    opening states the problem, the closing often carries the threat or the deadline.
    """
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    char_limit = max_tokens * _MAX_CHARS_PER_TOKEN
    clipped = [
        t if len(t) <= char_limit else t[: char_limit // 2] + " " + t[-char_limit // 2 :] for t in texts
    ]
    budget = max_tokens - 2
    head = budget * 3 // 4
    rows = []
    for encoding in tokenizer.encode_batch(clipped, add_special_tokens=False):
        ids = encoding.ids
        if len(ids) > budget:
            ids = ids[:head] + ids[len(ids) - (budget - head) :]
        rows.append([cls_id, *ids, sep_id])
    return rows


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class SentimentModel:
    """The shipped ONNX model and its tokenizer, verified against the manifest."""

    def __init__(
        self,
        session: ort.InferenceSession,
        tokenizer: Tokenizer,
        manifest: dict,
        max_tokens: int,
        intra_op_threads: int = 1,
    ) -> None:
        self._session = session
        self.intra_op_threads = intra_op_threads
        self._tokenizer = tokenizer
        self.manifest = manifest
        self.max_tokens = max_tokens
        self.emotion_labels: tuple[str, ...] = tuple(manifest["labels"]["emotion"])
        self.stress_threshold = float(manifest["stress_threshold"])
        self.version = f"{manifest['name']}-{manifest['version']}@sha256:{manifest['sha256'][:12]}"
        self._pad = tokenizer.token_to_id("[PAD]")

    @classmethod
    def load(
        cls,
        model_dir: Path | None = None,
        intra_op_threads: int = 1,
        inter_op_threads: int = 1,
        max_tokens: int = 128,
        allow_spinning: bool = True,
    ) -> SentimentModel:
        """Read the manifest, verify the model's and tokenizer's sha256, start a session.

        ``allow_spinning=False`` makes ONNX Runtime's extra intra-op threads sleep between runs
        instead of busy-waiting (only matters with ``intra_op_threads`` > 1): a process that
        shares its cores with an event loop should not have idle model threads spinning on them.

        Raises ``FileNotFoundError`` when a file is missing and ``ModelIntegrityError`` when a
        file does not match the sha256 in the manifest.
        """
        model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        manifest_path = model_dir / MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(f"model manifest not found: {manifest_path}")
        manifest = json.loads(manifest_path.read_text())
        if not 8 <= max_tokens <= int(manifest.get("max_positions", 512)):
            raise ValueError(f"max_tokens={max_tokens} must be between 8 and the model's position limit")
        if intra_op_threads < 1 or inter_op_threads < 1:
            raise ValueError("intra_op_threads and inter_op_threads must be at least 1")

        model_bytes = (model_dir / manifest["file"]).read_bytes()
        tokenizer_bytes = (model_dir / manifest["tokenizer"]).read_bytes()
        for name, data, expected in (
            (manifest["file"], model_bytes, manifest["sha256"]),
            (manifest["tokenizer"], tokenizer_bytes, manifest["tokenizer_sha256"]),
        ):
            actual = _sha256(data)
            if actual != expected:
                raise ModelIntegrityError(
                    f"{model_dir / name}: sha256 {actual} does not match {expected} in {manifest_path}; "
                    "the model files were changed or are incomplete (rebuild with `make model`)"
                )

        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = inter_op_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if not allow_spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        tokenizer = Tokenizer.from_str(tokenizer_bytes.decode("utf-8"))
        tokenizer.no_padding()
        tokenizer.no_truncation()
        return cls(session, tokenizer, manifest, max_tokens, intra_op_threads)

    def score(self, texts: Sequence[str | bytes]) -> list[MessageScores]:
        """Scores for each message, in order; one ONNX run for the whole batch."""
        if isinstance(texts, str | bytes):
            raise TypeError("score() takes a sequence of messages, not a single message")
        prepared = [prepare_text(t) for t in texts]
        results: list[MessageScores | None] = [None] * len(prepared)
        todo = [i for i, text in enumerate(prepared) if text]
        for i, text in enumerate(prepared):
            if not text:
                results[i] = MessageScores(
                    negative=0.0,
                    neutral=1.0,
                    positive=0.0,
                    emotions=dict.fromkeys(self.emotion_labels, 0.0),
                    stress=0.0,
                    stressed=False,
                    empty=True,
                )
        if todo:
            rows = token_ids(self._tokenizer, [prepared[i] for i in todo], self.max_tokens)
            width = max(len(r) for r in rows)
            input_ids = np.full((len(rows), width), self._pad, dtype=np.int64)
            attention_mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, ids in enumerate(rows):
                input_ids[r, : len(ids)] = ids
                attention_mask[r, : len(ids)] = 1
            sentiment, emotion, stress = self._session.run(
                ["sentiment", "emotion", "stress"],
                {"input_ids": input_ids, "attention_mask": attention_mask},
            )
            for r, i in enumerate(todo):
                s = float(stress[r])
                results[i] = MessageScores(
                    negative=float(sentiment[r, 0]),
                    neutral=float(sentiment[r, 1]),
                    positive=float(sentiment[r, 2]),
                    emotions={label: float(emotion[r, j]) for j, label in enumerate(self.emotion_labels)},
                    stress=s,
                    stressed=s >= self.stress_threshold,
                )
        return results  # type: ignore[return-value]
