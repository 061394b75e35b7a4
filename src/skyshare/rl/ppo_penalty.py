"""PPO with a fixed cost penalty for the BS agents (seed 000 §VI, the "PPO" beamforming benchmark).

PPO: J. Schulman, F. Wolski, P. Dhariwal, A. Radford, O. Klimov, "Proximal policy optimization
algorithms", arXiv:1707.06347, 2017 (the seed's [47]). The seed trains it on the penalised reward

    r~_n(t) = r_n(t) - zeta sum_l max{c_{n,l}(t), 0}

with the reward (10), the costs (11) and a fixed penalty weight zeta (swept in Fig. 5); the
observations (8) and actions (9) are CUP's. The agents, networks, collector and hyper-parameters
are CUP's (:mod:`skyshare.rl.cup`, shared in :mod:`skyshare.rl.common.onpolicy`) without the
cost critic and the projection step; one ``update`` on the B_m^BS = 50 collected slots:

1. r~ from the rewards and costs, GAE advantages and critic targets (Algorithm 3 lines 2, 4);
2. theta' <- theta; B_e epochs over minibatches of B_b slots: critic MSE (4), clipped surrogate
   (6) (PPO's L^CLIP); stop an agent once mean_i KL(pi_theta || pi_theta')[o_i] over the
   collector exceeds ``kl_bound`` (Spinning Up's PPO early stop; None disables it). This is
   :meth:`~skyshare.rl.common.onpolicy.OnPolicyAgents.ppo_epochs`, the loop of CUP's step 1.

Every update reports the raw reward and cost alongside the penalised reward, so reward and cost
curves come for free.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field

from skyshare.errors import ShapeError
from skyshare.rl.common.buffers import Trajectory, to_agent_major
from skyshare.rl.common.gae import gae_targets
from skyshare.rl.common.onpolicy import (
    EpochsResult,
    OnPolicyAgents,
    OnPolicyConfig,
    PreparedTrajectory,
    clipped_surrogate_loss,
    standardized,
)

__all__ = ["PpoPenaltyAgents", "PpoPenaltyConfig", "clipped_surrogate_loss", "penalized_reward"]


class PpoPenaltyConfig(OnPolicyConfig):
    """Hyper-parameters of PPO-penalty (the shared ones in :class:`OnPolicyConfig`, §VI)."""

    penalty: float = Field(
        1.0, ge=0.0, description="zeta, the fixed cost penalty (a sweep parameter of Fig. 5)"
    )


def penalized_reward(rewards: torch.Tensor, costs: torch.Tensor, penalty: float) -> torch.Tensor:
    """r~ = r - zeta sum_l max(c_l, 0) (seed 000 §VI). rewards (...), costs (..., L) -> (...)."""
    if costs.shape[:-1] != rewards.shape:
        raise ShapeError(
            f"costs must be rewards' shape plus a cost axis, got {tuple(rewards.shape)} and "
            f"{tuple(costs.shape)}"
        )
    return rewards - penalty * costs.clamp(min=0.0).sum(-1)


class PpoPenaltyAgents(OnPolicyAgents):
    """N PPO agents (one per BS) on the penalised reward, each with its own pi_theta and V_phi.

    Args:
        obs_dim, act_dim, n_agents: D, d, N as for :class:`~skyshare.rl.cup.CupAgents`.
        n_costs: L (the trajectory's cost axis).
        config: :class:`PpoPenaltyConfig` (§VI defaults, zeta = 1, when None).
        device: where networks and updates run.
    """

    Config = PpoPenaltyConfig

    @torch.enable_grad()  # a learner step needs autograd even inside a no_grad caller
    def update(self, trajectory: Trajectory) -> dict[str, Any]:
        """One PPO update on the collected trajectory of every agent.

        Args:
            trajectory: :class:`~skyshare.rl.common.buffers.Trajectory`, layout (T, B, N, ...).

        Returns:
            Statistics; floats are means over agents, tensors (CPU) per agent: ``reward_mean``,
            ``cost_mean``, ``penalized_reward_mean``, ``violation_mean`` (sum_l max(c_l, 0))
            (float); ``reward_per_agent`` (N,), ``cost_per_agent`` (N, L); ``value_loss``,
            ``policy_loss``, ``clip_fraction`` (means over the gradient steps taken); ``kl``
            (N,) KL(pi_theta || pi_theta') at the end; ``epochs`` (N,) long epochs run;
            ``entropy`` of the final policy.
        """
        cfg = self.config
        prepared = self.prepare(trajectory)
        # Penalised reward, GAE advantages and critic targets (Algorithm 3 lines 2, 4)
        shaped = penalized_reward(prepared.rewards, prepared.costs, cfg.penalty)  # (T, B, N)
        adv, target = self._advantages(prepared, shaped)
        batch = self.surrogate_batch(prepared, adv)  # theta' <- theta

        # B_e epochs of minibatch steps: critic MSE (4) and L^CLIP (6), per-agent KL stop
        def critic_losses(mb_obs: torch.Tensor, minibatch: torch.Tensor) -> dict[str, torch.Tensor]:
            value = (self.reward_critic(mb_obs)[..., 0] - target[:, minibatch]).square().mean(1)
            return {"value": value}

        result = self.ppo_epochs(batch, critic_losses, self._optimizers())
        self.n_updates += 1
        return self._stats(prepared, shaped, result)

    @torch.no_grad()
    def _advantages(
        self, prepared: PreparedTrajectory, shaped: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """GAE advantages (standardised per agent as configured) and critic targets, (N, S)."""
        cfg = self.config
        adv, target = gae_targets(
            shaped,
            prepared.values,
            prepared.next_values,
            cfg.gamma,
            cfg.gae_lambda,
            prepared.episode_ends,
        )
        adv, target = to_agent_major(adv), to_agent_major(target)  # (N, S)
        if cfg.standardize_advantages:
            adv = standardized(adv)
        return adv, target

    def _optimizers(self) -> tuple:
        return self.reward_critic_optimizer, self.actor_optimizer

    @torch.no_grad()
    def _stats(
        self, prepared: PreparedTrajectory, shaped: torch.Tensor, result: EpochsResult
    ) -> dict[str, Any]:
        rewards, costs = prepared.rewards, prepared.costs
        return {
            "reward_mean": float(rewards.mean()),
            "cost_mean": float(costs.mean()),
            "penalized_reward_mean": float(shaped.mean()),
            "violation_mean": float(costs.clamp(min=0.0).sum(-1).mean()),
            "reward_per_agent": rewards.mean((0, 1)).cpu(),
            "cost_per_agent": costs.mean((0, 1)).cpu(),
            "value_loss": result.mean("value"),
            "policy_loss": result.mean("policy"),
            "clip_fraction": result.mean("clip"),
            "kl": result.kl,
            "epochs": result.epochs,
            "entropy": float(result.final.entropy().mean()),  # no step since the last KL check
        }
