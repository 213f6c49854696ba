"""The worker's length-sorted ONNX runs (batching.py), state snapshots and batch settings."""

from __future__ import annotations

import pytest
from cctriage_common.settings import SettingsError
from cctriage_triage.batching import cut_runs, score_by_length
from cctriage_triage.policy import Turn
from cctriage_triage.settings import load_settings
from cctriage_triage.state import ConversationState

MESSAGES = [
    "Fix this now or I'm calling my lawyer. I am furious!",
    "thanks",
    "Hi, my invoice shows a charge I don't recognise. I already wrote twice about it last week and "
    "nobody answered; the amount is 49.99 and it was taken on the 3rd. Please look into it today.",
    "",
    "Great, thanks for checking.",
    "This is ridiculous, I am really angry. Nobody is helping me!",
    "Could you tell me when my order ships?",
]


@pytest.fixture(scope="module")
def model():
    from cctriage_common.sentiment import SentimentModel

    return SentimentModel.load()


def test_scores_come_back_in_input_order_as_if_scored_alone(model):
    runs: list[int] = []
    scores = score_by_length(model, MESSAGES, 3, on_run=lambda n, seconds: runs.append(n))
    alone = [model.score([text])[0] for text in MESSAGES]
    assert [round(s.stress, 4) for s in scores] == [round(s.stress, 4) for s in alone]
    assert [round(s.negative, 4) for s in scores] == [round(s.negative, 4) for s in alone]
    assert sum(runs) == len(MESSAGES) and max(runs) <= 3  # every message scored once, <= run_size per run


def test_runs_group_messages_of_similar_length():
    class Recorder:
        def __init__(self) -> None:
            self.runs: list[list[str]] = []

        def score(self, texts):
            self.runs.append(list(texts))
            return [len(t) for t in texts]

    recorder = Recorder()
    texts = ["x" * n for n in (50, 3, 40, 3, 100, 1)]
    assert score_by_length(recorder, texts, 3) == [50, 3, 40, 3, 100, 1]
    assert [[len(t) for t in run] for run in recorder.runs] == [[1, 3, 3], [40, 50], [100]]


def test_runs_are_cut_where_padding_would_cost_more_than_another_run():
    # Alike lengths: full runs (padding costs little, each run has a fixed cost).
    assert sorted(len(r) for r in cut_runs([100] * 7, 3, 20)) == [1, 3, 3]
    assert cut_runs([100, 101, 102, 103], 8, 20) == [[0, 1, 2, 3]]
    # Unlike lengths: a short message is not padded to a long one's width.
    assert cut_runs([500, 10, 40], 8, 20) == [[1], [2], [0]]
    # A bigger fixed cost per run (two intra-op threads) keeps more together.
    assert cut_runs([40, 70], 8, 20) == [[0], [1]] and cut_runs([40, 70], 8, 80) == [[0, 1]]
    # Lengths past the model's 128 tokens are truncated anyway: alike once capped.
    assert cut_runs([5000, 9000], 8, 20) == [[0, 1]]
    assert cut_runs([], 8, 20) == []


def test_state_snapshot_round_trips_and_is_independent():
    state = ConversationState("conv-1", tenant_id="acme", required_skills=["billing"], cues=["cancel"])
    state.turns.append(Turn("ev-1", 0.7, 0.8, {"anger": 0.9}, 100.0))
    state.remember("ev-1")
    snapshot = state.to_dict()
    restored = ConversationState.from_dict(snapshot)
    assert restored == state
    # A snapshot is what the table's changelog will carry: later changes must not leak into it.
    restored.turns[0].emotions["anger"] = 0.1
    restored.remember("ev-2")
    restored.cues.append("legal")
    state.required_skills.append("vip")
    assert snapshot["turns"][0]["emotions"] == {"anger": 0.9}
    assert snapshot["seen"] == ["ev-1"] and snapshot["cues"] == ["cancel"]
    assert snapshot["required_skills"] == ["billing"]


def test_runs_scored_at_once_come_back_in_input_order_as_if_scored_alone(model):
    import concurrent.futures

    runs: list[int] = []
    texts = MESSAGES * 3
    with concurrent.futures.ThreadPoolExecutor(2) as parallel:
        scores = score_by_length(model, texts, 2, on_run=lambda n, seconds: runs.append(n), parallel=parallel)
    alone = [model.score([text])[0] for text in texts]
    assert [round(s.stress, 4) for s in scores] == [round(s.stress, 4) for s in alone]
    assert [round(s.positive, 4) for s in scores] == [round(s.positive, 4) for s in alone]
    assert sum(runs) == len(texts) and max(runs) <= 2  # every message scored once, <= run_size per run


def test_a_model_without_thread_spinning_scores_the_same(model):
    from cctriage_common.sentiment import SentimentModel

    quiet = SentimentModel.load(intra_op_threads=2, allow_spinning=False)
    options = quiet._session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert [round(s.stress, 4) for s in quiet.score(MESSAGES)] == [
        round(s.stress, 4) for s in model.score(MESSAGES)
    ]


@pytest.mark.parametrize(
    "variable", ["TRIAGE_BATCH_SIZE", "TRIAGE_MODEL_BATCH_SIZE", "TRIAGE_MODEL_PARALLEL_RUNS"]
)
def test_batch_sizes_below_one_stop_start_up_naming_the_variable(variable):
    with pytest.raises(SettingsError, match=variable):
        load_settings({variable: "0"})


def test_event_loop_setting_defaults_to_uvloop_and_names_the_variable_when_wrong() -> None:
    assert load_settings({}).event_loop == "uvloop"
    assert load_settings({"TRIAGE_EVENT_LOOP": "asyncio"}).event_loop == "asyncio"
    with pytest.raises(SettingsError, match="TRIAGE_EVENT_LOOP"):
        load_settings({"TRIAGE_EVENT_LOOP": "tokio"})


def test_gc_thresholds_default_to_fewer_collections_and_name_the_variable_when_wrong() -> None:
    assert load_settings({}).gc_thresholds == (50_000, 20, 10)
    assert load_settings({"TRIAGE_GC_THRESHOLDS": "700, 10, 10"}).gc_thresholds == (700, 10, 10)
    for wrong in ("700,10", "0,10,10", "700,10,10,10", "lots"):
        with pytest.raises(SettingsError, match="TRIAGE_GC_THRESHOLDS"):
            load_settings({"TRIAGE_GC_THRESHOLDS": wrong})


def test_use_event_loop_makes_new_loops_of_that_kind() -> None:
    import asyncio

    import uvloop
    from cctriage_triage.__main__ import use_event_loop

    before = asyncio.get_event_loop_policy()
    try:
        use_event_loop("uvloop")
        loop = asyncio.new_event_loop()
        assert isinstance(loop, uvloop.Loop)
        loop.close()
        use_event_loop("asyncio")
        loop = asyncio.new_event_loop()
        assert not isinstance(loop, uvloop.Loop)
        loop.close()
    finally:
        asyncio.set_event_loop_policy(before)
