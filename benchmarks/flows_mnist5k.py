"""RealNVP and Glow on mnist5k (8-bit, uniformly dequantized): test bits/dim against time.

Each model trains through genlab's one loop (`genlab.train.fit`) for `--minutes` of training
wall time (default 20) on the 4,000 training images, and its test bits/dim on the 1,000 test
images is measured every tenth of the budget: the curve of test bpd against training time.
Training time excludes the evaluations. The figure is genlab's `log_likelihood` of the 8-bit
test images: with y = (k + u) / 256, u ~ U[0, 1)^D (one draw per image, seed 0),
E_u[log p(y)] - D log 256 is a lower bound on the log-likelihood of the discrete image, so the
bits/dim, -nats / (D ln 2), is an upper bound on the discrete model's (the convention of
Real NVP and Glow). Published full-MNIST references (60,000 images, far longer training):
RealNVP 1.06, Glow 1.05 bpd. Target (issue 9): <= 1.25 bpd on the mnist5k test split.

Schedule. The first 20 steps (5 with --quick) warm up (ActNorm's data init and first calls are
slow, so they are not timed); the next 2.5% of the budget, at the warm-up's end lr, times the
steady speed. The total number of steps is then fixed to what fits the budget, and the lr
follows warm-up and a cosine decay to 0.1x over those steps (training stops at the budget or
the step count, whichever comes first). Timing on the first 20 steps alone, as before, ended
RealNVP's schedule at 8.1 of 12 minutes.

Resumable: every chunk ends with a checkpoint in benchmarks/runs/flows_mnist5k/<model>/ and
the curve so far in state.json there, so a rerun continues where it stopped; a model whose
budget is spent is not retrained. Writes benchmarks/results/flows_mnist5k.json, .md and .png
(the curves), and sample grids (temperature 1.0 and 0.7) into the run folders.

`--set MODEL.FIELD=VALUE` (repeatable) changes a model's configuration and `--name` names the
results and run folder of such a variant, so the default results are kept.

Usage: python benchmarks/flows_mnist5k.py [--quick] [--minutes 20] [--threads 1]
           [--models realnvp,glow] [--set glow.hidden_channels=96 --name flows_mnist5k_glow96]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import RESULTS, write_results  # noqa: E402

import genlab  # noqa: E402
from genlab.data.writers import write_samples  # noqa: E402
from genlab.train.checkpoint import latest_checkpoint, load_checkpoint  # noqa: E402
from genlab.train.loop import fit  # noqa: E402

MODELS = {
    "realnvp": {
        "num_scales": 2,
        "couplings_per_stage": 3,  # the paper's: 3 checkerboard + 3 channel, 4 at the last
        "hidden_channels": 32,
        "preprocess": "logit",
        "logit_alpha": 0.05,
        "marginal_spline_bins": 16,
    },
    "glow": {
        "num_levels": 2,
        "steps_per_level": 4,
        "hidden_channels": 32,
        "preprocess": "logit",
        "logit_alpha": 0.05,
        "marginal_spline_bins": 16,
    },
}
QUICK_MODELS = {
    "realnvp": {
        "num_scales": 2,
        "couplings_per_stage": 1,
        "hidden_channels": 8,
        "marginal_spline_bins": 4,
    },
    "glow": {
        "num_levels": 2,
        "steps_per_level": 1,
        "hidden_channels": 8,
        "marginal_spline_bins": 4,
    },
}
TRAIN = {
    "batch_size": 32,
    "lr": 2e-3,
    "warmup_steps": 50,
    "schedule": "cosine",
    "min_lr_ratio": 0.1,
    "grad_clip": 1.0,
    "ema_decay": 0.0,  # an EMA started before ActNorm's data-dependent init lags for long
    "precision": "fp32",
    "seed": 0,
    "log_every": 10,
    "checkpoint_every": 0,  # only at the end of each chunk, where state.json is written
    "keep_checkpoints": 1,
    "num_samples": 0,
    "progress": False,
}
CALIBRATION_STEPS = 20  # 5 with --quick; a warm-up chunk, not timed
CALIBRATION_SECONDS = 30.0  # the timed chunk, for a 20-minute budget (scaled with the budget)
POINTS = 10  # evaluations over the budget


def test_bits_per_dim(model, test) -> tuple[float, float]:
    """Test bits/dim (one uniform dequantization draw per image, seed 0) and seconds taken."""
    start = time.perf_counter()
    ll = model.log_likelihood(test.x, generator=torch.Generator().manual_seed(0))
    assert ll.kind == "lower_bound"
    return ll.details["bits_per_dim"], time.perf_counter() - start


def train_model(
    name: str, config: dict, train, test, run_dir: Path, budget: float, calibration: int
) -> dict:
    """Train `name` for `budget` seconds in chunks, resuming from run_dir; return its state."""
    state_path = run_dir / "state.json"
    state = (
        json.loads(state_path.read_text())
        if state_path.exists()
        else {"train_seconds": 0.0, "steps": 0, "total_steps": None, "curve": []}
    )
    recorded = state.setdefault("config", None if state_path.exists() else config)
    if recorded != config:  # None: a state from before configs were recorded
        raise SystemExit(
            f"{run_dir} holds a {name} trained with {recorded}, not {config}: move that folder "
            "aside to train this configuration, or give the variant its own --name"
        )
    torch.manual_seed(0)
    model = genlab.create(name, spec=train.spec, **config)
    result_in_this_process = None
    while state["train_seconds"] < budget and (
        state["total_steps"] is None or state["steps"] < state["total_steps"]
    ):
        remaining = budget - state["train_seconds"]
        timing = state["total_steps"] is None and state["steps"] > 0
        if state["total_steps"] is None and not timing:  # warm-up chunk: first-call costs
            steps, seconds = state["steps"] + calibration, remaining
        elif timing:  # timed chunk: as many steps as fit in CALIBRATION_SECONDS, lr flat
            steps, seconds = 10**9, min(remaining, CALIBRATION_SECONDS * budget / 1200)
        else:
            steps, seconds = state["total_steps"], min(remaining, budget / POINTS)
        cfg = genlab.TrainConfig(steps=steps, max_seconds=max(seconds, 1e-3), **TRAIN)
        result = result_in_this_process = fit(model, train, cfg, run_dir=run_dir, resume=True)
        state["train_seconds"] += result.seconds
        if timing:  # the steady speed, without the warm-up chunk's one-off costs
            per_step = result.seconds / max(1, result.steps - state["steps"])
            left = budget - state["train_seconds"]
            state["total_steps"] = result.steps + max(1, int(left / per_step))
        state["steps"] = result.steps
        bpd, eval_seconds = test_bits_per_dim(model, test)
        point = {
            "step": result.steps,
            "train_seconds": round(state["train_seconds"], 2),
            "test_bpd": bpd,
            "train_loss_bpd": result.last_logs.get("main/bpd"),
            "eval_seconds": round(eval_seconds, 2),
        }
        state["curve"].append(point)
        state_path.write_text(json.dumps(state, indent=1))
        print(f"{name}: {json.dumps(point)}", flush=True)
    if not (run_dir / "final" / "model.json").exists():
        if state["curve"] and result_in_this_process is None:  # restore the trained weights
            found = latest_checkpoint(run_dir / "checkpoints")
            model.import_state(load_checkpoint(found, model_name=name)["weights"])
        model.save(run_dir / "final")
    final = genlab.load(run_dir / "final")
    for temperature in (1.0, 0.7):
        x = final.sample(64, generator=torch.Generator().manual_seed(0), temperature=temperature)
        write_samples(x, final.spec, run_dir / f"samples_t{temperature}.png")
    state["num_parameters"] = sum(p.numel() for p in final.parameters())
    return state


def plot_curves(states: dict, budget: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, state in states.items():
        curve = state["curve"]
        ax.plot(
            [p["train_seconds"] / 60 for p in curve],
            [p["test_bpd"] for p in curve],
            marker="o",
            label=name,
        )
    ax.axhline(1.25, color="grey", linestyle="--", label="target 1.25")
    ax.set_xlabel("training minutes (1 CPU thread)")
    ax.set_ylabel("test bits/dim (8-bit, dequantized)")
    ax.set_title(f"mnist5k, budget {budget / 60:.1f} min per model")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny models, 15 s each")
    parser.add_argument("--minutes", type=float, default=20.0, help="training budget per model")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default="realnvp,glow")
    parser.add_argument(
        "--set", action="append", default=[], help="MODEL.FIELD=VALUE, e.g. glow.hidden_channels=96"
    )
    parser.add_argument("--name", default=None, help="results name of a --set variant")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    name = args.name or ("flows_mnist5k_quick" if args.quick else "flows_mnist5k")
    if args.set and not args.name:
        raise SystemExit("--set changes the models: give the variant a --name of its own")
    budget = 15.0 if args.quick else args.minutes * 60
    configs = {k: dict(v) for k, v in (QUICK_MODELS if args.quick else MODELS).items()}
    for item in args.set:
        key, _, value = item.partition("=")
        model_name, _, field = key.partition(".")
        if model_name not in configs or not field or not value:
            raise SystemExit(
                f"--set {item!r}: expected MODEL.FIELD=VALUE, MODEL in {list(configs)}"
            )
        configs[model_name][field] = json.loads(value)
    train = genlab.data.load("mnist5k")
    test = genlab.data.load("mnist5k", split="test")
    if args.quick:
        test = type(test)(test.x[::10], test.spec, test.labels[::10])
    runs = Path(__file__).resolve().parent / "runs" / name
    states = {}
    for model_name in args.models.split(","):
        run_dir = runs / model_name
        run_dir.mkdir(parents=True, exist_ok=True)
        calibration = 5 if args.quick else CALIBRATION_STEPS
        states[model_name] = train_model(
            model_name, configs[model_name], train, test, run_dir, budget, calibration
        )

    plot_path = RESULTS / f"{name}.png"
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot_curves(states, budget, plot_path)
    figures: dict = {
        "budget_seconds_per_model": budget,
        "threads": args.threads,
        "train": TRAIN,
        "test_images": len(test),
        "dequantization": "uniform, y = (k + u) / 256, one draw per test image (seed 0)",
        "likelihood_kind": "lower_bound (bpd is an upper bound on the discrete model's)",
        "plot": str(plot_path.relative_to(RESULTS.parent)),
    }
    table = [
        (
            "setting",
            f"{budget / 60:.1f} min of training per model, {args.threads} thread(s), "
            f"batch {TRAIN['batch_size']}, lr {TRAIN['lr']} (warm-up, cosine); "
            f"test bpd on {len(test)} images",
        )
    ]
    for model_name, state in states.items():
        curve = state["curve"]
        final = curve[-1]
        best = min(p["test_bpd"] for p in curve)
        figures[model_name] = {
            "config": configs[model_name],
            "num_parameters": state["num_parameters"],
            "steps": state["steps"],
            "train_seconds": state["train_seconds"],
            "final_test_bpd": final["test_bpd"],
            "best_test_bpd": best,
            "target_met": final["test_bpd"] <= 1.25,
            "curve": curve,
        }
        table.append(
            (
                f"{model_name} ({state['num_parameters']:,} parameters): final test bpd "
                f"after {state['steps']} steps / {state['train_seconds'] / 60:.1f} min",
                f"{final['test_bpd']:.3f} (target 1.25: "
                f"{'met' if final['test_bpd'] <= 1.25 else 'missed'})",
            )
        )
        table.append(
            (
                f"{model_name} curve (minutes: test bpd)",
                ", ".join(f"{p['train_seconds'] / 60:.1f}: {p['test_bpd']:.3f}" for p in curve),
            )
        )
    path = write_results(name, figures, table)
    print(path.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
