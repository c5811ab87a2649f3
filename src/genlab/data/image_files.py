"""Image data sets read from files: image folders, MNIST-format IDX files, CIFAR-10 batches.

Every source returns float32 (N, C, H, W) in [0, 1] with int64 labels when the files have them.

- `image_folder`: PNG/JPEG files directly in a folder (unlabelled) or in one subfolder per class
  (labelled; class ids follow the sorted folder names), with a seeded, stratified train/test
  split.
- `idx`: a folder holding the four MNIST-format files (MNIST, Fashion-MNIST, KMNIST...), gzipped
  or not; the IDX format is parsed here and every file's size checked against its header.
- `cifar10`: the CIFAR-10 "python version" folder, read through a restricted unpickler.
- `mnist`, `fashion-mnist`: download the IDX files into the cache (`genlab.data.downloads`) and
  read them; `cifar10` without a path does the same for CIFAR-10.
"""

from __future__ import annotations

import codecs
import math
import pickle
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from genlab.core.contract import DataSpec
from genlab.core.errors import DataError
from genlab.data import source
from genlab.data.dataset import Dataset
from genlab.data.images import TEST_BINARIZE_SEED

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# Pillow modes of 16-bit greyscale images: scaled by 1/65535 instead of going through 8 bits.
SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")
SINGLE_CHANNEL_MODES = ("1", "L", "LA", "La", *SIXTEEN_BIT_MODES)
# EXIF orientations that turn the picture by 90 degrees (so width and height swap).
EXIF_ORIENTATION = 0x0112
QUARTER_TURNS = (5, 6, 7, 8)

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# IDX type codes (the third byte of the magic number) and their big-endian numpy types.
IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_BATCH = "test_batch"
CIFAR10_META = "batches.meta"

MNIST_CLASSES = tuple(str(digit) for digit in range(10))
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


# --- option checks -------------------------------------------------------------------------


def _check_bool(name: str, option: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise DataError(f"data set {name}: {option} must be true or false, got {value!r}")


def _check_count(name: str, option: str, value: Any, meaning: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DataError(
            f"data set {name}: {option} must be an integer >= 0 ({meaning}), got {value!r}"
        )


def _check_path(name: str, path: str) -> Path:
    if not path:
        raise DataError(f"data set {name}: give the folder to read, e.g. path='data/my_images'")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DataError(f"data set {name}: {folder} is not a folder; give path= an existing folder")
    return folder


def _labelled_images(
    name: str,
    split: str,
    x: torch.Tensor,
    labels: torch.Tensor | None,
    *,
    num_classes: int | None,
    levels: int | None,
    binarize: bool = False,
    info: dict[str, Any] | None = None,
) -> Dataset:
    """Wrap float32 (N, C, H, W) images in [0, 1] into a Dataset, binarized as mnist5k does.

    `binarize`: train draws Bernoulli(x) afresh per batch; test holds one draw with seed 0.
    """
    if binarize and split == "test":
        x = torch.bernoulli(x, generator=torch.Generator().manual_seed(TEST_BINARIZE_SEED))
    spec = DataSpec(
        modality="image",
        shape=tuple(x.shape[1:]),
        name=name,
        num_classes=num_classes,
        value_range=(0.0, 1.0),
        discrete_levels=2 if binarize else levels,
    )
    return Dataset(
        x=x,
        spec=spec,
        labels=labels,
        dynamic_binarize=binarize and split == "train",
        info=info or {},
    )


def _first_rows(x: np.ndarray, labels: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    return (x[:limit], labels[:limit]) if limit else (x, labels)


# --- image folders ---------------------------------------------------------------------------


def _is_image(path: Path) -> bool:
    return (
        path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()
    )


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if _is_image(p))


def _class_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def is_image_folder(path: Path) -> bool:
    """Whether `path` is a folder with PNG/JPEG files, directly or in class subfolders."""
    if not path.is_dir():
        return False
    if any(_is_image(p) for p in path.iterdir()):
        return True
    return any(any(_is_image(p) for p in sub.iterdir()) for sub in _class_folders(path))


def _scan_image_folder(root: Path) -> tuple[list[Path], np.ndarray | None, list[str]]:
    """The image files of `root`, their labels (None when unlabelled) and the class names."""
    top = _images_in(root)
    classes = [(sub, _images_in(sub)) for sub in _class_folders(root)]
    classes = [(sub, files) for sub, files in classes if files]
    if top and classes:
        raise DataError(
            f"{root} has images at its top level (e.g. {top[0].name}) and class folders "
            f"({', '.join(sub.name + '/' for sub, _ in classes[:3])}): move the top-level images "
            "into a class folder, or point path= at a folder of one kind"
        )
    if top:
        return top, None, []
    if not classes:
        raise DataError(
            f"{root} has no {'/'.join(s[1:].upper() for s in IMAGE_SUFFIXES)} images, neither "
            "directly nor in class subfolders: check the path"
        )
    files = [f for _, class_files in classes for f in class_files]
    labels = np.concatenate(
        [np.full(len(class_files), i, dtype=np.int64) for i, (_, class_files) in enumerate(classes)]
    )
    return files, labels, [sub.name for sub, _ in classes]


def _unreadable(path: Path, error: Exception) -> DataError:
    return DataError(
        f"{path} cannot be read as an image ({type(error).__name__}: {error}); remove or "
        "replace the file"
    )


_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def _image_header(path: Path) -> tuple[tuple[int, int], str]:
    """(width, height) as displayed (EXIF rotation applied) and the Pillow mode, from the header."""
    try:
        with Image.open(path) as img:
            width, height = img.size
            if img.getexif().get(EXIF_ORIENTATION) in QUARTER_TURNS:
                width, height = height, width
            return (width, height), img.mode
    except _IMAGE_ERRORS as e:
        raise _unreadable(path, e) from None


def _fit(img: Image.Image, size: int, crop: bool) -> Image.Image:
    if not size:
        return img
    if crop:
        # ImageOps.fit crops the centre to a square, then resizes: the same as resizing the
        # shorter side to `size` and centre-cropping, with a single resampling.
        return ImageOps.fit(img, (size, size), method=Image.Resampling.BICUBIC)
    return img.resize((size, size), Image.Resampling.BICUBIC)


def _read_image(path: Path, channels: int, size: int, crop: bool) -> np.ndarray:
    """One image as float32 (C, H, W) in [0, 1]."""
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            if img.mode in SIXTEEN_BIT_MODES:
                grey = np.clip(np.asarray(img, dtype=np.float32) / 65535.0, 0.0, 1.0)
                grey = np.asarray(_fit(Image.fromarray(grey), size, crop), dtype=np.float32)
                return np.repeat(np.clip(grey, 0.0, 1.0)[None], channels, axis=0)
            img = _fit(img.convert("L" if channels == 1 else "RGB"), size, crop)
            pixels = np.asarray(img, dtype=np.uint8).reshape(img.height, img.width, channels)
    except _IMAGE_ERRORS as e:
        raise _unreadable(path, e) from None
    return pixels.transpose(2, 0, 1).astype(np.float32) / 255.0


def _split_rows(
    num_rows: int, labels: np.ndarray | None, test_fraction: float, seed: int
) -> np.ndarray:
    """Sorted test rows: per class (or over all rows when unlabelled) a seeded permutation of
    the rows, of which the first round-half-up(test_fraction x count) go to test."""
    rng = np.random.default_rng(seed)
    groups = (
        [np.arange(num_rows)]
        if labels is None
        else [np.flatnonzero(labels == c) for c in range(int(labels.max()) + 1)]
    )
    test = [
        rng.permutation(rows)[: int(math.floor(test_fraction * len(rows) + 0.5))] for rows in groups
    ]
    return np.sort(np.concatenate(test)).astype(np.int64)


@source("image_folder", matches_path=is_image_folder)
def image_folder(
    split: str,
    *,
    path: str = "",
    size: int = 0,
    crop: bool = True,
    grayscale: bool = False,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> Dataset:
    """A folder of PNG/JPEG images, unlabelled or with one subfolder per class.

    Layouts: images directly in `path` (no labels), or `path/<class>/<image>` (labels are the
    indices of the sorted class folder names, kept in `info["class_names"]`). Images deeper
    than one subfolder and hidden files are not read. EXIF rotation is applied; alpha is dropped.

    Args:
        split: "train" or "test". Per class (or over all images when unlabelled), a permutation
            seeded by `seed` puts round-half-up(test_fraction x count) images in test and the
            rest in train, so the two splits are disjoint and fixed by (folder, seed).
        path: the folder.
        size: 0 keeps the images' size (all images must then share it); N > 0 resizes the
            shorter side to N (bicubic) and centre-crops to N x N.
        crop: with `size`, False stretches the whole image to N x N instead of cropping.
        grayscale: convert to one channel; without it, images are RGB unless every image
            is single-channel (greyscale PNGs stay (1, H, W)).
        test_fraction: the share of each class held out for test, in [0, 1).
        seed: seed of the split.

    Returns:
        Dataset with x float32 (N, C, H, W) in [0, 1], int64 labels (N,) when labelled, and
        `info = {"path", "files" (relative to path, in row order), "class_names"}`.
    """
    name = "image_folder"
    root = _check_path(name, path)
    _check_count(name, "size", size, "0 keeps the images' size")
    _check_bool(name, "crop", crop)
    _check_bool(name, "grayscale", grayscale)
    _check_count(name, "seed", seed, "the split's seed")
    if (
        isinstance(test_fraction, bool)
        or not isinstance(test_fraction, (int, float))
        or not 0 <= test_fraction < 1
    ):
        raise DataError(
            f"data set {name}: test_fraction must be a number in [0, 1), got {test_fraction!r}; "
            "pass e.g. test_fraction=0.1"
        )
    files, labels, class_names = _scan_image_folder(root)
    headers = [_image_header(f) for f in files]
    if not size:
        first_size = headers[0][0]
        for f, (other_size, _) in zip(files, headers):
            if other_size != first_size:
                raise DataError(
                    f"images in {root} differ in size: {files[0].relative_to(root)} is "
                    f"{first_size[0]}x{first_size[1]}, {f.relative_to(root)} is "
                    f"{other_size[0]}x{other_size[1]} (width x height); pass size=N to resize "
                    f"the shorter side to N and centre-crop to N x N (e.g. "
                    f"size={min(*first_size, *other_size)})"
                )
    modes = {mode for _, mode in headers}
    channels = 1 if grayscale or modes <= set(SINGLE_CHANNEL_MODES) else 3

    is_test = np.zeros(len(files), dtype=bool)
    is_test[_split_rows(len(files), labels, float(test_fraction), seed)] = True
    rows = np.flatnonzero(is_test if split == "test" else ~is_test)
    if len(rows) == 0:
        raise DataError(
            f"{root}: the {split} split is empty ({len(files)} images, test_fraction="
            f"{test_fraction}); "
            + (
                "pass test_fraction > 0 to hold out a test split"
                if split == "test" and test_fraction == 0
                else "add images or change test_fraction"
            )
        )
    x = np.stack([_read_image(files[i], channels, size, crop) for i in rows])
    levels = None if modes & set(SIXTEEN_BIT_MODES) else 256
    info = {
        "path": str(root),
        "files": [files[i].relative_to(root).as_posix() for i in rows],
        "class_names": class_names,
    }
    return _labelled_images(
        root.name or name,
        split,
        torch.from_numpy(x),
        None if labels is None else torch.from_numpy(labels[rows]),
        num_classes=len(class_names) or None,
        levels=levels,
        info=info,
    )


# --- IDX (MNIST format) --------------------------------------------------------------------


def _gunzip(path: Path, data: bytes) -> tuple[bytes, bool]:
    """Decompress gzip `data` (all members); returns the bytes and whether the stream was cut."""
    out = []
    while data:
        stream = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            out.append(stream.decompress(data))
            out.append(stream.flush())
        except zlib.error as e:
            raise DataError(
                f"{path} is not a valid gzip file ({e}): delete it and download again"
            ) from None
        if not stream.eof:
            return b"".join(out), True
        data = stream.unused_data
    return b"".join(out), False


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not.

    Layout: magic number `0x00 0x00 TYPE NDIM`, then NDIM big-endian uint32 sizes, then the
    values in row-major order, big-endian, of TYPE (0x08 uint8, 0x09 int8, 0x0B int16,
    0x0C int32, 0x0D float32, 0x0E float64). The file must hold exactly that many bytes.

    Args:
        path: the file; gzip is recognised by its first bytes, not by the name.

    Returns:
        The array, shape the NDIM sizes, in native byte order.
    """
    raw = path.read_bytes()
    cut = False
    uncompressed = ""
    if raw[:2] == b"\x1f\x8b":
        raw, cut = _gunzip(path, raw)
        uncompressed = " (uncompressed)"

    def truncated(expected: int | str) -> DataError:
        return DataError(
            f"{path} is truncated: expected {expected} bytes{uncompressed}, found {len(raw):,}; "
            "delete it and download again"
        )

    if len(raw) < 4:
        raise truncated("at least 4")
    if raw[:2] != b"\x00\x00" or raw[2] not in IDX_DTYPES or raw[3] == 0:
        raise DataError(
            f"{path} is not an IDX file: its magic number is 0x{raw[:4].hex()}, IDX files start "
            "with 0x0000, a type code and the number of dimensions (0x00000803 for images, "
            "0x00000801 for labels); check that the folder holds MNIST-format files"
        )
    dtype, ndim = IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise truncated(f"at least {header}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    count = math.prod(dims)
    expected = header + count * dtype.itemsize
    if len(raw) < expected or cut:
        raise truncated(f"{expected:,}")
    if len(raw) > expected:
        raise DataError(
            f"{path} has {len(raw) - expected:,} bytes more than its header describes "
            f"(shape {dims}): it is not a valid IDX file; delete it and download again"
        )
    values = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)
    return values.astype(dtype.newbyteorder("="))


def _idx_file(folder: Path, base: str) -> Path | None:
    for candidate in (folder / base, folder / f"{base}.gz"):
        if candidate.is_file():
            return candidate
    return None


def idx_folder(path: Path) -> Path | None:
    """The folder with MNIST-format files: `path` itself or its `raw/` (torchvision's layout)."""
    for folder in (path, path / "raw"):
        if folder.is_dir() and any(
            _idx_file(folder, base) for pair in IDX_FILES.values() for base in pair
        ):
            return folder
    return None


def is_idx_folder(path: Path) -> bool:
    """Whether `path` holds MNIST-format files (the source then checks that all four are there)."""
    return idx_folder(path) is not None


def _idx_path(folder: Path, base: str) -> Path:
    found = _idx_file(folder, base)
    if found is None:
        wanted = ", ".join(f"{b}[.gz]" for pair in IDX_FILES.values() for b in pair)
        raise DataError(
            f"{folder} has no {base} (or {base}.gz): an IDX folder holds the four MNIST-format "
            f"files {wanted}; download the missing one again"
        )
    return found


def _read_idx_labels(folder: Path, split: str) -> np.ndarray:
    path = _idx_path(folder, IDX_FILES[split][1])
    labels = read_idx(path)
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(
            f"{path} is not an IDX label file: it holds {labels.dtype} of shape {labels.shape}, "
            "labels are one dimension of uint8 (magic 0x00000801); are image and label files "
            "swapped?"
        )
    return labels


def _read_idx_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, H, W) and labels uint8 (N,) of one split of an IDX folder."""
    path = _idx_path(folder, IDX_FILES[split][0])
    images = read_idx(path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{path} is not an IDX image file: it holds {images.dtype} of shape {images.shape}, "
            "images are three dimensions (N, H, W) of uint8 (magic 0x00000803)"
        )
    labels = _read_idx_labels(folder, split)
    if len(labels) != len(images):
        raise DataError(
            f"{folder}: {len(images):,} {split} images but {len(labels):,} labels; the files "
            "belong to different data sets or one is damaged: download them again"
        )
    return images, labels


def _idx_dataset(
    name: str,
    folder: Path,
    split: str,
    *,
    binarize: bool,
    limit: int,
    class_names: tuple[str, ...] | None = None,
) -> Dataset:
    _check_bool(name, "binarize", binarize)
    _check_count(name, "limit", limit, "0 reads every image")
    images, labels = _read_idx_split(folder, split)
    other = _read_idx_labels(folder, "test" if split == "train" else "train")
    # Classes from both splits, so that train and test agree on num_classes.
    num_classes = int(max(labels.max(initial=0), other.max(initial=0))) + 1
    if class_names is not None and num_classes > len(class_names):
        raise DataError(
            f"{folder}: labels go up to {num_classes - 1}, but {name} has {len(class_names)} "
            "classes: the files are not this data set's; download them again"
        )
    if class_names is not None:
        num_classes = len(class_names)
    images, labels = _first_rows(images, labels, limit)
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)  # (N, 1, H, W)
    info: dict[str, Any] = {"path": str(folder)}
    if class_names is not None:
        info["class_names"] = list(class_names)
    return _labelled_images(
        name,
        split,
        x,
        torch.from_numpy(labels.astype(np.int64)),
        num_classes=num_classes,
        levels=256,
        binarize=binarize,
        info=info,
    )


@source("idx", matches_path=is_idx_folder)
def idx(split: str, *, path: str = "", binarize: bool = False, limit: int = 0) -> Dataset:
    """MNIST-format IDX files: a folder with train-/t10k- images-idx3 and labels-idx1 files.

    Reads MNIST, Fashion-MNIST, KMNIST and other sets published in LeCun's IDX format, each file
    plain or gzipped (`.gz`). Every file is checked against its header: a truncated download
    is reported with the expected and the found size.

    Args:
        split: "train" (the train-* files) or "test" (the t10k-* files).
        path: the folder holding the four files (or holding them in `raw/`).
        binarize: as for mnist5k: train draws Bernoulli(x) afresh per batch, test holds one
            draw with seed 0.
        limit: read only the first `limit` images of the split (0: all).

    Returns:
        Dataset with x float32 (N, 1, H, W) in [0, 1] and int64 labels (N,).
    """
    given = _check_path("idx", path)
    folder = idx_folder(given) or given
    return _idx_dataset(given.name or "idx", folder, split, binarize=binarize, limit=limit)


def _downloaded(name: str, download: bool, cache_dir: str) -> Path:
    """The cached data folder of `name`, downloading it first when `download` is true."""
    from genlab.data import downloads

    _check_bool(name, "download", download)
    if not isinstance(cache_dir, (str, Path)):
        raise DataError(f"data set {name}: cache_dir must be a folder path, got {cache_dir!r}")
    if download:
        return downloads.download(name, cache_dir or None)
    folder = downloads.local_copy(name, cache_dir or None)
    if folder is None:
        root = downloads.cache_root(cache_dir or None) / name
        files = ", ".join(f.name for f in downloads.REMOTE[name].files)
        raise DataError(
            f"{name} is not in the cache {root} and download=false: run with download=true "
            f"(needs the internet), or put {files} into {root}"
        )
    return folder


@source("mnist")
def mnist(
    split: str,
    *,
    download: bool = True,
    cache_dir: str = "",
    binarize: bool = False,
    limit: int = 0,
) -> Dataset:
    """The full MNIST (60,000 train / 10,000 test 28 x 28 digits), downloaded once and cached.

    Args:
        split: "train" or "test" (the official splits).
        download: fetch the four files (11 MB) when they are not cached yet.
        cache_dir: where to keep them (default $GENLAB_CACHE or ~/.cache/genlab).
        binarize: as for mnist5k.
        limit: read only the first `limit` images of the split (0: all).

    Returns:
        Dataset with x float32 (N, 1, 28, 28) in [0, 1] and int64 labels (N,).
    """
    folder = _downloaded("mnist", download, cache_dir)
    return _idx_dataset(
        "mnist", folder, split, binarize=binarize, limit=limit, class_names=MNIST_CLASSES
    )


@source("fashion-mnist")
def fashion_mnist(
    split: str,
    *,
    download: bool = True,
    cache_dir: str = "",
    binarize: bool = False,
    limit: int = 0,
) -> Dataset:
    """Zalando's Fashion-MNIST (60,000 / 10,000 28 x 28 clothing images, 10 classes), cached.

    Args:
        split: "train" or "test" (the official splits).
        download: fetch the four files (30 MB) when they are not cached yet.
        cache_dir: where to keep them (default $GENLAB_CACHE or ~/.cache/genlab).
        binarize: as for mnist5k.
        limit: read only the first `limit` images of the split (0: all).

    Returns:
        Dataset with x float32 (N, 1, 28, 28) in [0, 1], int64 labels (N,), class names in
        `info["class_names"]`.
    """
    folder = _downloaded("fashion-mnist", download, cache_dir)
    return _idx_dataset(
        "fashion-mnist",
        folder,
        split,
        binarize=binarize,
        limit=limit,
        class_names=FASHION_MNIST_CLASSES,
    )


# --- CIFAR-10 ------------------------------------------------------------------------------


def _numpy_reconstructors() -> dict[tuple[str, str], Any]:
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct
        from numpy._core.numeric import _frombuffer
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
        from numpy.core.numeric import _frombuffer
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # Python 3 writes bytes in protocol-2 pickles as _codecs.encode(text, "latin1").
        ("_codecs", "encode"): codecs.encode,
    }
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = _reconstruct
        allowed[(f"{core}.numeric", "_frombuffer")] = _frombuffer
    return allowed


class ForbiddenPickleGlobal(pickle.UnpicklingError):
    """A pickle asked for a global outside the allow-list (so it was not loaded)."""

    def __init__(self, module: str, name: str):
        super().__init__(f"{module}.{name}")
        self.qualified_name = f"{module}.{name}"


class CifarUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild dicts of numpy arrays, bytes and lists, and nothing else.

    CIFAR-10's "python version" files are pickles, and unpickling runs whatever callable a
    pickle names: a doctored file could call `os.system`. The batches only need numpy's array
    reconstruction (`_reconstruct`/`_frombuffer`, `ndarray`, `dtype`) plus `_codecs.encode`
    (bytes in protocol-2 pickles written by Python 3); every other global is refused before it
    is imported, so loading a file can never run code.
    """

    ALLOWED = _numpy_reconstructors()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise ForbiddenPickleGlobal(module, name) from None


_PICKLE_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    AttributeError,
    OverflowError,
    MemoryError,
)


def load_cifar_pickle(path: Path) -> dict[Any, Any]:
    """Load one CIFAR batch file (a pickled dict) through `CifarUnpickler`.

    Python 2 strings come back as bytes (`encoding="bytes"`), as the CIFAR page prescribes.
    """
    try:
        with open(path, "rb") as f:
            content = CifarUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise DataError(
            f"{path} is missing: a CIFAR-10 folder holds {', '.join(CIFAR10_TRAIN_BATCHES)}, "
            f"{CIFAR10_TEST_BATCH} and {CIFAR10_META}; download the data set again"
        ) from None
    except ForbiddenPickleGlobal as e:
        raise DataError(
            f"{path} asks to call {e.qualified_name}, which a CIFAR-10 batch never contains: it "
            "is not a genuine CIFAR-10 file and was not loaded (unpickling it could run code). "
            "Delete it and download the data set again"
        ) from None
    except _PICKLE_ERRORS as e:
        raise DataError(
            f"{path} is corrupt or truncated ({type(e).__name__}: {e}): delete it and download "
            "the data set again"
        ) from None
    if not isinstance(content, dict):
        raise DataError(f"{path} holds a {type(content).__name__}, not a CIFAR-10 batch dict")
    return content


def _field(path: Path, content: dict[Any, Any], key: str) -> Any:
    for k in (key.encode(), key):
        if k in content:
            return content[k]
    raise DataError(
        f"{path} has no {key!r} entry (it has {sorted(map(str, content))}): it is not a "
        "CIFAR-10 batch file; download the data set again"
    )


def _read_cifar_batch(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 3, 32, 32) and labels int64 (N,) of one batch file."""
    content = load_cifar_pickle(path)
    data, labels = _field(path, content, "data"), _field(path, content, "labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise DataError(f"{path}: 'data' is not a uint8 (N, 3072) array; download again")
    if data.shape[1] != 3 * 32 * 32:
        raise DataError(
            f"{path}: 'data' rows hold {data.shape[1]} values, CIFAR-10 images 3072 (3 x 32 x 32)"
        )
    labels = np.asarray(labels)
    if labels.shape != (len(data),) or labels.dtype.kind not in "iu":
        raise DataError(
            f"{path}: {labels.shape[0] if labels.ndim else 0} labels for "
            f"{len(data)} images; the file is damaged: download again"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{path}: labels outside 0..{num_classes - 1}; download again")
    # Each row is the red, green and blue planes of a 32 x 32 image, each row-major.
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def cifar10_folder(path: Path) -> Path | None:
    """The CIFAR-10 batches folder at `path` or directly inside it, or None."""
    for folder in (path, path / CIFAR10_FOLDER):
        if folder.is_dir() and (
            (folder / CIFAR10_META).is_file() or (folder / CIFAR10_TRAIN_BATCHES[0]).is_file()
        ):
            return folder
    return None


def is_cifar10_folder(path: Path) -> bool:
    """Whether `path` is (or directly holds) CIFAR-10's `cifar-10-batches-py` folder."""
    return cifar10_folder(path) is not None


def read_cifar10(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images uint8 (N, 3, 32, 32), labels int64 (N,) and class names of one CIFAR-10 split."""
    meta_path = folder / CIFAR10_META
    names = _field(meta_path, load_cifar_pickle(meta_path), "label_names")
    if not isinstance(names, list) or not names:
        raise DataError(f"{meta_path}: 'label_names' is not a list of names; download again")
    class_names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    batches = CIFAR10_TRAIN_BATCHES if split == "train" else (CIFAR10_TEST_BATCH,)
    parts = [_read_cifar_batch(folder / b, len(class_names)) for b in batches]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return images, labels, class_names


@source("cifar10", matches_path=is_cifar10_folder)
def cifar10(
    split: str,
    *,
    path: str = "",
    download: bool = True,
    cache_dir: str = "",
    limit: int = 0,
) -> Dataset:
    """CIFAR-10: 50,000 train / 10,000 test 32 x 32 colour images in 10 classes.

    Reads the "python version" folder `cifar-10-batches-py` (data_batch_1..5, test_batch,
    batches.meta) through `CifarUnpickler`, which refuses anything but numpy arrays, bytes and
    lists, so a doctored file cannot run code.

    Args:
        split: "train" (data_batch_1..5) or "test" (test_batch).
        path: the `cifar-10-batches-py` folder or its parent; empty: the download cache.
        download: with no path, fetch and unpack the archive (163 MB) when it is not cached.
        cache_dir: the cache (default $GENLAB_CACHE or ~/.cache/genlab).
        limit: read only the first `limit` images of the split (0: all).

    Returns:
        Dataset with x float32 (N, 3, 32, 32) in [0, 1], int64 labels (N,) and the class
        names from batches.meta in `info["class_names"]`.
    """
    name = "cifar10"
    _check_count(name, "limit", limit, "0 reads every image")
    if path:
        given = Path(path).expanduser()
        folder = cifar10_folder(given)
        if folder is None:
            raise DataError(
                f"{given} is not a CIFAR-10 python-version folder: give the folder "
                f"{CIFAR10_FOLDER} (with data_batch_1..5, test_batch, batches.meta) or its parent"
            )
    else:
        folder = _downloaded(name, download, cache_dir)
    images, labels, class_names = read_cifar10(folder, split)
    images, labels = _first_rows(images, labels, limit)
    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    return _labelled_images(
        name,
        split,
        x,
        torch.from_numpy(labels),
        num_classes=len(class_names),
        levels=256,
        info={"path": str(folder), "class_names": class_names},
    )
