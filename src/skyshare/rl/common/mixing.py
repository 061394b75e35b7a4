"""QMIX monotonic mixing networks (Rashid et al., ICML 2018), batched over independent mixers.

A mixing network merges the per-agent values ``Q_a`` into a joint value ``Q_tot`` whose weights
are produced by hypernetworks from the global state ``s`` and made non-negative, so that
``dQ_tot / dQ_a >= 0`` for every agent (Rashid et al. 2018, eq. (4)); seed 004 §IV-B uses such
a network to merge the BSs' critics (TD3-MIX, Fig. 2). With ``n_mixers = G`` several
independent mixers (TD3's twin ``Q_tot,Theta_1``, ``Q_tot,Theta_2``) run as one batched module,
built from :class:`~skyshare.rl.common.networks.GroupMLP`.

For the agent values ``q: (A,)`` and state ``s`` of one sample and mixer (Rashid et al. §4.3;
pymarl's ``QMixer``)::

    W1 = |hyper_w1(s)|   (A, E)      b1 = hyper_b1(s)   (E,)
    W2 = |hyper_w2(s)|   (E, 1)      V  = value(s)      (1,)   (state-dependent bias)
    hidden = elu(q W1 + b1)          Q_tot = hidden W2 + V

``|.|`` is the absolute value (QMIX) or softplus (``weight_activation``); ELU is increasing, so
``Q_tot`` is monotone non-decreasing in each ``q_a``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn
from torch.nn import functional

from skyshare.errors import ConfigError, ShapeError
from skyshare.rl.common.networks import GroupMLP

__all__ = ["QMixer"]


class QMixer(nn.Module):
    """G independent QMIX mixing networks, evaluated in one batched call.

    Args:
        n_agents: A, the number of agent values mixed (the BSs in seed 004).
        state_dim: S, size of the global state the hypernetworks read.
        n_mixers: G independent mixers (2 for TD3's twin mixers).
        embed_dim: E, width of the mixing layer (Rashid et al. 2018: 32).
        hypernet_hidden: hidden widths of the hypernetworks producing W1 and W2 (pymarl's two-
            layer hypernetworks: (64,); () gives the single linear layer of the QMIX paper).
        weight_activation: "abs" (QMIX) or "softplus" to make W1 and W2 non-negative.

    Shapes:
        forward(agent_q: (G, N, A), state: (N, S) or (G, N, S)) -> (G, N).
    """

    def __init__(
        self,
        n_agents: int,
        state_dim: int,
        *,
        n_mixers: int = 1,
        embed_dim: int = 32,
        hypernet_hidden: Sequence[int] = (64,),
        weight_activation: Literal["abs", "softplus"] = "abs",
    ) -> None:
        super().__init__()
        for name, value in (
            ("n_agents", n_agents),
            ("state_dim", state_dim),
            ("n_mixers", n_mixers),
            ("embed_dim", embed_dim),
        ):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value}")
        if weight_activation not in ("abs", "softplus"):
            raise ConfigError(
                f"weight_activation must be 'abs' or 'softplus', got {weight_activation!r}"
            )
        hidden = tuple(int(h) for h in hypernet_hidden)
        if any(h < 1 for h in hidden):
            raise ConfigError(f"hypernet_hidden widths must be >= 1, got {hypernet_hidden}")
        self.n_agents, self.state_dim, self.n_mixers = n_agents, state_dim, n_mixers
        self.embed_dim = embed_dim
        self.weight_activation = weight_activation
        G, S, E = n_mixers, state_dim, embed_dim
        self.hyper_w1 = GroupMLP(G, (S, *hidden, n_agents * E))
        self.hyper_w2 = GroupMLP(G, (S, *hidden, E))
        self.hyper_b1 = GroupMLP(G, (S, E))
        self.value = GroupMLP(G, (S, E, 1))  # V(s), Rashid et al.: one hidden ReLU layer

    def _non_negative(self, x: torch.Tensor) -> torch.Tensor:
        return x.abs() if self.weight_activation == "abs" else functional.softplus(x)

    def mixing_weights(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The non-negative weights ``W1: (G, N, A, E)`` and ``W2: (G, N, E)`` for ``state``."""
        state = self._check_state(state)
        G, N = self.n_mixers, state.shape[1]
        w1 = self._non_negative(self.hyper_w1(state)).reshape(G, N, self.n_agents, self.embed_dim)
        w2 = self._non_negative(self.hyper_w2(state))
        return w1, w2

    def forward(self, agent_q: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """Mix per-agent values: ``agent_q: (G, N, A)``, ``state: (N, S)`` or ``(G, N, S)``
        -> ``Q_tot: (G, N)``."""
        G, A = self.n_mixers, self.n_agents
        if agent_q.ndim != 3 or agent_q.shape[0] != G or agent_q.shape[2] != A:
            raise ShapeError(f"agent_q must be (G={G}, N, A={A}), got {tuple(agent_q.shape)}")
        state = self._check_state(state)
        if state.shape[1] != agent_q.shape[1]:
            raise ShapeError(
                f"state has {state.shape[1]} samples but agent_q has {agent_q.shape[1]}"
            )
        w1, w2 = self.mixing_weights(state)  # (G, N, A, E), (G, N, E)
        b1 = self.hyper_b1(state)  # (G, N, E)
        hidden = functional.elu(torch.einsum("gna,gnae->gne", agent_q, w1) + b1)
        return (hidden * w2).sum(-1) + self.value(state).squeeze(-1)

    def _check_state(self, state: torch.Tensor) -> torch.Tensor:
        if state.ndim == 2:
            state = state.unsqueeze(0).expand(self.n_mixers, -1, -1)
        if state.ndim != 3 or state.shape[0] != self.n_mixers or state.shape[2] != self.state_dim:
            raise ShapeError(
                f"state must be (N, S={self.state_dim}) or (G={self.n_mixers}, N, S), "
                f"got {tuple(state.shape)}"
            )
        return state

    def extra_repr(self) -> str:
        return (
            f"mixers={self.n_mixers}, agents={self.n_agents}, state={self.state_dim}, "
            f"embed={self.embed_dim}, weights={self.weight_activation}"
        )
