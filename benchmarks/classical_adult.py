"""A first synthetic-data baseline on UCI Adult: Bayesian network and Gaussian copula.

80/20 split stratified on income, seed 0 (the `adult` source's defaults). Each model is fitted on
the 80% and samples as many rows (seed 0). Reported per model: fit seconds, column-shape and
pair-trend similarity of the synthetic rows to the real 80%, and machine-learning efficacy: F1 of
`>50K` on the real 20% for HistGradientBoostingClassifier (random_state 0, one-hot inputs) trained
on the synthetic rows, beside the same classifier trained on the real 80%.
Writes benchmarks/results/classical_adult.json and .md.

Usage: python benchmarks/classical_adult.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import write_results  # noqa: E402

import genlab  # noqa: E402
from genlab.metrics.tables import column_pair_trends, column_shapes, ml_efficacy  # noqa: E402

MODELS = {
    "bayesnet": {"structure": "hill_climb", "score": "bic"},
    "copula": {},
}


def main() -> None:
    torch.set_num_threads(2)
    train = genlab.data.load("adult", split="train")
    test = genlab.data.load("adult", split="test")
    real_train = train.info["dataframe"]
    real_test = test.info["dataframe"]
    figures: dict = {"adult_train_rows": len(real_train), "adult_test_rows": len(real_test)}
    table = []
    start = time.perf_counter()
    real = ml_efficacy(real_train, real_test, target="income", positive_label=">50K", seed=0)
    figures["train_real_test_real_f1"] = real["train_synthetic_test_real"]
    figures["train_real_seconds"] = round(time.perf_counter() - start, 2)
    table.append(
        ("train on real 80%: F1 of >50K on real 20%", f"{figures['train_real_test_real_f1']:.4f}")
    )
    for name, config in MODELS.items():
        model = genlab.create(name, **config)
        start = time.perf_counter()
        model.fit(train, genlab.TrainConfig(seed=0))
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        synthetic = model.sample_frame(len(real_train), generator=torch.Generator().manual_seed(0))
        sample_seconds = time.perf_counter() - start
        shapes = column_shapes(real_train, synthetic)["mean"]
        trends = column_pair_trends(real_train, synthetic)["mean"]
        efficacy = ml_efficacy(synthetic, real_test, target="income", positive_label=">50K", seed=0)
        f1 = efficacy["train_synthetic_test_real"]
        figures.update(
            {
                f"{name}_fit_seconds": round(fit_seconds, 2),
                f"{name}_sample_seconds": round(sample_seconds, 2),
                f"{name}_column_shapes": shapes,
                f"{name}_pair_trends": trends,
                f"{name}_train_synthetic_test_real_f1": f1,
            }
        )
        table.append(
            (
                f"{name}: fit s / column shapes / pair trends / F1 (train synthetic, test real)",
                f"{fit_seconds:.1f} / {shapes:.3f} / {trends:.3f} / {f1:.4f}",
            )
        )
    path = write_results("classical_adult", figures, table)
    print(path.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
