"""Gated PixelCNN: causal receptive field without blind spot, exact likelihood, sampling."""

import itertools
import math

import pytest
import torch

import genlab
from genlab.core.contract import Batch, DataSpec
from genlab.core.errors import ConfigError, DataError
from genlab.families.autoregressive.pixelcnn import PixelCNN, PixelCNNConfig


@pytest.fixture(autouse=True)
def _one_thread():
    """Run single-threaded: these networks are tiny, so handing each op to a second thread
    costs more than it saves (and on a loaded machine, far more)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _model(channels: int, levels: int, size: int = 6, **config) -> PixelCNN:
    spec = DataSpec(
        "image", (channels, size, size), name="tiny", num_classes=3, discrete_levels=levels
    )
    base = {"hidden_channels": 3 * channels, "output_channels": 3 * channels, "num_layers": 4}
    torch.manual_seed(0)
    model = PixelCNN(PixelCNNConfig(**{**base, "first_kernel_size": 5, **config}), spec)
    return model.double()


def _sharpen(model: PixelCNN, factor: float = 6.0) -> None:
    """Scale the output layer so the conditionals are far from uniform (a stronger test)."""
    with torch.no_grad():
        model.network.head[-1].weight.mul_(factor)
        model.network.head[-1].bias.normal_(0.0, 1.0)


@pytest.mark.parametrize(("channels", "levels"), [(1, 2), (3, 4)])
def test_receptive_field_is_causal_without_blind_spot(channels, levels):
    """d logits(c, i, j) / d input(c', i', j') is exactly zero unless (i', j', c') comes first
    in raster-then-channel order, and nonzero for every value that does (no blind spot)."""
    # 5 x 5: the first layer reaches 2 pixels, each of 3 more layers 1: every earlier pixel.
    model = _model(channels, levels, size=5, num_layers=3, conditional=True)
    size = model.spec.shape[1]
    # A batch of random inputs: a path that a ReLU closes for one input is open for another.
    x = torch.randn(8, channels, size, size, dtype=torch.float64, requires_grad=True)
    logits = model.network(x, torch.arange(8) % 3)  # (B, C, K, H, W)
    order = {
        (c, i, j): (i * size + j) * channels + c
        for c, i, j in itertools.product(range(channels), range(size), range(size))
    }
    for (c, i, j), position in order.items():
        (grad,) = torch.autograd.grad(logits[:, c, :, i, j].sum(), x, retain_graph=True)
        reached = grad.abs().sum(0) > 0  # (C, H, W)
        for (c2, i2, j2), other in order.items():
            earlier = other < position
            assert bool(reached[c2, i2, j2]) == earlier, (
                f"output {(c, i, j)} {'misses' if earlier else 'sees'} input {(c2, i2, j2)}"
            )


def test_row_sampler_matches_the_full_network():
    model = _model(3, 4, conditional=True)
    levels = torch.randint(0, 4, (2, 3, 6, 6))
    x = model._net_input(levels).double()
    y = torch.tensor([0, 2])
    full = model.network(x, y)
    for i in range(6):
        links = model.network.row_links(x[:, :, :i], y)
        for j in range(6):
            row = model.network.row_logits(x[:, :, i : i + 1, : j + 1], links, y)
            torch.testing.assert_close(row[:, :, :, 0, j], full[:, :, :, i, j])


@pytest.mark.parametrize(("channels", "levels"), [(1, 2), (3, 5)])
def test_log_likelihood_is_the_sum_of_conditionals_from_an_independent_loop(channels, levels):
    """Each conditional recomputed from an image in which every later value is replaced by
    random levels: the network may not see them, so the product of these is p(x)."""
    model = _model(channels, levels, size=4, conditional=True)
    _sharpen(model)
    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, levels, (3, channels, 4, 4), generator=gen)
    labels = torch.tensor([2, 0, 1])
    ll = model.log_likelihood(images.double() / (levels - 1), cond={"label": labels})
    assert ll.kind == "exact"
    expected = torch.zeros(3, dtype=torch.float64)
    for i, j, c in itertools.product(range(4), range(4), range(channels)):
        scrambled = torch.randint(0, levels, images.shape, generator=gen)
        known = images.clone()
        flat_pos = (torch.arange(4)[:, None] * 4 + torch.arange(4)[None, :]).expand(4, 4)
        later_pixel = flat_pos > i * 4 + j
        known[:, :, later_pixel] = scrambled[:, :, later_pixel]
        known[:, c:, i, j] = scrambled[:, c:, i, j]  # this pixel's channels >= c unknown
        with torch.no_grad():
            logits = model.network(model._net_input(known).double(), labels)[:, c, :, i, j]
        target = images[:, c, i, j]
        if levels == 2:
            p1 = torch.sigmoid(logits[:, 0])
            expected += torch.where(target == 1, p1, 1 - p1).log()
        else:
            expected += torch.log_softmax(logits, dim=1).gather(1, target[:, None])[:, 0]
    torch.testing.assert_close(ll.nats, expected, rtol=1e-9, atol=1e-9)
    bits = -float(expected.mean()) / (channels * 16 * math.log(2))
    assert ll.details["bits_per_dim"] == pytest.approx(bits)


def test_probabilities_sum_to_one_and_samples_follow_them():
    """All 2**4 binary 2 x 2 images: exp(log p) sums to 1, and 6,000 seeded samples land on
    them with the model's frequencies (total variation distance below 0.04)."""
    model = _model(1, 2, size=2, num_layers=2, first_kernel_size=3)
    _sharpen(model, 3.0)
    images = torch.tensor(list(itertools.product([0.0, 1.0], repeat=4))).reshape(16, 1, 2, 2)
    probs = model.log_likelihood(images.double()).nats.exp()
    assert float(probs.sum()) == pytest.approx(1.0, abs=1e-12)
    samples = model.sample(6000, generator=torch.Generator().manual_seed(0))
    assert samples.dtype == torch.float32 and samples.shape == (6000, 1, 2, 2)
    codes = (samples.reshape(6000, 4) * torch.tensor([8.0, 4.0, 2.0, 1.0])).sum(1).long()
    freq = torch.bincount(codes, minlength=16).double() / 6000
    assert probs.max() > 0.15  # far from uniform (1/16), so the comparison means something
    assert 0.5 * float((freq - probs).abs().sum()) < 0.04


def test_sampling_is_seeded_and_temperature_zero_is_greedy():
    model = _model(3, 4, size=3, num_layers=1, conditional=True).float()
    cond = {"label": torch.tensor([0, 1, 2, 1])}
    a = model.sample(4, generator=torch.Generator().manual_seed(5), cond=cond)
    b = model.sample(4, generator=torch.Generator().manual_seed(5), cond=cond)
    c = model.sample(4, generator=torch.Generator().manual_seed(6), cond=cond)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a * 3, (a * 3).round()) and a.min() >= 0 and a.max() <= 1
    g1 = model.sample(4, generator=torch.Generator().manual_seed(1), cond=cond, temperature=0)
    g2 = model.sample(4, generator=torch.Generator().manual_seed(2), cond=cond, temperature=0)
    assert torch.equal(g1, g2)
    # greedy picks the most likely level of each value given the ones before it
    levels = model.to_levels(g1)
    logits = model.network(model._net_input(levels), cond["label"])  # (B, C, L, H, W)
    assert torch.equal(logits.argmax(dim=2), levels)
    with pytest.raises(TypeError):
        model.sample(2, cond=cond, top_k=3)


def test_training_on_binarized_digits_lowers_test_nll():
    train = genlab.data.load("digits", binarize=True)
    test = genlab.data.load("digits", split="test", binarize=True)
    model = genlab.create(
        "pixelcnn", spec=train.spec, hidden_channels=16, output_channels=16, num_layers=2
    )
    before = -model.log_likelihood(test.x).mean()
    cfg = genlab.TrainConfig(steps=100, batch_size=32, lr=3e-3, progress=False, device="cpu")
    model.fit(train, cfg)
    after = -model.log_likelihood(test.x).mean()
    # 64 binary pixels: about 44 nats untrained (log 2 each); a fit model knows the digits.
    assert before > 40 and after < 31


def test_levels_must_match_the_data():
    grey = DataSpec("image", (1, 8, 8), name="grey", discrete_levels=17)
    with pytest.raises(ConfigError, match="17 levels"):
        PixelCNN(PixelCNNConfig(levels=2), grey)
    PixelCNN(PixelCNNConfig(levels=17, hidden_channels=4, output_channels=4), grey)
    unknown = DataSpec("image", (1, 8, 8), name="photos")
    with pytest.raises(ConfigError, match="levels: 256"):
        PixelCNN(PixelCNNConfig(), unknown)
    with pytest.raises(ConfigError, match="multiple of the 3"):
        PixelCNN(PixelCNNConfig(hidden_channels=8), DataSpec("image", (3, 4, 4), discrete_levels=4))
    with pytest.raises(ConfigError, match="images"):
        PixelCNN(PixelCNNConfig(), DataSpec("points", (2,), discrete_levels=2))
    with pytest.raises(ConfigError, match="labelled"):
        PixelCNN(PixelCNNConfig(conditional=True), DataSpec("image", (1, 4, 4), discrete_levels=2))
    with pytest.raises(ConfigError, match="odd"):
        PixelCNNConfig(kernel_size=4)


def test_bad_images_are_data_errors():
    model = _model(1, 2, size=4).float()
    grey = torch.full((2, 1, 4, 4), 0.5)
    with pytest.raises(DataError, match="binarize"):
        model.log_likelihood(grey)
    with pytest.raises(DataError, match="binarize"):
        model.loss(Batch(grey))
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        model.log_likelihood(torch.full((2, 1, 4, 4), 2.0))
    with pytest.raises(DataError, match="shape"):
        model.log_likelihood(torch.zeros(2, 1, 5, 5))
    conditional = _model(1, 2, size=4, conditional=True).float()
    with pytest.raises(DataError, match="cond"):
        conditional.log_likelihood(torch.zeros(2, 1, 4, 4))
    with pytest.raises(DataError, match="outside"):
        conditional.sample(2, cond={"label": torch.tensor([0, 3])})
    with pytest.raises(ConfigError, match="unconditional"):
        model.sample(2, cond={"label": torch.tensor([0, 1])})
