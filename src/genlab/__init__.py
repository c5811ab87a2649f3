"""genlab: train, sample, evaluate and compare generative models behind one contract."""

__version__ = "0.1.0"

from genlab import data  # noqa: E402
from genlab.core.contract import (  # noqa: E402
    Batch,
    ClassicalModel,
    DataSpec,
    LogLikelihood,
    LossOutput,
    NeuralModel,
)
from genlab.core.persist import load_model as load  # noqa: E402
from genlab.core.registry import create, list_models  # noqa: E402
from genlab.train.config import TrainConfig  # noqa: E402

__all__ = [
    "__version__",
    "Batch",
    "ClassicalModel",
    "DataSpec",
    "LogLikelihood",
    "LossOutput",
    "NeuralModel",
    "TrainConfig",
    "create",
    "data",
    "list_models",
    "load",
]
