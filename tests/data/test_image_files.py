"""File-reading image sources: image folders, IDX files, CIFAR-10 batches (all written here)."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.core.errors import DataError
from genlab.data import load, resolve_source
from genlab.data.image_files import CifarUnpickler, read_idx

# --- writers of the real formats, shared with test_downloads ---------------------------------


def write_image(path: Path, pixels: np.ndarray) -> Path:
    """Save uint8 (H, W) or (H, W, 3) pixels as PNG or JPEG (by suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def idx_bytes(values: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array: magic 0x0000 0x08 NDIM, big-endian sizes, the bytes."""
    assert values.dtype == np.uint8
    header = bytes([0, 0, 0x08, values.ndim]) + struct.pack(f">{values.ndim}I", *values.shape)
    return header + values.tobytes()


def idx_arrays(seed: int = 0, num_train: int = 12, num_test: int = 5, side: int = 4):
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (num_train, side, side), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(num_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (num_test, side, side), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(num_test) % 10).astype(np.uint8),
    }


def write_idx_folder(folder: Path, *, gz: bool = True, seed: int = 0) -> dict[str, np.ndarray]:
    """The four MNIST-format files of a tiny data set; returns the arrays by base name."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = idx_arrays(seed)
    for base, values in arrays.items():
        data = idx_bytes(values)
        if gz:
            (folder / f"{base}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / base).write_bytes(data)
    return arrays


CIFAR_NAMES = [f"class{i}".encode() for i in range(10)]


def cifar_batch(seed: int, num: int) -> dict[bytes, object]:
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": f"batch {seed}".encode(),
        b"labels": [int(v) for v in rng.integers(0, 10, num)],
        b"data": rng.integers(0, 256, (num, 3072), dtype=np.uint8),
        b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(num)],
    }


def write_cifar_folder(folder: Path, *, protocol: int = 2, per_batch: int = 3) -> dict[str, dict]:
    """A tiny `cifar-10-batches-py` folder laid out and pickled like the real one."""
    folder.mkdir(parents=True, exist_ok=True)
    batches = {f"data_batch_{i}": cifar_batch(i, per_batch) for i in range(1, 6)}
    batches["test_batch"] = cifar_batch(0, per_batch + 1)
    meta = {b"num_cases_per_batch": per_batch, b"label_names": CIFAR_NAMES, b"num_vis": 3072}
    for name, content in {**batches, "batches.meta": meta}.items():
        (folder / name).write_bytes(pickle.dumps(content, protocol=protocol))
    return batches


# --- image folders -------------------------------------------------------------------------


def _labelled_folder(root: Path) -> dict[str, np.ndarray]:
    """cats (6 PNG) and dogs (4 PNG), 6 wide x 5 high, RGB; returns pixels by relative path."""
    rng = np.random.default_rng(0)
    pixels = {}
    for name, count in (("cats", 6), ("dogs", 4)):
        for i in range(count):
            relative = f"{name}/{i:02d}.png"
            pixels[relative] = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
            write_image(root / relative, pixels[relative])
    return pixels


def test_image_folder_with_class_folders(tmp_path):
    root = tmp_path / "pets"
    pixels = _labelled_folder(root)
    assert resolve_source(str(root)) == ("image_folder", {"path": str(root)})
    train = load(str(root), "train", test_fraction=0.25)
    test = load(str(root), "test", test_fraction=0.25)
    assert train.x.shape == (7, 3, 5, 6) and test.x.shape == (3, 3, 5, 6)
    for data in (train, test):
        assert data.x.dtype == torch.float32 and data.labels.dtype == torch.int64
        assert data.spec.modality == "image" and data.spec.num_classes == 2
        assert data.spec.value_range == (0.0, 1.0) and data.spec.discrete_levels == 256
        assert data.spec.name == "pets"
        assert data.info["class_names"] == ["cats", "dogs"]
        for row, relative in enumerate(data.info["files"]):
            expected = torch.from_numpy(pixels[relative].transpose(2, 0, 1) / 255.0).float()
            assert torch.equal(data.x[row], expected)
            assert data.labels[row] == (0 if relative.startswith("cats/") else 1)
    # Disjoint, complete, stratified: round(0.25 x 6) = 2 cats and round(0.25 x 4) = 1 dog.
    assert sorted(train.info["files"] + test.info["files"]) == sorted(pixels)
    assert torch.bincount(test.labels).tolist() == [2, 1]
    # The split is a function of the seed.
    again = load(str(root), "test", test_fraction=0.25)
    assert again.info["files"] == test.info["files"]
    splits = {
        tuple(load(str(root), "test", test_fraction=0.25, seed=s).info["files"]) for s in range(6)
    }
    assert len(splits) > 1


def test_unlabelled_folder_greyscale_and_jpeg(tmp_path):
    root = tmp_path / "flat"
    grey = np.arange(20, dtype=np.uint8).reshape(4, 5) * 10
    for i in range(5):
        write_image(root / f"{i}.png", grey + i)
    data = load(str(root), "train", test_fraction=0.2)
    assert data.labels is None and data.spec.num_classes is None
    assert data.x.shape == (4, 1, 4, 5)  # every image single-channel: stays one channel
    assert len(load(str(root), "test", test_fraction=0.2)) == 1

    colour = tmp_path / "colour"
    write_image(colour / "a.jpg", np.full((4, 4, 3), (200, 30, 30), dtype=np.uint8))
    write_image(colour / "b.jpeg", np.full((4, 4, 3), (30, 30, 200), dtype=np.uint8))
    rgb = load(str(colour), "train", test_fraction=0.0)
    assert rgb.x.shape == (2, 3, 4, 4)
    assert abs(float(rgb.x[0, 0].mean()) - 200 / 255) < 0.05  # JPEG is lossy, but close
    mono = load(str(colour), "train", test_fraction=0.0, grayscale=True)
    assert mono.x.shape == (2, 1, 4, 4)


def test_sixteen_bit_png_keeps_its_precision(tmp_path):
    values = np.array([[0, 1000], [40000, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    data = load(str(tmp_path), "train", test_fraction=0.0)
    assert data.x.shape == (1, 1, 2, 2) and data.spec.discrete_levels is None
    assert torch.allclose(data.x[0, 0].double(), torch.from_numpy(values / 65535.0), atol=1e-6)


def test_mixed_sizes_need_size_and_size_resizes_and_crops(tmp_path):
    root = tmp_path / "mixed"
    write_image(root / "a.png", np.zeros((4, 4, 3), dtype=np.uint8))
    stripes = np.zeros((4, 12, 3), dtype=np.uint8)
    stripes[:, :4] = (255, 0, 0)  # red left third
    stripes[:, 4:8] = (0, 0, 255)  # blue middle third
    stripes[:, 8:] = (255, 0, 0)  # red right third
    write_image(root / "b.png", stripes)
    with pytest.raises(DataError, match=r"a\.png is 4x4, b\.png is 12x4.*size=") as error:
        load(str(root))
    assert "size=4" in str(error.value)

    cropped = load(str(root), size=4, test_fraction=0.0)
    assert cropped.x.shape == (2, 3, 4, 4)
    middle = cropped.x[1]  # centre crop of b: the blue third
    assert middle[2].min() > 0.9 and middle[0].max() < 0.1
    stretched = load(str(root), size=4, crop=False, test_fraction=0.0)
    assert stretched.x.shape == (2, 3, 4, 4)
    assert stretched.x[1, 0, :, 0].min() > 0.9  # the red edges survive when not cropping


def test_image_folder_errors_name_the_file_and_the_fix(tmp_path):
    root = tmp_path / "broken"
    write_image(root / "good.png", np.zeros((3, 3), dtype=np.uint8))
    (root / "bad.png").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"bad\.png cannot be read as an image.*remove or replace"):
        load(str(root))

    both = tmp_path / "both"
    write_image(both / "top.png", np.zeros((3, 3), dtype=np.uint8))
    write_image(both / "cls" / "x.png", np.zeros((3, 3), dtype=np.uint8))
    with pytest.raises(DataError, match="top-level images into a class folder"):
        load("image_folder", path=str(both))

    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no PNG/JPG/JPEG images"):
        load("image_folder", path=str(tmp_path / "empty"))
    with pytest.raises(DataError, match="not a folder"):
        load("image_folder", path=str(tmp_path / "missing"))

    ok = tmp_path / "ok"
    for i in range(3):
        write_image(ok / f"{i}.png", np.zeros((3, 3), dtype=np.uint8))
    with pytest.raises(DataError, match=r"test_fraction must be a number in \[0, 1\)"):
        load(str(ok), test_fraction=1.0)
    with pytest.raises(DataError, match="pass test_fraction > 0"):
        load(str(ok), "test", test_fraction=0.0)
    with pytest.raises(DataError, match="unknown option"):
        load(str(ok), sizes=3)


# --- IDX -----------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_reads_the_four_files(tmp_path, gz):
    folder = tmp_path / "fashion"
    arrays = write_idx_folder(folder, gz=gz)
    assert resolve_source(str(folder))[0] == "idx"
    train, test = load(str(folder), "train"), load(str(folder), "test")
    assert train.x.shape == (12, 1, 4, 4) and test.x.shape == (5, 1, 4, 4)
    expected = torch.from_numpy(arrays["train-images-idx3-ubyte"] / 255.0).float().unsqueeze(1)
    assert torch.equal(train.x, expected)
    assert train.labels.dtype == torch.int64
    assert train.labels.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert train.spec.num_classes == test.spec.num_classes == 10
    assert train.spec.discrete_levels == 256 and train.spec.name == "fashion"

    limited = load(str(folder), "train", limit=3)
    assert torch.equal(limited.x, train.x[:3])
    binary_train = load(str(folder), "train", binarize=True)
    binary_test = load(str(folder), "test", binarize=True)
    assert binary_train.dynamic_binarize and binary_train.spec.discrete_levels == 2
    assert not binary_test.dynamic_binarize
    assert torch.all((binary_test.x == 0) | (binary_test.x == 1))
    assert torch.equal(binary_test.x, load(str(folder), "test", binarize=True).x)


def test_idx_folder_in_torchvision_layout(tmp_path):
    write_idx_folder(tmp_path / "MNIST" / "raw")
    assert resolve_source(str(tmp_path / "MNIST"))[0] == "idx"
    data = load(str(tmp_path / "MNIST"), "test")
    assert len(data) == 5 and data.spec.name == "MNIST"


def test_truncated_idx_file_says_expected_and_found_sizes(tmp_path):
    folder = tmp_path / "cut"
    write_idx_folder(folder, gz=False)
    path = folder / "train-images-idx3-ubyte"
    full = path.read_bytes()
    path.write_bytes(full[:-10])
    message = (
        rf"train-images-idx3-ubyte is truncated: expected {len(full)} bytes, "
        rf"found {len(full) - 10}; delete it and download again"
    )
    with pytest.raises(DataError, match=message):
        load(str(folder), "train")

    gz_folder = tmp_path / "cut_gz"
    write_idx_folder(gz_folder)
    gz_path = gz_folder / "t10k-images-idx3-ubyte.gz"
    compressed = gz_path.read_bytes()
    gz_path.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(DataError, match=r"is truncated: expected 96 bytes \(uncompressed\), found"):
        load(str(gz_folder), "test")


def test_idx_format_errors(tmp_path):
    folder = tmp_path / "bad"
    write_idx_folder(folder, gz=False)
    (folder / "train-images-idx3-ubyte").write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(DataError, match="not a valid gzip file"):
        load(str(folder), "train")
    (folder / "train-images-idx3-ubyte").write_bytes(b"PK\x03\x04" + bytes(40))
    with pytest.raises(DataError, match="not an IDX file: its magic number is 0x504b0304"):
        load(str(folder), "train")
    (folder / "train-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((2, 3), np.uint8)) + b"x")
    with pytest.raises(DataError, match="1 bytes more than its header describes"):
        load(str(folder), "train")
    (folder / "train-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((2, 3, 3), np.uint8)))
    with pytest.raises(DataError, match="2 train images but 12 labels"):
        load(str(folder), "train")
    os.remove(folder / "t10k-labels-idx1-ubyte")
    with pytest.raises(DataError, match=r"has no t10k-labels-idx1-ubyte \(or .*\.gz\)"):
        load(str(folder), "test")


def test_read_idx_other_types(tmp_path):
    values = (np.arange(6).reshape(2, 3) - 3).astype(">i4")
    data = bytes([0, 0, 0x0C, 2]) + struct.pack(">2I", 2, 3) + values.tobytes()
    (tmp_path / "ints").write_bytes(data)
    read = read_idx(tmp_path / "ints")
    assert read.dtype == np.int32 and read.tolist() == values.tolist()


# --- CIFAR-10 ------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar10_folder(tmp_path, protocol):
    folder = tmp_path / "cifar-10-batches-py"
    batches = write_cifar_folder(folder, protocol=protocol)
    assert resolve_source(str(folder))[0] == "cifar10"
    assert resolve_source(str(tmp_path))[0] == "cifar10"  # the parent works too
    train, test = load(str(folder), "train"), load(str(tmp_path), "test")
    assert train.x.shape == (15, 3, 32, 32) and test.x.shape == (4, 3, 32, 32)
    assert train.x.dtype == torch.float32 and 0 <= train.x.min() and train.x.max() <= 1
    assert train.spec.num_classes == 10 and train.spec.discrete_levels == 256
    assert train.info["class_names"] == [n.decode() for n in CIFAR_NAMES]
    first = batches["data_batch_1"]
    # Row layout: 1024 red values, then green, then blue, each 32 x 32 row-major.
    assert torch.equal(train.x[0, 1, 0, 0], torch.tensor(first[b"data"][0, 1024] / 255.0).float())
    assert torch.equal(train.x[0, 2, 31, 31], torch.tensor(first[b"data"][0, 3071] / 255.0).float())
    expected_labels = [v for i in range(1, 6) for v in batches[f"data_batch_{i}"][b"labels"]]
    assert train.labels.tolist() == expected_labels
    assert len(load(str(folder), "train", limit=4)) == 4


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned_by_pickle",))


def test_restricted_unpickler_refuses_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_folder(folder)
    evil = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": _Exploit()}
    (folder / "test_batch").write_bytes(pickle.dumps(evil, protocol=2))
    with pytest.raises(DataError, match=r"asks to call (posix|nt|os)\.system.*not loaded"):
        load(str(folder), "test")
    assert not (tmp_path / "pwned_by_pickle").exists()

    (folder / "test_batch").write_bytes(pickle.dumps({b"f": eval}, protocol=2))
    with pytest.raises(DataError, match=r"(__builtin__|builtins)\.eval"):
        load(str(folder), "test")

    with open(folder / "data_batch_1", "rb") as f:  # the genuine layout passes
        assert set(CifarUnpickler(f, encoding="bytes").load()) >= {b"data", b"labels"}


def test_cifar10_damaged_files(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_folder(folder)
    content = (folder / "data_batch_3").read_bytes()
    (folder / "data_batch_3").write_bytes(content[: len(content) // 2])
    with pytest.raises(DataError, match=r"data_batch_3 is corrupt or truncated"):
        load(str(folder), "train")
    os.remove(folder / "data_batch_3")
    with pytest.raises(DataError, match=r"data_batch_3 is missing"):
        load(str(folder), "train")
    (folder / "test_batch").write_bytes(pickle.dumps({b"labels": [1]}))
    with pytest.raises(DataError, match="no 'data' entry"):
        load(str(folder), "test")
    with pytest.raises(DataError, match="not a CIFAR-10 python-version folder"):
        load("cifar10", path=str(tmp_path / "elsewhere"))
