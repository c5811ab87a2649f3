"""A training run from a three-section config to a run folder, shared by the CLI and the API.

Run folder layout: config.yaml (fully resolved), data_spec.json, model/ (model.json and
weights.safetensors), checkpoints/, metrics.jsonl, samples/, plots/, eval/.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
import yaml

from genlab.core.config import (
    build_config,
    config_to_dict,
    load_run_config,
    read_yaml,
    to_plain,
)
from genlab.core.contract import ClassicalModel, DataSpec, NeuralModel
from genlab.core.errors import ConfigError, GenlabError
from genlab.core.persist import atomic_write_text, move_aside
from genlab.core.registry import create, make_config
from genlab.data import load as load_data
from genlab.data import resolve_source, source_options
from genlab.data.dataset import Dataset
from genlab.train.config import TrainConfig
from genlab.train.distributed import barrier, init_from_env

CONFIG_FILE = "config.yaml"


def resolve_sections(
    sections: dict[str, dict[str, Any]], model_name: str | None = None, data_name: str | None = None
) -> dict[str, dict[str, Any]]:
    """Fill every field of the three sections with its value or default, checking each key."""
    model = dict(sections.get("model", {}))
    name = model.pop("name", None)
    if model_name and name and model_name != name:
        raise ConfigError(f"the command names model {model_name!r} but the config says {name!r}")
    name = model_name or name
    if not name:
        raise ConfigError("no model given: name one (genlab train vae ...) or set model.name")
    entry, model_cfg = make_config(name, model)

    data = dict(sections.get("data", {}))
    dname = data_name or data.pop("name", None)
    data.pop("name", None)
    if not dname:
        raise ConfigError("no data given: pass --data NAME (e.g. --data mnist5k) or set data.name")
    dname, implied = resolve_source(dname)
    data = {**implied, **data}
    defaults = source_options(dname)
    unknown = sorted(set(data) - set(defaults))
    if unknown:
        raise ConfigError(
            f"data {dname}: unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(defaults)) or 'none'}"
        )
    train_cfg = build_config(TrainConfig, sections.get("train", {}), where="train")
    return {
        "model": {"name": name, **config_to_dict(model_cfg)},
        "data": to_plain({"name": dname, **defaults, **data}),
        "train": config_to_dict(train_cfg),
    }


def build_from_sections(
    resolved: dict[str, dict[str, Any]], split: str = "train"
) -> tuple[Any, Dataset, TrainConfig]:
    """Load the data split and create the (unfitted) model the resolved config describes."""
    data_opts = dict(resolved["data"])
    data = load_data(data_opts.pop("name"), split=split, **data_opts)
    model_opts = dict(resolved["model"])
    train_cfg = build_config(TrainConfig, resolved["train"], where="train")
    torch.manual_seed(train_cfg.seed)  # the initial weights follow from the run's seed
    model = create(model_opts.pop("name"), spec=data.spec, **model_opts)
    return model, data, train_cfg


def prepare_run_dir(out: Path, *, resume: bool, force: bool) -> None:
    """Refuse to overwrite a run folder; --force moves the old one aside (nothing is deleted)."""
    if resume and force:
        raise ConfigError("--resume continues a run and --force replaces it: give only one")
    exists = out.exists() and any(out.iterdir())
    if resume:
        if not (out / CONFIG_FILE).exists():
            raise GenlabError(
                f"cannot resume {out}: it has no {CONFIG_FILE}. Start a new run there instead"
            )
        return
    if exists and not force:
        raise GenlabError(
            f"run folder {out} already exists: pass --resume to continue it, --force to move it "
            "aside and start again, or choose another --out"
        )
    if exists and force:
        backup = move_aside(out)
        print(f"moved the existing {out} to {backup}")
    out.mkdir(parents=True, exist_ok=True)


def train_run(
    model_name: str | None,
    *,
    data_name: str | None,
    out: str | Path,
    config_path: str | Path | None = None,
    overrides: tuple[str, ...] | list[str] = (),
    resume: bool = False,
    force: bool = False,
) -> tuple[Any, Path, dict[str, Any]]:
    """Train a model into run folder `out`; returns (model, run folder, summary)."""
    out = Path(out)
    dist_info = init_from_env()  # under torchrun: rank 0 owns the run folder
    if dist_info.is_main:
        prepare_run_dir(out, resume=resume, force=force)
    barrier(dist_info)
    if resume:
        saved = read_yaml(out / CONFIG_FILE)
        if config_path is not None:
            raise ConfigError("--resume reads the run's own config.yaml; drop --config")
        sections = load_run_config(None, ())
        sections.update({k: dict(saved.get(k) or {}) for k in sections})
        sections = _apply(sections, overrides)
        if model_name and model_name != sections["model"].get("name"):
            raise ConfigError(
                f"{out} trains model {sections['model'].get('name')!r}, not {model_name!r}"
            )
        resolved = resolve_sections(sections)
        for section in ("model", "data"):
            if resolved[section] != saved.get(section):
                raise ConfigError(
                    f"--set changes the {section} of the run in {out}; a resumed run can change "
                    "only train.* settings (e.g. train.steps): start a new run for another "
                    f"{section}"
                )
    else:
        sections = load_run_config(config_path, tuple(overrides))
        resolved = resolve_sections(sections, model_name, data_name)
    model, data, train_cfg = build_from_sections(resolved)
    if dist_info.is_main:
        atomic_write_text(out / CONFIG_FILE, yaml.safe_dump(resolved, sort_keys=False))
        data.spec.save(out / "data_spec.json")

    start = time.perf_counter()
    if isinstance(model, NeuralModel):
        from genlab.train.loop import fit

        result = fit(model, data, train_cfg, run_dir=out, resume=resume)
        summary = {"steps": result.steps, "stopped": result.stopped, **result.last_logs}
    elif isinstance(model, ClassicalModel):
        model.fit(data, train_cfg)
        _write_final_samples(model, train_cfg, out)
        summary = {"stopped": "completed"}
    else:  # a registry entry that is neither: a programming error, not a user error
        raise TypeError(f"{type(model).__name__} is neither a NeuralModel nor a ClassicalModel")
    summary["train_seconds"] = round(time.perf_counter() - start, 3)
    if dist_info.is_main:
        model.save(out / "model")
    barrier(dist_info)
    return model, out, summary


def _apply(sections: dict[str, dict[str, Any]], overrides) -> dict[str, dict[str, Any]]:
    extra = load_run_config(None, tuple(overrides))
    for s, values in extra.items():
        sections[s].update(values)
    return sections


def _write_final_samples(model, train_cfg: TrainConfig, out: Path) -> None:
    import torch

    from genlab.data.writers import preview_suffix, write_samples

    if train_cfg.num_samples:
        x = model.sample(
            train_cfg.num_samples, generator=torch.Generator().manual_seed(train_cfg.seed)
        )
        write_samples(x, model.spec, out / "samples" / f"final{preview_suffix(model.spec)}")


def load_run(run_dir: str | Path) -> tuple[Any, dict[str, Any], DataSpec]:
    """The trained model of a run folder, its resolved config and its data spec."""
    from genlab.core.persist import load_model

    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise GenlabError(f"run folder {run_dir} does not exist: check the path")
    config = read_yaml(run_dir / CONFIG_FILE) if (run_dir / CONFIG_FILE).exists() else {}
    model = load_model(run_dir)
    return model, config, model.spec
