"""How close is the RBM's AIS estimate of log Z to the exact value? Tiny random RBMs and an
mnist5k RBM small enough to enumerate.

Annealed importance sampling (Salakhutdinov & Murray 2008) gives the RBM's test log-likelihood
in benchmarks/latent_energy_mnist5k.py, where no exact value exists. This benchmark measures the
estimator where one does (`RBM.log_partition_exact` sums out the visible side in closed form and
enumerates the 2^H hidden states):

- the random RBMs of tests/families/test_rbm.py (12 visible x 8 hidden, N(0, 1) weights for
  Bernoulli and N(0, 0.5^2) for Gaussian visibles, N(0, 1) biases), 5 seeds each, AIS with 100
  chains x 1,000 intermediate distributions (the test's setting; the test asserts < 0.1 nats);
- a Bernoulli RBM with 20 hidden units trained on binarized mnist5k (784 visible, PCD-1,
  `--steps` steps of batch 100), AIS with the settings of latent_energy_mnist5k.py (100 chains x
  10,000 distributions from the base-rate model of the train pixel means), 3 AIS seeds; the
  test NLL from exact and from AIS log Z on the 1,000 test digits.

Figures: exact log Z, AIS log Z, the error, AIS's own standard error and effective sample size.
The trained model is saved under benchmarks/runs/rbm_ais_check/ and reloaded on a rerun.

Usage: python benchmarks/rbm_ais_check.py [--steps 20000] [--lr 3e-3] [--threads 1] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import write_results  # noqa: E402

import genlab  # noqa: E402
from genlab.families.ebm.rbm import RBM, random_rbm  # noqa: E402
from genlab.train.loop import fit  # noqa: E402

NAME = "rbm_ais_check"
HERE = Path(__file__).resolve().parent


def tiny_rbm(visible: str, seed: int) -> RBM:
    """The test's random RBM: 12 x 8, weights N(0, scale^2), biases N(0, 1)."""
    return random_rbm(12, 8, visible, seed=seed, weight_std=1.0 if visible == "bernoulli" else 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000, help="PCD-1 training steps, batch 100")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="a < 1 minute end-to-end check")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    name = f"{NAME}_quick" if args.quick else NAME
    figures: dict = {}
    table: list[tuple[str, str]] = []

    seeds = range(2 if args.quick else 5)
    for visible in ("bernoulli", "gaussian"):
        errors = []
        for seed in seeds:
            model = tiny_rbm(visible, seed)
            exact = model.log_partition_exact()
            ais, info = model.log_partition_ais(
                num_chains=100, num_betas=1000, generator=torch.Generator().manual_seed(seed)
            )
            errors.append(abs(ais - exact))
            prefix = f"tiny_{visible}_seed{seed}"
            figures[f"{prefix}_log_z_exact"] = exact
            figures[f"{prefix}_log_z_ais"] = ais
            figures[f"{prefix}_log_z_ais_std_error"] = info["log_z_std_error"]
        figures[f"tiny_{visible}_max_abs_error_nats"] = max(errors)
        figures[f"tiny_{visible}_mean_abs_error_nats"] = statistics.mean(errors)
        table.append(
            (
                f"12x8 {visible} RBM, {len(errors)} seeds, AIS 100 chains x 1,000: abs(AIS - exact) "
                "log Z, mean / max (nats)",
                f"{statistics.mean(errors):.4f} / {max(errors):.4f}",
            )
        )

    # An mnist5k RBM with 20 hidden units: 2^20 hidden states are enumerable.
    train = genlab.data.load("mnist5k", binarize=True)
    test = genlab.data.load("mnist5k", split="test", binarize=True)
    grey = genlab.data.load("mnist5k")
    run = HERE / "runs" / name
    if (run / "model" / "model.json").exists():
        model = genlab.load(run / "model")
        train_cpu = float((run / "train_cpu_seconds.txt").read_text())
    else:
        torch.manual_seed(0)
        model = genlab.create(
            "rbm", spec=train.spec, num_hidden=20, cd_steps=1, persistent=True, num_chains=100
        )
        config = genlab.TrainConfig(
            steps=50 if args.quick else args.steps,
            schedule="constant",
            batch_size=100,
            lr=args.lr,
            grad_clip=0.0,
            progress=False,
            checkpoint_every=0,
            num_samples=0,
            seed=0,
        )
        cpu0 = time.process_time()
        fit(model, train, config, run_dir=run / "train")
        train_cpu = time.process_time() - cpu0
        model.save(run / "model")
        (run / "train_cpu_seconds.txt").write_text(f"{train_cpu:.1f}")
    model = model.double().eval()
    base_means = grey.x.flatten(1).double().mean(0)
    exact = model.log_partition_exact()
    with torch.no_grad():
        free = model.free_energy(test.x.flatten(1).double())
    figures.update(mnist_rbm_hidden=20, mnist_rbm_train_cpu_seconds=train_cpu)
    figures["mnist_rbm_log_z_exact"] = exact
    num_betas = 500 if args.quick else 10000
    ais_errors = []
    for seed in range(1 if args.quick else 3):
        ais, info = model.log_partition_ais(
            num_chains=100,
            num_betas=num_betas,
            base_means=base_means,
            generator=torch.Generator().manual_seed(seed),
        )
        ais_errors.append(ais - exact)
        figures[f"mnist_rbm_ais_seed{seed}_log_z"] = ais
        figures[f"mnist_rbm_ais_seed{seed}_std_error"] = info["log_z_std_error"]
        figures[f"mnist_rbm_ais_seed{seed}_effective_sample_size"] = info["effective_sample_size"]
    figures["mnist_rbm_ais_num_betas"] = num_betas
    figures["mnist_rbm_ais_max_abs_error_nats"] = max(abs(e) for e in ais_errors)
    if free is not None:
        nll_exact = float(free.mean()) + exact
        figures["mnist_rbm_test_nll_exact"] = nll_exact
        figures["mnist_rbm_test_nll_ais_seed0"] = nll_exact - ais_errors[0]
    table.append(
        (
            f"mnist5k RBM, 784 x 20, PCD-1 ({train_cpu:.0f} CPU-s): exact log Z; AIS "
            f"(100 chains x {num_betas:,}, base rate) minus exact, per AIS seed (nats)",
            f"{exact:.3f}; " + ", ".join(f"{e:+.3f}" for e in ais_errors),
        )
    )
    table.append(
        (
            "same: AIS effective sample size of 100 chains, per seed",
            ", ".join(
                f"{figures[f'mnist_rbm_ais_seed{s}_effective_sample_size']:.1f}"
                for s in range(len(ais_errors))
            ),
        )
    )
    if free is not None:
        table.append(
            (
                "same: test NLL from exact log Z / from AIS seed 0 (nats)",
                f"{figures['mnist_rbm_test_nll_exact']:.2f} / "
                f"{figures['mnist_rbm_test_nll_ais_seed0']:.2f}",
            )
        )
    write_results(name, figures, table)
    for row in table:
        print(" | ".join(row))


if __name__ == "__main__":
    main()
