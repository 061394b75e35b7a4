"""Generalised advantage estimation (Schulman et al., ICLR 2016), batched over agents and costs.

Seed 000 Algorithm 3 lines 2-4, for the reward and for every cost alike:

    delta_i = r_i + gamma V(o_{i+1}) - V(o_i),
    A_i     = delta_i + gamma lambda A_{i+1},      A_{B_m + 1} = 0,
    V_i^target = A_i + V(o_i).

Time is the leading axis; every trailing axis (parallel environments, agents, cost indices) is an
independent sequence, so one call handles all BS agents and all L costs. The recursion over time is
the only Python loop (T = B_m^BS = 50 steps in the seed).

Episode boundaries: the seed's collector holds one continuing stream (CATN never terminates), so
the recursion runs over all B_m slots. When a collector spans a reset, ``episode_ends[i] = True``
cuts the recursion after slot i (A_i = delta_i); the caller still passes the bootstrap value
V(o_{i+1}) of the last observation in ``next_values`` (a time-limit truncation), or zero there
for a true termination (Pardo et al., ICML 2018, "Time limits in reinforcement learning").
"""

from __future__ import annotations

import torch

from skyshare.errors import ConfigError, ShapeError

__all__ = ["gae", "gae_targets"]


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    gamma: float,
    lam: float,
    episode_ends: torch.Tensor | None = None,
) -> torch.Tensor:
    """Advantages A_i of Algorithm 3 line 2 (and line 3 for costs).

    Args:
        rewards: (T, ...) float r_i (or cost c_i), slot i = 0..T-1.
        values: (T, ...) float V(o_i).
        next_values: (T, ...) float V(o_{i+1}) (zero where the episode terminated at i).
        gamma: discount factor in [0, 1] (seed §VI: 0.5).
        lam: GAE parameter lambda in [0, 1] (seed §VI: 0.1).
        episode_ends: optional (T, ...) bool, a prefix of the shape of ``rewards`` (e.g.
            (T, B) for rewards (T, B, N, L)); True at i stops A_i from accumulating A_{i+1}.

    Returns:
        (T, ...) advantages, same dtype as ``rewards``.
    """
    if not 0.0 <= gamma <= 1.0:
        raise ConfigError(f"gamma must be in [0, 1], got {gamma}")
    if not 0.0 <= lam <= 1.0:
        raise ConfigError(f"lam must be in [0, 1], got {lam}")
    if rewards.ndim < 1:
        raise ShapeError("rewards must have a leading time axis (T, ...)")
    if values.shape != rewards.shape or next_values.shape != rewards.shape:
        raise ShapeError(
            f"rewards, values and next_values must have the same shape (T, ...), got "
            f"{tuple(rewards.shape)}, {tuple(values.shape)}, {tuple(next_values.shape)}"
        )
    continues = None
    if episode_ends is not None:
        if episode_ends.shape != rewards.shape[: episode_ends.ndim] or episode_ends.ndim < 1:
            raise ShapeError(
                f"episode_ends must be a leading part (T, ...) of the rewards' shape "
                f"{tuple(rewards.shape)}, got {tuple(episode_ends.shape)}"
            )
        trailing = (1,) * (rewards.ndim - episode_ends.ndim)
        continues = (~episode_ends.bool()).to(rewards.dtype).reshape(*episode_ends.shape, *trailing)

    deltas = rewards + gamma * next_values - values
    decay = gamma * lam
    advantages = torch.empty_like(deltas)
    next_advantage = torch.zeros_like(deltas[0])  # A_{B_m + 1} = 0
    for i in reversed(range(rewards.shape[0])):
        if continues is not None:
            next_advantage = next_advantage * continues[i]
        next_advantage = deltas[i] + decay * next_advantage
        advantages[i] = next_advantage
    return advantages


def gae_targets(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    gamma: float,
    lam: float,
    episode_ends: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and critic targets V^target = A + V (Algorithm 3 line 4), shapes as gae."""
    advantages = gae(rewards, values, next_values, gamma, lam, episode_ends)
    return advantages, advantages + values
