"""VQ-VAE on mnist5k: reconstruction, codebook use, and FID/KID of samples from its GPT prior.

Trains configs/vqvae_mnist5k.yaml into runs/bench-vqvae (a 25-minute wall budget; an interrupted
run resumes, and a finished one is only evaluated), then on the 1,000 test digits reports the
mean absolute and squared reconstruction error, the share of the codebook the test codes use and
the codes' perplexity, the test lower bound on log p(x) (nats, Gaussian decoder of std 0.1 in
[0, 1] units: a density, comparable only to other continuous-density figures), and for N = 1,000
prior samples (seed 0, and 2 redraws for a spread) FID and KID on genlab's digit features
(digits28) with the real-vs-real floor, precision and recall.

Usage: python benchmarks/vqvae_mnist5k.py [--quick] [--threads 1]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import write_results  # noqa: E402

import genlab  # noqa: E402
from genlab.evaluate import evaluate_run  # noqa: E402
from genlab.train.run import load_run  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def train(run: Path, quick: bool) -> None:
    cmd = [
        sys.executable,
        "-m",
        "genlab.cli",
        "train",
        "vqvae",
        "--config",
        str(ROOT / "configs" / "vqvae_mnist5k.yaml"),
        "--out",
        str(run),
    ]
    if quick:
        cmd += ["--set", "train.steps=20", "--set", "train.max_seconds=0"]
        cmd += ["--set", "train.checkpoint_every=10"]
    if (run / "config.yaml").exists():
        cmd.append("--resume")
    subprocess.run(cmd, check=True, cwd=ROOT)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a 20-step smoke run")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    name = "vqvae_mnist5k_quick" if args.quick else "vqvae_mnist5k"
    run = ROOT / "runs" / ("bench-vqvae-quick" if args.quick else "bench-vqvae")
    if not (run / "model" / "model.json").exists():
        train(run, args.quick)
    model, _, _ = load_run(run)
    test = genlab.data.load("mnist5k", split="test")
    with torch.no_grad():
        recon = model.reconstruct(test.x)
        codes = model.encode(test.x)
    counts = torch.bincount(codes.flatten(), minlength=model.config.num_codes).double()
    share = counts / counts.sum()
    perplexity = float(torch.exp(-(share * share.clamp_min(1e-12).log()).sum()))
    n = 200 if args.quick else 1000
    figures = {
        "test_recon_mae": float((recon - test.x).abs().mean()),
        "test_recon_mse": float((recon - test.x).pow(2).mean()),
        "test_codebook_usage": float((counts > 0).double().mean()),
        "test_code_perplexity": perplexity,
        "num_codes": model.config.num_codes,
        "num_samples": n,
    }
    evaluation = evaluate_run(
        run,
        metrics=("nll", "fid", "kid", "prdc"),
        num_samples=n,
        redraws=0 if args.quick else 2,
        features="digits28",
        seed=0,
    )
    figures.update({f"eval_{k}": v for k, v in evaluation.items() if isinstance(v, int | float)})
    rows = [(k, f"{v:.4g}" if isinstance(v, float) else str(v)) for k, v in figures.items()]
    path = write_results(name, figures, rows)
    print(path.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
