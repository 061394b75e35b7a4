"""PPO with a fixed cost penalty for the BS agents (seed 000 §VI, the "PPO" beamforming benchmark).

PPO: J. Schulman, F. Wolski, P. Dhariwal, A. Radford, O. Klimov, "Proximal policy optimization
algorithms", arXiv:1707.06347, 2017 (the seed's [47]). The seed trains it on the penalised reward

    r~_n(t) = r_n(t) - zeta sum_l max{c_{n,l}(t), 0}

with the reward (10), the costs (11) and a fixed penalty weight zeta (swept in Fig. 5); the
observations (8) and actions (9) are CUP's. The agents, networks, collector and hyper-parameters
are CUP's (:mod:`skyshare.rl.cup`) without the cost critic and the projection step; one
``update`` on the B_m^BS = 50 collected slots:

1. r~ from the rewards and costs, GAE advantages and critic targets (Algorithm 3 lines 2, 4);
2. theta' <- theta; B_e epochs over minibatches of B_b slots: critic MSE (4), clipped surrogate
   (6) (PPO's L^CLIP); stop an agent once mean_i KL(pi_theta || pi_theta')[o_i] over the
   collector exceeds ``kl_bound`` (Spinning Up's PPO early stop; None disables it).

Every update reports the raw reward and cost alongside the penalised reward, so reward and cost
curves come for free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from skyshare.errors import ShapeError
from skyshare.rl.gae import gae_targets
from skyshare.rl.policies import (
    OnPolicyAgents,
    OnPolicyConfig,
    Trajectory,
    standardized,
    to_agent_major,
)

__all__ = ["PpoPenaltyAgents", "PpoPenaltyConfig", "clipped_surrogate_loss", "penalized_reward"]


@dataclass
class PpoPenaltyConfig(OnPolicyConfig):
    """Hyper-parameters of PPO-penalty (the shared ones in OnPolicyConfig, §VI values)."""

    penalty: float = 1.0  # zeta (§VI; a sweep parameter of Fig. 5, 1.0 is a choice)

    def _checks(self) -> list[tuple[str, bool, str]]:
        return [("penalty", self.penalty >= 0.0, ">= 0"), *super()._checks()]


def penalized_reward(rewards: torch.Tensor, costs: torch.Tensor, penalty: float) -> torch.Tensor:
    """r~ = r - zeta sum_l max(c_l, 0) (seed 000 §VI). rewards (...), costs (..., L) -> (...)."""
    if costs.shape[:-1] != rewards.shape:
        raise ShapeError(
            f"costs must be rewards' shape plus a cost axis, got {tuple(rewards.shape)} and "
            f"{tuple(costs.shape)}"
        )
    return rewards - penalty * costs.clamp(min=0.0).sum(-1)


def clipped_surrogate_loss(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    clip_ratio: float,
) -> torch.Tensor:
    """PPO's -L^CLIP ([47] eq. (7), the seed's (6)) averaged over the last axis.

    -(1/M) sum_j min(rho_j A_j, clip(rho_j, 1 - eps, 1 + eps) A_j), rho_j = exp(log_prob_j -
    old_log_prob_j). Inputs (..., M), output (...). Where the clipped term is the minimum
    (rho > 1 + eps with A > 0, rho < 1 - eps with A < 0) the gradient is zero.
    """
    ratio = torch.exp(log_prob - old_log_prob)
    clipped = ratio.clamp(1.0 - clip_ratio, 1.0 + clip_ratio)
    return -torch.minimum(ratio * advantages, clipped * advantages).mean(-1)


class PpoPenaltyAgents(OnPolicyAgents):
    """N PPO agents (one per BS) on the penalised reward, each with its own pi_theta and V_phi.

    Args:
        obs_dim, act_dim, n_agents: D, d, N as for :class:`~skyshare.rl.cup.CupAgents`.
        n_costs: L (the trajectory's cost axis).
        config: :class:`PpoPenaltyConfig`.
        device: where networks and updates run.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        n_agents: int,
        n_costs: int,
        config: PpoPenaltyConfig | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        config = config or PpoPenaltyConfig()
        super().__init__(obs_dim, act_dim, n_agents, n_costs, config, device)

    @torch.enable_grad()  # a learner step needs autograd even inside a no_grad caller
    def update(self, trajectory: Trajectory) -> dict[str, Any]:
        """One PPO update on the collected trajectory of every agent.

        Args:
            trajectory: :class:`~skyshare.rl.policies.Trajectory`, layout (T, B, N, ...).

        Returns:
            Statistics; floats are means over agents, tensors per agent: ``reward_mean``,
            ``cost_mean``, ``penalized_reward_mean``, ``violation_mean`` (sum_l max(c_l, 0))
            (float); ``reward_per_agent`` (N,), ``cost_per_agent`` (N, L); ``value_loss``,
            ``policy_loss``, ``clip_fraction`` (means over the gradient steps taken); ``kl``
            (N,) KL(pi_theta || pi_theta') at the end; ``epochs`` (N,) long epochs run;
            ``entropy`` of the final policy.
        """
        cfg = self.config
        T, B, N = trajectory.n_slots, trajectory.n_envs, self.n_agents

        # ---- Penalised reward, GAE advantages and critic targets ------------------------------
        with torch.no_grad():
            prepared = self._prepare(trajectory)
            obs, actions = prepared.obs, prepared.actions
            rewards, costs = prepared.rewards, prepared.costs
            shaped = penalized_reward(rewards, costs, cfg.penalty)  # (T, B, N)
            adv, target = gae_targets(
                shaped,
                prepared.values,
                prepared.next_values,
                cfg.gamma,
                cfg.gae_lambda,
                trajectory.episode_ends(),
            )
            adv, target = to_agent_major(adv), to_agent_major(target)  # (N, S)
            if cfg.standardize_advantages:
                adv = standardized(adv)
            old_dist = self.actor(obs)  # pi_theta'
            old_log_prob = old_dist.log_prob(actions)

        # ---- B_e epochs of minibatch updates with a per-agent KL early stop ------------------
        active = torch.ones(N, dtype=torch.bool)  # host side
        epochs = torch.zeros(N, dtype=torch.long)
        kl_last = torch.zeros(N)
        zero = torch.zeros((), device=self.device)
        sums = dict.fromkeys(("value", "policy", "clip"), zero)
        steps = 0
        for _ in range(cfg.epochs):
            weight = (active.float() / active.float().sum()).to(self.device)
            for mb in self._minibatches(T * B, cfg.minibatch_size * B):
                mb_obs = obs[:, mb]
                value_loss = (self.reward_critic(mb_obs)[..., 0] - target[:, mb]).square().mean(1)
                dist = self.actor(mb_obs)
                log_prob = dist.log_prob(actions[:, mb])
                loss = clipped_surrogate_loss(
                    log_prob, old_log_prob[:, mb], adv[:, mb], cfg.clip_ratio
                )
                if cfg.entropy_coef > 0:
                    loss = loss - cfg.entropy_coef * dist.entropy().mean(1)
                # actor and critic have disjoint parameters: one backward serves both
                self.reward_critic_optimizer.zero_grad()
                self.actor_optimizer.zero_grad()
                (value_loss + loss).sum().backward()
                self.reward_critic_optimizer.step(active)
                self.actor_optimizer.step(active)
                with torch.no_grad():
                    ratio = torch.exp(log_prob - old_log_prob[:, mb])
                    clipped = ((ratio - 1.0).abs() > cfg.clip_ratio).float().mean(1)
                    sums["value"] = sums["value"] + (value_loss * weight).sum()
                    sums["policy"] = sums["policy"] + (loss * weight).sum()
                    sums["clip"] = sums["clip"] + (clipped * weight).sum()
                steps += 1
            with torch.no_grad():
                current_dist = self.actor(obs)  # the policy after this epoch
                kl = current_dist.kl(old_dist).mean(1).cpu()  # (N,)
            kl_last = torch.where(active, kl, kl_last)
            epochs += active.long()
            if cfg.kl_bound is not None:
                active &= kl <= cfg.kl_bound  # a non-finite KL stops the agent too
                if not bool(active.any()):
                    break

        with torch.no_grad():  # no step since the last KL check: current_dist is final
            entropy = float(current_dist.entropy().mean())
        self.n_updates += 1
        steps = max(steps, 1)
        return {
            "reward_mean": float(rewards.mean()),
            "cost_mean": float(costs.mean()),
            "penalized_reward_mean": float(shaped.mean()),
            "violation_mean": float(costs.clamp(min=0.0).sum(-1).mean()),
            "reward_per_agent": rewards.mean((0, 1)).cpu(),
            "cost_per_agent": costs.mean((0, 1)).cpu(),
            "value_loss": float(sums["value"]) / steps,
            "policy_loss": float(sums["policy"]) / steps,
            "clip_fraction": float(sums["clip"]) / steps,
            "kl": kl_last,
            "epochs": epochs,
            "entropy": entropy,
        }
