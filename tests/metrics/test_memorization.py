"""Memorization metrics: DCR, exact copies, n-gram overlap and membership inference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genlab.core.contract import LogLikelihood
from genlab.core.errors import ConfigError, DataError
from genlab.metrics.memorization import (
    dcr_report,
    distance_to_closest_record,
    exact_copy_rate,
    membership_inference_auc,
    ngram_overlap,
)


def test_dcr_by_hand_for_each_metric():
    train = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    candidates = torch.tensor([[0.0, 0.0], [3.0, 0.0], [6.0, 8.0]])
    # (3, 0) is 3 from the origin and 4 from (3, 4); (6, 8) is (3, 4) away from (3, 4)
    expected = {"euclidean": [0.0, 3.0, 5.0], "manhattan": [0.0, 3.0, 7.0], "chebyshev": [0, 3, 4]}
    for metric, distances in expected.items():
        d = distance_to_closest_record(candidates, train, metric=metric)
        torch.testing.assert_close(d, torch.tensor(distances, dtype=torch.float32))
        one_by_one = distance_to_closest_record(candidates, train, metric=metric, batch_size=1)
        torch.testing.assert_close(one_by_one, d)


def test_dcr_of_exact_copies_is_exactly_zero_in_high_dimension():
    gen = torch.Generator().manual_seed(0)
    train = torch.randn(300, 64, generator=gen) * 100
    d = distance_to_closest_record(train[:50], train, batch_size=128)
    assert torch.equal(d, torch.zeros(50))
    images = torch.rand(20, 1, 8, 8, generator=gen)  # (N, C, H, W) is flattened
    assert torch.equal(distance_to_closest_record(images, images), torch.zeros(20))


def test_dcr_report_copies_and_fresh_samples():
    gen = torch.Generator().manual_seed(0)
    train = torch.randn(2000, 4, generator=gen)
    holdout = torch.randn(500, 4, generator=gen)
    copies = dcr_report(train[:500], train, holdout)
    assert copies["generated_median"] == 0.0 and copies["generated_p5"] == 0.0
    assert copies["holdout_median"] > 0
    assert copies["median_ratio"] == 0.0 and copies["p5_ratio"] == 0.0
    fresh = dcr_report(torch.randn(500, 4, generator=gen), train, holdout)
    assert 0.8 < fresh["median_ratio"] < 1.25
    leaked = dcr_report(train[:10], train, train[:10])
    assert math.isnan(leaked["median_ratio"])


def test_dcr_errors():
    train = torch.zeros(5, 3)
    with pytest.raises(DataError, match="4 values per row but train has 3"):
        distance_to_closest_record(torch.zeros(2, 4), train)
    with pytest.raises(DataError, match="NaN"):
        distance_to_closest_record(torch.tensor([[math.nan, 0.0, 0.0]]), train)
    with pytest.raises(DataError, match="no rows"):
        distance_to_closest_record(torch.zeros(0, 3), train)
    with pytest.raises(DataError, match=r"x\[:, None\]"):
        distance_to_closest_record(torch.zeros(3), train)
    with pytest.raises(ConfigError, match="euclidean"):
        distance_to_closest_record(train, train, metric="cosine")


def test_exact_copy_rate_on_strings():
    assert exact_copy_rate(["a", "b", "c", "a"], ["a", "x"]) == pytest.approx(2 / 4)
    assert exact_copy_rate(["a "], ["a"]) == 0.0  # no normalisation
    with pytest.raises(ConfigError, match="strings are compared exactly"):
        exact_copy_rate(["a"], ["a"], atol=0.1)
    with pytest.raises(DataError, match="both"):
        exact_copy_rate(["a"], torch.zeros(1, 1))


def test_exact_copy_rate_on_tensors():
    gen = torch.Generator().manual_seed(0)
    train = torch.randn(100, 5, generator=gen)
    generated = torch.cat([train[:3], torch.randn(1, 5, generator=gen)])
    assert exact_copy_rate(generated, train) == pytest.approx(3 / 4)
    assert exact_copy_rate(np.asarray(generated), np.asarray(train)) == pytest.approx(3 / 4)
    # float64 copies of float32 rows are the same values
    assert exact_copy_rate(train[:4].double(), train) == 1.0
    assert exact_copy_rate(torch.tensor([[-0.0, 1.0]]), torch.tensor([[0.0, 1.0]])) == 1.0
    nudged = train[:10] + 1e-4
    assert exact_copy_rate(nudged, train) == 0.0
    assert exact_copy_rate(nudged, train, atol=1e-3) == 1.0


def test_ngram_overlap_by_hand():
    # generated bigrams a b, b c, c d; training has a b and b c
    assert ngram_overlap(["a b c d"], ["x a b c y"], n=2) == pytest.approx(2 / 3)
    # character trigrams abc, bcd; training has abc
    assert ngram_overlap(["abcd"], ["xabc"], n=3, unit="char") == pytest.approx(1 / 2)
    # n-grams do not cross texts: "b c" is not in the training corpus
    assert ngram_overlap(["b c"], ["a b", "c d"], n=2) == 0.0
    # repeated n-grams count each time
    assert ngram_overlap(["a a a", "z z"], ["a a"], n=2) == pytest.approx(2 / 3)


def test_ngram_overlap_errors():
    with pytest.raises(DataError, match="smaller n"):
        ngram_overlap(["a b"], ["a b c"], n=8)
    with pytest.raises(DataError, match="train_texts"):
        ngram_overlap(["a b"], [], n=1)


def test_membership_auc_perfect_and_reversed():
    result = membership_inference_auc(torch.tensor([5.0, 6.0, 7.0]), [1.0, 2.0, 3.0])
    assert result == {"auc": 1.0, "advantage": 1.0, "threshold": 5.0}
    assert membership_inference_auc([1.0, 2.0], [5.0, 6.0])["auc"] == 0.0


def test_membership_auc_same_distribution_is_chance():
    gen = torch.Generator().manual_seed(0)
    members = LogLikelihood(torch.randn(4000, generator=gen), "exact")
    others = LogLikelihood(torch.randn(4000, generator=gen), "exact")
    result = membership_inference_auc(members, others)
    assert abs(result["auc"] - 0.5) < 0.03
    assert result["advantage"] < 0.06


def test_membership_auc_errors():
    with pytest.raises(DataError, match="empty"):
        membership_inference_auc([], [1.0])
    with pytest.raises(DataError, match="NaN"):
        membership_inference_auc([math.nan, 1.0], [1.0])
    with pytest.raises(DataError, match="shape"):
        membership_inference_auc(torch.zeros(2, 2), [1.0])
    with pytest.raises(DataError, match="lower_bound"):
        membership_inference_auc(
            LogLikelihood(torch.zeros(2), "exact"), LogLikelihood(torch.zeros(2), "lower_bound")
        )
