"""Tiny contract configs of the flows: realnvp, maf, iaf, nsf (vectors), realnvp and glow
(images, quantized digits, conditional and variationally dequantized variants)."""

TINY = {
    "realnvp": [
        ({"num_layers": 2, "hidden": (16,)}, "moons", {"num_samples": 300}),
        ({"num_scales": 2, "couplings_per_stage": 1, "hidden_channels": 8}, "digits", {}),
        (
            {
                "num_scales": 1,
                "couplings_per_stage": 1,
                "hidden_channels": 8,
                "conditional": True,
                "preprocess": "shift",
            },
            "digits",
            {},
        ),
    ],
    "maf": [({"num_layers": 2, "hidden": (16,)}, "moons", {"num_samples": 300})],
    "iaf": [({"num_layers": 2, "hidden": (16,)}, "moons", {"num_samples": 300})],
    "nsf": [
        ({"num_layers": 2, "hidden": (16,), "bins": 4}, "moons", {"num_samples": 300}),
        (
            {"num_layers": 2, "hidden": (16,), "bins": 4, "kind": "autoregressive"},
            "8gaussians",
            {"num_samples": 300},
        ),
    ],
    "glow": [
        (
            {"num_levels": 2, "steps_per_level": 1, "hidden_channels": 8, "preprocess": "shift"},
            "digits",
            {},
        ),
        (
            {
                "num_levels": 1,
                "steps_per_level": 2,
                "hidden_channels": 8,
                "conditional": True,
                "dequantization": "variational",
                "dequant_hidden_channels": 4,
                "dequant_layers": 1,
                "coupling": "additive",
                "preprocess": "logit",
            },
            "digits",
            {},
        ),
    ],
}
