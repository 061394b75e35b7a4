"""Per-user Lagrange multipliers for QoS constraints (seed 001 §III-D, eqs. (13)-(18)).

The QoS constraint of user k becomes the long-term constraint (13)/(14) on its truncated cost
c_k = max(eta_k - R_k, 0) (11), ``(1 - gamma) E[sum_t gamma^t c_k] <= d_k`` with d_k = 0, and
the Lagrangian relaxation (15) turns the constrained game into the unconstrained one (16) on the
shaped reward

    r^_m(s_t, a_t; lambda) = r_m(s_t, a_t) - sum_k lambda_k (1 - gamma) c_k(s_t, a_t),

with non-negative multipliers lambda_k updated by the sub-gradient step (17) on a slower
timescale than the policy, using (18), ``d L / d lambda_k = -E_{d_pi}[c_k]`` (we keep the limit
d_k of (6) so that a positive limit can be set):

    lambda_k <- clip(lambda_k + alpha (mean c_k - d_k), 0, lambda_max).

With d_k = 0 and truncated costs, the multipliers never decrease: they grow while the constraint
is violated and stay once it holds (an optional ``lambda_max`` bounds them).

Users are *slots*: the multipliers have the shape of the env's cost, (N, K_max) (user slot k of
BS n); a slot that holds no user has cost 0. The mean cost of (18) is taken over all collected
samples (the paper's expectation over the occupancy measure, an empty slot contributing 0) or,
with ``average="active"``, over the samples where the slot held a user.

Splitting the penalty over the M groups of the decomposed game (RL2):
:func:`shaped_reward` with ``sharing="split"`` subtracts ``penalty / M`` from each group's reward,
so that the shaped group rewards add up to the shaped reward of (RL1) (Lemma 1 carries over to
the Lagrangian), ``sharing="full"`` subtracts the whole penalty from every group (the literal
(15)-(16) per subproblem). See docs/rl/mappo.md.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from skyshare.errors import ConfigError, ShapeError

__all__ = ["LagrangeMultipliers", "PenaltySharing", "multiplier_step", "shaped_reward"]

PenaltySharing = Literal["split", "full"]
"""How the M groups of (RL2) share the frame's penalty (module docstring)."""


def multiplier_step(
    multipliers: torch.Tensor,
    mean_cost: torch.Tensor,
    lr: float,
    cost_limit: float = 0.0,
    upper: float | None = None,
) -> torch.Tensor:
    """Eqs. (17)-(18): ``clip(lambda + lr (mean_cost - d), 0, upper)``, elementwise, any shape."""
    return (multipliers + lr * (mean_cost - cost_limit)).clamp(min=0.0, max=upper)


def shaped_reward(
    reward: torch.Tensor,
    cost: torch.Tensor,
    multipliers: torch.Tensor,
    gamma: float,
    sharing: PenaltySharing = "split",
) -> torch.Tensor:
    """Eq. (16)'s r^_m = r_m - sum_k lambda_k (1 - gamma) c_k for every group m.

    Args:
        reward: (..., M) group rewards r_m (10) (M = 1 for (RL1), reward (9)).
        cost: (..., N, K) costs c_k (11) of every user slot.
        multipliers: (N, K) lambda_k.
        gamma: the discount factor of (14).
        sharing: "split" (each group subtracts penalty / M, so the groups' shaped rewards add up
            to (RL1)'s) or "full" (each group subtracts the whole penalty).

    Returns:
        (..., M) shaped rewards.
    """
    if cost.shape[-2:] != multipliers.shape or cost.shape[:-2] != reward.shape[:-1]:
        raise ShapeError(
            f"need reward (..., M), cost (..., N, K) and multipliers (N, K) with the same leading "
            f"axes, got {tuple(reward.shape)}, {tuple(cost.shape)}, {tuple(multipliers.shape)}"
        )
    if sharing not in ("split", "full"):
        raise ConfigError(f"sharing must be 'split' or 'full', got {sharing!r}")
    penalty = (1.0 - gamma) * (cost * multipliers).sum((-2, -1))  # (...)
    if sharing == "split":
        penalty = penalty / reward.shape[-1]
    return reward - penalty.unsqueeze(-1)


class LagrangeMultipliers:
    """lambda (shape, e.g. (N, K_max)) >= 0 with the sub-gradient step (17)-(18).

    Args:
        shape: the multipliers' shape, that of one sample's cost (N, K_max).
        lr: alpha of (17), per unit of mean cost.
        period: the step (17) runs on every ``period``-th call of :meth:`step` (one call per
            policy update), on the mean cost of all samples observed since the last step.
        init: lambda_0, every element.
        upper: optional upper bound lambda_max (None: unbounded, as the paper).
        cost_limit: d_k of (6), every element (0 in (13)).
        average: "all" (mean over all samples) or "active" (over samples where the slot is
            active; a slot never active in the period keeps its multiplier).
        device: where the multipliers live.

    Attributes: ``value`` (shape) the multipliers; ``cost_sum``, ``count`` the costs observed
    since the last step; ``calls`` the calls of :meth:`step` so far; ``n_steps`` the steps taken.
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        lr: float,
        *,
        period: int = 1,
        init: float = 0.0,
        upper: float | None = None,
        cost_limit: float = 0.0,
        average: Literal["all", "active"] = "all",
        device: str | torch.device = "cpu",
    ) -> None:
        if lr < 0 or period < 1 or init < 0 or (upper is not None and upper < init):
            raise ConfigError(
                f"need lr >= 0, period >= 1 and 0 <= init <= upper, got lr={lr}, "
                f"period={period}, init={init}, upper={upper}"
            )
        if average not in ("all", "active"):
            raise ConfigError(f"average must be 'all' or 'active', got {average!r}")
        self.lr, self.period, self.upper = lr, period, upper
        self.cost_limit, self.average = cost_limit, average
        self.value = torch.full(shape, float(init), device=device)
        self.cost_sum = torch.zeros(shape, device=device)
        self.count = torch.zeros(shape, device=device)
        self.calls = 0
        self.n_steps = 0

    def observe(self, cost: torch.Tensor, active: torch.Tensor | None = None) -> None:
        """Accumulate samples ``cost (..., *shape)`` (and ``active``, same shape, bool) for the
        next step."""
        shape = tuple(self.value.shape)
        if tuple(cost.shape[-len(shape) :]) != shape:
            raise ShapeError(f"cost must be (..., {shape}), got {tuple(cost.shape)}")
        axes = tuple(range(cost.ndim - len(shape)))
        cost = cost.to(self.value)
        if self.average == "active":
            if active is None or active.shape != cost.shape:
                raise ShapeError("average='active' needs an active mask of the cost's shape")
            weight = active.to(self.value)
            self.cost_sum += (cost * weight).sum(axes)
            self.count += weight.sum(axes)
        else:
            self.cost_sum += cost.sum(axes)
            self.count += cost.numel() // self.value.numel()  # samples

    def step(self) -> bool:
        """One call per policy update; every ``period``-th call applies (17) to the mean cost
        observed since the last step and clears it. Returns whether it stepped."""
        self.calls += 1
        if self.calls % self.period:
            return False
        observed = self.count > 0
        mean_cost = torch.where(observed, self.cost_sum / self.count.clamp(min=1.0), 0.0)
        stepped = multiplier_step(self.value, mean_cost, self.lr, self.cost_limit, self.upper)
        self.value = torch.where(observed, stepped, self.value)
        self.cost_sum.zero_()
        self.count.zero_()
        self.n_steps += 1
        return True

    def state_dict(self) -> dict[str, Any]:
        """Tensors and ints only (``torch.load(weights_only=True)`` reads it)."""
        return {
            "value": self.value.clone(),
            "cost_sum": self.cost_sum.clone(),
            "count": self.count.clone(),
            "calls": self.calls,
            "n_steps": self.n_steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if tuple(state["value"].shape) != tuple(self.value.shape):
            raise ShapeError(
                f"multipliers in the checkpoint are {tuple(state['value'].shape)}, "
                f"here {tuple(self.value.shape)}"
            )
        device = self.value.device
        self.value = state["value"].to(device).clone()
        self.cost_sum = state["cost_sum"].to(device).clone()
        self.count = state["count"].to(device).clone()
        self.calls, self.n_steps = int(state["calls"]), int(state["n_steps"])
