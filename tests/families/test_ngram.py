"""ngram: normalisation, hand-computed Kneser-Ney, add-k formula, nltk cross-check, sampling."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
import torch

import genlab
from genlab.core.contract import DataSpec
from genlab.core.errors import ConfigError, DataError, GenlabError
from genlab.families.classical.ngram import NGram, NGramConfig
from tests.contract.tiny_sequence import TINY_TEXT

SMOOTHINGS = [
    {"smoothing": "kneser_ney"},
    {"smoothing": "kneser_ney", "discount": 0.3},
    {"smoothing": "modified_kneser_ney"},
    {"smoothing": "add_k", "k": 0.25},
]


def _spec(vocab_size: int, block: int = 6) -> DataSpec:
    return DataSpec(modality="text", shape=(block,), discrete_levels=vocab_size)


def _model(stream, vocab_size: int, **config) -> NGram:
    return NGram(NGramConfig(**config), _spec(vocab_size)).fit(torch.tensor(stream))


def _corpus() -> tuple[list[int], int]:
    text = "abracadabra cadabra abracad barbara ra" * 2
    chars = sorted(set(text))
    return [chars.index(c) for c in text], len(chars)


@pytest.mark.parametrize("smoothing", SMOOTHINGS, ids=lambda s: ",".join(map(str, s.values())))
@pytest.mark.parametrize("order", [1, 2, 4])
def test_next_token_probabilities_sum_to_one_for_every_context(smoothing, order):
    stream, v = _corpus()
    model = _model(stream, v, order=order, **smoothing)
    contexts = set()
    for k in range(order):
        for i in range(len(stream) - k + 1):
            contexts.add(tuple(stream[i : i + k]))
    for k in range(1, order):  # unseen contexts too
        contexts.add(tuple([v - 1] * k))
    for k in range(order):
        group = torch.tensor([c for c in contexts if len(c) == k], dtype=torch.int64)
        probs = model.next_token_probs(group.reshape(len(group), k))
        assert probs.dtype == torch.float64 and (probs > 0).all()
        assert (probs.sum(dim=1) - 1).abs().max() < 1e-12


@pytest.mark.parametrize("smoothing", SMOOTHINGS, ids=lambda s: ",".join(map(str, s.values())))
def test_log_likelihood_sums_to_one_over_all_sequences(smoothing):
    stream = [0, 1, 0, 2, 0, 1, 1, 2]
    model = _model(stream, 3, order=3, **smoothing)
    seqs = torch.tensor(list(itertools.product(range(3), repeat=4)))  # all 81 sequences
    total = model.log_likelihood(seqs, score_first=True).nats.exp().sum()
    assert abs(float(total) - 1) < 1e-12
    # scoring x_1.. given x_0: for each x_0 the continuations sum to one
    given_first = model.log_likelihood(seqs).nats.exp().reshape(3, 27).sum(dim=1)
    torch.testing.assert_close(given_first, torch.ones(3, dtype=torch.float64))


def test_kneser_ney_matches_hand_computed_values():
    # stream a b a c a b (a=0, b=1, c=2), bigrams, D = 1/2
    model = _model([0, 1, 0, 2, 0, 1], 3, order=2, smoothing="kneser_ney", discount=0.5)
    d = Fraction(1, 2)
    # continuation unigram: N1+(. w) = a: {b a, c a} 2, b: {a b} 1, c: {a c} 1; 4 bigram types
    p1 = {
        w: max(Fraction(c) - d, Fraction(0)) / 4 + d * 3 / 4 * Fraction(1, 3)
        for w, c in {0: 2, 1: 1, 2: 1}.items()
    }
    assert p1 == {0: Fraction(1, 2), 1: Fraction(1, 4), 2: Fraction(1, 4)}
    # after a: c(a b) = 2, c(a c) = 1, c(a .) = 3, 2 follower types
    after_a = {
        w: max(Fraction(c) - d, Fraction(0)) / 3 + d * 2 / 3 * p1[w]
        for w, c in enumerate([0, 2, 1])
    }
    assert after_a == {0: Fraction(1, 6), 1: Fraction(7, 12), 2: Fraction(1, 4)}
    # after b: only b a (1): (1 - 1/2) / 1 + 1/2 * p1
    after_b = {w: max(Fraction(c) - d, Fraction(0)) + d * p1[w] for w, c in enumerate([1, 0, 0])}
    expected = torch.tensor(
        [[float(after_a[w]) for w in range(3)], [float(after_b[w]) for w in range(3)]],
        dtype=torch.float64,
    )
    torch.testing.assert_close(model.next_token_probs(torch.tensor([[0], [1]])), expected)
    # the first token of a row is scored (score_first) by the raw unigram: counts 3, 2, 1 of 6
    raw = {
        w: max(Fraction(c) - d, Fraction(0)) / 6 + d * 3 / 6 * Fraction(1, 3)
        for w, c in enumerate([3, 2, 1])
    }
    first = model.next_token_probs(torch.zeros(1, 0, dtype=torch.int64))[0]
    torch.testing.assert_close(
        first, torch.tensor([float(raw[w]) for w in range(3)], dtype=torch.float64)
    )
    # log-likelihood of "a b a": log p(b | a) + log p(a | b)
    ll = model.log_likelihood(torch.tensor([[0, 1, 0]])).nats
    assert math.isclose(float(ll[0]), math.log(7 / 12) + math.log(float(after_b[0])), rel_tol=1e-12)


def test_add_k_matches_formula_and_backs_off_for_unseen_contexts():
    k = 0.5
    stream = [0, 1, 1, 2, 0, 1, 3]  # token 3 ends the stream: never a context
    v = 4
    model = _model(stream, v, order=2, smoothing="add_k", k=k)
    bigrams = {}
    for a, b in zip(stream, stream[1:]):
        bigrams[(a, b)] = bigrams.get((a, b), 0) + 1
    for h in (0, 1, 2):
        total = sum(c for (a, _), c in bigrams.items() if a == h)
        expected = [(bigrams.get((h, w), 0) + k) / (total + k * v) for w in range(v)]
        got = model.next_token_probs(torch.tensor([h]))[0]
        torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64))
    unigram = [(stream.count(w) + k) / (len(stream) + k * v) for w in range(v)]
    got = model.next_token_probs(torch.tensor([3]))[0]  # unseen context: the unigram estimate
    torch.testing.assert_close(got, torch.tensor(unigram, dtype=torch.float64))


def test_modified_kneser_ney_discounts_follow_chen_goodman():
    # a sparse random Markov chain: every count-of-counts n1..n4 is non-zero at levels 2 and 3
    rng = np.random.default_rng(0)
    v = 20
    transitions = rng.dirichlet(np.full(v, 0.3), size=v)
    stream = [0]
    for _ in range(1500):
        stream.append(int(rng.choice(v, p=transitions[stream[-1]])))

    def chen_goodman(counts):
        n1, n2, n3, n4 = (int((counts == r).sum()) for r in (1, 2, 3, 4))
        assert min(n1, n2, n3, n4) > 0
        y = n1 / (n1 + 2 * n2)
        return [1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3]

    model = _model(stream, v, order=3, smoothing="modified_kneser_ney")
    np.testing.assert_allclose(model.discounts_[2, 0], chen_goodman(model.counts_[3][1]))
    # lower levels are discounted with the count-of-counts of their continuation counts
    cont = model.continuation_[2]
    np.testing.assert_allclose(model.discounts_[1, 1], chen_goodman(cont[cont > 0]))
    plain = _model(stream, v, order=3, smoothing="kneser_ney")
    c1, c2 = int((cont == 1).sum()), int((cont == 2).sum())
    np.testing.assert_allclose(plain.discounts_[1, 1], [c1 / (c1 + 2 * c2)] * 3)


@pytest.mark.parametrize("order", [2, 3, 4])
def test_kneser_ney_terms_match_nltk_for_full_contexts(order):
    from nltk.lm import KneserNeyInterpolated
    from nltk.util import everygrams

    text = "abracadabra cadabra abracad barbara ra" * 2
    chars = sorted(set(text))
    ids = [chars.index(c) for c in text]
    model = _model(ids, len(chars), order=order, smoothing="kneser_ney", discount=0.1)
    lm = KneserNeyInterpolated(order, discount=0.1)
    lm.fit([list(everygrams(list(text), max_len=order))], vocabulary_text=list(text))
    checked = 0
    for i in range(len(text) - order + 2):
        h = tuple(text[i : i + order - 1])
        for w in chars:
            terms = model.interpolation_terms([chars.index(c) for c in h], chars.index(w))
            # levels order..2 (nltk's lowest level is an undiscounted continuation unigram
            # without the uniform distribution; see the ngram module docstring)
            for level, (alpha, gamma) in enumerate(terms[:-1]):
                ctx = h[level:]
                ref = lm.estimator.alpha_gamma(w, ctx) if lm.counts[ctx] else (0.0, 1.0)
                assert math.isclose(alpha, ref[0], abs_tol=1e-15)
                assert math.isclose(gamma, ref[1], abs_tol=1e-15)
                checked += 1
            # the bottom level is nltk's continuation count ratio, discounted and interpolated
            # with the uniform distribution
            cont, total = lm.estimator._continuation_counts(w)
            types = len({x for _, x in zip(text, text[1:])})  # tokens with N1+(. w) > 0
            alpha, gamma = terms[-1]
            assert math.isclose(alpha, max(cont - 0.1, 0) / total, abs_tol=1e-15)
            assert math.isclose(gamma, 0.1 * types / total, abs_tol=1e-15)
    assert checked > 100


def _text(split: str, **options):
    return genlab.data.load("text", split=split, path=str(TINY_TEXT), block_size=16, **options)


def test_held_out_perplexity_is_finite_and_beats_uniform():
    train, test = _text("train"), _text("test")
    model = genlab.create("ngram", spec=train.spec, order=4).fit(train)
    ppl = model.perplexity(test.x)
    stream_ppl = model.perplexity(test.info["tokens"])
    v = train.spec.discrete_levels
    assert math.isfinite(ppl) and 1 < ppl < v / 4
    assert math.isfinite(stream_ppl) and stream_ppl < v / 4
    ll = model.log_likelihood(test.x)
    assert ll.kind == "exact" and ll.details["tokens_scored"] == 15
    assert math.isclose(math.exp(-ll.nats.sum().item() / (15 * len(test.x))), ppl, rel_tol=1e-12)


def test_sampling_uses_the_shared_decoding_controls():
    train = _text("train")
    model = genlab.create("ngram", spec=train.spec, order=3).fit(train)
    spec = train.spec
    g = torch.Generator().manual_seed(0)
    out = model.sample(4, generator=g)
    assert out.shape == (4, 16) and out.dtype == torch.int64
    # greedy (temperature <= 0) follows the argmax chain of next_token_probs
    greedy = model.sample(2, prompt="To be", max_new_tokens=6, temperature=0)
    ids = greedy[0].tolist()
    for t in range(5, len(ids)):
        assert ids[t] == int(model.next_token_probs(torch.tensor(ids[:t]))[0].argmax())
    assert torch.equal(greedy[0], greedy[1])
    top1 = model.sample(2, prompt="To be", max_new_tokens=6, top_k=1, generator=g)
    assert torch.equal(top1, greedy)
    # stop strings end a row; streaming sees every step
    seen = []
    stopped = model.sample(
        3, prompt="The", max_new_tokens=40, stop="\n", stream=seen.append, generator=g
    )
    texts = genlab.data.text.decode_batch(spec, stopped)
    assert all(t.count("\n") <= 1 for t in texts) and len(seen) == stopped.shape[1] - 3


def test_save_and_load_keep_probabilities(tmp_path):
    train = _text("train")
    model = genlab.create("ngram", spec=train.spec, order=3, smoothing="modified_kneser_ney")
    model.fit(train)
    model.save(tmp_path / "m")
    loaded = genlab.load(tmp_path / "m")
    ctx = train.x[:5, :2]
    assert torch.equal(model.next_token_probs(ctx), loaded.next_token_probs(ctx))


def test_bad_input_gives_clear_errors():
    with pytest.raises(ConfigError, match="order"):
        NGramConfig(order=0)
    with pytest.raises(ConfigError, match="kneser_ney"):
        NGramConfig(smoothing="add_k", discount=0.5)
    with pytest.raises(ConfigError, match="discount"):
        NGramConfig(smoothing="kneser_ney", discount=1.5)
    with pytest.raises(ConfigError, match="k must"):
        NGramConfig(smoothing="add_k", k=0)
    with pytest.raises(GenlabError, match="not fitted"):
        NGram(NGramConfig(), _spec(3)).sample(2)
    with pytest.raises(DataError, match="no tokens"):
        NGram(NGramConfig(), _spec(3)).fit(torch.zeros(1, 0, dtype=torch.int64))
    with pytest.raises(DataError, match="spec"):
        NGram(NGramConfig()).fit(torch.tensor([0, 1, 2]))
    with pytest.raises(ConfigError, match="too high"):
        NGram(NGramConfig(order=8), _spec(256)).fit(torch.tensor([0, 1, 255]))
    model = _model([0, 1, 2, 0, 1], 3, order=2)
    with pytest.raises(DataError, match="no token to score"):
        model.log_likelihood(torch.zeros(1, 0, dtype=torch.int64), score_first=True)
    with pytest.raises(DataError, match="no token to score"):
        model.log_likelihood(torch.zeros(2, 1, dtype=torch.int64))
    with pytest.raises(DataError, match=r"\[0, 3\)"):
        model.log_likelihood(torch.tensor([[0, 3]]))
    with pytest.raises(DataError, match="integer"):
        model.log_likelihood(torch.zeros(1, 3))
    train = _text("train")
    text_model = genlab.create("ngram", spec=train.spec, order=2).fit(train)
    with pytest.raises(DataError, match="outside the model's vocabulary"):
        text_model.sample(1, prompt="Zebra Q!")
    with pytest.raises(ConfigError, match="top_p"):
        text_model.sample(1, top_p=1.5)
    with pytest.raises(ConfigError, match="no option 'beams'"):
        text_model.sample(1, beams=3)
    with pytest.raises(DataError, match="token ids"):
        genlab.create("ngram").fit(genlab.data.load("moons", num_samples=50))
