"""Groups of independent networks evaluated in one batched call.

Each paper gives every agent its own networks. A group of A independent MLPs is stored as
weights of shape (A, in, out) and evaluated with one ``torch.baddbmm`` per layer, instead of a
Python list of modules: inputs are ``(A, batch, in)`` (agent axis first) and outputs
``(A, batch, out)``. Parameter sharing (seed 004 §IV-C: one actor for all BSs) is A = 1 with the
agents folded into the batch axis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["GroupLinear", "GroupMLP", "activation"]

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "elu": nn.ELU,
    "identity": nn.Identity,
}


def activation(name: str) -> nn.Module:
    """An activation module by name (relu, tanh, sigmoid, elu, identity)."""
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; available: {', '.join(sorted(_ACTIVATIONS))}"
        ) from None


class GroupLinear(nn.Module):
    """A independent affine maps ``y_a = x_a W_a + b_a``.

    Args:
        n_agents: A. in_features, out_features: sizes.

    Shapes: input (A, batch, in) -> output (A, batch, out). Initialisation: each agent's
    weights like ``nn.Linear`` (Kaiming-uniform, a = sqrt(5)), independently drawn.
    """

    def __init__(self, n_agents: int, in_features: int, out_features: int) -> None:
        super().__init__()
        if n_agents < 1 or in_features < 1 or out_features < 1:
            raise ValueError(
                f"n_agents, in_features and out_features must be >= 1, got "
                f"{n_agents}, {in_features}, {out_features}"
            )
        self.n_agents, self.in_features, self.out_features = n_agents, in_features, out_features
        self.weight = nn.Parameter(torch.empty(n_agents, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(n_agents, 1, out_features))
        self.reset_parameters()

    def reset_parameters(self, gain: float | None = None) -> None:
        """nn.Linear's default initialisation per agent, or orthogonal with ``gain``."""
        if gain is None:
            bound = 1.0 / math.sqrt(self.in_features)
            nn.init.uniform_(self.weight, -bound, bound)
            nn.init.uniform_(self.bias, -bound, bound)
        else:
            for a in range(self.n_agents):  # initialisation only, not a hot path
                nn.init.orthogonal_(self.weight.data[a].T, gain=gain)
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[0] != self.n_agents or x.shape[-1] != self.in_features:
            raise ValueError(
                f"expected input (A={self.n_agents}, batch, {self.in_features}), "
                f"got {tuple(x.shape)}"
            )
        return torch.baddbmm(self.bias, x, self.weight)

    def extra_repr(self) -> str:
        return f"agents={self.n_agents}, in={self.in_features}, out={self.out_features}"


class GroupMLP(nn.Module):
    """A independent MLPs with the same architecture.

    Args:
        n_agents: A.
        sizes: layer widths from input to output, e.g. ``(obs_dim, 512, 128, 64, act_dim)``.
        activations: one activation name per hidden layer, or one name for all.
        output_activation: activation after the last layer ("identity" by default).
        output_gain: orthogonal gain of the last layer (None: nn.Linear default).
    """

    def __init__(
        self,
        n_agents: int,
        sizes: Sequence[int],
        activations: str | Sequence[str] = "relu",
        output_activation: str = "identity",
        output_gain: float | None = None,
    ) -> None:
        super().__init__()
        if len(sizes) < 2:
            raise ValueError(f"sizes needs at least input and output widths, got {sizes}")
        hidden = len(sizes) - 2
        names = [activations] * hidden if isinstance(activations, str) else list(activations)
        if len(names) != hidden:
            raise ValueError(f"need {hidden} hidden activations, got {len(names)}")
        layers: list[nn.Module] = []
        for i in range(len(sizes) - 1):
            layers.append(GroupLinear(n_agents, sizes[i], sizes[i + 1]))
            layers.append(activation(names[i] if i < hidden else output_activation))
        if output_gain is not None:
            layers[-2].reset_parameters(gain=output_gain)
        self.net = nn.Sequential(*layers)
        self.n_agents = n_agents
        self.sizes = tuple(sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(A, batch, in) -> (A, batch, out)."""
        return self.net(x)
