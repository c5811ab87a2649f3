"""Tiny configurations of every registered model and preset, for the contract suite.

Each entry: (model config overrides, data set name, data options). A model or preset that is
registered but missing here fails `test_every_registered_model_has_a_tiny_config`. A family may
keep its entries in its own module `tests/contract/tiny_<family>.py` (a dict named `TINY`);
they are merged into the one below.
"""

import importlib
import pkgutil

TINY: dict[str, list[tuple[dict, str, dict]]] = {
    "gmm": [
        ({"n_components": 3}, "moons", {"num_samples": 300}),
        ({"n_components": 2, "covariance_type": "diag"}, "8gaussians", {"num_samples": 300}),
    ],
    "copula": [
        ({}, "moons", {"num_samples": 300}),
        (
            {"marginals": "parametric", "parametric_family": "gaussian"},
            "8gaussians",
            {"num_samples": 300},
        ),
        ({}, "adult", {}),
    ],
    "kde": [
        ({"kernel": "epanechnikov"}, "moons", {"num_samples": 300}),
        (
            {"kernel": "cosine", "select_bandwidth": True, "num_bandwidths": 5},
            "8gaussians",
            {"num_samples": 300},
        ),
    ],
    "factor_analysis": [
        ({"n_components": 1}, "moons", {"num_samples": 300}),
        ({"n_components": 1, "method": "ppca"}, "8gaussians", {"num_samples": 300}),
    ],
    "hmm": [({"n_states": 2, "n_iter": 5}, "statsmodels", {"dataset": "nile", "window": 8})],
    "bayesnet": [({"structure": "chow_liu", "num_bins": 5}, "adult", {"test_fraction": 0.9})],
    "vae": [
        ({"hidden": (16,), "latent_dim": 2, "dropout": 0.1}, "moons", {"num_samples": 300}),
        ({"hidden": (32,), "latent_dim": 3, "conditional": True}, "digits", {}),
        (
            {"architecture": "conv", "conv_channels": (4, 8), "latent_dim": 3},
            "digits",
            {"binarize": True},
        ),
        ({"hidden": (16,), "latent_dim": 2, "iwae_k": 3}, "moons", {"num_samples": 300}),
    ],
}


def _merge_family_modules() -> None:
    package = importlib.import_module("tests.contract")
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("tiny_"):
            family = importlib.import_module(f"tests.contract.{info.name}")
            clash = set(family.TINY) & set(TINY)
            assert not clash, f"{info.name} repeats tiny configs of {sorted(clash)}"
            TINY.update(family.TINY)


_merge_family_modules()


def cases() -> list[tuple[str, dict, str, dict]]:
    return [
        (name, cfg, data, opts) for name, entries in TINY.items() for cfg, data, opts in entries
    ]


def case_id(case) -> str:
    name, cfg, data, _ = case
    short = ",".join(f"{k}={v}" for k, v in cfg.items())
    return f"{name}[{data}|{short}]"
