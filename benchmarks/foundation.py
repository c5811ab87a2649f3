"""The foundation issue's figures: the demo, an unconditional VAE, and a GMM, measured.

1. Runs `genlab demo` (a class-conditional MLP VAE) in a child process into runs/bench-demo:
   wall time and peak resident memory (getrusage of the child).
2. The share of 64 demo samples (decoder means, seed 0, classes cycling 0..9, not
   reconstructions) that scikit-learn's LogisticRegression (default C=1) trained on the mnist5k
   train split assigns to some class with p >= 0.9, beside the same share for 64 real test
   digits (the ceiling this judge allows) and the share whose class is the one asked for.
3. An unconditional convolutional VAE (configs/vae_mnist5k_conv.yaml) trained into
   runs/bench-vae-conv (resumed if interrupted): test ELBO and IWAE(k=100) on binarized mnist5k,
   and the same 64-sample share for its unconditional samples.
4. A GMM's test log-likelihood on 8 Gaussians beside the true density's.

Usage: python benchmarks/foundation.py [--reuse]   (--reuse measures existing runs)
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
from genlab.evaluate import evaluate_run  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "runs" / "bench-demo"
CONV_RUN = ROOT / "runs" / "bench-vae-conv"


def run_demo() -> tuple[float, float]:
    """Run `genlab demo` in a child process; returns (wall seconds, peak RSS MiB)."""
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "genlab.cli", "demo", "--out", str(RUN), "--force"]
    subprocess.run(cmd, check=True, cwd=ROOT)
    wall = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, peak_kib / 1024


def judge() -> LogisticRegression:
    """scikit-learn's logistic regression (default C=1) on the mnist5k train split."""
    train = genlab.data.load("mnist5k", split="train")
    return LogisticRegression(max_iter=3000).fit(train.x.flatten(1).numpy(), train.labels.numpy())


def confident_share(clf: LogisticRegression, images: torch.Tensor, threshold: float = 0.9) -> float:
    """Share of images the judge assigns to some class with p >= threshold."""
    p = clf.predict_proba(images.flatten(1).numpy())
    return float(np.mean(p.max(axis=1) >= threshold))


def train_conv_vae() -> float:
    """Train (or resume) the unconditional conv VAE; returns the wall seconds of this call."""
    start = time.perf_counter()
    cmd = [
        sys.executable,
        "-m",
        "genlab.cli",
        "train",
        "vae",
        "--config",
        str(ROOT / "configs" / "vae_mnist5k_conv.yaml"),
        "--out",
        str(CONV_RUN),
    ]
    if (CONV_RUN / "config.yaml").exists():
        cmd.append("--resume")
    subprocess.run(cmd, check=True, cwd=ROOT)
    return time.perf_counter() - start


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
    parser.add_argument("--reuse", action="store_true", help="measure existing runs")
    args = parser.parse_args()
    torch.set_num_threads(2)
    figures: dict = {}
    if not args.reuse or not (RUN / "model").exists():
        wall, peak = run_demo()
        figures.update(demo_wall_seconds=round(wall, 1), demo_peak_rss_mib=round(peak, 1))
    if not args.reuse or not (CONV_RUN / "model").exists():
        figures["conv_vae_train_call_seconds"] = round(train_conv_vae(), 1)

    clf = judge()
    test = genlab.data.load("mnist5k", split="test")
    figures["judge_mnist5k_test_accuracy"] = float(
        clf.score(test.x.flatten(1).numpy(), test.labels.numpy())
    )
    real = test.x[torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[:64]]
    figures["real_test_digits_p090_share"] = confident_share(clf, real)

    demo = genlab.load(RUN)
    labels = torch.arange(64) % 10
    samples = demo.sample(64, generator=torch.Generator().manual_seed(0), cond={"label": labels})
    figures["demo_samples_p090_share"] = confident_share(clf, samples)
    figures["demo_samples_class_accuracy"] = float(
        (torch.from_numpy(clf.predict(samples.flatten(1).numpy())) == labels).float().mean()
    )
    demo_eval = evaluate_run(RUN, metrics=("nll",), options={"k": 100})
    figures["demo_test_iwae100_given_class_nats"] = demo_eval["log_likelihood_nats"]

    conv = genlab.load(CONV_RUN)
    conv_samples = conv.sample(64, generator=torch.Generator().manual_seed(0))
    figures["conv_vae_samples_p090_share"] = confident_share(clf, conv_samples)
    elbo = evaluate_run(CONV_RUN, metrics=("nll",), options={"k": 1})
    iwae = evaluate_run(CONV_RUN, metrics=("nll",), options={"k": 100})
    figures.update(
        conv_vae_test_elbo_nats=elbo["log_likelihood_nats"],
        conv_vae_test_iwae100_nats=iwae["log_likelihood_nats"],
        conv_vae_test_iwae100_stderr=iwae["log_likelihood_stderr"],
        conv_vae_test_rows=iwae["num_rows"],
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
