"""Constrained update projection (CUP) for the BS agents (seed 000 §V-C-1, Algorithm 3).

CUP: L. Yang, J. Ji, J. Dai, L. Zhang, B. Zhou, P. Li, Y. Yang, G. Pan, "Constrained update
projection approach to safe policy optimization", NeurIPS 2022 (the seed's [44]). Every BS agent
n has its own actor pi_theta, reward critic V_phi and cost critic V_psi^C (L outputs, one per
aerial user), all N agents batched (:mod:`skyshare.rl.policies`). One ``update`` is one call of
Algorithm 3 on the B_m^BS = 50 slots of the trajectory collector:

1. GAE advantages for the reward and each cost (lines 2-3), critic targets (line 4);
2. J_C = mean of the collected costs (line 5), nu <- clip(nu + alpha_nu (J_C - b), 0, nu_max)
   per agent and cost (line 6);
3. Step 1, performance improvement (lines 7-18): theta' <- theta; B_e epochs over minibatches of
   B_b slots: critic MSE (4)-(5), clipped surrogate (6); stop an agent once
   mean_i KL(pi_theta || pi_theta')[o_i] > epsilon over the collector;
4. Step 2, projection (lines 19-28): theta'' <- theta; B_e epochs minimising (7),
   KL(pi_theta || pi_theta'') + nu^T (1 - gamma lambda)/(1 - gamma) ratio A^C, with
   ratio = pi_theta / pi_theta' (the collecting policy, whose data estimated A^C); stop an agent
   once mean_i KL(pi_theta || pi_theta'')[o_i] > epsilon.

Where the seed's text is inconsistent or silent (see docs/rl/cup.md):

* Algorithm 3 lines 11-12 update the critics with alpha_nu; the learning-rate list of §VI gives
  alpha_V for the critics, which is used.
* (7) and line 25 write D_KL(pi_theta, pi_theta'), yet line 20 stores theta'' and never uses it;
  the projection's KL and its early stop use theta'' as in CUP's own algorithm ([44] Alg. 1) and
  OmniSafe's implementation. The "nabla" inside (7) is a typo: the loss holds the KL itself.
* Reward advantages are standardised over the collector per agent, cost advantages centred
  (not scaled), OmniSafe's defaults for CUP; both switchable.
* PPO clip ratio epsilon of (6): 0.2 (Schulman et al. 2017, the seed's [47]); the seed uses the
  symbol epsilon for both this ratio and the KL bound 0.02.
* A minibatch is B_b slots of every parallel environment (B_b * B samples), so an epoch has
  ceil(B_m / B_b) = 5 gradient steps for any B, and B = 1 is exactly the seed's setting.
* The KL of the early stops is computed after every epoch over the whole collector, per agent;
  an agent that stopped keeps its networks (critics included) for the rest of the update.
  The old log-probabilities ln pi_theta'(a|o) are computed once per update, and the policy of
  the last KL check (no gradient step since) serves as pi_theta'' and as the final policy, so
  an update runs no forward pass twice (cost analysis: docs/rl/cup.md "Cost").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from skyshare.rl.gae import gae_targets
from skyshare.rl.policies import (
    CriticGroup,
    GroupAdam,
    IndependentBeta,
    OnPolicyAgents,
    OnPolicyConfig,
    Trajectory,
    from_agent_major,
    standardized,
    to_agent_major,
)

__all__ = ["CupAgents", "CupConfig", "improvement_loss", "nu_update", "projection_loss"]


@dataclass
class CupConfig(OnPolicyConfig):
    """Hyper-parameters of Algorithm 3 (the shared ones in OnPolicyConfig). Defaults: §VI."""

    lr_nu: float = 0.06  # alpha_nu (§VI)
    nu_init: float = 1.0  # nu_0, every element (§VI)
    nu_max: float = 10.0  # nu_max, every element (§VI)
    cost_limit: float = 0.0  # b, every element (§VI; (11) makes b = 0)
    center_cost_advantages: bool = True  # cost advantages, no scaling (OmniSafe CUP default)

    def _checks(self) -> list[tuple[str, bool, str]]:
        return [
            *super()._checks(),
            ("kl_bound", self.kl_bound is not None and self.kl_bound > 0.0, "> 0"),
            ("lr_nu", self.lr_nu >= 0.0, ">= 0"),
            ("nu_max", self.nu_max >= 0.0, ">= 0"),
            ("nu_init", 0.0 <= self.nu_init <= self.nu_max, "[0, nu_max]"),
        ]


# ---------------------------------------------------------------------------------------------
# The pieces of Algorithm 3 as pure functions (tested on fixed numbers)
# ---------------------------------------------------------------------------------------------


def nu_update(
    nu: torch.Tensor, cost_return: torch.Tensor, cost_limit: float, lr_nu: float, nu_max: float
) -> torch.Tensor:
    """Algorithm 3 line 6: nu <- clip(nu + alpha_nu (J_C - b), 0, nu_max); any shape (N, L)."""
    return (nu + lr_nu * (cost_return - cost_limit)).clamp(0.0, nu_max)


def improvement_loss(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    clip_ratio: float,
) -> torch.Tensor:
    """Loss (6): -(1/B_b) sum_j min(rho_j A_j, clip(rho_j, 1 - eps, 1 + eps) A_j).

    Args:
        log_prob: (..., B_b) ln pi_theta(a_j | o_j) (with gradient).
        old_log_prob: (..., B_b) ln pi_theta'(a_j | o_j).
        advantages: (..., B_b) A_j.
        clip_ratio: eps of (6).

    Returns:
        (...) the loss of each agent.
    """
    ratio = torch.exp(log_prob - old_log_prob)
    clipped = ratio.clamp(1.0 - clip_ratio, 1.0 + clip_ratio)
    return -torch.minimum(ratio * advantages, clipped * advantages).mean(-1)


def projection_loss(
    kl: torch.Tensor,
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    cost_advantages: torch.Tensor,
    nu: torch.Tensor,
    gamma: float,
    lam: float,
) -> torch.Tensor:
    """Loss (7): (1/B_b) sum_j [KL_j + nu^T (1 - gamma lam)/(1 - gamma) rho_j A^C_j].

    Args:
        kl: (..., B_b) KL(pi_theta || pi_theta'')[o_j] (with gradient).
        log_prob: (..., B_b) ln pi_theta(a_j | o_j) (with gradient).
        old_log_prob: (..., B_b) ln pi_theta'(a_j | o_j), the collecting policy.
        cost_advantages: (..., B_b, L) A^C_j.
        nu: (..., L) cost constraint parameters.
        gamma, lam: the discount factor and GAE parameter of the advantages.

    Returns:
        (...) the loss of each agent.
    """
    ratio = torch.exp(log_prob - old_log_prob)
    weighted_cost_advantage = (cost_advantages * nu.unsqueeze(-2)).sum(-1)
    coefficient = (1.0 - gamma * lam) / (1.0 - gamma)
    return (kl + coefficient * ratio * weighted_cost_advantage).mean(-1)


def _kl_exceeded(kl: torch.Tensor, bound: float) -> torch.Tensor:
    """KL > bound, with a non-finite KL counting as exceeded."""
    return ~(kl <= bound)


# ---------------------------------------------------------------------------------------------
# The agents
# ---------------------------------------------------------------------------------------------


class CupAgents(OnPolicyAgents):
    """N CUP agents (one per BS), each with its own pi_theta, V_phi, V_psi^C and nu.

    Args:
        obs_dim: D (CATN: ``env.bs_obs_dim`` = 3996 with the paper's settings).
        act_dim: d (CATN: ``env.action_dim`` = 2K + L + 2 = 46).
        n_agents: N (CATN: 7 BSs).
        n_costs: L (CATN: 2 aerial users).
        config: :class:`CupConfig`.
        device: where networks and updates run.

    Attributes: ``actor``, ``reward_critic``, ``cost_critic`` (group modules), ``normalizer``,
    ``nu`` (N, L), the optimisers, ``generator`` (sampling and shuffles), ``n_updates``.
    """

    _checkpointed = (*OnPolicyAgents._checkpointed, "cost_critic", "cost_critic_optimizer")

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        n_agents: int,
        n_costs: int,
        config: CupConfig | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        config = config or CupConfig()
        super().__init__(obs_dim, act_dim, n_agents, n_costs, config, device)
        cost_init = torch.Generator().manual_seed(config.seed + 1)
        self.cost_critic = CriticGroup(
            n_agents, obs_dim, n_costs, config.hidden_sizes, config.critic_activation, cost_init
        ).to(self.device)
        self.cost_critic_optimizer = self._adam(self.cost_critic, config.lr_critic)
        self.nu = torch.full((n_agents, n_costs), float(config.nu_init), device=self.device)

    @torch.enable_grad()  # a learner step needs autograd even inside a no_grad caller
    def update(self, trajectory: Trajectory) -> dict[str, Any]:
        """Algorithm 3 on the collected trajectory of every agent.

        Args:
            trajectory: :class:`Trajectory` with obs (T, B, N, D), actions (T, B, N, d),
                rewards (T, B, N), costs (T, B, N, L), next_obs (T, B, N, D).

        Returns:
            Statistics; floats are means over agents, tensors are per agent:
            ``reward_mean``, ``cost_mean`` (float); ``reward_per_agent`` (N,); ``J_C`` (N, L)
            the line-5 estimate; ``nu`` (N, L) after line 6; ``value_loss``,
            ``cost_value_loss``, ``improve_loss``, ``project_loss`` (means over the gradient
            steps taken); ``kl_improve`` (N,) KL(pi_theta || pi_theta') after step 1;
            ``kl_project`` (N,) KL(pi_theta || pi_theta'') after step 2; ``kl_total`` (N,)
            KL(final || theta'); ``epochs_improve``, ``epochs_project`` (N,) long epochs run;
            ``entropy`` (mean entropy of the final policy), ``clip_fraction`` (step 1).
        """
        cfg = self.config
        T, B, N = trajectory.n_slots, trajectory.n_envs, self.n_agents

        # ---- Lines 2-4: GAE for the reward and every cost, critic targets -----------------
        with torch.no_grad():
            prepared = self._prepare(trajectory)
            obs, next_obs, actions = prepared.obs, prepared.next_obs, prepared.actions
            rewards, costs = prepared.rewards, prepared.costs
            cost_values = from_agent_major(self.cost_critic(obs), T, B)  # (T, B, N, L)
            next_cost_values = from_agent_major(self.cost_critic(next_obs), T, B)
            next_cost_values = next_cost_values * prepared.alive[..., None, None]
            ends = trajectory.episode_ends()
            adv, target = gae_targets(
                rewards,
                prepared.values,
                prepared.next_values,
                cfg.gamma,
                cfg.gae_lambda,
                ends,
            )
            cost_adv, cost_target = gae_targets(
                costs, cost_values, next_cost_values, cfg.gamma, cfg.gae_lambda, ends
            )
            adv, target = to_agent_major(adv), to_agent_major(target)  # (N, S)
            cost_adv, cost_target = to_agent_major(cost_adv), to_agent_major(cost_target)
            if cfg.standardize_advantages:
                adv = standardized(adv)
            if cfg.center_cost_advantages:
                cost_adv = cost_adv - cost_adv.mean(1, keepdim=True)

            # ---- Lines 5-6: J_C and the nu update ---------------------------------------
            cost_return = costs.mean((0, 1))  # (N, L)
            self.nu = nu_update(self.nu, cost_return, cfg.cost_limit, cfg.lr_nu, cfg.nu_max)

            # ---- Line 8: theta' <- theta ---------------------------------------------------
            old_dist = self.actor(obs)  # pi_theta', (N, S, d)
            old_log_prob = old_dist.log_prob(actions)  # (N, S)

        minibatch_samples = cfg.minibatch_size * B
        zero = torch.zeros((), device=self.device)
        sums = dict.fromkeys(("value", "cost_value", "improve", "project", "clip"), zero)
        counts = {"improve": 0, "project": 0}

        # ---- Lines 7-18: Step 1, performance improvement -----------------------------------
        active = torch.ones(N, dtype=torch.bool)  # host side
        epochs_improve = torch.zeros(N, dtype=torch.long)
        kl_improve = torch.zeros(N)
        for _ in range(cfg.epochs):
            weight = (active.float() / active.float().sum()).to(self.device)
            for mb in self._minibatches(T * B, minibatch_samples):
                mb_obs = obs[:, mb]
                # (4) and (5): critic MSE, lines 11-12; (5) summed over the L cost outputs
                value_loss = (self.reward_critic(mb_obs)[..., 0] - target[:, mb]).square().mean(1)
                cost_value_loss = (self.cost_critic(mb_obs) - cost_target[:, mb]).square()
                cost_value_loss = cost_value_loss.mean(1).sum(-1)  # (N,)
                # (6): clipped surrogate, line 13
                dist = self.actor(mb_obs)
                log_prob = dist.log_prob(actions[:, mb])
                loss = improvement_loss(log_prob, old_log_prob[:, mb], adv[:, mb], cfg.clip_ratio)
                if cfg.entropy_coef > 0:
                    loss = loss - cfg.entropy_coef * dist.entropy().mean(1)
                # the three networks have disjoint parameters: one backward serves all three
                for optimizer in self._step1_optimizers():
                    optimizer.zero_grad()
                (value_loss + cost_value_loss + loss).sum().backward()
                for optimizer in self._step1_optimizers():
                    optimizer.step(active)
                with torch.no_grad():
                    ratio = torch.exp(log_prob - old_log_prob[:, mb])
                    clipped = ((ratio - 1.0).abs() > cfg.clip_ratio).float().mean(1)
                    sums["value"] = sums["value"] + (value_loss * weight).sum()
                    sums["cost_value"] = sums["cost_value"] + (cost_value_loss * weight).sum()
                    sums["improve"] = sums["improve"] + (loss * weight).sum()
                    sums["clip"] = sums["clip"] + (clipped * weight).sum()
                counts["improve"] += 1
            # Lines 15-17: KL(pi_theta || pi_theta') over the collector, per agent
            with torch.no_grad():
                current_dist = self.actor(obs)  # the policy after this epoch
                kl = current_dist.kl(old_dist).mean(1).cpu()  # (N,)
            kl_improve = torch.where(active, kl, kl_improve)
            epochs_improve += active.long()
            active &= ~_kl_exceeded(kl, cfg.kl_bound)
            if not bool(active.any()):
                break

        # ---- Lines 19-28: Step 2, projection --------------------------------------------
        improved_dist = current_dist  # pi_theta'', line 20 (no step since the last KL check)
        active = torch.ones(N, dtype=torch.bool)  # host side
        epochs_project = torch.zeros(N, dtype=torch.long)
        kl_project = torch.zeros(N)
        for _ in range(cfg.epochs):
            weight = (active.float() / active.float().sum()).to(self.device)
            for mb in self._minibatches(T * B, minibatch_samples):
                dist = self.actor(obs[:, mb])
                kl_mb = dist.kl(improved_dist[:, mb])
                log_prob = dist.log_prob(actions[:, mb])
                loss = projection_loss(
                    kl_mb,
                    log_prob,
                    old_log_prob[:, mb],
                    cost_adv[:, mb],
                    self.nu,
                    cfg.gamma,
                    cfg.gae_lambda,
                )
                self.actor_optimizer.zero_grad()
                loss.sum().backward()
                self.actor_optimizer.step(active)
                with torch.no_grad():
                    sums["project"] = sums["project"] + (loss * weight).sum()
                counts["project"] += 1
            # Lines 25-27: KL(pi_theta || pi_theta'') over the collector, per agent
            with torch.no_grad():
                current_dist = self.actor(obs)
                kl = current_dist.kl(improved_dist).mean(1).cpu()
            kl_project = torch.where(active, kl, kl_project)
            epochs_project += active.long()
            active &= ~_kl_exceeded(kl, cfg.kl_bound)
            if not bool(active.any()):
                break

        with torch.no_grad():
            final_dist: IndependentBeta = current_dist  # no step since the last KL check
            kl_total = final_dist.kl(old_dist).mean(1)
            entropy = float(final_dist.entropy().mean())
        self.n_updates += 1
        n_improve, n_project = max(counts["improve"], 1), max(counts["project"], 1)
        return {
            "reward_mean": float(rewards.mean()),
            "cost_mean": float(costs.mean()),
            "reward_per_agent": rewards.mean((0, 1)).cpu(),
            "J_C": cost_return.cpu(),
            "nu": self.nu.clone().cpu(),
            "value_loss": float(sums["value"]) / n_improve,
            "cost_value_loss": float(sums["cost_value"]) / n_improve,
            "improve_loss": float(sums["improve"]) / n_improve,
            "project_loss": float(sums["project"]) / n_project,
            "clip_fraction": float(sums["clip"]) / n_improve,
            "kl_improve": kl_improve,
            "kl_project": kl_project,
            "kl_total": kl_total.cpu(),
            "epochs_improve": epochs_improve,
            "epochs_project": epochs_project,
            "entropy": entropy,
        }

    def _step1_optimizers(self) -> tuple[GroupAdam, GroupAdam, GroupAdam]:
        return self.reward_critic_optimizer, self.cost_critic_optimizer, self.actor_optimizer

    # -----------------------------------------------------------------------------------------
    # Checkpoints
    # -----------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The base checkpoint plus the cost multipliers nu."""
        return {**super().state_dict(), "nu": self.nu.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.nu = state["nu"].to(self.device).clone()
