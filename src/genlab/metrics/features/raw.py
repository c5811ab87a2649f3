"""The `raw` extractor: inputs flattened to float64, for points and table rows.

For low-dimensional data (2-D toys, table rows) the data's own coordinates are the natural
feature space of FID/KID/MMD and precision/recall; no network is involved. float64 keeps the
covariance estimates of such figures accurate.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from genlab.core.errors import ConfigError, DataError
from genlab.metrics.features import FeatureExtractor


class RawFeatures(FeatureExtractor):
    """Flatten (N, ...) -> (N, D) float64.

    Args:
        input_shape: the shape of one input, e.g. (2,) for 2-D points; when given, inputs of
            another shape are an error and `feature_dim` is known before the first call. When
            None, any shape is taken and `feature_dim` is that of the latest input.
    """

    def __init__(self, input_shape: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.name = "raw"
        self.input_shape = None if input_shape is None else tuple(int(d) for d in input_shape)
        self.feature_dim = None if input_shape is None else math.prod(self.input_shape)
        self.default_batch_size = 65536

    def check(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise DataError(
                f"raw: inputs must be a torch.Tensor (N, ...), got {type(x).__name__}; convert "
                "with torch.as_tensor(x)"
            )
        if x.ndim < 2 or x.shape[0] == 0:
            raise DataError(
                f"raw: inputs must be (N, D) or (N, ...) with N >= 1, got shape "
                f"{tuple(x.shape)}; add the sample axis with x.unsqueeze(0) or x.unsqueeze(1)"
            )
        if x.is_complex() or x.dtype == torch.bool:
            raise DataError(f"raw: inputs must be real numbers, got dtype {x.dtype}")
        if self.input_shape is not None and tuple(x.shape[1:]) != self.input_shape:
            raise DataError(
                f"raw: this extractor was made for inputs of shape {self.input_shape}, got "
                f"{tuple(x.shape[1:])} per sample; make another with "
                f"get_extractor('raw', input_shape={tuple(x.shape[1:])})"
            )
        if x.is_floating_point() and not torch.isfinite(x).all():
            raise DataError("raw: inputs hold NaN or infinite values; check what produced them")
        if self.input_shape is None:
            self.feature_dim = math.prod(x.shape[1:])

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).to(torch.float64)  # (B, D)

    def describe(self) -> dict[str, Any]:
        return {
            "extractor": "raw",
            "feature_dim": self.feature_dim,
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            "weights_file": None,
            "weights_sha256": None,
            "image_size": None,
            "resize": False,
            "resize_mode": "none",
            "dtype": "float64",
        }


def load_raw(input_shape: tuple[int, ...] | None = None) -> RawFeatures:
    """The `raw` extractor: flatten to float64.

    Args:
        input_shape: the per-sample shape to insist on, or None to take any.
    """
    if input_shape is not None and (
        not isinstance(input_shape, tuple | list)
        or not all(isinstance(d, int) and d > 0 for d in input_shape)
    ):
        raise ConfigError(
            f"raw: input_shape must be a tuple of positive sizes like (2,), got {input_shape!r}"
        )
    return RawFeatures(input_shape=None if input_shape is None else tuple(input_shape))
