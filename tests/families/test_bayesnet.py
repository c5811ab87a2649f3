"""Maths, inference and contract tests for the `bayesnet` model (discrete Bayesian network)."""

from __future__ import annotations

import itertools
import math
import time
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import genlab
from genlab.core.errors import ConfigError, DataError, GenlabError
from genlab.data.tables import adult_path, codec_from_spec
from genlab.families.classical.bayesnet import BayesNet, BayesNetConfig

ASIA_EDGES = {
    ("asia", "tub"),
    ("tub", "either"),
    ("smoke", "lung"),
    ("smoke", "bronc"),
    ("lung", "either"),
    ("bronc", "dysp"),
    ("either", "xray"),
    ("either", "dysp"),
}


def asia_network():
    """The Asia network (Lauritzen & Spiegelhalter 1988) with its published CPDs, by hand."""
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    yes_no = ["yes", "no"]

    def cpd(name, p_yes, parents=()):
        # p_yes: P(name=yes) per parent configuration, parents' states in (yes, no) order
        p_yes = np.atleast_1d(np.asarray(p_yes, dtype=float))
        return TabularCPD(
            name,
            2,
            np.stack([p_yes, 1 - p_yes]),
            evidence=list(parents) or None,
            evidence_card=[2] * len(parents) or None,
            state_names={n: yes_no for n in [name, *parents]},
        )

    network = DiscreteBayesianNetwork(sorted(ASIA_EDGES))
    network.add_cpds(
        cpd("asia", 0.01),
        cpd("smoke", 0.5),
        cpd("tub", [0.05, 0.01], ["asia"]),
        cpd("lung", [0.1, 0.01], ["smoke"]),
        cpd("bronc", [0.6, 0.3], ["smoke"]),
        cpd("either", [1.0, 1.0, 1.0, 0.0], ["lung", "tub"]),
        cpd("xray", [0.98, 0.05], ["either"]),
        cpd("dysp", [0.9, 0.8, 0.7, 0.1], ["bronc", "either"]),
    )
    network.check_model()
    return network


@pytest.fixture(scope="module")
def asia():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # pgmpy 1.x's note on its old modules
        from pgmpy.sampling import BayesianModelSampling

    network = asia_network()
    state = np.random.get_state()
    rows = BayesianModelSampling(network).forward_sample(10000, seed=0, show_progress=False)
    np.random.set_state(state)
    model = BayesNet(BayesNetConfig(structure="hill_climb", score="bic")).fit(rows)
    return network, rows, model


def mixed_table(num_rows: int = 400, seed: int = 0) -> pd.DataFrame:
    """A small table with every kind of column: categories (with missing cells), booleans,
    integers, floats (with missing cells) and dates; colour drives size and price."""
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue"], size=num_rows, p=[0.5, 0.3, 0.2])
    size = np.where(colour == "red", rng.integers(0, 8, num_rows), rng.integers(5, 21, num_rows))
    price = np.round(np.where(colour == "blue", 50.0, 10.0) + rng.gamma(2.0, 3.0, num_rows), 2)
    flag = rng.random(num_rows) < np.where(size > 10, 0.8, 0.2)
    day = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 60, num_rows), unit="D")
    frame = pd.DataFrame(
        {
            "colour": pd.Series(colour, dtype=object),
            "size": size,
            "price": price,
            "flag": flag,
            "day": day,
        }
    )
    frame.loc[rng.random(num_rows) < 0.05, "colour"] = None
    frame.loc[rng.random(num_rows) < 0.05, "price"] = np.nan
    return frame


@pytest.fixture(scope="module")
def mixed() -> BayesNet:
    return BayesNet(BayesNetConfig(num_bins=5)).fit(mixed_table())


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- structure and parameters -------------------------------------------------------------------


def test_recovers_the_asia_graph_and_its_cpds(asia):
    network, _, model = asia
    learned = {frozenset(e) for e in model.edges_}
    true = {frozenset(e) for e in ASIA_EDGES}
    assert len(learned & true) >= 6, f"found {sorted(map(sorted, learned & true))}"
    assert len(learned - true) <= 2, f"extra edges {sorted(map(sorted, learned - true))}"

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from pgmpy.inference import VariableElimination

    exact = VariableElimination(network)
    checks = [("bronc", {"smoke": "yes"}), ("lung", {"smoke": "yes"}), ("dysp", {}), ("xray", {})]
    checks += [("bronc", {"dysp": "yes"}), ("either", {"xray": "yes"})]
    for variable, evidence in checks:
        truth = exact.query([variable], evidence=evidence or None, show_progress=False)
        p_true = float(truth.values[truth.state_names[variable].index("yes")])
        # yes/no columns are read as booleans: "yes" is True
        learned_p = model.query(variable, {k: v for k, v in evidence.items()})[variable][True]
        assert learned_p == pytest.approx(p_true, abs=0.03), (variable, evidence)


def test_chow_liu_learns_a_tree(asia):
    _, rows, _ = asia
    model = BayesNet(BayesNetConfig(structure="chow_liu")).fit(rows)
    assert len(model.edges_) == len(rows.columns) - 1
    parents = [len(model.network_.get_parents(n)) for n in model.network_.nodes()]
    assert max(parents) == 1
    true = {frozenset(e) for e in ASIA_EDGES}
    assert len({frozenset(e) for e in model.edges_} & true) >= 5


def test_max_indegree_zero_gives_independent_columns(asia):
    _, rows, _ = asia
    model = BayesNet(BayesNetConfig(max_indegree=0)).fit(rows)
    assert model.edges_ == []
    assert model.query("smoke")["smoke"][True] == pytest.approx(
        rows["smoke"].eq("yes").mean(), abs=1e-3
    )


# -- likelihood --------------------------------------------------------------------------------


def tiny_table() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = 300
    a = rng.choice(["x", "y", "z"], size=n)
    b = np.where(a == "x", rng.random(n) < 0.8, rng.random(n) < 0.3)
    c = np.where(b, rng.integers(0, 12, n), rng.integers(6, 30, n))
    frame = pd.DataFrame({"a": pd.Series(a, dtype=object), "b": b, "c": c})
    frame.loc[rng.random(n) < 0.1, "a"] = None
    return frame


def test_discrete_likelihood_normalizes_over_all_joint_states():
    model = BayesNet(BayesNetConfig(num_bins=4)).fit(tiny_table())
    variables = {v["name"]: v for v in model.variables_}
    a_states = ["x", "y", "z", None]
    b_states = [False, True]
    # one integer inside each bin of c stands for the whole bin
    c_states = [int(e + 0.5) for e in variables["c"]["edges"][:-1]]
    rows = pd.DataFrame(
        list(itertools.product(a_states, b_states, c_states)), columns=["a", "b", "c"]
    )
    assert len(rows) == 4 * 2 * len(variables["c"]["labels"])
    ll = model.log_likelihood(rows)
    assert ll.kind == "exact" and ll.details["discretized"] and ll.details["num_bins"] == 4
    assert float(ll.nats.exp().sum()) == pytest.approx(1.0, abs=1e-9)

    # the piecewise-uniform model of an integer column is a probability mass over its integers
    edges = variables["c"]["edges"]
    integers = range(int(edges[0] + 0.5), int(edges[-1] + 0.5))
    rows = pd.DataFrame(
        list(itertools.product(a_states, b_states, integers)), columns=["a", "b", "c"]
    )
    dense = model.log_likelihood(rows, density=True)
    assert dense.kind == "exact" and dense.details == {
        "discretized": False,
        "density": True,
        "num_bins": 4,
    }
    assert float(dense.nats.exp().sum()) == pytest.approx(1.0, abs=1e-9)


def test_float_density_integrates_to_one():
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"g": rng.choice(["u", "v"], 500), "r": rng.gamma(2.0, 1.5, 500)})
    model = BayesNet(BayesNetConfig(num_bins=6)).fit(frame)
    edges = np.asarray(model._variable("r")["edges"])
    # the density is constant on each bin: one midpoint times the bin's width per bin
    total = 0.0
    for g in ("u", "v"):
        mids = (edges[:-1] + edges[1:]) / 2
        rows = pd.DataFrame({"g": [g] * len(mids), "r": mids})
        density = model.log_likelihood(rows, density=True).nats.exp().numpy()
        total += float((density * np.diff(edges)).sum())
    assert total == pytest.approx(1.0, abs=1e-9)
    outside = pd.DataFrame({"g": ["u"], "r": [edges[-1] + 1.0]})
    assert model.log_likelihood(outside, density=True).nats.item() == -math.inf
    # beyond the training range the discretized row falls into the last bin
    assert math.isfinite(model.log_likelihood(outside).nats.item())


def test_likelihood_of_encoded_rows_matches_the_frame(mixed):
    frame = mixed_table()[:50]
    x = codec_from_spec(mixed.spec).encode(frame)
    from_x = mixed.log_likelihood(x).nats
    from_frame = mixed.log_likelihood(frame).nats
    torch.testing.assert_close(from_x, from_frame, rtol=0, atol=0)
    assert torch.isfinite(from_x).all()


# -- inference and conditional sampling --------------------------------------------------------


def test_query_equals_a_hand_computation():
    counts = {("x", "p"): 40, ("x", "q"): 10, ("y", "p"): 5, ("y", "q"): 45}
    rows = [pair for pair, k in counts.items() for _ in range(k)]
    frame = pd.DataFrame(rows, columns=["a", "b"])

    mle = BayesNet(BayesNetConfig(prior="mle")).fit(frame)
    assert len(mle.edges_) == 1
    out = mle.query("a", {"b": "p"})
    assert out == {"a": pytest.approx({"x": 40 / 45, "y": 5 / 45})}
    assert mle.query(["b"])["b"] == pytest.approx({"p": 0.45, "q": 0.55})

    alpha = 4.0
    bdeu = BayesNet(BayesNetConfig(prior="bdeu", equivalent_sample_size=alpha)).fit(frame)
    ((parent, child),) = bdeu.edges_
    # BDeu: alpha / 2 pseudo counts per state of the root, alpha / 4 per cell of the child
    n = {(r[parent], r[child]) for _, r in frame.iterrows()}
    assert len(n) == 4
    table = frame.groupby([parent, child]).size()
    root = frame[parent].value_counts()
    p_root = {s: (root[s] + alpha / 2) / (100 + alpha) for s in root.index}
    p_child = {
        (s, t): (table[(s, t)] + alpha / 4) / (root[s] + alpha / 2)
        for s in root.index
        for t in frame[child].unique()
    }
    marginal = {
        t: sum(p_root[s] * p_child[(s, t)] for s in root.index) for t in frame[child].unique()
    }
    assert bdeu.query(child)[child] == pytest.approx(marginal, abs=1e-12)
    t = sorted(frame[child].unique())[0]
    posterior = {s: p_root[s] * p_child[(s, t)] / marginal[t] for s in root.index}
    assert bdeu.query(parent, {child: t})[parent] == pytest.approx(posterior, abs=1e-12)


def test_query_names_states_and_numeric_evidence_maps_to_its_bin(mixed):
    out = mixed.query(["colour", "size"], {"flag": True})
    assert set(out["colour"]) == {"blue", "green", "red", "<missing>"}
    assert sum(out["colour"].values()) == pytest.approx(1.0)
    size = mixed._variable("size")
    assert list(out["size"]) == size["labels"]
    first = int(size["edges"][1] - 0.5)  # the largest size of the first bin
    by_value = mixed.query("colour", {"size": first})
    by_label = mixed.query("colour", {"size": size["labels"][0]})
    assert size["labels"][0].startswith("[0,")
    assert by_value == by_label
    assert by_value["colour"]["red"] > 0.8  # small sizes come from red rows


def test_conditional_sampling_respects_evidence_and_matches_inference(asia):
    _, _, model = asia
    evidence = {"dysp": "yes", "smoke": False}
    exact = model.query(["bronc", "either"], evidence)
    for method in ("rejection", "likelihood_weighting"):
        rows = model.sample_frame(
            4000, generator=seeded(0), evidence=evidence, evidence_method=method
        )
        assert rows["dysp"].all() and not rows["smoke"].any()
        for name in ("bronc", "either"):
            assert rows[name].mean() == pytest.approx(exact[name][True], abs=0.035), (method, name)


def test_numeric_and_missing_evidence_in_samples(mixed):
    rows = mixed.sample_frame(300, generator=seeded(1), evidence={"size": 15, "colour": "blue"})
    assert (rows["size"] == 15).all() and (rows["colour"] == "blue").all()
    rows = mixed.sample_frame(200, generator=seeded(1), evidence={"price": None})
    assert rows["price"].isna().all()
    labelled = mixed._variable("price")["labels"][1]
    rows = mixed.sample_frame(200, generator=seeded(2), evidence={"price": labelled})
    low, high = mixed._variable("price")["edges"][1:3]
    assert rows["price"].between(low, high).all() and rows["price"].nunique() > 10
    day = mixed.sample_frame(50, generator=seeded(3), evidence={"day": "2024-01-10"})["day"]
    assert (day == pd.Timestamp("2024-01-10")).all()


def test_rare_evidence_asks_for_likelihood_weighting(asia):
    _, _, model = asia
    evidence = {"asia": True, "tub": True, "lung": True, "xray": False}
    with pytest.raises(ConfigError, match="likelihood_weighting"):
        model.sample(100_000, generator=seeded(0), evidence=evidence)
    rows = model.sample_frame(
        50, generator=seeded(0), evidence=evidence, evidence_method="likelihood_weighting"
    )
    assert rows["asia"].all() and rows["tub"].all() and not rows["xray"].any()


# -- samples -----------------------------------------------------------------------------------


def test_samples_decode_to_the_table_and_are_seeded(mixed):
    x = mixed.sample(500, generator=seeded(0))
    assert x.shape == (500, *mixed.spec.shape) and x.dtype == torch.float32
    assert torch.equal(x, mixed.sample(500, generator=seeded(0)))
    assert not torch.equal(x, mixed.sample(500, generator=seeded(1)))
    frame = mixed.sample_frame(500, generator=seeded(0))
    codec = codec_from_spec(mixed.spec)
    assert torch.equal(codec.encode(frame), x)
    pd.testing.assert_frame_equal(codec.decode(x), frame, check_exact=False, atol=1e-3)
    original = mixed_table()
    assert list(frame.columns) == list(original.columns)
    assert frame["size"].dtype == np.int64 and frame["flag"].dtype == bool
    assert frame["day"].dtype == original["day"].dtype
    assert frame["size"].between(original["size"].min(), original["size"].max()).all()
    assert frame["colour"].isna().any() and frame["price"].isna().any()
    # colour drives size: red rows are small, as in the data
    red = frame["colour"] == "red"
    assert frame.loc[red, "size"].mean() < frame.loc[~red, "size"].mean() - 3
    assert mixed.sample(0).shape == (0, *mixed.spec.shape)


def test_sampling_keeps_numpy_global_state(mixed):
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    mixed.sample(20, generator=seeded(0))
    mixed.sample(20, generator=seeded(0), evidence={"colour": "red"})
    assert np.random.rand() == expected


def test_save_load_round_trip_is_identical(mixed, tmp_path):
    mixed.save(tmp_path / "m")
    loaded = genlab.load(tmp_path / "m")
    assert isinstance(loaded, BayesNet) and loaded.edges_ == mixed.edges_
    for evidence in (None, {"colour": "green", "size": 12}):
        a = mixed.sample(300, generator=seeded(5), evidence=evidence)
        b = loaded.sample(300, generator=seeded(5), evidence=evidence)
        assert torch.equal(a, b)
    x = codec_from_spec(mixed.spec).encode(mixed_table()[:40])
    for density in (False, True):
        torch.testing.assert_close(
            mixed.log_likelihood(x, density=density).nats,
            loaded.log_likelihood(x, density=density).nats,
            rtol=0,
            atol=0,
        )
    assert loaded.query("colour", {"flag": True}) == mixed.query("colour", {"flag": True})


def test_fits_a_table_data_set_through_the_façade(tmp_path):
    path = tmp_path / "shop.csv"
    mixed_table(200).to_csv(path, index=False)
    data = genlab.data.load(str(path))
    model = genlab.create("bayesnet", spec=data.spec, structure="chow_liu", num_bins=4)
    model.fit(data, genlab.TrainConfig(seed=0))
    assert model.sample(7, generator=seeded(3)).shape == (7, *data.spec.shape)
    ll = model.log_likelihood(data.x[:6])
    assert ll.nats.shape == (6,) and torch.isfinite(ll.nats).all()


def test_plot_graph_writes_a_png(mixed, tmp_path):
    path = mixed.plot_graph(tmp_path / "plots" / "graph.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- UCI Adult ---------------------------------------------------------------------------------


@pytest.mark.skipif(adult_path() is None, reason="adult.data is not in ../shared/data")
def test_adult_chow_liu(tmp_path):
    data = genlab.data.load("adult")
    model = genlab.create("bayesnet", structure="chow_liu")
    start = time.perf_counter()
    model.fit(data)
    assert time.perf_counter() - start < 20
    assert len(model.edges_) == 14
    frame = model.sample_frame(2000, generator=seeded(0))
    original = data.info["dataframe"]
    assert list(frame.columns) == list(original.columns)
    assert frame.dtypes.to_dict() == original.dtypes.to_dict()
    # the income rate of the samples is close to the data's
    rich = (frame["income"] == ">50K").mean()
    assert rich == pytest.approx((original["income"] == ">50K").mean(), abs=0.03)
    capital = model._variable("capital-gain")
    assert capital["labels"][0] == "0"  # 0 holds most rows and gets a bin of its own
    women = model.sample_frame(300, generator=seeded(1), evidence={"sex": "Female", "age": 30})
    assert (women["sex"] == "Female").all() and (women["age"] == 30).all()

    model.save(tmp_path / "adult")
    loaded = genlab.load(tmp_path / "adult")
    assert torch.equal(
        model.sample(500, generator=seeded(2)), loaded.sample(500, generator=seeded(2))
    )
    x = data.x[:200]
    torch.testing.assert_close(
        model.log_likelihood(x).nats, loaded.log_likelihood(x).nats, rtol=0, atol=0
    )
    assert torch.isfinite(model.log_likelihood(x, density=True).nats).all()


# -- errors ------------------------------------------------------------------------------------


def test_a_single_valued_column_is_dropped_with_a_note():
    frame = tiny_table()
    frame["country"] = "NL"
    with pytest.warns(UserWarning, match="country"):
        model = BayesNet(BayesNetConfig()).fit(frame)
    assert "country" in model.constants_ and "country" in model.notes_[0]
    assert "country" not in model.network_.nodes()
    rows = model.sample_frame(20, generator=seeded(0))
    assert (rows["country"] == "NL").all()
    assert model.query("country") == {"country": {"NL": 1.0}}
    assert model.query("a", {"country": "NL"}) == model.query("a")
    with pytest.raises(DataError, match="impossible"):
        model.query("a", {"country": "BE"})
    ll = model.log_likelihood(frame[:5])
    assert torch.isfinite(ll.nats).all()


def test_errors():
    with pytest.raises(DataError, match="at least 2 rows"):
        BayesNet(BayesNetConfig()).fit(pd.DataFrame({"a": ["x"], "b": [1]}))
    with pytest.raises(DataError, match="models tables"):
        BayesNet(BayesNetConfig()).fit(genlab.data.load("moons", num_samples=50))
    with pytest.raises(DataError, match="models tables"):
        BayesNet(BayesNetConfig()).fit(torch.zeros(10, 2))
    with pytest.raises(GenlabError, match="not fitted"):
        BayesNet(BayesNetConfig()).sample(3)

    model = BayesNet(BayesNetConfig(num_bins=4)).fit(tiny_table())
    with pytest.raises(DataError, match=r"'income' is not a column.*a, b, c"):
        model.sample(5, evidence={"income": ">50K"})
    with pytest.raises(DataError, match=r"'w' is not a state of column 'a'.*'x', 'y', 'z'"):
        model.sample(5, evidence={"a": "w"})
    with pytest.raises(DataError, match="not a column"):
        model.query("nope")
    with pytest.raises(DataError, match="training range"):
        model.query("a", {"c": 1000})
    with pytest.raises(DataError, match="whole numbers"):
        model.query("a", {"c": 3.5})
    with pytest.raises(DataError, match="no missing cells"):
        model.query("a", {"b": None})
    with pytest.raises(ConfigError, match="both queried"):
        model.query("a", {"a": "x"})
    with pytest.raises(ConfigError, match="unknown option"):
        model.sample(2, temperature=1.0)
    with pytest.raises(ConfigError, match="cond"):
        model.sample(2, cond={"label": torch.zeros(2)})
    with pytest.raises(ConfigError, match="evidence_method"):
        model.sample(2, evidence={"a": "x"}, evidence_method="gibbs")
    with pytest.raises(ConfigError, match="unknown option"):
        model.log_likelihood(torch.zeros(2, model.spec.num_dims), exact=True)
    with pytest.raises(DataError, match="expected"):
        model.log_likelihood(torch.zeros(2, 3))


@pytest.mark.parametrize(
    "overrides",
    [
        {"num_bins": 1},
        {"max_indegree": -1},
        {"structure": "pc"},
        {"score": "aic"},
        {"prior": "uniform"},
        {"equivalent_sample_size": 0},
        {"max_iter": 0},
        {"typo": 1},
    ],
)
def test_bad_config_raises(overrides):
    with pytest.raises(ConfigError):
        genlab.create("bayesnet", **overrides)


def test_vectorized_forward_sampling_matches_the_network():
    """Ancestral draws follow every CPD: each variable's frequency given its parents' states."""
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    from genlab.families.classical.bayesnet import _forward_states

    # A three-state root, a child with a zero-probability state, and a two-parent child.
    network = DiscreteBayesianNetwork([("a", "b"), ("a", "c"), ("b", "c")])
    a = TabularCPD("a", 3, [[0.2], [0.5], [0.3]])
    b = TabularCPD("b", 2, [[0.9, 0.0, 0.4], [0.1, 1.0, 0.6]], evidence=["a"], evidence_card=[3])
    c_yes = np.array([0.1, 0.7, 0.5, 0.2, 0.95, 0.3])  # (a, b) in C order
    c = TabularCPD("c", 2, [c_yes, 1 - c_yes], evidence=["a", "b"], evidence_card=[3, 2])
    network.add_cpds(a, b, c)
    network.check_model()
    n = 60_000
    rows = _forward_states(network, n, torch.Generator().manual_seed(0))
    assert list(rows.columns) == list(network.nodes()) and len(rows) == n
    freq_a = np.bincount(rows["a"], minlength=3) / n
    np.testing.assert_allclose(freq_a, [0.2, 0.5, 0.3], atol=4 * math.sqrt(0.25 / n))
    assert not ((rows["a"] == 1) & (rows["b"] == 0)).any(), "a zero-probability state was drawn"
    for i, (sa, sb) in enumerate(itertools.product(range(3), range(2))):
        given = rows[(rows["a"] == sa) & (rows["b"] == sb)]
        if len(given) < 500:
            continue
        share = float((given["c"] == 0).mean())
        assert abs(share - c_yes[i]) < 4 * math.sqrt(0.25 / len(given)), (sa, sb, share)
    assert _forward_states(network, 50, torch.Generator().manual_seed(1)).equals(
        _forward_states(network, 50, torch.Generator().manual_seed(1))
    )
