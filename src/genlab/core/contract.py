"""The model contract every family implements.

Neural models are `torch.nn.Module`s that subclass `NeuralModel`; classical models follow
scikit-learn inside and subclass `ClassicalModel`. Both expose `sample` and `log_likelihood`
with the same signatures, so every family can be sampled, scored, saved and compared alike.
See docs/architecture.md for the full statement.
"""

from __future__ import annotations

import abc
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor, nn

from genlab.core.errors import GenlabError

if TYPE_CHECKING:
    from genlab.data.dataset import Dataset
    from genlab.train.config import TrainConfig

Modality = Literal["points", "image", "text", "tabular", "sequence"]
LikelihoodKind = Literal["exact", "lower_bound", "estimate"]

DATA_SPEC_VERSION = 1


@dataclass(frozen=True)
class DataSpec:
    """What a model needs to know about its data, saved into every run.

    Args:
        modality: one of points, image, text, tabular, sequence.
        shape: the shape of one sample, e.g. (2,) for points or (1, 28, 28) for images.
        name: the data set's name (for provenance and messages).
        num_classes: number of label classes when the data set has labels, else None.
        vocab: the tokens, for text and discrete sequences.
        columns: the column schema, for tables.
        value_range: (low, high) of the values; images are always (0, 1).
        discrete_levels: number of distinct values per dimension for quantized data
            (2 for binarized images, 256 for 8-bit), None for continuous data.
        tokenizer: for text, the tokenizer as a JSON-able dict (kind and its state), so a model
            rebuilt from its run folder encodes and decodes text without the data.
    """

    modality: Modality
    shape: tuple[int, ...]
    name: str = ""
    num_classes: int | None = None
    vocab: tuple[str, ...] | None = None
    columns: tuple[dict[str, Any], ...] | None = None
    value_range: tuple[float, float] | None = None
    discrete_levels: int | None = None
    tokenizer: dict[str, Any] | None = None

    @property
    def num_dims(self) -> int:
        """Number of scalar values in one sample."""
        n = 1
        for s in self.shape:
            n *= s
        return n

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["version"] = DATA_SPEC_VERSION
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DataSpec:
        from genlab.core.errors import CheckpointError

        d = dict(d)
        version = d.pop("version", 1)
        if version > DATA_SPEC_VERSION:
            raise CheckpointError(
                f"data spec has format version {version}, newer than this genlab "
                f"understands ({DATA_SPEC_VERSION}): upgrade genlab to read it"
            )
        d["shape"] = tuple(d["shape"])
        for key in ("vocab", "columns", "value_range"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        return cls(**d)

    def save(self, path: str | Path) -> None:
        from genlab.core.persist import atomic_write_text

        atomic_write_text(Path(path), json.dumps(self.to_json(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> DataSpec:
        return cls.from_json(json.loads(Path(path).read_text()))


@dataclass
class Batch:
    """One batch: data `x` and optional conditioning such as `cond["label"]` (int64 (B,))."""

    x: Tensor
    cond: dict[str, Tensor] = field(default_factory=dict)

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.x.to(device), {k: v.to(device) for k, v in self.cond.items()})

    def __len__(self) -> int:
        return self.x.shape[0]


@dataclass
class LossOutput:
    """A scalar loss to minimise and float logs to record (already detached)."""

    loss: Tensor
    logs: dict[str, float] = field(default_factory=dict)


@dataclass
class LogLikelihood:
    """Per-sample log-likelihood in nats, shape (B,), and what kind of figure it is.

    kind: "exact" (flows, autoregressive, GMM), "lower_bound" (ELBO, IWAE) or "estimate"
    (AIS, probability-flow ODE with a trace estimator).
    """

    nats: Tensor
    kind: LikelihoodKind
    details: dict[str, Any] = field(default_factory=dict)

    def mean(self) -> float:
        return float(self.nats.double().mean())

    def bits_per_dim(self, num_dims: int) -> float:
        """Negative mean log-likelihood in bits per dimension."""
        return -self.mean() / (num_dims * torch.log(torch.tensor(2.0, dtype=torch.float64)).item())


class NoLikelihoodError(GenlabError):
    """Raised by families that have no likelihood (GANs); shown without a traceback."""


class GenerativeModel(abc.ABC):
    """What every registered model has: a name, a config, a data spec, sample, likelihood, save."""

    name: str
    config: Any
    spec: DataSpec
    #: the conditioning inputs `sample` requires, e.g. ("label",) for a class-conditional model
    cond_keys: tuple[str, ...] = ()

    @abc.abstractmethod
    def sample(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        cond: dict[str, Tensor] | None = None,
        **options: Any,
    ) -> Tensor:
        """Draw `num_samples` samples in the data set's space, shape (N, *spec.shape)."""

    @abc.abstractmethod
    def log_likelihood(
        self, x: Tensor, *, cond: dict[str, Tensor] | None = None, **options: Any
    ) -> LogLikelihood:
        """Per-sample log-likelihood (nats) of `x`, shape (B,), with its kind."""

    @abc.abstractmethod
    def export_state(self) -> dict[str, Tensor]:
        """All fitted state as named tensors (saved with safetensors, never pickled)."""

    @abc.abstractmethod
    def import_state(self, tensors: dict[str, Tensor]) -> None:
        """Restore the state written by `export_state`."""

    def save(self, directory: str | Path) -> Path:
        """Write `model.json` and `weights.safetensors` into `directory` (atomically)."""
        from genlab.core.persist import save_model

        return save_model(self, Path(directory))


class NeuralModel(GenerativeModel, nn.Module):
    """Base of the neural families: a `torch.nn.Module` trained by `genlab.train.fit`.

    Subclasses implement `param_groups`, `loss`, `sample` and `log_likelihood`; `after_step`
    is for non-gradient updates (codebook EMA, replay buffers) and does nothing by default.
    """

    def __init__(self) -> None:
        nn.Module.__init__(self)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters per loss key; one optimizer is built per key."""
        return {"main": list(self.parameters())}

    @abc.abstractmethod
    def loss(self, batch: Batch, *, key: str = "main") -> LossOutput:
        """The loss for the optimizer of `key`, on one batch."""

    def after_step(self, step: int) -> None:  # noqa: B027 - optional hook, no-op by default
        """Non-gradient updates after each optimizer step."""

    def export_state(self) -> dict[str, Tensor]:
        return {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}

    def import_state(self, tensors: dict[str, Tensor]) -> None:
        from genlab.core.errors import CheckpointError

        try:
            self.load_state_dict(tensors, strict=True)
        except RuntimeError as e:
            raise CheckpointError(
                f"weights do not fit a '{self.name}' model with this config: {e}. "
                "Load them with the config they were trained with (the run's config.yaml)."
            ) from None

    def fit(
        self, data: Dataset, train: TrainConfig | None = None, **fit_options: Any
    ) -> NeuralModel:
        """Train with the one training loop, `genlab.train.fit`; returns self."""
        from genlab.train.config import TrainConfig
        from genlab.train.loop import fit

        fit(self, data, train or TrainConfig(), **fit_options)
        return self


class ClassicalModel(GenerativeModel):
    """Base of the classical families: scikit-learn conventions inside, `fit(data) -> self`."""

    @abc.abstractmethod
    def fit(self, data: Dataset, train: TrainConfig | None = None, **fit_options: Any) -> Any:
        """Fit to a data set (the train config's seed is honoured); returns self."""
