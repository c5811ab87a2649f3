"""Diffusion on the 2-D toys: test NLL from the probability-flow ODE and mode coverage.

One `diffusion` model per toy (8gaussians, 25gaussians, moons; 5,000 training points, seed 0):
the residual MLP with time embedding, cosine schedule, v target, min-SNR weighting, trained with
the one training loop for a fixed number of steps (EMA weights sampled) into
benchmarks/runs/diffusion_toys/<toy>/; an interrupted run resumes from its newest checkpoint and a
finished one is only evaluated.

Figures per toy:
- test NLL in nats per point from the probability-flow ODE (Heun, 128 steps on a Karras grid,
  exact divergence) on 1,000 test points, with a 95% bootstrap interval of the mean, beside the
  true NLL of the mixtures (their exact density);
- for 8gaussians and 25gaussians, mode coverage of 2,500 samples (genlab.metrics.modes: modes
  captured, share of samples within 3 sigma of a mode, with a 95% bootstrap interval), for
  DPM-Solver++(2M) at 20 network evaluations, Heun at 18 steps (35 evaluations) and ancestral
  DDPM at 250 steps, beside the same figures for 2,500 test points;
- a plot of sampling trajectories (DPM-Solver++(2M), 20 steps) over the data:
  benchmarks/results/diffusion_toys_<toy>.png.

Usage: python benchmarks/diffusion_toys.py [--quick] [--threads 1] > diffusion_toys.log
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import RESULTS, write_results  # noqa: E402

import genlab  # noqa: E402
from genlab.families.diffusion.diffusion import plot_trajectories  # noqa: E402
from genlab.metrics.bootstrap import bootstrap_interval  # noqa: E402
from genlab.metrics.modes import mode_coverage  # noqa: E402
from genlab.train.loop import fit  # noqa: E402

ROOT = Path(__file__).resolve().parent
TOYS = ("8gaussians", "25gaussians", "moons")
MODEL = {
    "network": "mlp",
    "hidden": 256,
    "num_blocks": 4,
    "schedule": "cosine",
    "prediction": "v",
    "loss_weighting": "min_snr",
}
TRAIN = {
    "steps": 6000,
    "batch_size": 512,
    "lr": 2e-3,
    "warmup_steps": 200,
    "ema_decay": 0.998,
    "seed": 0,
    "checkpoint_every": 500,
    "num_samples": 0,
    "progress": False,
    "precision": "fp32",
}
SAMPLERS = (("dpmpp_2m", 20), ("heun", 18), ("ddpm", 250))
NUM_SAMPLES = 2500  # the mode-coverage protocol
NUM_TEST = 1000
ODE_STEPS = 128


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def train_toy(toy: str, runs: Path, quick: bool):
    """Train (or resume, or reload) the model of one toy; returns it and its CPU seconds."""
    run = runs / toy
    data = genlab.data.load(toy, num_samples=5000, seed=0)
    model = genlab.create("diffusion", spec=data.spec, **MODEL)
    train = dict(TRAIN)
    if quick:
        train.update(steps=150, batch_size=256, checkpoint_every=50)
    config = genlab.TrainConfig(**train)
    done = run / "model" / "model.json"
    if done.exists():
        log(f"{toy}: trained model found, evaluating only")
        return genlab.load(run / "model"), json.loads((run / "train.json").read_text())
    start, wall = time.process_time(), time.perf_counter()
    torch.manual_seed(config.seed)
    result = fit(model, data, config, run_dir=run, resume=True)
    record = {
        "steps": result.steps,
        "train_cpu_seconds_this_session": round(time.process_time() - start, 1),
        "train_wall_seconds_this_session": round(time.perf_counter() - wall, 1),
    }
    model.save(run / "model")
    (run / "train.json").write_text(json.dumps(record))
    log(f"{toy}: trained {result.steps} steps, {record}")
    return model, record


def evaluate_toy(toy: str, model, quick: bool) -> dict:
    test = genlab.data.load(toy, split="test", num_samples=max(NUM_SAMPLES, NUM_TEST), seed=0)
    figures: dict = {}
    n_test = 100 if quick else NUM_TEST
    ode_steps = 16 if quick else ODE_STEPS
    x = test.x[:n_test]
    start = time.process_time()
    ll = model.log_likelihood(
        x, generator=torch.Generator().manual_seed(0), steps=ode_steps, trace="exact"
    )
    nll = -ll.nats.double().numpy()
    est, low, high = bootstrap_interval(lambda v: float(np.mean(v)), nll, seed=0)
    figures.update(
        nll_nats=est,
        nll_low=low,
        nll_high=high,
        nll_kind=ll.kind,
        nll_ode_steps=ode_steps,
        nll_num_points=n_test,
        nll_cpu_seconds=round(time.process_time() - start, 1),
    )
    if test.true_log_density is not None:
        figures["true_nll_nats"] = float(-test.true_log_density(x).mean())
    log(f"{toy}: NLL {est:.4f} [{low:.4f}, {high:.4f}] (true {figures.get('true_nll_nats')})")
    modes = test.info.get("modes")
    n = 500 if quick else NUM_SAMPLES
    for sampler, steps in SAMPLERS:
        if quick and sampler == "ddpm":
            steps = 20
        start = time.process_time()
        samples = model.sample(
            n, generator=torch.Generator().manual_seed(1), sampler=sampler, steps=steps
        )
        tag = f"{sampler}_{steps}"
        figures[f"{tag}_sample_cpu_seconds"] = round(time.process_time() - start, 2)
        figures[f"{tag}_mean"] = samples.double().mean(0).tolist()
        figures[f"{tag}_std"] = samples.double().std(0).tolist()
        if modes is None:
            continue
        points = samples.double().numpy()
        cover = mode_coverage(points, modes, test.info["std"])
        share, s_low, s_high = bootstrap_interval(
            lambda p: mode_coverage(p, modes, test.info["std"])["high_quality_share"],
            points,
            seed=0,
            num_resamples=100,
        )
        figures.update(
            {
                f"{tag}_modes_captured": cover["modes_captured"],
                f"{tag}_high_quality_share": share,
                f"{tag}_high_quality_low": s_low,
                f"{tag}_high_quality_high": s_high,
            }
        )
        log(f"{toy} {tag}: modes {cover['modes_captured']}/{len(modes)}, hq {share:.3f}")
    if modes is not None:
        real = mode_coverage(test.x[:n].double().numpy(), modes, test.info["std"])
        figures["real_modes_captured"] = real["modes_captured"]
        figures["real_high_quality_share"] = real["high_quality_share"]
        figures["num_modes"] = len(modes)
    path = model.sample_trajectory(
        300 if not quick else 50, generator=torch.Generator().manual_seed(2), steps=20
    )
    suffix = "_quick" if quick else ""
    plot = plot_trajectories(
        path,
        RESULTS / f"diffusion_toys{suffix}_{toy}.png",
        data=test.x[:2000],
        title=f"{toy}: DPM-Solver++(2M), 20 steps",
    )
    figures["trajectory_plot"] = str(plot.relative_to(ROOT.parent))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny run to prove the pipeline")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    torch.set_num_threads(args.threads)
    name = "diffusion_toys_quick" if args.quick else "diffusion_toys"
    runs = ROOT / "runs" / name
    runs.mkdir(parents=True, exist_ok=True)
    partial_path = runs / "partial.json"
    partial = json.loads(partial_path.read_text()) if partial_path.exists() else {}
    for toy in TOYS:
        if toy in partial:
            log(f"{toy}: already evaluated (partial.json)")
            continue
        model, record = train_toy(toy, runs, args.quick)
        figures = evaluate_toy(toy, model, args.quick)
        partial[toy] = {**record, **figures}
        partial_path.write_text(json.dumps(partial, indent=2))

    figures: dict = {"model": MODEL, "train": TRAIN if not args.quick else "quick"}
    table = []
    for toy in TOYS:
        f = partial[toy]
        figures.update({f"{toy}_{k}": v for k, v in f.items()})
        true = f"; true {f['true_nll_nats']:.3f}" if "true_nll_nats" in f else ""
        table.append(
            (
                f"{toy}: test NLL (nats/point, ODE, {f['nll_num_points']} points)",
                f"{f['nll_nats']:.3f} [{f['nll_low']:.3f}, {f['nll_high']:.3f}]{true}",
            )
        )
        for sampler, steps in SAMPLERS:
            steps = 20 if args.quick and sampler == "ddpm" else steps
            tag = f"{sampler}_{steps}"
            if f"{tag}_modes_captured" in f:
                table.append(
                    (
                        f"{toy}: {tag} modes captured / high-quality share",
                        f"{f[f'{tag}_modes_captured']}/{f['num_modes']} / "
                        f"{f[f'{tag}_high_quality_share']:.3f} "
                        f"[{f[f'{tag}_high_quality_low']:.3f}, {f[f'{tag}_high_quality_high']:.3f}]",
                    )
                )
        if "real_modes_captured" in f:
            table.append(
                (
                    f"{toy}: test points modes captured / high-quality share",
                    f"{f['real_modes_captured']}/{f['num_modes']} / "
                    f"{f['real_high_quality_share']:.3f}",
                )
            )
        table.append(
            (
                f"{toy}: training steps / CPU s",
                f"{f['steps']} / {f.get('train_cpu_seconds_this_session')}",
            )
        )
    path = write_results(name, figures, table)
    print(path.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
