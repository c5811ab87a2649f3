"""Writing samples: PNG grids and scatter plots, array and CSV round-trips, errors."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.core.contract import DataSpec
from genlab.core.errors import DataError
from genlab.data.writers import image_grid, write_samples

POINTS = DataSpec(modality="points", shape=(2,), name="moons")
MNIST = DataSpec(modality="image", shape=(1, 28, 28), name="mnist5k", value_range=(0.0, 1.0))
DIGITS = DataSpec(modality="image", shape=(1, 8, 8), name="digits", value_range=(0.0, 1.0))


def test_image_grid_layout_and_values():
    x = torch.zeros(5, 1, 3, 4)
    x[1] = 1.0
    x[2] = 2.0  # clipped to 1
    x[3] = float("nan")  # drawn as 0
    grid = image_grid(x, nrow=2, padding=1)
    assert grid.dtype == np.uint8
    assert grid.shape == (3 * (3 + 1) + 1, 2 * (4 + 1) + 1, 1)
    assert (grid[1:4, 1:5] == 0).all()
    assert (grid[1:4, 6:10] == 255).all()
    assert (grid[5:8, 1:5] == 255).all()
    assert (grid[5:8, 6:10] == 0).all()
    assert grid[0, 0, 0] == 128  # padding is mid grey


def test_image_grid_default_nrow_scale_and_rgb():
    grid = image_grid(torch.rand(10, 3, 5, 5), scale=2, padding=2)
    assert grid.shape == (3 * (10 + 2) + 2, 4 * (10 + 2) + 2, 3)


def test_image_grid_rejects_bad_channels():
    with pytest.raises(DataError, match="C = 1 or 3"):
        image_grid(torch.rand(4, 2, 8, 8))


def test_png_grid_is_readable_with_expected_size(tmp_path):
    path = write_samples(torch.rand(16, 1, 28, 28), MNIST, tmp_path / "new" / "grid.png")
    assert path == tmp_path / "new" / "grid.png"
    with Image.open(path) as picture:
        assert picture.mode == "L"
        assert picture.size == (4 * 30 + 2, 4 * 30 + 2)
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_png_grid_upscales_small_images(tmp_path):
    path = write_samples(torch.rand(6, 1, 8, 8), DIGITS, tmp_path / "digits.png", nrow=3)
    tile = 8 * math.ceil(28 / 8)
    with Image.open(path) as picture:
        assert picture.size == (3 * (tile + 2) + 2, 2 * (tile + 2) + 2)
        pixels = np.asarray(picture)
    # Nearest-neighbour: each 4 x 4 block of the first tile is one value.
    first = pixels[2 : 2 + tile, 2 : 2 + tile]
    assert (first == np.repeat(np.repeat(first[::4, ::4], 4, 0), 4, 1)).all()


def test_scatter_png_with_reference(tmp_path):
    x = torch.randn(200, 2)
    path = write_samples(x, POINTS, tmp_path / "scatter.png", reference=torch.randn(500, 2))
    with Image.open(path) as picture:
        picture.load()
        assert picture.width > 100 and picture.height > 100
    write_samples(x, POINTS, tmp_path / "plain.png")
    assert (tmp_path / "plain.png").stat().st_size > 0


@pytest.mark.parametrize("x", [torch.randn(7, 2), torch.rand(3, 1, 8, 8)])
def test_npy_and_pt_round_trip(tmp_path, x):
    spec = POINTS if x.ndim == 2 else DIGITS
    npy = write_samples(x, spec, tmp_path / "samples.npy")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples.npy"]
    assert np.array_equal(np.load(npy), x.numpy())
    pt = write_samples(x, spec, tmp_path / "samples.pt")
    assert torch.equal(torch.load(pt, weights_only=True), x)


def test_csv_round_trip(tmp_path):
    x = torch.randn(9, 2)
    path = write_samples(x, POINTS, tmp_path / "samples.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "x0,x1"
    assert len(lines) == 10
    loaded = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float32)
    assert np.array_equal(loaded, x.numpy())


def test_csv_uses_column_names_and_integer_format(tmp_path):
    spec = DataSpec(modality="tabular", shape=(2,), columns=({"name": "age"}, {"name": "height"}))
    path = write_samples(torch.tensor([[30.0, 1.5]]), spec, tmp_path / "rows.csv")
    assert path.read_text().splitlines()[0] == "age,height"
    tokens = DataSpec(modality="sequence", shape=(3,))
    path = write_samples(torch.tensor([[1, 2, 3]]), tokens, tmp_path / "tokens.csv")
    assert path.read_text().splitlines() == ["x0,x1,x2", "1,2,3"]


def test_unknown_extension_names_supported_ones(tmp_path):
    with pytest.raises(DataError, match=r"\.png, \.npy, \.pt, \.csv"):
        write_samples(torch.randn(3, 2), POINTS, tmp_path / "samples.jpg")
    with pytest.raises(DataError, match="unknown extension"):
        write_samples(torch.randn(3, 2), POINTS, tmp_path / "samples")
    assert list(tmp_path.iterdir()) == []


def test_unsuitable_formats_raise(tmp_path):
    with pytest.raises(DataError, match="write .npy, .pt or .csv"):
        write_samples(torch.randn(3, 5), DataSpec("tabular", (5,)), tmp_path / "rows.png")
    with pytest.raises(DataError, match="CSV"):
        write_samples(torch.rand(2, 1, 8, 8), DIGITS, tmp_path / "digits.csv")


def test_wav_needs_audio_with_a_sample_rate(tmp_path):
    from genlab.data.audio import read_wav
    from genlab.data.writers import WAV_GAP_SECONDS, preview_suffix

    audio = DataSpec(
        modality="sequence", shape=(5, 1), columns=({"name": "audio", "sample_rate": 100},)
    )
    series = DataSpec(modality="sequence", shape=(5, 1))
    assert preview_suffix(audio) == ".wav" and preview_suffix(series) == ".npy"
    x = torch.linspace(-0.5, 0.5, 10).view(2, 5, 1)
    back, rate, _ = read_wav(write_samples(x, audio, tmp_path / "a.wav"))
    gap = round(WAV_GAP_SECONDS * 100)
    assert rate == 100 and back.shape == (10 + gap,)
    np.testing.assert_allclose(back[gap + 5 :], x[1, :, 0].numpy(), atol=1 / 32768)
    with pytest.raises(DataError, match="no sample rate"):
        write_samples(x, series, tmp_path / "b.wav")
    with pytest.raises(DataError, match=r"\(N, T, C\)"):
        write_samples(x[:, :, 0], audio, tmp_path / "c.wav")
