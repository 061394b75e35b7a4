"""What the on-policy BS learners (CUP, PPO-penalty) share: config, agents, one PPO-epoch loop.

Seed 000 §V-C and §VI: every BS agent n has its own actor pi_theta (512-128-64, ReLU, ReLU,
sigmoid, a Beta policy on [0, 1]^d, :mod:`skyshare.rl.common.distributions`) and reward critic
V_phi (512-128-64, ReLU); CUP adds a cost critic. The N agents' networks are one group module
each (weights (N, in, out)), so all agents act and learn in one batched call; observations go
through a per-agent running normaliser (:mod:`skyshare.rl.common.normalizers`); every network
has its own :class:`~skyshare.rl.common.optim.GroupAdam` (per-agent steps, clipping and an
``active`` mask, so that an agent whose KL early stop fired stops moving while the others go on:
each agent runs Algorithm 3 on its own).

The update loops of both learners have one shape, :meth:`OnPolicyAgents.kl_stopped_epochs`:
B_e epochs over shuffled minibatches of B_b slots, after every epoch the KL of the current
policy to a reference policy over the whole collector, per agent, and a per-agent early stop
once it exceeds the bound. :meth:`OnPolicyAgents.ppo_epochs` is that loop with PPO's step
(critic MSE (4)/(5) + clipped surrogate (6)): CUP's step 1 (performance improvement, Algorithm 3
lines 7-18) and PPO-penalty's whole update. CUP's step 2 (projection) runs the same loop with
the loss (7).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import Field, PositiveInt, model_validator

from skyshare.checks import check_memory
from skyshare.errors import ConfigError, ShapeError
from skyshare.rl.common.buffers import Trajectory, from_agent_major, to_agent_major
from skyshare.rl.common.config import LearnerConfig, plain
from skyshare.rl.common.distributions import ACTION_EPS, IndependentBeta
from skyshare.rl.common.networks import (
    ActivationName,
    BetaActorGroup,
    CriticGroup,
    training_bytes,
)
from skyshare.rl.common.normalizers import ObservationNormalizer
from skyshare.rl.common.optim import GroupAdam

__all__ = [
    "EpochsResult",
    "OnPolicyAgents",
    "OnPolicyConfig",
    "PreparedTrajectory",
    "SurrogateBatch",
    "clipped_surrogate_loss",
    "standardized",
]


class OnPolicyConfig(LearnerConfig):
    """Hyper-parameters shared by the on-policy BS learners (CUP, PPO-penalty).

    Defaults: seed 000 §VI unless the description says otherwise.
    """

    gamma: float = Field(0.5, ge=0.0, lt=1.0, description="discount factor gamma (§VI)")
    gae_lambda: float = Field(0.1, ge=0.0, le=1.0, description="GAE parameter lambda (§VI)")
    lr_critic: float = Field(3e-4, gt=0.0, description="alpha_V, critics' learning rate (§VI)")
    lr_actor: float = Field(3e-4, gt=0.0, description="alpha_pi, actor's learning rate (§VI)")
    kl_bound: float | None = Field(
        0.02, gt=0.0, description="epsilon of the KL early stops (§VI); None: no early stop"
    )
    collector_size: int = Field(
        50, ge=1, description="B_m^BS, slots per update (§VI; the caller's collector)"
    )
    minibatch_size: int = Field(10, ge=1, description="B_b, slots per minibatch (§VI)")
    epochs: int = Field(20, ge=1, description="B_e, epochs per step (§VI)")
    clip_ratio: float = Field(
        0.2, gt=0.0, lt=1.0, description="epsilon of the clipped surrogate (6) ([47]: 0.2)"
    )
    hidden_sizes: tuple[PositiveInt, ...] = Field(
        (512, 128, 64), min_length=1, description="actor and critics' hidden widths (§VI)"
    )
    actor_activations: tuple[ActivationName, ...] | None = Field(
        None,
        description="one per hidden layer of the actor; None: relu on every hidden layer but "
        "the last and sigmoid on the last (§VI: relu, relu, sigmoid for 512-128-64; the same "
        "pattern at other depths is a choice)",
    )
    critic_activation: ActivationName = Field("relu", description="critics' activation (§VI)")
    standardize_advantages: bool = Field(
        True, description="standardise reward advantages per agent (CleanRL / OmniSafe default)"
    )
    entropy_coef: float = Field(0.0, ge=0.0, description="entropy bonus (CleanRL: 0)")
    max_grad_norm: float | None = Field(
        0.5, gt=0.0, description="per-agent gradient-norm bound per network (CleanRL PPO)"
    )
    adam_eps: float = Field(1e-5, gt=0.0, description="Adam epsilon (CleanRL PPO)")
    observation_transform: Literal["symlog", "none"] = Field(
        "symlog", description="fixed transform before the running normaliser (choice)"
    )
    normalize_observations: bool = Field(True, description="running mean/std per agent (choice)")
    observation_clip: float = Field(
        10.0, gt=0.0, description="bound of the normalised observations (Gymnasium)"
    )

    def actor_activation_names(self) -> tuple[str, ...]:
        """The actor's activations, one per hidden layer: ``actor_activations``, or when None
        relu on every hidden layer but the last and sigmoid on the last (§VI's relu, relu,
        sigmoid at the paper's depth of three)."""
        if self.actor_activations is not None:
            return self.actor_activations
        return ("relu",) * (len(self.hidden_sizes) - 1) + ("sigmoid",)

    @model_validator(mode="after")
    def _one_activation_per_hidden_layer(self) -> OnPolicyConfig:
        if self.actor_activations is not None and len(self.actor_activations) != len(
            self.hidden_sizes
        ):
            raise ValueError(
                f"actor_activations needs one name per hidden layer: {len(self.hidden_sizes)} "
                f"hidden sizes, {len(self.actor_activations)} activations"
            )
        return self


# ---------------------------------------------------------------------------------------------
# Pieces on fixed numbers
# ---------------------------------------------------------------------------------------------


def clipped_surrogate_loss(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    clip_ratio: float,
) -> torch.Tensor:
    """PPO's -L^CLIP ([47] eq. (7)), seed 000 loss (6), averaged over the last axis:
    ``-(1/M) sum_j min(rho_j A_j, clip(rho_j, 1 - eps, 1 + eps) A_j)``,
    ``rho_j = exp(log_prob_j - old_log_prob_j)``.

    Args:
        log_prob: (..., M) ln pi_theta(a_j | o_j) (with gradient).
        old_log_prob: (..., M) ln pi_theta'(a_j | o_j).
        advantages: (..., M) A_j.
        clip_ratio: eps.

    Returns:
        (...) the loss of each agent. Where the clipped term is the minimum (rho > 1 + eps with
        A > 0, rho < 1 - eps with A < 0) the gradient is zero.
    """
    ratio = torch.exp(log_prob - old_log_prob)
    clipped = ratio.clamp(1.0 - clip_ratio, 1.0 + clip_ratio)
    return -torch.minimum(ratio * advantages, clipped * advantages).mean(-1)


def standardized(x: torch.Tensor) -> torch.Tensor:
    """(N, S) -> per-agent zero mean, unit (population) standard deviation."""
    return (x - x.mean(1, keepdim=True)) / (x.std(1, keepdim=True, correction=0) + 1e-8)


@dataclass
class PreparedTrajectory:
    """A trajectory as the on-policy updates consume it (S = T*B samples per agent).

    Attributes:
        obs, next_obs: (N, S, D) normalised observations. actions: (N, S, d).
        values, next_values: (T, B, N) reward-critic values of obs and next_obs, the latter
            zeroed after a terminated slot. alive: (T, B) 0 after a terminated slot, else 1.
        rewards: (T, B, N), costs: (T, B, N, L) in the critics' dtype.
        episode_ends: (T, B) bool or None (GAE does not chain across them).
        minibatch_samples: B_b slots of every environment, B_b * B samples.
    """

    obs: torch.Tensor
    next_obs: torch.Tensor
    actions: torch.Tensor
    values: torch.Tensor
    next_values: torch.Tensor
    alive: torch.Tensor
    rewards: torch.Tensor
    costs: torch.Tensor
    episode_ends: torch.Tensor | None
    minibatch_samples: int


@dataclass
class SurrogateBatch:
    """What a PPO epoch loop needs (N agents, S samples each).

    Attributes:
        obs: (N, S, D) normalised. actions: (N, S, d). advantages: (N, S) A_j.
        old_dist: pi_theta' on ``obs`` (concentrations (N, S, d)), the collecting policy.
        old_log_prob: (N, S) ln pi_theta'(a_j | o_j).
        minibatch_samples: samples per minibatch.
    """

    obs: torch.Tensor
    actions: torch.Tensor
    advantages: torch.Tensor
    old_dist: IndependentBeta
    old_log_prob: torch.Tensor
    minibatch_samples: int


@dataclass
class EpochsResult:
    """Outcome of :meth:`OnPolicyAgents.kl_stopped_epochs`.

    Attributes:
        final: the policy after the last epoch on all S samples (no gradient step since).
        kl: (N,) CPU KL(pi || reference) over the collector at each agent's last epoch.
        epochs: (N,) long epochs each agent ran.
        sums: statistic -> sum over the gradient steps of its mean over the active agents.
        steps: gradient steps taken.
    """

    final: IndependentBeta
    kl: torch.Tensor
    epochs: torch.Tensor
    sums: dict[str, torch.Tensor]
    steps: int

    def mean(self, name: str) -> float:
        """Mean of statistic ``name`` over the gradient steps (0 when none was taken)."""
        return float(self.sums.get(name, 0.0)) / max(self.steps, 1)


MinibatchStep = Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]
"""``step(minibatch, active) -> {statistic: (N,)}``: one gradient step on the sample indices
``minibatch`` for the agents with ``active`` (N,) True."""

CriticLosses = Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]
"""``losses(mb_obs, minibatch) -> {name: (N,)}``: the critics' per-agent losses on a minibatch."""


# ---------------------------------------------------------------------------------------------
# The agents
# ---------------------------------------------------------------------------------------------


class OnPolicyAgents:
    """N BS agents with a Beta actor group, a reward critic group, their per-agent Adam
    optimisers and an observation normaliser, for trajectories with L cost signals.

    Args:
        obs_dim: D (CATN: ``env.bs_obs_dim`` = 3996 with the paper's settings).
        act_dim: d (CATN: ``env.action_dim`` = 2K + L + 2 = 46).
        n_agents: N (CATN: 7 BSs).
        n_costs: L (CATN: 2 aerial users).
        config: an instance of the subclass's ``Config`` (its defaults when None).
        device: where networks and updates run.

    Subclasses (``CupAgents``, ``PpoPenaltyAgents``) add their critics and ``update``.
    Attributes: ``actor``, ``reward_critic``, ``normalizer``, ``actor_optimizer``,
    ``reward_critic_optimizer``, ``generator`` (sampling and shuffles, on ``device``, seeded
    with ``config.seed``; the networks are initialised from a CPU generator with the same seed),
    ``n_updates``.
    """

    Config: type[OnPolicyConfig] = OnPolicyConfig  # the subclass's config (default instance)

    # modules and optimizers saved by state_dict(); subclasses extend the tuple
    _checkpointed: tuple[str, ...] = (
        "actor",
        "reward_critic",
        "normalizer",
        "actor_optimizer",
        "reward_critic_optimizer",
    )

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        n_agents: int,
        n_costs: int,
        config: OnPolicyConfig | None = None,
        *,
        device: str | torch.device = "cpu",
    ) -> None:
        config = config if config is not None else self.Config()
        for name, value in (
            ("obs_dim", obs_dim),
            ("act_dim", act_dim),
            ("n_agents", n_agents),
            ("n_costs (L)", n_costs),
        ):
            if value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        check_memory(
            self.memory_estimate(obs_dim, act_dim, n_agents, n_costs, config.hidden_sizes),
            f"{type(self).__name__} ({n_agents} agents, hidden_sizes "
            f"{list(config.hidden_sizes)}, {obs_dim} inputs)",
        )
        self.obs_dim, self.act_dim, self.n_agents = obs_dim, act_dim, n_agents
        self.n_costs = n_costs
        self.config = config
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)
        init_generator = torch.Generator().manual_seed(config.seed)
        self.actor = BetaActorGroup(
            n_agents,
            obs_dim,
            act_dim,
            config.hidden_sizes,
            config.actor_activation_names(),
            init_generator,
            deferred_weight_grad=True,  # stepped by GroupAdam only
        ).to(self.device)
        self.reward_critic = CriticGroup(
            n_agents,
            obs_dim,
            1,
            config.hidden_sizes,
            config.critic_activation,
            init_generator,
            deferred_weight_grad=True,
        ).to(self.device)
        self.normalizer = ObservationNormalizer(
            n_agents,
            obs_dim,
            transform=config.observation_transform,
            enabled=config.normalize_observations,
            clip=config.observation_clip,
        ).to(self.device)
        self.actor_optimizer = self._adam(self.actor, config.lr_actor)
        self.reward_critic_optimizer = self._adam(self.reward_critic, config.lr_critic)
        self.n_updates = 0
        self._build_extra(config)

    @staticmethod
    def memory_estimate(
        obs_dim: int, act_dim: int, n_agents: int, n_costs: int, hidden_sizes: Sequence[int]
    ) -> int:
        """Bytes of the float32 networks of ``n_agents`` agents with their training state: the
        actor (2 act_dim outputs, the Beta concentrations), the reward critic and a cost critic
        (n_costs outputs; an upper bound for learners without one), each held as weights,
        gradient buffer and Adam's two moments (4 copies)."""
        return sum(
            training_bytes(n_agents, (obs_dim, *hidden_sizes, out))
            for out in (2 * act_dim, 1, n_costs)
        )

    def _build_extra(self, config: OnPolicyConfig) -> None:
        """Hook for what a subclass adds after the shared networks (CUP: its cost critic)."""

    def _adam(self, network: torch.nn.Module, lr: float) -> GroupAdam:
        """Per-agent Adam over ``network`` with the config's eps and gradient-norm bound."""
        config = self.config
        return GroupAdam(
            network.parameters(), lr, eps=config.adam_eps, max_grad_norm=config.max_grad_norm
        )

    # -----------------------------------------------------------------------------------------
    # Acting (Algorithm 4 line 26)
    # -----------------------------------------------------------------------------------------

    @torch.no_grad()
    def act(
        self,
        obs: torch.Tensor,
        *,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
        update_statistics: bool | None = None,
        with_values: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Actions of all agents in all environments (Algorithm 4 line 26).

        Args:
            obs: (B, N, D) float observations (8), the env's layout.
            deterministic: use the Beta mean (evaluation) instead of a sample.
            generator: sampling generator (the agents' own seeded generator when None).
            update_statistics: merge ``obs`` into the normaliser's running moments; default
                ``not deterministic`` (collecting updates them, evaluation does not).
            with_values: also evaluate the reward critic. False returns None for the values and
                halves the cost of a decision (each network's first layer is 57 MB of weights
                to read for the paper's sizes; the actor alone decides).

        Returns:
            actions (B, N, d) in [1e-6, 1 - 1e-6], their log-probabilities (B, N) and the reward
            critic's values (B, N) (None with ``with_values=False``). No autograd graph is
            recorded (the learners recompute what they differentiate).
        """
        if obs.ndim != 3 or obs.shape[1:] != (self.n_agents, self.obs_dim):
            raise ShapeError(
                f"obs must be (B, N, D) = (B, {self.n_agents}, {self.obs_dim}), "
                f"got {tuple(obs.shape)}"
            )
        x = obs.to(self.device).transpose(0, 1)  # (N, B, D)
        if update_statistics if update_statistics is not None else not deterministic:
            z = self.normalizer.update_and_normalize(x)
        else:
            z = self.normalizer(x)
        dist = self.actor(z)
        if deterministic:
            actions = dist.mean.clamp(ACTION_EPS, 1.0 - ACTION_EPS)
        else:
            actions = dist.sample(generator if generator is not None else self.generator)
        log_probs = dist.log_prob(actions)
        values = self.reward_critic(z)[..., 0].transpose(0, 1) if with_values else None
        return actions.transpose(0, 1), log_probs.transpose(0, 1), values

    # -----------------------------------------------------------------------------------------
    # Update building blocks
    # -----------------------------------------------------------------------------------------

    @torch.no_grad()
    def prepare(self, trajectory: Trajectory) -> PreparedTrajectory:
        """Check ``trajectory`` against the agents, move it to their device, normalise its
        observations and evaluate the reward critic on them (GAE's inputs)."""
        trajectory.check(self.n_agents, self.obs_dim, self.act_dim, self.n_costs)
        trajectory = trajectory.to(self.device)
        T, B = trajectory.n_slots, trajectory.n_envs
        obs = self.normalizer(to_agent_major(trajectory.obs))  # (N, S, D), S = T*B
        next_obs = self.normalizer(to_agent_major(trajectory.next_obs))
        values = from_agent_major(self.reward_critic(obs)[..., 0], T, B)  # (T, B, N)
        next_values = from_agent_major(self.reward_critic(next_obs)[..., 0], T, B)
        alive = torch.ones(T, B, dtype=values.dtype, device=self.device)
        if trajectory.terminated is not None:
            alive = (~trajectory.terminated.bool()).to(values.dtype)
        return PreparedTrajectory(
            obs=obs,
            next_obs=next_obs,
            actions=to_agent_major(trajectory.actions),  # (N, S, d)
            values=values,
            next_values=next_values * alive[..., None],
            alive=alive,
            rewards=trajectory.rewards.to(values.dtype),
            costs=trajectory.costs.to(values.dtype),
            episode_ends=trajectory.episode_ends(),
            minibatch_samples=self.config.minibatch_size * B,
        )

    @torch.no_grad()
    def surrogate_batch(
        self, prepared: PreparedTrajectory, advantages: torch.Tensor
    ) -> SurrogateBatch:
        """theta' <- theta (Algorithm 3 line 8): the collecting policy pi_theta' on the
        prepared samples and its log-probabilities, with the advantages (N, S)."""
        old_dist = self.actor(prepared.obs)  # pi_theta', (N, S, d)
        return SurrogateBatch(
            obs=prepared.obs,
            actions=prepared.actions,
            advantages=advantages,
            old_dist=old_dist,
            old_log_prob=old_dist.log_prob(prepared.actions),  # (N, S)
            minibatch_samples=prepared.minibatch_samples,
        )

    def _minibatches(self, n_samples: int, minibatch_samples: int) -> list[torch.Tensor]:
        """One shuffled pass over the samples in chunks of ``minibatch_samples``.

        The same permutation serves all agents (each agent still sees only its own data).
        """
        perm = torch.randperm(n_samples, generator=self.generator, device=self.device)
        return list(perm.split(minibatch_samples))

    def kl_stopped_epochs(
        self,
        obs: torch.Tensor,
        reference: IndependentBeta,
        step: MinibatchStep,
        minibatch_samples: int,
        taking_part: torch.Tensor | None = None,
    ) -> EpochsResult:
        """B_e epochs of ``step`` over shuffled minibatches with a per-agent KL early stop.

        After every epoch, ``mean_i KL(pi_theta || reference)[o_i]`` over the collector, per
        agent (Algorithm 3 lines 15-17 and 25-27); an agent stops once it exceeds
        ``config.kl_bound`` (a non-finite KL counts as exceeded; None: no early stop). A
        stopped agent keeps its networks for the rest of the loop.

        Args:
            obs: (N, S, D) normalised observations of the collector.
            reference: the policy the KL is measured to (concentrations (N, S, d)).
            step: one gradient step on a minibatch (:data:`MinibatchStep`).
            minibatch_samples: samples per minibatch.
            taking_part: (N,) bool, the agents that run the loop (all when None); the others
                run no epoch and keep their networks (epochs 0, their KL measured once).
        """
        cfg = self.config
        N, S = obs.shape[:2]
        active = torch.ones(N, dtype=torch.bool)  # host side
        if taking_part is not None:
            active &= taking_part.cpu().bool()
        epochs = torch.zeros(N, dtype=torch.long)
        kl_last = torch.zeros(N)
        zero = torch.zeros((), device=self.device)
        sums: dict[str, torch.Tensor] = {}
        steps = 0
        final = None
        for _ in range(cfg.epochs):
            if not bool(active.any()):
                break
            weight = (active.float() / active.float().sum()).to(self.device)
            for minibatch in self._minibatches(S, minibatch_samples):
                stats = step(minibatch, active)
                with torch.no_grad():
                    for name, value in stats.items():
                        sums[name] = sums.get(name, zero) + (value * weight).sum()
                steps += 1
            with torch.no_grad():
                final = self.actor(obs)  # the policy after this epoch
                kl = final.kl(reference).mean(1).cpu()  # (N,)
            kl_last = torch.where(active, kl, kl_last)
            epochs += active.long()
            if cfg.kl_bound is not None:
                active &= kl <= cfg.kl_bound  # a non-finite KL stops the agent too
        if final is None:  # no agent took part: the policy as it is
            with torch.no_grad():
                final = self.actor(obs)
        if bool((epochs == 0).any()):  # agents that ran no epoch: their KL as they are
            with torch.no_grad():
                kl_last = torch.where(epochs > 0, kl_last, final.kl(reference).mean(1).cpu())
        return EpochsResult(final, kl_last, epochs, sums, steps)

    def ppo_epochs(
        self,
        batch: SurrogateBatch,
        critic_losses: CriticLosses,
        optimizers: Sequence[GroupAdam],
    ) -> EpochsResult:
        """PPO's update loop: CUP's step 1 (Algorithm 3 lines 7-18) and PPO-penalty's update.

        Every minibatch step minimises ``sum(critic losses) + loss (6)`` (minus the entropy
        bonus) per agent with one backward pass (the networks have disjoint parameters) and
        steps every optimiser in ``optimizers`` for the active agents; the KL early stop is
        measured to the collecting policy ``batch.old_dist``.

        Returns the :class:`EpochsResult` with statistics ``policy`` (loss (6)), ``clip`` (the
        fraction of clipped ratios) and one per critic loss.
        """
        cfg = self.config

        def step(minibatch: torch.Tensor, active: torch.Tensor) -> dict[str, torch.Tensor]:
            mb_obs = batch.obs[:, minibatch]
            losses = critic_losses(mb_obs, minibatch)  # each (N,)
            dist = self.actor(mb_obs)
            log_prob = dist.log_prob(batch.actions[:, minibatch])
            old_log_prob = batch.old_log_prob[:, minibatch]
            advantages = batch.advantages[:, minibatch]
            loss = clipped_surrogate_loss(log_prob, old_log_prob, advantages, cfg.clip_ratio)
            if cfg.entropy_coef > 0:
                loss = loss - cfg.entropy_coef * dist.entropy().mean(1)
            terms = [*losses.values(), loss]
            total = terms[0]
            for term in terms[1:]:
                total = total + term
            for optimizer in optimizers:
                optimizer.zero_grad()
            total.sum().backward()
            for optimizer in optimizers:
                optimizer.step(active)
            with torch.no_grad():
                ratio = torch.exp(log_prob - old_log_prob)
                clipped = ((ratio - 1.0).abs() > cfg.clip_ratio).float().mean(1)
            return {**losses, "policy": loss, "clip": clipped}

        return self.kl_stopped_epochs(batch.obs, batch.old_dist, step, batch.minibatch_samples)

    # -----------------------------------------------------------------------------------------
    # Checkpoints
    # -----------------------------------------------------------------------------------------

    @torch.no_grad()
    def state_dict(self) -> dict[str, Any]:
        """Networks, normaliser, optimisers (their state_dicts), ``generator`` (ByteTensor),
        ``n_updates``, ``dims`` [D, d, N, L] and ``config`` (a plain dict): only tensors,
        numbers, strings, bools, None and lists/dicts, so ``torch.load(weights_only=True)``
        reads it."""
        state = {name: getattr(self, name).state_dict() for name in self._checkpointed}
        state.update(
            config=plain(self.config.model_dump()),
            dims=[self.obs_dim, self.act_dim, self.n_agents, self.n_costs],
            generator=self.generator.get_state(),
            n_updates=self.n_updates,
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` of agents with the same dimensions."""
        dims = (self.obs_dim, self.act_dim, self.n_agents, self.n_costs)
        if tuple(state["dims"]) != dims:
            raise ShapeError(
                f"checkpoint has (obs_dim, act_dim, n_agents, n_costs) = {tuple(state['dims'])}, "
                f"these agents {dims}"
            )
        for name in self._checkpointed:  # optimiser states copied: torch's load aliases them
            value = state[name]
            getattr(self, name).load_state_dict(
                copy.deepcopy(value) if name.endswith("optimizer") else value
            )
        self.generator.set_state(state["generator"].cpu())
        self.n_updates = int(state["n_updates"])
