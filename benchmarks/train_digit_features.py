"""Train the shipped digit feature networks (`digits28`, `digits8`) from scratch, on the CPU.

Each network trains on its data set's train split only (mnist5k: 4,000 digits; digits: 1,438),
seeded, with light augmentation done with torch ops (a random affine warp per image: rotation,
scale, shift, through `affine_grid` / `grid_sample`), AdamW and a one-cycle learning rate. It is
then scored once on the test split (mnist5k: 1,000; digits: 359), and the weights go to
src/genlab/metrics/features/weights/<name>.safetensors with <name>.json (architecture, test
accuracy, command, date, sha256). Figures go to benchmarks/results/digit_features.{json,md}.

`--validate` instead holds out the last 10% of each class of the train split, trains on the
rest and reports the held-out accuracy, writing nothing: the hyperparameters below were chosen
that way, without looking at the test split.

Usage: python benchmarks/train_digit_features.py [--validate] [--only digits28|digits8]
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import machine, write_results  # noqa: E402

import genlab  # noqa: E402
from genlab.core.persist import atomic_save_tensors, atomic_write_text  # noqa: E402
from genlab.metrics.features import WEIGHTS_DIR, file_sha256  # noqa: E402
from genlab.metrics.features.digits import (  # noqa: E402
    DIGITS8,
    DIGITS28,
    DigitsCNN,
    DigitsNetConfig,
)


@dataclass(frozen=True)
class Recipe:
    """How one network is trained.

    Args:
        data: the genlab data set.
        net: the architecture.
        epochs: passes over the train split.
        batch_size: images per step.
        lr: peak AdamW learning rate of the one-cycle schedule.
        weight_decay: AdamW weight decay.
        label_smoothing: cross-entropy label smoothing.
        max_rotation_deg: augmentation rotation, uniform in +-this.
        max_scale: augmentation scale, uniform in 1 +- this.
        max_shift_px: augmentation shift per axis, uniform in +-this many pixels.
        seed: seeds the initialization, the batch order and the augmentation.
    """

    data: str
    net: DigitsNetConfig
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    label_smoothing: float
    max_rotation_deg: float
    max_scale: float
    max_shift_px: float
    seed: int = 0


RECIPES = {
    "digits28": Recipe(
        data="mnist5k",
        net=DIGITS28,
        epochs=30,
        batch_size=64,
        lr=3e-3,
        weight_decay=1e-3,
        label_smoothing=0.05,
        max_rotation_deg=12.0,
        max_scale=0.1,
        max_shift_px=2.5,
    ),
    "digits8": Recipe(
        data="digits",
        net=DIGITS8,
        epochs=30,
        batch_size=64,
        lr=3e-3,
        weight_decay=1e-3,
        label_smoothing=0.05,
        max_rotation_deg=8.0,
        max_scale=0.08,
        max_shift_px=0.7,
    ),
}


def random_affine(x: torch.Tensor, recipe: Recipe, generator: torch.Generator) -> torch.Tensor:
    """Warp each image (B, 1, S, S) by its own random rotation, scale and shift (bilinear)."""
    batch, size = x.shape[0], x.shape[-1]

    def uniform(half_width: float) -> torch.Tensor:
        return (torch.rand(batch, generator=generator) * 2 - 1) * half_width

    angle = uniform(math.radians(recipe.max_rotation_deg))
    scale = 1 + uniform(recipe.max_scale)
    # affine_grid works in [-1, 1] coordinates, where one pixel is 2 / size.
    shift = torch.stack([uniform(2 * recipe.max_shift_px / size) for _ in range(2)], dim=1)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )  # (B, 2, 3): output pixel -> where it samples the input
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def accuracy(network: DigitsCNN, x: torch.Tensor, labels: torch.Tensor) -> float:
    network.eval()
    with torch.no_grad():
        predicted = torch.cat([network(x[i : i + 500]).argmax(1) for i in range(0, len(x), 500)])
    return float((predicted == labels).float().mean())


def train(recipe: Recipe, x: torch.Tensor, labels: torch.Tensor) -> DigitsCNN:
    """Train a fresh network on (x, labels) with the recipe; returns it in eval mode."""
    torch.manual_seed(recipe.seed)  # initialization
    generator = torch.Generator().manual_seed(recipe.seed)
    network = DigitsCNN(recipe.net)
    steps_per_epoch = math.ceil(len(x) / recipe.batch_size)
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=recipe.lr, total_steps=recipe.epochs * steps_per_epoch
    )
    for _ in range(recipe.epochs):
        network.train()
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), recipe.batch_size):
            rows = order[start : start + recipe.batch_size]
            if len(rows) < 2:  # batch norm needs two samples
                continue
            batch = random_affine(x[rows], recipe, generator)
            loss = F.cross_entropy(
                network(batch), labels[rows], label_smoothing=recipe.label_smoothing
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return network.eval()


def validation_split(labels: torch.Tensor, fraction: float = 0.1) -> torch.Tensor:
    """Boolean mask of the last `fraction` of each class's rows (the held-out part)."""
    held_out = torch.zeros(len(labels), dtype=torch.bool)
    for label in labels.unique():
        rows = torch.nonzero(labels == label).flatten()
        held_out[rows[len(rows) - max(1, round(fraction * len(rows))) :]] = True
    return held_out


def command() -> str:
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def ship(name: str, recipe: Recipe, network: DigitsCNN, figures: dict) -> None:
    """Write weights/<name>.safetensors and weights/<name>.json (with the file's sha256)."""
    tensor_file = WEIGHTS_DIR / f"{name}.safetensors"
    atomic_save_tensors(tensor_file, network.state_dict(), {"extractor": name})
    tensor_file.chmod(0o644)  # package data: readable by every user of an installed genlab
    meta = {
        "extractor": name,
        "architecture": asdict(recipe.net),
        "sha256": file_sha256(tensor_file),
        "size_bytes": tensor_file.stat().st_size,
        "num_parameters": sum(p.numel() for p in network.parameters()),
        "train_data": f"{recipe.data} train ({figures[f'{name}_train_rows']:,} images)",
        "test_data": f"{recipe.data} test ({figures[f'{name}_test_rows']:,} images)",
        "test_accuracy": figures[f"{name}_test_accuracy"],
        "train_seconds": figures[f"{name}_train_seconds"],
        "recipe": {k: v for k, v in asdict(recipe).items() if k != "net"},
        "command": command(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "torch_version": machine()["torch_version"],
    }
    atomic_write_text(WEIGHTS_DIR / f"{name}.json", json.dumps(meta, indent=2) + "\n")
    (WEIGHTS_DIR / f"{name}.json").chmod(0o644)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--validate", action="store_true", help="score on a held-out part of train; write nothing"
    )
    parser.add_argument("--only", choices=sorted(RECIPES), help="train one network")
    args = parser.parse_args()
    torch.set_num_threads(2)
    names = [args.only] if args.only else sorted(RECIPES, reverse=True)
    figures: dict = {}
    for name in names:
        recipe = RECIPES[name]
        train_set = genlab.data.load(recipe.data, split="train")
        x, labels = train_set.x, train_set.labels
        if args.validate:
            held_out = validation_split(labels)
            x_eval, labels_eval = x[held_out], labels[held_out]
            x, labels = x[~held_out], labels[~held_out]
        else:
            test_set = genlab.data.load(recipe.data, split="test")
            x_eval, labels_eval = test_set.x, test_set.labels
        start, start_cpu = time.perf_counter(), time.process_time()
        network = train(recipe, x, labels)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
        score = accuracy(network, x_eval, labels_eval)
        split = "validation" if args.validate else "test"
        print(
            f"{name}: {split} accuracy {score:.4f} ({len(x_eval)} images), "
            f"{seconds:.1f} s wall, {cpu_seconds:.1f} s CPU"
        )
        figures.update(
            {
                f"{name}_{split}_accuracy": round(score, 4),
                f"{name}_train_rows": len(x),
                f"{name}_{split}_rows": len(x_eval),
                f"{name}_train_seconds": round(seconds, 1),
                f"{name}_train_cpu_seconds": round(cpu_seconds, 1),
            }
        )
        if not args.validate:
            ship(name, recipe, network, figures)
            figures[f"{name}_weights_bytes"] = (WEIGHTS_DIR / f"{name}.safetensors").stat().st_size
    if args.validate or args.only:
        return
    figures["train_seconds"] = round(sum(figures[f"{n}_train_seconds"] for n in names), 1)
    figures["train_cpu_seconds"] = round(sum(figures[f"{n}_train_cpu_seconds"] for n in names), 1)
    table = [(k, str(v)) for k, v in figures.items()]
    path = write_results("digit_features", figures, table)
    with open(path.with_suffix(".md"), "a") as f:
        f.write(NOTES)


NOTES = """
Each network trains from scratch on its train split only and is scored once on its test split
(the hyperparameters were chosen with `--validate`, on the last 10% of each class of the train
split). Architectures: `digits28` = three conv stages 32 -> 64 -> 128 (conv 3x3, batch norm,
ReLU, max-pool 2x2), a 128-d ReLU feature layer, 10 logits; `digits8` = two stages 32 -> 64, a
64-d feature layer. Training: AdamW, one-cycle learning rate, label smoothing 0.05, a random
affine warp per image (rotation, scale, shift) with `affine_grid` / `grid_sample`; 2 torch threads.
Wall seconds depend on what else the machine runs; CPU seconds are the process's own.
The weights and their metadata (with sha256) are in src/genlab/metrics/features/weights/.
"""


if __name__ == "__main__":
    main()
