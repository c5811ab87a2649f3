"""Tiny contract configs of the gan model and its presets (dcgan, wgan_gp, sngan)."""

_SMALL = {"latent_dim": 4, "hidden": (16, 16)}
_CONV = {"latent_dim": 4, "conv_channels": (4, 8), "label_dim": 4}

TINY = {
    "gan": [
        (_SMALL, "8gaussians", {"num_samples": 300}),
        ({**_CONV, "conditional": True, "diffaugment": "color,translation,cutout"}, "digits", {}),
        (
            {**_SMALL, "loss": "hinge", "r1_gamma": 1.0, "disc_norm": "layer"},
            "moons",
            {"num_samples": 300},
        ),
    ],
    "dcgan": [({**_CONV}, "digits", {})],
    "wgan_gp": [(_SMALL, "moons", {"num_samples": 300})],
    "sngan": [
        ({**_CONV, "conditional": True}, "digits", {}),
        ({**_SMALL, "architecture": "mlp", "conditional": True}, "digits", {}),
    ],
}
