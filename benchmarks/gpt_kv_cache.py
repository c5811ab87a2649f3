"""KV-cache decoding speed of genlab's GPT against recomputing a full forward pass per token.

A `gpt` with a context of 512 tokens (4 layers, 4 heads, 128 channels, the Tiny Shakespeare
character vocabulary), a 12-token prompt, 500 new tokens, greedy decoding. Both ways use the
same weights and the same decoding loop (`decoding.generate`); they differ only in the step:

- cache: the prompt fills the key/value cache once, then each step runs one position;
- no cache: each step runs scaled-dot-product attention over the whole context again (what
  nanoGPT's `generate` does).

The generated tokens must be identical (asserted). The weights are the seed-0 initialisation
with every parameter redrawn at std 0.1, so logits are peaked and greedy choices are not near
ties; speed does not depend on the values. Runs alternate (cache, no cache) `--repeats` times
on one thread and the median of each is reported: tokens/s = 500 / seconds.

Writes benchmarks/results/gpt_kv_cache.{json,md}. Target: speed-up >= 5x.

Usage: python benchmarks/gpt_kv_cache.py [--quick] [--threads 1] [--batch 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from results_io import write_results  # noqa: E402

import genlab  # noqa: E402

SHAKESPEARE = HERE.parents[1] / "shared" / "data" / "tinyshakespeare.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="100 new tokens, 1 repeat")
    parser.add_argument("--batch", type=int, default=1, help="sequences decoded together")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    context, prompt_len = 512, 12
    new_tokens = 100 if args.quick else 500
    repeats = 1 if args.quick else args.repeats

    data = genlab.data.load(str(SHAKESPEARE), block_size=65)
    torch.manual_seed(0)
    model = genlab.create(
        "gpt", spec=data.spec, num_layers=4, num_heads=4, dim=128, block_size=context
    )
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.1)
    model.eval()
    prompt = data.info["tokens"][:prompt_len].expand(args.batch, -1).clone()  # "First Citiz"

    times: dict[str, list[float]] = {"cache": [], "no_cache": []}
    outputs: dict[str, torch.Tensor] = {}
    for _ in range(repeats):
        for name, use_cache in (("cache", True), ("no_cache", False)):
            start = time.perf_counter()
            outputs[name] = model.greedy_ids(prompt, new_tokens, use_cache=use_cache)
            times[name].append(time.perf_counter() - start)
    identical = torch.equal(outputs["cache"], outputs["no_cache"])
    assert identical, "the KV cache changed the greedy tokens"
    assert outputs["cache"].shape == (args.batch, prompt_len + new_tokens)

    seconds = {k: statistics.median(v) for k, v in times.items()}
    tps = {k: args.batch * new_tokens / s for k, s in seconds.items()}
    speedup = seconds["no_cache"] / seconds["cache"]
    name = "gpt_kv_cache_quick" if args.quick else "gpt_kv_cache"
    if args.batch != 1:
        name += f"_batch{args.batch}"
    figures = {
        "model": {"num_layers": 4, "num_heads": 4, "dim": 128, "block_size": context},
        "prompt_tokens": prompt_len,
        "new_tokens": new_tokens,
        "batch": args.batch,
        "repeats": repeats,
        "threads": args.threads,
        "seconds_cache": seconds["cache"],
        "seconds_no_cache": seconds["no_cache"],
        "all_seconds": times,
        "tokens_per_second_cache": tps["cache"],
        "tokens_per_second_no_cache": tps["no_cache"],
        "speedup": speedup,
        "identical_tokens": identical,
        "target_speedup": 5.0,
    }
    write_results(
        name,
        figures,
        [
            ("model", f"gpt 4 layers x 128, context {context}, batch {args.batch}"),
            ("prompt / new tokens (greedy)", f"{prompt_len} / {new_tokens}"),
            ("tokens/s with KV cache", f"{tps['cache']:.1f}"),
            ("tokens/s recomputing the full forward", f"{tps['no_cache']:.1f}"),
            ("speed-up (target >= 5x)", f"{speedup:.1f}x"),
            ("identical tokens", str(identical)),
        ],
    )
    print({k: v for k, v in figures.items() if k != "all_seconds"})


if __name__ == "__main__":
    main()
