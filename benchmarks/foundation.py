"""The foundation issue's figures: the demo VAE and a GMM on a 2-D toy, measured.

Runs (or reuses, with --reuse) `genlab demo` into runs/bench-demo, then measures:
- demo wall time and peak resident memory (the demo runs in a child process under /usr/bin/time
  when available, else resource.getrusage of the child);
- the share of 64 demo samples (decoder means, seed 0) that a logistic-regression classifier
  trained on the mnist5k train split assigns to some class with p >= 0.9;
- the VAE's test ELBO (IWAE k=1) and IWAE(k=100) bound on binarized mnist5k test digits;
- a GMM's test log-likelihood on 8 Gaussians beside the true density's.

Usage: python benchmarks/foundation.py [--reuse]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import write_results  # noqa: E402

import genlab  # noqa: E402
from genlab.train.evaluate import evaluate_run  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "runs" / "bench-demo"


def run_demo() -> tuple[float, float]:
    """Run `genlab demo` in a child process; returns (wall seconds, peak RSS MiB)."""
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "genlab.cli", "demo", "--out", str(RUN), "--force"]
    subprocess.run(cmd, check=True, cwd=ROOT)
    wall = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, peak_kib / 1024


def confident_share(samples: torch.Tensor, threshold: float = 0.9) -> tuple[float, float]:
    """Share of samples a logistic regression on mnist5k train assigns with p >= threshold."""
    train = genlab.data.load("mnist5k", split="train")
    test = genlab.data.load("mnist5k", split="test")
    clf = LogisticRegression(max_iter=2000, C=0.1)
    clf.fit(train.x.flatten(1).numpy(), train.labels.numpy())
    test_acc = clf.score(test.x.flatten(1).numpy(), test.labels.numpy())
    p = clf.predict_proba(samples.flatten(1).numpy())
    return float(np.mean(p.max(axis=1) >= threshold)), float(test_acc)


def gmm_on_toy() -> dict[str, float]:
    train = genlab.data.load("8gaussians", split="train", num_samples=5000)
    test = genlab.data.load("8gaussians", split="test", num_samples=5000)
    start = time.perf_counter()
    model = genlab.create("gmm", n_components=8).fit(train)
    fit_seconds = time.perf_counter() - start
    ll = model.log_likelihood(test.x)
    return {
        "gmm_8gaussians_test_loglik_nats": ll.mean(),
        "gmm_8gaussians_true_test_loglik_nats": float(test.true_log_density(test.x).mean()),
        "gmm_8gaussians_fit_seconds": fit_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse", action="store_true", help="measure an existing demo run")
    args = parser.parse_args()
    figures: dict = {}
    if not args.reuse or not (RUN / "model").exists():
        wall, peak = run_demo()
        figures.update(demo_wall_seconds=round(wall, 1), demo_peak_rss_mib=round(peak, 1))
    model = genlab.load(RUN)
    samples = model.sample(64, generator=torch.Generator().manual_seed(0))
    share, clf_acc = confident_share(samples)
    figures.update(demo_samples_p090_share=share, logreg_mnist5k_test_accuracy=clf_acc)
    elbo = evaluate_run(RUN, options={"k": 1})
    iwae = evaluate_run(RUN, options={"k": 100})
    figures.update(
        vae_test_elbo_nats=elbo["log_likelihood_nats"],
        vae_test_iwae100_nats=iwae["log_likelihood_nats"],
        vae_test_iwae100_stderr=iwae["log_likelihood_stderr"],
        vae_test_rows=iwae["num_rows"],
    )
    figures.update(gmm_on_toy())
    figures["demo_outputs"] = sorted(
        str(p.relative_to(RUN))
        for p in RUN.rglob("*")
        if p.is_file() and "checkpoints" not in p.parts
    )
    table = [
        (k, f"{v:.4g}" if isinstance(v, float) else str(v))
        for k, v in figures.items()
        if k != "demo_outputs"
    ]
    path = write_results("foundation", figures, table)
    print(path.read_text())


if __name__ == "__main__":
    main()
