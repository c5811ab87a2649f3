"""DCGAN, WGAN-GP, SNGAN and a class-conditional SNGAN on mnist5k, each within a CPU time budget.

Each model trains for `--minutes` of wall time (default 10; `--minutes-for wgan_gp=20` gives one
model its own budget: WGAN-GP's five critic steps with a double-backward penalty make a
generator step about six times dearer) with the one training loop
(`genlab.train.run.train_run`, the code path of `genlab train`) into
benchmarks/runs/gan_mnist5k/<model>/, from configs/gan_mnist5k.yaml (the DCGAN run) with the
model's preset and train settings below. An interrupted run resumes from its newest checkpoint
with the time it has left; a finished run is evaluated again without training.

Figures, on N = 1,000 samples against the 1,000 mnist5k test digits in the `digits28` feature
space (genlab.evaluate, the code of `genlab eval`): FID, KID, precision, recall, density and
coverage, each beside the same figure for 1,000 training digits against the test digits (the
real-vs-real floor). Intervals: the 2.5/97.5 percentiles over `--redraws` + 1 fresh sample sets
(evaluate.py explains why redraws rather than a with-replacement bootstrap), and a percentile
bootstrap of KID over the one sample set. For the conditional model, the class accuracy of
1,000 samples (100 per class) under the digits28 classifier, with a bootstrap interval, beside
that classifier's accuracy on the real test digits.

Usage: python benchmarks/gan_mnist5k.py [--minutes 10] [--minutes-for NAME=MIN ...] [--quick]
       [--threads 1] > gan_mnist5k.log
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import RESULTS, write_results  # noqa: E402

import genlab  # noqa: E402
from genlab.core.config import read_yaml  # noqa: E402
from genlab.data.writers import write_samples  # noqa: E402
from genlab.evaluate import evaluate_run  # noqa: E402
from genlab.families.gan.gan import write_interpolation  # noqa: E402
from genlab.metrics.bootstrap import bootstrap_interval  # noqa: E402
from genlab.metrics.distances import kid  # noqa: E402
from genlab.metrics.features import get_extractor  # noqa: E402
from genlab.train.run import train_run  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "gan_mnist5k.yaml"

# Per model: the preset (model.name) and overrides of the config's model and train sections.
MODELS: dict[str, dict] = {
    "dcgan": {"name": "dcgan", "model": {}, "train": {}},
    "wgan_gp": {
        # Gulrajani et al.: lambda 10, 5 critic steps per generator step, Adam (0.5, 0.9), 1e-4.
        "name": "wgan_gp",
        "model": {"disc_norm": "none"},
        "train": {"steps_per_key": {"disc": 5}, "lr": 1e-4, "betas": [0.5, 0.9]},
    },
    "sngan": {
        # Miyato et al.: hinge loss, spectral norm, Adam (0.5, 0.999) with one D step per G step.
        "name": "sngan",
        "model": {"disc_norm": "none"},
        "train": {},
    },
    "sngan_conditional": {
        # Projection discriminator (Miyato & Koyama 2018), label embedding in G.
        "name": "sngan",
        "model": {"disc_norm": "none", "conditional": True},
        "train": {},
    },
}


def seconds_trained(run: Path) -> float:
    """Wall seconds already trained, from metrics.jsonl (its clock restarts at each resume)."""
    path = run / "metrics.jsonl"
    if not path.exists():
        return 0.0
    total, last = 0.0, 0.0
    for line in path.read_text().splitlines():
        seconds = float(json.loads(line).get("seconds", 0.0))
        if seconds < last:  # a new call began
            total += last
        last = seconds
    return total + last


def train(name: str, runs: Path, minutes: float, quick: bool) -> dict:
    """Train (or resume) one model within its time budget; returns a summary."""
    out = runs / name
    spec = MODELS[name]
    budget = 60.0 * minutes
    if (out / "model" / "model.json").exists() and (out / "trained.json").exists():
        return json.loads((out / "trained.json").read_text())
    resume = (out / "config.yaml").exists() and (out / "checkpoints").exists()
    config_path = runs / f"{name}.yaml"
    if not resume:
        sections = read_yaml(CONFIG)
        sections["model"] = {**sections.get("model", {}), **spec["model"], "name": spec["name"]}
        sections["train"] = {
            **sections.get("train", {}),
            **spec["train"],
            "max_seconds": budget,
            "progress": False,
        }
        if quick:
            sections["train"].update(checkpoint_every=20, log_every=5)
        config_path.parent.mkdir(parents=True, exist_ok=True)
        config_path.write_text(yaml.safe_dump(sections, sort_keys=False))
        overrides: list[str] = []
    else:
        left = max(1.0, budget - seconds_trained(out))
        overrides = [f"train.max_seconds={left}"]
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, _, summary = train_run(
            None,
            data_name=None,
            out=out,
            config_path=None if resume else config_path,
            overrides=overrides,
            resume=resume,
            force=not resume and out.exists(),
        )
    record = {
        "steps": summary.get("steps"),
        "stopped": summary.get("stopped"),
        "seconds_trained": round(seconds_trained(out), 1),
        "this_call_seconds": round(time.perf_counter() - start, 1),
        "resumed": resume,
    }
    (out / "trained.json").write_text(json.dumps(record, indent=2))
    print(f"{name}: {record}", flush=True)
    return record


def class_accuracy(model, n: int, seed: int) -> dict:
    """Share of conditional samples the digits28 classifier assigns to the asked class."""
    extractor = get_extractor("digits28")
    labels = torch.arange(n) % 10
    x = model.sample(n, generator=torch.Generator().manual_seed(seed), cond={"label": labels})
    correct = (extractor.probs(x).argmax(1) == labels).double().numpy()
    estimate, low, high = bootstrap_interval(lambda c: float(np.mean(c)), correct, seed=seed)
    test = genlab.data.load("mnist5k", split="test")
    real = float((extractor.probs(test.x).argmax(1) == test.labels).double().mean())
    return {
        "class_accuracy": estimate,
        "class_accuracy_low": low,
        "class_accuracy_high": high,
        "classifier_accuracy_on_real_test": real,
    }


def kid_bootstrap(model, n: int, seed: int) -> dict:
    """Percentile bootstrap of KID over one set of N samples and the N test digits."""
    extractor = get_extractor("digits28")
    test = genlab.data.load("mnist5k", split="test")
    real = extractor.features(test.x[:n]).double().numpy()
    cond = {"label": test.labels[:n]} if model.cond_keys else None
    fake_x = model.sample(n, generator=torch.Generator().manual_seed(seed), cond=cond)
    fake = extractor.features(fake_x).double().numpy()
    size = min(n, 1000)

    def statistic(a, b):
        return kid(a, b, subset_size=size, num_subsets=20)[0]

    estimate, low, high = bootstrap_interval(statistic, real, fake, num_resamples=50, seed=seed)
    return {"kid_one_set": estimate, "kid_bootstrap_low": low, "kid_bootstrap_high": high}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per model")
    parser.add_argument("--quick", action="store_true", help="seconds of training, N = 200")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (cores are shared)")
    parser.add_argument("--redraws", type=int, default=10, help="extra sample sets for intervals")
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument(
        "--minutes-for",
        nargs="*",
        default=[],
        metavar="NAME=MIN",
        help="a model's own training budget, e.g. wgan_gp=20",
    )
    args = parser.parse_args()
    own_minutes: dict[str, float] = {}
    for item in args.minutes_for:
        key, sep, value = item.partition("=")
        if not sep or key not in MODELS:
            parser.error(
                f"--minutes-for {item!r}: give NAME=MINUTES with NAME one of {list(MODELS)}"
            )
        try:
            own_minutes[key] = float(value)
        except ValueError:
            parser.error(f"--minutes-for {item!r}: {value!r} is not a number of minutes")
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    torch.set_num_threads(args.threads)
    name = "gan_mnist5k_quick" if args.quick else "gan_mnist5k"
    minutes = 0.1 if args.quick else args.minutes
    n = 200 if args.quick else 1000
    redraws = 2 if args.quick else args.redraws
    runs = ROOT / "benchmarks" / "runs" / name
    RESULTS.mkdir(parents=True, exist_ok=True)

    figures: dict = {
        "minutes_per_model": minutes,
        "minutes_for": own_minutes,
        "num_samples": n,
        "redraws": redraws,
        "feature_network": "digits28",
        "config": str(CONFIG.relative_to(ROOT)),
        "models": MODELS,
    }
    table: list[tuple[str, str]] = []
    for model_name in args.models:
        budget = minutes if args.quick else own_minutes.get(model_name, minutes)
        trained = train(model_name, runs, budget, args.quick)
        run = runs / model_name
        evaluation = evaluate_run(
            run, metrics=("fid", "kid", "prdc"), num_samples=n, seed=0, redraws=redraws
        )
        model = genlab.load(run)
        extra = kid_bootstrap(model, n, seed=1)
        if model.cond_keys:
            extra.update(class_accuracy(model, n, seed=2))
        keys = ("fid", "kid", "precision", "recall", "density", "coverage")
        for key in keys:
            for suffix in (
                "",
                "_low",
                "_high",
                "_real_floor",
                "_real_floor_low",
                "_real_floor_high",
            ):
                if f"{key}{suffix}" in evaluation:
                    figures[f"{model_name}_{key}{suffix}"] = evaluation[f"{key}{suffix}"]
        figures.update({f"{model_name}_{k}": v for k, v in extra.items()})
        figures.update({f"{model_name}_train_{k}": v for k, v in trained.items()})
        for key in keys:
            value = evaluation[key]
            low, high = evaluation.get(f"{key}_low"), evaluation.get(f"{key}_high")
            floor = evaluation[f"{key}_real_floor"]
            interval = f" [{low:.4g}, {high:.4g}]" if low is not None else ""
            table.append((f"{model_name} {key} (floor {floor:.4g})", f"{value:.4g}{interval}"))
        table.append(
            (
                f"{model_name} KID bootstrap (one set)",
                f"{extra['kid_one_set']:.4g} [{extra['kid_bootstrap_low']:.4g}, "
                f"{extra['kid_bootstrap_high']:.4g}]",
            )
        )
        if "class_accuracy" in extra:
            table.append(
                (
                    f"{model_name} class accuracy (classifier on real test: "
                    f"{extra['classifier_accuracy_on_real_test']:.3f})",
                    f"{extra['class_accuracy']:.3f} [{extra['class_accuracy_low']:.3f}, "
                    f"{extra['class_accuracy_high']:.3f}]",
                )
            )
        table.append(
            (
                f"{model_name} generator steps in {trained['seconds_trained']:.0f} s",
                str(trained["steps"]),
            )
        )
        cond = {"label": torch.arange(100) // 10} if model.cond_keys else None
        grid = model.sample(100, generator=torch.Generator().manual_seed(0), cond=cond)
        write_samples(grid, model.spec, RESULTS / f"{name}_{model_name}.png", nrow=10)
        path_cond = {"label": torch.arange(8)} if model.cond_keys else None
        write_interpolation(
            model,
            RESULTS / f"{name}_{model_name}_interpolation.png",
            num_paths=8,
            num_steps=10,
            cond=path_cond,
        )
        print(f"{model_name}: fid {evaluation['fid']:.3f} kid {evaluation['kid']:.4f}", flush=True)
        write_results(name, figures, table)  # after each model, so a partial table exists
    print(f"wrote {RESULTS / name}.json and .md")


if __name__ == "__main__":
    main()
