"""VQ-VAE: a vector-quantized autoencoder with an EMA codebook and a GPT prior over its codes.

van den Oord et al., "Neural Discrete Representation Learning" (NeurIPS 2017). An encoder maps
an image to a grid of vectors z_e (B, D, h, w); each vector is replaced by its nearest codebook
entry e_k, and a decoder maps the quantized grid z_q back to an image. Training minimizes

    reconstruction(x, decoder(z_q)) + commitment * ||z_e - sg(z_q)||^2

(each a mean over elements, as in the paper: mean squared error, or binary cross-entropy for
binarized images)
with the straight-through estimator z_q + (z_e - sg(z_e)) carrying the decoder's gradient to
the encoder. The codebook is not trained by gradients: as in the paper's appendix (and Razavi
et al. 2019), each entry is an exponential moving average of the encoder outputs assigned to it,

    N_k <- g N_k + (1 - g) n_k,   m_k <- g m_k + (1 - g) sum_{i: k(i) = k} z_e,i,
    e_k = m_k / N~_k  (N~ Laplace-smoothed counts),

applied in `after_step` from the statistics of the step's batch (summed over DDP ranks). Codes
whose average count falls below `dead_code_threshold` are restarted at random encoder outputs
of the batch (Dhariwal et al. 2020, "Jukebox"), so no entry stays unused.

Sampling goes through a learned prior: a GPT from genlab's autoregressive family models the
raster-ordered code grid, p(k_1..k_L) = prod_l p(k_l | k_<l), after a start token (one per class
for a conditional model, so the prior can be asked for a class). The prior trains at the same
time as the autoencoder, under its own loss key "prior", on the current encoder's codes; the
codes settle early, and the prior follows them.

`log_likelihood` is the ELBO with a deterministic one-hot posterior, so KL(q || p) = -log p(k):

    log p(x) >= log p(x | z_q(x)) + log p_prior(k(x)),

kind "lower_bound", in nats: Bernoulli pixels for binarized images, a Gaussian of fixed std in
the images' [0, 1] units around a sigmoid mean otherwise (a density, as for any continuous
decoder).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.core.contract import Batch, DataSpec, LogLikelihood, LossOutput, NeuralModel
from genlab.core.errors import ConfigError, DataError
from genlab.core.registry import register

DecoderKind = Literal["auto", "bernoulli", "gaussian"]
LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class VQVAEConfig:
    """Configuration of `VQVAE` (the `model:` section of a run's YAML, field for field).

    Args:
        channels: channels of the encoder's stride-2 convolutions; each halves H and W, so the
            code grid is (H / 2^len, W / 2^len). Mirrored by the decoder.
        res_blocks: residual blocks at the code grid's resolution, in encoder and decoder.
        num_codes: K, the codebook size.
        code_dim: D, the size of each code vector.
        commitment: beta, the weight of the commitment loss ||z_e - sg(z_q)||^2.
        ema_decay: g, the decay of the codebook's moving averages. The paper's 0.99 left the
            codebook lagging the encoder on mnist5k until the encoder collapsed onto a few
            codes; 0.9 follows it (measured with the normalized codes below).
        dead_code_threshold: a code chosen fewer times per batch than this, on average, is
            restarted at a random encoder output of the batch; 0 turns restarts off.
        normalize_codes: project encoder outputs and codes onto the unit sphere, so the
            nearest code is the most cosine-similar one (Yu et al. 2022, "Vector-quantized
            Image Modeling with Improved VQGAN"); it keeps the codebook in use where plain
            Euclidean codes collapse onto a few entries early in training.
        decoder: "bernoulli" (logits; binarized images), "gaussian" (fixed std) or "auto":
            bernoulli for data with 2 levels, gaussian otherwise.
        decoder_std: the Gaussian decoder's std, in the images' [0, 1] units.
        conditional: a class-conditional prior (one start token per class of cond["label"]).
        prior_layers, prior_heads, prior_dim: the GPT prior's depth, heads and width.
        prior_dropout: dropout in the prior.
    """

    channels: tuple[int, ...] = (64, 128)
    res_blocks: int = 2
    num_codes: int = 128
    code_dim: int = 32
    commitment: float = 0.25
    ema_decay: float = 0.9
    dead_code_threshold: float = 1.0
    normalize_codes: bool = True
    decoder: DecoderKind = "auto"
    decoder_std: float = 0.1
    conditional: bool = False
    prior_layers: int = 4
    prior_heads: int = 4
    prior_dim: int = 128
    prior_dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.decoder not in get_args(DecoderKind):
            raise ConfigError(
                f"vqvae.decoder={self.decoder!r} is not one of "
                f"{', '.join(map(repr, get_args(DecoderKind)))}: pick one of those"
            )
        if self.num_codes < 1:
            raise ConfigError(
                f"vqvae.num_codes={self.num_codes}: the codebook needs at least one code; set "
                "num_codes to 1 or more, e.g. 128"
            )
        if self.code_dim < 1:
            raise ConfigError(f"vqvae.code_dim={self.code_dim}: set it to 1 or more, e.g. 32")
        if not self.channels or any(c < 1 for c in self.channels):
            raise ConfigError(
                f"vqvae.channels={self.channels}: give one or more positive channel counts, "
                "e.g. [64, 128]"
            )
        if self.res_blocks < 0:
            raise ConfigError(f"vqvae.res_blocks={self.res_blocks}: set it to 0 or more")
        if not self.commitment >= 0:
            raise ConfigError(f"vqvae.commitment={self.commitment}: set it to 0 or more")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"vqvae.ema_decay={self.ema_decay}: set it in [0, 1), e.g. 0.99")
        if not self.dead_code_threshold >= 0:
            raise ConfigError(
                f"vqvae.dead_code_threshold={self.dead_code_threshold}: set it to 0 (off) or more"
            )
        if not self.decoder_std > 0:
            raise ConfigError(f"vqvae.decoder_std={self.decoder_std}: set it above 0, e.g. 0.1")
        if self.prior_layers < 1 or self.prior_heads < 1 or self.prior_dim < 1:
            raise ConfigError("vqvae.prior_layers, prior_heads and prior_dim must be 1 or more")
        if self.prior_dim % self.prior_heads:
            raise ConfigError(
                f"vqvae.prior_dim={self.prior_dim} must be divisible by prior_heads="
                f"{self.prior_heads}"
            )
        if not 0.0 <= self.prior_dropout < 1.0:
            raise ConfigError(f"vqvae.prior_dropout={self.prior_dropout}: set it in [0, 1)")


def _check_spec(config: VQVAEConfig, spec: DataSpec) -> None:
    data = spec.name or "this data"
    if spec.modality != "image" or len(spec.shape) != 3:
        raise ConfigError(
            f"vqvae models images (C, H, W), but {data} is {spec.modality} with shape "
            f"{spec.shape}: use vae for vectors, gpt or charrnn for text"
        )
    scale = 2 ** len(config.channels)
    _, h, w = spec.shape
    if h % scale or w % scale:
        raise ConfigError(
            f"vqvae halves H and W once per channels entry, so with {len(config.channels)} "
            f"entries they must be divisible by {scale}, but {data} is {h}x{w}: use fewer "
            "channels"
        )
    if config.conditional and not spec.num_classes:
        raise ConfigError(
            f"vqvae.conditional=true needs labelled data, but {data} has no classes: set "
            "conditional: false or use a data set with labels"
        )


class ResidualBlock(nn.Module):
    """x + Conv1x1(ReLU(Conv3x3(ReLU(x)))), the VQ-VAE paper's residual block."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def _encoder(config: VQVAEConfig, in_channels: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for c_in, c_out in zip((in_channels, *config.channels[:-1]), config.channels):
        layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
    layers = layers[:-1]  # the residual blocks start with their own ReLU
    layers += [ResidualBlock(config.channels[-1]) for _ in range(config.res_blocks)]
    layers += [nn.ReLU(), nn.Conv2d(config.channels[-1], config.code_dim, 1)]
    return nn.Sequential(*layers)


def _decoder(config: VQVAEConfig, out_channels: int) -> nn.Sequential:
    channels = tuple(reversed(config.channels))
    layers: list[nn.Module] = [nn.Conv2d(config.code_dim, channels[0], 3, padding=1)]
    layers += [ResidualBlock(channels[0]) for _ in range(config.res_blocks)]
    for c_in, c_out in zip(channels, (*channels[1:], out_channels)):
        layers += [nn.ReLU(), nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)]
    return nn.Sequential(*layers)


def quantize(z_e: Tensor, codebook: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Nearest-code quantization of a grid of vectors.

    Args:
        z_e: (B, D, h, w) encoder outputs.
        codebook: (K, D) code vectors.

    Returns:
        codes int64 (B, h, w); z_q (B, D, h, w), the chosen code vectors; and the squared
        distance of each vector to its code, (B, h, w).
    """
    b, d, h, w = z_e.shape
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)  # (B h w, D)
    distances = (
        flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codebook.t() + codebook.pow(2).sum(1)[None]
    )  # (B h w, K)
    best, codes = distances.min(dim=1)
    z_q = codebook[codes].reshape(b, h, w, d).permute(0, 3, 1, 2)  # (B, D, h, w)
    return codes.reshape(b, h, w), z_q, best.clamp_min(0).reshape(b, h, w)


def ema_codebook_update(
    cluster_size: Tensor,
    code_sum: Tensor,
    counts: Tensor,
    sums: Tensor,
    decay: float,
    eps: float = 1e-5,
) -> Tensor:
    """One EMA codebook step, in place on the averages; returns the new codebook (K, D).

    N_k <- g N_k + (1 - g) n_k; m_k <- g m_k + (1 - g) s_k; e_k = m_k / N~_k with the
    Laplace-smoothed N~_k = (N_k + eps) / (sum N + K eps) * sum N, so an unused code keeps a
    finite vector.

    Args:
        cluster_size: N (K,), updated in place.
        code_sum: m (K, D), updated in place.
        counts: n (K,), how many vectors the batch assigned to each code.
        sums: s (K, D), the sum of the vectors assigned to each code.
        decay: g.
    """
    cluster_size.mul_(decay).add_(counts, alpha=1 - decay)
    code_sum.mul_(decay).add_(sums, alpha=1 - decay)
    total = cluster_size.sum()
    smoothed = (cluster_size + eps) / (total + cluster_size.numel() * eps) * total
    return code_sum / smoothed[:, None]


def _prior_gpt_config(config: VQVAEConfig) -> dict:
    return {
        "num_layers": config.prior_layers,
        "num_heads": config.prior_heads,
        "dim": config.prior_dim,
        "dropout": config.prior_dropout,
        # Zero-initialized residual projections would leave the first layers without a
        # gradient on the first step; the prior is small enough to train without them.
        "zero_init_residual": False,
    }


def _generate_codes(
    prior: NeuralModel,
    starts: Tensor,
    length: int,
    num_codes: int,
    *,
    generator: torch.Generator | None,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
) -> Tensor:
    """Draw `length` codes after each start token with the GPT's KV-cache decoding: (N, L)."""
    from genlab.families.autoregressive.decoding import DecodingOptions, generate

    options = DecodingOptions(
        max_new_tokens=length, temperature=temperature, top_k=top_k, top_p=top_p
    )
    if starts.shape[0] == 0:
        return torch.zeros(0, length, dtype=torch.long, device=starts.device)
    step = prior.step_function()

    def codes_only(ids: Tensor, state):
        logits, state = step(ids, state)  # (B, V)
        logits[:, num_codes:] = -math.inf  # start tokens never follow
        return logits, state

    out = generate(codes_only, starts[:, None], options=options, generator=generator)
    return out.ids[:, 1:].to(starts.device)


def _make_prior(config: VQVAEConfig, vocab_size: int, length: int) -> NeuralModel:
    """The GPT over start token + raster-ordered codes: `length` tokens of `vocab_size` ids."""
    from genlab.core.registry import create

    spec = DataSpec("text", (length,), name="vqvae codes", discrete_levels=vocab_size)
    return create(
        "gpt",
        spec=spec,
        **_prior_gpt_config(config),
    )


@register(
    "vqvae",
    VQVAEConfig,
    "vector-quantized autoencoder with an EMA codebook and a GPT prior over the code grid",
)
class VQVAE(NeuralModel):
    """VQ-VAE with EMA codebook, dead-code restarts and a GPT prior (module docstring)."""

    def __init__(self, config: VQVAEConfig, spec: DataSpec) -> None:
        super().__init__()
        _check_spec(config, spec)
        self.name = "vqvae"
        self.config = config
        self.spec = spec
        self.cond_keys = ("label",) if config.conditional else ()
        channels, h, w = spec.shape
        scale = 2 ** len(config.channels)
        self.grid = (h // scale, w // scale)
        self.decoder_kind = (
            config.decoder
            if config.decoder != "auto"
            else ("bernoulli" if spec.discrete_levels == 2 else "gaussian")
        )
        self.encoder = _encoder(config, channels)
        self.decoder = _decoder(config, channels)
        k, d = config.num_codes, config.code_dim
        generator = torch.Generator().manual_seed(0)
        codebook = torch.randn(k, d, generator=generator)
        self.register_buffer("codebook", codebook)
        # The averages start empty, so a code the first batches never choose falls below the
        # dead-code threshold at once and restarts at data, instead of idling for hundreds of
        # steps while its count decays (the codebook collapses in that time).
        self.register_buffer("cluster_size", torch.zeros(k))
        self.register_buffer("code_sum", torch.zeros(k, d))
        self.num_starts = spec.num_classes if config.conditional else 1
        length = self.grid[0] * self.grid[1] + 1  # start token + codes
        self.prior = _make_prior(config, k + self.num_starts, length)
        # Whether the codebook was started from encoder outputs: a buffer, so a resumed or
        # loaded model does not start it again.
        self.register_buffer("codebook_started", torch.zeros((), dtype=torch.bool))
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))
        self._pending: tuple[Tensor, Tensor, Tensor] | None = None

    @property
    def device(self) -> torch.device:
        return self.codebook.device

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {
            "main": [*self.encoder.parameters(), *self.decoder.parameters()],
            "prior": list(self.prior.parameters()),
        }

    # -- autoencoder --------------------------------------------------------------------------

    def _to_signed(self, x: Tensor) -> Tensor:
        return 2.0 * x - 1.0  # images [0, 1] -> [-1, 1] for the encoder

    def _encode(self, x: Tensor) -> Tensor:
        """Encoder outputs z_e (B, D, h, w), on the unit sphere when `normalize_codes`."""
        z_e = self.encoder(self._to_signed(x))
        return F.normalize(z_e, dim=1) if self.config.normalize_codes else z_e

    def encode(self, x: Tensor) -> Tensor:
        """Code indices of images x (B, C, H, W) in [0, 1]: int64 (B, h, w)."""
        with torch.no_grad():
            z_e = self._encode(x.to(self.device, torch.float32))
            return quantize(z_e.float(), self.codebook)[0]

    def decode(self, codes: Tensor) -> Tensor:
        """Images in [0, 1], (B, C, H, W), from code indices (B, h, w) (decoder mean)."""
        z_q = self.codebook[codes].permute(0, 3, 1, 2)  # (B, D, h, w)
        return self._mean(self.decoder(z_q)).float()

    def _mean(self, out: Tensor) -> Tensor:
        # Bernoulli probabilities, or the Gaussian's mean squashed into the images' [0, 1].
        return torch.sigmoid(out)

    def _log_px(self, x: Tensor, out: Tensor) -> Tensor:
        """log p(x | z_q) per image, (B,)."""
        if self.decoder_kind == "bernoulli":
            return -F.binary_cross_entropy_with_logits(out, x, reduction="none").flatten(1).sum(1)
        std = self.config.decoder_std
        z = (x - torch.sigmoid(out)) / std
        return (-0.5 * (z.pow(2) + LOG_2PI) - math.log(std)).flatten(1).sum(1)

    def _check_images(self, x: Tensor, where: str) -> None:
        if tuple(x.shape[1:]) != tuple(self.spec.shape):
            raise DataError(
                f"vqvae.{where}: x has sample shape {tuple(x.shape[1:])}, but this vqvae "
                f"models {self.spec.shape}"
            )

    def _start_tokens(self, cond: dict[str, Tensor] | None, num: int, where: str) -> Tensor:
        """The prior's first token per row: K + label (conditional) or K, int64 (num,)."""
        k = self.config.num_codes
        if not self.config.conditional:
            if cond:
                raise ConfigError(
                    f"vqvae.{where}: this vqvae is unconditional (conditional=false): call it "
                    "without cond, or train with conditional: true"
                )
            return torch.full((num,), k, dtype=torch.long, device=self.device)
        if not cond or "label" not in cond:
            raise ConfigError(
                f'vqvae.{where}: this vqvae is conditional: pass cond={{"label": int64 (N,)}}'
            )
        labels = cond["label"].to(self.device, torch.long).reshape(-1)
        if labels.shape[0] != num:
            raise ConfigError(
                f"vqvae.{where}: cond['label'] has {labels.shape[0]} labels for {num} rows"
            )
        bad = labels[(labels < 0) | (labels >= self.num_starts)]
        if bad.numel():
            raise ConfigError(
                f"vqvae.{where}: label {int(bad[0])} was never seen in training: this model "
                f"knows classes 0..{self.num_starts - 1}"
            )
        return labels + k

    def _prior_tokens(self, codes: Tensor, starts: Tensor) -> Tensor:
        """(B, 1 + h w) int64: the start token, then the codes in raster order."""
        return torch.cat([starts[:, None], codes.flatten(1)], dim=1)

    def loss(self, batch: Batch, *, key: str = "main") -> LossOutput:
        x = batch.x.to(self.device, torch.float32)
        z_e = self._encode(x)  # (B, D, h, w)
        if self.training and not bool(self.codebook_started):
            self._init_codebook(z_e.detach().float())
        codes, z_q, _ = quantize(z_e.detach().float(), self.codebook)
        if key == "prior":
            # An unconditional model ignores the labels a data set may carry.
            cond = batch.cond if self.config.conditional else None
            starts = self._start_tokens(cond, x.shape[0], "loss")
            tokens = self._prior_tokens(codes, starts)
            return self.prior.loss(Batch(tokens))
        if key != "main":
            raise ConfigError(f"vqvae.loss: unknown key {key!r}; the keys are main and prior")
        z_st = z_e + (z_q.to(z_e.dtype) - z_e).detach()  # straight-through estimator
        out = self.decoder(z_st).float()
        recon = -self._log_px(x, out).mean()  # nats per image, for the logs
        # The paper's per-element means: with a sum over pixels (divided by the Gaussian's
        # variance) the reconstruction outweighs the commitment term thousands of times, the
        # encoder's outputs run away from the codebook and it collapses onto a few codes.
        if self.decoder_kind == "bernoulli":
            fit = F.binary_cross_entropy_with_logits(out, x)
        else:
            # Divided by the batch's pixel variance, as in the paper's code: the commitment
            # term then weighs the same against the reconstruction whatever the data's scale.
            fit = F.mse_loss(torch.sigmoid(out), x) / x.var().clamp_min(1e-6).detach()
        commit = F.mse_loss(z_e.float(), z_q)
        loss = fit + self.config.commitment * commit
        k = self.config.num_codes
        counts = torch.bincount(codes.flatten(), minlength=k).float()  # (K,)
        flat = z_e.detach().float().permute(0, 2, 3, 1).reshape(-1, self.config.code_dim)
        sums = torch.zeros(k, self.config.code_dim, device=self.device).index_add_(
            0, codes.flatten(), flat
        )  # (K, D)
        if self.training:
            self._pending = (counts, sums, flat)
        share = counts / counts.sum()
        entropy = -(share * share.clamp_min(1e-12).log()).sum()
        logs = torch.stack(
            [recon.detach(), commit.detach(), (counts > 0).float().mean(), entropy.exp()]
        ).tolist()
        return LossOutput(
            loss,
            dict(zip(("recon", "commitment", "codebook_usage", "codebook_perplexity"), logs)),
        )

    @torch.no_grad()
    def _init_codebook(self, z_e: Tensor) -> None:
        """Start the codebook at encoder outputs of the first batch (spread over it)."""
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, self.config.code_dim)
        k = self.config.num_codes
        index = torch.linspace(0, flat.shape[0] - 1, k, device=flat.device).long()
        start = flat[index].contiguous()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.broadcast(start, src=0)  # one codebook on every rank
        self.codebook.copy_(start)
        self.codebook_started.fill_(True)

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        """Apply the EMA codebook update of the last training batch, then restart dead codes."""
        if self._pending is None:
            return
        counts, sums, flat = self._pending
        self._pending = None
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(counts)
            torch.distributed.all_reduce(sums)
        updated = ema_codebook_update(
            self.cluster_size, self.code_sum, counts, sums, self.config.ema_decay
        )
        if self.config.normalize_codes:
            updated = F.normalize(updated, dim=1)
        # A code no batch has chosen yet keeps its vector (its average is still empty).
        chosen = self.cluster_size > 0
        self.codebook[chosen] = updated[chosen]
        self.ema_updates += 1
        threshold = self.config.dead_code_threshold
        # Bias-corrected as in Adam: the averages started at zero.
        correction = 1.0 - self.config.ema_decay ** int(self.ema_updates)
        dead = torch.nonzero(self.cluster_size / correction < threshold).flatten()
        if threshold > 0 and dead.numel():
            # Random vectors of this batch (Jukebox), drawn from a generator seeded with the
            # update count, so a run is reproducible; under DDP rank 0's choice is broadcast.
            draw = torch.Generator().manual_seed(int(self.ema_updates))
            pick = torch.randperm(flat.shape[0], generator=draw)[: dead.numel()]
            fresh = flat[pick.to(flat.device)].contiguous()
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.broadcast(fresh, src=0)
            used = dead[: fresh.shape[0]]
            # The restarted code's average counts as one batch's share of the vectors.
            share = flat.shape[0] / self.config.num_codes
            self.codebook[used] = fresh
            self.code_sum[used] = fresh * share
            self.cluster_size[used] = share

    # -- sampling and likelihood ---------------------------------------------------------------

    @torch.no_grad()
    def sample(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        cond: dict[str, Tensor] | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
    ) -> Tensor:
        """Codes from the GPT prior, decoded: float32 (N, C, H, W) in [0, 1].

        Args:
            num_samples: N.
            generator: the source of every draw.
            cond: {"label": int64 (N,)} for a conditional model.
            temperature, top_k, top_p: the prior's decoding controls (autoregressive family).
        """
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 0:
            raise ConfigError(f"num_samples must be a non-negative integer, got {num_samples!r}")
        starts = self._start_tokens(cond, num_samples, "sample")
        was_training = self.training
        self.eval()
        try:
            tokens = _generate_codes(
                self.prior,
                starts,
                self.grid[0] * self.grid[1],
                self.config.num_codes,
                generator=generator,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
            )  # (N, h w)
            codes = tokens.reshape(num_samples, *self.grid)
            return self.decode(codes)
        finally:
            self.train(was_training)

    @torch.no_grad()
    def log_likelihood(
        self, x: Tensor, *, cond: dict[str, Tensor] | None = None, batch_size: int = 500
    ) -> LogLikelihood:
        """log p(x | z_q(x)) + log p_prior(codes(x)), a lower bound on log p(x), nats (B,).

        Args:
            x: (B, C, H, W) images in [0, 1].
            cond: {"label": int64 (B,)} for a conditional model (the bound is on log p(x|y)).
            batch_size: images per forward pass.
        """
        self._check_images(x, "log_likelihood")
        starts = self._start_tokens(cond, x.shape[0], "log_likelihood")
        was_training = self.training
        self.eval()
        try:
            out = []
            for i in range(0, x.shape[0], batch_size):
                xb = x[i : i + batch_size].to(self.device, torch.float32)
                z_e = self._encode(xb).float()
                codes, z_q, _ = quantize(z_e, self.codebook)
                log_px = self._log_px(xb, self.decoder(z_q).float())
                tokens = self._prior_tokens(codes, starts[i : i + batch_size])
                log_prior = self.prior.log_likelihood(tokens).nats.to(log_px.device)
                out.append(log_px.double() + log_prior.double())
            nats = torch.cat(out) if out else torch.empty(0, dtype=torch.float64)
        finally:
            self.train(was_training)
        return LogLikelihood(
            nats.to(x.device),
            "lower_bound",
            {"bound": "elbo with one-hot posterior", "decoder": self.decoder_kind},
        )

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """Decoder mean of the quantized codes of x: (B, C, H, W) in [0, 1]."""
        self._check_images(x, "reconstruct")
        was_training = self.training
        self.eval()
        try:
            return self.decode(self.encode(x))
        finally:
            self.train(was_training)
