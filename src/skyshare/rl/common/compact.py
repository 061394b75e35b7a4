"""A compact, decision-only form of the on-policy BS policies (CUP, PPO-penalty).

The seed-000 BS actor reads a 3996-value observation (8) through a first layer of
N x 3996 x 512 weights (57 MB in float32): a dense decision at B = 1 streams all of them from
memory for every slot. Most of the observation is zero in any given slot (~16 % of the paper
network's values are non-zero: per-user fields outside a BS's own users, empty message slots),
and the observation normaliser is affine between its clips, so the first layer splits exactly
into a constant and a sparse part. With ``z(x) = clip((f(x) - mean) / std)`` the per-agent
normalised input (``f``: symlog or identity) and ``x0`` a baseline observation (zero by
default),

    W^T z(x) + b = (W^T z(x0) + b) + sum_{i: x_i != x0_i} W_i (z(x_i) - z(x0_i)),

because ``z(x_i) - z(x0_i)`` is exactly 0 wherever ``x_i = x0_i``. :class:`CompactPolicy` folds
the first bracket into the bias once and evaluates the sum as an ``embedding_bag`` over the rows
``W_i`` of the changed inputs only (one bag per agent and environment). Inputs that are always
at the baseline (structurally zero or constant for a network configuration) are never read;
with ``weights="fp32"`` the result equals the dense policy up to float32 summation order.

``weights="int8"`` also stores the first layer's rows as int8 with a float scale and offset per
row (fbgemm's row-wise 8-bit embedding tables, ``quantized::embedding_bag_byte_rowwise_offsets``;
CPU only), accumulating in float32: 4x less to read per row, an approximation whose effect on
a trained policy is measured by :func:`skyshare.schemes.catn_online.compact_accuracy`. The
smaller layers (512 x 128 and below, 2 MB for all agents) stay float32 and dense.

Decisions only: the policy returns the Beta mean (the deterministic evaluation action), has no
log-probabilities, values or gradients, and is a snapshot of the agents when it was built
(training goes on with the float32 networks; rebuild after an update or a change of the
normaliser's statistics).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from skyshare.errors import ConfigError, ShapeError
from skyshare.rl.common.distributions import ACTION_EPS
from skyshare.rl.common.networks import GroupLinear, _affine

__all__ = ["CompactPolicy", "CompactWeights"]

CompactWeights = Literal["fp32", "int8"]
"""Storage of the first layer's rows: float32 (exact) or row-wise int8 (CPU)."""


class CompactPolicy:
    """The deterministic policy (Beta mean) of on-policy BS agents, evaluated sparsely.

    Args:
        agents: :class:`~skyshare.rl.common.onpolicy.OnPolicyAgents` (CUP or PPO-penalty)
            whose actor, normaliser statistics and dimensions are copied.
        weights: "fp32" (exact up to summation order) or "int8" (row-wise quantised first
            layer, CPU only).
        baseline: (D,) or (N, D) observation values whose first-layer contribution is folded
            into the bias (inputs equal to it are not read); zeros when None. For CATN, the
            structurally constant entries of (8) (:func:`skyshare.schemes.catn.bs_obs_baseline`).

    Shapes: ``act(obs)``: obs (B, N, D) -> actions (B, N, d) in [1e-6, 1 - 1e-6], as
    ``agents.act(obs, deterministic=True, update_statistics=False)[0]``.

    Attributes: ``weights``, ``n_agents``, ``obs_dim``, ``act_dim``, ``version`` (the agents'
    ``n_updates`` and normaliser count when built), ``nbytes`` (bytes of the tables and
    layers it reads).
    """

    def __init__(
        self,
        agents,
        *,
        weights: CompactWeights = "fp32",
        baseline: torch.Tensor | None = None,
    ) -> None:
        if weights not in ("fp32", "int8"):
            raise ConfigError(f"compact weights must be 'fp32' or 'int8', got {weights!r}")
        N, D, d = agents.n_agents, agents.obs_dim, agents.act_dim
        device = agents.device
        if weights == "int8" and device.type != "cpu":
            raise ConfigError("compact int8 weights need the CPU (fbgemm's row-wise kernel)")
        self.weights, self.n_agents, self.obs_dim, self.act_dim = weights, N, D, d
        self.device = device
        self.version = compact_version(agents)

        normalizer = agents.normalizer
        dtype = normalizer.mean.dtype
        self._symlog = normalizer.transform == "symlog"
        self._clip = float(normalizer.clip) if normalizer.enabled else None
        if normalizer.enabled:
            mean = normalizer.mean.detach().clone()
            std = torch.sqrt(normalizer.var.detach() + 1e-8)  # the normaliser's own expression
        else:
            mean = torch.zeros(N, D, dtype=dtype, device=device)
            std = torch.ones(N, D, dtype=dtype, device=device)
        x0 = torch.zeros(N, D, dtype=dtype, device=device)
        if baseline is not None:
            if baseline.shape not in ((D,), (N, D)):
                raise ShapeError(f"baseline must be (D,) or (N, D), got {tuple(baseline.shape)}")
            x0 = x0 + baseline.to(device=device, dtype=dtype)
        self._x0 = x0  # (N, D)
        z0 = self._normalize(x0, mean, std)  # (N, D)
        # per input (row n D + i): mean, std and z(x0), gathered together
        self._stats = torch.stack([mean, std, z0], -1).reshape(N * D, 3)

        linears = [m for m in agents.actor.net.modules() if isinstance(m, GroupLinear)]
        activations = [
            m for m in agents.actor.net.net if not isinstance(m, GroupLinear)
        ]  # one after each layer (the last: identity)
        first = linears[0]
        w1 = first.weight.detach()  # (N, D, H), possibly a transposed view
        H = w1.shape[-1]
        # the constant part: b + W^T z(x0), in float64 then rounded once
        bias = first.bias.detach()[:, 0].double() + torch.einsum(
            "nd,ndh->nh", z0.double(), w1.double()
        )
        self._bias1 = bias.to(w1.dtype)  # (N, H)
        table = w1.contiguous().reshape(N * D, H)  # row n*D + i = W_{n,i}
        if weights == "int8":
            self._table = torch.ops.quantized.embedding_bag_byte_prepack(table)
        else:
            self._table = table
        self._act1 = activations[0]
        self._layers = [
            (m.weight.detach().clone(), m.bias.detach().clone(), m.transposed_storage)
            for m in linears[1:]
        ]
        self._activations: list[nn.Module] = activations[1:]
        self.hidden = H
        self.nbytes = self._table.numel() * self._table.element_size() + sum(
            w.numel() * w.element_size() + b.numel() * b.element_size() for w, b, _ in self._layers
        )

    def _normalize(self, x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """The normaliser's map on values ``x`` with matching ``mean`` and ``std``."""
        if self._symlog:
            x = torch.sign(x) * torch.log1p(x.abs())
        if self._clip is None:
            return x
        return ((x - mean) / std).clamp(-self._clip, self._clip)

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, N, D) observations (8) -> (B, N, d) Beta-mean actions."""
        N, D = self.n_agents, self.obs_dim
        if obs.ndim != 3 or obs.shape[1:] != (N, D):
            raise ShapeError(f"obs must be (B, N, D) = (B, {N}, {D}), got {tuple(obs.shape)}")
        B = obs.shape[0]
        x = obs.to(device=self.device, dtype=self._stats.dtype).contiguous()
        changed = x != self._x0  # (B, N, D)
        position = changed.view(-1).nonzero().squeeze(1)  # (b N + n) D + i
        row = position % (N * D)  # n D + i: the table row, and the statistics' index
        mean, std, z0 = self._stats[row].unbind(1)
        delta = self._normalize(x.view(-1)[position], mean, std) - z0
        # one bag per (environment, agent): where its positions start in the sorted list
        starts = torch.arange(0, B * N * D, D, device=position.device)
        offsets = torch.searchsorted(position, starts)
        if self.weights == "int8":
            h = torch.ops.quantized.embedding_bag_byte_rowwise_offsets(
                self._table, row, offsets, per_sample_weights=delta
            )
        else:
            h = F.embedding_bag(row, self._table, offsets, mode="sum", per_sample_weights=delta)
        h = self._act1(h.view(B, N, self.hidden) + self._bias1)
        h = h.transpose(0, 1)  # (N, B, H)
        for (weight, bias, transposed), act in zip(self._layers, self._activations, strict=True):
            h = act(_affine(h, weight, bias, transposed))
        d = self.act_dim
        alpha = F.softplus(h[..., :d]) + 1.0
        beta = F.softplus(h[..., d:]) + 1.0
        actions = (alpha / (alpha + beta)).clamp(ACTION_EPS, 1.0 - ACTION_EPS)
        return actions.transpose(0, 1)

    __call__ = act


def compact_version(agents) -> tuple[int, float]:
    """What a :class:`CompactPolicy` of ``agents`` depends on that changes while they learn:
    (updates, normaliser count)."""
    return int(agents.n_updates), float(agents.normalizer.count)
