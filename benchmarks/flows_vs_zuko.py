"""genlab's vector flows beside zuko's on the 2-D toys: test NLL and training wall time.

For each toy (moons, 8gaussians, checkerboard, spirals) and each flow (RealNVP, MAF, NSF), a
genlab model and the corresponding zuko 1.6 flow are trained with identical settings:

- architecture: `TRANSFORMS` layers, conditioner MLPs with hidden widths `HIDDEN`, ReLU;
  RealNVP = affine couplings with alternating even/odd masks (genlab: mask alternate, no
  ActNorm, no permutations; zuko: `RealNVP`), MAF = MADE affine layers in alternating
  ascending/descending order (genlab: reversals; zuko: `MAF`), NSF = autoregressive
  rational-quadratic splines with `BINS` bins on [-5, 5] in alternating order (genlab:
  kind autoregressive, permutation reverse; zuko: `NSF`, whose default is autoregressive);
- data: the toy's train split (5,000 points) and test split (5,000 points), seed 0;
- training: Adam, lr `LR`, batch `BATCH` drawn with replacement from one seeded generator
  (the same batches for both libraries), `STEPS` steps, the same minimal loop (loss,
  zero_grad, backward, step); `SEEDS` seeds, each a different draw on every toy: the model
  seed is 1000 * toy index + seed and the batch generator's seed 1000 more (so one integer
  seeds the batch order of one toy and the initial weights of the next: different draws
  from different streams);
- initialization: zuko's flow is created from the seed; genlab's RealNVP and MAF then start
  from zuko's very weights (`genlab.families.flows.from_zuko.load_zuko_weights`, MADE masks
  included), which takes the initialization draw out of the comparison: genlab's RealNVP and
  MAF compute exactly zuko's function and train like it step for step
  (tests/families/test_flows.py), so what remains of a gap is the two libraries' numerics
  (the order of floating-point operations), amplified by training on the sharper toys.
  genlab's NSF parametrizes its spline differently (bin floors, softplus derivatives), so it
  is not the same function: it starts from genlab's own initialization of the same seed;
- test NLL: mean -log p(x) in nats on the test split, in eval mode.

The two libraries train in the same process, interleaved step by step (one genlab step, one
zuko step, the order alternating every step), each step timed, so load from other jobs hits
both alike; the wall-time ratio is genlab's training seconds over zuko's, summed over seeds.
Results go to benchmarks/results/flows_vs_zuko.json and .md; finished runs are recorded in
benchmarks/runs/flows_vs_zuko/partial_<toy>.json, so an interrupted run resumes where it
stopped. `--toys` runs some toys only (two processes on two cores: `--toys moons,spirals` and
`--toys 8gaussians,checkerboard`); a run without it, started after those have finished (the
runs share the partial files), trains what is missing and reports all.

Ten seeds (the issue asks for 3): on the sharp toys training is chaotic. Started from the same
weights on the same batches, the two libraries' losses agree to 1e-3 for the first
hundred-odd steps, then part, and both have loss spikes from which a run sometimes does not
recover by the end, so a seed's final NLL is a heavy-tailed draw (`--trace` shows a pair's
losses side by side). For two models with one distribution of outcomes, the check below
passes a pair with probability about P(Z < sqrt(n / 2)): 0.94 at n = 5 seeds, 0.99 at 10.

Target (issue 9): genlab's mean test NLL <= zuko's mean + one standard deviation, and wall
time <= 1.0x zuko's.

Usage: python benchmarks/flows_vs_zuko.py [--quick] [--threads 1] [--steps 2000] [--toys a,b]
       python benchmarks/flows_vs_zuko.py --trace maf/8gaussians/2   (one pair's losses)
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import write_results  # noqa: E402

import genlab  # noqa: E402
from genlab.core.contract import Batch  # noqa: E402
from genlab.families.flows.from_zuko import load_zuko_weights  # noqa: E402

TOYS = ("moons", "8gaussians", "checkerboard", "spirals")
FLOWS = ("realnvp", "maf", "nsf")
SEEDS = tuple(range(10))
TRANSFORMS = 4
HIDDEN = (64, 64)
BINS = 8
LR = 1e-3
BATCH = 256
STEPS = 2000
SAME_FUNCTION = ("realnvp", "maf")  # start from zuko's weights; NSF's spline differs
INIT = {f: "zuko_weights" if f in SAME_FUNCTION else "own_seeded" for f in FLOWS}


def genlab_flow(name: str, spec) -> torch.nn.Module:
    common = {"num_layers": TRANSFORMS, "hidden": HIDDEN, "activation": "relu"}
    if name == "realnvp":
        extra = {"mask": "alternate", "actnorm": False, "permute": False}
    elif name == "maf":
        extra = {}
    else:
        extra = {"kind": "autoregressive", "bins": BINS, "tail_bound": 5.0}
        extra["permutation"] = "reverse"
    return genlab.create(name, spec=spec, **common, **extra)


def zuko_flow(name: str, dim: int) -> torch.nn.Module:
    import zuko

    common = {"transforms": TRANSFORMS, "hidden_features": HIDDEN}
    if name == "realnvp":
        return zuko.flows.RealNVP(dim, **common)
    if name == "maf":
        return zuko.flows.MAF(dim, **common)
    return zuko.flows.NSF(dim, bins=BINS, **common)


def train_pair(flow: str, toy: str, seed: int, steps: int, trace: list | None = None) -> dict:
    """Train genlab's and zuko's `flow` side by side, one step of each in turn (who goes first
    alternates), timing every step, so machine load hits both alike; then score the test set.
    `trace`, if given, receives (step, genlab loss, zuko loss) for every step."""
    train = genlab.data.load(toy, split="train")
    test = genlab.data.load(toy, split="test")
    seed = 1000 * TOYS.index(toy) + seed  # independent draws on every toy
    torch.manual_seed(seed)
    ours = genlab_flow(flow, train.spec)
    torch.manual_seed(seed)
    theirs = zuko_flow(flow, train.x.shape[1])
    if flow in SAME_FUNCTION:
        load_zuko_weights(ours, theirs)
    losses = {
        "genlab": lambda x: ours.loss(Batch(x)).loss,
        "zuko": lambda x: -theirs().log_prob(x).mean(),
    }
    optimizers = {
        "genlab": torch.optim.Adam(ours.parameters(), lr=LR),
        "zuko": torch.optim.Adam(theirs.parameters(), lr=LR),
    }
    g = torch.Generator().manual_seed(1000 + seed)
    batches = torch.randint(0, len(train.x), (steps, BATCH), generator=g)
    seconds = {"genlab": 0.0, "zuko": 0.0}
    last = {}
    ours.train()
    theirs.train()
    for step, indices in enumerate(batches):
        x = train.x[indices]
        for lib in ("genlab", "zuko") if step % 2 == 0 else ("zuko", "genlab"):
            start = time.perf_counter()
            loss = losses[lib](x)
            optimizers[lib].zero_grad()
            loss.backward()
            optimizers[lib].step()
            seconds[lib] += time.perf_counter() - start
            last[lib] = float(loss.detach())
        if trace is not None:
            trace.append((step, last["genlab"], last["zuko"]))
    ours.eval()
    theirs.eval()
    with torch.no_grad():
        nll = {
            "genlab": -ours.log_likelihood(test.x).mean(),
            "zuko": -float(theirs().log_prob(test.x).double().mean()),
        }
    return {
        lib: {"test_nll": nll[lib], "train_seconds": seconds[lib], "final_train_loss": last[lib]}
        for lib in ("genlab", "zuko")
    }


def show_trace(spec: str, steps: int) -> None:
    """Train one pair and print both libraries' training losses as they part."""
    try:
        flow, toy, seed = spec.split("/")
        seed_number = int(seed)
    except ValueError:
        raise SystemExit(
            f"--trace {spec!r}: expected FLOW/TOY/SEED, e.g. maf/8gaussians/2"
        ) from None
    if flow not in FLOWS or toy not in TOYS:
        raise SystemExit(f"--trace {spec!r}: FLOW in {FLOWS}, TOY in {TOYS}")
    trace: list = []
    result = train_pair(flow, toy, seed_number, steps, trace)
    parted = next((s for s, a, b in trace if abs(a - b) > 1e-3), None)
    print(f"{spec}: training losses agree to 1e-3 until step {parted} of {steps}")
    print("step  genlab    zuko")
    for s, a, b in trace:
        if s % 50 == 0 or s == steps - 1:
            print(f"{s:4d}  {a:8.4f}  {b:8.4f}")
    print({lib: round(r["test_nll"], 4) for lib, r in result.items()}, "test NLL")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 toys, 1 seed, 60 steps")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--steps", type=int, default=STEPS, help="training steps for both libraries alike"
    )
    parser.add_argument("--toys", default=None, help="train these toys only, e.g. moons,spirals")
    parser.add_argument(
        "--trace", default=None, help="FLOW/TOY/SEED: train one pair and print both losses"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.trace:
        show_trace(args.trace, 60 if args.quick else args.steps)
        return
    name = "flows_vs_zuko_quick" if args.quick else "flows_vs_zuko"
    toys = TOYS[:2] if args.quick else TOYS
    seeds = SEEDS[:1] if args.quick else SEEDS
    steps = 60 if args.quick else args.steps
    run_dir = Path(__file__).resolve().parent / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    chosen = toys if args.toys is None else tuple(args.toys.split(","))
    if unknown := set(chosen) - set(toys):
        raise SystemExit(f"--toys {sorted(unknown)}: choose among {', '.join(toys)}")
    done = {}
    for toy in toys:
        path = run_dir / f"partial_{toy}.json"
        done.update(json.loads(path.read_text()) if path.exists() else {})

    for toy in chosen:
        partial_path = run_dir / f"partial_{toy}.json"
        for seed in seeds:
            for flow in FLOWS:
                settings = {"steps": steps, "init": INIT[flow]}
                finished = done.get(f"{toy}/{flow}/genlab/{seed}", {})
                if all(finished.get(k) == v for k, v in settings.items()):
                    continue  # finished with these settings (a run with others is redone)
                for lib, r in train_pair(flow, toy, seed, steps).items():
                    r.update(settings)
                    done[f"{toy}/{flow}/{lib}/{seed}"] = r
                    print(
                        f"{toy}/{flow}/{lib}/{seed}: test NLL {r['test_nll']:.4f}, "
                        f"{r['train_seconds']:.1f} s",
                        flush=True,
                    )
                mine = {k: v for k, v in done.items() if k.startswith(f"{toy}/")}
                partial_path.write_text(json.dumps(mine, indent=1))
    if args.toys is not None:
        return  # a run without --toys reports

    figures: dict = {
        "settings": {
            "transforms": TRANSFORMS,
            "hidden": list(HIDDEN),
            "bins": BINS,
            "lr": LR,
            "batch": BATCH,
            "steps": steps,
            "seeds": list(seeds),
            "model_seed": "1000 * toy index + seed",
            "init": INIT,
            "threads": args.threads,
            "zuko_version": __import__("zuko").__version__,
        }
    }
    table = [
        (
            "setting",
            f"{TRANSFORMS} transforms, hidden {HIDDEN}, Adam lr {LR}, batch {BATCH}, "
            f"{steps} steps, seeds {list(seeds)} (per toy), {args.threads} thread(s); "
            "genlab's RealNVP and MAF start from zuko's weights",
        )
    ]
    all_ok = True
    seconds = {"genlab": 0.0, "zuko": 0.0}
    for toy in toys:
        for flow in FLOWS:
            row = {}
            for lib in ("genlab", "zuko"):
                runs = [done[f"{toy}/{flow}/{lib}/{s}"] for s in seeds]
                nll = [r["test_nll"] for r in runs]
                secs = sum(r["train_seconds"] for r in runs)
                seconds[lib] += secs
                row[lib] = {
                    "nll_mean": statistics.fmean(nll),
                    "nll_std": statistics.stdev(nll) if len(nll) > 1 else 0.0,
                    "nll_per_seed": nll,
                    "train_seconds": secs,
                }
            g, z = row["genlab"], row["zuko"]
            ratio = g["train_seconds"] / z["train_seconds"]
            nll_ok = g["nll_mean"] <= z["nll_mean"] + z["nll_std"]
            time_ok = ratio <= 1.0
            all_ok &= nll_ok and time_ok and all(math.isfinite(v) for v in g["nll_per_seed"])
            figures[f"{toy}_{flow}"] = {
                **{f"genlab_{k}": v for k, v in g.items()},
                **{f"zuko_{k}": v for k, v in z.items()},
                "time_ratio_genlab_over_zuko": ratio,
                "nll_target_met": nll_ok,
                "time_target_met": time_ok,
            }
            table.append(
                (
                    f"{toy} {flow}: test NLL genlab / zuko (mean ± std); time ratio",
                    f"{g['nll_mean']:.3f} ± {g['nll_std']:.3f} / {z['nll_mean']:.3f} ± "
                    f"{z['nll_std']:.3f}; {ratio:.2f}x "
                    f"({'ok' if nll_ok and time_ok else 'MISSED'})",
                )
            )
    overall = seconds["genlab"] / seconds["zuko"]
    figures["overall_time_ratio_genlab_over_zuko"] = overall
    figures["all_targets_met"] = all_ok
    table.append(("overall training time ratio genlab / zuko", f"{overall:.3f}x"))
    table.append(("all targets met", str(all_ok)))
    path = write_results(name, figures, table)
    print(path.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
