"""Diffusion models: DDPM / improved DDPM / EDM training, any sampler, guidance, inpainting.

One registered model, `diffusion`, whose schedule, prediction target, loss weighting and network
are config options, and whose sampler, step count, guidance and inpainting mask are chosen at
sampling time.

Noise process. Data in the model's space x0 (images rescaled from [0, 1] to [-1, 1], table rows
from their schema's [min, max] to [-1, 1], points as they are) is noised in "variance exploding"
scaling, x = x0 + sigma * eps, eps ~ N(0, I), as in Karras et al. (EDM, NeurIPS 2022) and
k-diffusion; a discrete "variance preserving" schedule (Ho et al., "Denoising Diffusion
Probabilistic Models", NeurIPS 2020, "linear"; Nichol & Dhariwal, "Improved DDPM", ICML 2021,
"cosine") is the same process with x_vp = x / sqrt(1 + sigma^2) and sigma^2 = (1 - abar) / abar,
so every sampler in samplers.py runs on every model (schedules.py holds the conversions).

Denoiser. Every model is read as a denoiser D(x, sigma) ~ E[x0 | x] through a preconditioning

    D(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, noise_label(sigma))

where F is the network and the prediction target fixes c_skip and c_out:

    eps  (Ho et al.):                 c_skip = 1,             c_out = -sigma
    x0:                               c_skip = 0,             c_out = 1
    v    (Salimans & Ho, ICLR 2022):  c_skip = d^2/(s^2+d^2), c_out = -s d / sqrt(s^2 + d^2)

with d = sigma_data (1 for the discrete VP schedules, where v = sqrt(abar) eps - sqrt(1-abar) x0
exactly, and c_in x is the VP input x_vp). For the "edm" schedule, v with d = sigma_data is
Karras et al.'s preconditioning (their F is -v), trained on log sigma ~ N(P_mean, P_std^2) with
the network's noise label 250 ln(sigma) (EDM's c_noise = ln(sigma)/4, times 1000 so that it
spans a range like the discrete timesteps 0..999 the sinusoidal embedding is made for).

Loss. The network regresses its target, sum over batch of w(sigma) ||F - target||^2 / D. With
`loss_weighting: uniform`, w = 1: the "simple" DDPM loss for eps, EDM's loss for v on the "edm"
schedule. `min_snr` (Hang et al., "Efficient Diffusion Training via Min-SNR Weighting
Strategy", ICCV 2023) weights the x0 error by min(SNR, gamma), SNR = d^2 / sigma^2, which in the
target's units is w = min(SNR, gamma) c_out^2 (min(SNR, g)/SNR for eps, min(SNR, g)/(SNR+1) for
v).

Classifier-free guidance (Ho & Salimans, "Classifier-Free Diffusion Guidance", 2022). With
`conditional: true` the network gets a class embedding, and during training each label is
replaced by the null class with probability `label_dropout`, so one network is both p(x|y) and
p(x). Sampling with guidance scale w uses

    D_w(x, sigma, y) = D(x, sigma, y) + w (D(x, sigma, y) - D(x, sigma, null)),

so w = 0 is the plain conditional model and w > 0 sharpens it (this w is Ho & Salimans's; the
"guidance scale" s of Stable Diffusion and diffusers is s = w + 1).

Inpainting (the "replacement" method of Song et al., "Score-Based Generative Modeling through
SDEs", ICLR 2021, App. I; Lugmayr et al. 2022, RePaint, without its resampling): after every
sampler step to noise level sigma_next, the known region is replaced by the known image noised
to sigma_next, so the generated region is denoised in agreement with it; at sigma = 0 the known
pixels are the known image exactly.

Likelihood. `log_likelihood(method="ode")` integrates the probability-flow ODE
dx/dsigma = (x - D(x, sigma)) / sigma (Song et al. 2021; Karras et al. 2022 eq. 3) from the data
at the smallest noise level to the largest with Heun's method, accumulating the divergence of
the drift (exactly for D <= 8, else Hutchinson's estimator with one Rademacher probe per sample
held fixed along the path, as FFJORD, Grathwohl et al. 2019) and ending at the Gaussian prior:
kind "estimate". `method="vlb"` is the DDPM variational bound of a discrete schedule, summed
over all T terms (Ho et al. 2020, eq. 5; decoder a discretized Gaussian for quantized images):
kind "lower_bound". Quantized images (spec.discrete_levels = L) are dequantized uniformly for
the ODE, y = (k + u) / L (Theis et al. 2016), so both methods report the discrete
log-likelihood of the L-level image and bits/dim = -nats / (D ln 2); `details` says so.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn

from genlab.core.contract import Batch, DataSpec, LogLikelihood, LossOutput, NeuralModel
from genlab.core.errors import ConfigError, DataError
from genlab.core.registry import register
from genlab.families.diffusion import samplers as sampler_registry
from genlab.families.diffusion import schedules
from genlab.nn.time_mlp import TimeMLP
from genlab.nn.unet import UNet

Schedule = Literal["linear", "cosine", "edm"]
Prediction = Literal["eps", "x0", "v"]
Weighting = Literal["uniform", "min_snr"]
Network = Literal["auto", "unet", "mlp"]
Spacing = Literal["karras", "leading", "trailing", "linspace"]

Denoiser = Callable[[Tensor, Tensor], Tensor]

SAMPLE_CHUNK = 1000  # samples run through a sampler together (bounds memory, fixes the draws)
# Karras grids of a discrete schedule stop at this sigma: the cosine schedule's last level is
# ~2e4, and above 80 (EDM's sigma_max) noisy unit-scale data is Gaussian to 1e-4 in variance.
KARRAS_SIGMA_CAP = schedules.EDM_SIGMA_MAX
EXACT_TRACE_MAX_DIMS = 8  # exact divergence (D backward passes) up to this many dimensions
EDM_LABEL_SCALE = 250.0  # noise label of the edm schedule: 250 ln(sigma) = 1000 * c_noise


@dataclass(frozen=True)
class DiffusionConfig:
    """Configuration of `Diffusion` (the `model:` section of a run's YAML, field for field).

    Args:
        schedule: "linear" (DDPM betas 1e-4..0.02) or "cosine" (improved DDPM), discrete VP
            schedules of `num_timesteps` levels; or "edm", continuous sigma with Karras et al.'s
            preconditioning and log-normal training noise.
        num_timesteps: T, levels of a discrete schedule.
        beta_start, beta_end: end points of the linear schedule.
        sigma_min, sigma_max: the noise range of the edm schedule (sampling and likelihood).
        sigma_data: the data's standard deviation assumed by the edm preconditioning; None
            means 0.5 for images and tables (scaled to [-1, 1]) and 1.0 for points.
        p_mean, p_std: log sigma ~ N(p_mean, p_std^2) while training the edm schedule.
        prediction: the network's target: "eps" (DDPM's), "x0" or "v" (the default: its error
            stays bounded at every noise level, which few-step deterministic samplers starting
            at sigma = 80 need; on the edm schedule it is Karras et al.'s preconditioning).
        loss_weighting: "uniform" (plain MSE on the target) or "min_snr" (Hang et al. 2023).
        min_snr_gamma: gamma of min-SNR weighting.
        network: "unet" (images), "mlp" (points and table rows) or "auto" (by modality).
        channels, channel_mults, num_res_blocks, attention_levels, num_heads: the UNet; level
            i runs at resolution H / 2^i; attention levels may be negative (-1 = the lowest).
        hidden, num_blocks: the width and depth of the residual MLP.
        dropout: dropout inside the network's blocks.
        conditional: a class-conditional model p(x | y), y = cond["label"].
        label_dropout: probability of training a label as the null class (classifier-free
            guidance and unconditional sampling need it > 0).
    """

    schedule: Schedule = "cosine"
    num_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    sigma_min: float = schedules.EDM_SIGMA_MIN
    sigma_max: float = schedules.EDM_SIGMA_MAX
    sigma_data: float | None = None
    p_mean: float = schedules.EDM_P_MEAN
    p_std: float = schedules.EDM_P_STD
    prediction: Prediction = "v"
    loss_weighting: Weighting = "uniform"
    min_snr_gamma: float = 5.0
    network: Network = "auto"
    channels: int = 64
    channel_mults: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 2
    attention_levels: tuple[int, ...] = (-1,)
    num_heads: int = 4
    hidden: int = 256
    num_blocks: int = 3
    dropout: float = 0.0
    conditional: bool = False
    label_dropout: float = 0.1

    def __post_init__(self) -> None:
        for key, kind in (
            ("schedule", Schedule),
            ("prediction", Prediction),
            ("loss_weighting", Weighting),
            ("network", Network),
        ):
            choices = get_args(kind)
            if getattr(self, key) not in choices:
                raise ConfigError(
                    f"diffusion.{key}={getattr(self, key)!r} is not one of "
                    f"{', '.join(map(repr, choices))}: pick one of those"
                )
        if self.num_timesteps < 2:
            raise ConfigError(f"diffusion.num_timesteps={self.num_timesteps}: use 2 or more")
        if not 0 < self.beta_start < self.beta_end < 1:
            raise ConfigError(
                f"diffusion.beta_start={self.beta_start}, beta_end={self.beta_end}: need "
                "0 < beta_start < beta_end < 1, e.g. 1e-4 and 0.02"
            )
        if not 0 < self.sigma_min < self.sigma_max:
            raise ConfigError(
                f"diffusion.sigma_min={self.sigma_min}, sigma_max={self.sigma_max}: need "
                "0 < sigma_min < sigma_max, e.g. 0.002 and 80"
            )
        if self.sigma_data is not None and not self.sigma_data > 0:
            raise ConfigError(f"diffusion.sigma_data={self.sigma_data}: set it above 0 or null")
        if not self.p_std > 0:
            raise ConfigError(f"diffusion.p_std={self.p_std}: set it above 0, e.g. 1.2")
        if not self.min_snr_gamma > 0:
            raise ConfigError(f"diffusion.min_snr_gamma={self.min_snr_gamma}: set it above 0")
        for key in ("channels", "num_res_blocks", "num_heads", "hidden", "num_blocks"):
            if getattr(self, key) < 1:
                raise ConfigError(f"diffusion.{key}={getattr(self, key)}: set it to 1 or more")
        if not self.channel_mults or any(m < 1 for m in self.channel_mults):
            raise ConfigError(
                f"diffusion.channel_mults={self.channel_mults}: give one or more positive "
                "multipliers, e.g. [1, 2, 2]"
            )
        levels = len(self.channel_mults)
        if any(not -levels <= lvl < levels for lvl in self.attention_levels):
            raise ConfigError(
                f"diffusion.attention_levels={self.attention_levels}: the UNet has levels "
                f"0..{levels - 1} (or -1 for the lowest); give levels among those or []"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"diffusion.dropout={self.dropout}: set it in [0, 1)")
        if not 0.0 <= self.label_dropout < 1.0:
            raise ConfigError(
                f"diffusion.label_dropout={self.label_dropout}: set it in [0, 1), e.g. 0.1 "
                "(0 trains no null class, so no guidance and no unconditional samples)"
            )


# ---- pure functions of the parametrization ---------------------------------------------------


def prediction_coefficients(
    prediction: str, sigma: Tensor, sigma_data: float = 1.0
) -> tuple[Tensor, Tensor]:
    """c_skip, c_out of D(x, sigma) = c_skip x + c_out F for a prediction target.

    Args:
        prediction: "eps", "x0" or "v".
        sigma: noise levels, any shape.
        sigma_data: d of the v parametrization (1 gives the VP v of Salimans & Ho).

    Returns:
        (c_skip, c_out), each of sigma's shape.
    """
    if prediction == "eps":
        return torch.ones_like(sigma), -sigma
    if prediction == "x0":
        return torch.zeros_like(sigma), torch.ones_like(sigma)
    if prediction == "v":
        d2 = sigma_data**2
        norm = (sigma**2 + d2).sqrt()
        return d2 / norm**2, -sigma * sigma_data / norm
    raise ConfigError(f"prediction {prediction!r} is not one of 'eps', 'x0', 'v'")


def prediction_target(
    prediction: str, x0: Tensor, eps: Tensor, sigma: Tensor, sigma_data: float = 1.0
) -> Tensor:
    """What the network regresses for x = x0 + sigma * eps, in closed form.

    eps -> eps; x0 -> x0; v -> (d^2 eps - sigma x0) / (d sqrt(sigma^2 + d^2)), which for d = 1 is
    sqrt(abar) eps - sqrt(1 - abar) x0 (Salimans & Ho 2022). sigma broadcasts against x0.
    """
    if prediction == "eps":
        return eps
    if prediction == "x0":
        return x0
    if prediction == "v":
        d2 = sigma_data**2
        return (d2 * eps - sigma * x0) / (sigma_data * (sigma**2 + d2).sqrt())
    raise ConfigError(f"prediction {prediction!r} is not one of 'eps', 'x0', 'v'")


def _expand(v: Tensor, x: Tensor) -> Tensor:
    """A per-sample (B,) tensor shaped to broadcast against x (B, ...)."""
    return v.reshape(v.shape + (1,) * (x.ndim - v.ndim))


def guided_denoiser(denoise_pair: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]], w: float):
    """Classifier-free guidance: D_w = D_c + w (D_c - D_u) from a function giving (D_c, D_u)."""

    def denoise(x: Tensor, sigma: Tensor) -> Tensor:
        cond, uncond = denoise_pair(x, sigma)
        return cond + w * (cond - uncond)

    return denoise


def ode_log_likelihood(
    denoise: Denoiser,
    x0: Tensor,
    sigmas: Tensor,
    prior_var: float,
    *,
    trace: Literal["exact", "hutchinson"] = "hutchinson",
    generator: torch.Generator | None = None,
) -> Tensor:
    """log p(x0) under the probability-flow ODE dx/dsigma = (x - D(x, sigma)) / sigma.

    Integrates from sigmas[0] (the data, read as a sample of p_{sigmas[0]}) up to sigmas[-1],
    where the density is the prior N(0, prior_var I), with Heun's method; by the instantaneous
    change of variables (Chen et al. 2018), log p_0(x(s0)) = log p_N(x(sN)) + int div f ds.

    Args:
        denoise: D(x (B, ...), sigma (B,)) -> (B, ...).
        x0: (B, ...) data in the model's space.
        sigmas: (S,) increasing noise levels, sigmas[0] > 0.
        prior_var: variance of the Gaussian at sigmas[-1] (sigma_max^2 + the data's variance).
        trace: "exact" (one backward pass per dimension) or "hutchinson" (one Rademacher probe
            per sample, fixed along the path; unbiased).
        generator: draws the probes.

    Returns:
        float64 (B,) log-densities in nats in the model's space.
    """
    x = x0.detach().float()
    b = x.shape[0]
    dims = x[0].numel()
    probe = None
    if trace == "hutchinson":
        where = generator.device if generator is not None else x.device
        bits = torch.randint(0, 2, x.shape, generator=generator, device=where).to(x.device)
        probe = bits.float() * 2 - 1  # Rademacher

    def drift_and_div(x_in: Tensor, sigma: float) -> tuple[Tensor, Tensor]:
        with torch.enable_grad():
            x_in = x_in.detach().requires_grad_(True)
            s = torch.full((b,), sigma, device=x.device)
            f = (x_in - denoise(x_in, s)) / sigma  # (B, ...)
            if probe is not None:
                (g,) = torch.autograd.grad(f, x_in, probe)
                div = (g * probe).flatten(1).sum(1)  # (B,)
            else:
                flat = f.flatten(1)
                div = torch.zeros(b, device=x.device)
                for i in range(dims):
                    (g,) = torch.autograd.grad(flat[:, i].sum(), x_in, retain_graph=i < dims - 1)
                    div = div + g.flatten(1)[:, i]
        return f.detach(), div.detach().double()

    delta = torch.zeros(b, dtype=torch.float64, device=x.device)
    grid = [float(s) for s in sigmas]
    f, div = drift_and_div(x, grid[0])
    for s_cur, s_next in zip(grid[:-1], grid[1:]):
        h = s_next - s_cur
        x_pred = x + h * f
        f_next, div_next = drift_and_div(x_pred, s_next)
        x = x + h * 0.5 * (f + f_next)
        delta += h * 0.5 * (div + div_next)
        f, div = drift_and_div(x, s_next) if s_next != grid[-1] else (f_next, div_next)
    xd = x.double().flatten(1)
    log_prior = -0.5 * (xd.pow(2).sum(1) / prior_var + dims * math.log(2 * math.pi * prior_var))
    return log_prior + delta


def _log_normal_cdf_diff(upper: Tensor, lower: Tensor) -> Tensor:
    """log(Phi(upper) - Phi(lower)) elementwise, stable in both tails (float64)."""
    # Reflect so that both points lie on the left half, where log_ndtr is accurate.
    flip = (lower > 0).to(upper.dtype)
    hi = torch.where(flip > 0, -lower, upper)
    lo = torch.where(flip > 0, -upper, lower)
    log_hi = torch.special.log_ndtr(hi)
    log_lo = torch.special.log_ndtr(lo)
    return log_hi + torch.log1p(-torch.exp((log_lo - log_hi).clamp(max=0)).clamp(max=1 - 1e-15))


# ---- the model --------------------------------------------------------------------------------


@contextmanager
def _evaluating(module: nn.Module) -> Iterator[None]:
    """Eval mode inside the block, the previous training mode after it."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def _randn(shape, generator: torch.Generator | None, device: torch.device) -> Tensor:
    # Drawn on the generator's device, so a CPU generator gives the same draws on any device.
    where = generator.device if generator is not None else device
    return torch.randn(tuple(shape), generator=generator, device=where).to(device)


def _sampler_options(sampler: str, **given: Any) -> dict[str, Any]:
    """The options given (not None) for `sampler`, checked against what it accepts."""
    fn = sampler_registry.get_sampler(sampler)
    accepted = inspect.signature(fn).parameters
    options = {k: v for k, v in given.items() if v is not None}
    for key in options:
        if key not in accepted:
            takes = [
                p for p in accepted if p not in ("denoise", "x", "sigmas", "generator", "callback")
            ]
            raise ConfigError(
                f"sampler {sampler!r} has no option {key!r}; it takes "
                f"{', '.join(takes) if takes else 'no options'}"
            )
    return options


def _table_range(spec: DataSpec) -> tuple[Tensor, Tensor]:
    """Per-feature (low, high) of encoded table rows, from the column schema's min and max."""
    low = torch.zeros(spec.num_dims, dtype=torch.float64)
    high = torch.ones(spec.num_dims, dtype=torch.float64)
    for column in spec.columns or ():
        if column.get("type") in ("numeric", "datetime") and column.get("offset") is not None:
            lo, hi = float(column["min"]), float(column["max"])
            low[column["offset"]], high[column["offset"]] = lo, hi if hi > lo else lo + 1.0
    return low, high


@register(
    "diffusion",
    DiffusionConfig,
    "diffusion (DDPM/iDDPM/EDM): eps/x0/v targets, any sampler, guidance, inpainting, ODE NLL",
)
class Diffusion(NeuralModel):
    """Denoising diffusion model (Ho et al. 2020; Nichol & Dhariwal 2021; Karras et al. 2022).

    Args:
        config: the `DiffusionConfig`.
        spec: the data spec: images (C, H, W) in [0, 1] (UNet), points or table rows (D,)
            (residual MLP).
    """

    def __init__(self, config: DiffusionConfig, spec: DataSpec) -> None:
        super().__init__()
        self.config = config
        self.spec = spec
        if spec.modality in ("text", "sequence"):
            raise ConfigError(
                f"diffusion models continuous vectors and images, but {spec.name or 'this data'} "
                f"is {spec.modality}: use gpt or charrnn for tokens"
            )
        network = config.network
        if network == "auto":
            network = "unet" if spec.modality == "image" else "mlp"
        if network == "unet" and (spec.modality != "image" or len(spec.shape) != 3):
            raise ConfigError(
                f"diffusion.network='unet' needs images (C, H, W), but {spec.name or 'this data'} "
                f"is {spec.modality} with shape {spec.shape}: set network: mlp"
            )
        if config.conditional and not spec.num_classes:
            raise ConfigError(
                f"diffusion.conditional=true needs labelled data, but {spec.name or 'this data'} "
                "has no classes: set conditional: false or use a data set with labels"
            )
        self.network_kind = network
        self.cond_keys = ("label",) if config.conditional else ()
        self.num_classes = spec.num_classes if config.conditional else None
        self.discrete = config.schedule != "edm"
        self.prediction = config.prediction
        if self.discrete:
            self.sigma_data = 1.0  # the VP parametrization: c_in x is x_vp
        elif config.sigma_data is not None:
            self.sigma_data = config.sigma_data
        else:
            self.sigma_data = 1.0 if spec.modality == "points" else schedules.EDM_SIGMA_DATA

        if network == "unet":
            c = spec.shape[0]
            levels = len(config.channel_mults)
            self.net = UNet(
                c,
                c,
                channels=config.channels,
                channel_mults=config.channel_mults,
                num_res_blocks=config.num_res_blocks,
                attention_levels=tuple(lvl % levels for lvl in config.attention_levels),
                num_heads=config.num_heads,
                dropout=config.dropout,
                num_classes=self.num_classes,
            )
            scale = 2 ** (levels - 1)
            if spec.shape[1] % scale or spec.shape[2] % scale:
                raise ConfigError(
                    f"diffusion: the UNet halves {spec.shape[1]}x{spec.shape[2]} images "
                    f"{levels - 1} times, so H and W must be divisible by {scale}: use fewer "
                    "channel_mults"
                )
        else:
            self.net = TimeMLP(
                spec.num_dims,
                hidden=config.hidden,
                num_blocks=config.num_blocks,
                num_classes=self.num_classes,
                dropout=config.dropout,
            )

        # Deterministic functions of the config and spec: not weights, so kept out of the state.
        if self.discrete:
            options = {}
            if config.schedule == "linear":
                options = {"beta_start": config.beta_start, "beta_end": config.beta_end}
            train_sigmas = schedules.training_sigmas(
                config.schedule, config.num_timesteps, **options
            )
            self.register_buffer("train_sigmas", train_sigmas, persistent=False)
            self.sigma_lo, self.sigma_hi = float(train_sigmas[0]), float(train_sigmas[-1])
        else:
            self.sigma_lo, self.sigma_hi = config.sigma_min, config.sigma_max
        if spec.modality == "image":
            shift, scale = torch.tensor(0.5), torch.tensor(0.5)  # [0, 1] <-> [-1, 1]
        elif spec.modality == "tabular":
            low, high = _table_range(spec)
            shift, scale = (low + high) / 2, (high - low) / 2
        else:
            shift, scale = torch.tensor(0.0), torch.tensor(1.0)
        self.register_buffer("data_shift", shift.float(), persistent=False)
        self.register_buffer("data_scale", scale.float(), persistent=False)
        # log |d model / d data| per sample, for likelihoods in the data's units.
        self.log_jacobian = -float(
            torch.log(scale.double()).sum() if scale.ndim else spec.num_dims * math.log(scale)
        )

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ---- conversions -----------------------------------------------------------------------

    def to_model_space(self, x: Tensor) -> Tensor:
        """Data (B, *shape) -> the model's space (images to [-1, 1])."""
        return (x - self.data_shift) / self.data_scale

    def to_data_space(self, x: Tensor) -> Tensor:
        """The model's space -> data (B, *shape); images clipped to [0, 1]."""
        out = x * self.data_scale + self.data_shift
        return out.clamp(0.0, 1.0) if self.spec.modality == "image" else out

    def noise_label(self, sigma: Tensor) -> Tensor:
        """The network's noise input: the (fractional) timestep of a discrete schedule, or
        250 ln(sigma) for edm. sigma (B,) -> (B,) float32."""
        if self.discrete:
            return schedules.sigma_to_t(sigma.double(), self.train_sigmas).float()
        return EDM_LABEL_SCALE * sigma.float().log()

    def _check_labels(self, labels: Tensor, num: int) -> Tensor:
        labels = torch.as_tensor(labels)
        if labels.shape != (num,):
            raise DataError(f"cond['label'] has shape {tuple(labels.shape)}; expected ({num},)")
        if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
            raise DataError(f"cond['label'] must hold integer classes, got dtype {labels.dtype}")
        if num > 0:
            low, high = int(labels.min()), int(labels.max())
            if low < 0 or high >= self.num_classes:
                bad = high if high >= self.num_classes else low
                raise DataError(
                    f"class {bad} is outside the trained labels 0..{self.num_classes - 1}"
                )
        return labels.to(self.device, torch.long)

    def denoise(self, x: Tensor, sigma: Tensor, class_labels: Tensor | None = None) -> Tensor:
        """D(x, sigma): the model's estimate of x0 from x = x0 + sigma eps.

        Args:
            x: (B, *shape) in the model's space, VE scaling.
            sigma: (B,) noise levels > 0.
            class_labels: (B,) int64 classes of a conditional model, `num_classes` for the
                null class; None for an unconditional model.

        Returns:
            (B, *shape) float32.
        """
        c_skip, c_out = prediction_coefficients(self.prediction, sigma.float(), self.sigma_data)
        c_in = 1 / (sigma.float() ** 2 + self.sigma_data**2).sqrt()
        out = self.net(_expand(c_in, x) * x, self.noise_label(sigma), class_labels)
        return _expand(c_skip, x) * x + _expand(c_out, x) * out.float()

    # ---- training --------------------------------------------------------------------------

    def drop_labels(self, labels: Tensor) -> Tensor:
        """Replace each label by the null class with probability `label_dropout` (global RNG,
        seeded and checkpointed by the training loop)."""
        p = self.config.label_dropout
        if p == 0:
            return labels
        drop = torch.rand(labels.shape, device=labels.device) < p
        return torch.where(drop, torch.full_like(labels, self.num_classes), labels)

    def training_sigmas(self, num: int, device: torch.device) -> Tensor:
        """Noise levels of one training batch (B,): uniform timesteps, or EDM's log-normal."""
        if self.discrete:
            t = torch.randint(0, self.config.num_timesteps, (num,), device=device)
            return self.train_sigmas[t].float()
        return torch.exp(self.config.p_mean + self.config.p_std * torch.randn(num, device=device))

    def loss_weight(self, sigma: Tensor) -> Tensor:
        """Per-sample weight of the squared error of the target (B,)."""
        if self.config.loss_weighting == "uniform":
            return torch.ones_like(sigma)
        snr = self.sigma_data**2 / sigma**2
        _, c_out = prediction_coefficients(self.prediction, sigma, self.sigma_data)
        return snr.clamp(max=self.config.min_snr_gamma) * c_out**2

    def loss(self, batch: Batch, *, key: str = "main") -> LossOutput:
        """Weighted MSE of the network's target at random noise levels; batch mean.

        Noise levels, noise and label dropout come from the global RNG, which the training loop
        seeds and checkpoints (the documented exception to explicit generators). Logs "mse"
        (the unweighted target MSE).
        """
        if key != "main":
            raise ConfigError(f"diffusion has one loss key, 'main'; got {key!r}")
        x0 = self.to_model_space(batch.x)  # (B, *shape)
        b = x0.shape[0]
        labels = None
        if self.config.conditional:
            if "label" not in batch.cond:
                raise DataError(
                    "this diffusion model is conditional: the data set must give labels "
                    "(cond['label']), or train with conditional: false"
                )
            labels = self.drop_labels(self._check_labels(batch.cond["label"], b))
        sigma = self.training_sigmas(b, x0.device)  # (B,)
        eps = torch.randn_like(x0)  # (B, *shape)
        x = x0 + _expand(sigma, x0) * eps
        c_in = 1 / (sigma**2 + self.sigma_data**2).sqrt()
        out = self.net(_expand(c_in, x) * x, self.noise_label(sigma), labels)  # (B, *shape)
        target = prediction_target(self.prediction, x0, eps, _expand(sigma, x0), self.sigma_data)
        mse = (out.float() - target).pow(2).flatten(1).mean(1)  # (B,)
        loss = (self.loss_weight(sigma) * mse).mean()
        return LossOutput(loss, {"mse": float(mse.detach().mean())})

    # ---- sampling --------------------------------------------------------------------------

    def sampling_sigmas(self, sampler: str, steps: int, spacing: str | None = None) -> Tensor:
        """The decreasing noise grid (steps + 1,) ending in 0 that `sampler` runs on.

        Default spacing: "leading" timesteps for ddpm and ddim on a discrete schedule (as
        diffusers' DDPMScheduler and DDIMScheduler), else Karras et al.'s rho = 7 grid over the
        model's range (capped at sigma = 80 for discrete schedules).
        """
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"steps must be an integer >= 1, got {steps!r}; pass e.g. steps=20")
        if spacing is None:
            spacing = "leading" if self.discrete and sampler in ("ddpm", "ddim") else "karras"
        if spacing not in get_args(Spacing):
            raise ConfigError(
                f"spacing {spacing!r} is not one of {', '.join(map(repr, get_args(Spacing)))}"
            )
        if spacing == "karras":
            return schedules.karras_sigmas(steps, self.sigma_lo, self._top_sigma())
        if not self.discrete:
            raise ConfigError(
                f"spacing {spacing!r} picks timesteps of a discrete schedule, but this model's "
                "schedule is edm (continuous): use spacing='karras'"
            )
        return schedules.discrete_sigmas(steps, self.train_sigmas.cpu(), spacing=spacing)

    def _class_labels(self, cond: dict[str, Tensor] | None, num: int, guidance: float):
        """The conditioning classes (N,) or None, checking what this model can do."""
        if not self.config.conditional:
            if cond:
                raise ConfigError(
                    "this diffusion model is unconditional (conditional=false): sample without "
                    "cond, or train with conditional: true to sample given labels"
                )
            if guidance != 0:
                raise ConfigError(
                    f"guidance={guidance} needs a class-conditional model trained with label "
                    "dropout, but this one is unconditional: leave guidance at 0, or train with "
                    "conditional: true"
                )
            return None
        if not cond or "label" not in cond:
            if self.config.label_dropout == 0:
                raise DataError(
                    "this diffusion model is conditional and was trained without label dropout, "
                    "so it has no unconditional mode: pass cond={'label': int64 tensor (N,)}"
                )
            if guidance != 0:
                raise ConfigError(
                    f"guidance={guidance} steers samples towards classes: pass "
                    "cond={'label': ...} (or leave guidance at 0 for unconditional samples)"
                )
            return torch.full((num,), self.num_classes, dtype=torch.long, device=self.device)
        if guidance != 0 and self.config.label_dropout == 0:
            raise ConfigError(
                f"guidance={guidance} needs the null class, but this model was trained with "
                "label_dropout: 0: leave guidance at 0, or retrain with label_dropout > 0"
            )
        return self._check_labels(cond["label"], num)

    def denoiser(self, class_labels: Tensor | None, guidance: float = 0.0) -> Denoiser:
        """The denoiser D(x, sigma) the samplers call, with classifier-free guidance w.

        Args:
            class_labels: (N,) classes (null = num_classes) or None (unconditional model).
            guidance: w of D_c + w (D_c - D_u); 0 evaluates the conditional model alone.

        Returns:
            A function x (N, *shape), sigma (N,) -> x0 estimate (N, *shape).
        """
        if guidance == 0 or class_labels is None:
            return lambda x, sigma: self.denoise(x, sigma, class_labels)
        null = torch.full_like(class_labels, self.num_classes)

        def pair(x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
            # One network call on the doubled batch: conditional rows, then null rows.
            both = self.denoise(
                torch.cat([x, x]), torch.cat([sigma, sigma]), torch.cat([class_labels, null])
            )
            return both.chunk(2)

        return guided_denoiser(pair, guidance)

    def _inpainting(self, inpaint: Tensor | None, mask: Tensor | None, num: int):
        """Known image (N, *shape) in the model's space and keep-mask (N, *shape), or Nones."""
        if inpaint is None and mask is None:
            return None, None
        if inpaint is None or mask is None:
            raise ConfigError("inpaint and mask go together: pass both (mask 1 = generate)")
        inpaint = torch.as_tensor(inpaint, dtype=torch.float32, device=self.device)
        mask = torch.as_tensor(mask, dtype=torch.float32, device=self.device)
        shape = tuple(self.spec.shape)
        if inpaint.ndim != len(shape) + 1 or tuple(inpaint.shape[1:]) != shape:
            raise DataError(
                f"inpaint has shape {tuple(inpaint.shape)}, but this model makes samples of "
                f"shape {shape}: pass (N or 1, {', '.join(map(str, shape))})"
            )
        mask_ok = mask.ndim == inpaint.ndim and tuple(mask.shape[2:]) == shape[1:]
        if self.spec.modality == "image":
            mask_ok = mask_ok and mask.shape[1] in (1, shape[0])
        else:
            mask_ok = mask.ndim == inpaint.ndim and tuple(mask.shape[1:]) == shape
        if not mask_ok:
            want = (
                f"(N or 1, 1, {shape[1]}, {shape[2]})" if len(shape) == 3 else f"(N or 1, {shape})"
            )
            raise DataError(
                f"mask has shape {tuple(mask.shape)}, which does not match the image size "
                f"{shape}: pass {want} with 1 = generate, 0 = keep"
            )
        for name, t in (("inpaint", inpaint), ("mask", mask)):
            if t.shape[0] not in (1, num):
                raise DataError(
                    f"{name} holds {t.shape[0]} images for {num} samples: pass 1 or {num}"
                )
        if not torch.isfinite(inpaint).all():
            raise DataError("inpaint holds NaN or infinite values")
        if self.spec.modality == "image" and (inpaint.min() < 0 or inpaint.max() > 1):
            raise DataError("inpaint must be an image in [0, 1], like the training data")
        if ((mask != 0) & (mask != 1)).any():
            raise DataError("mask must hold only 0 (keep) and 1 (generate)")
        known = self.to_model_space(inpaint).expand(num, *shape)
        keep = (1 - mask).expand(num, *shape)
        return known, keep

    @torch.no_grad()
    def sample(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        cond: dict[str, Tensor] | None = None,
        sampler: str = "dpmpp_2m",
        steps: int = 20,
        guidance: float = 0.0,
        inpaint: Tensor | None = None,
        mask: Tensor | None = None,
        spacing: str | None = None,
        eta: float | None = None,
        s_churn: float | None = None,
        snr: float | None = None,
        corrector_steps: int | None = None,
        resample: int = 1,
    ) -> Tensor:
        """Draw samples by running `sampler` from pure noise; float32 (N, *spec.shape).

        Args:
            num_samples: N.
            generator: the source of every random draw (initial noise, ancestral noise,
                inpainting noise).
            cond: {"label": int64 (N,)} for a conditional model; without it a conditional
                model trained with label dropout samples unconditionally (the null class).
            sampler: one of samplers.py's registry (ddpm, ddim, dpmpp_2m, dpmpp_2m_sde,
                dpmpp_2s/3m, euler, heun, euler_maruyama, pc, ode).
            steps: sampler steps (network evaluations per step: `network_evaluations`).
            guidance: classifier-free guidance w, D_c + w (D_c - D_u); 0 is the conditional
                model (diffusers' guidance_scale = w + 1). Needs a conditional model and cond.
            inpaint: (N or 1, C, H, W) known image in [0, 1]; with `mask`, the pixels where
                mask = 0 are kept exactly and the rest generated consistently with them.
            mask: (N or 1, 1 or C, H, W), 1 = generate, 0 = keep.
            resample: RePaint's resampling (Lugmayr et al. 2022, jump length 1) for
                inpainting: each step is taken `resample` times, re-noising back to its start
                in between, so the generated region harmonizes with the known one. Above 1 the
                sampler runs one step at a time (multistep samplers then take first-order
                steps) and a step costs `resample` times as many network evaluations.
            spacing: the noise grid: "karras", or timesteps of a discrete schedule
                ("leading", "trailing", "linspace"); None picks per sampler
                (`sampling_sigmas`).
            eta: DDIM's stochasticity (0 deterministic, 1 ancestral DDPM); ddim only.
            s_churn: EDM's stochastic churn; euler and heun only.
            snr, corrector_steps: the Langevin corrector of "pc" (signal-to-noise ratio and
                corrector steps per level).

        Returns:
            Samples in the data's space; images in [0, 1].
        """
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 0:
            raise ConfigError(f"num_samples must be a non-negative integer, got {num_samples!r}")
        guidance = self._check_guidance(guidance)
        options = _sampler_options(
            sampler, eta=eta, s_churn=s_churn, snr=snr, corrector_steps=corrector_steps
        )
        if isinstance(resample, bool) or not isinstance(resample, int) or resample < 1:
            raise ConfigError(f"resample must be an integer >= 1, got {resample!r}")
        if resample > 1 and inpaint is None:
            raise ConfigError(
                f"resample={resample} is RePaint's resampling for inpainting: pass inpaint and "
                "mask too, or leave resample at 1"
            )
        return self._run(
            num_samples,
            generator,
            cond,
            sampler,
            steps,
            guidance,
            inpaint,
            mask,
            spacing,
            options,
            resample=resample,
        )[0]

    def _check_guidance(self, guidance: float) -> float:
        if isinstance(guidance, bool) or not isinstance(guidance, (int, float)):
            raise ConfigError(f"guidance must be a number, got {guidance!r}")
        if not math.isfinite(guidance) or guidance < 0:
            raise ConfigError(f"guidance={guidance}: use a finite scale >= 0 (0 = no guidance)")
        return float(guidance)

    def _run(
        self,
        num_samples,
        generator,
        cond,
        sampler,
        steps,
        guidance,
        inpaint,
        mask,
        spacing,
        options,
        trajectory: bool = False,
        resample: int = 1,
    ) -> tuple[Tensor, Tensor | None]:
        """Sample (and optionally record each step's VP-scaled state) in chunks."""
        fn = sampler_registry.get_sampler(sampler)
        sigmas = self.sampling_sigmas(sampler, steps, spacing)
        shape = tuple(self.spec.shape)
        with _evaluating(self):
            device = self.device
            labels = self._class_labels(cond, num_samples, guidance)
            known, keep = self._inpainting(inpaint, mask, num_samples)
            outputs, paths = [], []
            for start in range(0, num_samples, SAMPLE_CHUNK):
                part = slice(start, min(start + SAMPLE_CHUNK, num_samples))
                n = part.stop - part.start
                denoise = self.denoiser(None if labels is None else labels[part], guidance)
                x = float(sigmas[0]) * _randn((n, *shape), generator, device)
                steps_seen: list[Tensor] = []

                def callback(i: int, x: Tensor, sigma_next, part=part, seen=steps_seen) -> Tensor:
                    if known is not None:
                        s = float(sigma_next)
                        noise = _randn(x.shape, generator, device) if s > 0 else 0.0
                        x = x * (1 - keep[part]) + keep[part] * (known[part] + s * noise)
                    if trajectory:
                        seen.append(x / math.sqrt(1 + float(sigma_next) ** 2))
                    return x

                if known is not None:  # start the known region on its own noisy path too
                    x = callback(-1, x, sigmas[0])
                    if trajectory:
                        steps_seen.clear()
                if trajectory:
                    steps_seen.append(x / math.sqrt(1 + float(sigmas[0]) ** 2))
                if resample == 1:
                    grid = sigmas.to(device)
                    x = fn(denoise, x, grid, generator=generator, callback=callback, **options)
                else:
                    x = self._resampled(
                        fn, denoise, x, sigmas, generator, callback, options, resample
                    )
                out = self.to_data_space(x.float())
                if known is not None:  # exactly the given pixels, not a round trip through [-1, 1]
                    given = torch.as_tensor(inpaint, dtype=torch.float32, device=device)
                    out = torch.where(keep[part] > 0, given.expand(num_samples, *shape)[part], out)
                outputs.append(out)
                if trajectory:
                    paths.append(torch.stack([self.to_data_space(p) for p in steps_seen]))
            if not outputs:
                return torch.empty((0, *shape), device=device), None
            path = torch.cat(paths, dim=1).float() if trajectory else None
            return torch.cat(outputs).float(), path

    @staticmethod
    def _resampled(fn, denoise, x, sigmas, generator, callback, options, resample) -> Tensor:
        """RePaint with jump length 1: step sigma_i -> sigma_i+1, replace the known region,
        re-noise back to sigma_i, `resample` times per step (the last pass keeps its result)."""
        for i in range(len(sigmas) - 1):
            pair = sigmas[i : i + 2].to(x.device)
            s_cur, s_next = float(pair[0]), float(pair[1])
            for r in range(resample):
                x = fn(denoise, x, pair, generator=generator, **options)
                x = callback(i, x, pair[1])
                if r < resample - 1:
                    x = x + math.sqrt(s_cur**2 - s_next**2) * _randn(x.shape, generator, x.device)
        return x

    @torch.no_grad()
    def sample_trajectory(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        cond: dict[str, Tensor] | None = None,
        sampler: str = "dpmpp_2m",
        steps: int = 20,
        guidance: float = 0.0,
        spacing: str | None = None,
        eta: float | None = None,
    ) -> Tensor:
        """The state after every sampler step, for plotting: float32 (steps + 1, N, *shape).

        Entry i is x_i / sqrt(1 + sigma_i^2) (the VP-scaled state, which stays bounded from
        pure noise to data) mapped to the data's units; the last entry is the samples (images
        not clipped until then). Options as in `sample`.
        """
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ConfigError(f"num_samples must be a positive integer, got {num_samples!r}")
        guidance = self._check_guidance(guidance)
        options = _sampler_options(sampler, eta=eta)
        _, path = self._run(
            num_samples,
            generator,
            cond,
            sampler,
            steps,
            guidance,
            None,
            None,
            spacing,
            options,
            trajectory=True,
        )
        return path

    # ---- likelihood ------------------------------------------------------------------------

    def _top_sigma(self) -> float:
        """The largest noise level sampled from and integrated to (see KARRAS_SIGMA_CAP)."""
        return min(self.sigma_hi, KARRAS_SIGMA_CAP) if self.discrete else self.sigma_hi

    def _prior_var(self) -> float:
        return self._top_sigma() ** 2 + self.sigma_data**2

    def _dequantize(self, x: Tensor, generator: torch.Generator | None) -> tuple[Tensor, float]:
        """Uniformly dequantized images y = (k + u) / L and the log-volume term -D log L."""
        levels = self.spec.discrete_levels
        if self.spec.modality != "image" or not levels or levels < 2:
            return x, 0.0
        k = torch.round(x * (levels - 1))
        u = torch.rand(
            x.shape, generator=generator, device=generator.device if generator else x.device
        )
        return (k + u.to(x.device)) / levels, -self.spec.num_dims * math.log(levels)

    @torch.no_grad()
    def log_likelihood(
        self,
        x: Tensor,
        *,
        cond: dict[str, Tensor] | None = None,
        generator: torch.Generator | None = None,
        method: Literal["ode", "vlb"] = "ode",
        steps: int = 64,
        trace: Literal["auto", "exact", "hutchinson"] = "auto",
        batch_size: int = 256,
    ) -> LogLikelihood:
        """log p(x) per sample in nats: probability-flow ODE estimate or DDPM variational bound.

        Args:
            x: (B, *spec.shape) in the data's space.
            cond: {"label": (B,)} scores log p(x | y) on a conditional model; without it a
                model trained with label dropout is scored unconditionally (null class).
            generator: draws the dequantization noise, Hutchinson probes and the VLB's x_t.
            method: "ode" (kind "estimate") or "vlb" (discrete schedules; "lower_bound").
            steps: Heun steps of the ODE on a Karras grid from the smallest to the largest
                sigma (2 network calls with gradients each).
            trace: the divergence: "exact", "hutchinson" or "auto" (exact up to 8 dims).
            batch_size: rows per pass.

        Returns:
            LogLikelihood float64 (B,) on x's device; for quantized images the log-probability
            of the L-level image (bits/dim = -nats / (D ln 2), in details["bits_per_dim"]).
        """
        if method not in ("ode", "vlb"):
            raise ConfigError(f"method={method!r} is not one of 'ode', 'vlb'")
        if trace not in ("auto", "exact", "hutchinson"):
            raise ConfigError(f"trace={trace!r} is not one of 'auto', 'exact', 'hutchinson'")
        for name, value in (("steps", steps), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"log_likelihood: {name}={value!r} must be an integer >= 1")
        if tuple(x.shape[1:]) != tuple(self.spec.shape):
            raise DataError(
                f"x has sample shape {tuple(x.shape[1:])}, but this model makes {self.spec.shape}"
            )
        if method == "vlb" and not self.discrete:
            raise ConfigError(
                "method='vlb' is the bound of a discrete schedule, but this model's schedule is "
                "edm (continuous sigma): use method='ode'"
            )
        if trace == "auto":
            trace = "exact" if self.spec.num_dims <= EXACT_TRACE_MAX_DIMS else "hutchinson"
        with _evaluating(self):
            device = self.device
            xs = x.to(device, torch.float32)
            labels = None
            if self.config.conditional:
                labels = self._class_labels(cond, xs.shape[0], 0.0)
            parts = []
            for start in range(0, xs.shape[0], batch_size):
                xb = xs[start : start + batch_size]
                lb = None if labels is None else labels[start : start + batch_size]
                if method == "ode":
                    parts.append(self._ode_nats(xb, lb, steps, trace, generator))
                else:
                    parts.append(self._vlb_nats(xb, lb, generator))
            nats = torch.cat(parts) if parts else torch.empty(0, dtype=torch.float64)
        d = self.spec.num_dims
        quantized = self.spec.modality == "image" and (self.spec.discrete_levels or 0) >= 2
        details: dict[str, Any] = {"method": method}
        if method == "ode":
            details.update(steps=steps, trace=trace, sigma_range=[self.sigma_lo, self._top_sigma()])
        if quantized:
            details["dequantization"] = (
                f"uniform, (k + u) / {self.spec.discrete_levels}"
                if method == "ode"
                else "discretized Gaussian decoder"
            )
            if nats.numel():
                details["bits_per_dim"] = float(-nats.mean() / (d * math.log(2)))
        return LogLikelihood(
            nats.to(x.device), "estimate" if method == "ode" else "lower_bound", details
        )

    def _ode_nats(self, x, labels, steps, trace, generator) -> Tensor:
        y, log_volume = self._dequantize(x, generator)
        x0 = self.to_model_space(y)
        sigmas = schedules.karras_sigmas(steps, self.sigma_lo, self._top_sigma()).flip(0)[1:]
        log_p = ode_log_likelihood(
            self.denoiser(labels, 0.0),
            x0,
            sigmas,
            self._prior_var(),
            trace=trace,
            generator=generator,
        )
        return log_p + self.log_jacobian + log_volume

    def _vlb_nats(self, x: Tensor, labels: Tensor | None, generator) -> Tensor:
        """-(L_T + sum_{t>=2} L_{t-1} + L_0) of Ho et al. (2020) eq. 5, all T terms, nats (B,)."""
        x0 = self.to_model_space(x).double()
        b = x0.shape[0]
        sig = self.train_sigmas.double()
        abar = schedules.alpha_cumprod_from_sigma(sig)  # (T,)
        abar_prev = torch.cat([abar.new_ones(1), abar[:-1]])
        beta = 1 - abar / abar_prev
        flat = x0.flatten(1)
        # L_T = KL(q(x_T | x0) || N(0, I)).
        var_t = 1 - abar[-1]
        mean_t = abar[-1].sqrt() * flat
        total = 0.5 * (var_t - 1 - var_t.log() + mean_t.pow(2)).sum(1)  # (B,)
        denoise = self.denoiser(labels, 0.0)
        for t in range(len(sig)):
            eps = _randn(x0.shape, generator, x0.device).double()
            x_ve = (x0 + sig[t] * eps).float()
            x0_hat = denoise(x_ve, torch.full((b,), float(sig[t]), device=x0.device)).double()
            if t == 0:
                total += -self._decoder_log_prob(x0, x0_hat, beta[0])
                continue
            # q(x_{t-1} | x_t, x0) and p(x_{t-1} | x_t) share the variance beta_tilde: the KL
            # is the squared distance of their means, whose difference is c1 (x0 - x0_hat).
            c1 = abar_prev[t].sqrt() * beta[t] / (1 - abar[t])
            var = (1 - abar_prev[t]) * beta[t] / (1 - abar[t])
            total += (c1**2 * (x0 - x0_hat).flatten(1).pow(2).sum(1)) / (2 * var)
        # Quantized images get a discrete probability from the decoder; continuous data a
        # density in the model's space, moved to the data's units by the Jacobian.
        return -total + (0.0 if self._quantized() else self.log_jacobian)

    def _quantized(self) -> bool:
        return self.spec.modality == "image" and (self.spec.discrete_levels or 0) >= 2

    def _decoder_log_prob(self, x0: Tensor, mean: Tensor, var: Tensor) -> Tensor:
        """log p(x0 | x1) (B,): Gaussian N(mean, beta_1) density, or, for L-level images, the
        discretized Gaussian of Ho et al. (2020) eq. 13 over bins of width 2 / (L - 1)."""
        std = var.sqrt()
        if not self._quantized():
            z = ((x0 - mean) / std).flatten(1)
            return (-0.5 * z.pow(2) - std.log() - 0.5 * math.log(2 * math.pi)).sum(1)
        half = 1.0 / (self.spec.discrete_levels - 1)
        upper = torch.where(x0 > 1 - 1e-6, torch.full_like(x0, math.inf), (x0 + half - mean) / std)
        lower = torch.where(
            x0 < -1 + 1e-6, torch.full_like(x0, -math.inf), (x0 - half - mean) / std
        )
        return _log_normal_cdf_diff(upper, lower).flatten(1).sum(1)


def plot_trajectories(
    trajectory: Tensor,
    path: str | Path,
    *,
    data: Tensor | None = None,
    max_paths: int = 200,
    title: str = "diffusion sampling trajectories",
) -> Path:
    """Plot 2-D sampling paths (from `Diffusion.sample_trajectory`) into a PNG.

    Args:
        trajectory: (S, N, 2) states from noise (index 0) to samples (index S - 1).
        path: output file.
        data: optional (M, 2) real points drawn underneath.
        max_paths: at most this many paths are drawn (the first ones).
        title: the figure's title.

    Returns:
        The written path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if trajectory.ndim != 3 or trajectory.shape[-1] != 2:
        raise DataError(
            f"trajectory has shape {tuple(trajectory.shape)}; plot_trajectories draws 2-D paths "
            "(S, N, 2) from a points model's sample_trajectory"
        )
    paths = trajectory[:, :max_paths].detach().cpu().numpy()
    fig, ax = plt.subplots(figsize=(5, 5))
    if data is not None:
        d = data.detach().cpu().numpy()
        ax.scatter(d[:, 0], d[:, 1], s=2, c="0.8", label="data")
    for i in range(paths.shape[1]):
        ax.plot(paths[:, i, 0], paths[:, i, 1], lw=0.5, alpha=0.5, c="tab:blue")
    ax.scatter(paths[0, :, 0], paths[0, :, 1], s=4, c="0.4", label="noise (start)")
    ax.scatter(paths[-1, :, 0], paths[-1, :, 1], s=6, c="tab:red", label="sample (end)")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=7)
    ax.set_aspect("equal")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return out
