"""Per-step overhead of genlab's diffusion samplers against diffusers' schedulers.

Overhead is everything a sampling loop does except the network: a trivial network returns a
precomputed tensor (x0 for genlab's denoiser, epsilon for diffusers' model), so what is timed is
the grid set-up (genlab's `discrete_sigmas` / `karras_sigmas`, diffusers' `set_timesteps`), the
step arithmetic, the noise of stochastic steps and the per-step Python work. Pairs, each on the
linear DDPM schedule (1,000 training steps), batch (64, 1, 28, 28) float32, the same number of
steps:

- DDPM: `samplers.ddpm` vs `DDPMScheduler` (posterior variance noise, both drawing one normal
  tensor per step from a seeded generator);
- DDIM: `samplers.ddim` (eta 0) vs `DDIMScheduler`;
- DPM++2M: `samplers.dpmpp_2m` vs `DPMSolverMultistepScheduler(algorithm_type="dpmsolver++")`;
- Euler: `samplers.euler` vs `EulerDiscreteScheduler` (with its `scale_model_input`);
- Heun: `samplers.heun` vs `HeunDiscreteScheduler` (2N - 1 evaluations on both sides).

The two sides of a pair alternate within each repeat, so load from other jobs on the machine
hits both alike. Reported: the median time per sampling step of each side, the ratio
genlab / diffusers of the medians (target <= 1.0) and a 95% bootstrap interval of that ratio
over the paired repeats. Writes benchmarks/results/diffusion_sampler_overhead{,_quick}.json,
.md and .png. A run takes about a minute (seconds with --quick); nothing is trained, so there
is nothing to resume.

Usage: python benchmarks/diffusion_sampler_overhead.py [--quick] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import RESULTS, write_results  # noqa: E402

from genlab.families.diffusion import samplers, schedules  # noqa: E402


def make_pairs(num_steps: int, shape: tuple[int, ...]):
    """name -> (genlab run, diffusers run, network evaluations); each run samples once."""
    from diffusers import (
        DDIMScheduler,
        DDPMScheduler,
        DPMSolverMultistepScheduler,
        EulerDiscreteScheduler,
        HeunDiscreteScheduler,
    )

    grid = schedules.training_sigmas("linear", 1000)
    x0_const = torch.randn(shape, generator=torch.Generator().manual_seed(1)) * 0.1
    eps_const = torch.randn(shape, generator=torch.Generator().manual_seed(2))
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(3))

    def denoise(x, sigma):  # the trivial network: costs nothing, like `model` below
        return x0_const

    def model(x, t):
        return eps_const

    def ours(sampler, sigma_fn, **options):
        def run():
            sigmas = sigma_fn()
            g = torch.Generator().manual_seed(0)
            return sampler(denoise, noise * sigmas[0].item(), sigmas, generator=g, **options)

        return run

    def theirs(scheduler, uses_scale=False, stochastic=False):
        def run():
            scheduler.set_timesteps(num_steps)
            g = torch.Generator().manual_seed(0)
            x = noise * scheduler.init_noise_sigma
            extra = {"generator": g} if stochastic else {}
            for t in scheduler.timesteps:
                x_in = scheduler.scale_model_input(x, t) if uses_scale else x
                x = scheduler.step(model(x_in, t), t, x, **extra).prev_sample
            return x

        return run

    leading = lambda: schedules.discrete_sigmas(num_steps, grid, spacing="leading")  # noqa: E731
    linspace = lambda: schedules.discrete_sigmas(  # noqa: E731
        num_steps, grid, spacing="linspace", rounded=False
    )

    def dpm_grid():  # DPM-Solver's linspace: N + 1 points, the last dropped
        t = schedules.discrete_timesteps(num_steps + 1, 1000, spacing="linspace")[:-1]
        sigmas = schedules.t_to_sigma(t, grid, interpolation="linear")
        return torch.cat([sigmas, sigmas.new_zeros(1)])

    return {
        "DDPM": (
            ours(samplers.ddpm, leading),
            theirs(DDPMScheduler(clip_sample=False), stochastic=True),
            num_steps,
        ),
        "DDIM": (
            ours(samplers.ddim, leading),
            theirs(DDIMScheduler(clip_sample=False)),
            num_steps,
        ),
        "DPM++2M": (
            ours(samplers.dpmpp_2m, dpm_grid),
            theirs(DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2)),
            num_steps,
        ),
        "Euler": (
            ours(samplers.euler, linspace),
            theirs(EulerDiscreteScheduler(), uses_scale=True),
            num_steps,
        ),
        "Heun": (
            ours(samplers.heun, linspace),
            theirs(HeunDiscreteScheduler(), uses_scale=True),
            2 * num_steps - 1,
        ),
    }


def bootstrap_ratio(a: list[float], b: list[float], *, draws: int = 2000) -> tuple[float, float]:
    """95% percentile interval of median(a) / median(b) over paired resamples of the repeats."""
    g = torch.Generator().manual_seed(0)
    a_t, b_t = torch.tensor(a), torch.tensor(b)
    idx = torch.randint(len(a), (draws, len(a)), generator=g)
    ratios = a_t[idx].median(dim=1).values / b_t[idx].median(dim=1).values
    lo, hi = torch.quantile(ratios, torch.tensor([0.025, 0.975])).tolist()
    return lo, hi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few repeats, small batch")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    shape = (64, 1, 28, 28)
    num_steps, repeats = args.steps, args.repeats
    if args.quick:
        shape, num_steps, repeats = (8, 1, 28, 28), 10, 5
    name = "diffusion_sampler_overhead" + ("_quick" if args.quick else "")

    pairs = make_pairs(num_steps, shape)
    figures: dict = {"batch_shape": list(shape), "num_steps": num_steps, "repeats": repeats}
    rows = []
    for label, (ours, theirs, evaluations) in pairs.items():
        ours(), theirs()  # warm-up: first-call allocations and lazy imports
        t_ours, t_theirs = [], []
        for r in range(repeats):
            # alternate which side goes first, so neither always follows the other
            order = [(ours, t_ours), (theirs, t_theirs)]
            for fn, times in order if r % 2 == 0 else order[::-1]:
                start = time.perf_counter()
                fn()
                times.append((time.perf_counter() - start) / num_steps)
        med_ours, med_theirs = statistics.median(t_ours), statistics.median(t_theirs)
        ratio = med_ours / med_theirs
        lo, hi = bootstrap_ratio(t_ours, t_theirs)
        key = label.lower().replace("+", "p")
        figures[f"{key}_genlab_us_per_step"] = med_ours * 1e6
        figures[f"{key}_diffusers_us_per_step"] = med_theirs * 1e6
        figures[f"{key}_ratio"] = ratio
        figures[f"{key}_ratio_ci95"] = [lo, hi]
        figures[f"{key}_network_evaluations"] = evaluations
        rows.append(
            (
                label,
                f"genlab {med_ours * 1e6:.0f} us/step, diffusers {med_theirs * 1e6:.0f} us/step, "
                f"ratio {ratio:.2f} (95% CI {lo:.2f}-{hi:.2f})",
            )
        )
        print(label, rows[-1][1], flush=True)
    path = write_results(name, figures, rows)
    print(f"wrote {path}")
    plot(figures, list(pairs), RESULTS / f"{name}.png")


def plot(figures: dict, labels: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [label.lower().replace("+", "p") for label in labels]
    ours = [figures[f"{k}_genlab_us_per_step"] for k in keys]
    theirs = [figures[f"{k}_diffusers_us_per_step"] for k in keys]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    pos = torch.arange(len(labels)).tolist()
    ax.bar([p - 0.2 for p in pos], ours, width=0.4, label="genlab")
    ax.bar([p + 0.2 for p in pos], theirs, width=0.4, label="diffusers")
    ax.set_xticks(pos, labels)
    ax.set_ylabel("overhead per step (us)")
    shape = "x".join(str(s) for s in figures["batch_shape"])
    ax.set_title(f"sampler overhead, batch {shape}, {figures['num_steps']} steps")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
