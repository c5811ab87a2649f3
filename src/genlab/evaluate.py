"""`genlab eval`: a run's figures on held-out data, each beside its real-versus-real floor.

Likelihood figures come from `model.log_likelihood` (with its kind: exact, bound or estimate).
Sample figures compare N samples of the model with N held-out rows in a feature space (the
digit networks for 28x28 and 8x8 digits, Inception for other images given its weights, the raw
values for points and tables) and always report the same figure between N training rows and the
N held-out rows, the floor that a perfect model would reach at this N. With `redraws = R > 0`
each sample figure also gets a 95% interval: the 2.5/97.5 percentiles over R + 1 sets of N model
samples (and, for the floor, R + 1 draws of N training rows) against the same held-out rows.
Redraws rather than a with-replacement bootstrap: duplicated rows inflate FID/KID and deflate
k-NN figures (benchmarks/eval_floors.py shows such a bootstrap interval missing its own point
estimate), while a generative model can always draw a fresh sample set.
"""

from __future__ import annotations

import inspect
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from genlab.core.errors import ConfigError, GenlabError
from genlab.core.persist import atomic_write_text
from genlab.data import load as load_data

# Metric names and the modalities they apply to.
SAMPLE_METRICS = {
    "fid": ("image", "points", "tabular"),
    "kid": ("image", "points", "tabular"),
    "prdc": ("image", "points", "tabular"),
    "mmd": ("points", "tabular"),
    "c2st": ("points", "tabular"),
    "modes": ("points",),
    "memorization": ("image", "points", "tabular"),
}
ALL_METRICS = ("nll", *SAMPLE_METRICS)
DEFAULTS = {
    "image": ("nll", "fid", "kid", "prdc", "memorization"),
    "points": ("nll", "mmd", "prdc", "c2st", "modes"),
    "tabular": ("nll", "prdc", "c2st", "memorization"),
    "text": ("nll",),
    "sequence": ("nll",),
}


def pick_extractor(spec, name: str | None = None, weights: str | None = None):
    """The feature network for a data spec: digits28/digits8 for digits, raw for vectors."""
    from genlab.metrics.features import get_extractor

    if name is None:
        if spec.modality == "image":
            name = {(1, 28, 28): "digits28", (1, 8, 8): "digits8"}.get(tuple(spec.shape))
            if name is None:
                raise ConfigError(
                    f"no default feature network for {tuple(spec.shape)} images: pass "
                    "--features inception --features-weights PATH (the FID Inception weights)"
                )
        else:
            name = "raw"
    options = {"weights": weights} if weights else {}
    return get_extractor(name, **options)


def evaluate_run(
    run_dir: str | Path,
    *,
    metrics: tuple[str, ...] | list[str] | None = None,
    num_samples: int = 1000,
    split: str = "test",
    max_rows: int | None = None,
    batch_size: int = 250,
    seed: int = 0,
    redraws: int = 0,
    features: str | None = None,
    features_weights: str | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate a run folder; writes `eval/metrics.json` and `eval/metrics.md`.

    Args:
        run_dir: a run folder written by `genlab train`.
        metrics: names from ALL_METRICS; None picks the defaults for the data's modality.
        num_samples: N, the samples drawn and the real rows compared (sample metrics).
        split: the held-out split.
        max_rows: score at most this many rows' likelihood (None: the whole split).
        batch_size: rows per `log_likelihood` call.
        seed: seeds sampling, row subsets and stochastic bounds.
        redraws: extra sample sets for 95% intervals of sample metrics (0: none).
        features, features_weights: the feature network (default by modality) and its weights.
        options: passed to `model.log_likelihood` (e.g. {"k": 100} for IWAE).

    Returns:
        A flat dict of figures with self-describing keys.
    """
    from genlab.train.run import CONFIG_FILE, load_run

    run_dir = Path(run_dir)
    model, config, spec = load_run(run_dir)
    if not config:
        raise GenlabError(f"{run_dir} has no {CONFIG_FILE}: eval needs a run from `genlab train`")
    data_opts = dict(config.get("data") or {})
    data_name = data_opts.pop("name")
    held_out = load_data(data_name, split=split, **data_opts)
    chosen = tuple(metrics) if metrics else DEFAULTS.get(spec.modality, ("nll",))
    if not metrics and held_out.info.get("modes") is None:  # mode coverage needs known modes
        chosen = tuple(m for m in chosen if m != "modes")
    unknown = sorted(set(chosen) - set(ALL_METRICS))
    if unknown:
        raise ConfigError(f"unknown metric {', '.join(unknown)}; known: {', '.join(ALL_METRICS)}")
    for name in chosen:
        if name in SAMPLE_METRICS and spec.modality not in SAMPLE_METRICS[name]:
            raise ConfigError(
                f"metric {name} does not apply to {spec.modality} data; it applies to "
                f"{', '.join(SAMPLE_METRICS[name])}"
            )
    result: dict[str, Any] = {
        "model": model.name,
        "run_dir": str(run_dir),
        "split": split,
        "metrics": list(chosen),
        "seed": seed,
    }
    start = time.perf_counter()
    if "nll" in chosen:
        result.update(_likelihood(model, held_out, max_rows, batch_size, seed, options or {}))
    sample_metrics = [m for m in chosen if m in SAMPLE_METRICS]
    if sample_metrics:
        # Samples are compared with the real images: binarization is a device of training and
        # of the likelihood, and mixing binarized and grey-level sets would inflate the floor.
        real_opts = {**data_opts, "binarize": False} if data_opts.get("binarize") else data_opts
        held_out_real = load_data(data_name, split=split, **real_opts)
        train = load_data(data_name, split="train", **real_opts)
        result.update(
            _sample_figures(
                model,
                train,
                held_out_real,
                sample_metrics,
                num_samples,
                seed,
                redraws,
                features,
                features_weights,
            )
        )
    if "memorization" in chosen:
        train = load_data(data_name, split="train", **data_opts)
        result.update(
            _membership(model, train, held_out, num_samples, batch_size, seed, options or {})
        )
    result["eval_seconds"] = round(time.perf_counter() - start, 3)
    out = run_dir / "eval"
    atomic_write_text(out / "metrics.json", json.dumps(result, indent=2, default=str))
    atomic_write_text(out / "metrics.md", format_table(result))
    return result


def _likelihood(
    model, data, max_rows, batch_size, seed, options, keep_nats: bool = False
) -> dict[str, Any]:
    if "label" in model.cond_keys and data.labels is None:
        raise GenlabError(f"{model.name} is class-conditional but the data set has no labels")
    x = data.x if max_rows is None else data.x[:max_rows]
    labels = None if data.labels is None else data.labels[: x.shape[0]]
    generator = torch.Generator().manual_seed(seed)
    accepts_generator = "generator" in inspect.signature(model.log_likelihood).parameters
    parts, kind, details = [], None, {}
    for i in range(0, x.shape[0], batch_size):
        cond = {"label": labels[i : i + batch_size]} if "label" in model.cond_keys else None
        extra = {"generator": generator} if accepts_generator else {}
        try:
            ll = model.log_likelihood(x[i : i + batch_size], cond=cond, **extra, **options)
        except TypeError as e:
            if "unexpected keyword argument" in str(e):
                raise ConfigError(
                    f"{model.name}.log_likelihood: {e}; check the -o options"
                ) from None
            raise
        parts.append(ll.nats.double().cpu())
        kind, details = ll.kind, ll.details
    nats = torch.cat(parts)
    mean = float(nats.mean())
    figures: dict[str, Any] = {
        "conditioned_on": list(model.cond_keys),
        "num_rows": int(nats.numel()),
        "kind": kind,
        "log_likelihood_nats": mean,
        "log_likelihood_stderr": float(nats.std() / math.sqrt(len(nats))) if len(nats) > 1 else 0.0,
        "nll_nats": -mean,
        "nats_per_dim": -mean / model.spec.num_dims,
        "options": dict(options),
        "details": details,
    }
    if keep_nats:
        figures["nats"] = nats
    if data.true_log_density is not None:
        figures["true_log_likelihood_nats"] = float(data.true_log_density(x).double().mean())
    return figures


def _membership(model, train, held_out, n, batch_size, seed, options) -> dict[str, Any]:
    """Loss-threshold membership inference (Yeom et al. 2018): can the likelihood tell N
    training rows from N held-out rows? AUC 0.5 means no; near 1 means memorised."""
    from genlab.core.contract import NoLikelihoodError
    from genlab.metrics.memorization import membership_inference_auc

    g = torch.Generator().manual_seed(seed + 1)
    n = min(n, len(train), len(held_out))
    scores = []
    for data in (train, held_out):
        rows = torch.randperm(len(data), generator=g)[:n]
        # A dynamically binarized train split stores grey levels: score one fixed binarization,
        # as the held-out split is, or the attack would tell the two apart by format alone.
        x = data.batch(rows, generator=g).x
        subset = type(data)(x, data.spec, None if data.labels is None else data.labels[rows])
        try:
            figures = _likelihood(model, subset, None, batch_size, seed, options, keep_nats=True)
        except NoLikelihoodError:
            return {"membership_auc": None}
        scores.append(figures["nats"])
    attack = membership_inference_auc(scores[0], scores[1])
    return {"membership_auc": attack["auc"], "membership_advantage": attack["advantage"]}


def _sample_figures(
    model, train, held_out, metrics, n, seed, redraws, features, features_weights
) -> dict[str, Any]:
    from genlab.metrics.distances import classifier_two_sample_test, fid, kid, mmd_rbf
    from genlab.metrics.memorization import dcr_report
    from genlab.metrics.modes import mode_coverage
    from genlab.metrics.prdc import prdc

    g = torch.Generator().manual_seed(seed)
    n = min(n, len(held_out), len(train))
    real = held_out.x[torch.randperm(len(held_out), generator=g)[:n]]
    reference = train.x[torch.randperm(len(train), generator=g)[:n]]
    cond = None
    if "label" in model.cond_keys:  # ask for the classes in the held-out proportions
        labels = held_out.labels[torch.randperm(len(held_out), generator=g)[:n]]
        cond = {"label": labels}
    extractor = pick_extractor(model.spec, features, features_weights)

    def draw_fake(draw_seed: int) -> Tensor:
        x = model.sample(n, generator=torch.Generator().manual_seed(draw_seed), cond=cond)
        return x.float()

    def reference_features(draw_seed: int) -> Tensor:
        rows = torch.randperm(len(train), generator=torch.Generator().manual_seed(draw_seed))[:n]
        return extractor.features(train.x[rows]).double()

    fake = draw_fake(seed)
    f_real, f_fake, f_ref = (extractor.features(t).double() for t in (real, fake, reference))
    more_fake = [extractor.features(draw_fake(seed + 1 + r)).double() for r in range(redraws)]
    more_ref = [reference_features(seed + 10_000 + r) for r in range(redraws)]
    figures: dict[str, Any] = {
        "num_samples": n,
        "redraws": redraws,
        "feature_network": extractor.describe(),
    }

    def add(name: str, fn: Callable[[Tensor, Tensor], float]) -> None:
        figures[name] = fn(f_real, f_fake)
        figures[f"{name}_real_floor"] = fn(f_real, f_ref)
        if redraws:
            for tag, sets in (("", [f_fake, *more_fake]), ("_real_floor", [f_ref, *more_ref])):
                values = torch.tensor([fn(f_real, f) for f in sets], dtype=torch.float64)
                q = torch.quantile(values, torch.tensor([0.025, 0.975], dtype=torch.float64))
                figures[f"{name}{tag}_low"], figures[f"{name}{tag}_high"] = q.tolist()

    subset = min(n, 1000)
    for name in metrics:
        if name == "fid":
            add("fid", fid)
        elif name == "kid":
            add("kid", lambda a, b: kid(a, b, subset_size=min(subset, len(a)), num_subsets=50)[0])
        elif name == "prdc":
            for key in ("precision", "recall", "density", "coverage"):
                add(key, lambda a, b, key=key: prdc(a, b)[key])
        elif name == "mmd":
            add("mmd_rbf", mmd_rbf)
        elif name == "c2st":
            add(
                "c2st_accuracy",
                lambda a, b: classifier_two_sample_test(a, b, seed=seed)["accuracy"],
            )
        elif name == "modes":
            modes = held_out.info.get("modes")
            if modes is None:
                raise ConfigError(
                    f"metric modes needs a mixture toy with known modes (8gaussians, 25gaussians); "
                    f"{held_out.spec.name} has none"
                )
            std = held_out.info["std"]
            for tag, x in (("", fake), ("_real_floor", real)):
                cover = mode_coverage(x.double(), modes, std)
                figures[f"modes_captured{tag}"] = cover["modes_captured"]
                figures[f"high_quality_share{tag}"] = cover["high_quality_share"]
            figures["num_modes"] = int(len(modes))
        elif name == "memorization":
            report = dcr_report(f_fake, extractor.features(train.x).double(), f_real)
            figures.update({f"dcr_{k}": v for k, v in report.items()})
    return figures


def format_table(result: dict[str, Any]) -> str:
    """A readable Markdown table of the flat figures (floors beside the model's figures)."""
    lines = [
        f"# eval of {result.get('run_dir')}",
        "",
        "| figure | model | real vs real |",
        "| --- | --- | --- |",
    ]
    for key, value in result.items():
        if key.endswith(("_real_floor", "_low", "_high")) or isinstance(value, (dict, list)):
            continue
        floor = result.get(f"{key}_real_floor", "")
        interval = ""
        if f"{key}_low" in result:
            interval = f" [{_fmt(result[f'{key}_low'])}, {_fmt(result[f'{key}_high'])}]"
        if floor != "" and f"{key}_real_floor_low" in result:
            floor = (
                f"{_fmt(floor)} [{_fmt(result[f'{key}_real_floor_low'])}, "
                f"{_fmt(result[f'{key}_real_floor_high'])}]"
            )
        lines.append(f"| {key} | {_fmt(value)}{interval} | {_fmt(floor)} |")
    return "\n".join(lines) + "\n"


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
