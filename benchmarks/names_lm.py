"""Names: test NLL per character and novelty of sampled names for ngram, charrnn and gpt.

Data: ../shared/data/names.txt (one name per line, 32,033 names) through genlab's `text`
source with the char tokenizer (27 ids: a-z and the newline): the first 90% of the characters
train, the last 10% test (the source's split; the file is ordered by popularity, so the test
names are the rarer ones). Training blocks are windows of 32 characters at every offset
(stride 1); the ngram counts the train stream itself.

Test NLL per character: every model scores the same non-overlapping test blocks of 32
characters, each token given the tokens before it in its block (31 per block, the first is
context), the convention of every genlab sequence model's `log_likelihood`. The newline that
ends a name is scored like any character.

Models (fixed seeds):
- ngram: modified Kneser-Ney; the order (2..7) is chosen on the last 10% of the train stream
  with counts from the first 90%, then refitted on the whole train stream.
- charrnn: 2-layer LSTM, 256 hidden, 64-d embeddings; the one training loop.
- gpt: genlab's GPT defaults (4 layers, 4 heads, 128 dims, context 31); the one training loop.
Both neural models train for a fixed number of steps of batch 64 on one thread; the CPU seconds
of training are recorded.

Sampled names: N = 1000 per model, each the continuation of the prompt "\\n" up to the next
newline (stop="\\n", at most 30 new characters, temperature 1, seed 0). Reported: the share of
the N samples that are a name (non-empty, ended by a newline) not in the training list, with a
95% percentile-bootstrap interval over the N samples (1000 resamples); the share that is such a
novel name and also a real name of the test list; and the share of empty or unterminated
samples. The share of the test list's names not in the training list is the real-data
reference.

Resumable: finished models are recorded in benchmarks/runs/names_lm/partial.json; trained
models are saved under benchmarks/runs/names_lm/<model>/model and training resumes from its
checkpoints. Writes benchmarks/results/names_lm.{json,md} (names_lm_quick with --quick).

Usage: python benchmarks/names_lm.py [--quick] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAMES = HERE.parents[1] / "shared" / "data" / "names.txt"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="a tiny end-to-end run (< 1 min)")
    parser.add_argument("--path", default=str(NAMES))
    return parser.parse_args()


ARGS = parse_args()
os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(HERE))
from results_io import write_results  # noqa: E402

import genlab  # noqa: E402
from genlab.data.text import decode_batch  # noqa: E402
from genlab.metrics.bootstrap import bootstrap_interval  # noqa: E402

BLOCK = 32
NGRAM_ORDERS = (2, 3, 4, 5, 6, 7)
NEURAL = {
    "charrnn": (
        {"cell": "lstm", "hidden": 256, "embed_dim": 64, "num_layers": 2},
        {"lr": 3e-3, "warmup_steps": 20},
    ),
    "gpt": ({}, {"lr": 2e-3, "betas": (0.9, 0.99), "weight_decay": 0.1, "warmup_steps": 20}),
}


def nll_per_char(model, blocks: torch.Tensor) -> float:
    ll = model.log_likelihood(blocks)
    return -float(ll.nats.double().sum()) / (blocks.shape[0] * ll.details["tokens_scored"])


def choose_ngram_order(train) -> tuple[int, dict[int, float]]:
    """The order with the lowest NLL on the last 10% of the train stream (counts from 90%)."""
    tokens = train.info["tokens"]
    cut = int(0.9 * len(tokens))
    held = tokens[cut:]
    held = held[: len(held) // BLOCK * BLOCK].reshape(-1, BLOCK)
    scores = {}
    for order in NGRAM_ORDERS:
        model = genlab.create("ngram", spec=train.spec, order=order).fit(tokens[:cut])
        scores[order] = nll_per_char(model, held)
    return min(scores, key=scores.get), scores


def train_neural(name: str, train, run: Path, steps: int):
    """Train (or load, or resume) one neural model; returns (model, CPU seconds, steps)."""
    model_dir = run / "model"
    if (model_dir / "model.json").exists():
        meta = json.loads((run / "train.json").read_text())
        return genlab.load(model_dir), meta["cpu_seconds"], meta["steps"]
    model_cfg, train_cfg = NEURAL[name]
    torch.manual_seed(0)
    model = genlab.create(name, spec=train.spec, **model_cfg)
    config = genlab.TrainConfig(
        steps=steps,
        batch_size=64,
        grad_clip=1.0,
        precision="fp32",
        device="cpu",
        seed=0,
        checkpoint_every=max(steps // 4, 1),
        num_samples=0,
        progress=False,
        **train_cfg,
    )
    cpu = time.process_time()
    model.fit(train, config, run_dir=run, resume=True)
    cpu = time.process_time() - cpu  # this session's share when it resumed
    model.save(model_dir)
    (run / "train.json").write_text(json.dumps({"cpu_seconds": cpu, "steps": steps}))
    return model, cpu, steps


def sample_names(model, spec, n: int) -> list[str | None]:
    """n names: continuations of "\\n" up to the next newline (None when none came)."""
    g = torch.Generator().manual_seed(0)
    ids = model.sample(n, generator=g, prompt="\n", max_new_tokens=30, stop="\n")
    names: list[str | None] = []
    for text in decode_batch(spec, ids):
        body = text[1:]
        names.append(body[:-1] if body.endswith("\n") else None)
    return names


def name_figures(names: list[str | None], train_names: set[str], test_names: set[str]) -> dict:
    ok = np.array([x is not None and x != "" for x in names])
    novel = np.array([bool(x) and x not in train_names for x in names], dtype=np.float64)
    real_novel = np.array(
        [bool(x) and x not in train_names and x in test_names for x in names], dtype=np.float64
    )
    estimate, low, high = bootstrap_interval(lambda a: a.mean(), novel, num_resamples=1000, seed=0)
    valid = [x for x in names if x]
    return {
        "novel_share": estimate,
        "novel_share_ci95": [low, high],
        "novel_real_share": float(real_novel.mean()),
        "empty_or_unterminated_share": float(1 - ok.mean()),
        "mean_length": float(np.mean([len(x) for x in valid])) if valid else 0.0,
        "examples": valid[:12],
    }


def main() -> None:
    torch.set_num_threads(ARGS.threads)
    quick = ARGS.quick
    name = "names_lm_quick" if quick else "names_lm"
    runs = HERE / "runs" / name
    runs.mkdir(parents=True, exist_ok=True)
    partial_path = runs / "partial.json"
    partial = json.loads(partial_path.read_text()) if partial_path.exists() else {}

    train = genlab.data.load("text", split="train", path=ARGS.path, block_size=BLOCK, stride=1)
    test = genlab.data.load("text", split="test", path=ARGS.path, block_size=BLOCK)
    text = Path(ARGS.path).read_text(encoding="utf-8")
    cut = train.info["char_span"][1]
    train_names = set(text[:cut].split("\n"))
    test_names = set(text[cut:].split("\n")) - {""}
    blocks = test.x[:40] if quick else test.x
    n_samples = 100 if quick else 1000
    steps = 10 if quick else 500

    figures: dict = {
        "data": str(ARGS.path),
        "train_chars": cut,
        "test_blocks": int(blocks.shape[0]),
        "block_size": BLOCK,
        "num_sampled_names": n_samples,
        "vocab_size": train.spec.discrete_levels,
        "test_names_not_in_train_share": float(np.mean([x not in train_names for x in test_names])),
    }
    for model_name in ("ngram", "charrnn", "gpt"):
        if model_name in partial:
            print(f"{model_name}: done before, skipped", flush=True)
            continue
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        if model_name == "ngram":
            order, scores = choose_ngram_order(train)
            model = genlab.create("ngram", spec=train.spec, order=order).fit(train)
            record = {
                "order": order,
                "holdout_nll_by_order": scores,
                "fit_cpu_seconds": time.process_time() - start_cpu,
            }
        else:
            model, cpu, used = train_neural(model_name, train, runs / model_name, steps)
            record = {"train_cpu_seconds": cpu, "train_steps": used, "batch_size": 64}
        record["test_nll_per_char"] = nll_per_char(model, blocks)
        record.update(
            name_figures(sample_names(model, train.spec, n_samples), train_names, test_names)
        )
        record["wall_seconds"] = time.perf_counter() - start_wall
        partial[model_name] = record
        partial_path.write_text(json.dumps(partial, indent=2))
        print(
            f"{model_name}: NLL/char {record['test_nll_per_char']:.4f}, novel "
            f"{record['novel_share']:.3f}, {record['wall_seconds']:.0f} s",
            flush=True,
        )

    table = []
    for model_name in ("ngram", "charrnn", "gpt"):
        r = partial[model_name]
        for key, value in r.items():
            figures[f"{model_name}_{key}"] = value
        if model_name in NEURAL:  # the resolved configs, from the saved model
            meta = json.loads((runs / model_name / "model" / "model.json").read_text())
            figures[f"{model_name}_model_config"] = meta["config"]
            figures[f"{model_name}_train_settings"] = {"batch_size": 64, **NEURAL[model_name][1]}
        low, high = r["novel_share_ci95"]
        what = (
            f"order {r['order']}"
            if model_name == "ngram"
            else f"{r['train_steps']} steps, {r['train_cpu_seconds']:.0f} CPU s"
        )
        table.append(
            (
                f"{model_name} ({what}): test NLL/char (nats) / novel names [95% CI] / novel and "
                "in test list / empty or unterminated",
                f"{r['test_nll_per_char']:.4f} / {r['novel_share']:.3f} [{low:.3f}, {high:.3f}] "
                f"/ {r['novel_real_share']:.3f} / {r['empty_or_unterminated_share']:.3f}",
            )
        )
    table.append(
        (
            "test-list names not in the training list (reference)",
            f"{figures['test_names_not_in_train_share']:.3f}",
        )
    )
    for model_name in ("ngram", "charrnn", "gpt"):
        table.append((f"{model_name} sample names", ", ".join(partial[model_name]["examples"])))
    path = write_results(name, figures, table)
    print(path.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
