"""Decoding for every sequence model: one loop, one set of controls.

A sequence model plugs in through a *step function*

    step_fn(ids, state) -> (logits, state)

that appends the token ids `ids`, int64 (B, t), to each sequence and returns the logits of
the next token, float (B, V), and its new state. A GPT's state is its key/value cache, an
RNN's its hidden state; `generate` never looks inside it. The first call receives the whole
prompt (B, P); every later call the one token just chosen, (B, 1).

Controls (the names `genlab sample` passes to `model.sample`):
- `temperature`: logits are divided by it before sampling. **temperature <= 0 means greedy**:
  the most likely token (the lowest id on ties) is taken, no randomness is drawn, and
  `top_k` / `top_p` change nothing (they never remove the most likely token).
- `top_k`: keep the k most likely tokens (and any tied with the k-th), renormalise.
- `top_p`: nucleus sampling (Holtzman et al., 2020, "The Curious Case of Neural Text
  Degeneration"): keep the smallest set of most likely tokens whose probability reaches
  `top_p`, in (0, 1]; 1 keeps everything. The most likely token is always kept.
- `repetition_penalty`: CTRL's penalty (Keskar et al., 2019): the logit of every token already
  in the sequence (prompt included) is divided by the penalty when positive and multiplied by
  it when negative; 1 turns it off, > 1 discourages repeats.
- `stop`: a string or list of strings; a sequence is finished by the token that completes
  one of them in its *generated* text (a stop string in the prompt does not count). The
  finishing token is kept, so the text includes the stop string (cut it with
  `truncate_at_stop`); positions after it hold `PAD_ID` (-1).
- `max_new_tokens`: how many tokens to generate at most.
- `generator`: a seeded `torch.Generator`; the same seed gives the same tokens.
- `stream`: a callable receiving each step's new ids, int64 (B,) (`PAD_ID` for rows that
  have finished), e.g. to print text as it is generated.

Filters apply in the order repetition penalty, temperature, top-k, top-p (the order of
Hugging Face's `generate`), so top-p sees the temperature-scaled distribution.

Prompts: `encode_prompt(spec, text)` encodes a prompt through the tokenizer saved in a text
data set's spec. Characters outside a char tokenizer's vocabulary raise a `DataError` naming
them: the model has never seen them, so it cannot condition on them; a model trained with
tokenizer="byte" or "bpe" encodes any text (every UTF-8 byte is a token). A char tokenizer
fitted with unknown="unk" or "skip" applies that policy instead.

`beam_search` keeps the `num_beams` most likely continuations (for greedy-style tasks where the
single most likely sequence is wanted).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from genlab.core.contract import DataSpec
from genlab.core.errors import ConfigError, DataError
from genlab.data.text import PAD_ID, decode_batch
from genlab.data.tokenizers import CharTokenizer, _describe_chars, tokenizer_from_json

StepFn = Callable[[Tensor, Any], tuple[Tensor, Any]]
StreamFn = Callable[[Tensor], Any]

__all__ = [
    "PAD_ID",
    "DecodingOptions",
    "TokenSampling",
    "Generation",
    "apply_repetition_penalty",
    "beam_search",
    "choose_next",
    "encode_prompt",
    "filter_top_k",
    "filter_top_p",
    "generate",
    "sample_tokens",
    "truncate_at_stop",
]


@dataclass(frozen=True)
class DecodingOptions:
    """The decoding controls, validated (a bad value raises `ConfigError` saying the fix).

    Args:
        max_new_tokens: tokens to generate at most, >= 0.
        temperature: > 0 scales the logits; <= 0 means greedy (argmax).
        top_k: keep the k most likely tokens (k >= 1), or None for all.
        top_p: nucleus mass in (0, 1], or None for all.
        repetition_penalty: > 0; 1 is off, > 1 discourages tokens already in the sequence.
        stop: stop strings (a single string is accepted and wrapped).
    """

    max_new_tokens: int
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float = 1.0
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = self.max_new_tokens
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ConfigError(f"max_new_tokens must be an integer >= 0, got {n!r}")
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, int | float):
            raise ConfigError(
                f"temperature must be a number (<= 0 means greedy), got {self.temperature!r}"
            )
        k = self.top_k
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ConfigError(f"top_k must be an integer >= 1 (or None for all), got {k!r}")
        p = self.top_p
        if p is not None and (
            isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 < p <= 1.0
        ):
            raise ConfigError(
                f"top_p must be in (0, 1] (the nucleus's probability mass; 1 keeps every "
                f"token), got {p!r}"
            )
        r = self.repetition_penalty
        if isinstance(r, bool) or not isinstance(r, int | float) or not r > 0:
            raise ConfigError(
                f"repetition_penalty must be > 0 (1 is off, e.g. 1.2 discourages repeats), "
                f"got {r!r}"
            )
        stop = (self.stop,) if isinstance(self.stop, str) else self.stop
        if stop is None:
            stop = ()
        if not isinstance(stop, list | tuple) or not all(isinstance(s, str) and s for s in stop):
            raise ConfigError(f"stop must be a non-empty string or a list of them, got {stop!r}")
        object.__setattr__(self, "stop", tuple(stop))

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


@dataclass
class Generation:
    """What `generate` returns.

    Attributes:
        ids: int64 (B, P + n): the prompt, then the generated tokens; rows that stopped
            early are padded with `PAD_ID` (-1) after their last token.
        lengths: int64 (B,): each row's length without padding.
        prompt_length: P.
    """

    ids: Tensor
    lengths: Tensor
    prompt_length: int


def apply_repetition_penalty(logits: Tensor, history: Tensor, penalty: float) -> Tensor:
    """CTRL's repetition penalty (Keskar et al., 2019) on the tokens already in each row.

    Args:
        logits: (B, V).
        history: int64 (B, L) ids seen so far (`PAD_ID` entries are ignored).
        penalty: > 0; logits of seen tokens are divided by it if positive, multiplied if not.

    Returns:
        new logits (B, V).
    """
    if penalty == 1.0 or history.numel() == 0:
        return logits
    # one extra column catches PAD_ID entries, then is dropped
    vocab = logits.shape[-1]
    seen = torch.zeros(logits.shape[0], vocab + 1, dtype=torch.bool, device=logits.device)
    ids = torch.where(history >= 0, history, torch.full_like(history, vocab))
    seen.scatter_(1, ids, True)
    seen = seen[:, :vocab]  # (B, V)
    penalized = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalized, logits)


def filter_top_k(logits: Tensor, k: int | None) -> Tensor:
    """Logits (B, V) with all but the k largest per row set to -inf (ties with the k-th kept)."""
    if k is None or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def filter_top_p(logits: Tensor, p: float | None) -> Tensor:
    """Nucleus filtering (Holtzman et al., 2020): logits (B, V) outside the top-p set -> -inf.

    The kept set is the smallest prefix of tokens sorted by probability (descending) whose
    total probability is >= p; the most likely token is always kept.
    """
    if p is None or p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits.float(), dim=-1)
    # mass strictly before each token: a token is kept while the mass before it is < p
    before = torch.cumsum(probs, dim=-1) - probs
    drop_sorted = before >= p
    drop_sorted[..., 0] = False
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def choose_next(
    logits: Tensor,
    history: Tensor,
    options: DecodingOptions,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The next token of every row, int64 (B,), from next-token logits (B, V).

    Applies the repetition penalty, then greedy argmax (temperature <= 0) or temperature,
    top-k, top-p and one draw from the renormalised distribution with `generator`.
    """
    logits = logits.float()
    logits = apply_repetition_penalty(logits, history, options.repetition_penalty)
    if options.greedy:
        return logits.argmax(dim=-1)
    logits = logits / options.temperature
    logits = filter_top_k(logits, options.top_k)
    logits = filter_top_p(logits, options.top_p)
    probs = torch.softmax(logits, dim=-1)
    if generator is not None and generator.device != probs.device:
        # a CPU generator drives sampling of CUDA logits: draw on the generator's device
        return torch.multinomial(probs.to(generator.device), 1, generator=generator)[:, 0].to(
            probs.device
        )
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


class _StopChecker:
    """Finds rows whose generated text has just completed a stop string.

    Only the tail of each row's generated tokens is decoded: a token covers at least one byte
    and a character at most four, so 4 * (longest stop string) + 4 tokens always hold a
    complete stop string that ends at the last token.
    """

    def __init__(self, stop: tuple[str, ...], decode_rows: Callable[[Tensor], list[str]]):
        self.stop = stop
        self.decode_rows = decode_rows
        self.window = 4 * max(len(s) for s in stop) + 4

    def __call__(self, generated: Tensor, rows: Tensor) -> Tensor:
        """Bool (len(rows),): which of `rows` of generated ids (B, n) now contain a stop."""
        tail = generated[rows, -self.window :]
        texts = self.decode_rows(tail)
        return torch.tensor([any(s in text for s in self.stop) for text in texts])


def generate(
    step_fn: StepFn,
    prompt: Tensor,
    state: Any = None,
    *,
    options: DecodingOptions,
    generator: torch.Generator | None = None,
    stream: StreamFn | None = None,
    decode_rows: Callable[[Tensor], list[str]] | None = None,
) -> Generation:
    """Autoregressive generation: feed the prompt, then choose and feed one token at a time.

    Args:
        step_fn: (ids (B, t), state) -> (next-token logits (B, V), state).
        prompt: int64 (B, P), P >= 1 (a model without a prompt starts from a start token).
        state: the step function's initial state (None for a fresh one).
        options: the decoding controls.
        generator: seeds sampling.
        stream: called with each step's new ids, int64 (B,) (`PAD_ID` for finished rows).
        decode_rows: ids (B, t) -> texts, needed for stop strings (e.g. a spec's tokenizer).

    Returns:
        Generation: ids (B, P + n) with n <= max_new_tokens (fewer when every row stopped),
        rows that stopped early padded with `PAD_ID`.
    """
    if prompt.dim() != 2 or prompt.shape[1] < 1 or prompt.dtype != torch.int64:
        raise DataError(
            f"generate needs a prompt of int64 ids (B, P) with P >= 1, got "
            f"{tuple(prompt.shape)} {prompt.dtype}"
        )
    if options.stop and decode_rows is None:
        raise ConfigError("stop strings need a text model (a tokenizer to decode with)")
    checker = _StopChecker(options.stop, decode_rows) if options.stop else None
    batch = prompt.shape[0]
    history = prompt
    done = torch.zeros(batch, dtype=torch.bool, device=prompt.device)
    lengths = torch.full((batch,), prompt.shape[1], dtype=torch.int64)
    feed = prompt
    for _ in range(options.max_new_tokens):
        logits, state = step_fn(feed, state)  # (B, V)
        if history.device != logits.device:  # the model's device decides where tokens live
            history, done = history.to(logits.device), done.to(logits.device)
        next_ids = choose_next(logits, history, options, generator=generator)  # (B,)
        next_ids = next_ids.masked_fill(done, PAD_ID)
        history = torch.cat([history, next_ids[:, None]], dim=1)
        lengths += (~done).long().cpu()
        if stream is not None:
            stream(next_ids.detach().cpu())
        if checker is not None:
            rows = torch.nonzero(~done.cpu())[:, 0]
            generated = history[:, prompt.shape[1] :].cpu()  # (B, n) new tokens only
            done[rows[checker(generated, rows)].to(done.device)] = True
        if bool(done.all()):
            break
        # finished rows keep being fed a valid id (their own last real token is irrelevant:
        # their outputs are discarded), so the step function never sees PAD_ID
        feed = next_ids.clamp_min(0)[:, None]
    return Generation(ids=history, lengths=lengths, prompt_length=prompt.shape[1])


def beam_search(
    step_fn: StepFn,
    prompt: Tensor,
    state: Any = None,
    *,
    num_beams: int,
    max_new_tokens: int,
    reorder_state: Callable[[Any, Tensor], Any],
    length_penalty: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Beam search: the `num_beams` most likely continuations of one prompt.

    Each step expands every beam by every token and keeps the `num_beams` highest total
    log-probabilities (Graves, 2012; the standard left-to-right beam search without early
    stopping: every beam gets exactly `max_new_tokens` tokens).

    Args:
        step_fn: as for `generate`; it is called with batches of num_beams rows.
        prompt: int64 (1, P) or (P,).
        state: the step function's initial state for one row.
        num_beams: beams kept, >= 1 (1 is greedy decoding).
        max_new_tokens: tokens to add.
        reorder_state: (state, rows int64 (K,)) -> the state of those rows, in that order (for
            a cache: index its batch dimension).
        length_penalty: the score is log p / (length ** length_penalty); 0 ranks by log p.

    Returns:
        (ids (num_beams, P + max_new_tokens), log_probs (num_beams,)), best beam first.
    """
    if isinstance(num_beams, bool) or not isinstance(num_beams, int) or num_beams < 1:
        raise ConfigError(f"num_beams must be an integer >= 1, got {num_beams!r}")
    DecodingOptions(max_new_tokens=max_new_tokens)  # validates max_new_tokens
    prompt = prompt.reshape(1, -1)
    seqs = prompt
    scores = torch.zeros(1, dtype=torch.float64, device=prompt.device)
    feed = prompt
    for _ in range(max_new_tokens):
        logits, state = step_fn(feed, state)  # (K, V)
        logp = torch.log_softmax(logits.double(), dim=-1)  # (K, V)
        total = (scores[:, None] + logp).reshape(-1)  # (K * V,)
        k = min(num_beams, total.numel())
        scores, flat = torch.topk(total, k)
        beam, token = flat // logp.shape[1], flat % logp.shape[1]
        seqs = torch.cat([seqs[beam], token[:, None]], dim=1)
        state = reorder_state(state, beam)
        feed = token[:, None]
    if length_penalty and max_new_tokens:
        ranked = scores / (max_new_tokens**length_penalty)
        order = torch.argsort(ranked, descending=True)
        seqs, scores = seqs[order], scores[order]
    return seqs, scores


def encode_prompt(spec: DataSpec, prompt: str) -> list[int]:
    """Token ids of a prompt under the tokenizer saved in a text data set's spec.

    Raises:
        DataError: the spec has no tokenizer, or the prompt has characters a char tokenizer
            (fitted with unknown="error") has never seen, naming them and the fix; or the
            prompt encodes to no tokens.
    """
    if not isinstance(prompt, str):
        raise ConfigError(f"prompt must be a string, got {type(prompt).__name__}")
    if spec.tokenizer is None:
        raise DataError(
            f"a text prompt needs a model of text with a tokenizer; this model's data "
            f"({spec.name!r}) is {spec.modality} without one"
        )
    tokenizer = tokenizer_from_json(spec.tokenizer)
    if isinstance(tokenizer, CharTokenizer) and tokenizer.unknown == "error":
        from collections import Counter

        known = set(tokenizer.chars)
        missing = Counter(c for c in prompt if c not in known)
        if missing:
            raise DataError(
                f"the prompt has characters outside the model's vocabulary of "
                f"{len(known)} characters: {_describe_chars(missing)}; remove or replace "
                "them, or train the model with tokenizer='byte' or 'bpe' (which encode any "
                "text)"
            )
    ids = tokenizer.encode(prompt)
    if prompt and not ids:
        raise DataError(
            f"the prompt {prompt!r} encodes to no tokens (its characters are all outside the "
            "vocabulary and the tokenizer skips unknown characters); give other text"
        )
    return ids


def prompt_tensor(spec: DataSpec, prompt: str | Sequence[int] | Tensor, num_samples: int) -> Tensor:
    """A prompt as int64 ids (num_samples, P): a string (encoded), a list or (P,) / (N, P) ids."""
    if isinstance(prompt, str):
        ids = torch.tensor(encode_prompt(spec, prompt), dtype=torch.int64)
    else:
        ids = torch.as_tensor(prompt)
        if ids.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise ConfigError(f"a prompt of ids must be integers, got {ids.dtype}")
        ids = ids.long()
    vocab_size = spec.discrete_levels
    if vocab_size is not None and ids.numel() and (ids.min() < 0 or ids.max() >= vocab_size):
        raise DataError(f"prompt ids must be in [0, {vocab_size}), got {ids.min()}..{ids.max()}")
    if ids.dim() == 1:
        return ids[None].expand(num_samples, -1).clone()
    if ids.dim() == 2 and ids.shape[0] in (1, num_samples):
        return ids.expand(num_samples, -1).clone()
    raise ConfigError(
        f"prompt ids must be (P,) or ({num_samples}, P), got shape {tuple(ids.shape)}"
    )


def spec_decoder(spec: DataSpec) -> Callable[[Tensor], list[str]]:
    """ids (B, t) -> texts with the spec's tokenizer (padding skipped), for stop strings."""
    return lambda ids: decode_batch(spec, ids)


def truncate_at_stop(text: str, stop: str | Sequence[str] | None, *, keep: bool = True) -> str:
    """`text` cut after (keep=True) or before (keep=False) the first stop string it contains."""
    if not stop:
        return text
    stops = (stop,) if isinstance(stop, str) else tuple(stop)
    hits = [(text.find(s), s) for s in stops if s in text]
    if not hits:
        return text
    pos, s = min(hits)
    return text[: pos + len(s)] if keep else text[:pos]


def sample_tokens(
    step_fn: StepFn,
    spec: DataSpec,
    num_samples: int,
    *,
    start: Callable[[int, torch.Generator | None], Tensor],
    state: Any = None,
    generator: torch.Generator | None = None,
    prompt: str | Sequence[int] | Tensor | None = None,
    max_new_tokens: int | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    stop: str | Sequence[str] | None = None,
    stream: StreamFn | None = None,
) -> Tensor:
    """A sequence model's `sample`: the shared meaning of the decoding options.

    Without a prompt (None or ""), each row starts with one start token from `start` and
    `max_new_tokens` defaults to spec.shape[0] - 1, so the result is (N, spec.shape[0]) like
    the data's blocks. With a prompt, rows start with the prompt's P tokens and
    `max_new_tokens` defaults to spec.shape[0]. The result always holds the start token or
    prompt, then the new tokens: int64 (N, P + n), `PAD_ID` after rows that stopped early.

    Args:
        step_fn: the model's step function (see `generate`).
        spec: the text data spec (its tokenizer encodes the prompt and decodes stop strings).
        num_samples: N.
        start: (N, generator) -> int64 (N, 1) start tokens, used when there is no prompt.
        state: the step function's initial state.
        generator, prompt, max_new_tokens, temperature, top_k, top_p, repetition_penalty,
        stop, stream: the decoding controls (module docstring).
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ConfigError(f"num_samples must be an integer >= 1, got {num_samples!r}")
    if stream is not None and not callable(stream):
        raise ConfigError("stream must be a callable receiving each step's new ids (B,)")
    no_prompt = prompt is None or (isinstance(prompt, str) and prompt == "")
    if no_prompt:
        ids = start(num_samples, generator)
        default_new = spec.shape[0] - 1
    else:
        ids = prompt_tensor(spec, prompt, num_samples)
        if ids.shape[1] == 0:
            ids = start(num_samples, generator)
        default_new = spec.shape[0]
    options = DecodingOptions(
        max_new_tokens=default_new if max_new_tokens is None else max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        stop=stop or (),
    )
    decode_rows = spec_decoder(spec) if options.stop else None
    out = generate(
        step_fn,
        ids,
        state,
        options=options,
        generator=generator,
        stream=stream,
        decode_rows=decode_rows,
    )
    return out.ids


class TokenSampling:
    """`sample` for the unconditional token models (gpt, charrnn, ngram), one definition.

    A model that mixes it in (before its base class) defines `name`, `spec`,
    `step_function(**options)` and `_start_tokens(n, generator)`; `step_options` names the
    keyword options of its own that `sample` passes on to `step_function` (gpt: `use_cache`),
    and `_check_ready()` may refuse to sample (an unfitted classical model). A torch module is
    put in eval mode while it samples, and back after.
    """

    step_options: tuple[str, ...] = ()

    def _check_ready(self) -> None:
        """Raise when the model cannot sample yet; the default accepts."""

    def sample(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        cond: dict[str, Tensor] | None = None,
        prompt: str | Sequence[int] | Tensor | None = None,
        max_new_tokens: int | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        repetition_penalty: float = 1.0,
        stop: str | Sequence[str] | None = None,
        stream: StreamFn | None = None,
        **step_options: Any,
    ) -> Tensor:
        """Generate token ids, int64 (N, P + n): the start token or prompt, then new tokens.

        Args:
            num_samples: N.
            generator: seeds every draw (same seed, same tokens).
            cond: must be None (these models are unconditional; steer them with a prompt).
            prompt: text (encoded with the data's tokenizer; characters outside a char
                vocabulary raise a `DataError`) or ids (P,) / (N, P); None or "" starts from
                one start token drawn by the model (see its module docstring).
            max_new_tokens: default spec.shape[0] - 1 without a prompt (samples shaped like
                the data's blocks) and spec.shape[0] with one.
            temperature: <= 0 is greedy; top_k, top_p, repetition_penalty, stop, stream: the
                decoding controls of this module.
            step_options: the model's own options of `step_function` (`step_options`), e.g.
                gpt's use_cache=False (recompute the whole context every step: same tokens,
                slower; for checks and benchmarks).

        Returns:
            int64 (N, P + n); rows that stopped early end in `PAD_ID` (-1).
        """
        if cond:
            raise ConfigError(
                f"{self.name} is unconditional: pass cond=None (use prompt= to steer it)"
            )
        if unknown := sorted(set(step_options) - set(self.step_options)):
            own = f", and its own {', '.join(self.step_options)}" if self.step_options else ""
            raise ConfigError(
                f"{self.name}.sample has no option {', '.join(map(repr, unknown))}; it takes "
                "generator, prompt, max_new_tokens, temperature, top_k, top_p, "
                f"repetition_penalty, stop, stream{own}"
            )
        self._check_ready()
        module = self if isinstance(self, torch.nn.Module) else None
        was_training = module is not None and module.training
        if module is not None:
            module.eval()
        try:
            with torch.no_grad():
                out = sample_tokens(
                    self.step_function(**step_options),
                    self.spec,
                    num_samples,
                    start=self._start_tokens,
                    generator=generator,
                    prompt=prompt,
                    max_new_tokens=max_new_tokens,
                    temperature=temperature,
                    top_k=top_k,
                    top_p=top_p,
                    repetition_penalty=repetition_penalty,
                    stop=stop,
                    stream=stream,
                )
        finally:
            if module is not None:
                module.train(was_training)
        return out.cpu()
