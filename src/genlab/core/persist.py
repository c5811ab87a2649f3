"""Saving and loading models without pickle: `model.json` + `weights.safetensors`.

Every write goes to a temporary file in the same folder and is renamed over the target, so an
interrupted save never leaves a half-written file where a good one stood.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from genlab.core.errors import CheckpointError, GenlabError

MODEL_FORMAT_VERSION = 1
MODEL_JSON = "model.json"
WEIGHTS_FILE = "weights.safetensors"


def move_aside(path: Path) -> Path:
    """Rename a file or folder that --force replaces to `NAME.replaced-TIME[.EXT]` beside it
    (a file keeps its extensions, so it still opens as before); nothing is deleted.
    Returns the new path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if path.is_dir():
        backup = path.with_name(f"{path.name}.replaced-{stamp}")
    else:
        stem, dot, ext = path.name.partition(".")
        backup = path.with_name(f"{stem}.replaced-{stamp}{dot}{ext}")
    path.rename(backup)
    return backup


def _atomic_replace(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write text to `path` through a temporary file and a rename."""

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)

    _atomic_replace(path, write)


def atomic_save_tensors(
    path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    """Save tensors with safetensors through a temporary file and a rename."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    _atomic_replace(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def atomic_torch_save(path: Path, obj: Any) -> None:
    """`torch.save` of plain containers of tensors and numbers, through a rename."""
    _atomic_replace(path, lambda tmp: torch.save(obj, tmp))


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file with a clear error when it is missing or corrupt."""
    if not path.exists():
        raise CheckpointError(f"{path} is missing: the model folder is incomplete; save it again")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(
            f"{path} is corrupt or not a safetensors file ({e}); use another checkpoint or retrain"
        ) from None


def safe_torch_load(path: Path) -> Any:
    """`torch.load` with `weights_only=True` (never unpickles arbitrary objects)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing: the checkpoint is incomplete") from None
    except Exception as e:  # torch raises several types for corrupt archives
        raise CheckpointError(
            f"{path} is corrupt or holds more than tensors ({type(e).__name__}: {e}); "
            "use an earlier checkpoint"
        ) from None


def read_model_json(directory: Path) -> dict[str, Any]:
    """Read and check `model.json`: exists, parses, and is not from a newer format."""
    path = directory / MODEL_JSON
    if not directory.exists():
        raise CheckpointError(
            f"{directory} does not exist: give a run folder or a saved model folder"
        )
    if not path.exists():
        raise CheckpointError(
            f"{directory} has no {MODEL_JSON}: it is not a saved genlab model "
            "(give the run folder's model/ or the run folder itself)"
        )
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is corrupt ({e}); save the model again") from None
    if not isinstance(meta, dict) or "model" not in meta:
        raise CheckpointError(f"{path} is not a genlab model description")
    version = meta.get("format_version", 0)
    if version > MODEL_FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer genlab (format {version}, this one reads up to "
            f"{MODEL_FORMAT_VERSION}): upgrade genlab (pip install -U genlab)"
        )
    return meta


def model_description(model) -> dict[str, Any]:
    from genlab import __version__
    from genlab.core.config import config_to_dict

    return {
        "format_version": MODEL_FORMAT_VERSION,
        "genlab_version": __version__,
        "model": model.name,
        "config": config_to_dict(model.config),
        "spec": model.spec.to_json(),
    }


def save_model(model, directory: Path) -> Path:
    """Write the model's description and state; returns the folder."""
    if getattr(model, "spec", None) is None:
        raise GenlabError(
            f"this {model.name} model has no data spec yet: fit the model first, or create it "
            "with spec=data.spec"
        )
    directory.mkdir(parents=True, exist_ok=True)
    atomic_save_tensors(directory / WEIGHTS_FILE, model.export_state(), {"model": model.name})
    atomic_write_text(directory / MODEL_JSON, json.dumps(model_description(model), indent=2))
    return directory


def load_model(directory: str | Path, expected_model: str | None = None):
    """Rebuild a saved model from its folder (no training data needed).

    Accepts a saved model folder or a run folder (whose `model/` holds the final model).
    """
    from genlab.core.contract import DataSpec
    from genlab.core.registry import make_config

    directory = Path(directory)
    if (directory / "model" / MODEL_JSON).exists() and not (directory / MODEL_JSON).exists():
        directory = directory / "model"
    meta = read_model_json(directory)
    if expected_model is not None and meta["model"] != expected_model:
        raise CheckpointError(
            f"{directory} holds a '{meta['model']}' model, not '{expected_model}': "
            "point to a checkpoint of the same model"
        )
    try:
        entry, config = make_config(meta["model"], meta.get("config", {}))
    except GenlabError as e:
        raise CheckpointError(
            f"{directory / MODEL_JSON} describes a '{meta['model']}' model whose config does not "
            f"fit this genlab's '{meta['model']}' ({e}); the file was edited or comes from "
            "another version"
        ) from None
    spec = DataSpec.from_json(meta["spec"])
    model = entry.cls(config, spec)
    model.import_state(read_tensors(directory / WEIGHTS_FILE))
    if isinstance(model, torch.nn.Module):
        model.eval()
    return model
