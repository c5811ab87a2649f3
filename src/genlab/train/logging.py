"""The run's JSONL metrics log and its loss-curve plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from genlab.core.persist import atomic_write_text


class MetricsLog:
    """Appends one JSON object per logged step to `metrics.jsonl`.

    On resume from step s, lines after s (written by the interrupted run past its last
    checkpoint) are dropped so the log reads as one uninterrupted run.
    """

    def __init__(self, path: Path | None, *, resume_step: int | None = None):
        self.path = path
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and path.exists():
            kept = [line for line in path.read_text().splitlines() if _step(line) <= resume_step]
            atomic_write_text(path, "".join(line + "\n" for line in kept))
        elif resume_step is None and path.exists():
            path.unlink()

    def write(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def _step(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
        return 0


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All records of a metrics.jsonl file (skipping any torn last line)."""
    records = []
    if not path.exists():
        return records
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def plot_loss_curve(metrics_path: Path, out_path: Path) -> Path | None:
    """Plot every `loss/<key>` series of a metrics log against the step into a PNG."""
    records = [r for r in read_metrics(metrics_path) if "step" in r]
    keys = sorted({k for r in records for k in r if k.startswith("loss/")})
    if not keys:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    tails = []
    for key in keys:
        pts = [(r["step"], r[key]) for r in records if key in r]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=key.removeprefix("loss/"))
        tails += [p[1] for p in pts[len(pts) // 10 :]]
    # The first steps' losses can be orders of magnitude above the rest: zoom on the last 90%.
    low, high = min(tails), max(tails)
    margin = 0.1 * (high - low) or 1.0
    ax.set_ylim(low - margin, high + margin)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(out_path)
    return out_path
