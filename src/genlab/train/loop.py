"""The one training loop: `fit(model, data, config)` drives every neural family.

Per outer step, each loss key of `model.param_groups()` takes `steps_per_key[key]` optimizer
steps (e.g. 5 discriminator steps per generator step), each accumulating `grad_accum`
micro-batches. The loop never asks which family it drives.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genlab.core.config import config_to_dict
from genlab.core.contract import NeuralModel
from genlab.core.errors import ConfigError, TrainingDiverged
from genlab.data.dataset import Dataset
from genlab.train.batches import BatchStream
from genlab.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from genlab.train.config import TrainConfig
from genlab.train.distributed import (
    average_logs,
    gather_rng_states,
    gather_states,
    init_from_env,
    no_sync,
    wrap,
)
from genlab.train.ema import EMA
from genlab.train.logging import MetricsLog, plot_loss_curve
from genlab.train.schedule import warmup_cosine


@dataclass
class FitResult:
    """What a call to `fit` did."""

    steps: int
    seconds: float
    stopped: str  # "completed", "time_budget"
    last_logs: dict[str, float] = field(default_factory=dict)
    run_dir: Path | None = None


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """The training device: "auto" is CUDA (this process's GPU under torchrun) when available,
    else the CPU; any other name is checked."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"train.device {name!r} is not a device: use auto, cpu or cuda[:N]"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "train.device is cuda but no CUDA GPU is available: use device=auto or cpu"
        )
    return device


def autocast_for(precision: str, device: torch.device) -> tuple[Any, bool]:
    """The autocast context for `precision` on `device`, and whether fp16 loss scaling is needed.

    "auto" is bf16 on a CUDA device that supports it and fp32 on the CPU (bf16 autocast pays off
    on CPUs only for matmul-heavy models; choose it there with precision=bf16).
    """
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "fp32":
        return contextlib.nullcontext, False
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("train.precision=fp16 needs a CUDA device: use bf16 on the CPU")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return (lambda: torch.autocast(device.type, dtype=dtype)), precision == "fp16"


def _check_groups(model: nn.Module, groups: dict[str, list[nn.Parameter]]) -> None:
    seen: dict[int, str] = {}
    for key, params in groups.items():
        if not params:
            raise ValueError(f"{type(model).__name__}.param_groups()[{key!r}] is empty")
        for p in params:
            if id(p) in seen:
                raise ValueError(f"a parameter is in both groups {seen[id(p)]!r} and {key!r}")
            seen[id(p)] = key
    missing = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in seen]
    if missing:
        raise ValueError(f"parameters in no group of param_groups(): {', '.join(missing[:5])}")


def fit(
    model: NeuralModel,
    data: Dataset,
    config: TrainConfig,
    *,
    run_dir: str | Path | None = None,
    resume: bool = False,
) -> FitResult:
    """Train `model` on `data` as `config` says; checkpoints and logs go into `run_dir`.

    Args:
        model: any registered neural model (the contract in genlab.core.contract).
        data: the training set; batches come from `data.batch(indices, generator=...)`.
        config: the train section of the run config.
        run_dir: the run folder (metrics.jsonl, checkpoints/, samples/, plots/), or None to
            train without writing anything.
        resume: continue from the newest checkpoint in `run_dir/checkpoints`; the continuation
            is bitwise identical to an uninterrupted run on the same machine.

    Under torchrun (WORLD_SIZE > 1) the same call trains with DistributedDataParallel: each
    rank takes `batch_size` rows of every global batch of `batch_size * world_size`, and only
    rank 0 writes logs, samples and checkpoints.

    Returns:
        A FitResult. The trained weights stay in `model` (the EMA weights when EMA is on).

    Raises:
        TrainingDiverged: a loss or gradient became non-finite; no checkpoint is written after
            it, so the last good one stays.
    """
    dist_info = init_from_env()
    run_dir = Path(run_dir) if run_dir is not None else None
    writer_dir = run_dir if dist_info.is_main else None  # only rank 0 writes
    device = pick_device(config.device, dist_info.local_rank)
    autocast, needs_scaler = autocast_for(config.precision, device)
    # Dropout and noise inside losses draw from the global RNG: seeded here, checkpointed.
    torch.manual_seed(config.seed + dist_info.rank)
    model.to(device)
    model.train()

    groups = model.param_groups()
    _check_groups(model, groups)
    keys = list(groups)
    unknown = set(config.steps_per_key) | set(config.lr_per_key)
    unknown -= set(keys)
    if unknown:
        raise ConfigError(
            f"train.steps_per_key/lr_per_key name {', '.join(sorted(unknown))}, but model "
            f"{model.name} has loss keys {', '.join(keys)}"
        )
    repeats = {k: config.steps_per_key.get(k, 1) for k in keys}
    optimizers = {
        k: torch.optim.AdamW(
            groups[k],
            lr=config.lr_per_key.get(k, config.lr),
            betas=config.betas,
            weight_decay=config.weight_decay,
        )
        for k in keys
    }
    schedulers = {
        k: torch.optim.lr_scheduler.LambdaLR(
            optimizers[k],
            functools.partial(
                warmup_cosine,
                total=config.steps * repeats[k],
                warmup=config.warmup_steps * repeats[k],
                min_ratio=config.min_lr_ratio,
                cosine=config.schedule == "cosine",
            ),
        )
        for k in keys
    }
    scaler = torch.amp.GradScaler(device.type, enabled=needs_scaler)
    ema = EMA(model, config.ema_decay, warmup=config.ema_warmup) if config.ema_decay > 0 else None
    loss_module = wrap(model, dist_info, device, len(keys))
    stream = BatchStream(
        len(data),
        config.batch_size,
        seed=config.seed,
        rank=dist_info.rank,
        world_size=dist_info.world_size,
    )
    # Per-batch randomness (dynamic binarization), one stream per rank.
    data_generator = torch.Generator().manual_seed(config.seed + 1 + 7919 * dist_info.rank)

    step = 0
    checkpoints = run_dir / "checkpoints" if run_dir is not None else None
    if resume:
        found = latest_checkpoint(checkpoints) if checkpoints is not None else None
        if found is not None:
            ckpt = load_checkpoint(found, model_name=model.name)
            model.import_state(ckpt["weights"])
            state = ckpt["state"]
            for k in keys:
                optimizers[k].load_state_dict(state["optimizers"][k])
                schedulers[k].load_state_dict(state["schedulers"][k])
            if ema is not None and ckpt["ema"] is not None:
                ema.load_state_dict(ckpt["ema"])
            if needs_scaler:
                scaler.load_state_dict(state["scaler"])
            stream.load_state_dict(state["stream"])
            if len(state["torch_rngs"]) == dist_info.world_size:
                data_generator.set_state(state["data_generators"][dist_info.rank])
                torch.set_rng_state(state["torch_rngs"][dist_info.rank])
            else:  # another number of processes: the order of batches goes on, noise reseeds
                warnings.warn(
                    f"resuming a {len(state['torch_rngs'])}-process checkpoint with "
                    f"{dist_info.world_size} processes: random streams are reseeded, so the "
                    "continuation is not bitwise equal to an uninterrupted run",
                    stacklevel=2,
                )
            cuda_rngs = state.get("cuda_rngs", [])
            if device.type == "cuda" and len(cuda_rngs) == dist_info.world_size:
                torch.cuda.set_rng_state(cuda_rngs[dist_info.rank], device)
            step = int(ckpt["meta"]["step"])
    log = MetricsLog(
        writer_dir / "metrics.jsonl" if writer_dir else None, resume_step=step if resume else None
    )

    saved_step = step  # the step of the newest checkpoint on disk (or the resumed one)

    def write_checkpoint() -> None:
        nonlocal saved_step
        saved_step = step
        if checkpoints is None:
            return
        # Every rank's RNG streams (a collective call: all ranks take part), written by rank 0.
        torch_rngs = gather_rng_states(dist_info)
        generators = gather_states(dist_info, data_generator.get_state())
        cuda_rngs = (
            gather_states(dist_info, torch.cuda.get_rng_state(device))
            if device.type == "cuda"
            else []
        )
        if not dist_info.is_main:
            return
        state = {
            "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in schedulers.items()},
            "scaler": scaler.state_dict() if needs_scaler else {},
            "stream": stream.state_dict(),
            "data_generators": generators,
            "torch_rngs": torch_rngs,
        }
        if cuda_rngs:
            state["cuda_rngs"] = cuda_rngs
        save_checkpoint(
            checkpoints,
            step,
            model_name=model.name,
            model_config=config_to_dict(model.config),
            weights=model.export_state(),
            ema_weights=ema.state_dict() if ema is not None else None,
            state=state,
            keep=config.keep_checkpoints,
        )

    def write_samples(tag: str) -> None:
        if writer_dir is None or config.num_samples == 0:
            return
        from genlab.data.writers import preview_suffix
        from genlab.data.writers import write_samples as write

        # Sampling must not move the training RNG, or a resumed run would differ.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            with ema.swapped_in() if ema is not None else contextlib.nullcontext():
                x = model.sample(
                    config.num_samples,
                    generator=torch.Generator(device).manual_seed(config.seed),
                    cond=preview_cond(model, config.num_samples, device),
                )
        model.train()
        write(x.cpu(), model.spec, writer_dir / "samples" / f"{tag}{preview_suffix(model.spec)}")

    progress = _progress_bar(config, step) if dist_info.is_main else None
    start_time = time.perf_counter()
    stopped = "completed"
    last_logs: dict[str, float] = {}
    while step < config.steps:
        step += 1
        logs: dict[str, float] = {}
        for key in keys:
            for _ in range(repeats[key]):
                model.zero_grad(set_to_none=True)
                total = 0.0
                for micro in range(config.grad_accum):
                    batch = data.batch(stream.next(), generator=data_generator).to(device)
                    # DDP all-reduces gradients on the last micro-batch only.
                    accumulating = micro < config.grad_accum - 1
                    with no_sync(loss_module, accumulating):
                        with autocast():
                            out = loss_module(batch, key)
                        loss = out.loss.float() / config.grad_accum
                        scaler.scale(loss).backward()
                    total += float(loss.detach())
                    for name, value in out.logs.items():
                        logs[f"{key}/{name}"] = (
                            logs.get(f"{key}/{name}", 0.0) + value / config.grad_accum
                        )
                # Checked after backward so that under DDP every rank reaches the all-reduce (a
                # NaN on one rank then reaches every rank's gradients, and all of them stop).
                if not math.isfinite(total):
                    raise _diverged("loss", key, step, total, checkpoints)
                scaler.unscale_(optimizers[key])
                norm = torch.nn.utils.clip_grad_norm_(
                    groups[key], config.grad_clip if config.grad_clip > 0 else math.inf
                )
                if not torch.isfinite(norm) and not needs_scaler:
                    raise _diverged("gradient norm", key, step, float(norm), checkpoints)
                scaler.step(optimizers[key])
                scaler.update()
                schedulers[key].step()
                logs[f"loss/{key}"] = total
                logs[f"grad_norm/{key}"] = float(norm)
        model.after_step(step)
        if ema is not None:
            ema.update(step)
        last_logs = logs
        elapsed = time.perf_counter() - start_time
        if step % config.log_every == 0 or step == config.steps:
            logs = average_logs(dist_info, logs)
            lrs = {f"lr/{k}": s.get_last_lr()[0] for k, s in schedulers.items()}
            log.write({"step": step, "seconds": round(elapsed, 4), **logs, **lrs})
        if progress is not None:
            progress.update(1)
            progress.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k.startswith("loss/")})
        if config.sample_every and step % config.sample_every == 0:
            write_samples(f"step-{step:07d}")
        over_budget = config.max_seconds > 0 and elapsed >= config.max_seconds
        if config.checkpoint_every and step % config.checkpoint_every == 0 or over_budget:
            write_checkpoint()
        if over_budget and step < config.steps:
            stopped = "time_budget"
            break
    if progress is not None:
        progress.close()
    if saved_step != step:
        write_checkpoint()
    if ema is not None:
        model.import_state(ema.state_dict())
    model.eval()
    if writer_dir is not None:
        write_samples("final")
        plot_loss_curve(writer_dir / "metrics.jsonl", writer_dir / "plots" / "loss.png")
    return FitResult(step, time.perf_counter() - start_time, stopped, last_logs, run_dir)


def preview_cond(model, num_samples: int, device: torch.device) -> dict | None:
    """Conditioning for preview grids: classes 0, 1, 2, ... cycling, for models that need labels."""
    if "label" not in model.cond_keys:
        return None
    labels = torch.arange(num_samples, device=device) % model.spec.num_classes
    return {"label": labels}


def _diverged(
    what: str, key: str, step: int, value: float, checkpoints: Path | None
) -> TrainingDiverged:
    kept = latest_checkpoint(checkpoints) if checkpoints is not None else None
    where = (
        f"the last good checkpoint {kept} is kept" if kept else "no checkpoint had been written yet"
    )
    return TrainingDiverged(
        f"training diverged: the {what} for key '{key}' became {value} at step {step}; {where}. "
        "Lower train.lr, keep train.grad_clip on, or use train.precision=fp32.",
        step,
    )


def _progress_bar(config: TrainConfig, start: int):
    if not config.progress:
        return None
    from tqdm.auto import tqdm

    # disable=None: no bar when stderr is not a terminal (CI logs, files).
    return tqdm(
        total=config.steps,
        initial=start,
        unit="step",
        dynamic_ncols=True,
        leave=False,
        disable=None,
    )
