"""TD3 building blocks (Fujimoto, van Hoof, Meger, "Addressing function approximation error in
actor-critic methods", ICML 2018): target policy smoothing, the clipped double-Q target and
Polyak-averaged target networks, as pure functions on tensors (TD3-MIX, seed 004 Algorithm 1
lines 11, 12 and 16)."""

from __future__ import annotations

import torch
from torch import nn

from skyshare.errors import ShapeError

__all__ = ["smoothed_target_actions", "soft_update_", "twin_td_target"]


def smoothed_target_actions(
    actions: torch.Tensor, noise: torch.Tensor, noise_clip: float
) -> torch.Tensor:
    """Target policy smoothing (TD3 eq. (14); Algorithm 1 line 11) on [0, 1] actions:
    ``clip(actions + clip(noise, -c, c), 0, 1)``. Any shapes that broadcast."""
    return (actions + noise.clamp(-noise_clip, noise_clip)).clamp(0.0, 1.0)


def twin_td_target(
    reward: torch.Tensor,
    next_q_tot: torch.Tensor,
    done: torch.Tensor,
    gamma: float,
    *,
    bootstrap: bool = True,
) -> torch.Tensor:
    """Clipped double-Q target (TD3 eq. (10); Algorithm 1 line 12; seed 004 eq. (22)):
    ``y = r + gamma (1 - done) min(Q'_1, Q'_2)``, or ``y = r`` without bootstrap.

    Args:
        reward: (N,) float. next_q_tot: (2, N) float, the twin target mixers' values at S'.
        done: (N,) float or bool, 1 where S' is past the episode's last block.
    """
    if next_q_tot.ndim != 2 or next_q_tot.shape[0] != 2 or next_q_tot.shape[1:] != reward.shape:
        raise ShapeError(
            f"next_q_tot must be (2, N) with N = {tuple(reward.shape)}, got "
            f"{tuple(next_q_tot.shape)}"
        )
    if not bootstrap:
        return reward
    return reward + gamma * (1.0 - done.to(reward.dtype)) * next_q_tot.min(dim=0).values


@torch.no_grad()
def soft_update_(target: nn.Module, online: nn.Module, tau: float) -> None:
    """Polyak averaging of target networks in place (TD3; seed 004 Algorithm 1 line 16):
    ``theta' <- tau theta + (1 - tau) theta'`` for every parameter pair."""
    targets, onlines = list(target.parameters()), list(online.parameters())
    if len(targets) != len(onlines):
        raise ShapeError(f"target has {len(targets)} parameters, online {len(onlines)}")
    torch._foreach_lerp_(targets, onlines, tau)
