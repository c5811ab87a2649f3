"""The shared decoding controls: filters on hand-made distributions, the loop, prompts."""

import math

import pytest
import torch

from genlab.core.contract import DataSpec
from genlab.core.errors import ConfigError, DataError
from genlab.data.text import PAD_ID, decode_batch
from genlab.data.tokenizers import ByteTokenizer, CharTokenizer
from genlab.families.autoregressive.decoding import (
    DecodingOptions,
    apply_repetition_penalty,
    beam_search,
    choose_next,
    encode_prompt,
    filter_top_k,
    filter_top_p,
    generate,
    sample_tokens,
    truncate_at_stop,
)

INF = float("inf")


def _char_spec(chars="\n abc", unknown="error") -> DataSpec:
    tok = CharTokenizer(sorted(chars), unknown=unknown)
    return DataSpec(
        modality="text",
        shape=(8,),
        vocab=tok.vocab,
        discrete_levels=tok.vocab_size,
        tokenizer=tok.to_json(),
    )


def _table_step(table: torch.Tensor):
    """A step function whose next-token logits depend only on the last token: table[last]."""

    def step(ids, state):
        calls = (state or 0) + 1
        return table[ids[:, -1]], calls

    return step


# --- filters -------------------------------------------------------------------------------


def test_top_k_keeps_the_k_largest_and_ties():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0], [5.0, 5.0, 5.0, 1.0]])
    out = filter_top_k(logits, 2)
    assert torch.equal(out[0], torch.tensor([-INF, 3.0, 2.0, -INF]))
    # ties with the k-th largest are kept
    assert torch.equal(out[1], torch.tensor([5.0, 5.0, 5.0, -INF]))
    assert torch.equal(filter_top_k(logits, None), logits)
    assert torch.equal(filter_top_k(logits, 10), logits)


def test_top_p_keeps_the_smallest_nucleus():
    probs = torch.tensor([[0.5, 0.25, 0.15, 0.1]])
    logits = probs.log()
    keep = lambda p: torch.isfinite(filter_top_p(logits, p))[0].tolist()  # noqa: E731
    assert keep(0.45) == [True, False, False, False]
    assert keep(0.6) == [True, True, False, False]
    assert keep(0.7) == [True, True, False, False]
    assert keep(0.8) == [True, True, True, False]
    assert keep(0.95) == [True, True, True, True]
    assert keep(1.0) == [True, True, True, True]
    assert keep(1e-6) == [True, False, False, False]  # the top token always stays
    # the order of the vocabulary does not matter
    perm = torch.tensor([2, 0, 3, 1])  # probabilities .15 .5 .1 .25
    shuffled = torch.isfinite(filter_top_p(logits[:, perm], 0.6))[0]
    assert shuffled.tolist() == [False, True, False, True]


def test_top_p_then_renormalised_probabilities_are_exact():
    logits = torch.tensor([[0.4, 0.3, 0.2, 0.1]]).log()
    probs = torch.softmax(filter_top_p(logits, 0.65), dim=-1)[0]
    torch.testing.assert_close(probs, torch.tensor([4 / 7, 3 / 7, 0.0, 0.0]))


def test_repetition_penalty_is_ctrls_rule():
    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0]])
    history = torch.tensor([[0, 1, 0, PAD_ID]])
    out = apply_repetition_penalty(logits, history, 2.0)
    # seen tokens 0 (positive: divided) and 1 (negative: multiplied); 2 and 3 untouched
    assert torch.equal(out, torch.tensor([[1.0, -2.0, 0.5, 3.0]]))
    assert torch.equal(apply_repetition_penalty(logits, history, 1.0), logits)


def test_choose_next_greedy_and_sampling_frequencies():
    logits = torch.tensor([[0.0, 2.0, 1.0]]).expand(4, 3)
    greedy = DecodingOptions(max_new_tokens=1, temperature=0.0)
    assert choose_next(logits, logits[:, :0].long(), greedy).tolist() == [1, 1, 1, 1]
    # temperature 2 gives softmax(logits / 2); 40,000 draws match it within 0.01
    opts = DecodingOptions(max_new_tokens=1, temperature=2.0)
    big = torch.tensor([[0.0, 2.0, 1.0]]).expand(40_000, 3)
    draws = choose_next(big, big[:, :0].long(), opts, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=3).double() / draws.numel()
    want = torch.softmax(torch.tensor([0.0, 1.0, 0.5], dtype=torch.float64), 0)
    assert (freq - want).abs().max() < 0.01


def test_bad_options_raise_config_error_saying_the_fix():
    for bad in (0.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError, match=r"top_p must be in \(0, 1\]"):
            DecodingOptions(max_new_tokens=1, top_p=bad)
    with pytest.raises(ConfigError, match="top_k"):
        DecodingOptions(max_new_tokens=1, top_k=0)
    with pytest.raises(ConfigError, match="repetition_penalty"):
        DecodingOptions(max_new_tokens=1, repetition_penalty=0.0)
    with pytest.raises(ConfigError, match="max_new_tokens"):
        DecodingOptions(max_new_tokens=-1)
    with pytest.raises(ConfigError, match="stop"):
        DecodingOptions(max_new_tokens=1, stop=[""])
    assert DecodingOptions(max_new_tokens=1, stop="\n").stop == ("\n",)


# --- the loop ------------------------------------------------------------------------------


def test_generate_greedy_follows_the_table_and_feeds_prompt_once():
    # token i -> most likely i + 1 (mod 5)
    table = torch.eye(5).roll(1, dims=1) * 4.0
    fed = []

    def step(ids, state):
        fed.append(ids.shape[1])
        return table[ids[:, -1]], state

    out = generate(
        step,
        torch.tensor([[0, 3], [2, 2]]),
        options=DecodingOptions(max_new_tokens=4, temperature=0),
    )
    assert out.ids.tolist() == [[0, 3, 4, 0, 1, 2], [2, 2, 3, 4, 0, 1]]
    assert fed == [2, 1, 1, 1]  # the whole prompt once, then one token per step
    assert out.lengths.tolist() == [6, 6]


def test_generate_is_reproducible_with_a_seed_and_streams_each_step():
    table = torch.zeros(5, 5)
    opts = DecodingOptions(max_new_tokens=20)
    prompt = torch.zeros(3, 1, dtype=torch.int64)
    seen = []
    a = generate(
        _table_step(table),
        prompt,
        options=opts,
        generator=torch.Generator().manual_seed(7),
        stream=seen.append,
    )
    b = generate(
        _table_step(table), prompt, options=opts, generator=torch.Generator().manual_seed(7)
    )
    c = generate(
        _table_step(table), prompt, options=opts, generator=torch.Generator().manual_seed(8)
    )
    assert torch.equal(a.ids, b.ids) and not torch.equal(a.ids, c.ids)
    assert len(seen) == 20 and all(s.shape == (3,) and s.dtype == torch.int64 for s in seen)
    assert torch.equal(torch.stack(seen, 1), a.ids[:, 1:])


def test_repetition_penalty_changes_greedy_choice():
    # from token 0 the model prefers 0 (logit 1.0) over 1 (0.8); penalty 2 makes 0 -> 0.5
    table = torch.tensor([[1.0, 0.8, -5.0], [1.0, 0.8, -5.0], [1.0, 0.8, -5.0]])
    prompt = torch.tensor([[0]])
    plain = generate(_table_step(table), prompt, options=DecodingOptions(2, temperature=0))
    assert plain.ids.tolist() == [[0, 0, 0]]
    penal = generate(
        _table_step(table), prompt, options=DecodingOptions(2, temperature=0, repetition_penalty=2)
    )
    # step 1: 0 seen -> logits (0.5, 0.8, -5): 1; step 2: 0 and 1 seen -> (0.5, 0.4, -5): 0
    assert penal.ids.tolist() == [[0, 1, 0]]


def test_stop_strings_finish_rows_and_pad_the_rest():
    spec = _char_spec()  # ids: '\n'=0, ' '=1, a=2, b=3, c=4
    # row 0 prompt 'a' -> b -> c -> '\n' -> a ...; row 1 prompt ' ' -> ' ' forever
    table = torch.full((5, 5), -10.0)
    for src, dst in ((2, 3), (3, 4), (4, 0), (0, 2), (1, 1)):
        table[src, dst] = 10.0
    ids = sample_tokens(
        _table_step(table),
        spec,
        2,
        start=None,
        prompt=torch.tensor([[2], [1]]),
        max_new_tokens=6,
        temperature=0,
        stop=["c\n", "zz"],
    )
    texts = decode_batch(spec, ids)
    assert texts[0] == "abc\n"  # stopped after the token that completed 'c\n'
    assert texts[1] == " " * 7  # never stops: all 6 new tokens
    assert ids[0].tolist()[4:] == [PAD_ID] * 3  # decode_batch drops the padding
    # a stop string inside the prompt does not stop generation
    ids = sample_tokens(
        _table_step(table),
        spec,
        1,
        start=None,
        prompt="bc\na",
        max_new_tokens=3,
        temperature=0,
        stop="c\n",
    )
    assert decode_batch(spec, ids) == ["bc\nabc\n"]
    assert truncate_at_stop("abc\nab", "c\n") == "abc\n"
    assert truncate_at_stop("abc\nab", ["b", "c"], keep=False) == "a"


def test_all_rows_stopping_ends_the_loop_early():
    spec = _char_spec()
    table = torch.full((5, 5), -10.0)
    table[:, 0] = 10.0  # always '\n'
    calls = []

    def step(ids, state):
        calls.append(1)
        return table[ids[:, -1]], state

    ids = sample_tokens(
        step, spec, 3, start=None, prompt="a", max_new_tokens=50, temperature=0, stop="\n"
    )
    assert ids.shape == (3, 2) and len(calls) == 1


def test_sample_tokens_default_lengths_and_start():
    spec = _char_spec()  # block length 8
    table = torch.zeros(5, 5)

    def start(n, generator):
        return torch.full((n, 1), 2, dtype=torch.int64)

    g = torch.Generator().manual_seed(0)
    ids = sample_tokens(_table_step(table), spec, 4, start=start, generator=g)
    assert ids.shape == (4, 8) and (ids[:, 0] == 2).all()  # shaped like the data
    ids = sample_tokens(_table_step(table), spec, 4, start=start, generator=g, prompt="ab")
    assert ids.shape == (4, 2 + 8) and ids[:, :2].tolist() == [[2, 3]] * 4
    ids = sample_tokens(_table_step(table), spec, 2, start=start, prompt="", max_new_tokens=3)
    assert ids.shape == (2, 4)  # "" is the same as no prompt


def test_beam_search_finds_the_most_likely_sequence_that_greedy_misses():
    # From 0: token 1 (p .6) leads to a flat next step; token 2 (p .4) to a certain one.
    # Greedy picks 1 (total .6 * .34); beam search finds 2 then 4 (.4 * ~1).
    logp = torch.full((5, 5), -30.0)
    logp[0, 1], logp[0, 2] = math.log(0.6), math.log(0.4)
    logp[1, :] = math.log(0.2)
    logp[2, 4] = 0.0
    logp[3:, 0] = 0.0

    def step(ids, state):
        return logp[ids[:, -1]], state

    seqs, scores = beam_search(
        step,
        torch.tensor([0]),
        num_beams=2,
        max_new_tokens=2,
        reorder_state=lambda s, rows: s,
    )
    assert seqs[0].tolist() == [0, 2, 4]
    assert math.isclose(float(scores[0]), math.log(0.4), abs_tol=1e-6)
    greedy = generate(step, torch.tensor([[0]]), options=DecodingOptions(2, temperature=0))
    assert greedy.ids[0, 1] == 1


# --- prompts -------------------------------------------------------------------------------


def test_prompt_with_unknown_characters_names_them_and_the_fix():
    spec = _char_spec()
    assert encode_prompt(spec, "ab c\n") == [2, 3, 1, 4, 0]
    with pytest.raises(DataError, match=r"'Z' \(2x\).*'!' \(1x\).*tokenizer='byte' or 'bpe'"):
        encode_prompt(spec, "aZZ!")
    # a tokenizer fitted with unknown='unk' maps them to its unknown id instead
    unk = _char_spec(unknown="unk")
    assert encode_prompt(unk, "aZ") == [2, 5]
    # byte tokenizers encode any text
    byte = DataSpec(
        modality="text", shape=(8,), discrete_levels=256, tokenizer=ByteTokenizer().to_json()
    )
    assert encode_prompt(byte, "é") == [0xC3, 0xA9]
    with pytest.raises(DataError, match="encodes to no tokens"):
        encode_prompt(_char_spec(unknown="skip"), "ZZ")
    with pytest.raises(DataError, match="tokenizer"):
        encode_prompt(DataSpec(modality="points", shape=(2,)), "a")
