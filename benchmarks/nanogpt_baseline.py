"""A plain-PyTorch baseline of nanoGPT's published CPU recipe on Tiny Shakespeare (characters).

nanoGPT (Karpathy, github.com/karpathy/nanoGPT), README "I only have a macbook": train.py with
config/train_shakespeare_char.py and --device=cpu --compile=False --block_size=64
--batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000
--dropout=0.0, which reports a validation loss of about 1.88. The recipe, reproduced here with
our own code (no genlab import in the model or the loop):

- data: the characters of tinyshakespeare.txt, vocabulary = the sorted distinct characters,
  first 90% train, last 10% validation; each batch is 12 windows of 64 (+1) characters at
  uniformly random offsets of the train part;
- model: 4 pre-norm blocks, 4 heads, 128 channels, context 64, no biases (LayerNorm without
  bias too), no dropout, learned positions, the output layer tied to the token embedding,
  GPT-2 initialisation (N(0, 0.02), residual projections scaled by 1/sqrt(2 * layers)),
  attention through scaled_dot_product_attention;
- optimisation: AdamW (betas 0.9, 0.99; weight decay 0.1 on matrices and embeddings, none on
  LayerNorm gains), lr 1e-3 with linear warm-up over 100 iterations ((it + 1) / 101 of lr)
  and cosine decay to 1e-4 at iteration 2000, gradient-norm clipping at 1.0, float32, 2000
  iterations.

`Baseline` trains in chunks (`train_iters(n)`) so that a benchmark can interleave it with
another run in one process. Run alone (`python benchmarks/nanogpt_baseline.py`) it trains the
whole recipe and writes benchmarks/results/nanogpt_baseline.json.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


@dataclass(frozen=True)
class Recipe:
    """nanoGPT's CPU recipe for shakespeare_char."""

    num_layers: int = 4
    num_heads: int = 4
    dim: int = 128
    block_size: int = 64
    batch_size: int = 12
    max_iters: int = 2000
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    lr_decay_iters: int = 2000
    beta1: float = 0.9
    beta2: float = 0.99
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 1337


def char_splits(path: Path = SHAKESPEARE) -> tuple[Tensor, Tensor, list[str]]:
    """(train ids (L1,), validation ids (L2,), vocabulary): the first 90% and the last 10%."""
    text = path.read_text(encoding="utf-8")
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.int64)
    n = int(0.9 * len(ids))
    return ids[:n], ids[n:], chars


class SelfAttention(nn.Module):
    def __init__(self, r: Recipe) -> None:
        super().__init__()
        self.heads = r.num_heads
        self.c_attn = nn.Linear(r.dim, 3 * r.dim, bias=False)
        self.c_proj = nn.Linear(r.dim, r.dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, D)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class TransformerBlock(nn.Module):
    def __init__(self, r: Recipe) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(r.dim, bias=False)
        self.attn = SelfAttention(r)
        self.ln_2 = nn.LayerNorm(r.dim, bias=False)
        self.c_fc = nn.Linear(r.dim, 4 * r.dim, bias=False)
        self.c_proj = nn.Linear(4 * r.dim, r.dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.c_proj(F.gelu(self.c_fc(self.ln_2(x))))


class BaselineGPT(nn.Module):
    """nanoGPT's model at the recipe's size (our own code)."""

    def __init__(self, r: Recipe, vocab_size: int) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab_size, r.dim)
        self.wpe = nn.Embedding(r.block_size, r.dim)
        self.blocks = nn.ModuleList(TransformerBlock(r) for _ in range(r.num_layers))
        self.ln_f = nn.LayerNorm(r.dim, bias=False)
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * r.num_layers) if name.endswith("c_proj.weight") else 0.02
                nn.init.normal_(p, mean=0.0, std=std)

    def forward(self, idx: Tensor) -> Tensor:
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for block in self.blocks:
            x = block(x)
        return F.linear(self.ln_f(x), self.wte.weight)  # (B, T, V), tied output layer


def nanogpt_lr(it: int, r: Recipe) -> float:
    """nanoGPT's get_lr: linear warm-up, cosine decay to min_lr at lr_decay_iters."""
    if it < r.warmup_iters:
        return r.lr * (it + 1) / (r.warmup_iters + 1)
    if it > r.lr_decay_iters:
        return r.min_lr
    ratio = (it - r.warmup_iters) / (r.lr_decay_iters - r.warmup_iters)
    return r.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (r.lr - r.min_lr)


class Baseline:
    """nanoGPT's training loop for the recipe, runnable in chunks of iterations."""

    def __init__(self, train_ids: Tensor, vocab_size: int, recipe: Recipe = Recipe()) -> None:
        self.r = recipe
        torch.manual_seed(recipe.seed)
        self.model = BaselineGPT(recipe, vocab_size)
        decay = [p for p in self.model.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.model.parameters() if p.dim() < 2]
        self.optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": recipe.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=recipe.lr,
            betas=(recipe.beta1, recipe.beta2),
        )
        self.train_ids = train_ids
        self.generator = torch.Generator().manual_seed(recipe.seed)
        self.iter = 0

    def batch(self) -> tuple[Tensor, Tensor]:
        r = self.r
        starts = torch.randint(
            len(self.train_ids) - r.block_size, (r.batch_size,), generator=self.generator
        )
        rows = torch.stack([self.train_ids[s : s + r.block_size + 1] for s in starts.tolist()])
        return rows[:, :-1], rows[:, 1:]

    def train_iters(self, n: int) -> float:
        """Run up to `n` more iterations (never past max_iters); returns the last loss."""
        self.model.train()
        loss = torch.tensor(float("nan"))
        for _ in range(min(n, self.r.max_iters - self.iter)):
            for group in self.optimizer.param_groups:
                group["lr"] = nanogpt_lr(self.iter, self.r)
            x, y = self.batch()
            logits = self.model(x)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.r.grad_clip)
            self.optimizer.step()
            self.iter += 1
        return float(loss.detach())

    @property
    def done(self) -> bool:
        return self.iter >= self.r.max_iters


def val_windows(val_ids: Tensor, num_windows: int, length: int, seed: int = 0) -> Tensor:
    """A fixed set of validation windows (num_windows, length + 1) at seeded random offsets."""
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(len(val_ids) - length, (num_windows,), generator=g)
    return torch.stack([val_ids[s : s + length + 1] for s in starts.tolist()])


@torch.no_grad()
def mean_nll(forward, windows: Tensor, batch: int = 250) -> float:
    """Mean next-token cross-entropy (nats) of `forward` (ids (B, T) -> logits) on windows."""
    total, count = 0.0, 0
    for rows in windows.split(batch):
        logits = forward(rows[:, :-1]).float()
        total += float(
            F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), rows[:, 1:].reshape(-1), reduction="sum"
            )
        )
        count += rows[:, 1:].numel()
    return total / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="200 iterations only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from results_io import write_results

    train_ids, val_ids, chars = char_splits()
    recipe = Recipe(max_iters=200) if args.quick else Recipe()
    baseline = Baseline(train_ids, len(chars), recipe)
    windows = val_windows(val_ids, 2000, recipe.block_size)
    start = time.perf_counter()
    baseline.train_iters(recipe.max_iters)
    seconds = time.perf_counter() - start
    baseline.model.eval()
    val = mean_nll(baseline.model, windows)
    name = "nanogpt_baseline_quick" if args.quick else "nanogpt_baseline"
    figures = {"iters": recipe.max_iters, "train_seconds": seconds, "val_loss": val}
    write_results(
        name,
        figures,
        [
            ("iterations", str(recipe.max_iters)),
            ("train seconds", f"{seconds:.1f}"),
            ("val loss (2,000 fixed windows of 64)", f"{val:.4f}"),
        ],
    )
    print(figures)


if __name__ == "__main__":
    main()
