"""Every shipped YAML config resolves field for field (so configs cannot rot silently)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from genlab.core.config import load_run_config
from genlab.train.run import resolve_sections

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
PACKAGED = resources.files("genlab") / "configs" / "demo.yaml"


@pytest.mark.parametrize("path", [*CONFIGS, PACKAGED], ids=lambda p: Path(str(p)).name)
def test_config_resolves(path, monkeypatch):
    monkeypatch.chdir(ROOT)  # data paths in configs are relative to the repository root
    sections = load_run_config(Path(str(path)))
    data_name = str(sections.get("data", {}).get("name", ""))
    if data_name.startswith("../shared/") and not (ROOT / data_name).exists():
        pytest.skip(f"{data_name} (the workplace's shared data) is not beside this checkout")
    resolved = resolve_sections(sections)
    assert set(resolved) == {"model", "data", "train"}
    assert resolved["model"]["name"] and resolved["data"]["name"]


def test_yaml_1_1_exponents_are_numbers():
    # PyYAML reads 3e-4 (no dot) as a string; genlab accepts it where a number is expected.
    resolved = resolve_sections(
        load_run_config(None, ["model.name=gmm", "data.name=moons", "train.lr=3e-4"])
    )
    assert resolved["train"]["lr"] == pytest.approx(3e-4)


@pytest.mark.parametrize("source", __import__("genlab").data.list_sources())
def test_resolved_data_options_survive_yaml(source):
    # config.yaml must read back equal to what was resolved (tuples as lists), or --resume
    # would see a change that was never made.
    import yaml

    from genlab.core.config import to_plain
    from genlab.data import source_options

    resolved = to_plain({"name": source, **source_options(source)})
    assert yaml.safe_load(yaml.safe_dump(resolved)) == resolved
    assert not any(isinstance(v, tuple) for v in resolved.values())
