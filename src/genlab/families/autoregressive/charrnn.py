"""char-RNN: an LSTM or GRU language model over the token ids of a text data set.

Karpathy's char-rnn ("The Unreasonable Effectiveness of Recurrent Neural Networks", 2015), after
Graves ("Generating Sequences With Recurrent Neural Networks", 2013) and Sutskever, Martens &
Hinton (2011): tokens are embedded, run through a stack of recurrent layers (LSTM, Hochreiter &
Schmidhuber 1997; or GRU, Cho et al. 2014), and a linear layer gives the next token's logits,

    p(x_1 .. x_{T-1} | x_0) = prod_t softmax(W h_t + b)[x_{t+1}],  h_t = RNN(h_{t-1}, E x_t).

Options (`CharRNNConfig`): the cell, embedding size, hidden size, layers, dropout (on the
embeddings, between layers and before the output layer; Zaremba et al. 2014) and weight tying
(the output layer reuses the embedding matrix, Press & Wolf 2017 and Inan et al. 2017; when the
hidden size differs from the embedding size a bias-free projection hidden -> embedding comes
first). LSTM forget-gate biases start at 1 (Jozefowicz et al. 2015).

Training (`loss`): next-token cross-entropy on the data's blocks x (B, T), read from a zero
state at the start of every block (no state is carried between blocks, which the one training
loop draws in random order): x[:, :-1] is read, x[:, 1:] predicted.

Likelihood (`log_likelihood`), the convention of `gpt`: the exact log p(x_1 .. x_{T-1} | x_0)
in nats per row, the first token conditioned on and not scored (kind "exact";
`details["tokens_scored"]` = T - 1). An RNN has no context limit, so rows of any length T >= 2
are scored.

Sampling (`sample`): the shared decoding controls of `decoding.py` with the recurrent state as
the step state (each new token costs one step of the recurrence): greedy when temperature <= 0,
temperature, top-k, top-p, repetition penalty, stop strings, streaming, `max_new_tokens`, a
text `prompt` (characters outside a char vocabulary raise a `DataError`). Without a prompt each
row starts with one token drawn from the unigram frequencies of the training tokens (counted
while training, like `gpt`), so samples are (N, spec.shape[0]) int64 like the data's blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.core.contract import Batch, DataSpec, LogLikelihood, LossOutput, NeuralModel
from genlab.core.errors import ConfigError, DataError
from genlab.core.registry import register
from genlab.families.autoregressive.decoding import TokenSampling

Cell = Literal["lstm", "gru"]
INIT_RANGE = 0.1  # uniform init of embeddings and output layer (Zaremba et al. 2014)
SCORE_CHUNK = 256  # rows scored per forward pass in log_likelihood


@dataclass(frozen=True)
class CharRNNConfig:
    """Configuration of `CharRNN` (the `model:` section of a run's YAML, field for field).

    Args:
        cell: "lstm" or "gru".
        embed_dim: size of the token embedding.
        hidden: size of each recurrent layer's state.
        num_layers: stacked recurrent layers.
        dropout: dropout on the embeddings, between layers and before the output layer.
        tie_weights: the output layer reuses the embedding matrix (with a projection from
            `hidden` to `embed_dim` when they differ).
    """

    cell: Cell = "lstm"
    embed_dim: int = 64
    hidden: int = 256
    num_layers: int = 2
    dropout: float = 0.0
    tie_weights: bool = False

    def __post_init__(self) -> None:
        if self.cell not in get_args(Cell):
            raise ConfigError(f"charrnn.cell={self.cell!r} is not one of 'lstm', 'gru'")
        for name in ("embed_dim", "hidden", "num_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"charrnn.{name}={value!r}: set it to an integer >= 1")
        d = self.dropout
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0.0 <= d < 1.0:
            raise ConfigError(f"charrnn.dropout={d!r}: set it in [0, 1), e.g. 0.1")
        if not isinstance(self.tie_weights, bool):
            raise ConfigError("charrnn.tie_weights must be true or false")


def _check_spec(spec: DataSpec) -> None:
    data = spec.name or "this data"
    if spec.modality != "text" or spec.discrete_levels is None or len(spec.shape) != 1:
        raise ConfigError(
            f"charrnn models text (int64 token blocks (B, T) with a vocabulary), but {data} is "
            f"{spec.modality} with shape {spec.shape}: load a text file, e.g. "
            "genlab.data.load('book.txt')"
        )
    if spec.shape[0] < 2:
        raise ConfigError(f"charrnn needs data blocks of 2 or more tokens, {data} has 1")


@register("charrnn", CharRNNConfig, "LSTM/GRU language model (char-rnn), exact likelihood")
class CharRNN(TokenSampling, NeuralModel):
    """A recurrent (LSTM or GRU) language model over the token ids of a text data set.

    Args:
        config: a `CharRNNConfig`.
        spec: the text data set's spec (vocabulary size in `discrete_levels`, block length in
            `shape`, tokenizer for prompts and stop strings).
    """

    def __init__(self, config: CharRNNConfig, spec: DataSpec) -> None:
        super().__init__()
        _check_spec(spec)
        self.config = config
        self.spec = spec
        self.vocab_size = spec.discrete_levels
        self.embedding = nn.Embedding(self.vocab_size, config.embed_dim)
        rnn = nn.LSTM if config.cell == "lstm" else nn.GRU
        self.rnn = rnn(
            config.embed_dim,
            config.hidden,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.dropout = nn.Dropout(config.dropout)
        if config.tie_weights:
            self.projection = (
                nn.Linear(config.hidden, config.embed_dim, bias=False)
                if config.hidden != config.embed_dim
                else None
            )
            self.head = None
            self.head_bias = nn.Parameter(torch.zeros(self.vocab_size))
        else:
            self.projection = None
            self.head = nn.Linear(config.hidden, self.vocab_size)
            self.head_bias = None
        # How often each token occurs in the training data: the start-token distribution.
        self.register_buffer("token_counts", torch.zeros(self.vocab_size, dtype=torch.float64))
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.uniform_(self.embedding.weight, -INIT_RANGE, INIT_RANGE)
        if self.head is not None:
            nn.init.uniform_(self.head.weight, -INIT_RANGE, INIT_RANGE)
            nn.init.zeros_(self.head.bias)
        if self.config.cell == "lstm":
            # gates are ordered input, forget, cell, output: open the forget gate at the start
            hidden = self.config.hidden
            for name, p in self.rnn.named_parameters():
                if name.startswith("bias_ih"):
                    with torch.no_grad():
                        p[hidden : 2 * hidden].fill_(1.0)

    def forward(self, ids: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """Next-token logits for every position of ids (B, T), continuing `state`.

        Returns:
            (logits (B, T, V), the recurrent state after the last token).
        """
        h = self.dropout(self.embedding(ids))  # (B, T, E)
        h, state = self.rnn(h, state)  # (B, T, H)
        h = self.dropout(h)
        if self.head is not None:
            return self.head(h), state  # (B, T, V)
        if self.projection is not None:
            h = self.projection(h)  # (B, T, E)
        return F.linear(h, self.embedding.weight, self.head_bias), state  # (B, T, V)

    def _check_ids(self, x: Tensor, what: str) -> None:
        if not isinstance(x, Tensor) or x.dtype != torch.int64 or x.dim() != 2 or x.shape[1] < 2:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            dtype = x.dtype if isinstance(x, Tensor) else ""
            raise DataError(
                f"charrnn.{what} takes int64 token ids (B, T) with T >= 2 (the first token is "
                f"context), got {shape} {dtype}"
            )
        if x.numel() and (x.min() < 0 or x.max() >= self.vocab_size):
            raise DataError(
                f"charrnn.{what}: token ids must be in [0, {self.vocab_size}), got "
                f"{int(x.min())}..{int(x.max())}: use ids from this model's tokenizer"
            )

    def loss(self, batch: Batch, *, key: str = "main") -> LossOutput:
        """Next-token cross-entropy (nats per token) on blocks x (B, T)."""
        x = batch.x
        self._check_ids(x, "loss")
        if self.training and torch.is_grad_enabled():
            with torch.no_grad():
                self.token_counts += torch.bincount(x.reshape(-1), minlength=self.vocab_size).to(
                    self.token_counts
                )
        logits, _ = self(x[:, :-1])  # (B, T-1, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), x[:, 1:].reshape(-1))
        return LossOutput(loss, {"nll": float(loss.detach())})

    @torch.no_grad()
    def log_likelihood(self, x: Tensor, *, cond: dict[str, Tensor] | None = None) -> LogLikelihood:
        """log p(x_1 .. x_{T-1} | x_0) in nats, (B,): every token scored given all before it."""
        if cond:
            raise ConfigError("charrnn is unconditional: pass cond=None")
        self._check_ids(x, "log_likelihood")
        was_training = self.training
        self.eval()
        device = self.embedding.weight.device
        try:
            parts = []
            for rows in x.split(SCORE_CHUNK):
                rows = rows.to(device)
                logits, _ = self(rows[:, :-1])  # (b, T-1, V)
                logp = torch.log_softmax(logits.float(), dim=-1)
                parts.append(logp.gather(-1, rows[:, 1:, None])[..., 0].sum(dim=1).cpu())
        finally:
            self.train(was_training)
        nats = torch.cat(parts) if parts else torch.zeros(0)
        return LogLikelihood(nats, "exact", {"tokens_scored": x.shape[1] - 1})

    # --- decoding ---------------------------------------------------------------------------

    def step_function(self) -> Callable[[Tensor, Any], tuple[Tensor, Any]]:
        """The decoding step (ids (B, t), state) -> (logits (B, V), state) for `generate`.

        The state is the recurrent state ((h, c) for an LSTM, h for a GRU), each (L, B, H).
        """
        device = self.embedding.weight.device

        def step(ids: Tensor, state: Any) -> tuple[Tensor, Any]:
            logits, state = self(ids.to(device), state)  # (B, t, V)
            return logits[:, -1].float(), state

        return step

    def _start_tokens(self, n: int, generator: torch.Generator | None) -> Tensor:
        counts = self.token_counts.float().cpu()
        if counts.sum() == 0:  # untrained: uniform
            counts = torch.ones_like(counts)
        device = generator.device if generator is not None else torch.device("cpu")
        ids = torch.multinomial(counts.to(device), n, replacement=True, generator=generator)
        return ids.cpu()[:, None]  # (N, 1)
