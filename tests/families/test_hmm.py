"""Maths and contract tests for the `hmm` model (hidden Markov model by Baum-Welch EM)."""

from __future__ import annotations

import json
from itertools import product

import numpy as np
import pytest
import torch
from safetensors import safe_open
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from threadpoolctl import threadpool_limits

import genlab
from genlab.core.contract import DataSpec
from genlab.core.errors import CheckpointError, ConfigError, DataError, GenlabError
from genlab.core.persist import MODEL_JSON, WEIGHTS_FILE
from genlab.data.dataset import Dataset
from genlab.families.classical.hmm import HMM, HMMConfig, _finish_fit
from genlab.train.config import TrainConfig

TRUE_START = np.array([0.5, 0.3, 0.2])
TRUE_TRANS = np.array([[0.90, 0.05, 0.05], [0.10, 0.80, 0.10], [0.05, 0.15, 0.80]])
TRUE_MEANS = np.array([-5.0, 0.0, 5.0])
TRUE_EMISSIONS = np.array([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]])
STICKY = np.array([[0.95, 0.05], [0.05, 0.95]])


@pytest.fixture(autouse=True)
def one_native_thread():
    """One OpenMP/BLAS thread: hmmlearn starts EM from scikit-learn's k-means (10 restarts);
    on these small problems one thread is fastest, and on shared cores threads that wait for
    each other made single fits 20 times slower."""
    with threadpool_limits(limits=1):
        yield


def simulate(start, trans, emit, lengths, seed):
    """Sequences and their state paths from a known HMM; `emit(states, rng)` draws x."""
    rng = np.random.default_rng(seed)
    seqs, paths = [], []
    for length in lengths:
        z = np.empty(length, dtype=np.int64)
        z[0] = rng.choice(len(start), p=start)
        for t in range(1, length):
            z[t] = rng.choice(len(start), p=trans[z[t - 1]])
        seqs.append(emit(z, rng))
        paths.append(z)
    return seqs, paths


def gaussian_emit(z, rng):
    return (TRUE_MEANS[z] + rng.standard_normal(len(z)))[:, None]  # (T, 1)


def categorical_emit(z, rng):
    u = rng.random(len(z))[:, None]
    return (u >= TRUE_EMISSIONS.cumsum(1)[z]).sum(1)  # (T,) int64


def forward_log(startprob, transmat, log_b):
    """log p(x_{1:T}) by the forward recursion in log space (Rabiner 1989, eq. 19-21)."""
    alpha = np.log(startprob) + log_b[0]  # (K,)
    for t in range(1, len(log_b)):
        alpha = logsumexp(alpha[:, None] + np.log(transmat), axis=0) + log_b[t]
    return logsumexp(alpha)


@pytest.fixture(scope="module")
def three_states():
    """10 sequences of 400 steps from a 3-state HMM with means -5, 0, 5 and unit variance."""
    seqs, paths = simulate(TRUE_START, TRUE_TRANS, gaussian_emit, [400] * 10, seed=0)
    x = torch.tensor(np.stack(seqs), dtype=torch.float32)  # (10, 400, 1)
    spec = DataSpec(modality="sequence", shape=(400, 1), name="three_states")
    return Dataset(x=x, spec=spec), np.stack(paths)


@pytest.fixture
def fitted_three(three_states):  # function scope: fitted inside the one-thread limit
    data, _ = three_states
    return genlab.create("hmm", n_states=3).fit(data, train=TrainConfig(seed=0))


@pytest.fixture(scope="module")
def categorical_data():
    """40 symbol sequences of lengths 50..299 from a sticky 2-state categorical HMM."""
    lengths = np.random.default_rng(1).integers(50, 300, size=40)
    seqs, _ = simulate(np.array([0.5, 0.5]), STICKY, categorical_emit, lengths, seed=2)
    return seqs


def known_model(emission: str, **state) -> HMM:
    """An HMM with given parameters, built through import_state (no fitting)."""
    k = len(state["startprob"])
    config = HMMConfig(n_states=k, emission=emission, **state.pop("config", {}))
    if emission == "categorical":
        spec = DataSpec(modality="text", shape=(4,))
        f = np.asarray(state["emissionprob"]).shape[1]
    else:
        f = np.asarray(state["means"]).shape[-1]
        spec = DataSpec(modality="sequence", shape=(4, f))
    tensors = {name: torch.tensor(np.asarray(v), dtype=torch.float64) for name, v in state.items()}
    tensors["n_states"] = torch.tensor(k)
    tensors["n_features"] = torch.tensor(f)
    model = HMM(config, spec)
    model.import_state(tensors)
    return model


def test_recovers_known_transition_matrix(three_states, fitted_three):
    data, _ = three_states
    model = fitted_three
    order = np.argsort(model.hmm_.means_[:, 0])  # fitted state of each true state
    np.testing.assert_allclose(model.hmm_.means_[order, 0], TRUE_MEANS, atol=0.1)
    np.testing.assert_allclose(model.hmm_.transmat_[np.ix_(order, order)], TRUE_TRANS, atol=0.05)
    assert model.n_states_ == 3 and model.n_features_ == 1 and model.selection_scores_ is None
    assert model.spec == data.spec


def test_viterbi_recovers_true_states(three_states, fitted_three):
    data, paths = three_states
    model = fitted_three
    log_prob, states = model.decode(data.x)
    assert states.shape == (10, 400) and states.dtype == torch.int64
    assert log_prob.shape == (10,) and log_prob.dtype == torch.float64
    true_of_fitted = np.argsort(np.argsort(model.hmm_.means_[:, 0]))
    accuracy = (true_of_fitted[states.numpy()] == paths).mean()
    assert accuracy > 0.95
    # The best path's joint probability is one term of the likelihood's sum over paths.
    assert (log_prob <= model.log_likelihood(data.x).nats + 1e-9).all()


def test_bic_selects_the_true_number_of_states(three_states):
    data, _ = three_states
    model = genlab.create("hmm", select_states="bic", max_states=4, n_iter=50)
    model.fit(data.x[:5])  # 2,000 observations
    assert model.n_states_ == 3
    assert sorted(model.selection_scores_) == [1, 2, 3, 4]
    assert min(model.selection_scores_, key=model.selection_scores_.get) == 3


def test_categorical_recovers_emissions_from_varying_lengths(categorical_data):
    config = HMMConfig(n_states=2, emission="categorical", init_transitions="sticky")
    model = HMM(config).fit(categorical_data)
    emissions = model.hmm_.emissionprob_
    order = np.argsort(-emissions[:, 0])  # the true state 0 emits symbol 0 most
    np.testing.assert_allclose(emissions[order], TRUE_EMISSIONS, atol=0.05)
    np.testing.assert_allclose(model.hmm_.transmat_[np.ix_(order, order)], STICKY, atol=0.03)
    longest = max(len(s) for s in categorical_data)
    assert model.spec.modality == "text" and model.spec.shape == (longest,)
    assert model.n_features_ == 3

    ll = model.log_likelihood(categorical_data[:5])
    assert ll.nats.shape == (5,) and torch.isfinite(ll.nats).all()
    log_prob, paths = model.decode(categorical_data[:3])
    assert [len(p) for p in paths] == [len(s) for s in categorical_data[:3]]
    assert log_prob.shape == (3,)
    x = model.sample(4, generator=torch.Generator().manual_seed(0))
    assert x.shape == (4, longest) and x.dtype == torch.int64
    assert 0 <= x.min() and x.max() <= 2


def _emission_log_probs(model: HMM, x: np.ndarray) -> np.ndarray:
    """log b_k(x_t) for every step and state, (T, K), from the fitted parameters."""
    hmm = model.hmm_
    if model.config.emission == "categorical":
        return np.log(hmm.emissionprob_[:, x]).T
    if model.config.emission == "gaussian":
        return np.stack(
            [multivariate_normal(m, c).logpdf(x) for m, c in zip(hmm.means_, hmm.covars_)], axis=1
        ).reshape(len(x), -1)
    k, m, c = hmm.means_.shape
    covs = {
        "full": lambda i, j: hmm.covars_[i, j],
        "diag": lambda i, j: np.diag(hmm.covars_[i, j]),
        "spherical": lambda i, j: hmm.covars_[i, j] * np.eye(c),
        "tied": lambda i, j: hmm.covars_[i],
    }[model.config.covariance_type]
    per_component = np.array(
        [
            [
                np.log(hmm.weights_[i, j])
                + multivariate_normal(hmm.means_[i, j], covs(i, j)).logpdf(x)
                for j in range(m)
            ]
            for i in range(k)
        ]
    ).reshape(k, m, len(x))
    return logsumexp(per_component, axis=1).T


@pytest.mark.parametrize(
    "config",
    [
        {"emission": "gaussian", "covariance_type": "diag"},
        {"emission": "gaussian", "covariance_type": "full"},
        {"emission": "gaussian", "covariance_type": "tied"},
        {"emission": "gaussian", "covariance_type": "spherical"},
        {"emission": "gmm", "covariance_type": "diag", "n_mix": 2},
        {"emission": "gmm", "covariance_type": "spherical", "n_mix": 2},
        {"emission": "categorical"},
    ],
)
def test_log_likelihood_matches_hand_written_forward(config):
    rng = np.random.default_rng(3)
    if config["emission"] == "categorical":
        x = torch.from_numpy(rng.integers(0, 4, size=(6, 30)))  # (B, T)
    else:
        shift = np.where(rng.random((6, 30, 1)) < 0.5, -2.0, 2.0)
        x = torch.from_numpy(rng.standard_normal((6, 30, 2)) + shift)  # (B, T, 2)
    model = HMM(HMMConfig(n_states=2, n_iter=10, **config)).fit(x)
    nats = model.log_likelihood(x).nats
    assert nats.dtype == torch.float64 and nats.shape == (6,)
    hmm = model.hmm_
    expected = [
        forward_log(hmm.startprob_, hmm.transmat_, _emission_log_probs(model, seq.numpy()))
        for seq in x
    ]
    np.testing.assert_allclose(nats.numpy(), expected, rtol=0, atol=1e-8)


def test_exact_likelihood_normalizes_over_all_sequences():
    model = known_model(
        "categorical",
        startprob=[0.6, 0.4],
        transmat=[[0.7, 0.3], [0.2, 0.8]],
        emissionprob=[[0.9, 0.1], [0.25, 0.75]],
    )
    every = torch.tensor(list(product([0, 1], repeat=4)))  # all 16 sequences of length 4
    total = model.log_likelihood(every).nats.exp().sum()
    assert abs(float(total) - 1.0) < 1e-8

    fitted = HMM(HMMConfig(n_states=3, emission="categorical", n_iter=20))
    fitted.fit(torch.from_numpy(np.random.default_rng(4).integers(0, 2, size=(20, 4))))
    assert abs(float(fitted.log_likelihood(every).nats.exp().sum()) - 1.0) < 1e-8


def test_sampler_follows_the_model_it_samples():
    chol = np.array([[1.0, 0.0], [0.8, 0.6]])
    truth = {
        "startprob": [0.3, 0.7],
        "transmat": [[0.9, 0.1], [0.2, 0.8]],
        "means": [[-6.0, 0.0], [6.0, 3.0]],
        "covars": [chol @ chol.T, 0.25 * np.eye(2)],
        "config": {"covariance_type": "full"},
    }
    model = known_model("gaussian", **{k: v for k, v in truth.items()})
    x = model.sample(2000, generator=torch.Generator().manual_seed(0), length=30).double()
    assert x.shape == (2000, 30, 2)
    state = (x[..., 0] > 0).long()  # the means are 12 apart: each step's state is plain
    np.testing.assert_allclose(state[:, 0].float().mean(), 0.7, atol=0.02)
    pairs = torch.stack([state[:, :-1].reshape(-1), state[:, 1:].reshape(-1)])
    counts = torch.zeros(2, 2).index_put_(tuple(pairs), torch.ones(pairs.shape[1]), accumulate=True)
    np.testing.assert_allclose(counts / counts.sum(1, keepdim=True), truth["transmat"], atol=0.01)
    for k in range(2):
        xk = x[state == k].numpy()
        np.testing.assert_allclose(xk.mean(0), truth["means"][k], atol=0.03)
        np.testing.assert_allclose(np.cov(xk, rowvar=False), truth["covars"][k], atol=0.03)


def test_spherical_variances_survive_fitting_and_sampling():
    # hmmlearn's M-step stores spherical variances as (K, C) copies, which its own covars_
    # property then misreads for C > 1; the model keeps them as (K,).
    rng = np.random.default_rng(5)
    state = rng.random((20, 50)) < 0.5
    scale = np.where(state, 0.5, 1.5)[..., None]  # standard deviations 0.5 and 1.5
    x = np.where(state[..., None], -8.0, 8.0) + scale * rng.standard_normal((20, 50, 2))
    model = HMM(HMMConfig(n_states=2, covariance_type="spherical")).fit(torch.from_numpy(x))
    variances = model.export_state()["covars"]
    assert variances.shape == (2,)
    low = int(np.argmin(model.hmm_.means_[:, 0]))
    np.testing.assert_allclose(variances[low].item(), 0.25, rtol=0.1)
    np.testing.assert_allclose(variances[1 - low].item(), 2.25, rtol=0.1)
    samples = model.sample(400, generator=torch.Generator().manual_seed(0)).double()
    side = samples.sum(-1) < 0  # the states' sums lie 7 standard deviations or more apart
    for mask, k in ((side, low), (~side, 1 - low)):
        expected = [variances[k].item()] * 2
        np.testing.assert_allclose(samples[mask].var(0).numpy(), expected, rtol=0.06)


def test_gmm_sampler_draws_each_component():
    model = known_model(
        "gmm",
        startprob=[1.0],
        transmat=[[1.0]],
        weights=[[0.25, 0.75]],
        means=[[[-8.0], [8.0]]],
        covars=[[0.5, 2.0]],
        config={"n_mix": 2, "covariance_type": "spherical"},
    )
    x = model.sample(500, generator=torch.Generator().manual_seed(1), length=20).double()
    assert x.shape == (500, 20, 1)
    left = x[x < 0]
    assert abs(len(left) / x.numel() - 0.25) < 0.01
    assert abs(float(left.var()) - 0.5) < 0.03 and abs(float(x[x > 0].var()) - 2.0) < 0.1


def test_sampling_is_reproducible_and_sized(fitted_three):
    model = fitted_three
    draw = lambda seed, **kw: model.sample(6, generator=torch.Generator().manual_seed(seed), **kw)  # noqa: E731
    a, b, c = draw(5), draw(5), draw(6)
    assert a.shape == (6, 400, 1) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert draw(5, length=7).shape == (6, 7, 1)
    assert model.sample(0).shape == (0, 400, 1)
    assert model.log_likelihood(torch.zeros(0, 5, 1)).nats.shape == (0,)
    assert model.decode(torch.zeros(0, 5, 1))[1].shape == (0, 5)
    # (B, T) is accepted for a one-channel model
    torch.testing.assert_close(
        model.log_likelihood(a[:, :, 0]).nats, model.log_likelihood(a).nats, rtol=0, atol=0
    )


def test_fit_is_seeded(three_states):
    data, _ = three_states
    x, config = data.x[:2], HMMConfig(n_states=3, n_iter=3, init_transitions="random")
    a = HMM(config).fit(x, train=TrainConfig(seed=1))
    b = HMM(config).fit(x, train=TrainConfig(seed=1))
    c = HMM(config).fit(x, train=TrainConfig(seed=2))
    np.testing.assert_array_equal(a.hmm_.transmat_, b.hmm_.transmat_)
    assert not np.array_equal(a.hmm_.transmat_, c.hmm_.transmat_)


@pytest.mark.parametrize(
    "config",
    [
        {"n_states": 3},
        {"n_states": 2, "covariance_type": "full"},
        {"n_states": 2, "emission": "gmm", "covariance_type": "tied", "n_iter": 10},
        {"select_states": "aic", "max_states": 3, "covariance_type": "spherical", "n_iter": 20},
    ],
)
def test_save_load_round_trip(three_states, tmp_path, config):
    data, _ = three_states
    data = Dataset(x=data.x[:3], spec=data.spec)
    model = genlab.create("hmm", **config).fit(data)
    folder = model.save(tmp_path / "model")
    loaded = genlab.load(folder)
    assert isinstance(loaded, HMM) and loaded.config == model.config and loaded.spec == model.spec
    assert loaded.n_states_ == model.n_states_ and loaded.n_features_ == model.n_features_
    assert loaded.selection_scores_ == model.selection_scores_

    draw = lambda m: m.sample(50, generator=torch.Generator().manual_seed(11))  # noqa: E731
    assert torch.equal(draw(model), draw(loaded))
    x = data.x[:4]
    assert torch.equal(model.log_likelihood(x).nats, loaded.log_likelihood(x).nats)
    assert torch.equal(model.decode(x)[1], loaded.decode(x)[1])

    meta = json.loads((folder / MODEL_JSON).read_text())
    assert meta["model"] == "hmm" and meta["config"]["emission"] == model.config.emission
    assert sorted(p.name for p in folder.iterdir()) == [MODEL_JSON, WEIGHTS_FILE]
    with safe_open(str(folder / WEIGHTS_FILE), framework="pt") as f:
        assert {"startprob", "transmat", "means", "covars", "n_states"} <= set(f.keys())


def test_categorical_save_load_round_trip(categorical_data, tmp_path):
    config = HMMConfig(n_states=2, emission="categorical", emission_pseudocount=0.5, n_iter=20)
    model = HMM(config).fit(categorical_data)
    loaded = genlab.load(model.save(tmp_path / "model"))
    draw = lambda m: m.sample(20, generator=torch.Generator().manual_seed(2), length=9)  # noqa: E731
    assert torch.equal(draw(model), draw(loaded))
    seqs = categorical_data[:6]
    assert torch.equal(model.log_likelihood(seqs).nats, loaded.log_likelihood(seqs).nats)


def test_fits_a_real_series():
    train = genlab.data.load("statsmodels", dataset="nile", window=16)
    test = genlab.data.load("statsmodels", dataset="nile", window=16, split="test")
    model = genlab.create("hmm", n_states=2).fit(train, train=TrainConfig(seed=0))
    for data in (train, test):
        ll = model.log_likelihood(data.x)
        assert ll.kind == "exact" and ll.nats.shape == (len(data),)
        assert torch.isfinite(ll.nats).all()
    x = model.sample(8, generator=torch.Generator().manual_seed(0))
    assert x.shape == (8, 16, 1) and torch.isfinite(x).all()


def test_fits_a_text_data_set(tmp_path):
    path = tmp_path / "abc.txt"
    path.write_text("the cat sat on the mat. " * 40)
    data = genlab.data.load(str(path), tokenizer="char", block_size=16)
    model = genlab.create("hmm", n_states=3, emission="categorical").fit(data)
    assert model.n_features_ == data.spec.discrete_levels
    x = model.sample(5, generator=torch.Generator().manual_seed(0))
    assert x.shape == (5, 16) and x.dtype == torch.int64
    assert 0 <= x.min() and x.max() < data.spec.discrete_levels
    test = genlab.data.load(str(path), split="test", tokenizer="char", block_size=16)
    assert torch.isfinite(model.log_likelihood(test.x).nats).all()


def test_bad_data_is_rejected(tmp_path):
    gaussian = HMM(HMMConfig(n_states=2))
    with pytest.raises(DataError, match="sequence 1 of data has length 0"):
        gaussian.fit([np.zeros((5, 1)), np.zeros((0, 1))])
    with pytest.raises(DataError, match="more states than observations"):
        gaussian.fit([np.zeros((1, 1))])
    with pytest.raises(DataError, match="more states than observations"):
        HMM(HMMConfig(select_states="bic", max_states=6)).fit([np.zeros(5)])
    with pytest.raises(DataError, match="holds no sequences"):
        gaussian.fit([])

    nan = torch.randn(3, 10, 1)
    nan[1, 4, 0] = float("nan")
    with pytest.raises(DataError, match="sequence 1 of data has 1 non-finite"):
        gaussian.fit(nan)

    categorical = HMM(HMMConfig(n_states=2, emission="categorical"))
    with pytest.raises(DataError, match="integer symbols"):
        categorical.fit([np.array([0.5, 1.0, 2.0])])
    series = genlab.data.load("statsmodels", dataset="nile", window=8)
    with pytest.raises(DataError, match="integer symbols"):
        categorical.fit(series)
    with pytest.raises(DataError, match="negative symbol"):
        categorical.fit([np.array([0, -1, 2])])

    images = Dataset(x=torch.rand(4, 1, 2, 2), spec=DataSpec(modality="image", shape=(1, 2, 2)))
    with pytest.raises(DataError, match="modality 'image'"):
        gaussian.fit(images)
    (tmp_path / "t.txt").write_text("abcabcabc" * 20)
    text = genlab.data.load(str(tmp_path / "t.txt"), block_size=8)
    with pytest.raises(DataError, match="emission='categorical'"):
        gaussian.fit(text)


def test_bad_inputs_to_a_fitted_model(fitted_three, categorical_data):
    with pytest.raises(DataError, match="fitted on 1"):
        fitted_three.log_likelihood(torch.zeros(2, 5, 3))
    with pytest.raises(DataError, match="non-finite"):
        fitted_three.log_likelihood(torch.full((2, 5, 1), float("inf")))
    categorical = HMM(HMMConfig(n_states=2, emission="categorical", n_iter=2))
    categorical.fit(categorical_data[:3])
    with pytest.raises(DataError, match="symbols 0..2"):
        categorical.log_likelihood(torch.tensor([[0, 1, 3]]))
    with pytest.raises(DataError, match="integer symbols"):
        categorical.decode(torch.tensor([[0.0, 1.0]]))


def test_unknown_options_are_rejected(fitted_three):
    model = fitted_three
    with pytest.raises(ConfigError, match="unknown option"):
        HMM(HMMConfig(n_states=2)).fit([np.zeros((4, 1))], epochs=3)
    with pytest.raises(ConfigError, match="temperature"):
        model.sample(4, temperature=0.5)
    with pytest.raises(ConfigError, match="unconditional"):
        model.sample(4, cond={"label": torch.zeros(4, dtype=torch.int64)})
    with pytest.raises(ConfigError, match="length"):
        model.sample(4, length=0)
    with pytest.raises(ConfigError, match="unknown option"):
        model.log_likelihood(torch.zeros(2, 5, 1), steps=3)


def test_unfitted_model_errors(tmp_path):
    model = HMM(HMMConfig())
    with pytest.raises(GenlabError, match="fit the model first"):
        model.sample(4)
    with pytest.raises(GenlabError, match="fit the model first"):
        model.log_likelihood(torch.zeros(4, 3, 1))
    with pytest.raises(GenlabError, match="fit the model first"):
        model.decode(torch.zeros(4, 3, 1))
    with pytest.raises(GenlabError, match="fit the model first"):
        model.save(tmp_path / "unfitted")


def test_foreign_state_is_rejected(fitted_three):
    state = fitted_three.export_state()
    spec = fitted_three.spec
    with pytest.raises(CheckpointError, match="missing: emissionprob"):
        HMM(HMMConfig(n_states=3, emission="categorical"), spec).import_state(state)
    with pytest.raises(CheckpointError, match="n_states=4"):
        HMM(HMMConfig(n_states=4), spec).import_state(state)
    with pytest.raises(CheckpointError, match="covars has shape"):
        HMM(HMMConfig(n_states=3, covariance_type="full"), spec).import_state(state)


def test_invalid_config_is_rejected():
    with pytest.raises(ConfigError, match="n_states"):
        genlab.create("hmm", n_states=0)
    with pytest.raises(ConfigError, match="emission"):
        genlab.create("hmm", emission="poisson")
    with pytest.raises(ConfigError, match="unknown key"):
        genlab.create("hmm", states=3)
    with pytest.raises(ConfigError, match="tol"):
        HMMConfig(tol=-1.0)
    with pytest.raises(ConfigError, match="min_covar"):
        HMMConfig(min_covar=0.0)
    with pytest.raises(ConfigError, match="init_transitions"):
        HMMConfig(init_transitions="diagonal")


def test_states_without_data_get_uniform_rows():
    from hmmlearn.hmm import CategoricalHMM

    hmm = CategoricalHMM(n_components=2, n_features=2)
    hmm.startprob_ = np.array([1.0, 0.0])
    hmm.transmat_ = np.array([[1.0, 0.0], [0.0, 0.0]])
    hmm.emissionprob_ = np.array([[0.5, 0.5], [0.0, 0.0]])
    assert _finish_fit(hmm)
    np.testing.assert_array_equal(hmm.transmat_[1], [0.5, 0.5])
    np.testing.assert_array_equal(hmm.emissionprob_[1], [0.5, 0.5])
