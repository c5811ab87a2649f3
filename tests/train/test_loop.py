"""The one training loop: per-key step ratios, accumulation, EMA, schedule, divergence, budgets."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from genlab.core.contract import Batch, DataSpec, LossOutput, NeuralModel
from genlab.core.errors import ConfigError, TrainingDiverged
from genlab.data.dataset import Dataset
from genlab.train.checkpoint import latest_checkpoint, load_checkpoint
from genlab.train.config import TrainConfig
from genlab.train.ema import EMA
from genlab.train.loop import fit
from genlab.train.schedule import warmup_cosine


@dataclass(frozen=True)
class ToyConfig:
    nan_at_call: int = 0


class TwoKeyToy(NeuralModel):
    """A linear 'generator' and 'discriminator' with independent quadratic losses."""

    name = "two_key_toy"

    def __init__(self, config: ToyConfig = ToyConfig(), spec: DataSpec | None = None):
        super().__init__()
        self.config = config
        self.spec = spec or DataSpec(modality="points", shape=(2,))
        self.gen = nn.Linear(2, 2)
        self.disc = nn.Linear(2, 1)
        self.calls = {"gen": 0, "disc": 0}
        self.after = 0

    def param_groups(self):
        return {"gen": list(self.gen.parameters()), "disc": list(self.disc.parameters())}

    def loss(self, batch: Batch, *, key: str = "main") -> LossOutput:
        self.calls[key] += 1
        if self.config.nan_at_call and self.calls[key] == self.config.nan_at_call:
            return LossOutput(
                torch.tensor(float("nan"), requires_grad=True) * self.gen.weight.sum()
            )
        if key == "gen":
            loss = ((self.gen(batch.x) - batch.x.flip(1)) ** 2).mean()
        else:
            loss = ((self.disc(batch.x) - 1.0) ** 2).mean()
        return LossOutput(loss, {"value": float(loss.detach())})

    def after_step(self, step: int) -> None:
        self.after += 1

    def sample(self, num_samples, *, generator=None, cond=None):
        z = torch.randn(num_samples, 2, generator=generator)
        with torch.no_grad():
            return self.gen(z)

    def log_likelihood(self, x, *, cond=None):
        raise NotImplementedError("not needed by these tests")


def _data(n: int = 256) -> Dataset:
    x = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))
    return Dataset(x, DataSpec(modality="points", shape=(2,)))


def _cfg(**kw) -> TrainConfig:
    base = dict(steps=10, batch_size=16, progress=False, checkpoint_every=0, num_samples=0)
    base.update(kw)
    return TrainConfig(**base)


def test_steps_per_key_and_after_step():
    torch.manual_seed(0)
    model = TwoKeyToy()
    fit(model, _data(), _cfg(steps=7, steps_per_key={"disc": 3}, grad_accum=2))
    assert model.calls == {"gen": 7 * 2, "disc": 7 * 3 * 2}
    assert model.after == 7


def test_unknown_key_in_steps_per_key_is_an_error():
    with pytest.raises(ConfigError, match="loss keys gen, disc"):
        fit(TwoKeyToy(), _data(), _cfg(steps_per_key={"critic": 5}))


def test_grad_accumulation_equals_the_larger_batch():
    torch.manual_seed(0)
    a = TwoKeyToy()
    b = TwoKeyToy()
    b.load_state_dict(a.state_dict())
    fit(a, _data(), _cfg(steps=5, batch_size=8, grad_accum=2, grad_clip=0))
    fit(b, _data(), _cfg(steps=5, batch_size=16, grad_accum=1, grad_clip=0))
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6, msg=name)


def test_ema_weights_are_the_average_that_is_kept():
    torch.manual_seed(0)
    live = TwoKeyToy()
    averaged = TwoKeyToy()
    averaged.load_state_dict(live.state_dict())
    fit(live, _data(), _cfg(steps=20))
    fit(averaged, _data(), _cfg(steps=20, ema_decay=0.9))
    # With EMA, the model keeps the averaged weights, which lag the live ones.
    assert not torch.allclose(live.gen.weight, averaged.gen.weight)


def test_ema_warmup_ramps_the_decay_and_forgets_the_initial_weights():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model, 0.999, warmup=True)
    assert ema.decay_at(1) == pytest.approx(2 / 11) and ema.decay_at(10**6) == 0.999
    with pytest.raises(ValueError, match="update\\(step\\)"):
        ema.update()
    with torch.no_grad():
        model.weight.fill_(1.0)  # the weights move away from their initial 0 at once
    for step in range(1, 301):
        ema.update(step)
    # the initial weights keep the product of the decays, (2 ... 10) / (302 ... 310) < 1e-15,
    # where a plain 0.999 average keeps 0.999 ** 300 = 74%
    kept = math.prod(ema.decay_at(t) for t in range(1, 301))
    assert kept < 1e-15
    assert ema.shadow["weight"].item() == pytest.approx(1 - kept, abs=1e-6)
    plain = EMA(model, 0.999)
    plain.shadow["weight"].fill_(0.0)
    for _ in range(300):
        plain.update()
    assert plain.shadow["weight"].item() == pytest.approx(1 - 0.999**300, rel=1e-5)


def test_ema_warmup_is_a_training_option():
    torch.manual_seed(0)
    a, b = TwoKeyToy(), TwoKeyToy()
    b.load_state_dict(a.state_dict())
    fit(a, _data(), _cfg(steps=20, ema_decay=0.99))
    fit(b, _data(), _cfg(steps=20, ema_decay=0.99, ema_warmup=True))
    assert not torch.allclose(a.gen.weight, b.gen.weight)
    with pytest.raises(ConfigError, match="ema_decay is 0"):
        _cfg(ema_warmup=True)
    with pytest.raises(ConfigError, match="true or false"):
        _cfg(ema_decay=0.9, ema_warmup="false")


def test_warmup_cosine_schedule():
    f = [warmup_cosine(i, total=100, warmup=10, min_ratio=0.1, cosine=True) for i in range(101)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0) and f[100] == pytest.approx(0.1)
    assert all(x >= y for x, y in zip(f[10:], f[11:]))
    assert warmup_cosine(50, total=100, warmup=0, min_ratio=0.1, cosine=False) == 1.0


def test_divergence_names_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = TwoKeyToy(ToyConfig(nan_at_call=5))
    with pytest.raises(TrainingDiverged, match="step 5") as info:
        fit(model, _data(), _cfg(checkpoint_every=2), run_dir=tmp_path)
    assert info.value.step == 5
    kept = latest_checkpoint(tmp_path / "checkpoints")
    assert kept.name == "step-0000004"
    ckpt = load_checkpoint(kept, model_name="two_key_toy")
    assert all(torch.isfinite(v).all() for v in ckpt["weights"].values())


def test_time_budget_stops_checkpoints_and_resumes(tmp_path):
    torch.manual_seed(0)
    model = TwoKeyToy()
    result = fit(model, _data(), _cfg(steps=10**6, max_seconds=0.2), run_dir=tmp_path)
    assert result.stopped == "time_budget" and 0 < result.steps < 10**6
    assert latest_checkpoint(tmp_path / "checkpoints").name == f"step-{result.steps:07d}"
    again = fit(TwoKeyToy(), _data(), _cfg(steps=result.steps + 3), run_dir=tmp_path, resume=True)
    assert again.steps == result.steps + 3 and again.stopped == "completed"


def test_checkpoint_of_another_model_is_refused(tmp_path):
    torch.manual_seed(0)
    fit(TwoKeyToy(), _data(), _cfg(steps=2), run_dir=tmp_path)
    other = TwoKeyToy()
    other.name = "some_other_model"
    with pytest.raises(Exception, match="not 'some_other_model'"):
        fit(other, _data(), _cfg(steps=4), run_dir=tmp_path, resume=True)


def test_batch_larger_than_data_is_a_clear_error():
    with pytest.raises(Exception, match="fewer than one batch"):
        fit(TwoKeyToy(), _data(8), _cfg(batch_size=16))


def test_bf16_autocast_on_cpu_trains():
    torch.manual_seed(0)
    model = TwoKeyToy()
    result = fit(model, _data(), _cfg(steps=5, precision="bf16"))
    assert result.steps == 5 and all(torch.isfinite(p).all() for p in model.parameters())


def test_fp16_needs_cuda():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        fit(TwoKeyToy(), _data(), _cfg(precision="fp16"))
