"""Text metrics on small cases counted by hand."""

from __future__ import annotations

import math
import random

import pytest
from sacrebleu.metrics import BLEU

from genlab.core.errors import ConfigError, DataError
from genlab.metrics.text import bleu, chrf, distinct_n, rouge, self_bleu


def test_bleu_of_identical_text_is_100():
    text = "the cat sat on the mat"
    assert bleu([text], [text]) == pytest.approx(100.0)
    assert bleu([text, "a dog ran"], [[text, "other"], ["a dog ran"]]) == pytest.approx(100.0)


def test_bleu_by_hand_precisions_and_brevity_penalty():
    # hypothesis 6 words, reference 7: "the red" is missing from the hypothesis.
    # 1-grams 6/6; 2-grams the cat, cat sat, sat on, on the match, the mat does not: 4/5;
    # 3-grams 3/4 (on the mat fails); 4-grams 2/3 (sat on the mat fails);
    # brevity penalty exp(1 - 7/6).
    score = bleu(["the cat sat on the mat"], ["the cat sat on the red mat"])
    expected = 100 * math.exp(1 - 7 / 6) * (1 * 4 / 5 * 3 / 4 * 2 / 3) ** 0.25
    assert score == pytest.approx(expected, rel=1e-9)


def test_bleu_takes_a_variable_number_of_references_per_hypothesis():
    # the second reference of the first hypothesis is its exact copy, so BLEU is 100
    refs = [["a b c d x", "a b c d"], ["e f g h"]]
    assert bleu(["a b c d", "e f g h"], refs) == pytest.approx(100.0)


def test_chrf_identical_and_disjoint():
    assert chrf(["abcdef ghi"], ["abcdef ghi"]) == pytest.approx(100.0)
    assert chrf(["abc"], ["xyz"]) == pytest.approx(0.0)
    assert chrf(["abcdef ghi"], ["abcdef ghi"], word_order=2) == pytest.approx(100.0)
    close = chrf(["the cat sat"], ["the cat sat down"])
    far = chrf(["the dog ran"], ["the cat sat down"])
    assert 0 < far < close < 100


def test_rouge_by_hand():
    # hypothesis the cat sat on the mat (6), reference the cat is on a mat (6):
    # ROUGE-1 clipped overlap the, cat, on, mat = 4 → P = R = F = 4/6;
    # ROUGE-2 only "the cat" is shared: 1/5; ROUGE-L LCS the cat on mat = 4 → 4/6.
    scores = rouge(["the cat sat on the mat"], ["the cat is on a mat"])
    assert scores["rouge1"] == pytest.approx(4 / 6)
    assert scores["rouge2"] == pytest.approx(1 / 5)
    assert scores["rougeL"] == pytest.approx(4 / 6)


def test_rouge_stems_and_averages_and_takes_the_best_reference():
    assert rouge(["cats"], ["cat"], ["rouge1"])["rouge1"] == pytest.approx(1.0)
    assert rouge(["cats"], ["cat"], ["rouge1"], use_stemmer=False)["rouge1"] == 0.0
    # mean of 1 and 0
    assert rouge(["a b", "c d"], ["a b", "x y"], ["rouge1"])["rouge1"] == pytest.approx(0.5)
    assert rouge(["a b"], [["x y", "a b"]], ["rouge1"])["rouge1"] == pytest.approx(1.0)


def test_rouge_rejects_unknown_type():
    with pytest.raises(ConfigError, match="rougeX"):
        rouge(["a"], ["a"], ["rougeX"])


def test_distinct_n_by_hand():
    texts = ["a b a b", "a c"]
    # unigrams a b a b a c: {a, b, c} 3 of 6
    assert distinct_n(texts, 1) == pytest.approx(3 / 6)
    # bigrams "a b", "b a", "a b" | "a c": 3 unique of 4 (none across texts)
    assert distinct_n(texts, 2) == pytest.approx(3 / 4)
    # characters a b a b: ab, ba, ab → 2 of 3
    assert distinct_n(["abab"], 2, unit="char") == pytest.approx(2 / 3)
    assert distinct_n(["x y z"], 3) == 1.0


def test_distinct_n_errors():
    with pytest.raises(DataError, match="smaller n"):
        distinct_n(["a b"], 3)
    with pytest.raises(ConfigError):
        distinct_n(["a b"], 0)
    with pytest.raises(ConfigError, match="unit"):
        distinct_n(["a b"], 1, unit="byte")


def test_self_bleu_identical_and_disjoint():
    assert self_bleu(["the cat sat on the mat"] * 3) == pytest.approx(100.0)
    assert self_bleu(["a b c d", "e f g h", "i j k l"]) == 0.0


def test_self_bleu_equals_sentence_bleu_against_the_others():
    """The shared n-gram index gives exactly sacrebleu's per-text sentence BLEU."""
    rng = random.Random(0)
    words = [f"w{i}" for i in range(12)]
    texts = [" ".join(rng.choices(words, k=rng.randint(1, 10))) for _ in range(40)]
    metric = BLEU(effective_order=True)
    per_text = [
        metric.sentence_score(texts[i], texts[:i] + texts[i + 1 :]).score for i in range(len(texts))
    ]
    assert self_bleu(texts) == pytest.approx(sum(per_text) / len(texts), rel=1e-12)


def test_self_bleu_subsamples_reproducibly():
    rng = random.Random(1)
    texts = [" ".join(rng.choices("abcdefgh", k=8)) for _ in range(50)]
    a = self_bleu(texts, max_texts=10, seed=3)
    assert a == self_bleu(texts, max_texts=10, seed=3)
    assert a != self_bleu(texts, max_texts=10, seed=4)
    with pytest.raises(DataError, match="at least two"):
        self_bleu(["one text"])


def test_reference_errors_name_the_fix():
    with pytest.raises(DataError, match="one reference"):
        bleu(["a", "b"], ["a"])
    with pytest.raises(DataError, match="single string"):
        bleu("a b", ["a b"])
    with pytest.raises(DataError, match="at least one"):
        chrf([], [])
