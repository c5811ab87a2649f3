"""Latent-variable and energy-based models on mnist5k, each trained within a CPU-time budget.

Five models, each trained by the one training loop for `--minutes` CPU-minutes of this process
(one thread; the budget is process CPU time, so a busy machine slows the wall clock, not the
figures), saved under benchmarks/runs/latent_energy_mnist5k/<model>/ and resumed if
interrupted (training continues from its checkpoint, the CPU time already spent is recorded in
partial.json, and finished evaluations are skipped):

- `vae`, `beta_vae` (beta = 4 with linear KL warm-up), `cvae` (class-conditional): MLP VAEs on
  dynamically binarized train digits. Test NLL = -IWAE_k (k importance samples, Burda et al.
  2016) on the fixed binarization of the 1,000 test digits; the cVAE's figure is the class
  accuracy of N samples (classes cycling 0..9) under the digits28 classifier, beside the same
  classifier's accuracy on the real test digits.
- `rbm`: Bernoulli RBM with 500 hidden units trained by persistent CD; test log-likelihood with
  log Z from annealed importance sampling (Salakhutdinov & Murray 2008; base-rate model from the
  train pixel means). The published full-MNIST figure for a 500-hidden RBM trained with CD-25 is
  about -86 nats (60,000 training digits and far more compute); ours is reported with its budget.
- `ebm`: convolutional energy model on grey digits, SGLD negatives from a replay buffer (Du &
  Mordatch 2019). FID on digits28 features of N samples against N test digits, beside the
  real-vs-real floor (N train digits against the same test digits), and the share of samples
  the digits28 classifier labels with probability >= 0.9, beside that share for real digits.

Every model also gets FID and confident share for its samples (N = 1,000, seed 0), with 95%
percentile-bootstrap intervals (200 resamples; test rows resampled for NLL, samples for
accuracy and shares, both sets for FID). Sample grids go to benchmarks/results/.

Usage:
    python benchmarks/latent_energy_mnist5k.py [--minutes 8] [--threads 1] [--quick]
--quick trains each model for a few CPU-seconds with small evaluation settings and writes
latent_energy_mnist5k_quick.{json,md}: it proves the pipeline, not the models.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import RESULTS, write_results  # noqa: E402

import genlab  # noqa: E402
from genlab.data.writers import write_samples  # noqa: E402
from genlab.metrics.bootstrap import bootstrap_interval  # noqa: E402
from genlab.metrics.distances import fid  # noqa: E402
from genlab.metrics.features import get_extractor  # noqa: E402
from genlab.train.loop import fit  # noqa: E402

NAME = "latent_energy_mnist5k"
HERE = Path(__file__).resolve().parent
CONFIDENT = 0.9  # classifier probability that counts as "confidently classified"
CHUNK_WALL_SECONDS = 120.0  # one fit call; the CPU spent is recorded after each

VAE_ARCH = {"hidden": (512, 256), "latent_dim": 32}
# name -> (registry model, model config, data: "binary" or "grey", train config overrides)
MODELS: dict[str, tuple[str, dict[str, Any], str, dict[str, Any]]] = {
    "vae": ("vae", dict(VAE_ARCH), "binary", {"batch_size": 128, "lr": 1e-3}),
    "beta_vae": (
        "vae",
        {**VAE_ARCH, "beta": 4.0, "kl_warmup_steps": 1000},
        "binary",
        {"batch_size": 128, "lr": 1e-3},
    ),
    "cvae": ("vae", {**VAE_ARCH, "conditional": True}, "binary", {"batch_size": 128, "lr": 1e-3}),
    "rbm": (
        "rbm",
        {"num_hidden": 500, "cd_steps": 1, "persistent": True, "num_chains": 100},
        "binary",
        {"batch_size": 100, "lr": 1e-3, "grad_clip": 0.0},
    ),
    "ebm": (
        "ebm",
        {
            "conv_channels": (16, 32, 64),
            "sgld_steps": 20,
            "energy_reg": 0.1,
            "buffer_size": 8192,
        },
        "grey",
        {"batch_size": 64, "lr": 1e-4, "betas": (0.0, 0.999)},
    ),
}


def load_partial(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {"train": {}, "eval": {}}


def save_partial(path: Path, partial: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(partial, indent=2))
    tmp.replace(path)


def train_model(
    name: str, data: dict[str, Any], runs: Path, budget: float, partial: dict, partial_path: Path
):
    """Train (or resume) model `name` until `budget` CPU-seconds are spent; returns the model."""
    model_name, config, data_kind, train_overrides = MODELS[name]
    run_dir = runs / name
    record = partial["train"].setdefault(name, {"cpu_seconds": 0.0, "wall_seconds": 0.0})
    if record.get("done") and (run_dir / "model").exists():
        return genlab.load(run_dir / "model")
    torch.manual_seed(0)
    model = genlab.create(model_name, spec=data[data_kind].spec, **config)
    train = genlab.TrainConfig(
        steps=10**9,  # the CPU budget stops training; a constant learning rate suits that
        schedule="constant",
        progress=False,
        log_every=50,
        checkpoint_every=0,
        num_samples=0,
        device="cpu",
        seed=0,
        **train_overrides,
    )
    while record["cpu_seconds"] < budget:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        # A 1-thread process spends at most its wall time in CPU, so the chunk cannot overrun.
        chunk = min(CHUNK_WALL_SECONDS, budget - record["cpu_seconds"])
        train = _replace(train, max_seconds=max(chunk, 1.0))
        result = fit(model, data[data_kind], train, run_dir=run_dir, resume=True)
        record["cpu_seconds"] += time.process_time() - cpu0
        record["wall_seconds"] += time.perf_counter() - wall0
        record["steps"] = result.steps
        record["last_logs"] = result.last_logs
        save_partial(partial_path, partial)
        print(f"[{name}] step {result.steps}, {record['cpu_seconds']:.0f} CPU-s", flush=True)
    model.save(run_dir / "model")
    record["done"] = True
    save_partial(partial_path, partial)
    return model


def _replace(config, **changes):
    from dataclasses import replace

    return replace(config, **changes)


def interval(values: torch.Tensor, statistic, seed: int = 0) -> tuple[float, float, float]:
    """(estimate, low, high) of `statistic(values)` by the percentile bootstrap."""
    return bootstrap_interval(statistic, values.double(), num_resamples=200, seed=seed)


def sample_figures(
    model, extractor, real_features: torch.Tensor, n: int, prefix: str, out_png: Path, **options
) -> dict[str, Any]:
    """FID (with interval) and the confident share of n samples; writes a 10x10 sample grid."""
    cpu0 = time.process_time()
    g = torch.Generator().manual_seed(0)
    cond = None
    if getattr(model, "cond_keys", ()) == ("label",):
        cond = {"label": torch.arange(n) % 10}
    x = model.sample(n, generator=g, cond=cond, **options).clamp(0, 1)
    sample_seconds = time.process_time() - cpu0
    write_samples(x[:100], model.spec, out_png)
    features = extractor.features(x).double()
    probs = extractor.probs(x).double()
    f, f_low, f_high = bootstrap_interval(fid, real_features, features, num_resamples=200)
    confident = (probs.max(1).values >= CONFIDENT).double()
    share, s_low, s_high = interval(confident, lambda v: float(v.mean()))
    figures = {
        f"{prefix}_fid": f,
        f"{prefix}_fid_low": f_low,
        f"{prefix}_fid_high": f_high,
        f"{prefix}_confident_share": share,
        f"{prefix}_confident_share_low": s_low,
        f"{prefix}_confident_share_high": s_high,
        f"{prefix}_sample_cpu_seconds": sample_seconds,
    }
    if cond is not None:
        correct = (probs.argmax(1) == cond["label"]).double()
        acc, a_low, a_high = interval(correct, lambda v: float(v.mean()))
        figures.update(
            {
                f"{prefix}_class_accuracy": acc,
                f"{prefix}_class_accuracy_low": a_low,
                f"{prefix}_class_accuracy_high": a_high,
            }
        )
    return figures


def nll_figures(ll, prefix: str) -> dict[str, Any]:
    """Mean negative log-likelihood in nats with a bootstrap interval over the test rows."""
    nll, low, high = interval(-ll.nats, lambda v: float(v.mean()))
    return {f"{prefix}": nll, f"{prefix}_low": low, f"{prefix}_high": high}


def evaluate(name: str, model, data: dict, settings: dict, extractor, real_features) -> dict:
    n, out = settings["n"], RESULTS
    test_binary = data["test_binary"]
    figures: dict[str, Any] = {}
    cpu0 = time.process_time()
    g = torch.Generator().manual_seed(0)
    if name in ("vae", "beta_vae"):
        k = settings["iwae_k"]
        ll = model.log_likelihood(test_binary.x, k=k, generator=g, batch_size=20000)
        figures.update(nll_figures(ll, f"{name}_test_nll_iwae{k}"))
        ll1 = model.log_likelihood(test_binary.x, k=1, generator=g)
        figures.update(nll_figures(ll1, f"{name}_test_nll_elbo"))
        figures.update(
            sample_figures(model, extractor, real_features, n, name, out / f"{NAME}_{name}.png")
        )
    elif name == "cvae":
        figures.update(
            sample_figures(model, extractor, real_features, n, name, out / f"{NAME}_{name}.png")
        )
    elif name == "rbm":
        base = data["binary"].x.flatten(1).mean(0)
        ll = model.log_likelihood(
            test_binary.x,
            method="ais",
            num_chains=settings["ais_chains"],
            num_betas=settings["ais_betas"],
            base_means=base,
            generator=g,
        )
        figures.update(nll_figures(ll, "rbm_test_nll_ais"))
        figures.update(
            {
                "rbm_ais_log_z": ll.details["log_z"],
                "rbm_ais_log_z_std_error": ll.details["log_z_std_error"],
                "rbm_ais_effective_sample_size": ll.details["effective_sample_size"],
                "rbm_ais_num_chains": settings["ais_chains"],
                "rbm_ais_num_betas": settings["ais_betas"],
            }
        )
        train_rows = data["train_binary_fixed"]
        train_ll = -model.free_energy(train_rows).double() - ll.details["log_z"]
        figures["rbm_train_nll_ais"] = float(-train_ll.mean())
        figures.update(
            sample_figures(
                model,
                extractor,
                real_features,
                n,
                "rbm",
                out / f"{NAME}_rbm.png",
                steps=settings["gibbs_steps"],
            )
        )
    elif name == "ebm":
        for init, steps in (("noise", settings["sgld_noise_steps"]), ("buffer", 20)):
            figures.update(
                sample_figures(
                    model,
                    extractor,
                    real_features,
                    n,
                    f"ebm_{init}{steps}",
                    out / f"{NAME}_ebm_{init}.png",
                    init=init,
                    steps=steps,
                )
            )
    figures[f"{name}_eval_cpu_seconds"] = time.process_time() - cpu0
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=8.0, help="CPU-minutes per model")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="a < 1 minute end-to-end check")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    name = f"{NAME}_quick" if args.quick else NAME
    runs = HERE / "runs" / name
    partial_path = runs / "partial.json"
    partial = load_partial(partial_path)
    budget = 2.0 if args.quick else 60.0 * args.minutes
    settings = {
        "n": 300 if args.quick else 1000,
        "iwae_k": 10 if args.quick else 1000,
        "ais_chains": 16 if args.quick else 100,
        "ais_betas": 100 if args.quick else 10000,
        "gibbs_steps": 20 if args.quick else 1000,
        "sgld_noise_steps": 10 if args.quick else 100,
    }
    if partial.get("settings") not in (None, settings):
        print("settings changed since the partial results; evaluations are redone", flush=True)
        partial["eval"] = {}
    partial["settings"] = settings
    partial["budget_cpu_seconds_per_model"] = budget

    data = {
        "binary": genlab.data.load("mnist5k", binarize=True),
        "grey": genlab.data.load("mnist5k"),
        "test_binary": genlab.data.load("mnist5k", split="test", binarize=True),
    }
    grey_test = genlab.data.load("mnist5k", split="test")
    # The train digits binarized once (seed 0), for the RBM's train-set likelihood.
    data["train_binary_fixed"] = torch.bernoulli(
        data["grey"].x[:1000].flatten(1), generator=torch.Generator().manual_seed(0)
    )
    n = settings["n"]
    extractor = get_extractor("digits28")
    test_rows = torch.randperm(len(grey_test), generator=torch.Generator().manual_seed(0))[:n]
    real = grey_test.x[test_rows]
    real_features = extractor.features(real).double()
    if "floor" not in partial["eval"]:
        train_rows = torch.randperm(len(data["grey"]), generator=torch.Generator().manual_seed(1))
        reference = data["grey"].x[train_rows[:n]]
        f, low, high = bootstrap_interval(
            fid, real_features, extractor.features(reference).double(), num_resamples=200
        )
        probs = extractor.probs(real).double()
        confident = (probs.max(1).values >= CONFIDENT).double()
        share, s_low, s_high = interval(confident, lambda v: float(v.mean()))
        accuracy = float((probs.argmax(1) == grey_test.labels[test_rows]).double().mean())
        partial["eval"]["floor"] = {
            "real_vs_real_fid": f,
            "real_vs_real_fid_low": low,
            "real_vs_real_fid_high": high,
            "real_test_confident_share": share,
            "real_test_confident_share_low": s_low,
            "real_test_confident_share_high": s_high,
            "real_test_classifier_accuracy": accuracy,
        }
        save_partial(partial_path, partial)

    for model_name in args.models.split(","):
        if model_name not in MODELS:
            raise SystemExit(f"unknown model {model_name!r}; choose from {', '.join(MODELS)}")
        model = train_model(model_name, data, runs, budget, partial, partial_path)
        if model_name in partial["eval"]:
            continue
        model.eval()
        figures = evaluate(model_name, model, data, settings, extractor, real_features)
        partial["eval"][model_name] = figures
        save_partial(partial_path, partial)
        print(f"[{model_name}] {figures}", flush=True)

    figures: dict[str, Any] = {
        "num_samples": n,
        "feature_network": extractor.describe(),
        "budget_cpu_seconds_per_model": budget,
        "settings": settings,
        "models": {k: {"registry": v[0], "config": v[1], "train": v[3]} for k, v in MODELS.items()},
    }
    for model_name, record in partial["train"].items():
        figures[f"{model_name}_train_cpu_seconds"] = record["cpu_seconds"]
        figures[f"{model_name}_train_wall_seconds"] = record["wall_seconds"]
        figures[f"{model_name}_train_steps"] = record.get("steps")
    for part in partial["eval"].values():
        figures.update(part)
    table = []
    for key, value in figures.items():
        if key.endswith(("_low", "_high")) or isinstance(value, dict):
            continue
        low, high = figures.get(f"{key}_low"), figures.get(f"{key}_high")
        if isinstance(value, float):
            text = f"{value:.4g}" if math.isfinite(value) else str(value)
            if low is not None and high is not None:
                text += f" [{low:.4g}, {high:.4g}]"
        else:
            text = str(value)
        table.append((key, text))
    path = write_results(name, figures, table)
    print(path.read_text())


if __name__ == "__main__":
    main()
