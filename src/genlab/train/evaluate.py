"""`genlab eval`: the held-out log-likelihood of a run, with its kind, into eval/metrics.json."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from genlab.core.errors import ConfigError, GenlabError
from genlab.core.persist import atomic_write_text
from genlab.data import load as load_data


def evaluate_run(
    run_dir: str | Path,
    *,
    split: str = "test",
    max_rows: int | None = None,
    batch_size: int = 250,
    seed: int = 0,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Mean log-likelihood (nats), NLL, bits/dim of a run's model on a data split.

    Args:
        run_dir: a run folder written by `genlab train`.
        split: the data split to score.
        max_rows: score only the first rows (None: all).
        batch_size: rows per `log_likelihood` call.
        seed: seeds the generator given to models whose bound is stochastic (IWAE).
        options: passed to `model.log_likelihood` (e.g. {"k": 100} for the VAE's IWAE bound).

    Returns:
        A flat dict of figures, also written to `run_dir/eval/metrics.json`.
    """
    from genlab.train.run import CONFIG_FILE, load_run

    run_dir = Path(run_dir)
    model, config, spec = load_run(run_dir)
    if not config:
        raise GenlabError(
            f"{run_dir} has no {CONFIG_FILE}: eval needs a run folder from `genlab train`"
        )
    data_opts = dict(config.get("data") or {})
    data = load_data(data_opts.pop("name"), split=split, **data_opts)
    if "label" in model.cond_keys and data.labels is None:
        raise GenlabError(f"{model.name} is class-conditional but the {split} split has no labels")
    x = data.x if max_rows is None else data.x[:max_rows]
    labels = data.labels if (data.labels is None or max_rows is None) else data.labels[:max_rows]
    options = dict(options or {})
    generator = torch.Generator().manual_seed(seed)
    accepts_generator = "generator" in _parameters(model.log_likelihood)
    start = time.perf_counter()
    parts, kind, details = [], None, {}
    for i in range(0, x.shape[0], batch_size):
        needs_labels = "label" in model.cond_keys
        cond = {"label": labels[i : i + batch_size]} if needs_labels else None
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
    stderr = float(nats.std() / math.sqrt(len(nats))) if len(nats) > 1 else 0.0
    result: dict[str, Any] = {
        "model": model.name,
        "conditioned_on": list(model.cond_keys),
        "split": split,
        "num_rows": int(nats.numel()),
        "kind": kind,
        "log_likelihood_nats": mean,
        "log_likelihood_stderr": stderr,
        "nll_nats": -mean,
        "bits_per_dim": -mean / (spec.num_dims * math.log(2)),
        "options": {k: v for k, v in options.items()},
        "details": details,
        "eval_seconds": round(time.perf_counter() - start, 3),
    }
    if data.true_log_density is not None:
        result["true_log_likelihood_nats"] = float(data.true_log_density(x).double().mean())
    out = run_dir / "eval" / "metrics.json"
    atomic_write_text(out, json.dumps(result, indent=2, default=str))
    return result


def _parameters(fn) -> set[str]:
    import inspect

    return set(inspect.signature(fn).parameters)
