"""Train the triage model: all-MiniLM-L6-v2 plus sentiment, emotion and stress heads.

Run (from the repository root, with the ``[train]`` extra installed; ``make model`` runs this
and then ``export.py``)::

    nice -n 10 .venv/bin/python models/training/train.py --mode finetune \
        --data-dir ../shared/data --work-dir build/model

``--mode frozen`` keeps the encoder as published and fits only the heads on cached
embeddings (minutes); ``--mode finetune`` trains the top ``--trainable-layers`` transformer
layers (3 by default, 6 = the whole encoder) together with the heads, multi-task: each batch
mixes sources and each loss counts only the rows that carry its label. The layers below are
run once per message and their output cached, which is what makes fine-tuning fit in about
half an hour on two shared cores.
Progress goes to ``<work-dir>/train.log``; a checkpoint is written every ``--checkpoint-every``
steps and at the end of each epoch, and ``--resume`` continues from the last one.

The stress threshold is chosen on a dev part of the support *train* split (20%, by a hash of
the text), so the support test split is never looked at.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
import time
from pathlib import Path

import torch
from cctriage_common.evaluate import default_data_dir, default_support_path
from cctriage_common.sentiment import prepare_text, token_ids
from corpora import Row, load_all
from minilm import LAYERS, TriageNet, base_model_dir
from tokenizers import Tokenizer
from torch.nn import functional as F

SEED = 13
DEV_SHARE = 5  # one support-train message in five is dev (threshold and model choice)
GENERAL_DEV_SHARE = 10  # one airline-train row / VADER tweet in ten is general dev


def log(work_dir: Path, message: str) -> None:
    line = f"{time.strftime('%H:%M:%S')} {message}"
    print(line, flush=True)
    with (work_dir / "train.log").open("a") as f:
        f.write(line + "\n")


def is_dev(text: str) -> bool:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") % DEV_SHARE == 0


def tokenizer() -> Tokenizer:
    tok = Tokenizer.from_file(str(base_model_dir() / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok


def encode_rows(tok: Tokenizer, rows: list[Row], max_tokens: int) -> list[list[int]]:
    return token_ids(tok, [prepare_text(r.text) or "." for r in rows], max_tokens)


def collate(ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in ids)
    input_ids = torch.zeros((len(ids), width), dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, r in enumerate(ids):
        input_ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return input_ids, mask


def labels(rows: list[Row]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Label tensors with -1 (classes) or NaN (stress) where a row has no label."""
    sentiment = torch.tensor([-1 if r.sentiment is None else r.sentiment for r in rows])
    emotion = torch.tensor([-1 if r.emotion is None else r.emotion for r in rows])
    stress = torch.tensor([math.nan if r.stressed is None else float(r.stressed) for r in rows])
    return sentiment, emotion, stress


def losses(
    net: TriageNet,
    logits,
    rows: list[Row],
    stress_pos_weight: float,
    stress_weight: float = 1.0,
    sentiment_class_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    sentiment_logits, emotion_logits, stress_logits = logits
    sentiment, emotion, stress = labels(rows)
    total = torch.zeros(())
    if (sentiment >= 0).any():
        total = total + F.cross_entropy(
            sentiment_logits,
            sentiment,
            weight=sentiment_class_weight,
            ignore_index=-1,
            label_smoothing=0.05,
        )
    if (emotion >= 0).any():
        total = total + 0.5 * F.cross_entropy(emotion_logits, emotion, ignore_index=-1)
    known = ~torch.isnan(stress)
    if known.any():
        total = total + stress_weight * F.binary_cross_entropy_with_logits(
            stress_logits[known], stress[known], pos_weight=torch.tensor(stress_pos_weight)
        )
    return total


def cap_vader(sources: dict[str, list[Row]], cap: int, movie_cap: int | None = None) -> None:
    """Fixed samples: at most ``movie_cap`` movie-review snippets (nearly all polar, and far
    from support traffic), then at most ``cap`` VADER sentences in all."""
    rows = sources["vader"]
    movies = [r for r in rows if r.source == "vader:movieReviewSnippets"]
    if movie_cap is not None and len(movies) > movie_cap:
        keep = set(random.Random(SEED).sample(movies, movie_cap))
        rows = [r for r in rows if r.source != "vader:movieReviewSnippets" or r in keep]
    if len(rows) > cap:
        rows = random.Random(SEED).sample(rows, cap)
    sources["vader"] = rows


def is_general_dev(text: str) -> bool:
    digest = hashlib.sha256(b"general-dev:" + text.strip().encode()).digest()
    return int.from_bytes(digest[:4], "big") % GENERAL_DEV_SHARE == 0


def split_general_dev(sources: dict[str, list[Row]]) -> dict[str, list[Row]]:
    """Hold out one in ten airline-train rows and VADER tweets: a dev set from the training
    sources for choices made after training (the sentiment bias), never trained on."""
    dev = {
        "airline": [r for r in sources["airline"] if is_general_dev(r.text)],
        "vader_tweets": [
            r for r in sources["vader"] if r.source == "vader:tweets" and is_general_dev(r.text)
        ],
    }
    sources["airline"] = [r for r in sources["airline"] if not is_general_dev(r.text)]
    sources["vader"] = [
        r for r in sources["vader"] if not (r.source == "vader:tweets" and is_general_dev(r.text))
    ]
    return dev


def prepare_sources(
    data_dir: Path, support: Path, work_dir: Path, record: dict
) -> tuple[dict[str, list[Row]], dict[str, list[Row]]]:
    """Training sources and the general dev split, as a training record describes them (the
    defaults reproduce runs recorded before these options existed)."""
    sources = load_all(
        data_dir,
        support,
        work_dir / "cache",
        record.get("vader_neutral_band", 0.5),
        record.get("support_extra", False),
        record.get("emotion_sentiment", True),
    )
    general_dev = split_general_dev(sources) if record.get("general_dev", False) else {}
    cap_vader(sources, record.get("vader_cap", 10000), record.get("vader_movie_cap"))
    return sources, general_dev


def sentiment_prior(rows: list[Row]) -> list[float]:
    """Share of each sentiment class among the rows the sentiment head was trained on."""
    counts = [0, 0, 0]
    for row in rows:
        if row.sentiment is not None:
            counts[row.sentiment] += 1
    return [c / sum(counts) for c in counts]


def split_support(sources: dict[str, list[Row]]) -> tuple[list[Row], list[Row]]:
    support = sources["support"]
    return [r for r in support if not is_dev(r.text)], [r for r in support if is_dev(r.text)]


def training_rows(sources: dict[str, list[Row]], support_train: list[Row], repeat: int) -> list[Row]:
    rows = []
    for name, items in sources.items():
        if name != "support":
            rows.extend(items)
    rows.extend(support_train * repeat)
    return rows


def sentiment_class_weight(rows: list[Row], balanced: bool, neutral_weight: float) -> torch.Tensor | None:
    """Per-class weights of the sentiment loss: inverse class frequency among the training rows
    (normalised so that the weighted mean over the rows is 1) if ``balanced``, times
    ``neutral_weight`` for neutral. None (plain cross-entropy) when neither is asked for."""
    if not balanced and neutral_weight == 1.0:
        return None
    weight = torch.ones(3)
    if balanced:
        prior = torch.tensor(sentiment_prior(rows))
        # A class no row carries gets weight 1: it never enters the loss anyway.
        weight = torch.where(prior > 0, 1.0 / (3.0 * prior.clamp(min=1e-9)), torch.ones(3))
    weight[1] *= neutral_weight
    return weight


def stress_pos_weight(support_train: list[Row]) -> float:
    positives = sum(bool(r.stressed) for r in support_train)
    return (len(support_train) - positives) / max(positives, 1)


@torch.no_grad()
def predict(net: TriageNet, tok: Tokenizer, rows: list[Row], max_tokens: int, batch: int = 64):
    net.eval()
    ids = encode_rows(tok, rows, max_tokens)
    order = sorted(range(len(rows)), key=lambda i: len(ids[i]))
    out = [None] * len(rows)
    for start in range(0, len(order), batch):
        chunk = order[start : start + batch]
        probs = net(*collate([ids[i] for i in chunk]))
        for j, i in enumerate(chunk):
            out[i] = (probs[0][j].tolist(), probs[1][j].tolist(), float(probs[2][j]))
    return out


def choose_threshold(scores: list[float], truth: list[bool], target_recall: float) -> float:
    """Highest threshold whose dev recall still reaches ``target_recall``: fewest false alarms
    for the recall the product needs."""
    positives = sorted((s for s, t in zip(scores, truth, strict=True) if t), reverse=True)
    if not positives:
        return 0.5
    needed = math.ceil(target_recall * len(positives))
    return max(min(positives[needed - 1], 0.95), 0.02)


def dev_report(net, tok, dev: list[Row], max_tokens: int, target_recall: float) -> dict:
    if not dev:
        return {"stress_threshold": 0.5}
    preds = predict(net, tok, dev, max_tokens)
    truth = [bool(r.stressed) for r in dev]
    scores = [p[2] for p in preds]
    threshold = choose_threshold(scores, truth, target_recall)
    flagged = [s >= threshold for s in scores]
    tp = sum(f and t for f, t in zip(flagged, truth, strict=True))
    sentiment_ok = sum(
        max(range(3), key=lambda k: p[0][k]) == r.sentiment for p, r in zip(preds, dev, strict=True)
    )
    return {
        "stress_threshold": threshold,
        "dev_n": len(dev),
        "dev_stress_recall": tp / max(sum(truth), 1),
        "dev_stress_precision": tp / max(sum(flagged), 1),
        "dev_sentiment_accuracy": sentiment_ok / len(dev),
    }


def train_frozen(args, sources, support_train, dev, tok, net: TriageNet) -> dict:
    """Heads only, on embeddings computed once."""
    rows = training_rows(sources, support_train, 1)
    log(args.work_dir, f"frozen: embedding {len(rows)} rows")
    ids = encode_rows(tok, rows, args.max_tokens)
    order = sorted(range(len(rows)), key=lambda i: len(ids[i]))
    embeddings = torch.zeros((len(rows), net.sentiment.in_features))
    net.eval()
    with torch.no_grad():
        for start in range(0, len(order), 128):
            chunk = order[start : start + 128]
            embeddings[chunk] = net.encode(*collate([ids[i] for i in chunk]))
    log(args.work_dir, "frozen: fitting heads")
    sentiment, emotion, stress = labels(rows)
    optimizer = torch.optim.AdamW(
        [*net.sentiment.parameters(), *net.emotion.parameters(), *net.stress.parameters()],
        lr=1e-2,
        weight_decay=1e-4,
    )
    weight = torch.tensor(stress_pos_weight(support_train))
    known = ~torch.isnan(stress)
    for step in range(600):
        optimizer.zero_grad()
        loss = F.cross_entropy(net.sentiment(embeddings), sentiment, ignore_index=-1)
        loss = loss + F.cross_entropy(net.emotion(embeddings), emotion, ignore_index=-1)
        if known.any():
            loss = loss + F.binary_cross_entropy_with_logits(
                net.stress(embeddings[known]).squeeze(-1), stress[known], pos_weight=weight
            )
        loss.backward()
        optimizer.step()
        if step % 100 == 0:
            log(args.work_dir, f"frozen step {step} loss {loss.item():.4f}")
    return dev_report(net, tok, dev, args.max_tokens, args.target_recall)


def train_finetune(args, sources, support_train, dev, tok, net: TriageNet) -> dict:
    checkpoint = args.work_dir / "finetune.ckpt"
    rows_all = training_rows(sources, support_train, args.support_repeat)
    ids_all = encode_rows(tok, rows_all, args.max_tokens)
    pos_weight = stress_pos_weight(support_train)
    class_weight = sentiment_class_weight(rows_all, args.sentiment_balanced, args.neutral_weight)
    if class_weight is not None:
        shown = [round(w, 3) for w in class_weight.tolist()]
        log(args.work_dir, f"sentiment class weights (neg, neu, pos): {shown}")
    # Only the top ``trainable_layers`` layers and the heads learn. The layers below stay as
    # published, so their output is computed once per message and cached (fp16): on 2 shared
    # cores a full fine-tune step costs about 3x a top-2 step.
    frozen_layers = LAYERS - args.trainable_layers
    for name, p in net.named_parameters():
        top = name.startswith("layers.") and int(name.split(".")[1]) >= frozen_layers
        p.requires_grad_(top or name.split(".")[0] in ("sentiment", "emotion", "stress"))
    encoder = [p for n, p in net.named_parameters() if p.requires_grad and n.startswith("layers.")]
    heads = [p for n, p in net.named_parameters() if n.split(".")[0] in ("sentiment", "emotion", "stress")]
    cache_key: dict[Row, int] = {}
    for row in rows_all:
        cache_key.setdefault(row, len(cache_key))
    unique = list(cache_key)
    first_index = {}
    for i, row in enumerate(rows_all):
        first_index.setdefault(row, i)
    cached: list[torch.Tensor] = [torch.empty(0)] * len(unique)
    order = sorted(range(len(unique)), key=lambda k: len(ids_all[first_index[unique[k]]]))
    net.eval()
    log(args.work_dir, f"caching layers 0..{frozen_layers - 1} for {len(unique)} distinct rows")
    with torch.no_grad():
        for start in range(0, len(order), 128):
            chunk = order[start : start + 128]
            input_ids, mask = collate([ids_all[first_index[unique[k]]] for k in chunk])
            hidden = net.run_layers(net.embed(input_ids), mask, 0, frozen_layers)
            for j, k in enumerate(chunk):
                cached[k] = hidden[j, : int(mask[j].sum())].to(torch.float16).clone()
            if (start // 128) % 40 == 0:
                log(args.work_dir, f"cached {start + len(chunk)}/{len(unique)}")

    def forward_cached(batch: list[int]):
        states = [cached[cache_key[rows_all[i]]] for i in batch]
        width = max(len(t) for t in states)
        x = torch.zeros((len(states), width, states[0].shape[-1]))
        mask = torch.zeros((len(states), width), dtype=torch.long)
        for j, t in enumerate(states):
            x[j, : len(t)] = t.float()
            mask[j, : len(t)] = 1
        hidden = net.run_layers(x, mask, frozen_layers)
        return net.heads(net.pool(hidden, mask))

    optimizer = torch.optim.AdamW(
        [{"params": encoder, "lr": args.lr}, {"params": heads, "lr": args.lr * 20}], weight_decay=0.01
    )
    per_epoch = min(len(rows_all), args.rows_per_epoch)
    steps_per_epoch = per_epoch // args.batch_size
    total_steps = steps_per_epoch * args.epochs
    warmup = max(total_steps // 20, 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total_steps - s) / max(total_steps - warmup, 1)))
    )
    step = 0
    if args.resume and checkpoint.exists():
        state = torch.load(checkpoint, weights_only=False)
        net.load_state_dict(state["net"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step = state["step"]
        log(args.work_dir, f"resumed at step {step}")
    log(
        args.work_dir,
        f"finetune: {len(rows_all)} rows, {per_epoch}/epoch, {total_steps} steps of {args.batch_size}",
    )

    started = time.time()
    while step < total_steps:
        epoch = step // steps_per_epoch
        # Same shuffle for an epoch whether run straight through or resumed.
        epoch_rng = random.Random(SEED * 1000 + epoch)
        picked = epoch_rng.sample(range(len(rows_all)), per_epoch)
        # Batches of similar length (less padding), in random order.
        picked.sort(key=lambda i: len(ids_all[i]) + epoch_rng.random() * 8)
        batches = [
            picked[i : i + args.batch_size]
            for i in range(0, steps_per_epoch * args.batch_size, args.batch_size)
        ]
        epoch_rng.shuffle(batches)
        net.train()
        running = 0.0
        for index in range(step - epoch * steps_per_epoch, steps_per_epoch):
            batch = batches[index]
            rows = [rows_all[i] for i in batch]
            logits = forward_cached(batch)
            loss = losses(net, logits, rows, pos_weight, args.stress_weight, class_weight)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(encoder + heads, 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            running += loss.item()
            if step % args.log_every == 0:
                rate = step / max(time.time() - started, 1e-9)
                log(
                    args.work_dir,
                    f"step {step}/{total_steps} epoch {epoch} loss {running / args.log_every:.4f} "
                    f"{rate:.2f} steps/s eta {(total_steps - step) / max(rate, 1e-9) / 60:.1f} min",
                )
                running = 0.0
            if step % args.checkpoint_every == 0 or step == total_steps or index == steps_per_epoch - 1:
                torch.save(
                    {
                        "net": net.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "step": step,
                    },
                    checkpoint,
                )
        report = dev_report(net, tok, dev, args.max_tokens, args.target_recall)
        log(args.work_dir, f"epoch {epoch} dev {json.dumps(report)}")
    return dev_report(net, tok, dev, args.max_tokens, args.target_recall)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=("frozen", "finetune"), default="finetune")
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--support", type=Path, default=default_support_path())
    parser.add_argument("--work-dir", type=Path, default=Path("build/model"))
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rows-per-epoch", type=int, default=16000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--trainable-layers", type=int, default=3, help="top layers to train (6 = all)")
    parser.add_argument("--vader-cap", type=int, default=10000, help="VADER sentences used (a fixed sample)")
    parser.add_argument(
        "--vader-movie-cap", type=int, default=None, help="VADER movie-review snippets kept (default all)"
    )
    parser.add_argument(
        "--vader-neutral-band",
        type=float,
        default=0.5,
        help="VADER sentences with |mean valence| <= this (scale -4..4) count as neutral",
    )
    parser.add_argument(
        "--general-dev",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="hold out 10%% of airline-train rows and VADER tweets as a dev set (for the sentiment bias)",
    )
    parser.add_argument(
        "--support-extra",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also train on the train-only messages in models/data/support_train_extra",
    )
    parser.add_argument(
        "--emotion-sentiment",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="TweetEval emotion tweets also carry a sentiment label (anger/sadness negative, "
        "joy/optimism positive); --no-emotion-sentiment trains the emotion head on them only",
    )
    parser.add_argument(
        "--sentiment-balanced",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="weight the sentiment loss by inverse class frequency among the training rows",
    )
    parser.add_argument(
        "--neutral-weight",
        type=float,
        default=1.0,
        help="extra weight of the neutral class in the sentiment loss (1 = off)",
    )
    parser.add_argument("--support-repeat", type=int, default=8)
    parser.add_argument("--stress-weight", type=float, default=2.0, help="weight of the stress loss")
    parser.add_argument("--target-recall", type=float, default=0.92)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--log-every", type=int, default=20)
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)

    torch.manual_seed(SEED)
    torch.set_num_threads(args.threads)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    data_options = {
        "vader_neutral_band": args.vader_neutral_band,
        "vader_cap": args.vader_cap,
        "vader_movie_cap": args.vader_movie_cap,
        "general_dev": args.general_dev,
        "support_extra": args.support_extra,
        "emotion_sentiment": args.emotion_sentiment,
    }
    sources, general_dev = prepare_sources(args.data_dir, args.support, args.work_dir, data_options)
    support_train, dev = split_support(sources)
    log(
        args.work_dir,
        "sources: "
        + ", ".join(f"{k}={len(v)}" for k, v in sources.items())
        + f"; support train={len(support_train)} dev={len(dev)}; general dev "
        + ", ".join(f"{k}={len(v)}" for k, v in general_dev.items()),
    )
    tok = tokenizer()
    net = TriageNet.from_pretrained()
    if args.mode == "frozen":
        report = train_frozen(args, sources, support_train, dev, tok, net)
    else:
        report = train_finetune(args, sources, support_train, dev, tok, net)
    report.update(
        {
            "mode": args.mode,
            "max_tokens": args.max_tokens,
            "sources": {k: len(v) for k, v in sources.items()},
            "support_train_rows": len(support_train),
            "epochs": args.epochs if args.mode == "finetune" else 0,
            "trainable_layers": args.trainable_layers if args.mode == "finetune" else 0,
            "support_repeat": args.support_repeat,
            "stress_weight": args.stress_weight,
            "sentiment_balanced": args.sentiment_balanced,
            "neutral_weight": args.neutral_weight,
            **data_options,
            "rows_per_epoch": args.rows_per_epoch if args.mode == "finetune" else 0,
        }
    )
    torch.save(net.state_dict(), args.work_dir / f"{args.mode}.pt")
    (args.work_dir / f"{args.mode}.json").write_text(json.dumps(report, indent=2) + "\n")
    log(args.work_dir, f"done {args.mode}: {json.dumps(report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
