"""The `audio` source and the WAV writer, on small WAV files written here."""

import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import wavfile

import genlab
from genlab.core.errors import DataError
from genlab.data import load, resolve_source
from genlab.data.audio import read_wav, read_wav_format, sample_rate_of, write_wav


def _wav_header(tag: int, channels: int, rate: int, bits: int, data: bytes) -> bytes:
    """A minimal RIFF/WAVE file: 'fmt ' (16 bytes) and 'data' chunks."""
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_write_then_read_round_trip_is_exact_on_the_16_bit_grid(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(-32768, 32768, size=1000) / 32768.0
    path = write_wav(tmp_path / "a.wav", torch.from_numpy(x).float(), 16000)
    fmt = read_wav_format(path)
    assert (fmt.format_tag, fmt.channels, fmt.sample_rate, fmt.bits_per_sample) == (1, 1, 16000, 16)
    assert fmt.num_frames == 1000
    back, rate, clipped = read_wav(path)
    assert rate == 16000 and clipped == 0 and back.dtype == np.float32
    np.testing.assert_array_equal(back, x.astype(np.float32))
    # any float in [-1, 1] comes back within half a 16-bit step; values beyond are clipped
    y = np.concatenate([rng.uniform(-1, 1, 500), [1.0, -1.0, 1.7, -3.0]])
    back, _, _ = read_wav(write_wav(tmp_path / "b.wav", y, 8000))
    assert np.abs(back[:500] - y[:500]).max() <= 0.5 / 32768 + 1e-9
    assert back[500] == 32767 / 32768 and back[501] == -1.0
    assert back[502] == 32767 / 32768 and back[503] == -1.0


def test_clips_are_written_one_after_another_with_gaps(tmp_path):
    clips = torch.stack([torch.full((10, 1), 0.5), torch.full((10, 1), -0.25)])  # (N, T, C)
    back, rate, _ = read_wav(write_wav(tmp_path / "c.wav", clips, 100, gap_seconds=0.05))
    expected = np.concatenate([np.full(10, 0.5), np.zeros(5), np.full(10, -0.25)])
    np.testing.assert_array_equal(back, expected.astype(np.float32))
    with pytest.raises(DataError, match="sample_rate"):
        write_wav(tmp_path / "d.wav", clips, 0)
    with pytest.raises(DataError, match="finite"):
        write_wav(tmp_path / "d.wav", np.array([0.0, np.nan]), 100)


@pytest.mark.parametrize(
    ("dtype", "raw", "expected"),
    [
        (np.uint8, [0, 128, 255, 64], [-1.0, 0.0, 127 / 128, -0.5]),
        (np.int16, [-32768, 0, 16384, 32767], [-1.0, 0.0, 0.5, 32767 / 32768]),
        (np.int32, [-(2**31), 0, 2**30, 2**31 - 1], [-1.0, 0.0, 0.5, 1.0]),
        (np.float32, [-1.0, 0.0, 0.25, 1.0], [-1.0, 0.0, 0.25, 1.0]),
    ],
)
def test_reads_pcm_8_16_32_and_float_scaled_to_unit_range(tmp_path, dtype, raw, expected):
    path = tmp_path / "x.wav"
    wavfile.write(path, 22050, np.array(raw, dtype=dtype))
    samples, rate, _ = read_wav(path)
    assert rate == 22050
    np.testing.assert_allclose(samples, np.array(expected, dtype=np.float32), atol=1e-7)


def test_float_values_beyond_one_are_clipped_and_counted(tmp_path):
    path = tmp_path / "loud.wav"
    wavfile.write(path, 8000, np.array([0.5, 1.5, -2.0, 0.0] * 50, dtype=np.float32))
    samples, _, clipped = read_wav(path)
    assert clipped == 100 and samples.max() == 1.0 and samples.min() == -1.0
    data = load(str(path), window=10)
    assert data.info["clipped"] == 100


def test_stereo_is_averaged_or_refused(tmp_path):
    path = tmp_path / "stereo.wav"
    left = np.full(100, 16384, dtype=np.int16)
    right = np.full(100, -8192, dtype=np.int16)
    wavfile.write(path, 8000, np.stack([left, right], axis=1))
    samples, _, _ = read_wav(path)
    np.testing.assert_allclose(samples, 0.125)
    with pytest.raises(DataError, match="stereo='mean'"):
        load(str(path), window=10, stereo="error")
    assert load(str(path), window=10).x.shape == (9, 10, 1)


def test_windows_split_by_time_with_the_sample_rate_in_the_spec(tmp_path):
    values = (np.arange(1000) - 500).astype(np.int16)
    wavfile.write(tmp_path / "ramp.wav", 16000, values)
    path = str(tmp_path / "ramp.wav")
    assert resolve_source(path) == ("audio", {"path": path})
    train = load(path, window=100, stride=50)  # first 900 samples
    test = load(path, "test", window=50)  # last 100, back-to-back windows
    assert train.x.shape == ((900 - 100) // 50 + 1, 100, 1) and test.x.shape == (2, 50, 1)
    assert train.x.dtype == torch.float32
    ramp = torch.from_numpy(values / 32768.0).float()
    assert torch.equal(train.x[3, :, 0], ramp[150:250])
    assert torch.equal(test.x[1, :, 0], ramp[950:1000])
    assert float(train.x.max()) < float(ramp[900])  # no train window reaches the test part
    spec = train.spec
    assert spec.modality == "sequence" and spec.shape == (100, 1)
    assert spec.value_range == (-1.0, 1.0) and sample_rate_of(spec) == 16000
    assert train.info["sample_rate"] == 16000 and train.info["files"] == ["ramp.wav"]
    assert torch.equal(train.info["series"][:, 0], ramp[:900])
    # the spec survives a JSON round trip, so a run folder keeps the rate
    assert sample_rate_of(type(spec).from_json(spec.to_json())) == 16000
    with pytest.raises(DataError, match="window <= 100"):
        load(path, "test", window=200)


def test_a_folder_of_wavs_must_share_one_rate(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    wavfile.write(folder / "a.wav", 8000, np.zeros(200, dtype=np.int16))
    wavfile.write(folder / "b.wav", 8000, np.ones(300, dtype=np.int16))
    data = genlab.data.load(str(folder), window=60)
    # per file: train 180 and 270 samples -> 3 + 4 windows
    assert data.x.shape == (7, 60, 1) and data.info["files"] == ["a.wav", "b.wav"]
    wavfile.write(folder / "c.wav", 16000, np.zeros(200, dtype=np.int16))
    with pytest.raises(DataError, match="resample"):
        genlab.data.load(str(folder), window=60)


def test_unsupported_wavs_are_clear_errors(tmp_path):
    def write(name: str, content: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(content)
        return path

    pcm24 = write("pcm24.wav", _wav_header(1, 1, 8000, 24, bytes(3 * 100)))
    with pytest.raises(DataError, match="24-bit PCM.*pcm_s16le"):
        load(str(pcm24))
    adpcm = write("adpcm.wav", _wav_header(2, 1, 8000, 4, bytes(100)))
    with pytest.raises(DataError, match="compressed.*ADPCM"):
        load(str(adpcm))
    mp3 = write("mp3.wav", _wav_header(0x55, 2, 44100, 0, bytes(100)))
    with pytest.raises(DataError, match="MP3"):
        read_wav(mp3)
    not_wav = write("noise.wav", b"ID3\x03" + bytes(100))
    with pytest.raises(DataError, match="not a WAV file"):
        load(str(not_wav))
    no_data = _wav_header(1, 1, 8000, 16, b"")
    no_data = no_data[: no_data.index(b"data")]
    with pytest.raises(DataError, match="no 'data' chunk"):
        read_wav(write("nodata.wav", no_data))
    empty = write("empty.wav", _wav_header(1, 1, 8000, 16, b""))
    with pytest.raises(DataError, match="no samples"):
        read_wav(empty)
    # a valid 16-bit file is read by the same path
    good = write("good.wav", _wav_header(1, 1, 8000, 16, struct.pack("<4h", 0, 16384, -16384, 0)))
    samples, rate, _ = read_wav(good)
    assert rate == 8000 and samples.tolist() == [0.0, 0.5, -0.5, 0.0]


def test_bad_options_are_reported(tmp_path):
    wavfile.write(tmp_path / "a.wav", 8000, np.zeros(100, dtype=np.int16))
    path = str(tmp_path / "a.wav")
    with pytest.raises(DataError, match="window"):
        load(path, window=0)
    with pytest.raises(DataError, match="train_fraction"):
        load(path, train_fraction=1.0)
    with pytest.raises(DataError, match="stereo"):
        load(path, stereo="left")
    with pytest.raises(DataError, match="does not exist"):
        load("audio", path=str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .wav files"):
        load("audio", path=str(tmp_path / "empty"))
