"""Scoring many customer messages with few, evenly padded ONNX runs.

The model pads every run to its longest message, and support messages vary a lot in length
(most are 10 to 30 tokens, a few are 128): a batch of 16 taken in arrival order carried
2.5 times the tokens it needed. Sorting a gathered batch by length and cutting it into runs
of ``run_size`` messages keeps the padding small, so the worker can gather many events at
once without paying for it in model time. Scores do not depend on the other messages of a
run (models/MODEL_CARD.md), so the order of the runs changes nothing but the speed.

The pipeline benchmark measures the model alone through the same function, so the model-only
ceiling it compares the worker against uses the model at least as well as the worker does.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Sequence
from typing import Any


def score_by_length(
    model: Any,
    texts: Sequence[str],
    run_size: int,
    on_run: Callable[[int, float], None] | None = None,
    parallel: concurrent.futures.Executor | None = None,
) -> list[Any]:
    """``model.score`` for every text, in order, with runs of at most ``run_size`` similar-length texts.

    ``on_run(messages, seconds)`` is called after each ONNX run (for metrics). With ``parallel``
    (an executor of N threads), a batch of several runs has up to N of them scored at once (an
    ONNX session takes concurrent runs); a batch of one run is scored in the calling thread.
    """
    if run_size < 1:
        raise ValueError("run_size must be at least 1")
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    runs = [order[start : start + run_size] for start in range(0, len(order), run_size)]

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
