"""Tiny contract configs of the gpt model, on a small generated text file."""

import os
import tempfile
from pathlib import Path

# A few verses, repeated: enough characters for blocks in both splits, all in the train part.
_VERSE = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n"
)
TINY_TEXT = Path(tempfile.gettempdir()) / "genlab_tiny_gpt.txt"
if not TINY_TEXT.is_file() or TINY_TEXT.read_text() != _VERSE * 20:
    # written under a temporary name and renamed, so parallel test runs never see half a file
    _tmp = TINY_TEXT.with_suffix(f".{os.getpid()}.tmp")
    _tmp.write_text(_VERSE * 20)
    os.replace(_tmp, TINY_TEXT)

_DATA = {"path": str(TINY_TEXT), "block_size": 17}
# gpt's default zero-initialised residual projections give the weights before them an exactly
# zero gradient at step 0 (each block starts as the identity); the contract's gradient check
# needs every weight live, so the tiny configs use the scaled GPT-2 init.
_LIVE = {"zero_init_residual": False}

TINY = {
    "gpt": [
        ({"num_layers": 1, "num_heads": 2, "dim": 16, **_LIVE}, "text", _DATA),
        (
            {
                "num_layers": 2,
                "num_heads": 2,
                "dim": 16,
                "bias": True,
                "tie_weights": False,
                "dropout": 0.1,
                "activation": "gelu",
                "positions": "learned",
                **_LIVE,
            },
            "text",
            {**_DATA, "tokenizer": "byte"},
        ),
    ],
}
