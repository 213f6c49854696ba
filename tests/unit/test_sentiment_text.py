"""What the model sees of a message: text preparation and truncation (no model run)."""

from __future__ import annotations

import pytest
from cctriage_common.sentiment import default_model_dir, prepare_text, token_ids
from tokenizers import Tokenizer


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    tok = Tokenizer.from_file(str(default_model_dir() / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok


def test_invalid_utf8_bytes_are_dropped_and_the_rest_kept() -> None:
    assert prepare_text(b"refund \xff\xfe now please") == "refund now please"


def test_utf8_bytes_decode_like_text() -> None:
    assert prepare_text("naïve café".encode()) == prepare_text("naïve café") == "naïve café"


def test_emoji_are_spelled_out_so_the_tokenizer_sees_words() -> None:
    assert prepare_text("😡😡") == "pouting face pouting face"
    assert prepare_text("thanks 👍🏽") == "thanks thumbs up sign"


def test_control_and_format_characters_are_removed() -> None:
    assert prepare_text("stop\u200b\x00 charging\tme\r\n") == "stop charging me"


@pytest.mark.parametrize("text", ["", "   ", "\n\t", b"", b"\xff\xfe", "\u200b\u200d"])
def test_text_without_content_prepares_to_empty(text: str | bytes) -> None:
    assert prepare_text(text) == ""


def test_non_text_is_rejected_with_the_type_named() -> None:
    with pytest.raises(TypeError, match="int"):
        prepare_text(42)  # type: ignore[arg-type]


def test_long_message_keeps_its_opening_and_its_closing(tokenizer: Tokenizer) -> None:
    email = "money " + "blah " * 5000 + "lawyer"
    (ids,) = token_ids(tokenizer, [prepare_text(email)], max_tokens=64)
    assert len(ids) == 64
    assert ids[0] == tokenizer.token_to_id("[CLS]") and ids[-1] == tokenizer.token_to_id("[SEP]")
    assert ids[1] == tokenizer.token_to_id("money")
    assert tokenizer.token_to_id("lawyer") in ids[-4:]


def test_short_message_is_not_padded_or_cut(tokenizer: Tokenizer) -> None:
    (ids,) = token_ids(tokenizer, ["please reset my password"], max_tokens=128)
    assert tokenizer.decode(ids) == "please reset my password"
    assert ids == tokenizer.encode("please reset my password").ids  # [CLS] ... [SEP], no padding
