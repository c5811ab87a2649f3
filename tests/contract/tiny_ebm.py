"""Tiny contract configs of the energy-based family: `rbm` and `ebm`."""

TINY = {
    "rbm": [
        # Bernoulli visible units need binary data: the fixed binarization of the test split.
        ({"num_hidden": 6, "sample_steps": 50}, "digits", {"split": "test", "binarize": True}),
        # Gaussian visible units on points: 4 hidden units, so log Z is exact and normalizes.
        (
            {"num_hidden": 4, "visible": "gaussian", "persistent": True, "num_chains": 8},
            "moons",
            {"num_samples": 300},
        ),
        (
            {"num_hidden": 3, "visible": "gaussian", "learn_sigma": True},
            "8gaussians",
            {"num_samples": 300},
        ),
    ],
    "ebm": [
        ({"hidden": (16,), "sgld_steps": 3, "buffer_size": 50}, "moons", {"num_samples": 300}),
        (
            {"conv_channels": (4, 8), "sgld_steps": 2, "buffer_size": 40, "spectral_norm": True},
            "digits",
            {},
        ),
        (
            {"hidden": (8, 8), "sgld_steps": 2, "grad_penalty": 0.1},
            "8gaussians",
            {"num_samples": 300},
        ),
    ],
}
