"""Class-conditional diffusion on mnist5k: FID/KID versus network evaluations, and guidance.

One `diffusion` model (configs/diffusion_mnist5k.yaml: EDM schedule, small UNet, label dropout
0.1) is trained with `genlab.train.run.train_run` (the code path of `genlab train`) into
benchmarks/runs/diffusion_mnist5k/run/. The budget is `--minutes` of CPU time of this process
(the machine is shared, so wall time would measure the neighbours): a few calibration steps fix
the number of training steps once (plan.json), an interrupted run resumes from its newest
checkpoint, and a trained model is only evaluated. Every finished row is kept in partial.json,
so a second invocation picks up where the first stopped.

Figures, N = 1,000 samples per row with fixed seeds, classes as in the test split (100 per
class), against the 1,000 mnist5k test digits in the `digits28` feature space: FID and KID
(unbiased MMD^2 on the full sets), each with a 95% delete-half jackknife interval (200 half
sets of both the generated and the test features, without replacement, centred on the estimate:
`genlab.metrics.bootstrap.half_sample_interval`; rows kept from before it have the
with-replacement bootstrap, whose FID intervals sit above the estimate, marked as such),
beside the same figures for 1,000 training digits against the test digits (the real-vs-real
floor). Rows evaluated since the interval change keep their generated features in the run
folder (features/<row>.npy), so their intervals can be recomputed without sampling again.
Rows: ancestral DDPM at 250 steps (the reference), DDIM at 10/20/50 steps, DPM-Solver++(2M) at 10/20 (the
probability-flow ODE) and its SDE form SDE-DPM-Solver++(2M) at 10/20, Heun at 18 steps (35
evaluations), and unconditional DPM-Solver++(2M) at 20 (the null class). Guidance table:
DPM-Solver++(2M) at 20 steps with classifier-free guidance w = 0, 1, 3, 5 (Ho & Salimans: D_c +
w (D_c - D_u); diffusers' scale = w + 1), the share of samples the digits28 classifier assigns to
the requested class (bootstrap interval), and FID. A guided step evaluates the network on a
doubled batch, so it costs two evaluations per sample.

Targets (issue 5): reference FID <= 3x the floor; DPM-Solver++(2M) at 20 within 5% of the
reference FID; >= 95% class accuracy at a guidance scale whose FID is <= 2x the unguided FID.

`--redraws K` draws K sample sets (sample seeds 1..K) for each of the `--rows` (or of the
`--redraw-rows` among them) and reports the mean and standard deviation of FID over them: how
far FID moves between generated sample sets at N, against the one fixed set of test digits
(the interval also varies the test set).

`--config` trains another recipe into its own run folder and results, named after the config
file: configs/diffusion_mnist5k_ema.yaml (a longer EMA with warm-up), and
configs/diffusion_mnist5k_pmean.yaml / _pmean0.yaml (training noise log sigma ~ N(-0.6, 1.2^2) /
N(0, 1.2^2) instead of EDM's N(-1.2, 1.2^2): more of the steps at the high noise levels where a
probability-flow ODE sampler fixes class and layout and cannot correct itself later).

Usage: python benchmarks/diffusion_mnist5k.py [--minutes 30] [--quick] [--threads 1]
           [--config configs/diffusion_mnist5k.yaml]
           [--rows a,b --redraws 3 [--redraw-rows b] --results-name NAME] > log
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import RESULTS, write_results  # noqa: E402

import genlab  # noqa: E402
from genlab.core.config import read_yaml  # noqa: E402
from genlab.data.writers import write_samples  # noqa: E402
from genlab.families.diffusion.samplers import network_evaluations  # noqa: E402
from genlab.metrics.bootstrap import bootstrap_interval, half_sample_interval  # noqa: E402
from genlab.metrics.distances import fid, kid  # noqa: E402
from genlab.metrics.features import get_extractor  # noqa: E402
from genlab.train.run import train_run  # noqa: E402

HERE = Path(__file__).resolve().parent
CONFIG = HERE.parent / "configs" / "diffusion_mnist5k.yaml"
ROWS = (
    ("ddpm", 250),
    ("ddim", 10),
    ("ddim", 20),
    ("ddim", 50),
    ("dpmpp_2m", 10),
    ("dpmpp_2m", 20),
    ("dpmpp_2m_sde", 10),
    ("dpmpp_2m_sde", 20),
    ("heun", 18),
)
GUIDANCE = (0.0, 1.0, 3.0, 5.0)
CALIBRATION_STEPS = 20  # after 3 untimed steps (one-off allocation and first-call costs)
RESAMPLES = 200


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def calibrate(config: dict, data) -> float:
    """CPU seconds per training step of the configured model and batch size."""
    model_cfg = {k: v for k, v in config["model"].items() if k != "name"}
    model = genlab.create("diffusion", spec=data.spec, **model_cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch_size = config["train"]["batch_size"]
    g = torch.Generator().manual_seed(0)
    times = []
    for i in range(CALIBRATION_STEPS + 3):
        batch = data.batch(torch.randint(0, len(data), (batch_size,), generator=g))
        start = time.process_time()
        opt.zero_grad()
        model.loss(batch).loss.backward()
        opt.step()
        if i >= 3:  # the first steps pay one-off allocation costs
            times.append(time.process_time() - start)
    return float(np.median(times))


def train(
    runs: Path, minutes: float, quick: bool, config_file: Path = CONFIG, steps: int | None = None
):
    """Train (or resume, or reload) the model of the plan; returns (model, plan). `steps`
    fixes the step count instead of calibrating it (the CPU time used is still recorded)."""
    run = runs / "run"
    plan_path = runs / "plan.json"
    config = read_yaml(config_file)
    data = genlab.data.load("mnist5k")
    if plan_path.exists():
        plan = json.loads(plan_path.read_text())
        if steps is not None and steps != plan["steps"]:
            raise SystemExit(
                f"--steps {steps}: {plan_path} plans {plan['steps']} steps; drop --steps to go on "
                "with that plan, or move the run folder aside to start another"
            )
    else:
        per_step = calibrate(config, data)
        steps_given = steps
        if steps is None:
            steps = 10 if quick else max(1, int(minutes * 60 / per_step))
        plan = {
            "budget_cpu_minutes": minutes,
            "calibrated_cpu_seconds_per_step": round(per_step, 4),
            "steps": steps,
            "steps_from": "calibration" if steps_given is None else "--steps",
            "train_cpu_seconds": 0.0,
            "train_wall_seconds": 0.0,
            "done": False,
        }
        plan_path.write_text(json.dumps(plan, indent=2))
        log(
            f"plan: {steps} steps at {per_step:.3f} CPU s/step"
            + (f" for {minutes} CPU minutes" if steps_given is None else " (--steps)")
        )
    if not plan["done"]:
        resume = (run / "checkpoints" / "latest").exists()
        overrides = [f"train.steps={plan['steps']}"]
        if quick:
            overrides += ["train.checkpoint_every=10", "train.warmup_steps=5"]
        start, wall = time.process_time(), time.perf_counter()
        torch.manual_seed(0)
        model, _, summary = train_run(
            None,
            data_name=None,
            out=run,
            config_path=None if resume else config_file,
            overrides=overrides,
            resume=resume,
            force=not resume and run.exists(),
        )
        plan["train_cpu_seconds"] += round(time.process_time() - start, 1)
        plan["train_wall_seconds"] += round(time.perf_counter() - wall, 1)
        plan["done"] = True
        plan["final_logs"] = {k: v for k, v in summary.items() if isinstance(v, (int, float))}
        plan_path.write_text(json.dumps(plan, indent=2))
        log(f"trained: {summary}")
    else:
        log("trained model found: evaluating only")
    model = genlab.load(run / "model")
    return model, plan


def interval(fn, a: torch.Tensor, b: torch.Tensor, resamples: int) -> list[float]:
    """[estimate, low, high] of fn(a, b): the delete-half jackknife interval of both sets
    (`genlab.metrics.bootstrap.half_sample_interval`), centred on the estimate."""
    return list(half_sample_interval(fn, a.numpy(), b.numpy(), num_resamples=resamples, seed=0))


def kid_full(a, b) -> float:
    return kid(a, b, num_subsets=1, subset_size=min(len(a), len(b)))[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="CPU minutes of training")
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="train this many steps instead of the count calibrated from --minutes (e.g. to "
        "match another recipe's run: the calibration moves with the machine's load)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny run to prove the pipeline")
    parser.add_argument("--config", type=Path, default=CONFIG, help="the run's YAML config")
    parser.add_argument(
        "--rows",
        default=None,
        help="evaluate these sampler rows only, e.g. ddpm_250,dpmpp_2m_20,dpmpp_2m_sde_20 "
        "(the first is the reference; no unconditional and guidance rows)",
    )
    parser.add_argument(
        "--redraws", type=int, default=1, help="sample sets (seeds 1..K) per row of --rows"
    )
    parser.add_argument(
        "--redraw-rows",
        default=None,
        help="redraw only these of the --rows, e.g. dpmpp_2m_20 (default: all of them)",
    )
    parser.add_argument(
        "--results-name",
        default=None,
        help="results file name (default: the config's stem), e.g. for a --rows report that "
        "must not replace the full table",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--num-samples", type=int, default=1000)
    args = parser.parse_args()
    if args.redraws < 1 or (args.redraws > 1 and not args.rows):
        raise SystemExit("--redraws K: K >= 1, and K > 1 needs --rows (redraws cost a row each)")
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    torch.set_num_threads(args.threads)
    if not args.config.is_file():
        raise SystemExit(f"--config {args.config}: no such file")
    name = args.config.stem  # diffusion_mnist5k for the default config
    name = f"{name}_quick" if args.quick else name
    report = args.results_name or name  # the run folder stays the config's
    runs = HERE / "runs" / name
    runs.mkdir(parents=True, exist_ok=True)
    if args.steps is not None and args.steps < 1:
        raise SystemExit(f"--steps {args.steps}: give 1 or more")
    model, plan = train(runs, args.minutes, args.quick, args.config, args.steps)

    n = 260 if args.quick else args.num_samples
    resamples = 10 if args.quick else RESAMPLES
    rows = ROWS if not args.quick else (("ddpm", 4), ("ddim", 3), ("dpmpp_2m", 3), ("heun", 2))
    if args.rows:
        by_tag = {f"{sampler}_{steps}": (sampler, steps) for sampler, steps in rows}
        if unknown := [t for t in args.rows.split(",") if t not in by_tag]:
            raise SystemExit(f"--rows {unknown}: choose among {', '.join(by_tag)}")
        rows = tuple(by_tag[t] for t in args.rows.split(","))
        if "dpmpp_2m_20" not in args.rows.split(",")[1:] and not args.quick:
            raise SystemExit("--rows: start with the reference (ddpm_250) and include dpmpp_2m_20")
    guided_steps = 3 if args.quick else 20
    test = genlab.data.load("mnist5k", split="test")
    train_set = genlab.data.load("mnist5k")
    g = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(test), generator=g)[:n]
    labels = test.labels[pick]  # classes in the test split's proportions
    extractor = get_extractor("digits28")
    f_real = extractor.features(test.x[pick]).double()
    reference = train_set.x[torch.randperm(len(train_set), generator=g)[:n]]
    f_ref = extractor.features(reference).double()

    partial_path = runs / "partial.json"
    partial = json.loads(partial_path.read_text()) if partial_path.exists() else {}
    if partial.get("floor", {}).get("interval") != "half_sample":  # cheap: no sampling
        partial["floor"] = {
            "interval": "half_sample",
            "fid": interval(fid, f_real, f_ref, resamples),
            "kid": interval(kid_full, f_real, f_ref, resamples),
            "classifier_accuracy_real": float(
                (extractor.probs(test.x[pick]).argmax(1) == labels).double().mean()
            ),
        }
        partial_path.write_text(json.dumps(partial, indent=2))
    log(f"floor: {partial['floor']}")

    features_dir = runs / "features"
    features_dir.mkdir(exist_ok=True)

    def evaluate(
        tag: str, sampler: str, steps: int, guidance: float, cond: bool, seed: int = 1
    ) -> dict:
        if tag in partial:
            return partial[tag]
        start, wall = time.process_time(), time.perf_counter()
        x = model.sample(
            n,
            generator=torch.Generator().manual_seed(seed),
            cond={"label": labels} if cond else None,
            sampler=sampler,
            steps=steps,
            guidance=guidance,
        )
        cpu = time.process_time() - start
        f_fake = extractor.features(x).double()
        np.save(features_dir / f"{tag}.npy", f_fake.numpy())
        evals = network_evaluations(sampler, steps) * (2 if guidance > 0 else 1)
        row = {
            "sampler": sampler,
            "steps": steps,
            "guidance": guidance,
            "conditional": cond,
            "sample_seed": seed,
            "interval": "half_sample",
            "network_evaluations": evals,
            "sample_cpu_seconds": round(cpu, 1),
            "sample_wall_seconds": round(time.perf_counter() - wall, 1),
            "fid": interval(fid, f_real, f_fake, resamples),
            "kid": interval(kid_full, f_real, f_fake, resamples),
        }
        if cond:
            hit = (extractor.probs(x).argmax(1) == labels).double().numpy()
            row["class_accuracy"] = list(
                bootstrap_interval(lambda h: float(h.mean()), hit, num_resamples=1000, seed=0)
            )
        grid = runs / "samples" / f"{tag}.png"
        write_samples(
            x[:100] if not cond else x[torch.argsort(labels, stable=True)][::10], model.spec, grid
        )
        partial[tag] = row
        partial_path.write_text(json.dumps(partial, indent=2))
        log(f"{tag}: {row}")
        return row

    for sampler, steps in rows:
        evaluate(f"{sampler}_{steps}", sampler, steps, 0.0, True)
    redraw_tags = args.redraw_rows.split(",") if args.redraw_rows else None
    if redraw_tags and (unknown := set(redraw_tags) - {f"{a}_{b}" for a, b in rows}):
        raise SystemExit(f"--redraw-rows {sorted(unknown)}: name rows of --rows")
    for sampler, steps in rows if args.redraws > 1 else ():
        if redraw_tags and f"{sampler}_{steps}" not in redraw_tags:
            continue
        for seed in range(2, args.redraws + 1):
            tag = f"{sampler}_{steps}_seed{seed}"
            evaluate(tag, sampler, steps, 0.0, True, seed=seed)
    guidance = () if args.rows else GUIDANCE
    if guidance:
        evaluate(f"uncond_dpmpp_2m_{guided_steps}", "dpmpp_2m", guided_steps, 0.0, False)
    for w in guidance:
        tag = f"dpmpp_2m_{guided_steps}" if w == 0 else f"guided_{w:g}_dpmpp_2m_{guided_steps}"
        evaluate(tag, "dpmpp_2m", guided_steps, w, True)
    if args.rows:  # report these rows only (and their redraws)
        shown = {f"{sampler}_{steps}" for sampler, steps in rows}
        partial = {
            k: v for k, v in partial.items() if k == "floor" or k.partition("_seed")[0] in shown
        }

    redraws = {}  # every row with redraws in partial.json, from this run or an earlier one
    for tag in [t for t in partial if t != "floor" and "_seed" not in t]:
        draws = [partial[tag]] + [v for k, v in partial.items() if k.startswith(f"{tag}_seed")]
        if len(draws) > 1:
            fids = [d["fid"][0] for d in draws]
            redraws[tag] = {
                "sample_seeds": [d.get("sample_seed", 1) for d in draws],
                "fid_per_sample_seed": fids,
                "fid_mean": float(np.mean(fids)),
                "fid_sd": float(np.std(fids, ddof=1)),
            }

    reference_tag = f"{rows[0][0]}_{rows[0][1]}"
    fast_tag = f"dpmpp_2m_{guided_steps}"
    sde_tag = f"dpmpp_2m_sde_{guided_steps}"  # the same solver on the reverse SDE
    floor_fid = partial["floor"]["fid"][0]
    ref_fid = partial[reference_tag]["fid"][0]
    fast_fid = partial[fast_tag]["fid"][0]
    guided = [partial[fast_tag]] + [
        partial[f"guided_{w:g}_dpmpp_2m_{guided_steps}"] for w in guidance[1:]
    ]
    ok_scales = (
        [
            r["guidance"]
            for r in guided
            if r["class_accuracy"][0] >= 0.95 and r["fid"][0] <= 2 * guided[0]["fid"][0]
        ]
        if guidance
        else []
    )
    figures: dict = {
        "num_samples": n,
        "plan": plan,
        "config": read_yaml(args.config),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "floor": partial["floor"],
        "rows": {k: v for k, v in partial.items() if k != "floor"},
        "redraws": redraws,
        "target_reference_fid_within_3x_floor": ref_fid <= 3 * floor_fid,
        "reference_fid_over_floor": ref_fid / floor_fid,
        "target_dpmpp_2m_20_within_5pct_of_reference": abs(fast_fid - ref_fid) <= 0.05 * ref_fid,
        "dpmpp_2m_20_over_reference_fid": fast_fid / ref_fid,
        "dpmpp_2m_sde_20_over_reference_fid": (
            partial[sde_tag]["fid"][0] / ref_fid if sde_tag in partial else None
        ),
        "target_guidance_95pct_at_fid_2x_unguided": bool(ok_scales) if guidance else None,
        "guidance_scales_meeting_target": ok_scales,
    }

    def fmt(v: list[float], digits: int = 3) -> str:
        return f"{v[0]:.{digits}f} [{v[1]:.{digits}f}, {v[2]:.{digits}f}]"

    floor = partial["floor"]
    table = [
        (
            "training: steps / CPU s / wall s",
            f"{plan['steps']} / {plan['train_cpu_seconds']} / {plan['train_wall_seconds']}",
        ),
        ("real vs real floor: FID / KID", f"{fmt(floor['fid'])} / {fmt(floor['kid'], 5)}"),
        ("digits28 accuracy on the real test digits", f"{floor['classifier_accuracy_real']:.3f}"),
    ]
    for tag, row in partial.items():
        if tag == "floor":
            continue
        what = f"{row['sampler']} {row['steps']} steps"
        if not row["conditional"]:
            what += ", unconditional"
        if row["guidance"]:
            what += f", guidance w={row['guidance']:g}"
        if row.get("sample_seed", 1) != 1:
            what += f", sample seed {row['sample_seed']}"
        if row.get("interval") != "half_sample":
            what += ", bootstrap interval"
        acc = f" / acc {fmt(row['class_accuracy'])}" if "class_accuracy" in row else ""
        table.append(
            (
                f"{what} ({row['network_evaluations']} evals, {row['sample_cpu_seconds']} CPU s)",
                f"FID {fmt(row['fid'])} / KID {fmt(row['kid'], 5)}{acc}",
            )
        )
    for tag, r in redraws.items():
        table.append(
            (
                f"{tag}: FID over {len(r['fid_per_sample_seed'])} sample sets, mean ± sd",
                f"{r['fid_mean']:.3f} ± {r['fid_sd']:.3f} "
                f"({', '.join(f'{v:.3f}' for v in r['fid_per_sample_seed'])})",
            )
        )
    table += [
        (
            "target: reference FID <= 3x floor",
            f"{figures['target_reference_fid_within_3x_floor']}"
            f" (ratio {figures['reference_fid_over_floor']:.2f})",
        ),
        (
            "target: dpmpp_2m@20 FID within 5% of reference",
            f"{figures['target_dpmpp_2m_20_within_5pct_of_reference']} "
            f"(ratio {figures['dpmpp_2m_20_over_reference_fid']:.3f})",
        ),
        (
            "dpmpp_2m_sde@20 (SDE form of the same solver) FID / reference FID",
            f"{figures['dpmpp_2m_sde_20_over_reference_fid'] or float('nan'):.3f}",
        ),
        (
            "target: >= 95% class accuracy at FID <= 2x unguided",
            f"{figures['target_guidance_95pct_at_fid_2x_unguided']} (scales {ok_scales})",
        ),
    ]
    figures["plot"] = str(
        plot(partial, RESULTS / f"{report}.png", guided_steps).relative_to(HERE.parent)
    )
    path = write_results(report, figures, table)
    print(path.with_suffix(".md").read_text())


def plot(partial: dict, path: Path, guided_steps: int) -> Path:
    """FID versus network evaluations per sampler, with the floor; and accuracy vs guidance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    by_sampler: dict[str, list] = {}
    for tag, row in partial.items():
        if tag == "floor" or row["guidance"] or not row["conditional"]:
            continue
        if row.get("sample_seed", 1) != 1:  # redraws: the table gives their spread
            continue
        by_sampler.setdefault(row["sampler"], []).append(row)
    for sampler, rows in by_sampler.items():
        rows.sort(key=lambda r: r["network_evaluations"])
        xs = [r["network_evaluations"] for r in rows]
        ys = [r["fid"][0] for r in rows]
        err = [[r["fid"][0] - r["fid"][1] for r in rows], [r["fid"][2] - r["fid"][0] for r in rows]]
        err = np.clip(np.array(err), 0, None)
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=sampler)
    ax.axhline(partial["floor"]["fid"][0], color="k", ls="--", label="real vs real")
    ax.set_xscale("log")
    ax.set_xlabel("network evaluations")
    ax.set_ylabel("FID (digits28)")
    ax.legend(fontsize=8)
    ws, accs, fids = [], [], []
    for tag, row in partial.items():
        if tag != "floor" and row["sampler"] == "dpmpp_2m" and row["steps"] == guided_steps:
            if row["conditional"] and row.get("sample_seed", 1) == 1:
                ws.append(row["guidance"])
                accs.append(row["class_accuracy"][0])
                fids.append(row["fid"][0])
    order = np.argsort(ws)
    ax2.plot(np.array(ws)[order], np.array(accs)[order], marker="o", color="tab:blue")
    ax2.set_xlabel("guidance w")
    ax2.set_ylabel("class accuracy", color="tab:blue")
    twin = ax2.twinx()
    twin.plot(np.array(ws)[order], np.array(fids)[order], marker="s", color="tab:red")
    twin.set_ylabel("FID", color="tab:red")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
