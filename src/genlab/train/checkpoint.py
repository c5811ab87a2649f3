"""Training checkpoints: weights as safetensors, everything else as plain tensors and JSON.

A checkpoint is a folder `checkpoints/step-0000100/` with
  model.safetensors  the live weights,
  ema.safetensors    the averaged weights (when EMA is on),
  state.pt           optimizer, scheduler, data-order and RNG state (tensors and numbers only,
                     read back with `torch.load(weights_only=True)`),
  meta.json          model name, its config, step, format version.
The folder is written under a temporary name and renamed into place, and `checkpoints/latest`
names the newest one, so a crash mid-write never damages the last good checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from genlab.core.errors import CheckpointError
from genlab.core.persist import (
    MODEL_FORMAT_VERSION,
    atomic_save_tensors,
    atomic_torch_save,
    atomic_write_text,
    read_tensors,
    safe_torch_load,
)

CHECKPOINT_FORMAT_VERSION = 1


def checkpoint_name(step: int) -> str:
    return f"step-{step:07d}"


def save_checkpoint(
    folder: Path,
    step: int,
    *,
    model_name: str,
    model_config: dict[str, Any],
    weights: dict,
    ema_weights: dict | None,
    state: dict[str, Any],
    keep: int,
) -> Path:
    """Write checkpoint `step` into `folder` atomically; keep the newest `keep` of them."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / checkpoint_name(step)
    tmp = folder / f".tmp-{checkpoint_name(step)}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    atomic_save_tensors(tmp / "model.safetensors", weights)
    if ema_weights is not None:
        atomic_save_tensors(tmp / "ema.safetensors", ema_weights)
    atomic_torch_save(tmp / "state.pt", state)
    meta = {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "model_format_version": MODEL_FORMAT_VERSION,
        "model": model_name,
        "config": model_config,
        "step": step,
    }
    atomic_write_text(tmp / "meta.json", json.dumps(meta, indent=2))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    atomic_write_text(folder / "latest", final.name + "\n")
    for old in sorted(p for p in folder.glob("step-*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint folder, or None."""
    pointer = folder / "latest"
    if pointer.exists():
        candidate = folder / pointer.read_text().strip()
        if (candidate / "meta.json").exists():
            return candidate
    found = sorted(p for p in folder.glob("step-*") if (p / "meta.json").exists())
    return found[-1] if found else None


def load_checkpoint(path: Path, *, model_name: str) -> dict[str, Any]:
    """Read a checkpoint folder, checking it belongs to `model_name` and a known format."""
    meta_path = path / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} is not a checkpoint (no meta.json)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(
            f"{meta_path} is corrupt ({e}): delete {path} to resume from an earlier checkpoint"
        ) from None
    version = meta.get("format_version", 0)
    if version > CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer genlab (checkpoint format {version}, this one reads "
            f"up to {CHECKPOINT_FORMAT_VERSION}): upgrade genlab to resume it"
        )
    if meta.get("model") != model_name:
        raise CheckpointError(
            f"{path} is a checkpoint of a '{meta.get('model')}' model, not '{model_name}': "
            "resume with the model it was trained as, or start a new run folder"
        )
    ema_path = path / "ema.safetensors"
    return {
        "meta": meta,
        "weights": read_tensors(path / "model.safetensors"),
        "ema": read_tensors(ema_path) if ema_path.exists() else None,
        "state": safe_torch_load(path / "state.pt"),
    }
