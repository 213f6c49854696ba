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
def test_model_holds_the_product_targets(report: dict) -> None:
    below = {
        name: round(_lookup(report, name), 4)
        for name, target in MUST_HOLD.items()
        if _lookup(report, name) < target
    }
    assert not below, f"below the must-hold targets {MUST_HOLD}: {below}"
