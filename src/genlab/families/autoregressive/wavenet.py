"""WaveNet: dilated causal convolutions over mu-law quantized 1-D signals, exact likelihood.

van den Oord, Dieleman, Zen, Simonyan, Vinyals, Graves, Kalchbrenner, Senior & Kavukcuoglu,
"WaveNet: A Generative Model for Raw Audio" (2016). A signal x_1..x_T (C channels) in [-1, 1]
is companded and quantized to L levels (mu = L - 1; L = 256 as in the paper),

    f(x) = sign(x) ln(1 + mu |x|) / ln(1 + mu),     q = floor((f(x) + 1) / 2 * mu + 1/2),

and modelled autoregressively with a softmax over the L levels:

    p(q) = prod_t prod_c p(q[t, c] | q[<t, :])

(the channels of one time step are independent given the past; audio is mono). The network:
the previous step's levels are embedded (a learned vector per level and channel, the same as
a 1 x 1 convolution of one-hot inputs) and shifted one step right, then go through
`num_stacks` stacks of `layers_per_stack` residual layers with dilations 1, 2, 4, ...; each
layer is a causal dilated convolution followed by the gated activation tanh(a) * sigmoid(b),
a 1 x 1 residual connection and a 1 x 1 skip connection; the summed skips go through
ReLU - 1 x 1 - ReLU - 1 x 1 to the logits. The prediction at t sees the `receptive_field`
previous steps.

Data. Audio from the `audio` source is already in [-1, 1] (spec.value_range). Other 1-D
signals (the `timeseries` and `statsmodels` sources, (B, T, C) in their own units) need
`input_range: [low, high]`: values are mapped linearly, 2 (x - low) / (high - low) - 1, and
clipped to [-1, 1] (the count clipped is in `LogLikelihood.details["clipped"]`); samples are
mapped back. A good choice is slightly wider than the train data's min and max, e.g. with
`normalize=true` (standardised series) `input_range: [-4, 4]`.

Likelihood. `log_likelihood` is exact for the quantized signal q: log p(q) in nats per
sequence, a discrete likelihood (not a density of the continuous values). Bits per sample is
`-nats / (T * C * ln 2)` (`details["bits_per_sample"]`); a uniform model gives log2(L) = 8.

Sampling draws one step at a time. With `incremental=True` (the default) it follows
Paine et al., "Fast Wavenet Generation Algorithm" (2016): every layer keeps a queue (a ring
buffer) of its last (kernel_size - 1) * dilation inputs, so a step costs one column of every
layer instead of a pass over the receptive field; `incremental=False` recomputes the network
over the last `receptive_field` steps (the reference the tests compare against).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.core.contract import Batch, DataSpec, LogLikelihood, LossOutput, NeuralModel
from genlab.core.errors import ConfigError, DataError
from genlab.core.registry import register

SAMPLE_CHUNK = 256  # sequences sampled per pass
LIKELIHOOD_CHUNK = 64  # sequences scored per forward pass


def mu_law_encode(x: Tensor, levels: int = 256) -> Tensor:
    """Mu-law companding and quantization (ITU-T G.711 form, mu = levels - 1).

    Args:
        x: float values in [-1, 1] (values outside are clipped).
        levels: L.

    Returns:
        int64 levels in 0..L-1, same shape as x.
    """
    mu = levels - 1
    x = x.double().clamp(-1.0, 1.0)
    companded = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)
    return ((companded + 1.0) / 2.0 * mu + 0.5).floor().clamp(0, mu).long()


def mu_law_decode(q: Tensor, levels: int = 256) -> Tensor:
    """The inverse of `mu_law_encode` at the level centres: int levels -> float32 in [-1, 1]."""
    mu = levels - 1
    companded = 2.0 * q.double() / mu - 1.0
    x = torch.sign(companded) * ((1.0 + mu) ** companded.abs() - 1.0) / mu
    return x.float()


@dataclass(frozen=True)
class WaveNetConfig:
    """Configuration of `WaveNet` (the `model:` section of a run's YAML, field for field).

    Args:
        levels: mu-law levels L (mu = L - 1); 256 as in the paper.
        residual_channels: width of the residual stream.
        dilation_channels: gated units per layer (the dilated convolution gives twice this).
        skip_channels: width of the skip connections and of the output layers.
        kernel_size: taps of each dilated causal convolution (2 in the paper).
        layers_per_stack: layers of one stack, dilations 1, 2, ..., 2**(layers_per_stack - 1).
        num_stacks: stacks repeated one after another.
        input_range: (low, high) of the data's values, mapped onto [-1, 1]; None takes the
            data's `spec.value_range`, which must then lie within [-1, 1] (audio). Time series
            need it (see the module docstring).
    """

    levels: int = 256
    residual_channels: int = 32
    dilation_channels: int = 32
    skip_channels: int = 64
    kernel_size: int = 2
    layers_per_stack: int = 8
    num_stacks: int = 2
    input_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.levels < 2:
            raise ConfigError(f"wavenet.levels={self.levels}: set it to 2 or more, e.g. 256")
        for key in (
            "residual_channels",
            "dilation_channels",
            "skip_channels",
            "layers_per_stack",
            "num_stacks",
        ):
            if getattr(self, key) < 1:
                raise ConfigError(f"wavenet.{key}={getattr(self, key)}: set it to 1 or more")
        if self.kernel_size < 2:
            raise ConfigError(f"wavenet.kernel_size={self.kernel_size}: set it to 2 or more")
        if self.input_range is not None:
            low, high = self.input_range
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise ConfigError(
                    f"wavenet.input_range={list(self.input_range)}: give finite [low, high] with "
                    "low < high, e.g. [-4, 4] for standardised data"
                )

    @property
    def dilations(self) -> tuple[int, ...]:
        return tuple(2**i for i in range(self.layers_per_stack)) * self.num_stacks

    @property
    def receptive_field(self) -> int:
        """Previous steps the prediction at t sees: 1 (the shift) + the convolutions' reach."""
        return 1 + (self.kernel_size - 1) * sum(self.dilations)


def _input_range(config: WaveNetConfig, spec: DataSpec) -> tuple[float, float]:
    """(low, high) mapped onto [-1, 1]; ConfigError when the data cannot be modelled."""
    data = spec.name or "this data"
    if spec.modality != "sequence" or len(spec.shape) != 2:
        hint = "use gpt or charrnn for token ids" if spec.modality == "text" else "use pixelcnn"
        raise ConfigError(
            f"wavenet models real-valued 1-D signals (T, C) such as audio, but {data} is "
            f"{spec.modality} with shape {spec.shape}: {hint}"
        )
    if config.input_range is not None:
        return config.input_range
    if spec.value_range is None:
        raise ConfigError(
            f"wavenet maps values onto [-1, 1], but {data} does not state its range: set "
            "input_range: [low, high] (a little wider than the data's min and max; e.g. load "
            "with normalize=true and set input_range: [-4, 4])"
        )
    low, high = spec.value_range
    if low < -1.0 or high > 1.0:
        raise ConfigError(
            f"{data} has values in {spec.value_range}, outside [-1, 1]: set input_range: "
            f"[{low}, {high}] to map them onto [-1, 1]"
        )
    return (-1.0, 1.0)


class ResidualLayer(nn.Module):
    """A dilated causal convolution, the gated activation, and residual and skip 1 x 1 layers.

    Args:
        residual_channels, gate_channels, skip_channels: widths R, D, S.
        kernel_size: taps k.
        dilation: d; the output at t sees inputs t, t - d, ..., t - (k - 1) d.
        last: the last layer has no residual output (nothing would read it).
    """

    def __init__(
        self,
        residual_channels: int,
        gate_channels: int,
        skip_channels: int,
        kernel_size: int,
        dilation: int,
        last: bool,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.conv = nn.Conv1d(residual_channels, 2 * gate_channels, kernel_size, dilation=dilation)
        self.skip = nn.Conv1d(gate_channels, skip_channels, 1)
        self.residual = None if last else nn.Conv1d(gate_channels, residual_channels, 1)

    @property
    def reach(self) -> int:
        return (self.kernel_size - 1) * self.dilation

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """h (B, R, T) -> (next residual stream (B, R, T), skip (B, S, T))."""
        pre = self.conv(F.pad(h, (self.reach, 0)))  # (B, 2D, T): causal, left padding only
        a, b = pre.chunk(2, dim=1)
        gated = torch.tanh(a) * torch.sigmoid(b)  # (B, D, T)
        out = h if self.residual is None else h + self.residual(gated)
        return out, self.skip(gated)

    def step(self, h: Tensor, queue: Tensor, t: int) -> tuple[Tensor, Tensor]:
        """One time step: h (B, R) at time t, `queue` (B, R, reach) of past inputs (a ring).

        Reads the inputs at t - d, ..., t - (k - 1) d from the queue, then stores h_t in it.
        Returns (next residual (B, R), skip (B, S)).
        """
        k, d = self.kernel_size, self.dilation
        # Tap m of the convolution reads time t - (k - 1 - m) d.
        taps = [queue[:, :, (t - (k - 1 - m) * d) % self.reach] for m in range(k - 1)] + [h]
        x = torch.stack(taps, dim=2)  # (B, R, k)
        pre = F.linear(x.flatten(1), self.conv.weight.flatten(1), self.conv.bias)  # (B, 2D)
        queue[:, :, t % self.reach] = h
        a, b = pre.chunk(2, dim=1)
        gated = torch.tanh(a) * torch.sigmoid(b)  # (B, D)
        out = h
        if self.residual is not None:
            out = h + F.linear(gated, self.residual.weight[:, :, 0], self.residual.bias)
        return out, F.linear(gated, self.skip.weight[:, :, 0], self.skip.bias)


class WaveNetNetwork(nn.Module):
    """Levels (B, T, C) -> logits (B, T, C, L) of each step given the steps before it."""

    def __init__(self, config: WaveNetConfig, num_channels: int) -> None:
        super().__init__()
        self.levels = config.levels
        self.num_channels = num_channels
        r, s = config.residual_channels, config.skip_channels
        self.embedding = nn.Embedding(num_channels * config.levels, r)
        dilations = config.dilations
        self.layers = nn.ModuleList(
            ResidualLayer(
                r,
                config.dilation_channels,
                s,
                config.kernel_size,
                d,
                last=i == len(dilations) - 1,
            )
            for i, d in enumerate(dilations)
        )
        self.head = nn.Sequential(
            nn.ReLU(), nn.Conv1d(s, s, 1), nn.ReLU(), nn.Conv1d(s, num_channels * config.levels, 1)
        )

    def embed(self, q: Tensor) -> Tensor:
        """Levels (B, T, C) -> the embedding of each step (B, R, T), channels summed."""
        offsets = torch.arange(self.num_channels, device=q.device) * self.levels
        return self.embedding(q + offsets).sum(dim=2).transpose(1, 2)

    def from_embedding(self, e: Tensor) -> Tensor:
        """Embedded steps (B, R, T) -> logits (B, T, C, L); step t sees embeddings < t only."""
        h = F.pad(e, (1, 0))[:, :, :-1]  # (B, R, T): step t holds step t - 1, zero at t = 0
        skips = 0
        for layer in self.layers:
            h, skip = layer(h)  # (B, R, T), (B, S, T)
            skips = skips + skip
        out = self.head(skips)  # (B, C*L, T)
        return out.transpose(1, 2).unflatten(2, (self.num_channels, self.levels))

    def forward(self, q: Tensor) -> Tensor:
        """Logits (B, T, C, L) of every step of q (B, T, C) given the steps before it."""
        return self.from_embedding(self.embed(q))

    def new_queues(self, batch: int, device: torch.device) -> list[Tensor]:
        """Empty queues (zeros, as the causal padding) for `step`."""
        weight = self.embedding.weight
        shape = (batch, weight.shape[1])
        return [weight.new_zeros((*shape, layer.reach), device=device) for layer in self.layers]

    def step(self, e_prev: Tensor, queues: list[Tensor], t: int) -> Tensor:
        """Logits (B, C, L) of step t from the embedding of step t - 1, e_prev (B, R)."""
        h, skips = e_prev, 0
        for layer, queue in zip(self.layers, queues):
            h, skip = layer.step(h, queue, t)
            skips = skips + skip
        out = self.head(skips[:, :, None])[:, :, 0]  # (B, C*L)
        return out.unflatten(1, (self.num_channels, self.levels))


@contextmanager
def _evaluating(module: nn.Module) -> Iterator[None]:
    """Eval mode inside the block, the previous training mode after it."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


@register(
    "wavenet",
    WaveNetConfig,
    "WaveNet: dilated causal convolutions, mu-law softmax, for audio and 1-D signals",
)
class WaveNet(NeuralModel):
    """WaveNet (van den Oord et al. 2016) over mu-law quantized 1-D signals (B, T, C).

    Args:
        config: the `WaveNetConfig`.
        spec: a sequence spec (T, C): audio from the `audio` source, or a time series with
            `config.input_range` set.
    """

    def __init__(self, config: WaveNetConfig, spec: DataSpec) -> None:
        super().__init__()
        self.input_low, self.input_high = _input_range(config, spec)
        self.config = config
        self.spec = spec
        self.network = WaveNetNetwork(config, spec.shape[1])

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def receptive_field(self) -> int:
        return self.config.receptive_field

    # ---- data in and out -------------------------------------------------------------------

    def quantize(self, x: Tensor) -> tuple[Tensor, int]:
        """Signals (B, T, C) in data units -> (mu-law levels int64 (B, T, C), values clipped)."""
        if x.ndim != 3 or x.shape[2] != self.spec.shape[1]:
            raise DataError(
                f"x has shape {tuple(x.shape)}, but this wavenet models (B, T, "
                f"{self.spec.shape[1]}) signals"
            )
        if not x.dtype.is_floating_point:
            raise DataError(f"signals must be float, got dtype {x.dtype}")
        if x.numel() and not torch.isfinite(x).all():
            raise DataError("x holds NaN or infinite values; a signal must be finite")
        unit = 2.0 * (x.double() - self.input_low) / (self.input_high - self.input_low) - 1.0
        clipped = int((unit.abs() > 1.0 + 1e-6).sum())
        return mu_law_encode(unit, self.config.levels), clipped

    def dequantize(self, q: Tensor) -> Tensor:
        """Levels (B, T, C) -> float32 signals in data units (the level centres)."""
        unit = mu_law_decode(q, self.config.levels).double()
        x = (unit + 1.0) / 2.0 * (self.input_high - self.input_low) + self.input_low
        return x.float()

    def _log_probs(self, q: Tensor) -> Tensor:
        """log p(q[t, c] | q[<t]) for every step: q (B, T, C) -> (B, T, C)."""
        logits = self.network(q)  # (B, T, C, L)
        # At least float32 (autocast may give bf16); float64 stays float64.
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        return torch.log_softmax(logits, dim=-1).gather(-1, q.unsqueeze(-1)).squeeze(-1)

    # ---- the contract ----------------------------------------------------------------------

    def loss(self, batch: Batch, *, key: str = "main") -> LossOutput:
        """Negative log-likelihood in nats per sample (time step and channel), batch mean.

        Logs: "nll" (nats per sequence) and "bits_per_sample".
        """
        if key != "main":
            raise ConfigError(f"wavenet has one loss key, 'main'; got {key!r}")
        q, _ = self.quantize(batch.x)
        per_sample = -self._log_probs(q.to(self.device)).mean()
        detached = float(per_sample.detach())
        logs = {
            "nll": detached * q.shape[1] * q.shape[2],
            "bits_per_sample": detached / math.log(2),
        }
        return LossOutput(per_sample, logs)

    @torch.no_grad()
    def log_likelihood(
        self,
        x: Tensor,
        *,
        cond: dict[str, Tensor] | None = None,
        batch_size: int = LIKELIHOOD_CHUNK,
    ) -> LogLikelihood:
        """Exact log-likelihood of the mu-law quantized signals, in nats per sequence.

        Args:
            x: (B, T, C) in data units (any T; the network is convolutional).
            cond: unused (wavenet is unconditional); accepted for the common signature.
            batch_size: sequences per forward pass (bounds memory only).

        Returns:
            LogLikelihood with nats float64 (B,) on x's device, kind "exact"; details: levels,
            bits_per_sample (of the batch mean) and clipped (values outside input_range).
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"wavenet log_likelihood: batch_size={batch_size!r} must be >= 1")
        q, clipped = self.quantize(x)
        with _evaluating(self):
            q = q.to(self.device)
            nats = [
                self._log_probs(q[s : s + batch_size]).double().flatten(1).sum(1)
                for s in range(0, q.shape[0], batch_size)
            ]
            values = torch.cat(nats) if nats else torch.empty(0, dtype=torch.float64)
        per_sequence = q.shape[1] * q.shape[2]
        bits = (
            -float(values.mean()) / (per_sequence * math.log(2))
            if len(values) and per_sequence
            else float("nan")
        )
        details = {"levels": self.config.levels, "bits_per_sample": bits, "clipped": clipped}
        return LogLikelihood(values.to(x.device), "exact", details)

    @torch.no_grad()
    def sample(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        cond: dict[str, Tensor] | None = None,
        temperature: float = 1.0,
        length: int | None = None,
        incremental: bool = True,
    ) -> Tensor:
        """Generate signals one step at a time.

        Args:
            num_samples: N.
            generator: the source of every draw (one uniform per value, drawn on the
                generator's device, so a CPU generator gives the same signal on any device).
            cond: must be None (wavenet is unconditional).
            temperature: logits are divided by it; <= 0 means greedy (the most likely level).
            length: steps T to generate; None is the data's window (spec.shape[0]). Longer
                signals than the training windows are fine (write them with
                `genlab.data.audio.write_wav`).
            incremental: the fast queue-based generator (Paine et al. 2016); False recomputes
                the network over the receptive field at every step (same result, slower).

        Returns:
            float32 (N, T, C) in data units (audio: [-1, 1]).
        """
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 0:
            raise ConfigError(f"num_samples must be a non-negative integer, got {num_samples!r}")
        if cond:
            raise ConfigError("wavenet is unconditional: sample without cond")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
            raise ConfigError(f"wavenet sample: temperature={temperature!r} must be a number")
        if not math.isfinite(temperature):
            raise ConfigError(f"wavenet sample: temperature={temperature} must be finite")
        length = self.spec.shape[0] if length is None else length
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ConfigError(f"wavenet sample: length={length!r} must be an integer >= 1")
        if not isinstance(incremental, bool):
            raise ConfigError(f"wavenet sample: incremental={incremental!r} must be true/false")
        channels = self.spec.shape[1]
        with _evaluating(self):
            device = self.device
            q = torch.zeros((num_samples, length, channels), dtype=torch.long, device=device)
            draw_device = generator.device if generator is not None else device
            for start in range(0, num_samples, SAMPLE_CHUNK):
                chunk = q[start : start + SAMPLE_CHUNK]  # a view: filled in place
                n = chunk.shape[0]
                queues = self.network.new_queues(n, device) if incremental else None
                e_prev = self.network.embedding.weight.new_zeros((n, self.config.residual_channels))
                for t in range(length):
                    if incremental:
                        logits = self.network.step(e_prev, queues, t)  # (n, C, L)
                    else:
                        first = max(0, t - self.receptive_field)
                        logits = self.network(chunk[:, first : t + 1])[:, -1]  # (n, C, L)
                    u = torch.rand((n, channels), generator=generator, device=draw_device)
                    chunk[:, t] = self._draw(logits.float(), u.to(device), temperature)
                    if incremental:
                        e_prev = self.network.embed(chunk[:, t : t + 1])[:, :, 0]  # (n, R)
            return self.dequantize(q)

    def _draw(self, logits: Tensor, u: Tensor, temperature: float) -> Tensor:
        """Levels (n, C) from logits (n, C, L) and uniforms (n, C) by the inverse CDF."""
        if temperature <= 0:
            return logits.argmax(dim=-1)
        cdf = torch.softmax(logits / temperature, dim=-1).cumsum(dim=-1)  # (n, C, L)
        return (cdf < u[..., None]).sum(dim=-1).clamp(max=self.config.levels - 1)
