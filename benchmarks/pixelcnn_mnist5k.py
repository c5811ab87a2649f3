"""PixelCNN on binarized mnist5k: exact test NLL in nats, next to the VAE's IWAE bound.

Data: `mnist5k` with binarize=True: train = 4,000 images binarized afresh per batch, test =
1,000 images binarized once with seed 0 (the data source's fixed test binarization, the same
split and binarization foundation.py scores the conv VAE on).

Model: a Gated PixelCNN (genlab `pixelcnn`; hidden 32, 6 gated layers after a 7 x 7 first
layer, output width 64), trained with genlab's one loop (AdamW, lr 2e-3, 50 warm-up steps,
cosine decay, batch 32, fp32, 1 thread) for a budget of CPU time: `--minutes` (default 15)
CPU-minutes. The budget becomes a number of steps once, from the CPU seconds per step measured
on 5 steps at the start, and is stored in the run folder (plan.json), so the cosine schedule is
fixed and an interrupted run resumes from its checkpoint to the same end (`fit(resume=True)`).

Figures (results/pixelcnn_mnist5k.json, .md):
- the PixelCNN's exact test NLL in nats per image (mean, with a 95% percentile bootstrap
  interval over the 1,000 test images) and in bits/dim (discrete data: NLL / (784 ln 2));
- the same on 1,000 train images (one fixed binarization, seed 1), to show the gap;
- the VAE's figure cited from results/foundation.json, key `conv_vae_test_iwae100_nats` (the
  conv VAE trained 6,000 steps by foundation.py, IWAE k = 100, a lower bound on log p(x));
- when the VAE's run folder (runs/bench-vae-conv) is present, its IWAE_100 recomputed per test
  image here (seed 0), and the paired difference PixelCNN NLL - VAE bound with a bootstrap
  interval over test images;
- seconds to sample 16 images pixel by pixel (written to the run folder as samples.png).

The trained model is saved under benchmarks/runs/pixelcnn_mnist5k/ (git-ignored).

Usage: python benchmarks/pixelcnn_mnist5k.py [--minutes 15] [--threads 1] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import write_results  # noqa: E402

import genlab  # noqa: E402
from genlab.data.writers import write_samples  # noqa: E402
from genlab.metrics.bootstrap import bootstrap_interval  # noqa: E402
from genlab.train.checkpoint import latest_checkpoint  # noqa: E402
from genlab.train.loop import fit  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RUNS = Path(__file__).resolve().parent / "runs"
VAE_RUN = ROOT / "runs" / "bench-vae-conv"
FOUNDATION = Path(__file__).resolve().parent / "results" / "foundation.json"
VAE_KEY = "conv_vae_test_iwae100_nats"

MODEL = {"hidden_channels": 32, "num_layers": 6, "output_channels": 64, "first_kernel_size": 7}
QUICK_MODEL = {"hidden_channels": 8, "num_layers": 1, "output_channels": 8, "first_kernel_size": 5}
TRAIN = {"batch_size": 32, "lr": 2e-3, "warmup_steps": 50, "seed": 0}
CALIBRATION_STEPS = 5
NUM_SAMPLES = 16


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def seconds_per_step(model_config: dict, train: genlab.data.Dataset) -> float:
    """CPU seconds of one training step of a fresh model (the mean of 5 after a warm-up)."""
    model = genlab.create("pixelcnn", spec=train.spec, **model_config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=TRAIN["lr"])
    gen = torch.Generator().manual_seed(0)
    batches = [
        train.batch(
            torch.randint(0, len(train), (TRAIN["batch_size"],), generator=gen), generator=gen
        )
        for _ in range(CALIBRATION_STEPS + 1)
    ]
    for i, batch in enumerate(batches):
        if i == 1:
            start = time.process_time()
        optimizer.zero_grad()
        model.loss(batch).loss.backward()
        optimizer.step()
    return (time.process_time() - start) / CALIBRATION_STEPS


def plan(run_dir: Path, minutes: float, model_config: dict, train) -> dict:
    """The run's fixed plan (steps from the CPU budget), made once and reused on resume."""
    path = run_dir / "plan.json"
    if path.exists():
        stored = json.loads(path.read_text())
        if stored["model"] != model_config or stored["budget_cpu_minutes"] != minutes:
            raise SystemExit(
                f"{run_dir} was planned for {stored['budget_cpu_minutes']} CPU-minutes with "
                f"{stored['model']}; delete the folder to start over with other settings"
            )
        return stored
    per_step = seconds_per_step(model_config, train)
    record = {
        "model": model_config,
        "train": TRAIN,
        "budget_cpu_minutes": minutes,
        "cpu_seconds_per_step": per_step,
        "steps": max(1, int(minutes * 60 / per_step)),
        "train_cpu_seconds": 0.0,
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def train_pixelcnn(run_dir: Path, record: dict, train) -> genlab.core.contract.NeuralModel:
    """Train (or resume, or reload) the PixelCNN of the plan."""
    saved = run_dir / "model"
    if (saved / "model.json").exists():
        log(f"reusing the trained model in {saved}")
        return genlab.load(saved)
    model = genlab.create("pixelcnn", spec=train.spec, **record["model"])
    config = genlab.TrainConfig(
        steps=record["steps"],
        batch_size=TRAIN["batch_size"],
        lr=TRAIN["lr"],
        warmup_steps=min(TRAIN["warmup_steps"], record["steps"] // 10),
        seed=TRAIN["seed"],
        precision="fp32",
        device="cpu",
        checkpoint_every=100,
        log_every=10,
        num_samples=0,
        progress=False,
    )
    found = latest_checkpoint(run_dir / "checkpoints")
    log(f"training {record['steps']} steps" + (f", resuming from {found.name}" if found else ""))
    start = time.process_time()
    fit(model, train, config, run_dir=run_dir, resume=True)
    record["train_cpu_seconds"] += time.process_time() - start
    (run_dir / "plan.json").write_text(json.dumps(record, indent=2) + "\n")
    model.save(saved)
    return model


def mean_interval(values: np.ndarray) -> tuple[float, float, float]:
    return bootstrap_interval(lambda v: float(np.mean(v)), values, num_resamples=1000, seed=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="CPU-minutes of training")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="a < 1 minute end-to-end check")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    name = "pixelcnn_mnist5k_quick" if args.quick else "pixelcnn_mnist5k"
    run_dir = RUNS / name
    if args.quick:
        shutil.rmtree(run_dir, ignore_errors=True)
    minutes = 0.05 if args.quick else args.minutes
    model_config = QUICK_MODEL if args.quick else MODEL

    train = genlab.data.load("mnist5k", binarize=True)
    test = genlab.data.load("mnist5k", split="test", binarize=True)
    num_test = 100 if args.quick else len(test)
    test_x = test.x[:num_test]
    assert set(test_x.unique().tolist()) <= {0.0, 1.0}

    record = plan(run_dir, minutes, model_config, train)
    log(f"plan: {record['steps']} steps at {record['cpu_seconds_per_step']:.3f} CPU-s/step")
    model = train_pixelcnn(run_dir, record, train)

    start = time.process_time()
    test_ll = model.log_likelihood(test_x).nats.numpy()
    eval_seconds = time.process_time() - start
    nll, nll_low, nll_high = mean_interval(-test_ll)
    train_x = torch.bernoulli(train.x[:num_test], generator=torch.Generator().manual_seed(1))
    train_nll = float(-model.log_likelihood(train_x).nats.mean())
    bits = nll / (784 * math.log(2))
    log(f"test NLL {nll:.2f} nats [{nll_low:.2f}, {nll_high:.2f}], {bits:.4f} bits/dim")

    start = time.process_time()
    samples = model.sample(NUM_SAMPLES, generator=torch.Generator().manual_seed(0))
    sample_seconds = time.process_time() - start
    write_samples(samples, model.spec, run_dir / "samples.png", nrow=4)

    foundation = json.loads(FOUNDATION.read_text()) if FOUNDATION.exists() else {}
    figures = {
        "data": "mnist5k binarize=True (train 4000 dynamic; test 1000 fixed seed-0 binarization)",
        "model_config": record["model"],
        "train_config": {**TRAIN, "steps": record["steps"], "schedule": "cosine"},
        "budget_cpu_minutes": record["budget_cpu_minutes"],
        "train_steps": record["steps"],
        "train_cpu_seconds": round(record["train_cpu_seconds"], 1),
        "cpu_seconds_per_step_planned": round(record["cpu_seconds_per_step"], 4),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "test_images": num_test,
        "pixelcnn_test_nll_nats": nll,
        "pixelcnn_test_nll_ci95": [nll_low, nll_high],
        "pixelcnn_test_bits_per_dim": bits,
        "pixelcnn_train_subset_nll_nats": train_nll,
        "pixelcnn_test_eval_cpu_seconds": round(eval_seconds, 1),
        "pixelcnn_sample16_cpu_seconds": round(sample_seconds, 1),
        "vae_cited_from": f"benchmarks/results/foundation.json:{VAE_KEY}",
        "vae_cited_test_iwae100_nats": foundation.get(VAE_KEY),
        "vae_cited_test_iwae100_stderr": foundation.get("conv_vae_test_iwae100_stderr"),
    }
    table = [
        ("data", f"binarized mnist5k, test = {num_test:,} images (fixed seed-0 binarization)"),
        (
            "PixelCNN test NLL (exact), nats",
            f"{nll:.2f} [{nll_low:.2f}, {nll_high:.2f}] (95% bootstrap)",
        ),
        ("PixelCNN test bits/dim", f"{bits:.4f}"),
        (
            f"PixelCNN NLL on {num_test:,} train images (seed-1 binarization), nats",
            f"{train_nll:.2f}",
        ),
        (
            "conv VAE test -IWAE_100 (upper bound on NLL), nats, cited",
            f"{-foundation[VAE_KEY]:.2f} ± {foundation.get('conv_vae_test_iwae100_stderr', float('nan')):.2f} "
            f"(foundation.json:{VAE_KEY})"
            if VAE_KEY in foundation
            else "missing",
        ),
        (
            "training",
            f"{record['steps']} steps x 32, {record['train_cpu_seconds'] / 60:.1f} CPU-min, {args.threads} thread",
        ),
        ("parameters", f"{figures['num_parameters']:,}"),
        ("sampling 16 images", f"{sample_seconds:.1f} CPU-s"),
    ]

    if VAE_RUN.joinpath("model", "model.json").exists() and not args.quick:
        log("recomputing the VAE's IWAE_100 per test image")
        vae = genlab.load(VAE_RUN)
        start = time.process_time()
        vae_ll = vae.log_likelihood(
            test_x, k=100, generator=torch.Generator().manual_seed(0)
        ).nats.numpy()
        vae_bound, vae_low, vae_high = mean_interval(-vae_ll)
        diff, diff_low, diff_high = mean_interval(-test_ll + vae_ll)
        figures.update(
            vae_recomputed_test_neg_iwae100_nats=vae_bound,
            vae_recomputed_test_neg_iwae100_ci95=[vae_low, vae_high],
            vae_recomputed_cpu_seconds=round(time.process_time() - start, 1),
            pixelcnn_nll_minus_vae_bound_nats=diff,
            pixelcnn_nll_minus_vae_bound_ci95=[diff_low, diff_high],
        )
        table += [
            (
                "conv VAE test -IWAE_100, recomputed here, nats",
                f"{vae_bound:.2f} [{vae_low:.2f}, {vae_high:.2f}]",
            ),
            (
                "PixelCNN NLL - VAE bound, paired, nats",
                f"{diff:.2f} [{diff_low:.2f}, {diff_high:.2f}]",
            ),
        ]
    path = write_results(name, figures, table)
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
