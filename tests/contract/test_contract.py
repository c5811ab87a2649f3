"""The contract every registered model and preset keeps (STYLE.md, 'The contract')."""

from __future__ import annotations

import json
import math

import pytest
import torch

import genlab
from genlab.core.contract import ClassicalModel, LogLikelihood, NeuralModel, NoLikelihoodError
from genlab.core.registry import list_models
from tests.contract.tiny import TINY, case_id, cases

CASES = cases()


def _build(case):
    name, cfg, data_name, data_opts = case
    data = genlab.data.load(data_name, **data_opts)
    model = genlab.create(name, spec=data.spec, **cfg)
    torch.manual_seed(0)
    if isinstance(model, ClassicalModel):
        model.fit(data, genlab.TrainConfig(seed=0))
    return model, data


def _cond(model, n: int):
    if getattr(model.config, "conditional", False):
        return {"label": torch.arange(n) % model.spec.num_classes}
    return None


def test_every_registered_model_has_a_tiny_config():
    registered = set()
    for name, entry in list_models().items():
        registered.add(name)
        registered.update(entry.presets)
    assert registered - set(TINY) == set(), "add a tiny config to tests/contract/tiny.py"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_each_loss_key_grads_its_group_only(case):
    model, data = _build(case)
    if not isinstance(model, NeuralModel):
        pytest.skip("classical models have no gradient losses")
    batch = data.batch(torch.arange(16), generator=torch.Generator().manual_seed(0))
    groups = model.param_groups()
    for key, params in groups.items():
        model.zero_grad(set_to_none=True)
        out = model.loss(batch, key=key)
        assert out.loss.ndim == 0 and torch.isfinite(out.loss)
        assert all(isinstance(v, float) for v in out.logs.values())
        out.loss.backward()
        mine = {id(p) for p in params}
        for pname, p in model.named_parameters():
            if id(p) in mine:
                assert p.grad is not None and p.grad.abs().sum() > 0, f"{key}: no grad for {pname}"
            else:
                assert p.grad is None or p.grad.abs().sum() == 0, f"{key}: grad leaks to {pname}"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_samples_shape_dtype_range_and_seed(case):
    model, data = _build(case)
    n = 7
    a = model.sample(n, generator=torch.Generator().manual_seed(3), cond=_cond(model, n))
    b = model.sample(n, generator=torch.Generator().manual_seed(3), cond=_cond(model, n))
    c = model.sample(n, generator=torch.Generator().manual_seed(4), cond=_cond(model, n))
    assert a.shape == (n, *data.spec.shape)
    assert torch.equal(a, b), "a fixed generator must reproduce samples exactly"
    assert not torch.equal(a, c)
    if data.spec.modality == "text":
        # token ids, as the text data sets give them
        assert a.dtype == torch.int64
        assert a.min() >= 0 and a.max() < data.spec.discrete_levels
        return
    assert a.dtype == torch.float32
    assert torch.isfinite(a).all()
    if data.spec.modality == "image":
        assert a.min() >= 0 and a.max() <= 1


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_unknown_sample_option_raises(case):
    model, _ = _build(case)
    with pytest.raises((TypeError, genlab.core.errors.ConfigError)):
        model.sample(2, generator=torch.Generator().manual_seed(0), no_such_option=1)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_save_load_round_trip(case, tmp_path):
    model, data = _build(case)
    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["model"] == model.name and meta["format_version"] == 1
    loaded = genlab.load(tmp_path / "m")
    assert type(loaded) is type(model)
    n = 5
    s1 = model.sample(n, generator=torch.Generator().manual_seed(1), cond=_cond(model, n))
    s2 = loaded.sample(n, generator=torch.Generator().manual_seed(1), cond=_cond(model, n))
    assert torch.equal(s1, s2)
    x = data.x[:6]
    cond = None if not getattr(model.config, "conditional", False) else {"label": data.labels[:6]}
    try:
        ll1 = model.log_likelihood(x, cond=cond, **_ll_seed(model))
    except NoLikelihoodError as e:
        assert str(e), "say why the family has no likelihood and what to use instead"
        return
    ll2 = loaded.log_likelihood(x, cond=cond, **_ll_seed(model))
    assert isinstance(ll1, LogLikelihood) and ll1.kind in ("exact", "lower_bound", "estimate")
    assert ll1.nats.shape == (6,)
    torch.testing.assert_close(ll1.nats, ll2.nats, rtol=0, atol=0)


def _ll_seed(model) -> dict:
    import inspect

    params = inspect.signature(model.log_likelihood).parameters
    return {"generator": torch.Generator().manual_seed(0)} if "generator" in params else {}


@pytest.mark.parametrize("case", [c for c in CASES if c[2] in ("moons", "8gaussians")], ids=case_id)
def test_exact_likelihood_normalizes(case):
    model, _ = _build(case)
    try:
        probe = model.log_likelihood(torch.zeros(1, 2), **_ll_seed(model))
    except NoLikelihoodError:
        pytest.skip(f"{model.name} has no likelihood")
    if probe.kind != "exact":
        pytest.skip(f"{model.name} reports a {probe.kind}, which need not normalize")
    lo, hi, n = -6.0, 6.0, 601
    axis = torch.linspace(lo, hi, n)
    grid = torch.cartesian_prod(axis, axis).float()
    density = model.log_likelihood(grid).nats.double().exp()
    cell = ((hi - lo) / (n - 1)) ** 2
    assert math.isclose(float(density.sum() * cell), 1.0, abs_tol=1e-2)


def _model_class(name: str) -> type:
    """The class of a registered model or of the model a preset configures."""
    for model_name, entry in list_models().items():
        if name == model_name or name in entry.presets:
            return entry.cls
    raise KeyError(name)


NEURAL = [c for c in CASES if issubclass(_model_class(c[0]), NeuralModel)]


@pytest.mark.parametrize("case", NEURAL[:2], ids=case_id)
def test_fit_through_the_one_loop(case, tmp_path):
    model, data = _build(case)
    cfg = genlab.TrainConfig(steps=4, batch_size=16, progress=False, checkpoint_every=2)
    model.fit(data, cfg, run_dir=tmp_path / "run")
    assert (tmp_path / "run" / "metrics.jsonl").exists()
    assert (tmp_path / "run" / "checkpoints" / "latest").exists()
    from genlab.data.writers import preview_suffix

    assert (tmp_path / "run" / "samples" / f"final{preview_suffix(data.spec)}").exists()
