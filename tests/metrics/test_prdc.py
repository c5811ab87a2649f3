"""Precision, recall, density and coverage against the `prdc` package (Naeem et al. 2020)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from prdc import compute_prdc

import genlab.metrics.prdc as prdc_module
from genlab.core.errors import ConfigError, DataError
from genlab.metrics.prdc import prdc, precision_recall_density_coverage

KEYS = ("precision", "recall", "density", "coverage")


def _sets(seed: int, num_real: int = 300, num_fake: int = 250, dims: int = 16):
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(num_real, dims))
    fake = 1.3 * rng.normal(size=(num_fake, dims)) + 0.3
    return real, fake


@pytest.mark.parametrize("nearest_k", [1, 3, 5])
def test_matches_compute_prdc(nearest_k):
    real, fake = _sets(seed=nearest_k)
    reference = compute_prdc(real, fake, nearest_k)
    result = precision_recall_density_coverage(real, fake, nearest_k=nearest_k)
    for key in KEYS:
        assert result[key] == pytest.approx(float(reference[key]), abs=1e-6)
    # the sets differ, so every figure lies strictly inside its range
    assert 0 < result["precision"] < 1 and 0 < result["coverage"] < 1


def test_two_k_version_takes_each_pair_from_its_own_k():
    real, fake = _sets(seed=10)
    with_3, with_5 = compute_prdc(real, fake, 3), compute_prdc(real, fake, 5)
    result = prdc(real, fake)
    assert result["precision"] == pytest.approx(float(with_3["precision"]), abs=1e-6)
    assert result["recall"] == pytest.approx(float(with_3["recall"]), abs=1e-6)
    assert result["density"] == pytest.approx(float(with_5["density"]), abs=1e-6)
    assert result["coverage"] == pytest.approx(float(with_5["coverage"]), abs=1e-6)
    assert prdc(real, fake, k_pr=4, k_dc=4) == precision_recall_density_coverage(
        real, fake, nearest_k=4
    )


def test_row_blocks_give_the_same_result(monkeypatch):
    real, fake = _sets(seed=11)
    whole = prdc(real, fake)
    monkeypatch.setattr(prdc_module, "_BLOCK_ENTRIES", 1000)  # blocks of 3-4 rows
    assert prdc(real, fake) == whole


def test_identical_sets_are_fully_precise_and_covered():
    real, _ = _sets(seed=12)
    result = prdc(real, torch.from_numpy(real).float())
    assert result["precision"] == result["recall"] == result["coverage"] == 1.0


def test_large_sets_are_subsampled_with_a_warning_and_a_seed():
    real, fake = _sets(seed=13, num_real=400, num_fake=120)
    with pytest.warns(UserWarning, match="real_features has 400 samples.*subsample of 150"):
        first = prdc(real, fake, max_samples=150, seed=1)
    with pytest.warns(UserWarning):
        again = prdc(real, fake, max_samples=150, seed=1)
    assert first == again
    rng = np.random.default_rng(1)
    subsample = real[np.sort(rng.choice(400, 150, replace=False))]
    assert first == prdc(subsample, fake, max_samples=None)


def test_bad_inputs_raise_data_errors():
    real, fake = _sets(seed=14, num_real=20, num_fake=20)
    with pytest.raises(DataError, match="same feature network"):
        prdc(real, fake[:, :5])
    with pytest.raises(DataError, match="at least 6"):
        prdc(real, fake[:5])
    bad = fake.copy()
    bad[3] = np.nan
    with pytest.raises(DataError, match="NaN"):
        precision_recall_density_coverage(real, bad)
    with pytest.raises(DataError, match="empty"):
        prdc(real, np.zeros((0, 16)))
    with pytest.raises(DataError, match=r"\(N, D\)"):
        prdc(real.reshape(20, 4, 4), fake)
    with pytest.raises(ConfigError, match="k_pr"):
        prdc(real, fake, k_pr=0)
