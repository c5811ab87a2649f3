"""Overhead of genlab's classical wrappers against calling the library directly.

Median wall time of at least 5 runs (3 for the Bayesian network) with the same data and settings:
- gmm: scikit-learn GaussianMixture (8 components, full) on 5,000 points of 8 Gaussians; fit and
  sample(10,000);
- kde: scikit-learn KernelDensity (Gaussian, bandwidth 0.1, genlab's standardize off); fit and
  sample(10,000);
- factor_analysis: scikit-learn FactorAnalysis (8 factors) on the digits train split; fit
  (scikit-learn has no sample);
- hmm: hmmlearn GaussianHMM (3 states, diagonal, 50 iterations, tol 0) on sunspot windows; fit;
- bayesnet: on UCI Adult, the wrapper's fit against the time spent inside pgmpy's structure and
  parameter learning calls in that same fit, and sample(10,000) against pgmpy's forward sampling
  of the same fitted network.
Both sides start from the same genlab data set, so a direct call includes the float32 tensor to
float64 array conversion that a user of the library would write; calls under a second are repeated
until a second has passed. overhead = genlab / direct - 1. Writes benchmarks/results/classical_overhead.json and .md.

Usage: python benchmarks/classical_overhead.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import write_results  # noqa: E402

import genlab  # noqa: E402


def median_seconds(fn, repeats: int = 5, min_seconds: float = 1.0) -> float:
    """Median wall time of `fn` over at least `repeats` calls and at least `min_seconds` in all
    (calls of a millisecond are repeated hundreds of times, so the median is stable)."""
    times: list[float] = []
    while len(times) < repeats or sum(times) < min_seconds:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    torch.set_num_threads(1)
    figures: dict = {}
    rows = []

    def record(name: str, ours: float, direct: float) -> None:
        figures[f"{name}_genlab_seconds"] = ours
        figures[f"{name}_direct_seconds"] = direct
        figures[f"{name}_overhead"] = ours / direct - 1
        rows.append(
            (
                name,
                f"genlab {ours * 1e3:.1f} ms, direct {direct * 1e3:.1f} ms, overhead {100 * (ours / direct - 1):+.1f}%",
            )
        )

    from sklearn.decomposition import FactorAnalysis
    from sklearn.mixture import GaussianMixture
    from sklearn.neighbors import KernelDensity

    points = genlab.data.load("8gaussians", num_samples=5000)
    x_tensor = points.x

    def array() -> np.ndarray:
        return x_tensor.double().numpy()

    gmm = genlab.create("gmm", n_components=8)
    record(
        "gmm_fit",
        median_seconds(lambda: gmm.fit(points)),
        median_seconds(lambda: GaussianMixture(8, random_state=0).fit(array())),
    )
    direct_gmm = GaussianMixture(8, random_state=0).fit(array())
    record(
        "gmm_sample_10000",
        median_seconds(lambda: gmm.sample(10_000, generator=torch.Generator().manual_seed(0))),
        median_seconds(lambda: direct_gmm.sample(10_000)),
    )

    kde = genlab.create("kde", bandwidth=0.1, standardize=False)
    record(
        "kde_fit",
        median_seconds(lambda: kde.fit(points)),
        median_seconds(lambda: KernelDensity(bandwidth=0.1).fit(array())),
    )
    direct_kde = KernelDensity(bandwidth=0.1).fit(array())
    record(
        "kde_sample_10000",
        median_seconds(lambda: kde.sample(10_000, generator=torch.Generator().manual_seed(0))),
        median_seconds(lambda: direct_kde.sample(10_000, random_state=0)),
    )

    digits = genlab.data.load("digits")
    fa = genlab.create("factor_analysis", n_components=8)
    record(
        "factor_analysis_fit",
        median_seconds(lambda: fa.fit(digits)),
        median_seconds(
            lambda: FactorAnalysis(8, random_state=0).fit(digits.x.flatten(1).double().numpy())
        ),
    )

    from hmmlearn.hmm import GaussianHMM

    series = genlab.data.load("statsmodels", dataset="sunspots", window=16)
    windows = series.x.double().numpy()
    stacked = windows.reshape(-1, windows.shape[-1])
    lengths = [windows.shape[1]] * windows.shape[0]
    hmm = genlab.create("hmm", n_states=3, n_iter=50, tol=0.0)

    def hmm_direct() -> None:
        model = GaussianHMM(
            3,
            covariance_type="diag",
            n_iter=50,
            tol=0.0,
            random_state=0,
            min_covar=1e-3,
            init_params="smc",
            params="stmc",
        )
        model.startprob_ = np.full(3, 1 / 3)
        model.transmat_ = np.full((3, 3), 1 / 3)
        model.fit(stacked, lengths)

    record("hmm_fit", median_seconds(lambda: hmm.fit(series)), median_seconds(hmm_direct))

    from pgmpy.sampling import BayesianModelSampling

    from genlab.families.classical import bayesnet as bn_module

    adult = genlab.data.load("adult")
    bn = genlab.create("bayesnet", structure="chow_liu")
    inside: list[float] = []
    learn_structure, learn_parameters = (
        bn_module.BayesNet._learn_structure,
        bn_module.BayesNet._learn_parameters,
    )

    def timed(method):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                inside.append(time.perf_counter() - start)

        return wrapper

    bn_module.BayesNet._learn_structure = timed(learn_structure)
    bn_module.BayesNet._learn_parameters = timed(learn_parameters)
    totals = []
    try:
        for _ in range(3):
            inside.clear()
            start = time.perf_counter()
            bn.fit(adult)
            totals.append((time.perf_counter() - start, sum(inside)))
    finally:
        bn_module.BayesNet._learn_structure = learn_structure
        bn_module.BayesNet._learn_parameters = learn_parameters
    totals.sort()
    record("bayesnet_fit", totals[1][0], totals[1][1])
    network = bn.network_
    record(
        "bayesnet_sample_10000",
        median_seconds(lambda: bn.sample(10_000, generator=torch.Generator().manual_seed(0)), 3),
        median_seconds(
            lambda: BayesianModelSampling(network).forward_sample(
                10_000, seed=0, show_progress=False
            ),
            3,
        ),
    )

    path = write_results("classical_overhead", figures, rows)
    print(path.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
