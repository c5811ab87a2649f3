"""GPT: KV-cache decoding equals full forward passes, likelihood, decoding options, errors."""

import math

import pytest
import torch

import genlab
from genlab.core.contract import Batch
from genlab.core.errors import ConfigError, DataError
from genlab.data.text import PAD_ID, decode, decode_batch, encode
from genlab.families.autoregressive.gpt import GPT, KVCache
from tests.contract.tiny_gpt import TINY_TEXT

SMALL = {"num_layers": 2, "num_heads": 2, "dim": 16}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny models gain nothing from a second thread, and on a busy machine two OpenMP threads
    # waiting for each other make every small op slow.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    return genlab.data.load(str(TINY_TEXT), block_size=17)


def _model(data, seed=0, **overrides) -> GPT:
    torch.manual_seed(seed)
    model = genlab.create("gpt", spec=data.spec, **{**SMALL, **overrides})
    # random (untied-looking) weights so that logits differ sharply between tokens
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_kv_cache_logits_equal_full_forward(data, positions):
    model = _model(data, positions=positions, bias=True)
    x = data.x[:3, :16]
    full = model(x)  # (B, T, V)
    cache = KVCache(2, 3, 2, 8, model.block_size, device=x.device, dtype=torch.float32)
    # a prompt of 5, a chunk of 4 (masked attention after a cache), then one token at a time
    parts = [model(x[:, :5], cache), model(x[:, 5:9], cache)]
    parts += [model(x[:, t : t + 1], cache) for t in range(9, 16)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, rtol=0, atol=1e-5)
    assert cache.length == 16


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_cached_and_uncached_generation_give_identical_tokens(data, positions):
    model = _model(data, positions=positions)
    prompt = data.x[:2, :5]
    # 30 new tokens pass the context of 16: the cropped re-reads must agree too
    fast = model.greedy_ids(prompt, 30, use_cache=True)
    slow = model.greedy_ids(prompt, 30, use_cache=False)
    assert torch.equal(fast, slow)
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    a = model.sample(3, generator=g(), max_new_tokens=25, top_k=5)
    b = model.sample(3, generator=g(), max_new_tokens=25, top_k=5, use_cache=False)
    assert torch.equal(a, b)


def test_greedy_is_deterministic_and_matches_argmax_of_full_forward(data):
    model = _model(data)
    out = model.sample(2, prompt="All:", max_new_tokens=8, temperature=0.0)
    again = model.sample(2, prompt="All:", max_new_tokens=8, temperature=-1.0)
    assert torch.equal(out, again) and torch.equal(out[0], out[1])
    # each new token is the argmax of a full forward pass over what came before
    for t in range(4, out.shape[1]):
        assert out[0, t] == model(out[:1, :t])[0, -1].argmax()


def test_seeds_reproduce_and_differ(data):
    model = _model(data)
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    a = model.sample(4, generator=g(1), prompt="Sp", max_new_tokens=12)
    b = model.sample(4, generator=g(1), prompt="Sp", max_new_tokens=12)
    c = model.sample(4, generator=g(2), prompt="Sp", max_new_tokens=12)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (4, 2 + 12) and decode(data.spec, a[0]).startswith("Sp")


def test_sample_without_prompt_is_shaped_like_the_data_and_starts_from_unigrams(data):
    model = _model(data)
    ids = model.sample(5, generator=torch.Generator().manual_seed(0))
    assert ids.shape == (5, 17) and ids.dtype == torch.int64
    # training counts tokens; the start token then follows those counts
    model.train()
    model.loss(Batch(data.x[:8]))
    counts = torch.bincount(data.x[:8].reshape(-1), minlength=model.vocab_size)
    assert torch.equal(model.token_counts, counts)
    only = int(torch.nonzero(counts)[0])
    model.token_counts.zero_()
    model.token_counts[only] = 1
    starts = model.sample(20, generator=torch.Generator().manual_seed(1), max_new_tokens=1)
    assert (starts[:, 0] == only).all()


def test_log_likelihood_is_the_exact_sum_of_next_token_log_probs(data):
    model = _model(data)
    x = data.x[:4]
    ll = model.log_likelihood(x)
    assert ll.kind == "exact" and ll.details["tokens_scored"] == 16
    # by hand: chain rule over prefixes, each scored by a fresh forward pass
    by_hand = torch.zeros(4, dtype=torch.float64)
    for t in range(1, 17):
        logp = torch.log_softmax(model(x[:, :t])[:, -1].double(), dim=-1)
        by_hand += logp.gather(1, x[:, t : t + 1])[:, 0]
    torch.testing.assert_close(ll.nats.double(), by_hand, rtol=0, atol=1e-4)
    # the training loss is the mean negative of the same figure per scored token
    loss = model.loss(Batch(x)).loss
    assert math.isclose(float(loss.detach()), float(-ll.nats.mean() / 16), rel_tol=1e-5)


def test_log_likelihood_normalizes_over_every_sequence(data):
    # with a 3-token vocabulary and 3 tokens after x0, the probabilities of all 27
    # continuations of one first token sum to 1
    tiny = genlab.data.load(str(TINY_TEXT), block_size=4)
    spec = tiny.spec.__class__(**{**tiny.spec.__dict__, "discrete_levels": 3})
    torch.manual_seed(0)
    model = GPT(genlab.families.autoregressive.gpt.GPTConfig(**SMALL), spec).eval()
    rest = torch.cartesian_prod(*[torch.arange(3)] * 3)  # (27, 3)
    x = torch.cat([torch.ones(27, 1, dtype=torch.int64), rest], dim=1)
    total = model.log_likelihood(x).nats.double().exp().sum()
    assert math.isclose(float(total), 1.0, rel_tol=1e-5)


def test_repetition_penalty_reduces_repeats(data):
    model = _model(data)
    plain = model.sample(1, prompt="a", max_new_tokens=40, temperature=0)
    penal = model.sample(1, prompt="a", max_new_tokens=40, temperature=0, repetition_penalty=5.0)
    assert len(set(penal[0].tolist())) > len(set(plain[0].tolist()))


def test_stop_strings_and_generate_text(data):
    model = _model(data)
    g = torch.Generator().manual_seed(0)
    texts = model.generate_text("Speak", num_samples=3, generator=g, max_new_tokens=60)
    assert len(texts) == 3 and all(t.startswith("Speak") and len(t) == 65 for t in texts)
    # stop at the first 'e' after the prompt: every text then ends with it, once
    stopped = model.generate_text(
        "Speak",
        num_samples=3,
        generator=torch.Generator().manual_seed(0),
        stop="e",
        max_new_tokens=60,
    )
    for full, cut in zip(texts, stopped):
        new = full[5:]
        if "e" in new:
            assert cut == "Speak" + new[: new.index("e") + 1]
    ids = model.sample(
        3, prompt="Speak", generator=torch.Generator().manual_seed(0), stop="e", max_new_tokens=60
    )
    assert decode_batch(data.spec, ids) == [t for t in stopped]
    if any(len(t) < ids.shape[1] for t in stopped):
        assert (ids == PAD_ID).any()


def test_stream_gets_every_new_token(data):
    model = _model(data)
    got = []
    ids = model.sample(2, prompt="All", max_new_tokens=6, stream=got.append)
    assert torch.equal(torch.stack(got, dim=1), ids[:, 3:])


def test_prompt_longer_than_the_context_is_cropped_to_its_last_block_size_tokens(data):
    model = _model(data)  # context 16
    long_prompt = "First Citizen:\nBefore we proceed any further"  # 44 characters
    out = model.sample(1, prompt=long_prompt, max_new_tokens=5, temperature=0)
    assert out.shape == (1, 44 + 5)
    assert decode(data.spec, out[0, :44]) == long_prompt  # the whole prompt is returned
    # the continuation is what the last 16 prompt tokens alone give
    tail = torch.tensor([encode(data.spec, long_prompt)[-16:]])
    alone = model.greedy_ids(tail, 5)
    assert torch.equal(out[:, 44:], alone[:, 16:])


def test_bad_inputs_raise_clear_errors(data):
    model = _model(data)
    with pytest.raises(ConfigError, match=r"top_p must be in \(0, 1\]"):
        model.sample(1, top_p=1.5)
    with pytest.raises(ConfigError, match="top_p"):
        model.sample(1, top_p=0.0)
    with pytest.raises(DataError, match=r"'Z'.*tokenizer='byte' or 'bpe'"):
        model.sample(1, prompt="Zebra", max_new_tokens=3)
    with pytest.raises(ConfigError, match=r"no option 'guidance'.*its own use_cache"):
        model.sample(1, guidance=2.0)
    with pytest.raises(ConfigError, match="unconditional"):
        model.sample(1, cond={"label": torch.zeros(1, dtype=torch.int64)})
    with pytest.raises(DataError, match="block_size"):
        model.log_likelihood(torch.zeros(1, 40, dtype=torch.int64))
    with pytest.raises(DataError, match="token ids must be in"):
        model.log_likelihood(torch.full((1, 5), 999, dtype=torch.int64))
    with pytest.raises(ConfigError, match="divisible"):
        genlab.create("gpt", spec=data.spec, dim=10, num_heads=3)
    with pytest.raises(ConfigError, match="block_size"):
        genlab.create("gpt", spec=data.spec, block_size=8)
    with pytest.raises(ConfigError, match="text"):
        genlab.create("gpt", spec=genlab.data.load("moons", num_samples=10).spec)


def test_byte_tokenizer_takes_any_prompt():
    data = genlab.data.load(str(TINY_TEXT), block_size=17, tokenizer="byte")
    model = _model(data)
    out = model.sample(1, prompt="Zébra ✓", max_new_tokens=4, temperature=0)
    assert decode(data.spec, out[0]).startswith("Zébra ✓")


def test_rotary_and_learned_positions_differ_and_both_train(data):
    batch = Batch(data.x[:16])
    for positions in ("learned", "rotary"):
        torch.manual_seed(0)
        model = genlab.create("gpt", spec=data.spec, positions=positions, **SMALL)
        names = {n for n, _ in model.named_parameters()}
        assert ("position_embedding.weight" in names) == (positions == "learned")
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        first = float(model.loss(batch).loss.detach())
        for _ in range(40):
            opt.zero_grad()
            model.loss(batch).loss.backward()
            opt.step()
        # the repeated verses are easy: both fall far below the uniform log(V)
        last = float(model.loss(batch).loss.detach())
        assert first > 0.9 * math.log(model.vocab_size) and last < 0.5 * first


def test_rotary_attention_depends_only_on_relative_positions():
    from genlab.families.autoregressive.gpt import apply_rotary, rotary_tables

    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    scores = []
    for shift in (0, 7):
        cq, sq = rotary_tables(8, torch.tensor([3 + shift]), 10000.0)
        ck, sk = rotary_tables(8, torch.tensor([1 + shift]), 10000.0)
        scores.append(float((apply_rotary(q, cq, sq) * apply_rotary(k, ck, sk)).sum()))
    assert math.isclose(scores[0], scores[1], rel_tol=1e-5)


def test_save_load_round_trip_with_tied_and_untied_weights(data, tmp_path):
    for tie in (True, False):
        model = _model(data, tie_weights=tie)
        model.token_counts[3] = 5
        model.save(tmp_path / f"m{tie}")
        loaded = genlab.load(tmp_path / f"m{tie}")
        assert loaded.config == model.config
        assert torch.equal(loaded.token_counts, model.token_counts)
        x = data.x[:3]
        torch.testing.assert_close(loaded.log_likelihood(x).nats, model.log_likelihood(x).nats)
        g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
        assert torch.equal(loaded.sample(2, generator=g()), model.sample(2, generator=g()))
    tied = {n for n, _ in _model(data).named_parameters()}
    assert not any(n.startswith("head") for n in tied)  # one matrix, saved once


def test_beam_search_beats_or_equals_greedy_log_prob(data):
    model = _model(data)
    seqs, scores = model.beam_search("All", num_beams=4, max_new_tokens=6)
    greedy = model.sample(1, prompt="All", max_new_tokens=6, temperature=0)
    # score the greedy sequence's continuation
    logits = model(greedy[:, :-1])[0]
    logp = torch.log_softmax(logits.double(), -1)
    greedy_score = float(logp[2:].gather(1, greedy[0, 3:, None]).sum().detach())
    assert seqs.shape == (4, 3 + 6)
    assert float(scores[0]) >= greedy_score - 1e-6
    assert torch.all(scores[:-1] >= scores[1:])


def test_text_stride_gives_overlapping_train_windows_and_plain_test_blocks():
    train = genlab.data.load(str(TINY_TEXT), block_size=17, stride=1)
    tokens = train.info["tokens"]
    assert train.x.shape == (len(tokens) - 16, 17)
    assert torch.equal(train.x[5], tokens[5:22]) and torch.equal(train.x[-1], tokens[-17:])
    every4 = genlab.data.load(str(TINY_TEXT), block_size=17, stride=4)
    assert torch.equal(every4.x[3], tokens[12:29])
    test = genlab.data.load(str(TINY_TEXT), "test", block_size=17, stride=1)
    assert torch.equal(test.x[1], test.info["tokens"][17:34])  # non-overlapping
    for bad in (0, 18, 2.5):
        with pytest.raises(DataError, match="stride"):
            genlab.data.load(str(TINY_TEXT), block_size=17, stride=bad)
