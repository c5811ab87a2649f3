"""Tokenizers for text data: characters, UTF-8 bytes, and byte-level BPE.

Every tokenizer has `encode(str) -> list[int]`, `decode(list[int]) -> str`, `vocab_size` and
`to_json() -> dict`; `tokenizer_from_json(d)` rebuilds it. The dict is what `DataSpec.tokenizer`
holds, so a model rebuilt from its run folder encodes and decodes text without the data.

- `CharTokenizer`: one id per distinct character of the training text, in sorted (code point)
  order. A character outside that vocabulary is, by `unknown`: "error" (default) a `DataError`
  naming the characters; "skip" dropped; "unk" mapped to one extra id, `vocab_size - 1`, whose
  token is U+FFFD (the Unicode replacement character), which is also what it decodes to.
- `ByteTokenizer`: the 256 UTF-8 byte values; nothing is ever unknown. Decoding a byte sequence
  that is not valid UTF-8 (a model's sample can be) puts U+FFFD where the bad bytes are.
- `BPETokenizer`: byte-level BPE (GPT-2's scheme: Sennrich et al., 2016; Radford et al., 2019)
  trained with the Hugging Face `tokenizers` library. Its 256 byte tokens come first, so any text
  encodes; merges follow. Training has no randomness (ties between equally frequent pairs are
  broken by the pair itself), so the same text and `vocab_size` give the same merges.

`fit_tokenizer(kind, text, ...)` is the one place that maps a tokenizer name to a class.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from genlab.core.errors import DataError

TOKENIZER_KINDS = ("char", "byte", "bpe")
UNKNOWN_POLICIES = ("error", "skip", "unk")
UNK_TOKEN = "\ufffd"
BYTE_VOCAB_SIZE = 256
TOKENIZER_FORMAT_VERSION = 1


class Tokenizer(Protocol):
    """What every tokenizer offers."""

    kind: str

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Iterable[int]) -> str: ...

    def to_json(self) -> dict[str, Any]: ...


def _check_ids(kind: str, ids: Iterable[int], vocab_size: int) -> list[int]:
    """`ids` as a list of ints, every one in [0, vocab_size)."""
    ids = [int(i) for i in ids]
    bad = [i for i in ids if not 0 <= i < vocab_size]
    if bad:
        raise DataError(
            f"{kind} tokenizer: token ids {sorted(set(bad))[:10]} are outside its vocabulary "
            f"0..{vocab_size - 1}; decode ids made with this tokenizer (the data spec's)"
        )
    return ids


def _describe_chars(counts: Counter[str], limit: int = 10) -> str:
    shown = ", ".join(f"{c!r} ({n}x)" for c, n in counts.most_common(limit))
    more = f" and {len(counts) - limit} more" if len(counts) > limit else ""
    return shown + more


class CharTokenizer:
    """One id per character: the sorted distinct characters of the training text.

    Args:
        chars: the vocabulary, distinct single characters; id i is `chars[i]`.
        unknown: what `encode` does with a character not in `chars`: "error" raises a
            `DataError` naming them, "skip" drops them, "unk" maps them to the extra id
            `len(chars)` (token U+FFFD).
    """

    kind = "char"

    def __init__(self, chars: Sequence[str], *, unknown: str = "error") -> None:
        chars = tuple(chars)
        if not chars or any(len(c) != 1 for c in chars) or len(set(chars)) != len(chars):
            raise DataError(
                "char tokenizer: the vocabulary must be a non-empty list of distinct single "
                "characters; fit it with CharTokenizer.fit(text)"
            )
        if unknown not in UNKNOWN_POLICIES:
            raise DataError(
                f"char tokenizer: unknown={unknown!r} is not one of {', '.join(UNKNOWN_POLICIES)}"
            )
        self.chars = chars
        self.unknown = unknown
        self._ids = {c: i for i, c in enumerate(chars)}

    @classmethod
    def fit(cls, text: str, *, unknown: str = "error") -> CharTokenizer:
        """The tokenizer whose vocabulary is the sorted distinct characters of `text`."""
        if not text:
            raise DataError("char tokenizer: cannot fit a vocabulary on empty text")
        return cls(sorted(set(text)), unknown=unknown)

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + (self.unknown == "unk")

    @property
    def vocab(self) -> tuple[str, ...]:
        """The token string of every id (U+FFFD for the unknown id when there is one)."""
        return self.chars + ((UNK_TOKEN,) if self.unknown == "unk" else ())

    def encode(self, text: str) -> list[int]:
        ids = self._ids
        if self.unknown == "error":
            missing = Counter(c for c in text if c not in ids)
            if missing:
                raise DataError(
                    f"char tokenizer: characters not in its vocabulary of {len(self.chars)}: "
                    f"{_describe_chars(missing)}; use tokenizer='byte' or 'bpe' (which encode "
                    "any text), or unknown='unk' (one id for all unseen characters) or "
                    "unknown='skip' (drop them)"
                )
            return [ids[c] for c in text]
        if self.unknown == "skip":
            return [ids[c] for c in text if c in ids]
        unk = len(self.chars)
        return [ids.get(c, unk) for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        vocab = self.vocab
        return "".join(vocab[i] for i in _check_ids(self.kind, ids, len(vocab)))

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": TOKENIZER_FORMAT_VERSION,
            "chars": list(self.chars),
            "unknown": self.unknown,
        }


class ByteTokenizer:
    """The 256 byte values of the text's UTF-8 encoding; any text encodes."""

    kind = "byte"

    @property
    def vocab_size(self) -> int:
        return BYTE_VOCAB_SIZE

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Iterable[int]) -> str:
        data = bytes(_check_ids(self.kind, ids, BYTE_VOCAB_SIZE))
        return data.decode("utf-8", errors="replace")

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "version": TOKENIZER_FORMAT_VERSION}


class BPETokenizer:
    """Byte-level BPE from the `tokenizers` library (GPT-2's pre-tokenization and byte alphabet).

    Args:
        tokenizer: a trained `tokenizers.Tokenizer`; build one with `BPETokenizer.fit`.
    """

    kind = "bpe"

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    @classmethod
    def fit(cls, text: str, *, vocab_size: int = 1024) -> BPETokenizer:
        """Train byte-level BPE on `text` up to `vocab_size` tokens (256 bytes + merges).

        The vocabulary can stay smaller than `vocab_size` when the text has too few distinct
        pairs to merge; `vocab_size` of the result is the actual size.
        """
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
            raise DataError(f"bpe tokenizer: vocab_size must be an integer, got {vocab_size!r}")
        if vocab_size < BYTE_VOCAB_SIZE:
            raise DataError(
                f"bpe tokenizer: vocab_size={vocab_size} is below the {BYTE_VOCAB_SIZE} byte "
                f"tokens every byte-level BPE starts with; pass vocab_size >= {BYTE_VOCAB_SIZE} "
                "(e.g. 1024), or tokenizer='byte' for no merges"
            )
        if not text:
            raise DataError("bpe tokenizer: cannot train on empty text")
        tokenizer = HFTokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            special_tokens=[],
            show_progress=False,
        )
        tokenizer.train_from_iterator([text], trainer)
        return cls(tokenizer)

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self._tokenizer.encode(text).ids

    def decode(self, ids: Iterable[int]) -> str:
        return self._tokenizer.decode(_check_ids(self.kind, ids, self.vocab_size))

    def to_json(self) -> dict[str, Any]:
        # The library's own serialisation (vocabulary, merges, pre-tokenizer, decoder).
        return {
            "kind": self.kind,
            "version": TOKENIZER_FORMAT_VERSION,
            "tokenizer": self._tokenizer.to_str(),
        }


def fit_tokenizer(
    kind: str, text: str, *, vocab_size: int = 1024, unknown: str = "error"
) -> CharTokenizer | ByteTokenizer | BPETokenizer:
    """Fit the tokenizer named `kind` ("char", "byte" or "bpe") on `text`.

    Args:
        kind: which tokenizer.
        text: the training text (fitting only reads it for "char" and "bpe").
        vocab_size: the BPE vocabulary size (ignored by the others).
        unknown: the char tokenizer's policy for unseen characters (ignored by the others).
    """
    if kind == "char":
        return CharTokenizer.fit(text, unknown=unknown)
    if kind == "byte":
        return ByteTokenizer()
    if kind == "bpe":
        return BPETokenizer.fit(text, vocab_size=vocab_size)
    raise DataError(f"unknown tokenizer {kind!r}; choose one of {', '.join(TOKENIZER_KINDS)}")


def tokenizer_from_json(d: dict[str, Any]) -> CharTokenizer | ByteTokenizer | BPETokenizer:
    """Rebuild a tokenizer from its `to_json()` dict (e.g. `DataSpec.tokenizer`)."""
    if not isinstance(d, dict) or d.get("kind") not in TOKENIZER_KINDS:
        kind = d.get("kind") if isinstance(d, dict) else None
        raise DataError(
            f"not a saved tokenizer (kind {kind!r}); expected a dict from a tokenizer's "
            f"to_json() with kind one of {', '.join(TOKENIZER_KINDS)}"
        )
    version = d.get("version", 1)
    if version > TOKENIZER_FORMAT_VERSION:
        raise DataError(
            f"saved tokenizer has format version {version}, newer than this genlab understands "
            f"({TOKENIZER_FORMAT_VERSION}): upgrade genlab to read it"
        )
    kind = d["kind"]
    if kind == "char":
        return CharTokenizer(d.get("chars", ()), unknown=d.get("unknown", "error"))
    if kind == "byte":
        return ByteTokenizer()
    from tokenizers import Tokenizer as HFTokenizer

    try:
        return BPETokenizer(HFTokenizer.from_str(d["tokenizer"]))
    except Exception as e:  # the library raises its own exception types for bad JSON
        raise DataError(
            f"saved BPE tokenizer cannot be read ({e}); it must be the library's to_str() JSON"
        ) from None
