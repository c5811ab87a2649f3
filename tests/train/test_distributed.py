"""The one loop under torchrun: 2 CPU processes (gloo) equal one process on the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

WORKER = str(Path(__file__).with_name("ddp_worker.py"))


def run_worker(out: Path, *args: str, nproc: int = 1) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    if nproc == 1:
        cmd = [sys.executable, WORKER, str(out), *args]
    else:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            WORKER,
            str(out),
            *args,
        ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def max_abs_diff(a: Path, b: Path) -> float:
    wa, wb = load_file(a), load_file(b)
    assert wa.keys() == wb.keys()
    return max(float((wa[k] - wb[k]).abs().max()) for k in wa)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
def test_two_processes_equal_one_with_the_same_global_batch(tmp_path):
    run_worker(tmp_path / "single.safetensors", "--batch-size", "16")
    run_worker(
        tmp_path / "ddp.safetensors",
        "--batch-size",
        "8",
        "--run-dir",
        str(tmp_path / "run"),
        nproc=2,
    )
    assert max_abs_diff(tmp_path / "single.safetensors", tmp_path / "ddp.safetensors") < 1e-5
    # Only rank 0 wrote the run folder, once.
    assert (tmp_path / "run" / "metrics.jsonl").exists()
    steps = [line for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(steps) == 3  # log_every=10 over 30 steps, rank 0 only


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
def test_resume_under_ddp_continues_exactly(tmp_path):
    run_worker(tmp_path / "full.safetensors", "--batch-size", "8", nproc=2)
    run_dir = str(tmp_path / "run")
    run_worker(
        tmp_path / "part.safetensors",
        "--batch-size",
        "8",
        "--run-dir",
        run_dir,
        "--stop-after-one",
        nproc=2,
    )
    run_worker(
        tmp_path / "resumed.safetensors",
        "--batch-size",
        "8",
        "--run-dir",
        run_dir,
        "--resume",
        nproc=2,
    )
    assert max_abs_diff(tmp_path / "full.safetensors", tmp_path / "resumed.safetensors") == 0.0
