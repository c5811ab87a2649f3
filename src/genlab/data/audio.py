"""WAV audio as float32 windows (N, T, 1) in [-1, 1]: the `audio` source, and a WAV writer.

Reading. `load("audio", path=...)` (or `load("song.wav")`, or a folder of .wav files) reads
RIFF/RIFX WAV files through `scipy.io.wavfile`, after checking the header itself, because
scipy quietly widens 24-bit PCM into int32 and the bit depth would then be lost. Supported:

    PCM 8-bit (unsigned), 16-bit and 32-bit (signed); IEEE float 32- and 64-bit;
    plain or WAVE_FORMAT_EXTENSIBLE headers.

Everything else is a `DataError` that names the format and a conversion that fixes it:
24-bit PCM, compressed codecs (ADPCM, mu-law/A-law WAV, MP3-in-WAV, ...), files that are not
RIFF/WAVE, headers without a 'fmt ' or 'data' chunk, and empty files.

Samples are scaled to [-1, 1]: 8-bit as (s - 128) / 128, 16-bit as s / 32768, 32-bit as
s / 2**31; float files are taken as they are, and values outside [-1, 1] are clipped (their
count is in `info["clipped"]`). Stereo and other multi-channel files are averaged to mono with
`stereo="mean"` (the default) or refused with `stereo="error"`. There is no resampling: every
file of a folder must share one sample rate, which is recorded in the spec
(`spec.columns[0]["sample_rate"]`, read it with `sample_rate_of(spec)`) and in
`info["sample_rate"]`.

Splitting and windows, as the time-series sources do (genlab.data.sequences): each file is split
by time, its first `floor(train_fraction * L)` samples train and the rest test; windows of
`window` samples start every `stride` samples within each part (none straddles the split or two
files) and are stacked into x float32 (N, window, 1), modality "sequence",
`spec.value_range = (-1, 1)`. `info["series"]` is the split's parts of every file
concatenated, float32 (L_split, 1).

Writing. `write_wav(path, x, sample_rate)` writes 16-bit PCM (what every player reads): values
are clipped to [-1, 1], multiplied by 32768, rounded and clipped to int16, so reading a 16-bit
file and writing it back is exact.
"""

from __future__ import annotations

import math
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from genlab.core.contract import DataSpec
from genlab.core.errors import DataError
from genlab.core.persist import _atomic_replace
from genlab.data import source
from genlab.data.dataset import Dataset

WAV_SUFFIX = ".wav"
FORMAT_PCM = 0x0001
FORMAT_FLOAT = 0x0003
FORMAT_EXTENSIBLE = 0xFFFE
# Format tags people meet in practice, to name them in errors.
FORMAT_NAMES = {
    0x0002: "Microsoft ADPCM",
    0x0006: "A-law",
    0x0007: "mu-law",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10",
    0x0050: "MPEG",
    0x0055: "MP3",
    0x00FF: "AAC",
    0x2000: "AC-3",
}
SUPPORTED_BITS = {FORMAT_PCM: (8, 16, 32), FORMAT_FLOAT: (32, 64)}
CONVERT_HINT = "convert it to 16-bit PCM, e.g. `ffmpeg -i in.wav -c:a pcm_s16le out.wav`"


@dataclass(frozen=True)
class WavFormat:
    """What a WAV header says: format tag (1 PCM, 3 float), channels, rate and bit depth."""

    format_tag: int
    channels: int
    sample_rate: int
    bits_per_sample: int
    num_frames: int


def read_wav_format(path: str | Path) -> WavFormat:
    """Parse a WAV file's RIFF header ('fmt ' and 'data' chunks) without reading the samples.

    Raises:
        DataError: not a RIFF/WAVE file, a missing or truncated chunk, or an unsupported format
            (24-bit PCM, compressed codecs), with the fix in the message.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[8:12] != b"WAVE" or head[:4] not in (b"RIFF", b"RIFX"):
                raise DataError(
                    f"{path} is not a WAV file (no RIFF/WAVE header); give a .wav file, or "
                    f"{CONVERT_HINT}"
                )
            endian = "<" if head[:4] == b"RIFF" else ">"
            fmt = None
            data_bytes = None
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    break
                chunk_id, size = chunk[:4], struct.unpack(endian + "I", chunk[4:])[0]
                if chunk_id == b"fmt ":
                    body = f.read(size)
                    if len(body) < 16:
                        raise DataError(
                            f"{path}: its 'fmt ' chunk is truncated; the file is damaged"
                        )
                    fmt = struct.unpack(endian + "HHIIHH", body[:16])
                    if fmt[0] == FORMAT_EXTENSIBLE:
                        if len(body) < 26:
                            raise DataError(
                                f"{path}: its extensible 'fmt ' chunk is truncated; the file is "
                                "damaged"
                            )
                        # The real format is the first two bytes of the sub-format GUID.
                        fmt = (struct.unpack(endian + "H", body[24:26])[0], *fmt[1:])
                    if size % 2:
                        f.seek(1, 1)
                elif chunk_id == b"data":
                    data_bytes = size
                    break
                else:
                    f.seek(size + size % 2, 1)  # chunks are padded to an even size
    except OSError as e:
        raise DataError(f"{path} cannot be read ({e}); check the path and permissions") from None
    if fmt is None:
        raise DataError(f"{path}: no 'fmt ' chunk before the samples; the WAV header is damaged")
    if data_bytes is None:
        raise DataError(f"{path}: no 'data' chunk; the WAV file holds no samples or is damaged")
    tag, channels, rate, _, block_align, bits = fmt
    if tag not in SUPPORTED_BITS:
        name = FORMAT_NAMES.get(tag, "an unknown codec")
        raise DataError(
            f"{path} is a compressed or unsupported WAV (format tag 0x{tag:04X}, {name}); genlab "
            f"reads PCM 8/16/32-bit and float 32/64-bit WAV: {CONVERT_HINT}"
        )
    if bits not in SUPPORTED_BITS[tag]:
        kind = "PCM" if tag == FORMAT_PCM else "float"
        raise DataError(
            f"{path} is {bits}-bit {kind}, which genlab does not read (PCM 8/16/32-bit and float "
            f"32/64-bit only): {CONVERT_HINT}"
        )
    if channels < 1 or rate < 1:
        raise DataError(f"{path}: the header says {channels} channels at {rate} Hz; it is damaged")
    frames = data_bytes // max(block_align, 1)
    return WavFormat(tag, channels, rate, bits, frames)


def read_wav(
    path: str | Path, *, stereo: Literal["mean", "error"] = "mean"
) -> tuple[np.ndarray, int, int]:
    """One WAV file as mono float32 samples in [-1, 1].

    Args:
        path: a .wav file (formats in the module docstring).
        stereo: "mean" averages the channels of a multi-channel file; "error" refuses it.

    Returns:
        (samples float32 (L,), sample rate in Hz, number of float values clipped to [-1, 1]).
    """
    path = Path(path)
    fmt = read_wav_format(path)
    if fmt.channels > 1 and stereo == "error":
        raise DataError(
            f"{path} has {fmt.channels} channels and stereo='error': pass stereo='mean' to "
            "average them to mono, or give a mono file"
        )
    from scipy.io import wavfile

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", wavfile.WavFileWarning)  # unknown chunks are fine
            rate, data = wavfile.read(path)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{path} cannot be read as WAV ({e}): {CONVERT_HINT}") from None
    if data.dtype == np.uint8:
        samples = (data.astype(np.float32) - 128.0) / 128.0
    elif data.dtype == np.int16:
        samples = data.astype(np.float32) / 32768.0
    elif data.dtype == np.int32:
        samples = (data.astype(np.float64) / 2.0**31).astype(np.float32)
    elif data.dtype in (np.float32, np.float64):
        samples = data.astype(np.float32)
    else:
        raise DataError(f"{path}: scipy read samples of dtype {data.dtype}: {CONVERT_HINT}")
    if samples.ndim == 2:
        samples = samples.mean(axis=1, dtype=np.float32)
    if samples.size == 0:
        raise DataError(f"{path} holds no samples; give a WAV file with audio in it")
    if not np.isfinite(samples).all():
        raise DataError(f"{path} holds NaN or infinite samples; the file is damaged")
    clipped = int(np.count_nonzero(np.abs(samples) > 1.0))
    return np.clip(samples, -1.0, 1.0), int(rate), clipped


def write_wav(
    path: str | Path, x: Tensor | np.ndarray, sample_rate: int, *, gap_seconds: float = 0.0
) -> Path:
    """Write float samples in [-1, 1] to a 16-bit PCM WAV file.

    Args:
        path: the .wav file to write (parent folders are created; written atomically).
        x: (T,) mono, (T, C) C channels, or (N, T, C) N clips played one after another.
        sample_rate: in Hz (the data's rate: `sample_rate_of(spec)`).
        gap_seconds: silence between the N clips of a (N, T, C) input.

    Returns:
        The path written.
    """
    array = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 1:
        raise DataError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
    if not math.isfinite(gap_seconds) or gap_seconds < 0:
        raise DataError(f"gap_seconds must be 0 or more, got {gap_seconds!r}")
    if array.ndim == 1:
        array = array[:, None]
    elif array.ndim == 3:
        gap = np.zeros((round(gap_seconds * sample_rate), array.shape[2]), dtype=array.dtype)
        pieces = []
        for i, clip in enumerate(array):
            pieces += [gap, clip] if i else [clip]
        array = np.concatenate(pieces) if pieces else np.zeros((0, array.shape[2]), array.dtype)
    if array.ndim != 2 or array.shape[1] < 1:
        raise DataError(f"audio to write must be (T,), (T, C) or (N, T, C), got {array.shape}")
    if not np.issubdtype(array.dtype, np.floating) or not np.isfinite(array).all():
        raise DataError("audio to write must be finite float samples in [-1, 1]")
    pcm = np.clip(np.round(np.clip(array, -1.0, 1.0) * 32768.0), -32768, 32767).astype(np.int16)
    from scipy.io import wavfile

    path = Path(path)
    _atomic_replace(
        path,
        lambda tmp: wavfile.write(tmp, sample_rate, pcm.squeeze(1) if pcm.shape[1] == 1 else pcm),
    )
    return path


def sample_rate_of(spec: DataSpec) -> int | None:
    """The sample rate (Hz) an `audio` data set recorded in its spec, or None."""
    if spec.columns and isinstance(spec.columns[0], dict):
        rate = spec.columns[0].get("sample_rate")
        return int(rate) if rate is not None else None
    return None


def _wav_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(
        p
        for p in path.iterdir()
        if p.is_file() and p.suffix.lower() == WAV_SUFFIX and not p.name.startswith(".")
    )


def is_audio_path(path: Path) -> bool:
    """A .wav file, or a folder holding .wav files directly."""
    if path.is_file():
        return path.suffix.lower() == WAV_SUFFIX
    return path.is_dir() and bool(_wav_files(path))


def _check_int(option: str, value: Any, minimum: int, example: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DataError(
            f"data set audio: {option} must be an integer >= {minimum}, got {value!r}; pass e.g. "
            f"{example}"
        )


@source("audio", matches_path=is_audio_path)
def audio(
    split: str,
    *,
    path: str = "",
    window: int = 4096,
    stride: int = 0,
    train_fraction: float = 0.9,
    stereo: str = "mean",
) -> Dataset:
    """A .wav file or a folder of .wav files as float32 windows (N, window, 1) in [-1, 1].

    Args:
        split: "train" (the first `train_fraction` of every file) or "test" (the rest).
        path: a .wav file, or a folder whose .wav files (not subfolders) are read in name order.
        window: samples T per window.
        stride: samples between the starts of consecutive windows; 0 means `window`
            (back-to-back windows).
        train_fraction: the train part's share of each file, strictly in (0, 1).
        stereo: "mean" averages multi-channel files to mono; "error" refuses them.

    Returns:
        Dataset with x float32 (N, window, 1), spec modality "sequence", value range (-1, 1),
        `spec.columns = ({"name": "audio", "sample_rate": rate},)`; `info` holds
        "sample_rate", "files", "series" (the split's samples, (L_split, 1)) and "clipped".
    """
    _check_int("window", window, 1, "window=4096")
    _check_int("stride", stride, 0, "stride=0 (back-to-back windows)")
    if (
        isinstance(train_fraction, bool)
        or not isinstance(train_fraction, (int, float))
        or not 0 < train_fraction < 1
    ):
        raise DataError(
            f"data set audio: train_fraction must be a number strictly between 0 and 1, got "
            f"{train_fraction!r}; pass e.g. train_fraction=0.9"
        )
    if stereo not in ("mean", "error"):
        raise DataError(f"data set audio: stereo must be 'mean' or 'error', got {stereo!r}")
    if not path:
        raise DataError("data set audio: give a .wav file or a folder of them with path=...")
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"{root} does not exist: check the path")
    files = _wav_files(root)
    if not files:
        raise DataError(f"{root} holds no .wav files; give a .wav file or a folder of them")
    stride = stride or window
    rate = None
    parts, windows, clipped = [], [], 0
    for file in files:
        samples, file_rate, file_clipped = read_wav(file, stereo=stereo)  # type: ignore[arg-type]
        if rate is None:
            rate = file_rate
        elif file_rate != rate:
            raise DataError(
                f"{file.name} is sampled at {file_rate} Hz but {files[0].name} at {rate} Hz; "
                "genlab does not resample: convert the files to one rate first"
            )
        clipped += file_clipped
        num_train = math.floor(train_fraction * len(samples))
        part = samples[:num_train] if split == "train" else samples[num_train:]
        parts.append(part)
        count = (len(part) - window) // stride + 1 if len(part) >= window else 0
        if count:
            starts = np.arange(count) * stride
            windows.append(part[starts[:, None] + np.arange(window)[None, :]])
    if not windows:
        longest = max(len(p) for p in parts)
        raise DataError(
            f"{root.name}: no {split} window of {window} samples fits (the longest {split} part "
            f"of a file has {longest} samples at train_fraction={train_fraction}); use "
            f"window <= {max(longest, 1)} or longer files"
        )
    x = np.concatenate(windows)[:, :, None]  # (N, T, 1)
    spec = DataSpec(
        modality="sequence",
        shape=(window, 1),
        name=root.stem,
        columns=({"name": "audio", "sample_rate": rate},),
        value_range=(-1.0, 1.0),
    )
    info = {
        "sample_rate": rate,
        "files": [f.name for f in files],
        "series": torch.from_numpy(np.concatenate(parts)[:, None].astype(np.float32)),
        "clipped": clipped,
    }
    return Dataset(
        x=torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), spec=spec, info=info
    )
