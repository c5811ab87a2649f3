"""Writing samples for people and other tools: image grids, scatter plots, arrays, CSV, WAV.

`write_samples` picks the format from the file extension. Every file is written to a
temporary file in the target folder and renamed over the target, so a reader never sees a
half-written file.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from genlab.core.contract import DataSpec
from genlab.core.errors import DataError
from genlab.core.persist import _atomic_replace

SUPPORTED_EXTENSIONS = (".png", ".npy", ".pt", ".csv", ".txt", ".wav")
# Silence between the clips of a .wav file of audio samples, so that they are heard apart.
WAV_GAP_SECONDS = 0.25
# Between samples in a .txt file of text samples.
TEXT_SEPARATOR = "\n\n----------\n\n"
# Tiles smaller than this are enlarged (nearest neighbour) so that 8 x 8 digits stay visible.
MIN_TILE_SIZE = 28


def image_grid(
    x: Tensor, nrow: int | None = None, padding: int = 2, *, scale: int = 1, pad_value: float = 0.5
) -> np.ndarray:
    """Tile images into one picture, row by row.

    Args:
        x: (N, C, H, W) images in [0, 1] with C = 1 or 3; values outside are clipped, NaN is 0.
        nrow: images per row of the grid; defaults to ceil(sqrt(N)).
        padding: pixels between tiles and around the border.
        scale: integer nearest-neighbour enlargement of every tile.
        pad_value: grey level of the padding, in [0, 1].

    Returns:
        uint8 array (rows * (H * scale + padding) + padding, nrow * (W * scale + padding) +
        padding, C).
    """
    if x.ndim != 4 or x.shape[1] not in (1, 3) or x.shape[0] == 0:
        raise DataError(
            f"an image grid needs images (N, C, H, W) with N >= 1 and C = 1 or 3, "
            f"got shape {tuple(x.shape)}"
        )
    if padding < 0 or scale < 1:
        raise DataError(f"image_grid: padding must be >= 0 and scale >= 1, got {padding}, {scale}")
    num, channels, height, width = x.shape
    nrow = math.ceil(math.sqrt(num)) if nrow is None else nrow
    if nrow < 1:
        raise DataError(f"image_grid: nrow must be >= 1, got {nrow}")
    images = np.nan_to_num(x.detach().float().cpu().numpy(), nan=0.0)
    images = np.round(np.clip(images, 0.0, 1.0) * 255).astype(np.uint8)  # (N, C, H, W)
    images = images.repeat(scale, axis=2).repeat(scale, axis=3).transpose(0, 2, 3, 1)
    tile_h, tile_w = height * scale, width * scale
    num_rows = math.ceil(num / nrow)
    grid = np.full(
        (num_rows * (tile_h + padding) + padding, nrow * (tile_w + padding) + padding, channels),
        round(pad_value * 255),
        dtype=np.uint8,
    )
    for i, image in enumerate(images):
        top = padding + (i // nrow) * (tile_h + padding)
        left = padding + (i % nrow) * (tile_w + padding)
        grid[top : top + tile_h, left : left + tile_w] = image
    return grid


def _write_png_grid(x: Tensor, path: Path, nrow: int | None) -> None:
    from PIL import Image

    scale = max(1, math.ceil(MIN_TILE_SIZE / min(x.shape[2], x.shape[3])))
    grid = image_grid(x, nrow, scale=scale)
    picture = Image.fromarray(grid[:, :, 0] if grid.shape[2] == 1 else grid)
    _atomic_replace(path, lambda tmp: picture.save(tmp, format="PNG"))


def _write_png_scatter(x: Tensor, spec: DataSpec, path: Path, reference: Tensor | None) -> None:
    # A bare Figure with the Agg canvas: no pyplot global state, no display backend needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if reference is not None:
        ref = reference.detach().float().cpu().numpy().reshape(len(reference), -1)
        ax.scatter(ref[:, 0], ref[:, 1], s=2, c="lightgrey", label="data")
    points = x.detach().float().cpu().numpy()
    ax.scatter(points[:, 0], points[:, 1], s=2, c="C0", alpha=0.6, label="samples")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("x0")
    ax.set_ylabel("x1")
    if spec.name:
        ax.set_title(spec.name)
    if reference is not None:
        ax.legend(loc="upper right", markerscale=4)
    fig.tight_layout()
    _atomic_replace(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))


def _write_csv(x: Tensor, spec: DataSpec, path: Path) -> None:
    rows = x.detach().cpu().numpy()
    names = [f"x{i}" for i in range(rows.shape[1])]
    if spec.columns is not None and len(spec.columns) == len(names):
        names = [str(column.get("name", default)) for column, default in zip(spec.columns, names)]
    # Nine significant digits reproduce every float32 exactly.
    fmt = "%d" if rows.dtype.kind in "iub" else "%.9g"

    def write(tmp: str) -> None:
        np.savetxt(tmp, rows, fmt=fmt, delimiter=",", header=",".join(names), comments="")

    _atomic_replace(path, write)


def preview_suffix(spec: DataSpec) -> str:
    """The file type for a run's sample previews: a picture where there is one, else data.

    ".png" for images and 2-D points, ".txt" for text, ".wav" for audio (a sequence data set
    with a sample rate), ".npy" for everything else (series, tables and points of other sizes).
    """
    from genlab.data.audio import sample_rate_of

    if sample_rate_of(spec) is not None:
        return ".wav"
    if spec.modality == "image" or (spec.modality == "points" and spec.shape == (2,)):
        return ".png"
    if spec.modality == "text" and spec.tokenizer is not None:
        return ".txt"
    return ".npy"


def write_samples(
    x: Tensor,
    spec: DataSpec,
    path: str | Path,
    *,
    nrow: int | None = None,
    reference: Tensor | None = None,
) -> Path:
    """Write samples to `path` in the format its extension names.

    `.png`: an image grid for images, a scatter plot for 2-D points (with `reference`, e.g.
    the training data, in light grey underneath); `.npy`: a numpy array; `.pt`: the tensor,
    for `torch.load`; `.csv`: one row per sample with a header (x0, x1, ... or the table's
    column names), for points, table rows and token sequences; `.txt`: text samples decoded
    through the spec's tokenizer, separated by a line of dashes; `.wav`: audio samples (N, T, C)
    in [-1, 1] as one 16-bit PCM file at the data's sample rate, the clips played one after
    another with WAV_GAP_SECONDS of silence between them.

    Args:
        x: (N, *spec.shape) samples in the data set's space (images in [0, 1]).
        spec: the data set's spec; its modality chooses the picture.
        path: the file to write; parent folders are created.
        nrow: images per row of a grid; defaults to ceil(sqrt(N)).
        reference: (M, 2) points drawn beneath a scatter plot, or None.

    Returns:
        The path written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        raise DataError(
            f"cannot write samples to {path}: unknown extension {path.suffix or '(none)'!r}; "
            f"use one of {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    if suffix == ".png":
        if spec.modality == "image":
            if x.ndim != 4:
                raise DataError(f"images to write must be (N, C, H, W), got {tuple(x.shape)}")
            _write_png_grid(x, path, nrow)
        elif spec.modality == "points" and x.ndim == 2 and x.shape[1] == 2:
            _write_png_scatter(x, spec, path, reference)
        else:
            raise DataError(
                f"cannot draw {spec.modality} samples of shape {tuple(x.shape)} as a PNG: PNG is "
                "for images and 2-D points; write .npy, .pt or .csv instead"
            )
    elif suffix == ".npy":
        array = x.detach().cpu().numpy()

        def write_npy(tmp: str) -> None:
            # A file object, because np.save would append ".npy" to the temporary name.
            with open(tmp, "wb") as f:
                np.save(f, array)

        _atomic_replace(path, write_npy)
    elif suffix == ".pt":
        tensor = x.detach().cpu().contiguous()
        _atomic_replace(path, lambda tmp: torch.save(tensor, tmp))
    elif suffix == ".txt":
        if spec.modality != "text" or spec.tokenizer is None:
            raise DataError(
                f".txt holds decoded text, but these are {spec.modality} samples; write .npy, "
                ".pt or .csv instead"
            )
        from genlab.data.text import decode_batch

        text = TEXT_SEPARATOR.join(decode_batch(spec, x.detach().cpu())) + "\n"
        _atomic_replace(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    elif suffix == ".wav":
        from genlab.data.audio import sample_rate_of, write_wav

        rate = sample_rate_of(spec)
        if rate is None:
            raise DataError(
                f".wav holds audio, but these {spec.modality} samples come from a data set with "
                "no sample rate (only the audio source records one); write .npy, .pt or .csv"
            )
        if x.ndim != 3:
            raise DataError(f"audio samples to write must be (N, T, C), got {tuple(x.shape)}")
        write_wav(path, x.detach().float().cpu(), rate, gap_seconds=WAV_GAP_SECONDS)
    else:
        if x.ndim != 2 or spec.modality == "image":
            raise DataError(
                f"CSV holds one row per sample of a flat (N, D) tensor, got {spec.modality} "
                f"samples of shape {tuple(x.shape)}; write .png, .npy or .pt instead"
            )
        _write_csv(x, spec, path)
    return path
