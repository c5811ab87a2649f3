"""Writing benchmark results: flat self-describing keys plus the command, date and machine."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    return {
        "machine_cores": os.cpu_count(),
        "machine_cpu": platform.processor() or platform.machine(),
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python_version": platform.python_version(),
    }


def write_results(name: str, figures: dict[str, Any], table: list[tuple[str, str]]) -> Path:
    """Write results/NAME.json (figures + provenance) and results/NAME.md (a readable table)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        **machine(),
        **figures,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        f"# {name}",
        "",
        f"`{record['command']}` — {record['date']}, "
        f"{record['machine_cores']} cores, torch {record['torch_version']}",
        "",
        "| figure | value |",
        "| --- | --- |",
    ]
    lines += [f"| {k} | {v} |" for k, v in table]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    return path
