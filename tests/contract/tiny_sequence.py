"""Tiny contract configs of the sequence models ngram, arima and charrnn."""

import tempfile
from pathlib import Path

# A few lines, repeated: enough characters for blocks in both splits, all in the train part.
_LINES = (
    "To be, or not to be, that is the question:\n"
    "Whether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune,\n"
)
TINY_TEXT = Path(tempfile.gettempdir()) / "genlab_tiny_sequence.txt"
if not TINY_TEXT.is_file() or TINY_TEXT.read_text() != _LINES * 12:
    TINY_TEXT.write_text(_LINES * 12)

TEXT = {"path": str(TINY_TEXT), "block_size": 16}

TINY = {
    "ngram": [
        ({"order": 3}, "text", TEXT),
        ({"order": 2, "smoothing": "kneser_ney", "discount": 0.75}, "text", TEXT),
        ({"order": 2, "smoothing": "add_k", "k": 0.5}, "text", {**TEXT, "tokenizer": "byte"}),
    ],
    "arima": [
        ({"order": (1, 0, 0)}, "statsmodels", {"dataset": "nile", "window": 8}),
        (
            {"order": (0, 1, 1), "trend": "t", "method": "innovations_mle"},
            "statsmodels",
            {"dataset": "nile", "window": 8, "normalize": True},
        ),
    ],
    "charrnn": [
        ({"hidden": 16, "embed_dim": 8, "num_layers": 1}, "text", TEXT),
        (
            {
                "cell": "gru",
                "hidden": 16,
                "embed_dim": 8,
                "num_layers": 2,
                "dropout": 0.1,
                "tie_weights": True,
            },
            "text",
            {**TEXT, "tokenizer": "byte"},
        ),
        ({"hidden": 8, "embed_dim": 8, "num_layers": 1, "tie_weights": True}, "text", TEXT),
    ],
}
