"""The text source: position split, token blocks, tokenizers in the spec, error paths."""

import json
import time
from pathlib import Path

import pytest
import torch

from genlab.core.contract import DataSpec
from genlab.core.errors import DataError
from genlab.data import load, resolve_source
from genlab.data.text import decode, decode_batch, encode
from genlab.data.tokenizers import BPETokenizer


def _shakespeare_path() -> Path | None:
    candidates = [
        Path(__file__).resolve().parents[2].parent / "shared" / "data" / "tinyshakespeare.txt",
        Path("/work/shared/data/tinyshakespeare.txt"),
    ]
    return next((p for p in candidates if p.is_file()), None)


SHAKESPEARE = _shakespeare_path()
needs_shakespeare = pytest.mark.skipif(SHAKESPEARE is None, reason="tinyshakespeare.txt absent")
SHAKESPEARE_CHARS = 1_115_394
SHAKESPEARE_TRAIN_CHARS = 1_003_854  # floor(0.9 * 1,115,394)


@pytest.fixture(scope="module")
def shakespeare_text() -> str:
    return SHAKESPEARE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def shakespeare_char():
    return load(str(SHAKESPEARE), "train"), load(str(SHAKESPEARE), "test")


def _write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


# A text whose 10% tail uses only characters the head has.
SMALL_TEXT = "to be or not to be, that is the question.\n" * 30


@needs_shakespeare
def test_shakespeare_char_vocabulary_and_split(shakespeare_text, shakespeare_char):
    train, test = shakespeare_char
    assert len(shakespeare_text) == SHAKESPEARE_CHARS
    train_text = shakespeare_text[:SHAKESPEARE_TRAIN_CHARS]
    # All 65 distinct characters of the file already occur in its first 90%.
    assert len(set(shakespeare_text)) == 65
    assert train.spec.vocab == tuple(sorted(set(train_text)))
    assert len(train.spec.vocab) == 65 == train.spec.discrete_levels
    assert test.spec == train.spec
    assert train.info["char_span"] == (0, SHAKESPEARE_TRAIN_CHARS)
    assert test.info["char_span"] == (SHAKESPEARE_TRAIN_CHARS, SHAKESPEARE_CHARS)
    # One token per character, so the streams are the two parts exactly.
    assert len(train.info["tokens"]) == SHAKESPEARE_TRAIN_CHARS
    assert len(test.info["tokens"]) == SHAKESPEARE_CHARS - SHAKESPEARE_TRAIN_CHARS
    assert decode(train.spec, train.info["tokens"]) == train_text
    assert decode(test.spec, test.info["tokens"]) == shakespeare_text[SHAKESPEARE_TRAIN_CHARS:]


@needs_shakespeare
def test_shakespeare_blocks_are_consecutive_and_non_overlapping(shakespeare_char):
    train, test = shakespeare_char
    for data in (train, test):
        num_blocks = len(data.info["tokens"]) // 128
        assert data.x.shape == (num_blocks, 128)
        assert data.x.dtype == torch.int64
        assert data.spec.modality == "text"
        assert data.spec.shape == (128,)
        assert data.spec.name == "tinyshakespeare"
        assert torch.equal(data.x.reshape(-1), data.info["tokens"][: num_blocks * 128])
    assert decode(train.spec, train.x[0]).startswith("First Citizen:\nBefore we proceed")


@needs_shakespeare
@pytest.mark.parametrize("tokenizer", ["char", "byte", "bpe"])
def test_shakespeare_round_trip_for_every_tokenizer(tokenizer, shakespeare_text):
    data = load(str(SHAKESPEARE), "test", tokenizer=tokenizer, vocab_size=512)
    sample = shakespeare_text[500_000:505_000]  # a passage of the train part
    assert decode(data.spec, encode(data.spec, sample)) == sample
    # The test stream decodes back to the test part exactly.
    assert decode(data.spec, data.info["tokens"]) == shakespeare_text[SHAKESPEARE_TRAIN_CHARS:]
    assert int(data.x.max()) < data.spec.discrete_levels


@needs_shakespeare
def test_shakespeare_bpe_512_trains_fast_and_deterministically(shakespeare_text):
    train_text = shakespeare_text[:SHAKESPEARE_TRAIN_CHARS]
    start = time.perf_counter()
    first = BPETokenizer.fit(train_text, vocab_size=512)
    elapsed = time.perf_counter() - start
    assert elapsed < 20, f"BPE training took {elapsed:.1f}s"
    assert first.vocab_size == 512
    second = BPETokenizer.fit(train_text, vocab_size=512)
    assert first.to_json() == second.to_json()
    # The source trains the same tokenizer on the same train part.
    data = load(str(SHAKESPEARE), "train", tokenizer="bpe", vocab_size=512, block_size=256)
    assert data.spec.tokenizer == first.to_json()
    assert data.spec.vocab is None and data.spec.discrete_levels == 512
    assert data.x.shape[1] == 256


def test_small_file_blocks_and_spec(tmp_path):
    path = _write(tmp_path / "hamlet.txt", SMALL_TEXT)
    train = load(str(path), block_size=16)
    test = load(str(path), "test", block_size=16)
    num_train = int(0.9 * len(SMALL_TEXT))
    assert train.info["char_span"] == (0, num_train)
    assert len(train) == num_train // 16 and len(test) == (len(SMALL_TEXT) - num_train) // 16
    assert train.spec.name == "hamlet"
    assert train.spec.shape == (16,)
    assert train.spec.vocab == tuple(sorted(set(SMALL_TEXT[:num_train])))
    assert decode(train.spec, train.x[0]) == SMALL_TEXT[:16]
    assert decode(test.spec, test.x[0]) == SMALL_TEXT[num_train : num_train + 16]
    assert decode_batch(train.spec, train.x[:2]) == [SMALL_TEXT[:16], SMALL_TEXT[16:32]]
    assert train.info["files"] == [path]


def test_path_dispatch_to_the_text_source(tmp_path):
    path = _write(tmp_path / "a.txt", SMALL_TEXT)
    assert resolve_source(str(path)) == ("text", {"path": str(path)})
    assert resolve_source(str(tmp_path)) == ("text", {"path": str(tmp_path)})
    assert len(load("text", path=str(path), block_size=8)) > 0


def test_folder_files_are_joined_in_sorted_order_by_newlines(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    _write(folder / "b.txt", "second file " * 20)
    _write(folder / "a.txt", "first file " * 20)
    _write(folder / "notes.md", "not read")
    data = load(str(folder), block_size=8, train_fraction=0.5)
    full = "first file " * 20 + "\n" + "second file " * 20
    assert data.spec.name == "corpus"
    assert decode(data.spec, data.info["tokens"]) == full[: len(full) // 2]
    assert [p.name for p in data.info["files"]] == ["a.txt", "b.txt"]


def test_spec_json_round_trip_decodes_without_the_data(tmp_path):
    path = _write(tmp_path / "a.txt", SMALL_TEXT)
    for tokenizer in ("char", "byte", "bpe"):
        data = load(str(path), block_size=8, tokenizer=tokenizer, vocab_size=280)
        spec = DataSpec.from_json(json.loads(json.dumps(data.spec.to_json())))
        assert spec == data.spec
        assert decode(spec, data.x[3]) == decode(data.spec, data.x[3])


def test_byte_order_mark_is_dropped_and_line_endings_kept(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + ("line\r\n" * 40).encode())
    data = load(str(path), block_size=4, tokenizer="byte")
    assert decode(data.spec, data.info["tokens"]).startswith("line\r\nline")


def test_unseen_test_characters_raise_or_map_to_unk(tmp_path):
    path = _write(tmp_path / "a.txt", "ab" * 108 + "abZZ" * 6)  # Z only in the last 10%
    for split in ("train", "test"):
        with pytest.raises(DataError, match=r"'Z' \(12x\).*tokenizer='byte'"):
            load(str(path), split, block_size=4)
    unk = load(str(path), "test", block_size=4, unknown="unk")
    assert unk.spec.discrete_levels == 3
    assert decode(unk.spec, unk.info["tokens"]).count("\ufffd") == 12
    skip = load(str(path), "test", block_size=4, unknown="skip")
    assert decode(skip.spec, skip.info["tokens"]) == "ab" * 6
    byte = load(str(path), "test", block_size=4, tokenizer="byte")
    assert decode(byte.spec, byte.info["tokens"]) == "abZZ" * 6


def test_empty_and_whitespace_files(tmp_path):
    empty = _write(tmp_path / "empty.txt", "")
    with pytest.raises(DataError, match="is empty"):
        load(str(empty))
    blank = _write(tmp_path / "blank.txt", " \n\n  \n")
    with pytest.raises(DataError, match="only whitespace"):
        load(str(blank))


def test_binary_files_are_reported(tmp_path):
    nul = tmp_path / "image.txt"
    nul.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 10)
    with pytest.raises(DataError, match="looks binary"):
        load(str(nul))
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café au lait ".encode("latin-1") * 20)
    with pytest.raises(DataError, match=r"not valid UTF-8 \(byte 0xe9 at offset 3\).*iconv"):
        load(str(latin1))


def test_folder_without_text_files(tmp_path):
    (tmp_path / "readme.md").write_text("hello")
    with pytest.raises(DataError, match=r"holds no \.txt files \(found: readme\.md\)"):
        load("text", path=str(tmp_path))


def test_text_shorter_than_two_blocks(tmp_path):
    path = _write(tmp_path / "short.txt", "a short text, " * 10)  # 140 characters
    with pytest.raises(DataError, match=r"shorter than two blocks.*block_size <= 14"):
        load(str(path), block_size=128)
    assert load(str(path), block_size=14).x.shape == (9, 14)


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1, "0.9", True])
def test_train_fraction_outside_the_open_unit_interval(tmp_path, fraction):
    path = _write(tmp_path / "a.txt", SMALL_TEXT)
    with pytest.raises(DataError, match="strictly between 0 and 1"):
        load(str(path), train_fraction=fraction)


def test_bad_options_and_paths(tmp_path):
    path = _write(tmp_path / "a.txt", SMALL_TEXT)
    with pytest.raises(DataError, match="char, byte, bpe"):
        load(str(path), tokenizer="word")
    with pytest.raises(DataError, match="block_size must be an integer >= 2"):
        load(str(path), block_size=1)
    with pytest.raises(DataError, match="vocab_size >= 256"):
        load(str(path), tokenizer="bpe", vocab_size=64)
    with pytest.raises(DataError, match="unknown='maybe'"):
        load(str(path), unknown="maybe")
    with pytest.raises(DataError, match="path='book.txt'"):
        load("text")
    with pytest.raises(DataError, match="does not exist"):
        load("text", path=str(tmp_path / "missing.txt"))
    with pytest.raises(DataError, match="unknown option"):
        load(str(path), blocksize=8)


def test_encode_decode_need_a_text_spec():
    spec = DataSpec(modality="points", shape=(2,), name="moons")
    with pytest.raises(DataError, match="has no tokenizer"):
        decode(spec, [0, 1])
    with pytest.raises(DataError, match="has no tokenizer"):
        encode(spec, "hi")


def test_decode_shapes(tmp_path):
    data = load(str(_write(tmp_path / "a.txt", SMALL_TEXT)), block_size=8)
    with pytest.raises(DataError, match="decode_batch"):
        decode(data.spec, data.x[:2])
    with pytest.raises(DataError, match=r"\(B, T\)"):
        decode_batch(data.spec, data.x[0])
