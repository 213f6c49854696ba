"""The shipped model through its runtime wrapper: loading, integrity, batching, odd input."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from cctriage_common.sentiment import ModelIntegrityError, SentimentModel, default_model_dir


@pytest.fixture(scope="module")
def model() -> SentimentModel:
    return SentimentModel.load(intra_op_threads=1)


def _assert_well_formed(score) -> None:
    assert score.negative + score.neutral + score.positive == pytest.approx(1.0, abs=1e-4)
    assert all(0.0 <= v <= 1.0 for v in (score.negative, score.neutral, score.positive, score.stress))
    assert set(score.emotions) == {"anger", "joy", "optimism", "sadness"}


def test_version_names_the_model_and_its_hash(model: SentimentModel) -> None:
    assert re.fullmatch(r"cctriage-sentiment-\d+@sha256:[0-9a-f]{12}", model.version)
    assert model.version.endswith(model.manifest["sha256"][:12])


def test_angry_customer_is_negative_angry_and_stressed(model: SentimentModel) -> None:
    (score,) = model.score(
        [
            "This is the FOURTH time I'm calling. Fix it today or I'm cancelling and "
            "reporting you to the ombudsman."
        ]
    )
    _assert_well_formed(score)
    assert score.sentiment == "negative"
    assert score.emotions["anger"] > score.emotions["joy"]
    assert score.stressed and score.stress >= model.stress_threshold


def test_plain_request_is_neutral_and_calm(model: SentimentModel) -> None:
    (score,) = model.score(["How do I change the billing address on my account?"])
    assert score.sentiment == "neutral"
    assert not score.stressed


def test_batch_keeps_order_and_matches_single_scoring(model: SentimentModel) -> None:
    texts = [
        "Thank you so much, that fixed it!",
        "",
        "My payment failed and rent is due tomorrow, please help",
        "What time do you open on Saturday?",
    ]
    batch = model.score(texts)
    assert [s.sentiment for s in batch] == [model.score([t])[0].sentiment for t in texts]
    assert batch[0].sentiment == "positive"
    for text, score in zip(texts, batch, strict=True):
        (alone,) = model.score([text])
        # Activation scales are fixed at export, so neighbours and padding do not move a score.
        assert score.negative == pytest.approx(alone.negative, abs=1e-5)
        assert score.stress == pytest.approx(alone.stress, abs=1e-5)
        assert score.emotions == pytest.approx(alone.emotions, abs=1e-5)


def test_five_thousand_word_email_scores_without_raising(model: SentimentModel) -> None:
    email = (
        "Dear team,\n"
        + "I have been reading the terms again and comparing invoices. " * 500
        + "\nIf this is not refunded by Friday I will go to my bank for a chargeback."
    )
    assert len(email.split()) > 5000
    (score,) = model.score([email])
    _assert_well_formed(score)
    assert not score.empty


@pytest.mark.parametrize("text", ["", "   \n\t ", b"\xff\xfe\xfd", "\u200b"])
def test_message_without_text_is_neutral_unstressed_and_marked_empty(model: SentimentModel, text) -> None:
    (score,) = model.score([text])
    assert score.empty and score.neutral == 1.0 and score.stress == 0.0 and not score.stressed
    assert set(score.emotions.values()) == {0.0}


def test_emoji_only_message_carries_sentiment(model: SentimentModel) -> None:
    angry, happy = model.score(["😡😡😡", "😍🙏"])
    _assert_well_formed(angry)
    assert not angry.empty
    assert angry.negative > happy.negative
    assert happy.positive > angry.positive


def test_invalid_utf8_is_scored_from_its_valid_part(model: SentimentModel) -> None:
    (broken,) = model.score([b"I want a refund \xff\xfe this is a scam"])
    (clean,) = model.score(["I want a refund this is a scam"])
    assert broken.negative == pytest.approx(clean.negative, abs=1e-6)


def test_a_single_string_is_refused_so_it_is_not_scored_per_character(model: SentimentModel) -> None:
    with pytest.raises(TypeError, match="sequence"):
        model.score("hello")  # type: ignore[arg-type]


def test_empty_batch_returns_nothing(model: SentimentModel) -> None:
    assert model.score([]) == []


def _copy_models(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("manifest.json", "sentiment.onnx", "tokenizer.json"):
        shutil.copyfile(default_model_dir() / name, folder / name)
    return folder


def test_tampered_model_file_is_refused_with_the_file_named(tmp_path: Path) -> None:
    folder = _copy_models(tmp_path)
    data = bytearray((folder / "sentiment.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "sentiment.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match=r"sentiment\.onnx: sha256 [0-9a-f]{64} does not match"):
        SentimentModel.load(folder)


def test_tampered_tokenizer_is_refused(tmp_path: Path) -> None:
    folder = _copy_models(tmp_path)
    (folder / "tokenizer.json").write_text((folder / "tokenizer.json").read_text().replace("[UNK]", "[UNX]"))
    with pytest.raises(ModelIntegrityError, match="tokenizer.json"):
        SentimentModel.load(folder)


def test_missing_manifest_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="manifest"):
        SentimentModel.load(tmp_path)


def test_thread_counts_from_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="intra_op_threads"):
        SentimentModel.load(intra_op_threads=0)
