"""GPT: a decoder-only transformer language model with a key/value cache.

Radford et al., "Improving Language Understanding by Generative Pre-Training" (2018) and
"Language Models are Unsupervised Multitask Learners" (GPT-2, 2019), on the transformer of
Vaswani et al. (2017). The model factorises a token sequence left to right,

    p(x_1..x_T | x_0) = prod_t p(x_t | x_0..x_{t-1}),

with pre-norm blocks  h = h + Attn(LN(h));  h = h + MLP(LN(h))  and causal self-attention
through `torch.nn.functional.scaled_dot_product_attention` (fused kernels where available).

Options (`GPTConfig`): rotary positions (RoPE, Su et al., 2021, "RoFormer"; the default) or
learned absolute positions (GPT-2), weight tying between the token embedding and the output
layer (Press & Wolf, 2017), squared-ReLU (default; So et al., 2021, "Primer") or GELU MLPs,
residual projections initialised at zero (default) or GPT-2's scaled init, dropout, biases on or
off. The defaults are what made the small model learn fastest per second of CPU time on Tiny
Shakespeare (benchmarks/gpt_shakespeare.py); `positions=learned, activation=gelu,
zero_init_residual=false` is nanoGPT's model.

Training (`loss`): next-token cross-entropy on the data's blocks x (B, T): x[:, :-1] is read,
x[:, 1:] is predicted, so the context is T - 1 tokens.

Likelihood (`log_likelihood`): the exact log-probability in nats of x[:, 1:] given the tokens
before each one, summed over the T - 1 scored tokens; the first token x[:, 0] is conditioned
on, not scored (kind "exact"; `details["tokens_scored"]` = T - 1, so divide for nats/token).

Sampling (`sample`): the shared decoding controls of `decoding.py` (greedy when
temperature <= 0, temperature, top-k, top-p, repetition penalty, stop strings, streaming,
`max_new_tokens`, a text `prompt`). Without a prompt each row starts with one token drawn from
the unigram frequencies of the training tokens (counted in `loss` while training, a buffer
saved with the weights; uniform before any training), so samples look like the data's blocks,
which start anywhere in the text: the result is (N, spec.shape[0]) like the data.

Incremental decoding keeps every layer's keys and values (`KVCache`): each new token costs one
position's work instead of a forward pass over the whole context. Context limit: the model sees
at most `block_size` tokens. A prompt longer than that is cropped to its last `block_size`
tokens (the returned ids still hold the whole prompt), and once prompt plus generated tokens
pass `block_size`, each step re-reads the last `block_size` tokens from scratch, exactly like a
full forward pass on the cropped window. (A cache cannot simply drop its oldest entry: the
deeper layers' keys of the tokens that remain were computed while they saw the dropped ones.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.core.contract import Batch, DataSpec, LogLikelihood, LossOutput, NeuralModel
from genlab.core.errors import ConfigError, DataError
from genlab.core.registry import register
from genlab.families.autoregressive.decoding import (
    DecodingOptions,
    StreamFn,
    TokenSampling,
    beam_search,
    generate,
    prompt_tensor,
    spec_decoder,
    truncate_at_stop,
)

Positions = Literal["learned", "rotary"]
Activation = Literal["gelu", "relu2"]
INIT_STD = 0.02  # GPT-2's initialisation scale


@dataclass(frozen=True)
class GPTConfig:
    """Configuration of `GPT` (the `model:` section of a run's YAML, field for field).

    Args:
        num_layers: transformer blocks.
        num_heads: attention heads; `dim` must be divisible by it.
        dim: width of the residual stream (embedding size).
        block_size: the context, in tokens; None means the data's block length minus one
            (what `loss` reads per row).
        positions: "learned" absolute position embeddings or "rotary" (RoPE) in attention.
        rope_base: the base of the rotary frequencies.
        mlp_ratio: hidden width of each MLP as a multiple of `dim`.
        activation: the MLP's nonlinearity: "gelu" (GPT-2) or "relu2", squared ReLU (So et
            al., 2021, "Primer"), cheaper on CPUs and as good or better for small models.
        dropout: dropout on embeddings, attention weights and residual branches.
        bias: biases in linear layers and LayerNorms.
        tie_weights: the output layer reuses the token embedding matrix.
        zero_init_residual: start the projections that write into the residual stream at
            zero, so every block begins as the identity; otherwise GPT-2's scaled init.
    """

    num_layers: int = 4
    num_heads: int = 4
    dim: int = 128
    block_size: int | None = None
    positions: Positions = "rotary"
    rope_base: float = 10000.0
    mlp_ratio: int = 4
    activation: Activation = "relu2"
    dropout: float = 0.0
    bias: bool = False
    tie_weights: bool = True
    zero_init_residual: bool = True

    def __post_init__(self) -> None:
        for name in ("num_layers", "num_heads", "dim", "mlp_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"gpt.{name}={value!r}: set it to an integer >= 1")
        if self.dim % self.num_heads:
            raise ConfigError(
                f"gpt.dim={self.dim} is not divisible by gpt.num_heads={self.num_heads}: "
                "each head takes dim / num_heads channels; e.g. dim 128 with 4 heads"
            )
        for key, kind in (("positions", Positions), ("activation", Activation)):
            if getattr(self, key) not in get_args(kind):
                raise ConfigError(
                    f"gpt.{key}={getattr(self, key)!r} is not one of "
                    f"{', '.join(map(repr, get_args(kind)))}"
                )
        if self.positions == "rotary" and (self.dim // self.num_heads) % 2:
            raise ConfigError(
                f"gpt.positions='rotary' rotates channel pairs, so the head size "
                f"dim / num_heads = {self.dim // self.num_heads} must be even"
            )
        if self.block_size is not None and (
            isinstance(self.block_size, bool)
            or not isinstance(self.block_size, int)
            or self.block_size < 1
        ):
            raise ConfigError(
                f"gpt.block_size={self.block_size!r}: set an integer >= 1, or null for the "
                "data's block length minus one"
            )
        if not self.rope_base > 1:
            raise ConfigError(f"gpt.rope_base={self.rope_base}: set it above 1, e.g. 10000")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"gpt.dropout={self.dropout}: set it in [0, 1), e.g. 0.1")


def _dropout(p: float) -> nn.Module:
    # Identity when off: decoding one token at a time is dominated by per-call overheads.
    return nn.Dropout(p) if p > 0 else nn.Identity()


class KVCache:
    """Keys and values of every layer for incremental decoding, preallocated to the context.

    Args:
        num_layers, batch, num_heads, head_dim, capacity: sizes; each layer holds keys and
            values (B, H, capacity, D).
    """

    def __init__(
        self,
        num_layers: int,
        batch: int,
        num_heads: int,
        head_dim: int,
        capacity: int,
        *,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        shape = (num_layers, batch, num_heads, capacity, head_dim)
        self.keys = torch.empty(shape, device=device, dtype=dtype)
        self.values = torch.empty(shape, device=device, dtype=dtype)
        self.length = 0  # positions filled (the same for every layer once a forward is done)

    @property
    def capacity(self) -> int:
        return self.keys.shape[3]

    def append(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store k, v (B, H, t, D) after the cached positions; return all keys and values."""
        start, stop = self.length, self.length + k.shape[2]
        self.keys[layer, :, :, start:stop] = k
        self.values[layer, :, :, start:stop] = v
        return self.keys[layer, :, :, :stop], self.values[layer, :, :, :stop]

    def select(self, rows: Tensor) -> KVCache:
        """The cache of batch rows `rows` (for beam search)."""
        self.keys = self.keys[:, rows]
        self.values = self.values[:, rows]
        return self


def rotary_tables(head_dim: int, positions: Tensor, base: float) -> tuple[Tensor, Tensor]:
    """cos and sin (T, head_dim / 2) of RoPE's angles position * base^(-2i / head_dim)."""
    inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = positions.float()[:, None] * inv_freq[None, :]  # (T, D/2)
    return angles.cos(), angles.sin()


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate channel pairs (first half, second half) of x (B, H, T, D) by the angles."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention through scaled_dot_product_attention."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.qkv = nn.Linear(config.dim, 3 * config.dim, bias=config.bias)
        self.proj = nn.Linear(config.dim, config.dim, bias=config.bias)
        self.dropout = config.dropout
        self.resid_dropout = _dropout(config.dropout)

    def forward(
        self,
        x: Tensor,
        rotary: tuple[Tensor, Tensor] | None,
        cache: KVCache | None,
        layer: int,
    ) -> Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # each (B, T, C)
        q = q.view(B, T, self.num_heads, -1).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, self.num_heads, -1).transpose(1, 2)  # (B, H, T, D)
        v = v.view(B, T, self.num_heads, -1).transpose(1, 2)  # (B, H, T, D)
        if rotary is not None:
            q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        past = 0
        if cache is not None:
            past = cache.length
            k, v = cache.append(layer, k, v)  # (B, H, past + T, D)
        dropout = self.dropout if self.training else 0.0
        if past == 0:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        elif T == 1:  # one new token attends to every cached position
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        else:  # several new tokens after a cache: query i sees keys up to past + i
            mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(past)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C)
        return self.resid_dropout(self.proj(y))


class MLP(nn.Module):
    """Position-wise feed-forward: Linear, GELU, Linear, dropout."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        hidden = config.mlp_ratio * config.dim
        self.up = nn.Linear(config.dim, hidden, bias=config.bias)
        self.down = nn.Linear(hidden, config.dim, bias=config.bias)
        self.dropout = _dropout(config.dropout)
        self.activation = config.activation

    def forward(self, x: Tensor) -> Tensor:
        h = self.up(x)  # (B, T, mlp_ratio * C)
        h = F.gelu(h) if self.activation == "gelu" else F.relu(h).square()
        return self.dropout(self.down(h))


class Block(nn.Module):
    """Pre-norm transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.dim, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.norm2 = nn.LayerNorm(config.dim, bias=config.bias)
        self.mlp = MLP(config)

    def forward(
        self, x: Tensor, rotary: tuple[Tensor, Tensor] | None, cache: KVCache | None, layer: int
    ) -> Tensor:
        x = x + self.attn(self.norm1(x), rotary, cache, layer)  # (B, T, C)
        return x + self.mlp(self.norm2(x))  # (B, T, C)


def _check_spec(config: GPTConfig, spec: DataSpec) -> int:
    """The context length for this data; raises ConfigError when gpt cannot model it."""
    data = spec.name or "this data"
    if spec.modality != "text" or spec.discrete_levels is None or len(spec.shape) != 1:
        raise ConfigError(
            f"gpt models text (int64 token blocks (B, T) with a vocabulary), but {data} is "
            f"{spec.modality} with shape {spec.shape}: load a text file, e.g. "
            "genlab.data.load('book.txt')"
        )
    block_length = spec.shape[0]
    if block_length < 2:
        raise ConfigError(f"gpt needs data blocks of 2 or more tokens, {data} has {block_length}")
    if config.block_size is None:
        return block_length - 1
    if config.block_size < block_length - 1:
        raise ConfigError(
            f"gpt.block_size={config.block_size} is shorter than the {block_length - 1} tokens "
            f"each training block of {data} gives the model to read: raise gpt.block_size to "
            f"{block_length - 1} (or null), or load the data with block_size="
            f"{config.block_size + 1}"
        )
    return config.block_size


@register(
    "gpt",
    GPTConfig,
    "decoder-only transformer language model (nanoGPT-style), KV-cache decoding",
)
class GPT(TokenSampling, NeuralModel):
    """A GPT language model over the token ids of a text data set.

    Args:
        config: a `GPTConfig`.
        spec: the text data set's spec (vocabulary size in `discrete_levels`, block length in
            `shape`, tokenizer for prompts and stop strings).
    """

    step_options = ("use_cache",)  # sample(use_cache=False): no key/value cache

    def __init__(self, config: GPTConfig, spec: DataSpec) -> None:
        super().__init__()
        self.config = config
        self.spec = spec
        self.block_size = _check_spec(config, spec)
        self.vocab_size = spec.discrete_levels
        self.token_embedding = nn.Embedding(self.vocab_size, config.dim)
        self.position_embedding = (
            nn.Embedding(self.block_size, config.dim) if config.positions == "learned" else None
        )
        self.dropout = _dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.norm = nn.LayerNorm(config.dim, bias=config.bias)
        # With tying the output layer is the embedding matrix itself (no second parameter, so
        # nothing is saved twice).
        self.head = (
            None if config.tie_weights else nn.Linear(config.dim, self.vocab_size, bias=False)
        )
        if config.positions == "rotary":  # the angles of every position, (block_size, D / 2)
            cos, sin = rotary_tables(self.head_dim, torch.arange(self.block_size), config.rope_base)
            self.register_buffer("rotary_cos", cos, persistent=False)
            self.register_buffer("rotary_sin", sin, persistent=False)
        # How often each token occurs in the training data: the start-token distribution.
        # Integer, so that the weight EMA copies it instead of averaging it.
        self.register_buffer("token_counts", torch.zeros(self.vocab_size, dtype=torch.int64))
        self._init_weights()

    def _init_weights(self) -> None:
        # GPT-2: N(0, 0.02) weights, zero biases; the projections that write into the residual
        # stream scaled by 1/sqrt(2 * num_layers) so the stream's variance does not grow with
        # depth.
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.dim() < 2:  # LayerNorm gains
                nn.init.ones_(p)
            elif name.endswith(("proj.weight", "down.weight")):
                if self.config.zero_init_residual:
                    nn.init.zeros_(p)
                else:
                    nn.init.normal_(p, std=INIT_STD / math.sqrt(2 * self.config.num_layers))
            else:
                nn.init.normal_(p, std=INIT_STD)

    @property
    def head_dim(self) -> int:
        return self.config.dim // self.config.num_heads

    def forward(self, ids: Tensor, cache: KVCache | None = None, *, last_only: bool = False):
        """Next-token logits for token ids (B, T), continuing `cache` when one is given.

        Args:
            ids: int64 (B, T); with a cache, T tokens after its `length` cached positions
                (their total must stay within `block_size`).
            cache: the key/value cache, extended in place, or None for a plain forward.
            last_only: return only the last position's logits (B, V) (generation).

        Returns:
            logits (B, T, V), or (B, V) with `last_only`.
        """
        B, T = ids.shape
        start = cache.length if cache is not None else 0
        if start + T > self.block_size:
            raise DataError(
                f"gpt sees at most block_size={self.block_size} tokens, got {start + T}: crop "
                "the input to its last block_size tokens"
            )
        h = self.token_embedding(ids)  # (B, T, C)
        rotary = None
        if self.position_embedding is not None:
            positions = torch.arange(start, start + T, device=ids.device)  # (T,)
            h = h + self.position_embedding(positions)  # (B, T, C)
        else:
            rotary = (self.rotary_cos[start : start + T], self.rotary_sin[start : start + T])
        h = self.dropout(h)
        for layer, block in enumerate(self.blocks):
            h = block(h, rotary, cache, layer)  # (B, T, C)
        if cache is not None:
            cache.length += T
        if last_only:
            h = h[:, -1]  # (B, C)
        h = self.norm(h)
        weight = self.token_embedding.weight if self.head is None else self.head.weight
        return F.linear(h, weight)  # (B, T, V) or (B, V)

    def _check_ids(self, x: Tensor, what: str) -> None:
        if x.dtype != torch.int64 or x.dim() != 2 or x.shape[1] < 2:
            raise DataError(
                f"gpt.{what} takes int64 token ids (B, T) with T >= 2, got "
                f"{tuple(x.shape)} {x.dtype}"
            )
        if x.shape[1] - 1 > self.block_size:
            raise DataError(
                f"gpt.{what}: rows of {x.shape[1]} tokens give {x.shape[1] - 1} tokens of "
                f"context, more than block_size={self.block_size}: cut them into blocks of at "
                f"most {self.block_size + 1} tokens"
            )
        if x.numel() and (x.min() < 0 or x.max() >= self.vocab_size):
            raise DataError(
                f"gpt.{what}: token ids must be in [0, {self.vocab_size}), got "
                f"{int(x.min())}..{int(x.max())}: use ids from this model's tokenizer"
            )

    def loss(self, batch: Batch, *, key: str = "main") -> LossOutput:
        """Next-token cross-entropy (nats per token) on blocks x (B, T)."""
        x = batch.x
        self._check_ids(x, "loss")
        if self.training and torch.is_grad_enabled():
            with torch.no_grad():
                self.token_counts += torch.bincount(x.reshape(-1), minlength=self.vocab_size)
        logits = self(x[:, :-1])  # (B, T-1, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), x[:, 1:].reshape(-1))
        return LossOutput(loss, {"nll": float(loss.detach())})

    @torch.no_grad()
    def log_likelihood(self, x: Tensor, *, cond: dict[str, Tensor] | None = None) -> LogLikelihood:
        """log p(x_1..x_{T-1} | x_0) in nats, (B,): every token scored given all before it.

        The first token x[:, 0] is conditioned on and not scored; T - 1 must fit the context.
        """
        self._check_ids(x, "log_likelihood")
        was_training = self.training
        self.eval()
        try:
            logits = self(x[:, :-1]).float()  # (B, T-1, V)
        finally:
            self.train(was_training)
        logp = torch.log_softmax(logits, dim=-1)
        nats = logp.gather(-1, x[:, 1:, None])[..., 0].sum(dim=1)  # (B,)
        return LogLikelihood(nats, "exact", {"tokens_scored": x.shape[1] - 1})

    # --- decoding ---------------------------------------------------------------------------

    def step_function(self, *, use_cache: bool = True) -> Callable[[Tensor, Any], Any]:
        """The decoding step (ids (B, t), state) -> (logits (B, V), state) for `generate`.

        The state is the cache and the tokens in view. With `use_cache=False` every step runs a
        full forward pass over the (cropped) context: the reference the cache must match.
        """
        param = self.token_embedding.weight

        def step(ids: Tensor, state: dict | None) -> tuple[Tensor, dict]:
            ids = ids.to(param.device)
            if state is None:
                state = {"context": ids[:, :0], "cache": None}
            context = torch.cat([state["context"], ids], dim=1)[:, -self.block_size :]
            cache = state["cache"]
            fits = cache is not None and cache.length + ids.shape[1] <= self.block_size
            if use_cache and fits:
                logits = self(ids, cache, last_only=True)
            else:
                if use_cache:  # (re)fill a fresh cache from the cropped context
                    cache = KVCache(
                        self.config.num_layers,
                        ids.shape[0],
                        self.config.num_heads,
                        self.head_dim,
                        self.block_size,
                        device=param.device,
                        dtype=param.dtype,
                    )
                logits = self(context, cache, last_only=True)
            return logits.float(), {"context": context, "cache": cache}

        return step

    def _start_tokens(self, n: int, generator: torch.Generator | None) -> Tensor:
        counts = self.token_counts.double().cpu()
        if counts.sum() == 0:  # untrained: uniform
            counts = torch.ones_like(counts)
        device = generator.device if generator is not None else torch.device("cpu")
        ids = torch.multinomial(counts.to(device), n, replacement=True, generator=generator)
        return ids.cpu()[:, None]  # (N, 1)

    def generate_text(
        self,
        prompt: str = "",
        *,
        num_samples: int = 1,
        generator: torch.Generator | None = None,
        max_new_tokens: int = 200,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        repetition_penalty: float = 1.0,
        stop: str | Sequence[str] | None = None,
        stream: StreamFn | None = None,
    ) -> list[str]:
        """Continue `prompt`: the texts (prompt included), each cut after its stop string."""
        ids = self.sample(
            num_samples,
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
        if not prompt:  # drop the start token: it was not asked for
            ids = ids[:, 1:]
        texts = spec_decoder(self.spec)(ids)
        return [prompt + truncate_at_stop(t[len(prompt) :], stop) for t in texts]

    @torch.no_grad()
    def beam_search(
        self, prompt: str | Sequence[int] | Tensor, *, num_beams: int = 4, max_new_tokens: int = 50
    ) -> tuple[Tensor, Tensor]:
        """The `num_beams` most likely continuations of one prompt (decoding.beam_search).

        Returns:
            (ids (num_beams, P + max_new_tokens), log-probabilities (num_beams,)), best first.
        """
        ids = prompt_tensor(self.spec, prompt, 1)
        if ids.shape[1] == 0:
            raise DataError("beam_search needs a non-empty prompt")
        was_training = self.training
        self.eval()
        try:

            def reorder(state: dict, rows: Tensor) -> dict:
                rows = rows.to(state["context"].device)
                cache = state["cache"].select(rows) if state["cache"] is not None else None
                return {"context": state["context"][rows], "cache": cache}

            seqs, scores = beam_search(
                self.step_function(),
                ids,
                num_beams=num_beams,
                max_new_tokens=max_new_tokens,
                reorder_state=reorder,
            )
        finally:
            self.train(was_training)
        return seqs.cpu(), scores.cpu()

    def greedy_ids(self, prompt_ids: Tensor, max_new_tokens: int, *, use_cache: bool = True):
        """Greedy continuation of int64 prompt ids (B, P): ids (B, P + max_new_tokens)."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                out = generate(
                    self.step_function(use_cache=use_cache),
                    prompt_ids,
                    options=DecodingOptions(max_new_tokens=max_new_tokens, temperature=0.0),
                )
        finally:
            self.train(was_training)
        return out.ids
