"""Tiny configurations of the diffusion family for the contract suite (see tiny.py)."""

TINY: dict[str, list[tuple[dict, str, dict]]] = {
    "diffusion": [
        # points: residual MLP, discrete cosine schedule, eps target
        ({"hidden": 16, "num_blocks": 1, "prediction": "eps"}, "moons", {"num_samples": 300}),
        # points: EDM schedule, x0 target, min-SNR weighting
        (
            {
                "schedule": "edm",
                "prediction": "x0",
                "loss_weighting": "min_snr",
                "hidden": 16,
                "num_blocks": 1,
            },
            "8gaussians",
            {"num_samples": 300},
        ),
        # images: class-conditional UNet (null class for guidance), linear schedule, v target
        (
            {
                "schedule": "linear",
                "prediction": "v",
                "channels": 8,
                "channel_mults": (1, 2),
                "num_res_blocks": 1,
                "num_heads": 2,
                "conditional": True,
                "label_dropout": 0.5,
            },
            "digits",
            {},
        ),
    ],
}
