"""Feature networks: shipped weights and their accuracy, input checks, resizing, inception plumbing."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import genlab
from genlab.core.errors import CheckpointError, ConfigError, DataError
from genlab.metrics.features import WEIGHTS_DIR, get_extractor, list_extractors
from genlab.metrics.features.digits import load_network
from genlab.metrics.features.inception import FID_WEIGHTS_NAME, FIDInceptionV3

# digits test accuracy of the shipped digits8 weights (benchmarks/results/digit_features.json).
DIGITS8_REACHED = 0.988


@pytest.fixture(scope="module")
def digits28():
    return get_extractor("digits28")


@pytest.fixture(scope="module")
def digits8():
    return get_extractor("digits8")


@pytest.fixture(scope="module")
def mnist_test():
    return genlab.data.load("mnist5k", split="test")


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    """A randomly initialised FID Inception state dict saved as a .pth, as pytorch-fid ships."""
    torch.manual_seed(0)
    network = FIDInceptionV3()
    for module in network.modules():  # non-trivial statistics, so a round trip is a real check
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("inception") / FID_WEIGHTS_NAME
    torch.save(network.state_dict(), path)
    return path, network.state_dict()


@pytest.fixture(scope="module")
def inception(inception_file):
    return get_extractor("inception", weights=inception_file[0])


def test_registry_lists_the_four_extractors():
    assert set(list_extractors()) == {"digits28", "digits8", "inception", "raw"}


def test_unknown_extractor_lists_known_names():
    with pytest.raises(ConfigError, match="known extractors: digits28, digits8, inception, raw"):
        get_extractor("lenet")


def test_unknown_option_names_allowed_ones():
    with pytest.raises(ConfigError, match="resize"):
        get_extractor("digits28", size=28)


@pytest.mark.parametrize("name", ["digits28", "digits8"])
def test_shipped_weights_are_small_and_match_their_metadata(name):
    meta = json.loads((WEIGHTS_DIR / f"{name}.json").read_text())
    size = (WEIGHTS_DIR / f"{name}.safetensors").stat().st_size
    assert size < 1_200_000
    assert meta["size_bytes"] == size
    network, loaded_meta = load_network(name)
    assert loaded_meta["sha256"] == meta["sha256"]
    assert not network.training
    for key in ("test_accuracy", "command", "date", "train_data"):
        assert key in meta


def test_digits28_reaches_98_percent_on_mnist5k_test(digits28, mnist_test):
    probs = digits28.probs(mnist_test.x)
    assert probs.shape == (1000, 10)
    torch.testing.assert_close(probs.sum(1), torch.ones(1000))
    accuracy = float((probs.argmax(1) == mnist_test.labels).float().mean())
    assert accuracy >= 0.98
    recorded = json.loads((WEIGHTS_DIR / "digits28.json").read_text())["test_accuracy"]
    assert abs(accuracy - recorded) <= 0.002


def test_digits8_accuracy_on_digits_test(digits8):
    test = genlab.data.load("digits", split="test")
    accuracy = float((digits8.logits(test.x).argmax(1) == test.labels).float().mean())
    assert accuracy >= DIGITS8_REACHED
    recorded = json.loads((WEIGHTS_DIR / "digits8.json").read_text())["test_accuracy"]
    assert abs(accuracy - recorded) <= 0.003


def test_feature_shapes_dtypes_and_determinism(digits28, digits8, mnist_test):
    x = mnist_test.x[:50]
    features = digits28(x)
    assert features.shape == (50, 128) and features.dtype == torch.float32
    assert digits28.feature_dim == 128 and digits28.input_shape == (1, 28, 28)
    assert (features >= 0).all()  # post-ReLU activations
    torch.testing.assert_close(digits28.features(x), features, rtol=0, atol=0)
    torch.testing.assert_close(digits28.features(x, batch_size=7), features)
    small = genlab.data.load("digits", split="test").x[:20]
    assert digits8(small).shape == (20, 64) and digits8.feature_dim == 64


def test_features_separate_classes(digits28, mnist_test):
    """Same-class digits sit closer in feature space than digits of other classes."""
    features, labels = digits28(mnist_test.x), mnist_test.labels
    distances = torch.cdist(features, features)
    same = labels[:, None] == labels[None, :]
    assert distances[same].mean() < 0.6 * distances[~same].mean()


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.rand(4, 1, 28, 28) * 2 - 1, r"values span \[-\d.*\(x \+ 1\) / 2"),
        (torch.rand(4, 1, 28, 28) * 255, r"x / 255"),
        ((torch.rand(4, 1, 28, 28) * 255).to(torch.uint8), r"dtype torch.uint8.*x.float\(\) / 255"),
        (torch.rand(4, 28, 28), r"\(N, C, H, W\).*unsqueeze\(1\)"),
        (torch.rand(4, 3, 28, 28), r"1 grey channel, got 3 channels.*x.mean\(1, keepdim=True\)"),
        (torch.full((4, 1, 28, 28), float("nan")), "NaN"),
        (torch.rand(0, 1, 28, 28), "no images"),
        (torch.rand(4, 1, 8, 8), r"takes 28x28 images, got 8x8.*resize=True"),
    ],
)
def test_bad_images_raise_data_errors_naming_the_fix(digits28, x, message):
    with pytest.raises(DataError, match=message):
        digits28(x)


def test_resize_option(mnist_test):
    small = torch.nn.functional.interpolate(
        mnist_test.x[:10], size=(14, 14), mode="bilinear", antialias=True
    )
    resizing = get_extractor("digits28", resize=True)
    assert resizing(small).shape == (10, 128)
    assert "antialias=True" in resizing.describe()["resize_mode"]
    # A 28x28 input is not resized, so the features equal those of the plain extractor.
    torch.testing.assert_close(
        resizing(mnist_test.x[:10]), get_extractor("digits28")(mnist_test.x[:10])
    )
    with pytest.raises(ConfigError, match="resize must be True or False"):
        get_extractor("digits8", resize="yes")


def test_describe_records_what_a_metric_needs(digits28):
    info = digits28.describe()
    assert info["extractor"] == "digits28"
    assert info["weights_file"].endswith("digits28.safetensors")
    assert len(info["weights_sha256"]) == 64
    assert info["image_size"] == [28, 28] and info["feature_dim"] == 128
    assert info["resize"] is False and "none" in info["resize_mode"]
    json.dumps(info)  # goes into result files as is


def test_missing_or_corrupt_digit_weights_raise_checkpoint_errors(tmp_path):
    shutil.copy(WEIGHTS_DIR / "digits8.json", tmp_path / "digits8.json")
    with pytest.raises(CheckpointError, match="digits8.safetensors is missing"):
        load_network("digits8", tmp_path)
    data = bytearray((WEIGHTS_DIR / "digits8.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / "digits8.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="damaged or from another training run"):
        load_network("digits8", tmp_path)
    (tmp_path / "digits8.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_network("digits8", tmp_path)


def test_inception_architecture_matches_torchvision_parameter_count():
    """torchvision's inception_v3 has 27,161,264 parameters with its aux classifier and fc 1000."""
    aux = (768 * 128 + 2 * 128) + (128 * 768 * 25 + 2 * 768) + (768 * 1000 + 1000)
    count = sum(p.numel() for p in FIDInceptionV3(num_classes=1000).parameters())
    assert count + aux == 27_161_264


def test_inception_weights_round_trip_with_strict_loading(inception, inception_file):
    _, saved = inception_file
    loaded = inception.network.inception.state_dict()
    assert loaded.keys() == saved.keys()
    for key, tensor in saved.items():
        torch.testing.assert_close(loaded[key], tensor, rtol=0, atol=0)
    assert {"Conv2d_1a_3x3.conv.weight", "Mixed_5b.branch1x1.conv.weight", "fc.weight"} <= set(
        saved
    )
    assert "Mixed_7c.branch_pool.bn.running_mean" in saved


def test_inception_features_shape_and_grey_replication(inception):
    torch.manual_seed(1)
    rgb = torch.rand(2, 3, 299, 299)
    features = inception.features(rgb)
    assert features.shape == (2, 2048) and features.dtype == torch.float32
    assert torch.isfinite(features).all()
    grey = torch.rand(2, 1, 28, 28)
    replicated = grey.expand(-1, 3, -1, -1)
    torch.testing.assert_close(inception(grey), inception(replicated))
    assert inception.logits(grey).shape == (2, 1008)
    info = inception.describe()
    assert info["image_size"] == [299, 299] and info["layer"] == "pool3"
    assert info["grey_to_rgb"] == "replicate" and info["standard_fid_weights"] is False
    assert "antialias=False" in info["resize_mode"]


def test_inception_without_fc_is_features_only(tmp_path, inception_file):
    _, saved = inception_file
    state = {k: v for k, v in saved.items() if not k.startswith("fc.")}
    path = tmp_path / "pool3_only.pth"
    torch.save(state, path)
    extractor = get_extractor("inception", weights=path)
    assert extractor.num_classes is None
    with pytest.raises(ConfigError, match="no classifier layer"):
        extractor.logits(torch.rand(1, 3, 299, 299))


def test_inception_needs_its_weights_file(tmp_path, inception_file):
    with pytest.raises(CheckpointError, match=FID_WEIGHTS_NAME):
        get_extractor("inception")
    with pytest.raises(CheckpointError, match="does not exist.*" + FID_WEIGHTS_NAME):
        get_extractor("inception", weights=tmp_path / "nowhere.pth")
    _, saved = inception_file
    wrong = {("Aux" + k if k.startswith("Mixed_5b") else k): v for k, v in saved.items()}
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(CheckpointError, match="missing names.*unexpected"):
        get_extractor("inception", weights=tmp_path / "wrong.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="corrupt"):
        get_extractor("inception", weights=tmp_path / "junk.pth")


def test_inception_without_resize_takes_only_299(inception_file):
    extractor = get_extractor("inception", weights=inception_file[0], resize=False)
    with pytest.raises(DataError, match="resize=True"):
        extractor(torch.rand(1, 3, 28, 28))


def test_raw_flattens_to_float64():
    raw = get_extractor("raw")
    x = torch.randn(5, 2, 3)
    features = raw(x)
    assert features.dtype == torch.float64 and features.shape == (5, 6)
    assert raw.feature_dim == 6
    torch.testing.assert_close(features, x.flatten(1).double())
    points = get_extractor("raw", input_shape=(2,))
    assert points.feature_dim == 2
    with pytest.raises(DataError, match=r"input_shape=\(3,\)"):
        points(torch.randn(4, 3))
    with pytest.raises(DataError, match="NaN"):
        raw(torch.tensor([[float("nan")]]))
    assert raw.describe()["extractor"] == "raw"
