"""Tokenizers: round trips, unknown characters, JSON save/load, BPE determinism."""

import json

import pytest

from genlab.core.errors import DataError
from genlab.data.tokenizers import (
    UNK_TOKEN,
    BPETokenizer,
    ByteTokenizer,
    CharTokenizer,
    fit_tokenizer,
    tokenizer_from_json,
)

TRAIN_TEXT = (
    "The quick brown fox jumps over the lazy dog.\n"
    "Pack my box with five dozen liquor jugs! The dog sleeps; the fox runs.\n"
) * 20
SAMPLE = "The lazy fox packs five jugs.\nThe dog runs!"
UNICODE_SAMPLE = "naïve café — 日本語 🙂 \t\r\n end"


def test_char_vocabulary_is_the_sorted_distinct_characters():
    tok = CharTokenizer.fit("banana!")
    assert tok.chars == ("!", "a", "b", "n")
    assert tok.vocab_size == 4
    assert tok.encode("nab!") == [3, 1, 2, 0]
    assert tok.decode([3, 1, 2, 0]) == "nab!"


def test_char_round_trip():
    tok = CharTokenizer.fit(TRAIN_TEXT)
    assert tok.decode(tok.encode(SAMPLE)) == SAMPLE
    assert tok.decode(tok.encode(TRAIN_TEXT)) == TRAIN_TEXT


def test_char_unknown_characters_raise_naming_them():
    tok = CharTokenizer.fit("abc")
    with pytest.raises(DataError, match=r"'z' \(2x\).*tokenizer='byte'"):
        tok.encode("azbz")


def test_char_unknown_skip_and_unk():
    skip = CharTokenizer.fit("abc", unknown="skip")
    assert skip.vocab_size == 3
    assert skip.encode("azbz") == [0, 1]
    unk = CharTokenizer.fit("abc", unknown="unk")
    assert unk.vocab_size == 4
    assert unk.vocab == ("a", "b", "c", UNK_TOKEN)
    assert unk.encode("azbz") == [0, 3, 1, 3]
    assert unk.decode([0, 3]) == "a" + UNK_TOKEN


def test_char_bad_vocabulary_or_policy():
    with pytest.raises(DataError, match="distinct single characters"):
        CharTokenizer(["a", "a"])
    with pytest.raises(DataError, match="distinct single characters"):
        CharTokenizer(["ab"])
    with pytest.raises(DataError, match="unknown='drop'"):
        CharTokenizer(["a"], unknown="drop")
    with pytest.raises(DataError, match="empty text"):
        CharTokenizer.fit("")


def test_byte_round_trip_and_vocabulary():
    tok = ByteTokenizer()
    assert tok.vocab_size == 256
    ids = tok.encode(UNICODE_SAMPLE)
    assert ids == list(UNICODE_SAMPLE.encode("utf-8"))
    assert tok.decode(ids) == UNICODE_SAMPLE


def test_byte_decode_of_invalid_utf8_uses_replacement_characters():
    # A model's sample may cut a multi-byte character: decoding must not raise.
    assert ByteTokenizer().decode([0x61, 0xC3]) == "a\ufffd"


def test_decode_rejects_ids_outside_the_vocabulary():
    for tok in (CharTokenizer.fit("abc"), ByteTokenizer(), BPETokenizer.fit(TRAIN_TEXT)):
        with pytest.raises(DataError, match="outside its vocabulary"):
            tok.decode([0, tok.vocab_size])
        with pytest.raises(DataError, match="outside its vocabulary"):
            tok.decode([-1])


def test_bpe_round_trip_on_any_text():
    tok = BPETokenizer.fit(TRAIN_TEXT, vocab_size=300)
    assert 256 < tok.vocab_size <= 300
    for text in (SAMPLE, UNICODE_SAMPLE, TRAIN_TEXT):
        assert tok.decode(tok.encode(text)) == text
    # Merges make the training text shorter in tokens than in bytes.
    assert len(tok.encode(TRAIN_TEXT)) < len(TRAIN_TEXT.encode("utf-8")) / 2


def test_bpe_is_deterministic():
    a = BPETokenizer.fit(TRAIN_TEXT, vocab_size=320)
    b = BPETokenizer.fit(TRAIN_TEXT, vocab_size=320)
    assert a.to_json() == b.to_json()
    assert a.encode(SAMPLE) == b.encode(SAMPLE)


def test_bpe_vocab_size_below_the_byte_alphabet_is_an_error():
    with pytest.raises(DataError, match="vocab_size >= 256"):
        BPETokenizer.fit(TRAIN_TEXT, vocab_size=100)
    with pytest.raises(DataError, match="integer"):
        BPETokenizer.fit(TRAIN_TEXT, vocab_size="512")


@pytest.mark.parametrize("kind", ["char", "byte", "bpe"])
def test_json_round_trip_rebuilds_the_same_tokenizer(kind):
    tok = fit_tokenizer(kind, TRAIN_TEXT, vocab_size=300, unknown="unk")
    saved = json.loads(json.dumps(tok.to_json()))  # JSON-able, as inside a data spec
    assert saved["kind"] == kind
    rebuilt = tokenizer_from_json(saved)
    assert type(rebuilt) is type(tok)
    assert rebuilt.vocab_size == tok.vocab_size
    text = SAMPLE if kind == "char" else UNICODE_SAMPLE
    assert rebuilt.encode(text) == tok.encode(text)
    assert rebuilt.decode(tok.encode(text)) == tok.decode(tok.encode(text))


def test_char_json_keeps_the_unknown_policy():
    tok = CharTokenizer.fit("abc", unknown="unk")
    assert tokenizer_from_json(tok.to_json()).encode("az") == [0, 3]


def test_bad_saved_tokenizers_are_clear_errors():
    with pytest.raises(DataError, match="not a saved tokenizer"):
        tokenizer_from_json({"kind": "wordpiece"})
    with pytest.raises(DataError, match="not a saved tokenizer"):
        tokenizer_from_json(["char"])
    with pytest.raises(DataError, match="newer than this genlab"):
        tokenizer_from_json({"kind": "byte", "version": 99})
    with pytest.raises(DataError, match="cannot be read"):
        tokenizer_from_json({"kind": "bpe", "tokenizer": "{not json"})
    with pytest.raises(DataError, match="distinct single characters"):
        tokenizer_from_json({"kind": "char"})


def test_fit_tokenizer_names_the_choices():
    with pytest.raises(DataError, match="char, byte, bpe"):
        fit_tokenizer("word", TRAIN_TEXT)
