"""ngram vs charrnn vs gpt on Tiny Shakespeare (characters) at an equal compute budget.

Data: ../shared/data/tinyshakespeare.txt through genlab's `text` source, char tokenizer, the
first 90% of the characters train and the last 10% validation (the split of nanoGPT's
shakespeare_char). Training windows: 65 characters at every offset (stride 1); the ngram
counts the train stream itself.

Validation perplexity: exp of the mean NLL per token over all non-overlapping validation
blocks of 65 characters, each token given the tokens before it in its block (64 scored per
block, the first is context; every genlab sequence model's `log_likelihood` convention).

Budget: each neural model trains for `--budget` seconds (120 by default) of CPU time on one
thread. CPU time, not wall time, because this machine is shared: under other jobs' load a
wall-clock budget measures the load, while the CPU seconds of a single-threaded process are
what it would take on an idle core. The step count is calibrated first (20 timed steps after 5
warm-up steps on a throwaway copy), so the cosine schedule ends at the budget; the CPU seconds
actually used are reported. The ngram "just fits": it needs one counting pass (its CPU
seconds are reported); its order (3..8, modified Kneser-Ney) is chosen on the last 10% of the
train stream with counts from the first 90%, then refitted on the whole train stream; the
validation perplexity of every order is listed too.

Models: charrnn 2-layer LSTM, 256 hidden, 64-d embeddings (batch 32, lr 3e-3, warm-up 50,
cosine); gpt with the model and train sections of configs/gpt_shakespeare.yaml (gpt's tuned
run on this data; context 64), the step count set by the budget. The resolved configs are
recorded in the results.

Resumable: finished models are recorded in benchmarks/runs/shakespeare_lm_equal_time/
partial.json and saved under .../<model>/model. Writes benchmarks/results/
shakespeare_lm_equal_time.{json,md} (..._quick with --quick: a 6-second budget).

Usage: python benchmarks/shakespeare_lm_equal_time.py [--quick] [--threads 1] [--budget 120]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHAKESPEARE = HERE.parents[1] / "shared" / "data" / "tinyshakespeare.txt"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="a tiny end-to-end run (< 1 min)")
    parser.add_argument("--budget", type=float, default=120.0, help="CPU seconds per model")
    parser.add_argument("--path", default=str(SHAKESPEARE))
    return parser.parse_args()


ARGS = parse_args()
os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)

import torch  # noqa: E402

sys.path.insert(0, str(HERE))
from results_io import write_results  # noqa: E402

import genlab  # noqa: E402
from genlab.core.config import config_to_dict, load_run_config  # noqa: E402

BLOCK = 65
NGRAM_ORDERS = (3, 4, 5, 6, 7, 8)


def gpt_sections() -> tuple[dict, dict]:
    """The model and train sections of configs/gpt_shakespeare.yaml, gpt's tuned run on this
    data (steps, checkpoints and device are set here)."""
    path = ROOT / "configs" / "gpt_shakespeare.yaml"
    if not path.exists():
        return {}, {"batch_size": 12, "lr": 2e-3, "warmup_steps": 50}
    sections = load_run_config(path)
    model = {k: v for k, v in sections["model"].items() if k != "name"}
    train = dict(sections["train"])
    for key in ("steps", "checkpoint_every", "progress", "max_seconds", "device"):
        train.pop(key, None)
    return model, train


def neural_setups() -> dict[str, tuple[dict, dict]]:
    return {
        "charrnn": (
            {"cell": "lstm", "hidden": 256, "embed_dim": 64, "num_layers": 2},
            {"batch_size": 32, "lr": 3e-3, "warmup_steps": 50, "grad_clip": 1.0},
        ),
        "gpt": gpt_sections(),
    }


def perplexity(model, blocks: torch.Tensor) -> tuple[float, float]:
    """(perplexity, NLL per token) over the blocks."""
    nats = []
    for rows in blocks.split(256):
        ll = model.log_likelihood(rows)
        nats.append(ll.nats.double())
    nll = -float(torch.cat(nats).sum()) / (blocks.shape[0] * (blocks.shape[1] - 1))
    return math.exp(nll), nll


def train_config(train_section: dict, steps: int, checkpoint_every: int) -> genlab.TrainConfig:
    section = {
        "precision": "fp32",
        "seed": 0,
        **train_section,
        "steps": steps,
        "device": "cpu",
        "checkpoint_every": checkpoint_every,
        "num_samples": 0,
        "progress": False,
    }
    return genlab.TrainConfig(**section)


def calibrate(name: str, model_cfg: dict, train_section: dict, train, budget: float) -> dict:
    """Steps that fill the budget: CPU seconds per step over 20 steps after 5 warm-up steps."""
    torch.manual_seed(0)
    probe = genlab.create(name, spec=train.spec, **model_cfg)
    probe.fit(train, train_config(train_section, 5, 0))
    start = time.process_time()
    probe.fit(train, train_config(train_section, 20, 0))
    per_step = (time.process_time() - start) / 20
    return {"cpu_seconds_per_step": per_step, "steps": max(int(budget / per_step), 1)}


def main() -> None:
    torch.set_num_threads(ARGS.threads)
    quick = ARGS.quick
    budget = 6.0 if quick else ARGS.budget
    name = "shakespeare_lm_equal_time_quick" if quick else "shakespeare_lm_equal_time"
    runs = HERE / "runs" / name
    runs.mkdir(parents=True, exist_ok=True)
    partial_path = runs / "partial.json"
    partial = json.loads(partial_path.read_text()) if partial_path.exists() else {}

    train = genlab.data.load("text", split="train", path=ARGS.path, block_size=BLOCK, stride=1)
    val = genlab.data.load("text", split="test", path=ARGS.path, block_size=BLOCK)
    blocks = val.x[:64] if quick else val.x

    for model_name in ("ngram", "charrnn", "gpt"):
        if model_name in partial:
            print(f"{model_name}: done before, skipped", flush=True)
            continue
        wall = time.perf_counter()
        if model_name == "ngram":
            tokens = train.info["tokens"]
            cut = int(0.9 * len(tokens))
            held = tokens[cut:]
            held = held[: len(held) // BLOCK * BLOCK].reshape(-1, BLOCK)
            orders = NGRAM_ORDERS[:3] if quick else NGRAM_ORDERS
            holdout, val_by_order = {}, {}
            for order in orders:
                part = genlab.create("ngram", spec=train.spec, order=order).fit(tokens[:cut])
                holdout[order] = perplexity(part, held)[0]
                full = genlab.create("ngram", spec=train.spec, order=order)
                cpu = time.process_time()
                full.fit(train)
                fit_cpu = time.process_time() - cpu
                val_by_order[order] = {
                    "val_perplexity": perplexity(full, blocks)[0],
                    "fit_cpu": fit_cpu,
                }
            order = min(holdout, key=holdout.get)
            record = {
                "order": order,
                "fit_cpu_seconds": val_by_order[order]["fit_cpu"],
                "holdout_perplexity_by_order": holdout,
                "val_perplexity_by_order": {
                    k: v["val_perplexity"] for k, v in val_by_order.items()
                },
            }
            record["val_perplexity"] = val_by_order[order]["val_perplexity"]
            record["val_nll"] = math.log(record["val_perplexity"])
        else:
            model_cfg, train_section = neural_setups()[model_name]
            run = runs / model_name
            if (run / "model" / "model.json").exists():
                model = genlab.load(run / "model")
                record = json.loads((run / "train.json").read_text())
            else:
                record = calibrate(model_name, model_cfg, train_section, train, budget)
                torch.manual_seed(0)
                model = genlab.create(model_name, spec=train.spec, **model_cfg)
                steps = record["steps"]
                config = train_config(train_section, steps, max(steps // 4, 1))
                cpu, start = time.process_time(), time.perf_counter()
                model.fit(train, config, run_dir=run, resume=True)
                record["train_cpu_seconds"] = time.process_time() - cpu
                record["train_wall_seconds"] = time.perf_counter() - start
                record["batch_size"] = config.batch_size
                record["model_config"] = config_to_dict(model.config)
                record["train_config"] = config_to_dict(config)
                model.save(run / "model")
                (run / "train.json").write_text(json.dumps(record))
            record["val_perplexity"], record["val_nll"] = perplexity(model, blocks)
        record["wall_seconds_total"] = time.perf_counter() - wall
        partial[model_name] = record
        partial_path.write_text(json.dumps(partial, indent=2))
        print(f"{model_name}: val perplexity {record['val_perplexity']:.3f}", flush=True)

    figures: dict = {
        "data": str(ARGS.path),
        "budget_cpu_seconds": budget,
        "val_blocks": int(blocks.shape[0]),
        "block_size": BLOCK,
        "vocab_size": train.spec.discrete_levels,
    }
    table = []
    for model_name in ("ngram", "charrnn", "gpt"):
        r = partial[model_name]
        for key, value in r.items():
            figures[f"{model_name}_{key}"] = value
        if model_name == "ngram":
            how = f"order {r['order']}, fit {r['fit_cpu_seconds']:.1f} CPU s"
        else:
            how = (
                f"{r['steps']} steps of batch {r['batch_size']}, "
                f"{r['train_cpu_seconds']:.0f} CPU s ({r['train_wall_seconds']:.0f} s wall)"
            )
        table.append(
            (
                f"{model_name} ({how}): val perplexity / NLL per char (nats)",
                f"{r['val_perplexity']:.3f} / {r['val_nll']:.4f}",
            )
        )
    by_order = partial["ngram"]["val_perplexity_by_order"]
    table.append(
        (
            "ngram val perplexity by order",
            ", ".join(f"{k}: {v:.3f}" for k, v in by_order.items()),
        )
    )
    path = write_results(name, figures, table)
    print(path.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
