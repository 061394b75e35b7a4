"""Constrained update projection (CUP) for the BS agents (seed 000 §V-C-1, Algorithm 3).

CUP: L. Yang, J. Ji, J. Dai, L. Zhang, B. Zhou, P. Li, Y. Yang, G. Pan, "Constrained update
projection approach to safe policy optimization", NeurIPS 2022 (the seed's [44]). Every BS agent
n has its own actor pi_theta, reward critic V_phi and cost critic V_psi^C (L outputs, one per
aerial user), all N agents batched (:mod:`skyshare.rl.common.onpolicy`). One ``update`` is one
call of Algorithm 3 on the B_m^BS = 50 slots of the trajectory collector:

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

Usage (a collector of B_m^BS slots filled by the online loop, then one update)::

    agents = CupAgents(env.bs_obs_dim, env.action_dim, env.N, env.L, CupConfig(seed=0))
    actions, _, _ = agents.act(bs_obs)             # (B, N, d) in [0, 1]
    collector.add(bs_obs, actions, reward, cost, next_bs_obs)
    if collector.full:
        stats = agents.update(collector.pop())     # Algorithm 3
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field, model_validator

from skyshare.rl.common.buffers import Trajectory, from_agent_major, to_agent_major
from skyshare.rl.common.distributions import IndependentBeta
from skyshare.rl.common.gae import gae_targets
from skyshare.rl.common.networks import CriticGroup
from skyshare.rl.common.onpolicy import (
    EpochsResult,
    OnPolicyAgents,
    OnPolicyConfig,
    PreparedTrajectory,
    SurrogateBatch,
    clipped_surrogate_loss,
    standardized,
)
from skyshare.rl.common.optim import GroupAdam

__all__ = ["CupAgents", "CupConfig", "improvement_loss", "nu_update", "projection_loss"]


class CupConfig(OnPolicyConfig):
    """Hyper-parameters of Algorithm 3 (the shared ones in :class:`OnPolicyConfig`).

    Defaults: seed 000 §VI unless the description says otherwise.
    """

    kl_bound: float = Field(0.02, gt=0.0, description="epsilon of both KL early stops (§VI)")
    lr_nu: float = Field(0.06, ge=0.0, description="alpha_nu, step of the nu update (§VI)")
    nu_init: float = Field(1.0, ge=0.0, description="nu_0, every element (§VI)")
    nu_max: float = Field(10.0, ge=0.0, description="nu_max, every element (§VI)")
    cost_limit: float = Field(0.0, description="b, every element (§VI; (11) makes b = 0)")
    center_cost_advantages: bool = Field(
        True, description="centre the cost advantages, no scaling (OmniSafe CUP default)"
    )
    skip_unconstrained_projection: bool = Field(
        True,
        description=(
            "step 2 only for agents with some nu_l > 0: with nu = 0, (7) is KL(pi_theta || "
            "pi_theta'') alone, whose minimiser is theta'' itself, so the agent keeps the "
            "actor step 1 left (False: the epochs of Adam steps run anyway, as Algorithm 3 "
            "is written)"
        ),
    )

    @model_validator(mode="after")
    def _nu_init_within_bounds(self) -> CupConfig:
        if not self.nu_init <= self.nu_max:
            raise ValueError(f"nu_init = {self.nu_init} must be in [0, nu_max = {self.nu_max}]")
        return self


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
        (...) the loss of each agent (PPO's clipped surrogate,
        :func:`~skyshare.rl.common.onpolicy.clipped_surrogate_loss`).
    """
    return clipped_surrogate_loss(log_prob, old_log_prob, advantages, clip_ratio)


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
        config: :class:`CupConfig` (seed 000 §VI defaults when None).
        device: where networks and updates run.

    Attributes: ``actor``, ``reward_critic``, ``cost_critic`` (group modules; the cost critic
    is initialised from a generator seeded with ``config.seed + 1``), ``normalizer``, ``nu``
    (N, L), the optimisers, ``generator`` (sampling and shuffles), ``n_updates``.
    """

    _checkpointed = (*OnPolicyAgents._checkpointed, "cost_critic", "cost_critic_optimizer")

    Config = CupConfig

    def _build_extra(self, config: CupConfig) -> None:
        """The cost critic V_C (its own initialisation stream, seed + 1) and the multipliers
        nu (N, L) of Algorithm 3."""
        n_agents, n_costs = self.n_agents, self.n_costs
        cost_init = torch.Generator().manual_seed(config.seed + 1)
        self.cost_critic = CriticGroup(
            n_agents, self.obs_dim, n_costs, config.hidden_sizes, config.critic_activation,
            cost_init, deferred_weight_grad=True,  # stepped by GroupAdam only
        ).to(self.device)  # fmt: skip
        self.cost_critic_optimizer = self._adam(self.cost_critic, config.lr_critic)
        self.nu = torch.full((n_agents, n_costs), float(config.nu_init), device=self.device)

    @torch.enable_grad()  # a learner step needs autograd even inside a no_grad caller
    def update(self, trajectory: Trajectory) -> dict[str, Any]:
        """Algorithm 3 on the collected trajectory of every agent.

        Args:
            trajectory: :class:`~skyshare.rl.common.buffers.Trajectory` with obs (T, B, N, D),
                actions (T, B, N, d), rewards (T, B, N), costs (T, B, N, L), next_obs
                (T, B, N, D).

        Returns:
            Statistics; floats are means over agents, tensors (CPU) are per agent:
            ``reward_mean``, ``cost_mean`` (float); ``reward_per_agent`` (N,); ``J_C`` (N, L)
            the line-5 estimate; ``nu`` (N, L) after line 6; ``value_loss``,
            ``cost_value_loss``, ``improve_loss``, ``project_loss`` (means over the gradient
            steps taken); ``kl_improve`` (N,) KL(pi_theta || pi_theta') after step 1;
            ``kl_project`` (N,) KL(pi_theta || pi_theta'') after step 2; ``kl_total`` (N,)
            KL(final || theta'); ``epochs_improve``, ``epochs_project`` (N,) long epochs run;
            ``entropy`` (mean entropy of the final policy), ``clip_fraction`` (step 1).
        """
        cfg = self.config
        prepared = self.prepare(trajectory)
        # Lines 2-4: GAE for the reward and every cost, critic targets
        adv, target, cost_adv, cost_target = self._advantages(prepared)
        # Lines 5-6: J_C and the nu update
        cost_return = prepared.costs.mean((0, 1))  # (N, L)
        self.nu = nu_update(self.nu, cost_return, cfg.cost_limit, cfg.lr_nu, cfg.nu_max)
        # Line 8: theta' <- theta, the collecting policy and its log-probabilities
        batch = self.surrogate_batch(prepared, adv)

        # Lines 7-18: Step 1, performance improvement; critics (4), (5) and surrogate (6)
        def critic_losses(mb_obs: torch.Tensor, minibatch: torch.Tensor) -> dict[str, torch.Tensor]:
            value = (self.reward_critic(mb_obs)[..., 0] - target[:, minibatch]).square().mean(1)
            cost_value = (self.cost_critic(mb_obs) - cost_target[:, minibatch]).square()
            return {"value": value, "cost_value": cost_value.mean(1).sum(-1)}  # (5): sum over L

        improve = self.ppo_epochs(batch, critic_losses, self._step1_optimizers())
        # Lines 19-28: Step 2, projection onto the constraint with loss (7)
        project = self._project(batch, improve.final, cost_adv)
        self.n_updates += 1
        return self._stats(prepared, cost_return, batch.old_dist, improve, project)

    @torch.no_grad()
    def _advantages(self, prepared: PreparedTrajectory) -> tuple[torch.Tensor, ...]:
        """Algorithm 3 lines 2-4: reward advantages and critic targets (N, S), cost advantages
        and cost-critic targets (N, S, L); reward advantages standardised and cost advantages
        centred per agent as configured."""
        cfg = self.config
        T, B = prepared.rewards.shape[:2]
        cost_values = from_agent_major(self.cost_critic(prepared.obs), T, B)  # (T, B, N, L)
        next_cost_values = from_agent_major(self.cost_critic(prepared.next_obs), T, B)
        next_cost_values = next_cost_values * prepared.alive[..., None, None]
        ends = prepared.episode_ends
        adv, target = gae_targets(
            prepared.rewards, prepared.values, prepared.next_values, cfg.gamma, cfg.gae_lambda, ends
        )
        cost_adv, cost_target = gae_targets(
            prepared.costs, cost_values, next_cost_values, cfg.gamma, cfg.gae_lambda, ends
        )
        adv, target = to_agent_major(adv), to_agent_major(target)  # (N, S)
        cost_adv, cost_target = to_agent_major(cost_adv), to_agent_major(cost_target)
        if cfg.standardize_advantages:
            adv = standardized(adv)
        if cfg.center_cost_advantages:
            cost_adv = cost_adv - cost_adv.mean(1, keepdim=True)
        return adv, target, cost_adv, cost_target

    def _project(
        self, batch: SurrogateBatch, improved: IndependentBeta, cost_adv: torch.Tensor
    ) -> EpochsResult:
        """Step 2 (lines 19-28): theta'' <- theta (``improved``, the policy after step 1, with
        no gradient step since its last KL check); B_e epochs minimising (7) with the ratio
        pi_theta / pi_theta' (the collecting policy, whose data estimated A^C) and the KL to
        pi_theta''; an agent stops once mean_i KL(pi_theta || pi_theta'')[o_i] > epsilon.

        With ``skip_unconstrained_projection`` an agent whose nu is all 0 runs no epoch: (7)
        is then the KL to pi_theta'' alone, minimised where the agent already is. In a
        6000-slot D3QN-CUP run nu reaches 0 at update 34 of 119; the literal loop then runs
        all 20 epochs (100 actor steps per update, about half of the run's time) and ends
        within KL 1e-4 of theta'' (docs/rl/cup.md, "Step 2 when no constraint is active")."""
        cfg = self.config

        def step(minibatch: torch.Tensor, active: torch.Tensor) -> dict[str, torch.Tensor]:
            dist = self.actor(batch.obs[:, minibatch])
            loss = projection_loss(
                dist.kl(improved[:, minibatch]),
                dist.log_prob(batch.actions[:, minibatch]),
                batch.old_log_prob[:, minibatch],
                cost_adv[:, minibatch],
                self.nu,
                cfg.gamma,
                cfg.gae_lambda,
            )
            self.actor_optimizer.zero_grad()
            loss.sum().backward()
            self.actor_optimizer.step(active)
            return {"project": loss}

        constrained = (self.nu > 0).any(-1) if cfg.skip_unconstrained_projection else None
        return self.kl_stopped_epochs(
            batch.obs, improved, step, batch.minibatch_samples, taking_part=constrained
        )

    @torch.no_grad()
    def _stats(
        self,
        prepared: PreparedTrajectory,
        cost_return: torch.Tensor,
        old_dist: IndependentBeta,
        improve: EpochsResult,
        project: EpochsResult,
    ) -> dict[str, Any]:
        final = project.final  # no gradient step since the last KL check
        rewards, costs = prepared.rewards, prepared.costs
        return {
            "reward_mean": float(rewards.mean()),
            "cost_mean": float(costs.mean()),
            "reward_per_agent": rewards.mean((0, 1)).cpu(),
            "J_C": cost_return.cpu(),
            "nu": self.nu.clone().cpu(),
            "value_loss": improve.mean("value"),
            "cost_value_loss": improve.mean("cost_value"),
            "improve_loss": improve.mean("policy"),
            "project_loss": project.mean("project"),
            "clip_fraction": improve.mean("clip"),
            "kl_improve": improve.kl,
            "kl_project": project.kl,
            "kl_total": final.kl(old_dist).mean(1).cpu(),
            "epochs_improve": improve.epochs,
            "epochs_project": project.epochs,
            "entropy": float(final.entropy().mean()),
        }

    def _step1_optimizers(self) -> tuple[GroupAdam, GroupAdam, GroupAdam]:
        return self.reward_critic_optimizer, self.cost_critic_optimizer, self.actor_optimizer

    # -----------------------------------------------------------------------------------------
    # Checkpoints
    # -----------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The base checkpoint (:meth:`OnPolicyAgents.state_dict`) plus ``nu`` (N, L)."""
        return {**super().state_dict(), "nu": self.nu.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.nu = state["nu"].to(self.device).clone()
