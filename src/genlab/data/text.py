"""Text files as int64 token blocks: the `text` source, and `encode`/`decode` through a spec.

`genlab.data.load("book.txt", split=..., tokenizer="char", block_size=128)` reads a UTF-8 file
(or a folder of .txt files) and returns:

- `x`: int64 (N, block_size), the split's token stream cut into consecutive non-overlapping
  blocks, the last partial block dropped. With `stride` < block_size the train split holds
  overlapping windows instead, one starting every `stride` tokens (stride=1: every offset,
  like nanoGPT's random-offset batches; a view of the stream, so no memory is copied); the
  test split stays non-overlapping, so each test token is scored once. An autoregressive
  model predicts x[:, 1:] from x[:, :-1], so each block gives block_size - 1 next-token
  targets.
- `info["tokens"]`: int64 (L,), the split's whole token stream, for models that draw blocks at
  random offsets instead (nanoGPT-style); `info["char_span"]`: the split's (start, stop)
  character positions in the text; `info["files"]`: the files read.
- `spec`: modality "text", shape (block_size,), `tokenizer` the fitted tokenizer's JSON (so
  `decode(spec, ids)` works from a run folder without the data), `discrete_levels` its
  vocabulary size, `vocab` the token strings for the char tokenizer (None for byte and bpe).

Choices:
- The split is contiguous by position: the first `floor(train_fraction * num_chars)`
  characters are train, the rest test, so no test passage leaks into training through
  overlapping windows. The tokenizer is fitted on the train part only, then encodes each part.
- The text is read as bytes and decoded as strict UTF-8 (a leading byte-order mark is dropped;
  line endings are kept as they are). A folder's .txt files (not its subfolders) are joined in
  sorted name order with one newline between them.
- For the char tokenizer, characters of the test part that the train part lacks raise a
  `DataError` naming them (whichever split is asked for, since the data set as configured is
  unusable); `unknown="unk"` maps them to one extra id and `unknown="skip"` drops them, and
  tokenizer="byte" or "bpe" encode any text.
- Both parts must hold at least one block, or a `DataError` says which block_size would fit.
"""

from __future__ import annotations

import codecs
import math
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from genlab.core.contract import DataSpec
from genlab.core.errors import DataError
from genlab.data import source
from genlab.data.dataset import Dataset
from genlab.data.tokenizers import (
    TOKENIZER_KINDS,
    UNKNOWN_POLICIES,
    CharTokenizer,
    fit_tokenizer,
    tokenizer_from_json,
)

TEXT_SUFFIX = ".txt"
#: fills the positions of a generated sequence after it stopped (a stop string was produced
#: while other rows of the batch went on); `decode_batch` drops it
PAD_ID = -1


def _text_files(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == TEXT_SUFFIX),
        key=lambda p: p.name,
    )


def is_text_path(path: Path) -> bool:
    """Whether `path` is a .txt file or a folder holding .txt files (the `text` source reads it)."""
    if path.is_file():
        return path.suffix.lower() == TEXT_SUFFIX
    return path.is_dir() and bool(_text_files(path))


def _decode_utf8(path: Path, data: bytes) -> str:
    """The text of a file's bytes: strict UTF-8, a leading byte-order mark dropped."""
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DataError(
            f"{path} looks binary (a NUL byte at byte offset {nul}), not text; give a UTF-8 "
            "text file (for images, tables or series use their own data sources)"
        )
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path} is not valid UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start}): it "
            "looks binary or uses another encoding; convert it to UTF-8 "
            "(e.g. `iconv -f latin1 -t utf-8`)"
        ) from None


def read_text(path: str | Path | None) -> tuple[str, str, list[Path]]:
    """Read a text file, or a folder's .txt files joined in sorted name order by newlines.

    Returns:
        (text, name, files): the text, the data set name (file stem or folder name), the files.
    """
    if path is None:
        raise DataError(
            "data set text: give the text with path='book.txt' (a UTF-8 .txt file or a folder "
            "of .txt files), or load the path directly: genlab.data.load('book.txt')"
        )
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path} does not exist: check the path")
    if path.is_dir():
        files = _text_files(path)
        if not files:
            found = sorted(p.name for p in path.iterdir())
            listing = ", ".join(found[:10]) + (" ..." if len(found) > 10 else "")
            raise DataError(
                f"folder {path} holds no .txt files (found: {listing or 'nothing'}); put the "
                "text in UTF-8 .txt files there, or give the path of one file"
            )
        name = path.resolve().name
    else:
        files, name = [path], path.stem
    text = "\n".join(_decode_utf8(f, f.read_bytes()) for f in files)
    if not text.strip():
        what = "is empty" if not text else "holds only whitespace"
        raise DataError(f"{path} {what}; give a file with text to train on")
    return text, name, files


def _check_options(tokenizer: str, block_size: int, train_fraction: float, unknown: str) -> None:
    if tokenizer not in TOKENIZER_KINDS:
        raise DataError(
            f"data set text: tokenizer={tokenizer!r} is not one of {', '.join(TOKENIZER_KINDS)}"
        )
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 2:
        raise DataError(
            f"data set text: block_size must be an integer >= 2 (an input token and its "
            f"target), got {block_size!r}; pass e.g. block_size=128"
        )
    if (
        isinstance(train_fraction, bool)
        or not isinstance(train_fraction, (int, float))
        or not 0 < train_fraction < 1
    ):
        raise DataError(
            f"data set text: train_fraction must be a number strictly between 0 and 1, got "
            f"{train_fraction!r}; pass e.g. train_fraction=0.9 (first 90% train, last 10% test)"
        )
    if unknown not in UNKNOWN_POLICIES:
        raise DataError(
            f"data set text: unknown={unknown!r} is not one of {', '.join(UNKNOWN_POLICIES)}"
        )


def _check_test_chars(name: str, tok: CharTokenizer, test_text: str) -> None:
    """Name the test characters the train part lacks, before the tokenizer meets them."""
    known = set(tok.chars)
    missing = Counter(c for c in test_text if c not in known)
    if missing:
        shown = ", ".join(f"{c!r} ({n}x)" for c, n in missing.most_common(10))
        raise DataError(
            f"{name}: the test part holds {len(missing)} character(s) that the train part "
            f"lacks, so the char tokenizer cannot encode them: {shown}; use tokenizer='byte' "
            "or 'bpe' (they encode any text), or unknown='unk' (one id for unseen characters) "
            "or unknown='skip' (drop them)"
        )


@source("text", matches_path=is_text_path)
def text(
    split: str,
    *,
    path: str | None = None,
    tokenizer: str = "char",
    vocab_size: int = 1024,
    block_size: int = 128,
    train_fraction: float = 0.9,
    unknown: str = "error",
    stride: int | None = None,
) -> Dataset:
    """A UTF-8 text file (or a folder of .txt files) as int64 token blocks.

    Args:
        split: "train" (the first `train_fraction` of the characters) or "test" (the rest).
        path: a .txt file or a folder of .txt files (joined in sorted name order by newlines).
        tokenizer: "char" (sorted distinct characters of the train part), "byte" (UTF-8
            bytes, 256 ids) or "bpe" (byte-level BPE trained on the train part).
        vocab_size: the BPE vocabulary size (>= 256); ignored by char and byte.
        block_size: tokens per row of `x`.
        train_fraction: the train part's share of the characters, strictly in (0, 1).
        unknown: for char, what to do with test characters the train part lacks: "error",
            "unk" (one extra id) or "skip" (drop them).
        stride: for the train split, tokens between the starts of consecutive windows, in
            [1, block_size]; None (the default) is block_size: non-overlapping blocks.

    Returns:
        Dataset with x int64 (N, block_size) of consecutive non-overlapping blocks of the
        split's token stream (train windows every `stride` tokens when given), and
        `info["tokens"]` that whole stream, int64 (L,).
    """
    _check_options(tokenizer, block_size, train_fraction, unknown)
    if stride is not None and (
        isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= block_size
    ):
        raise DataError(
            f"data set text: stride must be an integer in [1, block_size={block_size}] (or "
            f"None for non-overlapping blocks), got {stride!r}"
        )
    full_text, name, files = read_text(path)
    num_train = math.floor(train_fraction * len(full_text))
    parts = {"train": (0, num_train), "test": (num_train, len(full_text))}
    train_text = full_text[:num_train]
    if not train_text.strip():
        raise DataError(
            f"{name}: the train part (first {num_train} characters) holds no text; raise "
            "train_fraction or give a longer file"
        )
    tok = fit_tokenizer(tokenizer, train_text, vocab_size=vocab_size, unknown=unknown)
    if isinstance(tok, CharTokenizer) and unknown == "error":
        _check_test_chars(name, tok, full_text[num_train:])

    streams = {}
    for part, (start, stop) in parts.items():
        streams[part] = torch.tensor(tok.encode(full_text[start:stop]), dtype=torch.int64)
    counts = {part: len(stream) for part, stream in streams.items()}
    if min(counts.values()) < block_size:
        fits = min(counts.values())
        advice = f"use block_size <= {fits} or a longer text" if fits >= 2 else "give a longer text"
        raise DataError(
            f"{name}: the text is shorter than two blocks of block_size={block_size} (one per "
            f"split): the train part has {counts['train']} tokens and the test part "
            f"{counts['test']}; {advice}"
        )

    tokens = streams[split]
    if split == "train" and stride is not None and stride != block_size:
        x = tokens.unfold(0, block_size, stride)  # (N, block_size), a view of the stream
    else:
        num_blocks = len(tokens) // block_size
        x = tokens[: num_blocks * block_size].reshape(num_blocks, block_size).clone()
    spec = DataSpec(
        modality="text",
        shape=(block_size,),
        name=name,
        vocab=tok.vocab if isinstance(tok, CharTokenizer) else None,
        discrete_levels=tok.vocab_size,
        tokenizer=tok.to_json(),
    )
    info: dict[str, Any] = {"tokens": tokens, "char_span": parts[split], "files": files}
    return Dataset(x=x, spec=spec, info=info)


def _spec_tokenizer(spec: DataSpec):
    if spec.tokenizer is None:
        raise DataError(
            f"data spec {spec.name!r} (modality {spec.modality}) has no tokenizer; encode and "
            "decode need the spec of a text data set (genlab.data.load of a .txt file)"
        )
    return tokenizer_from_json(spec.tokenizer)


def _id_list(ids: Iterable[int] | Tensor) -> list[int]:
    if isinstance(ids, Tensor):
        if ids.dim() != 1:
            raise DataError(
                f"decode takes one sequence of ids (T,), got shape {tuple(ids.shape)}; use "
                "decode_batch for (B, T)"
            )
        return ids.tolist()
    return [int(i) for i in ids]


def encode(spec: DataSpec, text: str) -> list[int]:
    """Token ids of `text` with the tokenizer saved in a text data set's spec."""
    return _spec_tokenizer(spec).encode(text)


def decode(spec: DataSpec, ids: Iterable[int] | Tensor) -> str:
    """The text of token ids (a list or an int64 (T,) tensor) under the spec's tokenizer."""
    return _spec_tokenizer(spec).decode(_id_list(ids))


def decode_batch(spec: DataSpec, x: Tensor) -> list[str]:
    """The texts of a batch of token ids, int64 (B, T) (e.g. a model's samples).

    `PAD_ID` (-1) entries, which pad generated rows that stopped early, are dropped.
    """
    if x.dim() != 2:
        raise DataError(f"decode_batch takes token ids (B, T), got shape {tuple(x.shape)}")
    tok = _spec_tokenizer(spec)
    return [tok.decode([i for i in row if i != PAD_ID]) for row in x.tolist()]
