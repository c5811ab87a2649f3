"""A multilayer perceptron: the fully connected network several families share.

`MLP(in_dim, hidden, out_dim)` is Linear -> activation (-> dropout) for each hidden width, then
a final Linear with no activation, so the output can be logits, means or log-variances.
"""

from __future__ import annotations

from torch import nn

from genlab.core.errors import ConfigError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "silu": nn.SiLU,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
}


def activation_layer(name: str) -> nn.Module:
    """A fresh activation module by name: one of silu, relu, gelu, tanh."""
    if name not in ACTIVATIONS:
        raise ConfigError(
            f"activation {name!r} is not one of {', '.join(ACTIVATIONS)}; pick one of those"
        )
    return ACTIVATIONS[name]()


class MLP(nn.Sequential):
    """Fully connected network (B, in_dim) -> (B, out_dim).

    Args:
        in_dim: input features.
        hidden: widths of the hidden layers, e.g. (512, 256); () gives a single Linear.
        out_dim: output features (the last layer is linear, no activation).
        activation: "silu", "relu", "gelu" or "tanh", applied after every hidden layer.
        dropout: dropout probability after every hidden activation (0 turns it off).
    """

    def __init__(
        self,
        in_dim: int,
        hidden: tuple[int, ...],
        out_dim: int,
        activation: str = "silu",
        dropout: float = 0.0,
    ) -> None:
        widths = (in_dim, *hidden, out_dim)
        if any(w < 1 for w in widths):
            raise ConfigError(f"MLP widths must be positive, got {widths}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"MLP dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = []
        for d_in, d_out in zip(widths[:-2], widths[1:-1]):
            layers += [nn.Linear(d_in, d_out), activation_layer(activation)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(widths[-2], widths[-1]))
        super().__init__(*layers)
