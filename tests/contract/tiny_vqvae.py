"""Tiny contract configs of the `vqvae` model."""

_SMALL = {
    "channels": (8, 8),
    "res_blocks": 1,
    "num_codes": 16,
    "code_dim": 4,
    "prior_layers": 1,
    "prior_heads": 2,
    "prior_dim": 16,
}

TINY = {
    "vqvae": [
        (_SMALL, "digits", {"binarize": True}),
        ({**_SMALL, "conditional": True, "decoder": "gaussian"}, "digits", {}),
    ],
}
