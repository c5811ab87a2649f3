"""The inverse-direction cost of flows: samples/s and density evaluations/s, MAF vs IAF vs
coupling flows, as the dimension D grows.

A masked autoregressive flow (MAF) evaluates log p(x) in one pass but samples in D sequential
passes; an inverse autoregressive flow (IAF) is the reverse; coupling flows (RealNVP, NSF with
couplings) take one pass both ways. This benchmark measures it: for each D and each flow, an
untrained model (speed does not depend on the weights) of `LAYERS` layers with conditioner
widths `HIDDEN` draws `N` samples per call (`model.sample`) and scores `N` rows per call
(`model.log_likelihood`). Calls are interleaved across the flows and repeated (after a
warm-up call on 10 rows); the figure is rows per second from the median call time. Single
thread by default. (A run that resumes keeps the cells it finished, with their call times.)

Writes benchmarks/results/flows_sampling_speed.json and .md (the table: flow x D, samples/s,
density rows/s, and the sampling/density ratio). Finished cells are kept in
benchmarks/runs/flows_sampling_speed/partial.json, so an interrupted run resumes.

Usage: python benchmarks/flows_sampling_speed.py [--quick] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import write_results  # noqa: E402

import genlab  # noqa: E402
from genlab.core.contract import DataSpec  # noqa: E402

LAYERS = 5
HIDDEN = (128, 128)
N = 1000
DIMS = (2, 8, 32, 64)
REPEATS = 3
FLOWS = {
    "maf": {},
    "iaf": {},
    "realnvp (coupling)": {},
    "nsf (coupling)": {"kind": "coupling"},
    "nsf (autoregressive)": {"kind": "autoregressive"},
}


def build(label: str, dim: int):
    name = label.split(" ")[0]
    spec = DataSpec("points", (dim,), name=f"gaussian{dim}")
    torch.manual_seed(0)
    model = genlab.create(name, spec=spec, num_layers=LAYERS, hidden=HIDDEN, **FLOWS[label])
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="D in (2, 8), 2 repeats, N=200")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    name = "flows_sampling_speed_quick" if args.quick else "flows_sampling_speed"
    dims = DIMS[:2] if args.quick else DIMS
    repeats = 2 if args.quick else REPEATS
    n = 200 if args.quick else N
    run_dir = Path(__file__).resolve().parent / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    partial_path = run_dir / "partial.json"
    done = json.loads(partial_path.read_text()) if partial_path.exists() else {}

    for dim in dims:
        if all(f"{label}/{dim}" in done for label in FLOWS):
            continue
        models = {label: build(label, dim) for label in FLOWS}
        x = torch.randn(n, dim, generator=torch.Generator().manual_seed(0))
        times: dict[str, dict[str, list[float]]] = {
            label: {"sample": [], "density": []} for label in FLOWS
        }
        for model in models.values():  # warm up on a few rows (the slow directions take
            model.sample(10)  # D passes, so a full-size warm-up call would double the run)
            model.log_likelihood(x[:10])
        for rep in range(repeats):
            for label, model in models.items():
                start = time.perf_counter()
                model.sample(n, generator=torch.Generator().manual_seed(rep))
                times[label]["sample"].append(time.perf_counter() - start)
                start = time.perf_counter()
                model.log_likelihood(x)
                times[label]["density"].append(time.perf_counter() - start)
        for label in FLOWS:
            sample_s = statistics.median(times[label]["sample"])
            density_s = statistics.median(times[label]["density"])
            done[f"{label}/{dim}"] = {
                "samples_per_second": n / sample_s,
                "density_rows_per_second": n / density_s,
                "sample_call_seconds": times[label]["sample"],
                "density_call_seconds": times[label]["density"],
            }
            print(
                f"D={dim} {label}: {n / sample_s:,.0f} samples/s, "
                f"{n / density_s:,.0f} density rows/s",
                flush=True,
            )
        partial_path.write_text(json.dumps(done, indent=1))

    figures: dict = {
        "settings": {
            "layers": LAYERS,
            "hidden": list(HIDDEN),
            "rows_per_call": n,
            "repeats": repeats,
            "dims": list(dims),
            "threads": args.threads,
        }
    }
    table = [
        (
            "setting",
            f"{LAYERS} layers, hidden {HIDDEN}, {n} rows per call, median of the "
            f"interleaved calls (n calls in each row), {args.threads} thread(s)",
        )
    ]
    for dim in dims:
        for label in FLOWS:
            r = done[f"{label}/{dim}"]
            ratio = r["samples_per_second"] / r["density_rows_per_second"]
            figures[f"{label}/D={dim}"] = {**r, "sampling_over_density_speed": ratio}
            table.append(
                (
                    f"D={dim} {label}: samples/s; density rows/s; sampling/density",
                    f"{r['samples_per_second']:,.0f}; {r['density_rows_per_second']:,.0f}; "
                    f"{ratio:.3g} (n={len(r['sample_call_seconds'])})",
                )
            )
    path = write_results(name, figures, table)
    print(path.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
