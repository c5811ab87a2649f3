"""WaveNet: mu-law against its formula, causality, fast sampler, exact likelihood, data."""

import itertools
import math

import numpy as np
import pytest
import torch

import genlab
from genlab.core.contract import Batch, DataSpec
from genlab.core.errors import ConfigError, DataError
from genlab.data.audio import write_wav
from genlab.families.autoregressive.wavenet import (
    WaveNet,
    WaveNetConfig,
    mu_law_decode,
    mu_law_encode,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """Run single-threaded: these networks are tiny, so handing each op to a second thread
    costs more than it saves (and on a loaded machine, far more)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


AUDIO = DataSpec("sequence", (32, 1), name="clip", value_range=(-1.0, 1.0))
SMALL = {
    "residual_channels": 6,
    "dilation_channels": 5,
    "skip_channels": 7,
    "layers_per_stack": 3,
    "num_stacks": 2,
}


def _model(spec: DataSpec = AUDIO, **config) -> WaveNet:
    torch.manual_seed(0)
    return WaveNet(WaveNetConfig(**{**SMALL, **config}), spec)


def test_mu_law_matches_the_formula():
    x = np.linspace(-1.0, 1.0, 2001)
    mu = 255
    companded = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    expected = np.floor((companded + 1) / 2 * mu + 0.5).astype(np.int64)
    q = mu_law_encode(torch.from_numpy(x))
    assert torch.equal(q, torch.from_numpy(expected))
    assert int(q[0]) == 0 and int(q[-1]) == 255 and int(mu_law_encode(torch.tensor(0.0))) == 128
    levels = np.arange(256)
    y = 2 * levels / mu - 1
    decoded = np.sign(y) * ((1 + mu) ** np.abs(y) - 1) / mu
    np.testing.assert_allclose(mu_law_decode(torch.from_numpy(levels)).numpy(), decoded, rtol=1e-6)
    assert float(mu_law_decode(torch.tensor(0))) == -1.0
    assert float(mu_law_decode(torch.tensor(255))) == 1.0


@pytest.mark.parametrize("levels", [256, 16])
def test_mu_law_round_trip_is_within_half_a_level(levels):
    """decode(encode(x)) is x up to half a quantization step in the companded domain, which
    in x is at most (1 + mu)**(1/mu) - 1 times (1/mu + |x|) (the slope of the expansion)."""
    mu = levels - 1
    x = torch.rand(20000, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
    x_hat = mu_law_decode(mu_law_encode(x, levels), levels).double()

    def compand(v):
        return torch.sign(v) * torch.log1p(mu * v.abs()) / math.log1p(mu)

    assert float((compand(x_hat) - compand(x)).abs().max()) <= 1 / mu + 1e-6
    bound = ((1 + mu) ** (1 / mu) - 1) * (1 / mu + x.abs())
    assert bool(((x_hat - x).abs() <= bound + 1e-6).all())
    # the quantizer keeps the sign (no level straddles zero for even L)
    assert bool((torch.sign(x_hat) == torch.sign(x)).all())


def test_prediction_is_causal_with_the_stated_receptive_field():
    """d logits(t) / d input(t') is nonzero exactly for t - receptive_field <= t' < t."""
    model = _model(kernel_size=3).double()
    rf = model.receptive_field
    assert rf == 1 + 2 * (1 + 2 + 4) * 2
    q = torch.randint(0, 256, (4, 40, 1))
    e = model.network.embed(q).detach().requires_grad_()  # (B, R, T)
    logits = model.network.from_embedding(e)  # (B, T, C, L)
    for t in range(40):
        (grad,) = torch.autograd.grad(logits[:, t].sum(), e, retain_graph=True)
        reached = (grad.abs().sum((0, 1)) > 0).nonzero().flatten().tolist()
        assert reached == list(range(max(0, t - rf), t)), t


@pytest.mark.parametrize("kernel_size", [2, 3])
def test_fast_sampler_equals_recomputing_over_the_receptive_field(kernel_size):
    model = _model(kernel_size=kernel_size)
    fast = model.sample(3, generator=torch.Generator().manual_seed(1), length=30)
    slow = model.sample(3, generator=torch.Generator().manual_seed(1), length=30, incremental=False)
    assert fast.shape == (3, 30, 1) and fast.dtype == torch.float32
    assert torch.equal(fast, slow)
    assert not torch.equal(
        fast, model.sample(3, generator=torch.Generator().manual_seed(2), length=30)
    )


def test_likelihood_normalizes_and_samples_follow_it():
    """With 4 levels and 3 steps, the 64 sequences' probabilities sum to 1, and 6,000 samples
    land on them with those frequencies (total variation below 0.05)."""
    spec = DataSpec("sequence", (3, 1), value_range=(-1.0, 1.0))
    model = _model(spec, levels=4).double()
    with torch.no_grad():  # sharpen the conditionals so the check has teeth
        model.network.head[-1].weight.mul_(20.0)
        model.network.head[-1].bias.normal_(0.0, 2.0, generator=torch.Generator().manual_seed(0))
    grid = torch.tensor(list(itertools.product(range(4), repeat=3)))[:, :, None]  # (64, 3, 1)
    signals = model.dequantize(grid).double()
    assert torch.equal(model.quantize(signals)[0], grid)
    probs = model.log_likelihood(signals).nats.exp()
    assert float(probs.sum()) == pytest.approx(1.0, abs=1e-12)
    assert probs.max() > 0.08  # far from uniform (1/64)
    samples = model.float().sample(6000, generator=torch.Generator().manual_seed(0))
    q = model.quantize(samples)[0][:, :, 0]
    codes = q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2]
    freq = torch.bincount(codes, minlength=64).double() / 6000
    assert 0.5 * float((freq - probs).abs().sum()) < 0.05


def test_log_likelihood_is_the_sum_of_stepwise_conditionals():
    model = _model().double()
    x = torch.rand(2, 20, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ll = model.log_likelihood(x * 2 - 1)
    q, _ = model.quantize(x * 2 - 1)
    expected = torch.zeros(2, dtype=torch.float64)
    for t in range(20):
        # only the past goes in: the prediction for step t from the prefix q[:, :t]
        prefix = torch.cat([q[:, :t], torch.zeros_like(q[:, :1])], dim=1)
        with torch.no_grad():
            logits = model.network(prefix)[:, t, 0]  # (B, L)
        expected += torch.log_softmax(logits, -1).gather(1, q[:, t])[:, 0]
    assert ll.kind == "exact"
    torch.testing.assert_close(ll.nats, expected, rtol=1e-10, atol=1e-10)
    assert ll.details["bits_per_sample"] == pytest.approx(
        -float(expected.mean()) / (20 * math.log(2))
    )


def test_trains_on_a_wav_tone(tmp_path):
    """WAV in: a 200 Hz tone; a short fit brings the test NLL far under the untrained 8
    bits/sample; WAV out: the samples written back as 16-bit PCM."""
    t = np.arange(12000) / 8000.0
    tone = 0.6 * np.sin(2 * np.pi * 200 * t)
    write_wav(tmp_path / "tone.wav", tone, 8000)
    train = genlab.data.load(str(tmp_path / "tone.wav"), window=64)
    test = genlab.data.load(str(tmp_path / "tone.wav"), "test", window=64)
    model = genlab.create("wavenet", spec=train.spec, **{**SMALL, "skip_channels": 16})
    before = model.log_likelihood(test.x).details["bits_per_sample"]
    cfg = genlab.TrainConfig(steps=60, batch_size=16, lr=1e-2, progress=False, device="cpu")
    model.fit(train, cfg)
    after = model.log_likelihood(test.x).details["bits_per_sample"]
    assert before > 7.5 and after < 3.0
    clip = model.sample(1, generator=torch.Generator().manual_seed(0), length=120)
    out = write_wav(tmp_path / "sample.wav", clip, 8000)
    back = genlab.data.load(str(out), window=50, train_fraction=0.5)
    assert back.spec.columns[0]["sample_rate"] == 8000 and back.x.abs().max() <= 1


def test_time_series_need_an_input_range_and_map_back():
    data = genlab.data.load("statsmodels", dataset="nile", window=8, normalize=True)
    with pytest.raises(ConfigError, match="input_range"):
        genlab.create("wavenet", spec=data.spec, **SMALL)
    model = genlab.create("wavenet", spec=data.spec, **SMALL, input_range=(-4.0, 4.0))
    ll = model.log_likelihood(data.x)
    assert ll.nats.shape == (len(data),) and ll.details["clipped"] == 0
    wide = model.log_likelihood(data.x * 10)
    assert wide.details["clipped"] > 0
    # samples come back in the data's units: level centres spread over [-4, 4]
    s = model.sample(4, generator=torch.Generator().manual_seed(0))
    assert s.shape == (4, 8, 1) and s.abs().max() <= 4.0 and s.abs().max() > 1.0
    assert model.loss(Batch(data.x[:8])).loss.ndim == 0


def test_bad_input_is_reported():
    with pytest.raises(ConfigError, match="1-D signals"):
        WaveNet(WaveNetConfig(), DataSpec("image", (1, 8, 8), discrete_levels=2))
    with pytest.raises(ConfigError, match="outside"):
        WaveNet(WaveNetConfig(), DataSpec("sequence", (8, 1), value_range=(0.0, 255.0)))
    with pytest.raises(ConfigError, match="low < high"):
        WaveNetConfig(input_range=(1.0, -1.0))
    model = _model()
    with pytest.raises(DataError, match="shape"):
        model.log_likelihood(torch.zeros(2, 8, 3))
    with pytest.raises(DataError, match="NaN"):
        model.log_likelihood(torch.full((1, 8, 1), float("nan")))
    with pytest.raises(ConfigError, match="unconditional"):
        model.sample(2, cond={"label": torch.tensor([0, 1])})
    with pytest.raises(ConfigError, match="length"):
        model.sample(2, length=0)
    with pytest.raises(TypeError):
        model.sample(2, top_p=0.5)
