"""The one registry of model names and presets.

A model registers its class and its config dataclass under one name; a preset is a named
partial config of a registered model (`dcgan` is a preset of `gan`). `create` resolves either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from genlab.core.config import build_config
from genlab.core.contract import DataSpec, GenerativeModel
from genlab.core.errors import ConfigError, GenlabError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    cls: type
    config_cls: type
    summary: str
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)


_MODELS: dict[str, ModelEntry] = {}
_PRESETS: dict[str, tuple[str, dict[str, Any]]] = {}


def register(
    name: str,
    config_cls: type,
    summary: str,
    presets: dict[str, dict[str, Any]] | None = None,
):
    """Class decorator: register a model class with its config dataclass and presets."""

    def wrap(cls: type) -> type:
        if name in _MODELS or name in _PRESETS:
            raise ValueError(f"model name {name!r} registered twice")
        entry = ModelEntry(name, cls, config_cls, summary, dict(presets or {}))
        _MODELS[name] = entry
        for preset, values in entry.presets.items():
            if preset in _MODELS or preset in _PRESETS:
                raise ValueError(f"preset name {preset!r} registered twice")
            _PRESETS[preset] = (name, values)
        cls.name = name
        return cls

    return wrap


def _ensure_loaded() -> None:
    # Importing the families package runs every @register decorator exactly once.
    import genlab.families  # noqa: F401


def list_models() -> dict[str, ModelEntry]:
    """All registered models by name (presets are in each entry's `presets`)."""
    _ensure_loaded()
    return dict(sorted(_MODELS.items()))


def resolve(name: str) -> tuple[ModelEntry, dict[str, Any]]:
    """The model entry and preset values for a model or preset name."""
    _ensure_loaded()
    if name in _MODELS:
        return _MODELS[name], {}
    if name in _PRESETS:
        base, values = _PRESETS[name]
        return _MODELS[base], dict(values)
    known = sorted(list(_MODELS) + list(_PRESETS))
    raise GenlabError(f"unknown model {name!r}; known models and presets: {', '.join(known)}")


def make_config(name: str, overrides: dict[str, Any] | None = None) -> tuple[ModelEntry, Any]:
    """The entry and the frozen config for `name` with preset values and `overrides` applied."""
    entry, values = resolve(name)
    values.update(overrides or {})
    return entry, build_config(entry.config_cls, values, where=f"model {entry.name}")


def create(name: str, spec: DataSpec | None = None, **config: Any) -> GenerativeModel:
    """Create a model (or preset) by name with config overrides.

    Neural models need the data spec to size their networks (`spec=data.spec`); classical
    models take it from the data at `fit`.

    Example:
        >>> data = genlab.data.load("moons")
        >>> model = genlab.create("vae", spec=data.spec, latent_dim=2)
    """
    entry, cfg = make_config(name, config)
    if getattr(entry.cls, "needs_spec", True) and spec is None:
        raise ConfigError(
            f"model {entry.name} sizes its network from the data: pass spec=data.spec "
            f"(e.g. genlab.create({name!r}, spec=genlab.data.load('moons').spec))"
        )
    return entry.cls(cfg, spec)
