"""SIGKILL mid-epoch, then --resume: the continuation is bitwise equal to an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from safetensors.torch import load_file

SETTINGS = [
    "model.hidden=[256, 256]",
    "model.latent_dim=4",
    "model.dropout=0.1",  # dropout draws from the checkpointed global RNG
    "data.num_samples=3000",
    "train.steps=300",
    "train.batch_size=64",  # 3000 rows / (64 * 2) → 23 steps an epoch: checkpoints fall mid-epoch
    "train.grad_accum=2",
    "train.ema_decay=0.99",
    "train.checkpoint_every=25",
    "train.keep_checkpoints=50",
    "train.log_every=1",
    "train.num_samples=0",
    "train.progress=false",
]


def _train(out: Path, *extra: str) -> subprocess.Popen:
    args = [
        sys.executable,
        "-m",
        "genlab.cli",
        "train",
        "vae",
        "--data",
        "moons",
        "--out",
        str(out),
    ]
    for s in SETTINGS:
        args += ["--set", s]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [*args, *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _losses(run: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss/main"] for r in rows}


def test_sigkill_then_resume_is_bitwise_equal(tmp_path):
    full = _train(tmp_path / "full")
    killed = _train(tmp_path / "killed")
    latest = tmp_path / "killed" / "checkpoints" / "latest"
    deadline = time.time() + 120
    while not latest.exists() and killed.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert full.wait(timeout=300) == 0, full.stderr.read().decode()

    resumed_from = int(latest.read_text().strip().split("-")[1])
    assert resumed_from < 300 and (resumed_from * 2) % 23 != 0  # killed mid-run, mid-epoch
    resumed = _train(tmp_path / "killed", "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()

    a, b = _losses(tmp_path / "full"), _losses(tmp_path / "killed")
    following = range(resumed_from + 1, resumed_from + 21)
    assert [a[s] for s in following] == [b[s] for s in following]
    assert sorted(b) == list(range(1, 301))  # the log reads as one run: no gaps, no repeats
    wa = load_file(tmp_path / "full" / "model" / "weights.safetensors")
    wb = load_file(tmp_path / "killed" / "model" / "weights.safetensors")
    assert all((wa[k] == wb[k]).all() for k in wa)
