"""The shipped model must not fall below the figures its model card states.

The floors live in one committed place, ``models/manifest.json`` → ``card_figures``
(written by ``models/training/export.py`` from the evaluation, rounded down). The
must-hold targets of the product are asserted too, so a retrained model that states lower
figures in its card still cannot ship below them.
"""

from __future__ import annotations

import pytest
from cctriage_common.evaluate import default_data_dir, default_support_path, evaluate
from cctriage_common.sentiment import SentimentModel

MUST_HOLD = {
    "support_test.stress.recall": 0.90,
    "support_test.stress.precision": 0.80,
    "support_test.plain_request_neutral_rate": 0.90,
    "airline_heldout.accuracy": 0.82,
    "tweeteval_sentiment_val.macro_recall": 0.68,
}
# Targets the shipped model is measured below (figures in models/MODEL_CARD.md). Strict xfail:
# the test turns red as soon as a retrained model meets the target, so this list is kept true.
NOT_MET_YET: dict[str, str] = {
    "tweeteval_sentiment_val.macro_recall": "measured 0.642 for cctriage-sentiment-1: general-domain "
    "neutral tweets are read as polar (no neutral tweet training set)",
}


def _lookup(report: dict, dotted: str) -> float:
    value = report["sets"]
    for part in dotted.split("."):
        value = value[part]
    return value


@pytest.fixture(scope="module")
def report() -> dict:
    data_dir = default_data_dir()
    if not (data_dir / "airline" / "train.csv").exists():
        pytest.fail(f"shared data not found at {data_dir}: the quality gate needs ../shared/data")
    model = SentimentModel.load(intra_op_threads=2)
    return {"manifest": model.manifest, **evaluate(model, data_dir, default_support_path(), batch_size=64)}


@pytest.mark.slow
def test_model_holds_every_figure_its_card_states(report: dict) -> None:
    floors = report["manifest"]["card_figures"]
    assert set(MUST_HOLD) <= set(floors), "the card must state every must-hold figure"
    below = {
        name: (round(_lookup(report, name), 4), floor)
        for name, floor in floors.items()
        if _lookup(report, name) < floor
    }
    assert not below, f"measured below the model card (measured, card): {below}"


@pytest.mark.slow
@pytest.mark.parametrize(
    "figure",
    [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=NOT_MET_YET[name]))
        if name in NOT_MET_YET
        else name
        for name in MUST_HOLD
    ],
)
def test_model_holds_the_product_target(report: dict, figure: str) -> None:
    measured = _lookup(report, figure)
    assert measured >= MUST_HOLD[figure], f"{figure}: measured {measured:.4f}, target {MUST_HOLD[figure]}"
