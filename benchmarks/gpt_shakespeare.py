"""genlab's GPT against a plain-PyTorch nanoGPT baseline on Tiny Shakespeare, side by side.

Both train in ONE process, interleaved in turns of about the same wall time (the baseline
50 iterations, then genlab until its turn has lasted as long), on one thread, so that load
from other jobs on the machine hits both alike:

- baseline: benchmarks/nanogpt_baseline.py, nanoGPT's published CPU recipe (2000 iterations);
- genlab: `gpt` trained by genlab's own loop, `genlab.train.fit`, with the run config
  configs/gpt_shakespeare.yaml (model defaults plus the train section).

Both are scored on the same 500 fixed windows of 64 (+1) characters of the validation part
(the last 10% of the text; the same split and vocabulary for both, checked), the baseline
every 100 iterations, genlab every `--eval-every` steps. Evaluation time is excluded from
both clocks. The headline figure is

    ratio = (genlab's training wall time to reach the baseline's final validation loss)
            / (the baseline's total training wall time),

with genlab's time linearly interpolated between the two evaluations around the crossing.
Target: ratio <= 0.5. The same ratio in thread CPU time is recorded beside it: on a shared
machine whose load changes during the run (and the baseline trains alone once genlab is done)
it is the steadier figure.

Writes benchmarks/results/gpt_shakespeare.{json,md,png} (the loss-versus-time curves) and the
trained genlab model to benchmarks/runs/gpt_shakespeare/model. Not resumable by design: the
comparison is only fair within one process (about 4 minutes on one thread).

Usage: python benchmarks/gpt_shakespeare.py [--quick] [--threads 1] [--set train.lr=2e-3]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--quick", action="store_true", help="100 baseline iterations, 30 genlab steps"
    )
    parser.add_argument("--config", default=str(ROOT / "configs" / "gpt_shakespeare.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--eval-every", type=int, default=25, help="genlab steps between evals")
    parser.add_argument("--val-windows", type=int, default=500)
    parser.add_argument(
        "--no-baseline",
        type=float,
        default=None,
        metavar="TARGET",
        help="experiments only: skip the baseline, measure the time to reach TARGET val loss",
    )
    parser.add_argument("--name", default=None, help="results name (default gpt_shakespeare)")
    return parser.parse_args()


ARGS = parse_args()
os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)

import torch  # noqa: E402

sys.path.insert(0, str(HERE))
from nanogpt_baseline import (  # noqa: E402
    SHAKESPEARE,
    Baseline,
    Recipe,
    char_splits,
    mean_nll,
    val_windows,
)
from results_io import write_results  # noqa: E402

from genlab.core.config import load_run_config  # noqa: E402
from genlab.train.loop import fit  # noqa: E402
from genlab.train.run import build_from_sections, resolve_sections  # noqa: E402

BASELINE_CHUNK = 50  # baseline iterations per turn (short turns: load changes hit both alike)
BASELINE_EVAL_EVERY = 100


class Clock:
    """Accumulated wall time and CPU time of one side's training (evaluations excluded).

    CPU time is `time.thread_time()` of the thread that trains (each side has its own), which
    load from other processes on a shared machine barely changes.
    """

    def __init__(self) -> None:
        self.total = 0.0
        self.cpu = 0.0
        self._since: tuple[float, float] | None = None

    def start(self) -> None:
        self._since = (time.perf_counter(), time.thread_time())

    def stop(self) -> None:
        if self._since is not None:
            self.total += time.perf_counter() - self._since[0]
            self.cpu += time.thread_time() - self._since[1]
            self._since = None


def time_to_reach(curve: list[dict], target: float, key: str = "seconds") -> float | None:
    """Time `key` at which a val-loss curve first reaches `target` (linear in between)."""
    prev = None
    for point in curve:
        if point["val_loss"] <= target:
            if prev is None:
                return point[key]
            frac = (prev["val_loss"] - target) / (prev["val_loss"] - point["val_loss"])
            return prev[key] + frac * (point[key] - prev[key])
        prev = point
    return None


def main() -> None:
    torch.set_num_threads(ARGS.threads)
    quick = ARGS.quick
    overrides = list(ARGS.overrides)
    overrides.append(f"data.name={SHAKESPEARE}")
    if quick:
        overrides += ["train.steps=30", "train.warmup_steps=5"]
    sections = load_run_config(ARGS.config, tuple(overrides))
    resolved = resolve_sections(sections)
    model, data, train_cfg = build_from_sections(resolved)

    train_ids, val_ids, chars = char_splits()
    if tuple(chars) != tuple(data.spec.vocab or ()):
        raise SystemExit("genlab's char vocabulary differs from the baseline's: not comparable")
    windows = val_windows(val_ids, 200 if quick else ARGS.val_windows, 64)
    recipe = Recipe(max_iters=100, lr_decay_iters=100, warmup_iters=10) if quick else Recipe()
    run_baseline = ARGS.no_baseline is None
    baseline = Baseline(train_ids, len(chars), recipe) if run_baseline else None

    base_clock, gen_clock = Clock(), Clock()
    base_curve: list[dict] = []
    gen_curve: list[dict] = []
    gen_turn, main_turn = threading.Semaphore(0), threading.Semaphore(0)
    state = {"baseline_done": not run_baseline, "genlab_done": False, "chunk": 0.0, "error": None}

    def evaluate_genlab(step: int) -> None:
        model.eval()
        gen_curve.append(
            {
                "step": step,
                "seconds": gen_clock.total,
                "cpu_seconds": gen_clock.cpu,
                "val_loss": mean_nll(lambda ids: model(ids), windows),
            }
        )
        model.train()

    def after_step(step: int) -> None:
        if step % ARGS.eval_every and step != train_cfg.steps:
            return
        gen_clock.stop()
        evaluate_genlab(step)
        if not state["baseline_done"] and gen_clock.total - state["turn_start"] >= state["chunk"]:
            main_turn.release()  # the baseline's turn
            gen_turn.acquire()
            state["turn_start"] = gen_clock.total
        gen_clock.start()

    model.after_step = after_step  # the benchmark's hook: evaluations and turn-taking

    def run_genlab() -> None:
        torch.set_num_threads(ARGS.threads)
        gen_turn.acquire()
        state["turn_start"] = 0.0
        try:
            gen_clock.start()
            fit(model, data, train_cfg)
            gen_clock.stop()
        except BaseException as e:  # re-raised in the main thread
            state["error"] = e
        state["genlab_done"] = True
        main_turn.release()

    worker = threading.Thread(target=run_genlab)
    worker.start()
    print(f"genlab: {resolved['model']} / {resolved['train']}", flush=True)
    while not (state["baseline_done"] and state["genlab_done"]):
        if not state["baseline_done"]:
            base_clock.start()
            baseline.train_iters(BASELINE_CHUNK)
            base_clock.stop()
            state["chunk"] = base_clock.total - state.get("base_turn_start", 0.0)
            state["base_turn_start"] = base_clock.total
            state["baseline_done"] = baseline.done
            if baseline.iter % BASELINE_EVAL_EVERY == 0 or baseline.done:
                baseline.model.eval()
                val = mean_nll(baseline.model, windows)
                baseline.model.train()
                point = {
                    "iter": baseline.iter,
                    "seconds": base_clock.total,
                    "cpu_seconds": base_clock.cpu,
                    "val_loss": val,
                }
                base_curve.append(point)
                print(
                    f"baseline {baseline.iter:5d} {base_clock.total:7.1f}s val {val:.4f}",
                    flush=True,
                )
        if not state["genlab_done"]:
            gen_turn.release()
            main_turn.acquire()
            if gen_curve:
                p = gen_curve[-1]
                print(
                    f"genlab   {p['step']:5d} {p['seconds']:7.1f}s val {p['val_loss']:.4f}",
                    flush=True,
                )
    worker.join()
    if state["error"] is not None:
        raise state["error"]

    target = base_curve[-1]["val_loss"] if run_baseline else ARGS.no_baseline
    base_seconds = base_clock.total
    reach = time_to_reach(gen_curve, target)
    ratio = reach / base_seconds if (reach is not None and run_baseline) else None
    reach_cpu = time_to_reach(gen_curve, target, "cpu_seconds")
    ratio_cpu = reach_cpu / base_clock.cpu if (reach_cpu is not None and run_baseline) else None
    name = ARGS.name or ("gpt_shakespeare_quick" if quick else "gpt_shakespeare")
    figures = {
        "baseline_recipe": vars(recipe) if hasattr(recipe, "__dict__") else str(recipe),
        "genlab_config": resolved,
        "threads": ARGS.threads,
        "val_windows": len(windows),
        "baseline_iters": recipe.max_iters if run_baseline else None,
        "baseline_train_seconds": base_seconds if run_baseline else None,
        "baseline_final_val_loss": target,
        "genlab_steps": gen_curve[-1]["step"],
        "genlab_train_seconds": gen_clock.total,
        "genlab_final_val_loss": gen_curve[-1]["val_loss"],
        "genlab_seconds_to_baseline_final_val": reach,
        "ratio_genlab_time_to_baseline_loss_over_baseline_time": ratio,
        "baseline_train_cpu_seconds": base_clock.cpu if run_baseline else None,
        "genlab_train_cpu_seconds": gen_clock.cpu,
        "genlab_cpu_seconds_to_baseline_final_val": reach_cpu,
        "ratio_cpu_time": ratio_cpu,
        "target_ratio": 0.5,
        "baseline_curve": base_curve,
        "genlab_curve": gen_curve,
    }
    fmt = lambda v, f="{:.1f}": "n/a" if v is None else f.format(v)  # noqa: E731
    write_results(
        name,
        figures,
        [
            ("baseline (nanoGPT CPU recipe) iterations", str(recipe.max_iters)),
            ("baseline train seconds", fmt(base_seconds if run_baseline else None)),
            ("baseline final val loss (target)", f"{target:.4f}"),
            ("genlab steps", str(gen_curve[-1]["step"])),
            ("genlab train seconds", f"{gen_clock.total:.1f}"),
            ("genlab final val loss", f"{gen_curve[-1]['val_loss']:.4f}"),
            ("genlab seconds to reach the target", fmt(reach)),
            ("ratio, wall time (target <= 0.5)", fmt(ratio, "{:.3f}")),
            (
                "baseline / genlab train CPU seconds",
                f"{fmt(base_clock.cpu if run_baseline else None)} / {gen_clock.cpu:.1f}",
            ),
            ("genlab CPU seconds to reach the target", fmt(reach_cpu)),
            ("ratio, thread CPU time", fmt(ratio_cpu, "{:.3f}")),
        ],
    )
    plot(base_curve, gen_curve, target, HERE / "results" / f"{name}.png")
    model.save(HERE / "runs" / name / "model")
    print({k: v for k, v in figures.items() if not k.endswith("curve")})


def plot(base_curve: list[dict], gen_curve: list[dict], target: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, key, what in (
        (axes[0], "seconds", "training wall time (s)"),
        (axes[1], "cpu_seconds", "training thread CPU time (s)"),
    ):
        if base_curve:
            ax.plot(
                [p[key] for p in base_curve],
                [p["val_loss"] for p in base_curve],
                "o-",
                label="nanoGPT CPU recipe (plain PyTorch)",
            )
        ax.plot(
            [p[key] for p in gen_curve],
            [p["val_loss"] for p in gen_curve],
            ".-",
            label="genlab gpt (genlab.train.fit)",
        )
        ax.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target {target:.3f}")
        ax.set_xlabel(f"{what}, one thread, evaluations excluded")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation loss (nats/char)")
    axes[0].set_ylim(top=min(3.5, axes[0].get_ylim()[1]))
    axes[0].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
