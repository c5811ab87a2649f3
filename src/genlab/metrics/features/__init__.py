"""Feature networks for sample-quality metrics: `get_extractor(name, **options)`.

A FID or KID figure means nothing without the network that embedded the images, the number of
samples, the image size and how the images were resized, so every extractor reports those in
`describe()`, and the metrics record that dictionary beside each result.

| name       | input           | features            | weights                                       |
| ---------- | --------------- | ------------------- | --------------------------------------------- |
| `digits28` | (1, 28, 28)     | 128-d penultimate   | shipped, trained on the mnist5k train split   |
| `digits8`  | (1, 8, 8)       | 64-d penultimate    | shipped, trained on the digits train split    |
| `inception`| (3, 299, 299)   | 2048-d pool3 (FID)  | the user's `pt_inception-2015-12-05` file     |
| `raw`      | any (N, ...)    | the input flattened | none (points and table rows)                  |

Image extractors take float (N, C, H, W) in [0, 1], the range of every genlab image, and raise
`DataError` naming the fix for anything else. An image whose size differs from the network's is
resized only when the extractor was made with `resize=True`: the digits networks default to
False and resize bilinearly with antialiasing; inception defaults to True, because the FID
network itself resizes to 299 x 299 (bilinear, no antialiasing, as pytorch-fid). Grey images are
replicated to RGB for inception.

    extractor = get_extractor("digits28")
    features = extractor(samples)          # (N, 128) float32
    probs = extractor.probs(samples)       # (N, 10)
    record = {"fid": ..., "num_samples": len(samples), **extractor.describe()}

The registry lives here, the only place that switches on extractor names; each network's module
is imported when it is first asked for, so importing genlab.metrics stays cheap.
"""

from __future__ import annotations

import abc
import hashlib
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genlab.core.errors import ConfigError, DataError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

# name -> (module, factory function, one-line summary); factories take the extractor's options.
_REGISTRY: dict[str, tuple[str, str, str]] = {
    "digits28": (
        "genlab.metrics.features.digits",
        "load_digits28",
        "small CNN trained on mnist5k train; 128-d features, 10-class probabilities, 28x28 grey",
    ),
    "digits8": (
        "genlab.metrics.features.digits",
        "load_digits8",
        "small CNN trained on sklearn digits train; 64-d features, 10-class probabilities, 8x8",
    ),
    "inception": (
        "genlab.metrics.features.inception",
        "load_inception",
        "Inception-v3 pool3 (2048-d) of the standard FID network; needs weights=PATH",
    ),
    "raw": (
        "genlab.metrics.features.raw",
        "load_raw",
        "the input flattened to float64 (points and table rows); no network",
    ),
}


def list_extractors() -> dict[str, str]:
    """The registered feature extractors: name -> one-line summary."""
    return {name: summary for name, (_, _, summary) in sorted(_REGISTRY.items())}


def get_extractor(name: str, **options: Any) -> FeatureExtractor:
    """Build the feature extractor registered as `name`, in eval mode on the CPU.

    Args:
        name: one of `list_extractors()`: "digits28", "digits8", "inception", "raw".
        **options: the extractor's named options, e.g. `resize=True` for the digits networks,
            `weights="/path/to/pt_inception-2015-12-05-6726825d.pth"` for inception. Unknown
            options raise `ConfigError` naming the allowed ones.

    Returns:
        A `FeatureExtractor`.
    """
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError(f"unknown feature extractor {name!r}; known extractors: {known}")
    module_name, factory_name, _ = _REGISTRY[name]
    factory: Callable[..., FeatureExtractor] = getattr(
        importlib.import_module(module_name), factory_name
    )
    allowed = list(inspect.signature(factory).parameters)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(
            f"feature extractor {name!r} has no option {', '.join(map(repr, unknown))}; its "
            f"options are: {', '.join(allowed) or 'none'}"
        )
    return factory(**options).eval()


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _range_fix(low: float, high: float) -> str:
    """The rescaling that most likely brings values in [low, high] into [0, 1]."""
    if low >= -1.0 - 1e-3 and high <= 1.0 + 1e-3 and low < 0:
        return "genlab images are in [0, 1]; rescale with (x + 1) / 2"
    if low >= 0 and 1.0 < high <= 255.0:
        return "genlab images are in [0, 1]; rescale with x / 255"
    return "genlab images are in [0, 1]; rescale them, or clamp with x.clamp(0, 1)"


@dataclass(frozen=True)
class ImageInput:
    """What an image network takes, and how other images are brought to it.

    Args:
        extractor: the extractor's name, for messages.
        shape: (C, H, W) the network takes.
        resize: resize images of another size to (H, W); without it such images are an error.
        resize_mode: "bilinear" is the only mode; named so that results can record it.
        antialias: low-pass filter when shrinking (torch's antialias=True); no effect when
            enlarging.
        replicate_grey: repeat a single grey channel C times (inception takes RGB).
    """

    extractor: str
    shape: tuple[int, int, int]
    resize: bool
    resize_mode: str = "bilinear"
    antialias: bool = True
    replicate_grey: bool = False

    def check(self, x: torch.Tensor) -> None:
        """Raise `DataError` unless x is float (N, C, H, W) in [0, 1] that this network can take."""
        name, (channels, height, width) = self.extractor, self.shape
        if not isinstance(x, torch.Tensor):
            raise DataError(
                f"{name}: images must be a torch.Tensor (N, C, H, W), got {type(x).__name__}; "
                "convert with torch.as_tensor(x, dtype=torch.float32)"
            )
        if not x.is_floating_point():
            fix = "x.float() / 255" if x.dtype == torch.uint8 else "x.float()"
            raise DataError(
                f"{name}: images must be float in [0, 1], got dtype {x.dtype}; convert with {fix}"
            )
        if x.ndim != 4:
            raise DataError(
                f"{name}: images must be (N, C, H, W), got shape {tuple(x.shape)}; add the "
                "channel axis with x.unsqueeze(1) for (N, H, W) grey images, or reshape"
            )
        if x.shape[0] == 0:
            raise DataError(f"{name}: got no images (shape {tuple(x.shape)}); pass at least one")
        c = x.shape[1]
        if c != channels and not (self.replicate_grey and c == 1):
            takes = "1 grey channel" if channels == 1 else f"{channels} channels (or 1 grey)"
            fix = "average the channels with x.mean(1, keepdim=True)" if channels == 1 else ""
            raise DataError(
                f"{name}: takes {takes}, got {c} channels (shape {tuple(x.shape)})"
                + (f"; {fix}" if fix else "; use an extractor made for these images")
            )
        if tuple(x.shape[2:]) != (height, width) and not self.resize:
            raise DataError(
                f"{name}: takes {height}x{width} images, got {x.shape[2]}x{x.shape[3]}; make the "
                f"extractor with get_extractor({name!r}, resize=True) to resize them "
                f"({self.resize_mode}), or use an extractor made for this size"
            )
        if not torch.isfinite(x).all():
            raise DataError(
                f"{name}: images hold NaN or infinite values; check the model that made them"
            )
        low, high = float(x.min()), float(x.max())
        if low < 0.0 or high > 1.0:
            raise DataError(f"{name}: values span [{low:.4g}, {high:.4g}]: {_range_fix(low, high)}")

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Checked images (B, C', H', W') -> float32 (B, C, H, W): resized, grey replicated."""
        x = x.float()
        channels, height, width = self.shape
        if tuple(x.shape[2:]) != (height, width):
            x = F.interpolate(
                x,
                size=(height, width),
                mode=self.resize_mode,
                align_corners=False,
                antialias=self.antialias,
            )
        if x.shape[1] != channels:
            x = x.expand(-1, channels, -1, -1)
        return x

    def describe(self) -> dict[str, Any]:
        return {
            "image_size": list(self.shape[1:]),
            "channels": self.shape[0],
            "resize": self.resize,
            "resize_mode": (
                f"{self.resize_mode}, align_corners=False, antialias={self.antialias}"
                if self.resize
                else "none (inputs must match image_size)"
            ),
            "grey_to_rgb": "replicate" if self.replicate_grey else "no",
        }


class FeatureExtractor(nn.Module, abc.ABC):
    """A network (or none) mapping inputs (N, ...) to features (N, D), for quality metrics.

    Subclasses set `name`, `input_shape` and `feature_dim` and implement `check` (validate the
    whole input once), `embed` (one batch to features) and `describe`. Calling the extractor is
    `features(x)`: checked, batched, without gradients, in eval mode, returned on the CPU.
    """

    name: str
    input_shape: tuple[int, ...] | None
    feature_dim: int | None
    default_batch_size: int = 256

    @abc.abstractmethod
    def check(self, x: torch.Tensor) -> None:
        """Raise `DataError` unless x is input this extractor takes."""

    @abc.abstractmethod
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """One checked batch (B, ...) -> features (B, D), on the extractor's device."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """What a metric must record to be reproducible: name, weights, size, resize mode."""

    def features(self, x: torch.Tensor, *, batch_size: int | None = None) -> torch.Tensor:
        """Features of every input, computed in batches.

        Args:
            x: inputs (N, ...) as the extractor takes them (images: float (N, C, H, W) in [0, 1]).
            batch_size: inputs per forward pass (default: the extractor's `default_batch_size`).

        Returns:
            (N, feature_dim) features on the CPU (float32; float64 for "raw").
        """
        self.check(x)
        return self._batched(self.embed, x, batch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`features(x)` with the default batch size."""
        return self.features(x)

    def _batched(
        self, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int | None
    ) -> torch.Tensor:
        batch_size = self.default_batch_size if batch_size is None else batch_size
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        if self.training:
            self.eval()
        device = next((p.device for p in self.parameters()), torch.device("cpu"))
        outputs = []
        with torch.no_grad():
            for start in range(0, x.shape[0], batch_size):
                outputs.append(fn(x[start : start + batch_size].to(device)).cpu())
        return torch.cat(outputs)


class ImageClassifierExtractor(FeatureExtractor):
    """An image network that also classifies: features plus `logits` / `probs`.

    The probabilities serve the Inception-Score-like figures and the class accuracy of
    conditional samples.

    Args:
        name: the registry name, recorded by `describe`.
        network: a module with `feature_dim`, `num_classes` (None when it cannot classify),
            `features(x) -> (B, D)` and `classify(features) -> (B, K)` on prepared images
            (B, *image.shape).
        image: the input checks, resizing and channel handling.
        info: weights file, sha256 and other provenance merged into `describe()`.
        default_batch_size: images per forward pass when `features` is not told.
    """

    def __init__(
        self,
        name: str,
        network: nn.Module,
        image: ImageInput,
        info: dict[str, Any],
        *,
        default_batch_size: int = 256,
    ):
        super().__init__()
        self.default_batch_size = default_batch_size
        self.name = name
        self.network = network
        self.image = image
        self.input_shape = image.shape
        self.feature_dim = int(network.feature_dim)
        self.num_classes = getattr(network, "num_classes", None)
        self._info = dict(info)

    def check(self, x: torch.Tensor) -> None:
        self.image.check(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.network.features(self.image.prepare(x))  # (B, D)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.network.classify(self.network.features(self.image.prepare(x)))  # (B, K)

    def logits(self, x: torch.Tensor, *, batch_size: int | None = None) -> torch.Tensor:
        """Class logits (N, num_classes) of images float (N, C, H, W) in [0, 1]."""
        if self.num_classes is None:
            raise ConfigError(
                f"{self.name}: these weights have no classifier layer, so there are no class "
                "logits; use features(x), or load weights that include the classifier"
            )
        self.check(x)
        return self._batched(self._logits, x, batch_size)

    def probs(self, x: torch.Tensor, *, batch_size: int | None = None) -> torch.Tensor:
        """Class probabilities (N, num_classes), softmax of `logits`."""
        return torch.softmax(self.logits(x, batch_size=batch_size), dim=-1)

    def describe(self) -> dict[str, Any]:
        return {
            "extractor": self.name,
            "feature_dim": self.feature_dim,
            "input_shape": list(self.input_shape),
            **self.image.describe(),
            **self._info,
        }
