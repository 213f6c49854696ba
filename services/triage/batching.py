"""Scoring many customer messages with few, evenly padded ONNX runs.

The model pads every run to its longest message, and support messages vary a lot in length
(most are 10 to 30 tokens, a few are 128): a batch of 16 taken in arrival order carried
2.5 times the tokens it needed. Sorting a gathered batch by length and cutting it into runs
of ``run_size`` messages keeps the padding small, so the worker can gather many events at
once without paying for it in model time. Scores do not depend on the other messages of a
run (models/MODEL_CARD.md), so the order of the runs changes nothing but the speed.

Where to cut is a small cost model, not a fixed count. Measured on this project's 2-core
machine (int8 MiniLM, ONNX Runtime, one intra-op thread): a run costs close to
``rows x width`` tokens (0.14 ms per token at width 24; 8 rows of 24 tokens 25.9 ms, one row
4.0 ms), plus a small fixed cost per run (~0.5 ms, about 4 tokens' worth; ~1.7 ms with two
intra-op threads, which pay off only on bigger runs). So batching buys little and padding costs
in full: three messages of 10, 30 and 120 tokens cost 360 tokens as one run but 160 as three.
Runs of a fixed count of neighbours in length order padded a light-load batch of 2 to 4
messages of unlike lengths to its longest one, and the worker's model time per message went
up as the queue grew (what broke p99 at half load, issue 5). ``cut_runs`` picks the cuts that
minimise ``sum(overhead + rows x longest)`` over the length-sorted messages (a small dynamic
programme: at most ``run_size`` rows per run), with lengths in characters (~4.5 per token,
capped at the model's 128 tokens).

The pipeline benchmark measures the model alone through the same function, so the model-only
ceiling it compares the worker against uses the model at least as well as the worker does.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Sequence
from typing import Any

# Fixed cost of one ONNX run, in characters of message (about 4.5 per token), by intra-op
# threads; measured as above. Lengths count at most MAX_CHARS (the model's 128 tokens).
RUN_OVERHEAD_CHARS = {1: 20, 2: 80}
MAX_CHARS = 600
# [CLS] and [SEP]: every row carries two tokens more than its text.
ROW_EXTRA_CHARS = 9


def cut_runs(lengths: Sequence[int], run_size: int, overhead: float) -> list[list[int]]:
    """Indices of ``lengths`` grouped into runs: sorted by length, at most ``run_size`` per run,
    cut where ``sum(overhead + rows * longest)`` is least (lengths capped at MAX_CHARS)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    width = [min(lengths[i], MAX_CHARS) + ROW_EXTRA_CHARS for i in order]
    best = [0.0] + [float("inf")] * len(order)
    start = [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        for first in range(max(0, end - run_size), end):
            # Rows first..end-1 in one run, padded to the longest (the last, in sorted order).
            cost = best[first] + overhead + (end - first) * width[end - 1]
            if cost < best[end]:
                best[end], start[end] = cost, first
    runs = []
    end = len(order)
    while end > 0:
        runs.append(order[start[end] : end])
        end = start[end]
    return runs[::-1]


def score_by_length(
    model: Any,
    texts: Sequence[str],
    run_size: int,
    on_run: Callable[[int, float], None] | None = None,
    parallel: concurrent.futures.Executor | None = None,
) -> list[Any]:
    """``model.score`` for every text, in order, with runs of at most ``run_size`` similar-length
    texts, cut by ``cut_runs`` (the fixed cost per run from the model's ``intra_op_threads``).

    ``on_run(messages, seconds)`` is called after each ONNX run (for metrics). With ``parallel``
    (an executor of N threads), a batch of several runs has up to N of them scored at once (an
    ONNX session takes concurrent runs); a batch of one run is scored in the calling thread.
    """
    if run_size < 1:
        raise ValueError("run_size must be at least 1")
    threads = getattr(model, "intra_op_threads", 1)
    overhead = RUN_OVERHEAD_CHARS.get(threads, RUN_OVERHEAD_CHARS[2])
    runs = cut_runs([len(t) for t in texts], run_size, overhead)

    def score_run(run: list[int]) -> list[Any]:
        started = time.perf_counter()
        scores = model.score([texts[i] for i in run])
        if on_run is not None:
            on_run(len(run), time.perf_counter() - started)
        return scores

    if parallel is None or len(runs) < 2:
        scored = [score_run(run) for run in runs]
    else:
        scored = list(parallel.map(score_run, runs))
    results: list[Any] = [None] * len(texts)
    for run, scores in zip(runs, scored, strict=True):
        for i, score in zip(run, scores, strict=True):
            results[i] = score
    return results
