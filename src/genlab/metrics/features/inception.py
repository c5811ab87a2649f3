"""The FID Inception-v3 network (pool3, 2048-d), written out so that no torchvision is needed.

FID (Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium", 2017) is defined on the 2048-d pool3 features of one particular network: the
TensorFlow Inception-v3 graph of 2015-12-05 (Szegedy et al., "Rethinking the Inception
Architecture for Computer Vision", 2016). pytorch-fid ships it converted to a PyTorch state dict,
`pt_inception-2015-12-05-6726825d.pth`, whose parameter names are those of torchvision's
`Inception3` (num_classes=1008, no auxiliary classifier). This file builds the same modules
under the same names, so that state dict loads with strict=True, and reproduces the ways in
which that graph differs from torchvision's Inception-v3:

- the average pools inside Mixed_5b..5d, Mixed_6b..6e and Mixed_7b exclude the zero padding
  from the mean (TensorFlow's `count_include_pad=False`);
- Mixed_7c's pooling branch uses a 3x3 max-pool where the paper has an average pool;
- batch norm eps is 0.001, convolutions have no bias;
- 1008 output classes (ImageNet's 1000 plus 8 unused) in `fc`.

Input handling is pytorch-fid's: images in [0, 1] are resized to 299 x 299 with bilinear
interpolation (align_corners=False, no antialiasing) and scaled to [-1, 1]. The weights are not
shipped (95 MB, and their licence is Google's): get the file from
https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth
and pass `weights=PATH`.

What could not be checked here: the weights file itself (not downloadable from this machine).
The module names, channel counts, kernel shapes, paddings and pooling variants were written from
the architecture's description and compared line by line with the published source of
torchvision's `Inception3` and pytorch-fid's `fid_inception_v3`, which builds
`Inception3(num_classes=1008, aux_logits=False)` and loads the file into it with strict=True;
the parameter count matches torchvision's published figure (see the tests). The loader here is
strict too (every name and shape must match, or it raises naming the differences), so a naming
slip shows as a loud failure, never as silently wrong features. Agreement of the features with
pytorch-fid's on the same images has not been measured. `fc.weight` / `fc.bias` (2048 -> 1008)
load when the file has them (pytorch-fid's does) and give `logits`; a file without them loads as
a features-only network. `num_batches_tracked` buffers are optional (batch norm fills them in).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genlab.core.errors import CheckpointError, ConfigError
from genlab.core.persist import safe_torch_load
from genlab.metrics.features import ImageClassifierExtractor, ImageInput, file_sha256

FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FID_WEIGHTS_NAME
)
# torch.hub names files <name>-<first 8 hex digits of the sha256>.<ext>.
FID_WEIGHTS_SHA256_PREFIX = "6726825d"
FID_NUM_CLASSES = 1008
IMAGE_SIZE = 299


class BasicConv2d(nn.Module):
    """Conv (no bias) -> batch norm (eps 0.001) -> ReLU; names `conv`, `bn` as in the weights."""

    def __init__(self, c_in: int, c_out: int, kernel_size, stride=1, padding=0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_3x3(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average pool whose mean ignores the zero padding (as TensorFlow's)."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """35x35 block (Mixed_5b..5d): 1x1, 5x5, double 3x3 and pooled branches.

    Output channels: 64 + 64 + 96 + pool_features.
    """

    def __init__(self, c_in: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(c_in, 64, 1)
        self.branch5x5_1 = BasicConv2d(c_in, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(c_in, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = self.branch_pool(_avg_pool_3x3(x))
        return torch.cat([self.branch1x1(x), branch5x5, branch3x3dbl, branch_pool], 1)


class InceptionB(nn.Module):
    """Grid reduction 35x35 -> 17x17 (Mixed_6a). Output channels: 384 + 96 + c_in."""

    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(c_in, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([self.branch3x3(x), branch3x3dbl, branch_pool], 1)


class InceptionC(nn.Module):
    """17x17 block with factorized 7x7 convolutions (Mixed_6b..6e). Output channels: 768."""

    def __init__(self, c_in: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(c_in, 192, 1)
        self.branch7x7_1 = BasicConv2d(c_in, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(c_in, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(c_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        branch7x7dbl = x
        for layer in (
            self.branch7x7dbl_1,
            self.branch7x7dbl_2,
            self.branch7x7dbl_3,
            self.branch7x7dbl_4,
            self.branch7x7dbl_5,
        ):
            branch7x7dbl = layer(branch7x7dbl)
        branch_pool = self.branch_pool(_avg_pool_3x3(x))
        return torch.cat([self.branch1x1(x), branch7x7, branch7x7dbl, branch_pool], 1)


class InceptionD(nn.Module):
    """Grid reduction 17x17 -> 8x8 (Mixed_7a). Output channels: 320 + 192 + c_in."""

    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(c_in, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(c_in, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3 = self.branch3x3_2(self.branch3x3_1(x))
        branch7x7x3 = self.branch7x7x3_4(
            self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x)))
        )
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([branch3x3, branch7x7x3, branch_pool], 1)


class InceptionE(nn.Module):
    """8x8 block with expanded 1x3 / 3x1 branches (Mixed_7b, 7c). Output channels: 2048.

    Args:
        c_in: input channels.
        pool: "avg" (padding excluded; Mixed_7b) or "max" (Mixed_7c in the FID graph).
    """

    def __init__(self, c_in: int, pool: str) -> None:
        super().__init__()
        if pool not in ("avg", "max"):
            raise ConfigError(f"InceptionE pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = BasicConv2d(c_in, 320, 1)
        self.branch3x3_1 = BasicConv2d(c_in, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(c_in, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(c_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        b3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = torch.cat([self.branch3x3dbl_3a(b3dbl), self.branch3x3dbl_3b(b3dbl)], 1)
        if self.pool == "avg":
            pooled = _avg_pool_3x3(x)
        else:
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        branch_pool = self.branch_pool(pooled)
        return torch.cat([self.branch1x1(x), branch3x3, branch3x3dbl, branch_pool], 1)


class FIDInceptionV3(nn.Module):
    """Inception-v3 as in the FID graph, up to pool3 (and the 1008-way `fc` when asked).

    Args:
        num_classes: width of `fc`, or None for a features-only network without `fc`.

    `features` takes images already resized to 299 x 299 and scaled to [-1, 1].
    """

    def __init__(self, num_classes: int | None = FID_NUM_CLASSES) -> None:
        super().__init__()
        self.feature_dim = 2048
        self.num_classes = num_classes
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool="avg")
        self.Mixed_7c = InceptionE(2048, pool="max")
        if num_classes is not None:
            self.fc = nn.Linear(2048, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, 299, 299) in [-1, 1] -> pool3 features (B, 2048)."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # (B, 64, 147, 147)
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (B, 64, 73, 73)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))  # (B, 192, 71, 71)
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (B, 192, 35, 35)
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))  # (B, 288, 35, 35)
        x = self.Mixed_6a(x)  # (B, 768, 17, 17)
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))  # (B, 768, 17, 17)
        x = self.Mixed_7a(x)  # (B, 1280, 8, 8)
        x = self.Mixed_7c(self.Mixed_7b(x))  # (B, 2048, 8, 8)
        return x.mean(dim=(2, 3))  # (B, 2048): pool3

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """pool3 features (B, 2048) -> logits (B, num_classes) of the 1008-way `fc`."""
        return self.fc(features)


class _ScaleToSigned(nn.Module):
    """Wrap a network that takes [-1, 1] so that it takes [0, 1], as pytorch-fid does."""

    def __init__(self, network: FIDInceptionV3) -> None:
        super().__init__()
        self.inception = network
        self.feature_dim = network.feature_dim
        self.num_classes = network.num_classes

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.inception.features(2 * x - 1)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.inception.classify(features)


def _missing_weights_message(detail: str) -> str:
    return (
        f"inception: {detail}. The FID Inception network needs its weights file "
        f"{FID_WEIGHTS_NAME} (95 MB, not shipped with genlab): download it from {FID_WEIGHTS_URL} "
        "and pass get_extractor('inception', weights='/path/to/" + FID_WEIGHTS_NAME + "'); "
        "for digits, the shipped 'digits28' / 'digits8' extractors need no download"
    )


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """Read a `.pth` state dict with `torch.load(weights_only=True)`; CheckpointError if unfit."""
    if not path.is_file():
        raise CheckpointError(_missing_weights_message(f"the weights file {path} does not exist"))
    state = safe_torch_load(path)
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError(
            f"inception: {path} is not a state dict (a mapping of names to tensors); give "
            f"pytorch-fid's {FID_WEIGHTS_NAME}"
        )
    return state


def load_fid_inception(path: Path) -> FIDInceptionV3:
    """The FID Inception-v3 with the weights in `path`, loaded with strict=True, in eval mode."""
    state = load_state_dict_file(path)
    num_classes = state["fc.weight"].shape[0] if "fc.weight" in state else None
    network = FIDInceptionV3(num_classes=num_classes)
    # Batch norm fills in num_batches_tracked when a file predates it; it is not a weight.
    expected = {k for k in network.state_dict() if not k.endswith("num_batches_tracked")}
    given = {k for k in state if not k.endswith("num_batches_tracked")}
    missing, unexpected = sorted(expected - given), sorted(given - expected)
    if missing or unexpected:
        raise CheckpointError(
            f"inception: {path} is not the FID Inception-v3 state dict: {len(missing)} missing "
            f"names (e.g. {', '.join(missing[:3]) or 'none'}), {len(unexpected)} unexpected "
            f"(e.g. {', '.join(unexpected[:3]) or 'none'}); give pytorch-fid's "
            f"{FID_WEIGHTS_NAME} from {FID_WEIGHTS_URL}"
        )
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(
            f"inception: {path} has the FID Inception-v3 names but other shapes ({e}); give "
            f"pytorch-fid's {FID_WEIGHTS_NAME} from {FID_WEIGHTS_URL}"
        ) from None
    return network.eval()


def load_inception(
    weights: str | Path | None = None, resize: bool = True
) -> ImageClassifierExtractor:
    """The `inception` extractor: FID's pool3 features (2048-d) of RGB or grey images.

    Args:
        weights: path to pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` (required).
        resize: resize images to 299 x 299 (bilinear, align_corners=False, no antialiasing, as
            pytorch-fid); True by default because the FID network defines this step. With
            False, only 299 x 299 inputs are accepted.

    Returns:
        An extractor whose `features` are pool3 activations (N, 2048) and whose `logits` /
        `probs` (when the file has `fc`) are the 1008-way classifier's.
    """
    if weights is None:
        raise CheckpointError(_missing_weights_message("no weights file was given"))
    if not isinstance(resize, bool):
        raise ConfigError(f"inception: resize must be True or False, got {resize!r}")
    path = Path(weights).expanduser()
    network = load_fid_inception(path)
    sha = file_sha256(path)
    image = ImageInput(
        extractor="inception",
        shape=(3, IMAGE_SIZE, IMAGE_SIZE),
        resize=resize,
        antialias=False,
        replicate_grey=True,
    )
    info: dict[str, Any] = {
        "weights_file": str(path),
        "weights_sha256": sha,
        "standard_fid_weights": sha.startswith(FID_WEIGHTS_SHA256_PREFIX),
        "layer": "pool3",
        "input_scaling": "[0, 1] -> [-1, 1]",
    }
    return ImageClassifierExtractor(
        "inception", _ScaleToSigned(network), image, info, default_batch_size=32
    )
