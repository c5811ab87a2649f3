"""DDP equality: weights after 30 steps with 2 CPU processes (torchrun, gloo, batch 8 each)
versus 1 process (batch 16), same global batch, same seed. Writes results/ddp_equality.json.

Usage: python benchmarks/ddp_equality.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from results_io import write_results  # noqa: E402

from tests.train.test_distributed import max_abs_diff, run_worker  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        run_worker(tmp / "single.safetensors", "--batch-size", "16")
        single_seconds = time.perf_counter() - start
        start = time.perf_counter()
        run_worker(tmp / "ddp.safetensors", "--batch-size", "8", nproc=2)
        ddp_seconds = time.perf_counter() - start
        diff = max_abs_diff(tmp / "single.safetensors", tmp / "ddp.safetensors")
    figures = {
        "ddp_processes": 2,
        "ddp_backend": "gloo",
        "ddp_steps": 30,
        "ddp_global_batch": 16,
        "ddp_grad_accum": 2,
        "ddp_vs_single_max_abs_weight_diff": diff,
        "single_process_job_seconds": round(single_seconds, 2),
        "ddp_job_seconds": round(ddp_seconds, 2),
    }
    path = write_results("ddp_equality", figures, [(k, str(v)) for k, v in figures.items()])
    print(path.read_text())


if __name__ == "__main__":
    main()
