"""Real-versus-real floors on mnist5k: the figures a perfect model reaches at N = 1,000.

N = 1,000 training digits (a seeded subset of the 4,000) against the 1,000 test digits, on
genlab's digit feature network (digits28): FID, KID, precision and recall (k = 3), density and
coverage (k = 5). Two 95% intervals for each:
- "redraw": the 2.5/97.5 percentiles over 50 fresh draws of the 1,000 training digits (without
  replacement) against the fixed test digits: how much the floor moves with the reference draw;
- "bootstrap": the percentile bootstrap (200 resamples with replacement of both sets). Resampling
  with replacement duplicates rows, which inflates FID/KID and deflates the k-NN figures, so this
  interval sits off the point estimate; it is reported because it is the common practice, and
  shows why genlab prefers redraws for set statistics.
Also records the feature network's test accuracy. Writes benchmarks/results/eval_floors.json/md.

Usage: python benchmarks/eval_floors.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import write_results  # noqa: E402

import genlab  # noqa: E402
from genlab.metrics.bootstrap import bootstrap_interval  # noqa: E402
from genlab.metrics.distances import fid, kid  # noqa: E402
from genlab.metrics.features import get_extractor  # noqa: E402
from genlab.metrics.prdc import prdc  # noqa: E402

N = 1000
RESAMPLES = 200
REDRAWS = 50
SEED = 0


def main() -> None:
    torch.set_num_threads(2)
    start = time.perf_counter()
    train = genlab.data.load("mnist5k", split="train")
    test = genlab.data.load("mnist5k", split="test")
    g = torch.Generator().manual_seed(SEED)
    reference = train.x[torch.randperm(len(train), generator=g)[:N]]
    real = test.x[:N]
    net = get_extractor("digits28")
    accuracy = float((net.probs(test.x).argmax(1) == test.labels).float().mean())
    f_ref, f_real = net.features(reference).double(), net.features(real).double()

    statistics = {
        "fid": fid,
        "kid": lambda a, b: kid(a, b, subset_size=N, num_subsets=1)[0],
        "precision_k3": lambda a, b: prdc(a, b)["precision"],
        "recall_k3": lambda a, b: prdc(a, b)["recall"],
        "density_k5": lambda a, b: prdc(a, b)["density"],
        "coverage_k5": lambda a, b: prdc(a, b)["coverage"],
    }
    figures: dict = {
        "feature_network": "digits28",
        "feature_network_mnist5k_test_accuracy": accuracy,
        "num_samples": N,
        "bootstrap_resamples": RESAMPLES,
        "seed": SEED,
    }
    table = []
    redraw_features = []
    for r in range(REDRAWS):
        rows = torch.randperm(len(train), generator=torch.Generator().manual_seed(1000 + r))[:N]
        redraw_features.append(net.features(train.x[rows]).double())
    for name, fn in statistics.items():
        estimate, low, high = bootstrap_interval(
            fn, f_real, f_ref, num_resamples=RESAMPLES, seed=SEED
        )
        redraws = torch.tensor([fn(f_real, f) for f in redraw_features], dtype=torch.float64)
        r_low, r_high = (
            float(q)
            for q in torch.quantile(redraws, torch.tensor([0.025, 0.975], dtype=torch.float64))
        )
        key = f"mnist5k_real_vs_real_{name}"
        figures[key] = estimate
        figures[f"{key}_redraw_mean"] = float(redraws.mean())
        figures[f"{key}_redraw_low"], figures[f"{key}_redraw_high"] = r_low, r_high
        figures[f"{key}_bootstrap_low"], figures[f"{key}_bootstrap_high"] = low, high
        table.append(
            (
                f"real vs real {name}",
                f"{estimate:.4g}; redraw 95% [{r_low:.4g}, {r_high:.4g}]; "
                f"bootstrap 95% [{low:.4g}, {high:.4g}]",
            )
        )
    figures["seconds"] = round(time.perf_counter() - start, 1)
    table.insert(0, ("digits28 test accuracy (mnist5k test)", f"{accuracy:.4f}"))
    path = write_results("eval_floors", figures, table)
    print((path.with_suffix(".md")).read_text())


if __name__ == "__main__":
    main()
