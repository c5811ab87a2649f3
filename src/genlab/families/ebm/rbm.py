"""Restricted Boltzmann machines: Bernoulli-Bernoulli and Gaussian-Bernoulli, CD-k and PCD, AIS.

An RBM (Smolensky 1986; Hinton, "Training Products of Experts by Minimizing Contrastive
Divergence", Neural Computation 2002) is a bipartite Markov random field over visible units v (D)
and binary hidden units h (H) with energy

    bernoulli visible:  E(v, h) = -b·v - c·h - vᵀ W h,                  v ∈ {0, 1}^D
    gaussian visible:   E(v, h) = Σ_i (v_i - b_i)² / 2σ_i² - c·h - (v/σ²)ᵀ W h,   v ∈ R^D

(the Gaussian form of Cho, Ilin & Raiko, "Improved Learning of Gaussian-Bernoulli Restricted
Boltzmann Machines", ICANN 2011). Summing out h gives the free energy, p(v) = exp(-F(v)) / Z:

    F(v) = V(v) - Σ_j softplus(c_j + ((v/σ²)ᵀ W)_j),   V(v) = -b·v  or  Σ_i (v_i - b_i)² / 2σ_i².

Training. The log-likelihood gradient is -∇F(data) + E_model[∇F(v)]; the model expectation is
replaced by negative samples from k steps of block Gibbs sampling, started at the data
(contrastive divergence, CD-k; Hinton 2002) or at persistent chains carried across updates
(persistent CD; Tieleman, "Training Restricted Boltzmann Machines using Approximations to the
Likelihood Gradient", ICML 2008). The loss handed to the one training loop is the surrogate

    loss = mean F(v_data) - mean F(v_negative.detach()),

whose gradient is exactly that CD estimate. The persistent chains advance inside `loss` on the
global RNG, which the training loop seeds and checkpoints, and are saved with the weights.

Likelihood. log Z is computed exactly by enumerating the smaller side when it has at most
`exact_max_units` units (2^n states; for Gaussian visible units only the hidden side can be
enumerated), else estimated by annealed importance sampling (Neal 2001; Salakhutdinov & Murray,
"On the Quantitative Analysis of Deep Belief Networks", ICML 2008) from the base model with
W = 0, c = 0, through intermediate models with W and c scaled by β ∈ [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.core.contract import Batch, DataSpec, LogLikelihood, LossOutput, NeuralModel
from genlab.core.errors import CheckpointError, ConfigError, DataError
from genlab.core.registry import register

Visible = Literal["bernoulli", "gaussian"]
Method = Literal["auto", "exact", "ais"]
Decode = Literal["mean", "sample"]

LOG_SIGMA_RANGE = (-5.0, 3.0)  # keeps a learned Gaussian std in [exp(-5), exp(3)]
ENUMERATION_CHUNK = 1 << 12  # states enumerated per matrix product in the exact log Z
CHAINS_KEY = "persistent_chains"  # the PCD chains' name in export_state


@dataclass(frozen=True)
class RBMConfig:
    """Configuration of `RBM` (the `model:` section of a run's YAML, field for field).

    Args:
        num_hidden: number of binary hidden units H.
        visible: "bernoulli" (binary data: binarized images, 0/1 tables) or "gaussian" (real
            values in the data's units; standardize them first, the std starts at `sigma`).
        sigma: the Gaussian visible units' std (fixed, or the initial value when learned).
        learn_sigma: learn a per-unit std for Gaussian visible units.
        cd_steps: k, the Gibbs steps from the start of the negative chain per update (CD-k).
        persistent: persistent CD (PCD): chains carried across updates instead of restarted at
            the data each update.
        num_chains: the number of persistent chains (persistent only).
        init_std: std of the initial weights (biases start at 0).
        exact_max_units: `log_likelihood(method="auto")` computes log Z exactly by enumerating
            the smaller side when it has at most this many units (2^n states), else by AIS.
        sample_steps: Gibbs sweeps `sample` runs when not told `steps`.
    """

    num_hidden: int = 500
    visible: Visible = "bernoulli"
    sigma: float = 1.0
    learn_sigma: bool = False
    cd_steps: int = 1
    persistent: bool = False
    num_chains: int = 100
    init_std: float = 0.01
    exact_max_units: int = 20
    sample_steps: int = 1000

    def __post_init__(self) -> None:
        if self.visible not in get_args(Visible):
            raise ConfigError(
                f"rbm.visible={self.visible!r} is not one of 'bernoulli', 'gaussian': pick one"
            )
        for key in ("num_hidden", "cd_steps", "num_chains", "sample_steps"):
            if getattr(self, key) < 1:
                raise ConfigError(f"rbm.{key}={getattr(self, key)}: set it to 1 or more")
        if not (math.isfinite(self.sigma) and self.sigma > 0):
            raise ConfigError(f"rbm.sigma={self.sigma}: set it above 0, e.g. 1.0")
        if not (math.isfinite(self.init_std) and self.init_std >= 0):
            raise ConfigError(f"rbm.init_std={self.init_std}: set it to 0 or more, e.g. 0.01")
        if self.learn_sigma and self.visible != "gaussian":
            raise ConfigError(
                "rbm.learn_sigma=true needs visible: gaussian (Bernoulli units have no std)"
            )
        if not 0 <= self.exact_max_units <= 30:
            raise ConfigError(
                f"rbm.exact_max_units={self.exact_max_units}: set it in [0, 30] (2^n states are "
                "enumerated; 20 takes seconds)"
            )


def _check_binary(x: Tensor, where: str) -> None:
    """DataError unless every value of x is 0 or 1."""
    if not bool(((x == 0) | (x == 1)).all()):
        low, high = float(x.min()), float(x.max())
        raise DataError(
            f"{where}: a Bernoulli rbm models binary data, but the values span [{low:.4g}, "
            f"{high:.4g}] and are not all 0 or 1: load images with binarize=true (e.g. "
            "--data mnist5k -o binarize=true), or set model visible: gaussian"
        )


def _bernoulli(p: Tensor, generator: torch.Generator | None) -> Tensor:
    """0/1 draws with probabilities p, from `generator` (drawn on its device)."""
    device = generator.device if generator is not None else p.device
    u = torch.rand(p.shape, generator=generator, device=device, dtype=p.dtype).to(p.device)
    return (u < p).to(p.dtype)


def _randn(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    device = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=device, dtype=like.dtype).to(like.device)


def _all_binary_states(n: int, start: int, stop: int, dtype: torch.dtype) -> Tensor:
    """Rows start..stop-1 of the 2^n binary vectors, (stop - start, n), bit i = unit i."""
    codes = torch.arange(start, stop, dtype=torch.long)
    return ((codes[:, None] >> torch.arange(n)) & 1).to(dtype)


@register(
    "rbm",
    RBMConfig,
    "restricted Boltzmann machine: Bernoulli or Gaussian visible units, CD-k/PCD, AIS log Z",
)
class RBM(NeuralModel):
    """Restricted Boltzmann machine (Hinton 2002) with CD-k / PCD training and AIS likelihood.

    Args:
        config: the `RBMConfig`.
        spec: the data spec; any shape, flattened to D visible units. A Bernoulli RBM needs
            binary data (images loaded with binarize=true).
    """

    def __init__(self, config: RBMConfig, spec: DataSpec) -> None:
        super().__init__()
        if spec.modality in ("text",):
            raise ConfigError(
                f"rbm models vectors and images, but {spec.name or 'this data'} is text (token "
                "ids): use an autoregressive model such as gpt or charrnn"
            )
        if config.visible == "bernoulli":
            low, high = spec.value_range or (0.0, 1.0)
            binary = spec.discrete_levels == 2 or spec.modality != "image"
            if not binary or low < 0 or high > 1:
                raise DataError(
                    f"a Bernoulli rbm models binary data, but {spec.name or 'this data'} is "
                    f"{spec.modality} with {spec.discrete_levels} levels in {spec.value_range}: "
                    "load it with binarize=true (e.g. --data mnist5k -o binarize=true), or set "
                    "visible: gaussian"
                )
        self.config = config
        self.spec = spec
        d, h = spec.num_dims, config.num_hidden
        self.weight = nn.Parameter(config.init_std * torch.randn(d, h))  # (D, H)
        self.visible_bias = nn.Parameter(torch.zeros(d))  # (D,)
        self.hidden_bias = nn.Parameter(torch.zeros(h))  # (H,)
        log_sigma = torch.full((d,), math.log(config.sigma))
        if config.learn_sigma:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)
        # (settings and weight versions, (log Z, details)) of the last log-likelihood call.
        self._log_z_cache: tuple | None = None
        # Persistent chains (M, D); empty until the first update. Not a state_dict entry, so
        # that a weight EMA never averages them; export_state saves them.
        self.register_buffer("chains", torch.empty(0, d), persistent=False)

    @property
    def device(self) -> torch.device:
        return self.weight.device

    @property
    def gaussian(self) -> bool:
        return self.config.visible == "gaussian"

    # ---- energies and conditionals ---------------------------------------------------------

    def _inv_var(self) -> Tensor:
        """1/σ² per visible unit (D,); ones for Bernoulli units."""
        if not self.gaussian:
            return torch.ones_like(self.visible_bias)
        return torch.exp(-2 * self.log_sigma.clamp(*LOG_SIGMA_RANGE))

    def _visible_term(self, v: Tensor, bias: Tensor) -> Tensor:
        """V(v): -b·v (Bernoulli) or Σ (v - b)² / 2σ² (Gaussian); v (B, D) -> (B,)."""
        if self.gaussian:
            return 0.5 * ((v - bias).pow(2) * self._inv_var()).sum(-1)
        return -(v @ bias)

    def _hidden_input(self, v: Tensor) -> Tensor:
        """c + (v/σ²)ᵀ W: v (B, D) -> (B, H)."""
        return self.hidden_bias + (v * self._inv_var()) @ self.weight

    def free_energy(self, v: Tensor) -> Tensor:
        """F(v) = -log Σ_h exp(-E(v, h)), so that p(v) = exp(-F(v)) / Z.

        Args:
            v: visible states (B, *spec.shape) or flattened (B, D).

        Returns:
            (B,) free energies in nats.
        """
        v = v.reshape(v.shape[0], -1).to(self.weight.dtype)  # (B, D)
        return self._visible_term(v, self.visible_bias) - F.softplus(self._hidden_input(v)).sum(-1)

    def hidden_probs(self, v: Tensor) -> Tensor:
        """p(h_j = 1 | v) = sigmoid(c + (v/σ²)ᵀ W): v (B, D) -> (B, H)."""
        return torch.sigmoid(self._hidden_input(v.reshape(v.shape[0], -1)))

    def visible_mean(self, h: Tensor) -> Tensor:
        """E[v | h]: sigmoid(b + W h) (Bernoulli) or b + W h (Gaussian); h (B, H) -> (B, D)."""
        a = self.visible_bias + h @ self.weight.T  # (B, D)
        return a if self.gaussian else torch.sigmoid(a)

    def _sample_visible(self, mean: Tensor, generator: torch.Generator | None) -> Tensor:
        if self.gaussian:
            std = torch.exp(self.log_sigma.clamp(*LOG_SIGMA_RANGE))
            return mean + std * _randn(tuple(mean.shape), mean, generator)
        return _bernoulli(mean, generator)

    def gibbs(
        self, v: Tensor, num_steps: int, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """`num_steps` sweeps of block Gibbs sampling h ~ p(h|v), v ~ p(v|h), from v (B, D).

        Returns:
            The last visible sample (B, D) and its conditional mean E[v | h] (B, D).
        """
        mean = v
        for _ in range(num_steps):
            h = _bernoulli(self.hidden_probs(v), generator)  # (B, H)
            mean = self.visible_mean(h)  # (B, D)
            v = self._sample_visible(mean, generator)
        return v, mean

    # ---- the contract ----------------------------------------------------------------------

    def _flat(self, x: Tensor, where: str) -> Tensor:
        if tuple(x.shape[1:]) != tuple(self.spec.shape):
            raise DataError(
                f"{where}: x has sample shape {tuple(x.shape[1:])}, but this rbm models "
                f"{self.spec.shape}"
            )
        v = x.to(self.device, self.weight.dtype).reshape(x.shape[0], -1)  # (B, D)
        if not self.gaussian:
            _check_binary(v, where)
        elif not bool(torch.isfinite(v).all()):
            raise DataError(f"{where}: x holds NaN or infinite values")
        return v

    @torch.no_grad()
    def _negatives(self, v_data: Tensor) -> Tensor:
        """Negative samples: k Gibbs steps from the data (CD-k) or the persistent chains (PCD)."""
        k = self.config.cd_steps
        if not self.config.persistent:
            return self.gibbs(v_data, k)[0]
        if self.chains.shape[0] == 0:
            # Start the chains at data rows (drawn with the global RNG the loop checkpoints).
            rows = torch.randint(0, v_data.shape[0], (self.config.num_chains,))
            self.chains = v_data[rows.to(v_data.device)].clone()
        chains = self.gibbs(self.chains.to(v_data), k)[0]
        self.chains = chains
        return chains

    def loss(self, batch: Batch, *, key: str = "main") -> LossOutput:
        """The CD-k / PCD surrogate: mean F(data) - mean F(negatives); its gradient is the
        contrastive-divergence estimate of the negative log-likelihood gradient.

        Gibbs noise comes from the global RNG, which the training loop seeds and checkpoints.
        Logs: "free_energy_data", "free_energy_gap" (data minus negatives) and
        "recon_error" (mean squared error of one Gibbs reconstruction of the data).
        """
        if key != "main":
            raise ConfigError(f"rbm has one loss key, 'main'; got {key!r}")
        v = self._flat(batch.x, "rbm loss")  # (B, D)
        v_neg = self._negatives(v)  # (M, D), detached
        f_data = self.free_energy(v).mean()
        f_neg = self.free_energy(v_neg).mean()
        with torch.no_grad():
            recon = self.visible_mean(_bernoulli(self.hidden_probs(v), None))
            recon_error = (recon - v).pow(2).sum(-1).mean()
        logs = torch.stack([f_data.detach(), (f_data - f_neg).detach(), recon_error]).tolist()
        return LossOutput(
            f_data - f_neg,
            dict(zip(("free_energy_data", "free_energy_gap", "recon_error"), logs)),
        )

    @torch.no_grad()
    def sample(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        cond: dict[str, Tensor] | None = None,
        steps: int | None = None,
        decode: Decode = "mean",
    ) -> Tensor:
        """Block Gibbs sampling from the base distribution (W = 0); float32 (N, *spec.shape).

        Args:
            num_samples: N, independent chains.
            generator: the source of every random draw.
            cond: not supported (an rbm is unconditional); must be None.
            steps: Gibbs sweeps per chain (default `config.sample_steps`); the chains start at
                the base model p(v) with W = 0 and c = 0.
            decode: "mean" returns E[v | h] of the last sweep (pixel probabilities for a
                Bernoulli rbm: smoother images), "sample" the last v itself.

        Returns:
            Samples in the data set's space; images in [0, 1].
        """
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 0:
            raise ConfigError(f"num_samples must be a non-negative integer, got {num_samples!r}")
        if cond:
            raise ConfigError("rbm is unconditional: sample without cond")
        steps = self.config.sample_steps if steps is None else steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"rbm sample: steps={steps!r} must be an integer >= 1")
        if decode not in get_args(Decode):
            raise ConfigError(f"rbm sample: decode={decode!r} is not one of 'mean', 'sample'")
        v = self._base_sample(num_samples, self.visible_bias, generator)  # (N, D)
        v, mean = self.gibbs(v, steps, generator=generator)
        x = mean if decode == "mean" else v
        if self.spec.modality == "image":
            x = x.clamp(0.0, 1.0)
        return x.reshape(num_samples, *self.spec.shape).float()

    def _base_sample(self, n: int, bias: Tensor, generator: torch.Generator | None) -> Tensor:
        """Draws from the base model with W = 0, c = 0 and visible bias `bias`: (n, D)."""
        mean = bias.expand(n, -1)
        if self.gaussian:
            return self._sample_visible(mean.clone(), generator)
        return _bernoulli(torch.sigmoid(mean), generator)

    # ---- log Z -----------------------------------------------------------------------------

    def enumerable_units(self) -> int:
        """Units on the side that `log_partition_exact` enumerates (hidden for Gaussian)."""
        if self.gaussian:
            return self.config.num_hidden
        return min(self.config.num_hidden, self.spec.num_dims)

    @torch.no_grad()
    def log_partition_exact(self) -> float:
        """log Z by enumerating the 2^n states of the smaller side (float64).

        Summing out the other side in closed form:
            hidden enumerated, Bernoulli v: log Z = logsumexp_h [c·h + Σ_i softplus(b_i + (Wh)_i)]
            hidden enumerated, Gaussian v:  log Z = logsumexp_h [c·h + Σ_i ((b+Wh)_i² - b_i²)/2σ_i²]
                                                    + Σ_i log(sqrt(2π) σ_i)
            visible enumerated (Bernoulli): log Z = logsumexp_v [-F(v)]

        Raises:
            ConfigError: the enumerated side has more than 30 units.
        """
        n = self.enumerable_units()
        if n > 30:
            raise ConfigError(
                f"rbm: exact log Z enumerates 2^{n} states, too many; use method='ais'"
            )
        w = self.weight.double()
        b, c = self.visible_bias.double(), self.hidden_bias.double()
        inv_var = self._inv_var().double()
        enumerate_hidden = self.gaussian or self.config.num_hidden <= self.spec.num_dims
        total = torch.tensor(-math.inf, dtype=torch.float64, device=w.device)
        for start in range(0, 2**n, ENUMERATION_CHUNK):
            states = _all_binary_states(n, start, min(2**n, start + ENUMERATION_CHUNK), w.dtype)
            states = states.to(w.device)  # (S, n)
            if enumerate_hidden:
                a = b + states @ w.T  # (S, D)
                if self.gaussian:
                    rest = 0.5 * ((a.pow(2) - b.pow(2)) * inv_var).sum(-1)
                else:
                    rest = F.softplus(a).sum(-1)
                log_terms = states @ c + rest  # (S,)
            else:
                log_terms = states @ b + F.softplus(c + states @ w).sum(-1)  # (S,)
            total = torch.logaddexp(total, torch.logsumexp(log_terms, 0))
        if self.gaussian:
            log_sigma = -0.5 * inv_var.log()
            total = total + (0.5 * math.log(2 * math.pi) + log_sigma).sum()
        return float(total)

    @torch.no_grad()
    def log_partition_ais(
        self,
        *,
        num_chains: int = 100,
        num_betas: int = 10000,
        base_means: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[float, dict[str, float]]:
        """log Z by annealed importance sampling (Salakhutdinov & Murray 2008).

        The intermediate models p_β(v, h) ∝ exp(-E_β) interpolate from the base model A
        (W = 0, c = 0, visible bias b_A) to this one:

            E_β(v, h) = V(v; (1-β) b_A + β b) - β (c·h + (v/σ²)ᵀ W h),   β = 0 … 1 (linear),

        whose free energies are F_β(v) = V(v; b_β) - Σ_j softplus(β (c + (v/σ²)ᵀ W)_j). Each
        chain starts with an exact draw from A, accumulates log w += F_{β_{k-1}}(v) - F_{β_k}(v)
        and moves by one Gibbs sweep at β_k; log Z ≈ log Z_A + log mean exp(log w). The
        estimate is unbiased in Z, so in expectation it underestimates log Z (Jensen), which
        makes the log-likelihood it gives optimistic.

        Args:
            num_chains: independent AIS runs M.
            num_betas: intermediate distributions K (more is more accurate).
            base_means: for a Bernoulli rbm, the visible means of the base model, e.g. the
                training data's pixel means (the "base-rate" model of Salakhutdinov & Murray,
                far closer to the data than b_A = b); None uses b_A = b. Shape (D,) or
                (*spec.shape,), values clipped to [1e-3, 1 - 1e-3].
            generator: the source of every random draw.

        Returns:
            (log Z estimate, details) with details "log_z_std_error" (delta method on the
            importance weights), "log_z_base", "num_chains", "num_betas",
            "effective_sample_size" of the final weights.
        """
        for name, value in (("num_chains", num_chains), ("num_betas", num_betas)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ConfigError(f"rbm AIS: {name}={value!r} must be an integer >= 2")
        b = self.visible_bias.double()
        if base_means is None:
            b_a = b
        elif self.gaussian:
            raise ConfigError("rbm AIS: base_means is for Bernoulli visible units only")
        else:
            m = torch.as_tensor(base_means, dtype=torch.float64, device=b.device).reshape(-1)
            if m.shape != b.shape:
                raise DataError(f"rbm AIS: base_means has {m.numel()} values, expected {b.numel()}")
            m = m.clamp(1e-3, 1 - 1e-3)
            b_a = torch.log(m) - torch.log1p(-m)
        w = self.weight.double()
        c = self.hidden_bias.double()
        inv_var = self._inv_var().double()
        hidden = self.config.num_hidden

        def visible_term(v: Tensor, beta: float) -> Tensor:  # V(v; b_β), (M,)
            bias = (1 - beta) * b_a + beta * b
            if self.gaussian:
                return 0.5 * ((v - bias).pow(2) * inv_var).sum(-1)
            return -(v @ bias)

        if self.gaussian:
            log_z_a = hidden * math.log(2) + float(
                (0.5 * math.log(2 * math.pi) - 0.5 * inv_var.log()).sum()
            )
            v = b_a + inv_var.rsqrt() * _randn((num_chains, b.numel()), b, generator)
        else:
            log_z_a = hidden * math.log(2) + float(F.softplus(b_a).sum())
            v = _bernoulli(torch.sigmoid(b_a).expand(num_chains, -1), generator)
        betas = torch.linspace(0.0, 1.0, num_betas, dtype=torch.float64).tolist()
        log_w = torch.zeros(num_chains, dtype=torch.float64, device=b.device)
        for beta_prev, beta in zip(betas[:-1], betas[1:]):
            # F_{β_{k-1}}(v) - F_β(v); one product c + (v/σ²)ᵀW serves both and the Gibbs step.
            u = c + (v * inv_var) @ w  # (M, H)
            log_w += visible_term(v, beta_prev) - visible_term(v, beta)
            log_w += (F.softplus(beta * u) - F.softplus(beta_prev * u)).sum(-1)
            # One Gibbs sweep that leaves p_β invariant.
            h = _bernoulli(torch.sigmoid(beta * u), generator)  # (M, H)
            a = (1 - beta) * b_a + beta * b + beta * (h @ w.T)  # (M, D)
            if self.gaussian:
                v = a + inv_var.rsqrt() * _randn(tuple(a.shape), a, generator)
            else:
                v = _bernoulli(torch.sigmoid(a), generator)
        log_mean_w = float(torch.logsumexp(log_w, 0)) - math.log(num_chains)
        weights = torch.exp(log_w - log_w.max())
        ratio = float(weights.std() / (weights.mean() * math.sqrt(num_chains)))
        ess = float(weights.sum() ** 2 / weights.pow(2).sum())
        details = {
            "log_z_std_error": ratio,
            "log_z_base": log_z_a,
            "num_chains": num_chains,
            "num_betas": num_betas,
            "effective_sample_size": ess,
        }
        return log_z_a + log_mean_w, details

    @torch.no_grad()
    def log_likelihood(
        self,
        x: Tensor,
        *,
        cond: dict[str, Tensor] | None = None,
        method: Method = "auto",
        num_chains: int = 100,
        num_betas: int = 10000,
        base_means: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> LogLikelihood:
        """log p(x) = -F(x) - log Z per data point, in nats.

        Args:
            x: (B, *spec.shape); binary for a Bernoulli rbm (DataError otherwise).
            cond: ignored (an rbm is unconditional).
            method: "exact" enumerates 2^n states of the smaller side (kind "exact"), "ais"
                estimates log Z by annealed importance sampling (kind "estimate"), "auto"
                takes "exact" when that side has at most `config.exact_max_units` units.
            num_chains, num_betas, base_means: AIS settings (see `log_partition_ais`).
            generator: the source of the AIS draws, for reproducible figures.

        Returns:
            LogLikelihood with nats float64 (B,) on x's device; details hold "log_z",
            "method" and, for AIS, its diagnostics.

        log Z is cached for the current weights and these settings, so a data set scored in
        batches shares one estimate (and one AIS run); new weights or settings recompute it.
        Call `log_partition_ais` directly for independent AIS runs.
        """
        if method not in get_args(Method):
            raise ConfigError(
                f"rbm log_likelihood: method={method!r} is not one of auto, exact, ais"
            )
        v = self._flat(x, "rbm log_likelihood")
        if method == "auto":
            exact = self.enumerable_units() <= self.config.exact_max_units
            method = "exact" if exact else "ais"
        details: dict = {"method": method}
        base = None if base_means is None else torch.as_tensor(base_means).flatten().tolist()
        key = (method, num_chains, num_betas, base, self._parameter_state())
        if self._log_z_cache is not None and self._log_z_cache[0] == key:
            log_z, info = self._log_z_cache[1]
        elif method == "exact":
            log_z, info = self.log_partition_exact(), {}
        else:
            log_z, info = self.log_partition_ais(
                num_chains=num_chains,
                num_betas=num_betas,
                base_means=base_means,
                generator=generator,
            )
        self._log_z_cache = (key, (log_z, info))
        details.update(info)
        details["log_z"] = log_z
        nats = -self.free_energy(v).double() - log_z
        return LogLikelihood(
            nats.to(x.device), "exact" if method == "exact" else "estimate", details
        )

    def _parameter_state(self) -> tuple:
        """Identifies the current weights: in-place updates (optimizer steps, loading) bump a
        tensor's version counter, and moving the model changes its storage."""
        return tuple((t.data_ptr(), t._version) for t in (*self.parameters(), self.log_sigma))

    # ---- state -----------------------------------------------------------------------------

    def export_state(self) -> dict[str, Tensor]:
        """The weights plus the persistent chains (when there are any)."""
        state = super().export_state()
        if self.chains.shape[0] > 0:
            state[CHAINS_KEY] = self.chains.detach().cpu().contiguous()
        return state

    def import_state(self, tensors: dict[str, Tensor]) -> None:
        tensors = dict(tensors)
        chains = tensors.pop(CHAINS_KEY, None)
        super().import_state(tensors)
        if chains is not None:
            if chains.ndim != 2 or chains.shape[1] != self.spec.num_dims:
                raise CheckpointError(
                    f"rbm: saved persistent chains have shape {tuple(chains.shape)}, expected "
                    f"(M, {self.spec.num_dims}); load them with the config they were trained with"
                )
            self.chains = chains.to(self.device, self.weight.dtype)


def random_rbm(
    num_visible: int,
    num_hidden: int,
    visible: str = "bernoulli",
    *,
    seed: int = 0,
    weight_std: float = 1.0,
) -> RBM:
    """A float64 RBM with random parameters, small enough to check estimators (AIS, Gibbs)
    against the exact `log_partition_exact`: weights N(0, weight_std^2), biases N(0, 1), and
    for Gaussian visibles log-stds U(-0.5, 0.3). Seeds the global RNG with `seed`."""
    torch.manual_seed(seed)
    model = RBM(
        RBMConfig(
            num_hidden=num_hidden,
            visible=visible,
            init_std=weight_std,
            learn_sigma=visible == "gaussian",
        ),
        DataSpec("points", (num_visible,), name="toy"),
    )
    with torch.no_grad():
        model.visible_bias.normal_()
        model.hidden_bias.normal_()
        if visible == "gaussian":
            model.log_sigma.uniform_(-0.5, 0.3)
    return model.double()
