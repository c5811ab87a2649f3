"""charrnn: exact likelihood (normalises; full pass = step by step), decoding, tying, training."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import genlab
from genlab.core.contract import DataSpec
from genlab.core.errors import ConfigError, DataError
from genlab.families.autoregressive.charrnn import CharRNN, CharRNNConfig
from tests.contract.tiny_sequence import TINY_TEXT


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny recurrent steps: a second thread only adds contention on a shared machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _text(split: str, **options):
    return genlab.data.load("text", split=split, path=str(TINY_TEXT), block_size=16, **options)


def _small(cell: str = "lstm", vocab: int = 3, **config) -> CharRNN:
    torch.manual_seed(0)
    spec = DataSpec(modality="text", shape=(4,), discrete_levels=vocab)
    cfg = {"cell": cell, "embed_dim": 4, "hidden": 6, "num_layers": 2, **config}
    return CharRNN(CharRNNConfig(**cfg), spec).eval()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_log_likelihood_normalises_over_all_continuations(cell):
    model = _small(cell, tie_weights=True)
    seqs = torch.tensor(list(itertools.product(range(3), repeat=4)))  # (81, 4)
    ll = model.log_likelihood(seqs)
    assert ll.kind == "exact" and ll.details["tokens_scored"] == 3
    totals = ll.nats.double().exp().reshape(3, 27).sum(dim=1)  # per first token
    torch.testing.assert_close(totals, torch.ones(3, dtype=torch.float64), atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_full_pass_equals_step_by_step_decoding(cell):
    model = _small(cell, vocab=5, num_layers=3)
    x = torch.randint(0, 5, (4, 9), generator=torch.Generator().manual_seed(0))
    step = model.step_function()
    state, total = None, torch.zeros(4)
    logits, state = step(x[:, :3], state)  # a prompt of 3 tokens, then one token at a time
    for t in range(3, 9):
        total += torch.log_softmax(logits, -1).gather(1, x[:, t : t + 1])[:, 0]
        logits, state = step(x[:, t : t + 1], state)
    ll_tail = model.log_likelihood(x).nats - model.log_likelihood(x[:, :3]).nats
    torch.testing.assert_close(total, ll_tail, atol=1e-5, rtol=0)


def test_weight_tying_shares_the_embedding():
    tied = _small(vocab=5, embed_dim=4, hidden=6, tie_weights=True)
    names = {n for n, _ in tied.named_parameters()}
    assert "head.weight" not in names and "projection.weight" in names
    same = _small(vocab=5, embed_dim=6, hidden=6, tie_weights=True)
    assert same.projection is None
    x = torch.tensor([[0, 1, 2, 3]])
    before = same(x)[0]
    with torch.no_grad():
        same.embedding.weight[4] += 1.0  # token 4 is not in x: only its output logit moves
    after = same(x)[0]
    assert torch.allclose(before[..., :4], after[..., :4])
    assert not torch.allclose(before[..., 4], after[..., 4])


def test_lstm_forget_gate_bias_starts_at_one():
    model = _small("lstm", hidden=6)
    bias = model.rnn.bias_ih_l0.detach()
    assert torch.equal(bias[6:12], torch.ones(6))


def test_training_with_the_one_loop_beats_the_unigram():
    train, test = _text("train"), _text("test")
    torch.manual_seed(0)
    model = genlab.create("charrnn", spec=train.spec, hidden=48, embed_dim=16, num_layers=1)
    before = -model.log_likelihood(test.x).mean() / 15
    cfg = genlab.TrainConfig(steps=150, batch_size=16, lr=1e-2, progress=False, seed=0)
    model.fit(train, cfg)
    after = -model.log_likelihood(test.x).mean() / 15
    counts = torch.bincount(train.info["tokens"], minlength=train.spec.discrete_levels).double()
    p = counts[counts > 0] / counts.sum()
    unigram_entropy = float(-(p * p.log()).sum())
    assert before > math.log(train.spec.discrete_levels) - 0.1  # untrained: near uniform
    assert after < unigram_entropy - 0.5, (after, unigram_entropy)


def test_sampling_uses_the_shared_decoding_controls():
    train = _text("train")
    torch.manual_seed(0)
    model = genlab.create("charrnn", spec=train.spec, hidden=16, embed_dim=8, num_layers=1)
    model.fit(train, genlab.TrainConfig(steps=20, batch_size=16, progress=False))
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    a, b = model.sample(5, generator=g(1)), model.sample(5, generator=g(1))
    assert a.shape == (5, 16) and a.dtype == torch.int64 and torch.equal(a, b)
    greedy = model.sample(2, prompt="To be", max_new_tokens=5, temperature=0)
    ids = greedy[0].tolist()
    for t in range(5, len(ids)):
        logits, _ = model(torch.tensor([ids[:t]]))
        assert ids[t] == int(logits[0, -1].argmax())
    assert torch.equal(greedy[0], greedy[1])
    assert torch.equal(
        model.sample(2, prompt="To be", max_new_tokens=5, top_k=1, generator=g(2)), greedy
    )
    seen = []
    out = model.sample(
        3, prompt="The", max_new_tokens=30, stop=" ", stream=seen.append, generator=g(3)
    )
    texts = genlab.data.text.decode_batch(train.spec, out)
    assert all(t[3:].count(" ") <= 1 for t in texts) and len(seen) == out.shape[1] - 3
    long_prompt = "To be, or not to be, that is the question:\n" * 3  # longer than a block
    assert model.sample(1, prompt=long_prompt, max_new_tokens=4).shape == (1, len(long_prompt) + 4)


def test_bad_input_gives_clear_errors():
    with pytest.raises(ConfigError, match="cell"):
        CharRNNConfig(cell="rnn")
    with pytest.raises(ConfigError, match="hidden"):
        CharRNNConfig(hidden=0)
    with pytest.raises(ConfigError, match="dropout"):
        CharRNNConfig(dropout=1.0)
    with pytest.raises(ConfigError, match="models text"):
        genlab.create("charrnn", spec=genlab.data.load("moons", num_samples=10).spec)
    model = _small()
    with pytest.raises(DataError, match="T >= 2"):
        model.log_likelihood(torch.zeros(1, 0, dtype=torch.int64))
    with pytest.raises(DataError, match="T >= 2"):
        model.log_likelihood(torch.zeros(3, 1, dtype=torch.int64))
    with pytest.raises(DataError, match=r"\[0, 3\)"):
        model.log_likelihood(torch.tensor([[0, 7]]))
    train = _text("train")
    text_model = genlab.create("charrnn", spec=train.spec, hidden=8, embed_dim=4, num_layers=1)
    with pytest.raises(DataError, match="outside the model's vocabulary"):
        text_model.sample(1, prompt="Zebra Q!")
    with pytest.raises(ConfigError, match="top_p"):
        text_model.sample(1, top_p=0.0)
    with pytest.raises(ConfigError, match="max_new_tokens"):
        text_model.sample(1, max_new_tokens=-1)
    with pytest.raises(ConfigError, match="no option 'use_cache'; it takes generator"):
        text_model.sample(1, use_cache=False)  # gpt's option
