"""GAN mode coverage on the 8-Gaussian ring and the 25-Gaussian grid, for each loss.

The protocol of STYLE.md (after VEEGAN, Srivastava et al. 2017, and PacGAN, Lin et al. 2018):
8 Gaussians on a ring of radius 2 with sigma 0.02, 25 Gaussians on the grid {-4,-2,0,2,4}^2 with
sigma 0.05; 2,500 samples are drawn from the trained generator; a sample is *high quality* when
it lies within 3 sigma of its nearest mode, and a mode is *captured* when at least
ceil(2500 / (5 K)) high-quality samples fall on it (genlab.metrics.modes).

The documented default is configs/gan_25gaussians.yaml; each loss variant changes only the
loss and what the loss needs (the WGAN-GP critic's penalty, critic steps and step count,
spectral norm for the hinge loss, which keeps the 5,000 steps of the earlier default). Each
(data set, loss, seed) is trained once into
benchmarks/runs/gan_toys/<data>/<loss>/seed<k>/ with `genlab.train.run.train_run`, the code path
of `genlab train`, and its figures are stored there; a rerun skips finished runs and resumes
interrupted ones from their checkpoints. The table gives mean +- standard deviation over three
training seeds (0, 1, 2) and the three values.

Usage: python benchmarks/gan_toys.py [--quick] [--threads 1] [--finished-only] > gan_toys.log
(--finished-only trains nothing and tables the runs finished so far, marking the others.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import RESULTS, write_results  # noqa: E402

import genlab  # noqa: E402
from genlab.core.config import read_yaml  # noqa: E402
from genlab.metrics.modes import mode_coverage  # noqa: E402
from genlab.train.run import train_run  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "gan_25gaussians.yaml"
DATASETS = ("8gaussians", "25gaussians")
SEEDS = (0, 1, 2)
NUM_SAMPLES = 2500
SAMPLE_SEED = 12345

# Each variant: overrides of the default config's model and train sections.
VARIANTS: dict[str, dict[str, dict]] = {
    "non_saturating_r1": {"model": {"loss": "non_saturating", "spectral_norm": False}, "train": {}},
    "wgan_gp": {
        # Gulrajani et al.'s toy setting: lambda 0.1 for 2-D data, 5 critic steps, Adam (0.5, 0.9);
        # 1,500 generator steps (7,500 critic steps, each with a double-backward penalty).
        "model": {
            "loss": "wasserstein",
            "gradient_penalty": 0.1,
            "r1_gamma": 0.0,
            "spectral_norm": False,
        },
        "train": {"steps_per_key": {"disc": 5}, "steps": 1500, "checkpoint_every": 500},
    },
    "hinge_sn": {
        # A spectrally normalized D is 1-Lipschitz in the networks' space, so at input_scale 1
        # (data std 1) it can hardly tell a sample 0.05 std off a mode from one on it; under the
        # hinge loss its scores stayed near 0 and G shrank to a blob. input_scale 8 spreads the
        # data 8-fold for both nets; it did not fix this (results/gan_toys.md): an open problem.
        # Against a fixed G the SN discriminator does separate the data; in the game, G at the
        # same lr follows D's smooth maximum faster than D can sharpen it. A slower G and a
        # larger input_scale helped in short trials, not enough to replace this setting.
        "model": {"loss": "hinge", "spectral_norm": True, "r1_gamma": 0.0, "input_scale": 8.0},
        "train": {"steps": 5000},
    },
}


def default_variant(config: dict) -> str:
    """The variant the default config is (by its loss)."""
    loss = config["model"].get("loss", "non_saturating")
    names = {"non_saturating": "non_saturating_r1", "wasserstein": "wgan_gp", "hinge": "hinge_sn"}
    return names[loss]


def overrides_for(variant: str, data: str, seed: int, quick: bool) -> list[str]:
    """`--set` strings turning the default config into this run's config."""
    values = {f"model.{k}": v for k, v in VARIANTS[variant]["model"].items()}
    values.update({f"train.{k}": v for k, v in VARIANTS[variant]["train"].items()})
    values.update({"data.name": data, "train.seed": seed, "train.progress": False})
    if quick:
        values.update({"train.steps": 150, "train.checkpoint_every": 50})
    return [f"{k}={json.dumps(v)}" for k, v in values.items()]


def run_one(variant: str, data: str, seed: int, runs: Path, quick: bool) -> dict:
    """Train (or resume, or reuse) one run and score 2,500 samples."""
    out = runs / data / variant / f"seed{seed}"
    done = out / "toy_result.json"
    if done.exists():
        return json.loads(done.read_text())
    resume = (out / "config.yaml").exists() and (out / "checkpoints").exists()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # collapse warnings are recorded in the monitor log
        model, _, summary = train_run(
            "gan",
            data_name=None,
            out=out,
            config_path=None if resume else CONFIG,
            overrides=[] if resume else overrides_for(variant, data, seed, quick),
            resume=resume,
            force=not resume and out.exists(),
        )
    seconds = time.perf_counter() - start
    dataset = genlab.data.load(data, split="test")
    x = model.sample(NUM_SAMPLES, generator=torch.Generator().manual_seed(SAMPLE_SEED + seed))
    cover = mode_coverage(x.double(), dataset.info["modes"], dataset.info["std"])
    result = {
        "data": data,
        "variant": variant,
        "seed": seed,
        "modes_captured": cover["modes_captured"],
        "num_modes": cover["num_modes"],
        "high_quality_share": cover["high_quality_share"],
        "min_count": cover["min_count"],
        "steps": summary.get("steps"),
        "train_call_seconds": round(seconds, 1),
        "resumed": resume,
        "monitor": model.monitor.history,
    }
    torch.save(x, out / "samples_2500.pt")
    done.write_text(json.dumps(result, indent=2))
    print(
        f"{data} {variant} seed {seed}: {cover['modes_captured']}/{cover['num_modes']} modes, "
        f"{cover['high_quality_share']:.3f} high quality, {seconds:.0f} s",
        flush=True,
    )
    return result


def summarize(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def plot_grid(results: dict, runs: Path, path: Path) -> None:
    """One scatter per (data set, loss) of the first seed's 2,500 samples over the data."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    variants = list(VARIANTS)
    fig = Figure(figsize=(4 * len(variants), 4 * len(DATASETS)))
    FigureCanvasAgg(fig)
    for i, data in enumerate(DATASETS):
        real = genlab.data.load(data, split="test").x.numpy()
        for j, variant in enumerate(variants):
            ax = fig.add_subplot(len(DATASETS), len(variants), i * len(variants) + j + 1)
            ax.scatter(real[:, 0], real[:, 1], s=1, c="lightgrey")
            first = runs / data / variant / f"seed{SEEDS[0]}" / "samples_2500.pt"
            if first.exists():
                x = torch.load(first, weights_only=True).numpy()
                ax.scatter(x[:, 0], x[:, 1], s=1, c="C0", alpha=0.5)
            r = results.get((data, variant, SEEDS[0]))
            title = f"{data} {variant}"
            if r:
                title += f"\n{r['modes_captured']}/{r['num_modes']} modes, "
                title += f"{100 * r['high_quality_share']:.1f}% HQ (seed {SEEDS[0]})"
            ax.set_title(title, fontsize=9)
            ax.set_aspect("equal", adjustable="datalim")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="150 steps, one seed (< 1 minute)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (cores are shared)")
    parser.add_argument(
        "--finished-only",
        action="store_true",
        help="train nothing; table the finished runs and mark the missing ones 'not run'",
    )
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    torch.set_num_threads(args.threads)
    name = "gan_toys_quick" if args.quick else "gan_toys"
    runs = ROOT / "benchmarks" / "runs" / name
    seeds = SEEDS[:1] if args.quick else SEEDS
    config = read_yaml(CONFIG)
    default = default_variant(config)

    results = {}
    # The default variant first, so an interrupted run has the figures that matter most.
    for variant in sorted(VARIANTS, key=lambda v: v != default):
        for data in DATASETS:
            for seed in seeds:
                done = runs / data / variant / f"seed{seed}" / "toy_result.json"
                if args.finished_only:
                    if done.exists():
                        results[(data, variant, seed)] = json.loads(done.read_text())
                    continue
                results[(data, variant, seed)] = run_one(variant, data, seed, runs, args.quick)

    figures: dict = {
        "protocol": (
            f"{NUM_SAMPLES} samples; high quality = within 3 sigma of the nearest mode; a mode is "
            "captured with >= ceil(N / (5 K)) high-quality samples"
        ),
        "default_config": str(CONFIG.relative_to(ROOT)),
        "default_variant": default,
        "default_config_sections": config,
        "seeds": list(seeds),
        "variants": VARIANTS,
    }
    table = []
    for data in DATASETS:
        for variant in VARIANTS:
            rows = [results[(data, variant, s)] for s in seeds if (data, variant, s) in results]
            if not rows:
                table.append((f"{data} {variant}", "not run (interrupted)"))
                continue
            if len(rows) < len(seeds):
                figures[f"{data}_{variant}_seeds_finished"] = [r["seed"] for r in rows]
            modes = summarize([r["modes_captured"] for r in rows])
            hq = summarize([100 * r["high_quality_share"] for r in rows])
            secs = summarize([r["train_call_seconds"] for r in rows])
            key = f"{data}_{variant}"
            figures[f"{key}_modes_captured"] = modes
            figures[f"{key}_high_quality_percent"] = hq
            figures[f"{key}_per_seed"] = [
                {k: r[k] for k in ("seed", "modes_captured", "high_quality_share", "steps")}
                for r in rows
            ]
            figures[f"{key}_train_seconds_mean"] = secs["mean"]
            mark = " (default)" if variant == default else ""
            num_modes = rows[0]["num_modes"]
            per_seed = ", ".join(str(r["modes_captured"]) for r in rows)
            per_seed_hq = ", ".join(f"{100 * r['high_quality_share']:.1f}" for r in rows)
            table.append(
                (
                    f"{data} {variant}{mark}: modes captured of {num_modes}",
                    f"{modes['mean']:.1f} ± {modes['std']:.1f} ({per_seed})",
                )
            )
            table.append(
                (
                    f"{data} {variant}{mark}: high-quality samples %",
                    f"{hq['mean']:.1f} ± {hq['std']:.1f} ({per_seed_hq})",
                )
            )
            table.append((f"{data} {variant}: train seconds per run", f"{secs['mean']:.0f}"))
    grid = RESULTS / f"{name}.png"
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot_grid(results, runs, grid)
    figures["grid"] = str(grid.relative_to(ROOT))
    write_results(name, figures, table)
    print(f"wrote {RESULTS / name}.json, .md and .png")


if __name__ == "__main__":
    main()
