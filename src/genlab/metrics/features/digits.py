"""Small digit classifiers whose penultimate layer is the feature space for FID/KID on digits.

Inception-v3 features of 28 x 28 grey digits blown up to 299 x 299 say little about digits, and
its weights are a 95 MB download; a classifier trained on the digits themselves gives features
that separate what matters (stroke shapes, classes) and class probabilities for an
Inception-Score-like figure and for the class accuracy of conditional samples. This is the
practice of the digit-generation literature (e.g. the "FID on LeNet features" of Binkowski et al.,
"Demystifying MMD GANs", 2018).

Two shipped networks, trained by `benchmarks/train_digit_features.py` on the train splits only:
- `digits28`: mnist5k (1, 28, 28); three conv stages 32 -> 64 -> 128 (conv 3x3, batch norm,
  ReLU, 2x2 max-pool), a 128-d ReLU layer (the features), 10 logits.
- `digits8`: sklearn digits (1, 8, 8); two conv stages 32 -> 64, a 64-d ReLU layer, 10 logits.

Each ships as `weights/<name>.safetensors` with `weights/<name>.json` (architecture, test
accuracy, training command, date, sha256 of the weights file, checked on load).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genlab.core.errors import CheckpointError, ConfigError
from genlab.core.persist import read_tensors
from genlab.metrics.features import (
    WEIGHTS_DIR,
    ImageClassifierExtractor,
    ImageInput,
    file_sha256,
)


@dataclass(frozen=True)
class DigitsNetConfig:
    """Architecture of a digit classifier.

    Args:
        image_size: side of the square grey input (28 or 8).
        channels: output channels of each conv stage (conv 3x3, BN, ReLU, max-pool 2x2).
        feature_dim: width of the penultimate ReLU layer, whose activations are the features.
        num_classes: classes of the final linear layer.
        dropout: dropout before the final layer during training.
    """

    image_size: int
    channels: tuple[int, ...]
    feature_dim: int
    num_classes: int = 10
    dropout: float = 0.3

    def __post_init__(self) -> None:
        if self.image_size < 2 ** len(self.channels):
            raise ConfigError(
                f"digits network: {len(self.channels)} pooling stages need images of at least "
                f"{2 ** len(self.channels)} pixels, got {self.image_size}"
            )
        if not self.channels or min(self.channels) < 1 or self.feature_dim < 1:
            raise ConfigError(
                f"digits network: channels and feature_dim must be positive, got "
                f"channels={self.channels}, feature_dim={self.feature_dim}"
            )


DIGITS28 = DigitsNetConfig(image_size=28, channels=(32, 64, 128), feature_dim=128)
DIGITS8 = DigitsNetConfig(image_size=8, channels=(32, 64), feature_dim=64)


class DigitsCNN(nn.Module):
    """A LeNet-style CNN: conv stages, a penultimate ReLU layer (the features), logits.

    Args:
        config: the architecture.
    """

    def __init__(self, config: DigitsNetConfig) -> None:
        super().__init__()
        self.config = config
        self.feature_dim = config.feature_dim
        self.num_classes = config.num_classes
        layers: list[nn.Module] = []
        c_in, size = 1, config.image_size
        for c_out in config.channels:
            layers += [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            c_in, size = c_out, size // 2
        self.conv = nn.Sequential(*layers)
        self.penultimate = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c_in * size * size, config.feature_dim, bias=False),
            nn.BatchNorm1d(config.feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Sequential(
            nn.Dropout(config.dropout), nn.Linear(config.feature_dim, config.num_classes)
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 1, S, S) in [0, 1] -> penultimate activations (B, feature_dim)."""
        return self.penultimate(self.conv(x))  # (B, D)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Features (B, feature_dim) -> class logits (B, num_classes)."""
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 1, S, S) in [0, 1] -> class logits (B, num_classes)."""
        return self.classify(self.features(x))


def metadata_path(name: str, weights_dir: Path = WEIGHTS_DIR) -> Path:
    return weights_dir / f"{name}.json"


def weights_path(name: str, weights_dir: Path = WEIGHTS_DIR) -> Path:
    return weights_dir / f"{name}.safetensors"


def load_network(name: str, weights_dir: Path = WEIGHTS_DIR) -> tuple[DigitsCNN, dict[str, Any]]:
    """Rebuild a shipped digit network from `<name>.json` and `<name>.safetensors`.

    The JSON gives the architecture and the sha256 of the weights file, checked before loading,
    so a damaged or swapped file is an error rather than silently different features.

    Returns:
        (network in eval mode, metadata dict).
    """
    meta_file, tensor_file = metadata_path(name, weights_dir), weights_path(name, weights_dir)
    reinstall = (
        "reinstall genlab, or retrain with python benchmarks/train_digit_features.py "
        "(which writes both files)"
    )
    if not meta_file.exists() or not tensor_file.exists():
        missing = meta_file if not meta_file.exists() else tensor_file
        raise CheckpointError(f"{name}: the weights file {missing} is missing; {reinstall}")
    try:
        meta = json.loads(meta_file.read_text())
        arch = dict(meta["architecture"])
        config = DigitsNetConfig(**{**arch, "channels": tuple(arch["channels"])})
        expected_sha = str(meta["sha256"])
    except (ValueError, KeyError, TypeError, ConfigError) as e:
        raise CheckpointError(
            f"{name}: {meta_file} is corrupt or not a digits-network description ({e}); {reinstall}"
        ) from None
    sha = file_sha256(tensor_file)
    if sha != expected_sha:
        raise CheckpointError(
            f"{name}: {tensor_file} has sha256 {sha[:12]}..., but {meta_file.name} records "
            f"{expected_sha[:12]}...: the file is damaged or from another training run; "
            f"{reinstall}"
        )
    network = DigitsCNN(config)
    try:
        network.load_state_dict(read_tensors(tensor_file), strict=True)
    except RuntimeError as e:
        raise CheckpointError(
            f"{name}: {tensor_file} does not fit the architecture in {meta_file.name} ({e}); "
            f"{reinstall}"
        ) from None
    meta["sha256"] = sha
    return network.eval(), meta


def _extractor(name: str, resize: bool) -> ImageClassifierExtractor:
    if not isinstance(resize, bool):
        raise ConfigError(f"{name}: resize must be True or False, got {resize!r}")
    network, meta = load_network(name)
    size = network.config.image_size
    image = ImageInput(extractor=name, shape=(1, size, size), resize=resize, antialias=True)
    info = {
        "weights_file": f"genlab/metrics/features/weights/{name}.safetensors",
        "weights_sha256": meta["sha256"],
        "architecture": asdict(network.config),
        "trained_on": meta.get("train_data"),
        "test_accuracy": meta.get("test_accuracy"),
    }
    return ImageClassifierExtractor(name, network, image, info)


def load_digits28(resize: bool = False) -> ImageClassifierExtractor:
    """The `digits28` extractor: 128-d features and 10 class probabilities of 28x28 grey digits.

    Args:
        resize: resize images of another size to 28x28 (bilinear, antialias); without it they
            are an error.
    """
    return _extractor("digits28", resize)


def load_digits8(resize: bool = False) -> ImageClassifierExtractor:
    """The `digits8` extractor: 64-d features and 10 class probabilities of 8x8 grey digits.

    Args:
        resize: resize images of another size to 8x8 (bilinear, antialias); without it they
            are an error.
    """
    return _extractor("digits8", resize)
