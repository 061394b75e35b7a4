"""MAPPO and IPPO with per-user Lagrange multipliers for seed 001 (TN-NTN subchannel assignment).

MAPPO: C. Yu, A. Velu, E. Vinitsky, J. Gao, Y. Wang, A. Bayen, Y. Wu, "The surprising
effectiveness of PPO in cooperative multi-agent games", NeurIPS 2022 (the seed's [14]); IPPO is
the same algorithm with each agent's value on its local observation (de Witt et al. 2020; the
seed's baselines follow [7], [8], with the details of [14]). The constraint handling is seed
001 §III-D (:mod:`skyshare.rl.common.lagrangian`). Three settings of §IV share this one file:

* **MAPPO-Lagrangian on the decomposed game (RL2)**, the proposed method: the env has M > 1 turns
  (SRBs); agent A_{n,m} controls SRB m of BS n;
* **MAPPO-L on (RL1)** and **IPPO-L on (RL1)**, the baselines: the env has M = 1 turn, one agent
  per BS over all its subchannels (``TnNtnEnv(..., formulation="per_bs")``); IPPO is
  ``critic="local"`` (:func:`ippo_config`).

The game (env contract of ``skyshare.envs.tn_ntn``, taken duck-typed): a frame has M turns; in
turn m the N agents A_{1..N,m} act at once on ``obs (B, N, D)`` with ``action_mask (B, N, S, C)``
(S subchannels per agent, C = K_max + 1 choices: 0 = off, k = user slot k - 1); after the last
turn the env returns the group rewards ``reward (B, M)`` (10) (group G_m shares reward[:, m]),
the costs ``cost (B, N, K_max)`` (11) and ``done (B,)``. The discount applies per frame: the
M groups are M sub-games (RL2) over frames, each with its own return
``sum_t gamma^t r^_m(t)``.

Networks (all groups of independent networks, weights (G, in, out)):

* actor: a multi-head categorical policy, S heads of C choices masked with the action mask
  (:class:`~skyshare.rl.common.distributions.MaskedMultiCategorical`). Parameter sharing
  (§III-A: equal SRB sizes allow it): ``actor_sharing="bs"`` (default) gives each BS n one
  network shared by its M SRB agents (the observation carries the SRB index), a group of N
  networks; ``"all"`` one network for all N M agents.
* critic, ``critic="central"`` (MAPPO): one value network per group G_m on the global state,
  V_m(s_{t,m}), a group of M networks (the M sub-games have different rewards); its value is
  shared by the N agents of G_m. ``critic="local"`` (IPPO): a value per agent on its own
  observation, V_n(o_{t,n,m}), grouped like the actor. The critic input is the only difference.

One update (after ``episodes_per_update`` whole episodes in the B environments):

1. shaped rewards r^_m(t) = r_m(t) - sum_k lambda_k (1 - gamma) c_k(t) / M (``penalty_sharing``
   "split"; :func:`~skyshare.rl.common.lagrangian.shaped_reward`);
2. GAE per sub-game over frames (:func:`frame_advantages`); an episode end is terminal (MAPPO's
   default ``use_proper_time_limits=False``); advantages standardised over the whole batch;
3. ``epochs`` epochs over shuffled minibatches of ``minibatch_size`` frames (every frame with
   its N M decisions): PPO's clipped surrogate with the joint ratio of the S heads, the entropy
   bonus (mean over heads), the value loss (Huber, clipped around the old prediction, on
   normalised targets: MAPPO's ValueNorm), per-network gradient clipping and Adam;
4. the multipliers' step (17)-(18) every ``lambda_period`` updates, on the mean cost.

Usage::

    agents = MappoAgents.for_env(env, MappoConfig(seed=0))     # MAPPO-Lagrangian
    log = agents.train(env, frames=10_000, seed=0)             # per-episode curves
    # step by step, for every turn of every frame: turn = env.observe();
    # actions, log_prob, _ = agents.act(turn); result = env.act(actions) (None before the
    # frame's last turn); agents.record(turn, actions, result); and once agents.ready:
    # stats = agents.update()
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from pydantic import Field, PositiveInt
from torch import nn
from torch.nn import functional as F

from skyshare.envs.tn_ntn_observations import STATE_GAIN_ORDER
from skyshare.errors import ConfigError, ShapeError
from skyshare.rl.common.config import LearnerConfig, plain
from skyshare.rl.common.distributions import MaskedMultiCategorical
from skyshare.rl.common.gae import gae
from skyshare.rl.common.lagrangian import LagrangeMultipliers, PenaltySharing, shaped_reward
from skyshare.rl.common.networks import (
    ActivationName,
    CriticGroup,
    GroupLinear,
    GroupMLP,
    init_orthogonal,
)
from skyshare.rl.common.normalizers import ObservationNormalizer
from skyshare.rl.common.onpolicy import clipped_surrogate_loss, standardized
from skyshare.rl.common.optim import GroupAdam

__all__ = [
    "CategoricalActorGroup",
    "EnvSpec",
    "MappoAgents",
    "MappoConfig",
    "MappoTrainingLog",
    "frame_advantages",
    "ippo_config",
    "value_loss",
]


class MappoConfig(LearnerConfig):
    """Hyper-parameters of MAPPO / IPPO with Lagrange multipliers.

    Defaults: seed 001 §IV where it gives a value (learning rate, discount, batch size); MAPPO
    (Yu et al. 2022, its paper and its reference implementation ``onpolicy/config.py``) for the
    PPO values the seed leaves out; the rest are marked "choice" (docs/rl/mappo.md).
    """

    critic: Literal["central", "local"] = Field(
        "central", description="central: MAPPO (V_m on the global state); local: IPPO (V_n on o)"
    )
    actor: Literal["mlp", "per_subchannel"] = Field(
        "per_subchannel",
        description="per_subchannel (choice, measured): one small network shared by the S "
        "heads, each reading its own subchannel's row of the observation's first block (gains "
        "[s, k], S x K_max values) and an embedding of the rest; mlp: MAPPO's one MLP from the "
        "observation to all S x C logits",
    )
    actor_sharing: Literal["bs", "all"] = Field(
        "bs", description="one actor per BS shared by its M SRB agents (§III-A), or one for all"
    )
    lagrangian: bool = Field(True, description="shape the reward with the multipliers (§III-D)")
    gamma: float = Field(0.9, ge=0.0, lt=1.0, description="discount factor per frame (§IV)")
    lr_actor: float = Field(5e-5, gt=0.0, description="actor's Adam learning rate (§IV)")
    lr_critic: float = Field(5e-5, gt=0.0, description="critic's Adam learning rate (§IV)")
    minibatch_size: int = Field(
        64, ge=1, description="frames per minibatch, each with its N M decisions (§IV batch 64)"
    )
    episodes_per_update: int = Field(
        1, ge=1, description="whole episodes (in all B envs) per update (choice; MAPPO: 1 rollout)"
    )
    epochs: int = Field(
        10, ge=1, description="PPO epochs per update (MAPPO: at most 10 on difficult tasks)"
    )
    clip_ratio: float = Field(0.2, gt=0.0, lt=1.0, description="PPO clip epsilon (MAPPO: 0.2)")
    ratio: Literal["joint", "per_head"] = Field(
        "per_head",
        description="PPO ratio of an agent's decision: one ratio and clip per head with the "
        "agent's advantage (a factorised surrogate; choice, measured, for blocks of 40-320 "
        "subchannels), or the joint ratio of its S heads (MAPPO's multi-discrete actions)",
    )
    gae_lambda: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="GAE lambda (choice, measured: 0, one-step TD advantages; MAPPO's 0.95 adds "
        "the noise of future frames the actions do not influence)",
    )
    entropy_coef: float = Field(
        0.01, ge=0.0, description="entropy bonus, on the mean entropy per head (MAPPO: 0.01)"
    )
    value_loss_coef: float = Field(1.0, ge=0.0, description="value-loss weight (MAPPO: 1)")
    value_clip: float | None = Field(
        0.2, gt=0.0, description="value clip around the old value (MAPPO: clip_param); None: off"
    )
    huber_delta: float | None = Field(
        10.0, gt=0.0, description="Huber loss delta of the value loss (MAPPO: 10); None: MSE / 2"
    )
    value_normalization: bool = Field(
        True, description="running mean/std of the value targets (MAPPO: ValueNorm)"
    )
    standardize_advantages: bool = Field(True, description="over the batch (MAPPO)")
    max_grad_norm: float | None = Field(
        10.0, gt=0.0, description="gradient-norm bound per network (MAPPO: 10)"
    )
    adam_eps: float = Field(1e-5, gt=0.0, description="Adam epsilon (MAPPO: 1e-5)")
    hidden_sizes: tuple[PositiveInt, ...] = Field(
        (64, 64), min_length=1, description="hidden widths of actor and critic (MAPPO: 64, 64)"
    )
    activation: ActivationName = Field("relu", description="hidden activation (MAPPO: ReLU)")
    actor_output_gain: float = Field(
        0.01, gt=0.0, description="orthogonal gain of the actor's last layer (MAPPO: 0.01)"
    )
    normalize_observations: bool = Field(
        True, description="running mean/std of obs and state (choice; MAPPO: input LayerNorm)"
    )
    observation_transform: Literal["none", "symlog"] = Field(
        "none", description="fixed transform before the running normaliser (choice)"
    )
    observation_clip: float = Field(
        10.0, gt=0.0, description="bound of normalised inputs (Gymnasium NormalizeObservation)"
    )
    lambda_lr: float = Field(
        1.0,
        ge=0.0,
        description="alpha of (17) per Mbit/s (choice, measured: at 0.05 the multipliers hardly "
        "move in 80 episodes; docs/rl/mappo.md)",
    )
    lambda_period: int = Field(1, ge=1, description="updates between multiplier steps (choice)")
    lambda_init: float = Field(0.0, ge=0.0, description="lambda_0 (choice)")
    lambda_max: float | None = Field(
        None, ge=0.0, description="upper bound of the multipliers (None: unbounded, §III-D)"
    )
    lambda_average: Literal["all", "active"] = Field(
        "active",
        description="mean cost of (18) over the samples where the slot held a user (choice, "
        "measured) or over all samples (the occupancy measure of §III-D, empty slots count 0)",
    )
    cost_limit: float = Field(0.0, description="d_k of (6), Mbit/s (0 in (13))")
    penalty_sharing: PenaltySharing = Field(
        "split", description="each group subtracts penalty / M (split) or all of it (full)"
    )


def ippo_config(**overrides: Any) -> MappoConfig:
    """The IPPO baseline's config: :class:`MappoConfig` with ``critic="local"`` (the same
    networks and hyper-parameters, each agent's value on its local observation)."""
    return MappoConfig(**{**overrides, "critic": "local"})


# The central critic reads the env's global state, which starts with its gain block (P N S
# values) in the order STATE_GAIN_ORDER. Checkpoints without ``state_gain_order`` are of the
# earlier "s,p,l" order and are converted on loading (MappoAgents._convert_state_gain_order).
_LEGACY_STATE_GAIN_ORDER = "s,p,l"


@dataclass(frozen=True)
class EnvSpec:
    """The sizes the learner reads from the env (``skyshare.envs.tn_ntn`` contract).

    Attributes: n_bs N, n_turns M (1 for (RL1)), block_size S (subchannels per agent),
    n_choices C = K_max + 1, obs_dim D, state_dim D_s.
    """

    n_bs: int
    n_turns: int
    block_size: int
    n_choices: int
    obs_dim: int
    state_dim: int

    def __post_init__(self) -> None:
        if min(self.as_list()) < 1 or self.n_choices < 2:
            raise ConfigError(f"env sizes must be >= 1 (n_choices >= 2), got {self}")

    @property
    def k_max(self) -> int:
        return self.n_choices - 1

    @classmethod
    def from_env(cls, env: Any) -> EnvSpec:
        return cls(
            int(env.n_bs),
            int(env.n_turns),
            int(env.block_size),
            int(env.n_choices),
            int(env.obs_dim),
            int(env.state_dim),
        )

    def as_list(self) -> list[int]:
        return [self.n_bs, self.n_turns, self.block_size, self.n_choices, self.obs_dim,
                self.state_dim]  # fmt: skip


class SubchannelActorGroup(nn.Module):
    """G actors whose S heads share one network (``MappoConfig(actor="per_subchannel")``).

    The observation's first S K values are the gains of the agent's S subchannels to its K user
    slots, row s first (the env's ``gain`` block, ``[s, k]``); the rest is the context (path
    losses, Psi, psi, indices). The context goes through an MLP to an embedding e (G, X, H);
    head s reads ``[gain_s (K), e]`` through a second MLP shared by all heads, to C logits. So
    every head sees its own subchannel's gains directly instead of through one bottleneck for
    all S heads (choice: the best user of a subchannel is mostly the best gain on it).
    """

    def __init__(
        self,
        n_groups: int,
        obs_dim: int,
        n_heads: int,
        n_choices: int,
        hidden_sizes: tuple[int, ...],
        activation_name: str,
        output_gain: float,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        self.n_heads, self.n_choices = n_heads, n_choices
        self.k_max = n_choices - 1
        gains = n_heads * self.k_max
        if obs_dim <= gains:
            raise ShapeError(
                f"actor='per_subchannel' needs an observation that starts with S K_max = {gains} "
                f"gains and has context after them; obs_dim is {obs_dim}"
            )
        width = hidden_sizes[-1]
        self.context = GroupMLP(n_groups, (obs_dim - gains, *hidden_sizes), activation_name,
                                output_activation=activation_name)  # fmt: skip
        self.head = GroupMLP(
            n_groups, (self.k_max + width, *hidden_sizes, n_choices), activation_name
        )
        init_orthogonal(self.context, generator, output_gain=math.sqrt(2.0))
        init_orthogonal(self.head, generator, output_gain=output_gain)

    def forward(self, obs: torch.Tensor, mask: torch.Tensor) -> MaskedMultiCategorical:
        """obs (G, X, D), mask (G, X, S, C) bool -> heads (G, X, S, C).

        The head's first layer on ``[gain_s, e]`` is computed in two parts, ``gain_s W_gain``
        per head and ``e W_e + b`` once per row x (its weight's first K and last H input
        rows), instead of on the S concatenated rows: the same values up to float rounding,
        without the (G, X S, K + H) copy and with S times less work on the e part.
        """
        X = obs.shape[1]
        S, K = self.n_heads, self.k_max
        gains = obs[..., : S * K].reshape(obs.shape[0], X * S, K)  # (G, X S, K)
        embedding = self.context(obs[..., S * K :])  # (G, X, H)
        first = self.head.net[0]
        per_row = torch.baddbmm(first.bias, embedding, first.weight[:, K:])  # (G, X, H1)
        per_head = torch.bmm(gains, first.weight[:, :K]).unflatten(1, (X, S))  # (G, X, S, H1)
        hidden = (per_head + per_row[:, :, None]).flatten(1, 2)
        logits = self.head.net[1:](hidden).unflatten(1, (X, S))  # (G, X, S, C)
        return MaskedMultiCategorical(logits, mask)


class CategoricalActorGroup(nn.Module):
    """G independent actors o (G, X, D) -> S masked categorical heads of C choices.

    A :class:`~skyshare.rl.common.networks.GroupMLP` with S C outputs, orthogonal initialisation
    (hidden gain sqrt(2), last layer ``output_gain``: MAPPO's 0.01 gives near-uniform heads).
    """

    def __init__(
        self,
        n_groups: int,
        obs_dim: int,
        n_heads: int,
        n_choices: int,
        hidden_sizes: tuple[int, ...],
        activation_name: str,
        output_gain: float,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        self.n_heads, self.n_choices = n_heads, n_choices
        self.net = GroupMLP(
            n_groups, (obs_dim, *hidden_sizes, n_heads * n_choices), activation_name
        )
        init_orthogonal(self.net, generator, output_gain=output_gain)

    def forward(self, obs: torch.Tensor, mask: torch.Tensor) -> MaskedMultiCategorical:
        """obs (G, X, D), mask (G, X, S, C) bool -> heads (G, X, S, C)."""
        logits = self.net(obs).unflatten(-1, (self.n_heads, self.n_choices))
        return MaskedMultiCategorical(logits, mask)


def frame_advantages(
    rewards: torch.Tensor,
    values: torch.Tensor,
    done: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE over frames for every sub-game, and the value targets.

    Args:
        rewards, values: (T, B, ...) shaped rewards r^_m(t) and values V(s_{t,m}) of frame t
            (trailing axes: groups m, and agents n for local critics).
        done: (T, B) bool, the episode ended with frame t: its successor's value is 0
            (terminal, MAPPO's default) and the recursion stops there. The last frame of the
            rollout is terminal as well (rollouts end with episodes).
        gamma, lam: discount per frame and GAE lambda.

    Returns:
        advantages and targets ``advantages + values``, (T, B, ...).
    """
    if done.shape != rewards.shape[:2]:
        raise ShapeError(f"done must be (T, B) = {tuple(rewards.shape[:2])}, got {done.shape}")
    alive = (~done.bool()).to(values.dtype).reshape(*done.shape, *(1,) * (values.ndim - 2))
    next_values = torch.cat((values[1:], torch.zeros_like(values[:1]))) * alive
    advantages = gae(rewards, values, next_values, gamma, lam, episode_ends=done)
    return advantages, advantages + values


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    targets: torch.Tensor,
    clip: float | None,
    huber_delta: float | None,
) -> torch.Tensor:
    """MAPPO's critic loss (its ``cal_value_loss``), mean over the last axis.

    ``l(e) = huber_delta(e)`` (or e^2 / 2), ``e = target - V``; with ``clip`` the larger of
    l(target - V) and l(target - V_clip), ``V_clip = V_old + clip(V - V_old, -clip, clip)``.
    All arguments (..., X) (normalised when value normalisation is on); returns (...).
    """

    def loss(error: torch.Tensor) -> torch.Tensor:
        if huber_delta is None:
            return 0.5 * error.square()
        return F.huber_loss(error, torch.zeros_like(error), reduction="none", delta=huber_delta)

    result = loss(targets - values)
    if clip is not None:
        clipped = old_values + (values - old_values).clamp(-clip, clip)
        result = torch.maximum(result, loss(targets - clipped))
    return result.mean(-1)


@dataclass
class MappoTrainingLog:
    """What :meth:`MappoAgents.train` records: one entry per episode (means over its frames and
    the B environments) unless stated.

    Attributes:
        reward: reward (9) of the frame, sum_m r_m (10) (Mbit/s per user).
        cost: sum over user slots of the costs (11) (Mbit/s).
        throughput: system throughput (the env's unit). qos_miss: users below eta per frame.
        lambda_mean, lambda_max: the multipliers at the episode's end.
        multipliers: (N, K_max) CPU snapshots at each episode's end.
        updates: the statistics of every :meth:`MappoAgents.update`.
        frames: frames played per environment. wall_time_s: duration of the call.
    """

    reward: list[float] = field(default_factory=list)
    cost: list[float] = field(default_factory=list)
    throughput: list[float] = field(default_factory=list)
    qos_miss: list[float] = field(default_factory=list)
    lambda_mean: list[float] = field(default_factory=list)
    lambda_max: list[float] = field(default_factory=list)
    multipliers: list[torch.Tensor] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    frames: int = 0
    wall_time_s: float = 0.0


class _Rollout:
    """The decisions of the current rollout: per turn obs, state, mask, actions; per frame the
    env's result. ``stacked()`` lays them out frame-major, (T B, M, N, ...)."""

    _TURN = ("obs", "state", "mask", "actions")
    _FRAME = ("reward", "cost", "active", "done")

    def __init__(self, n_turns: int) -> None:
        self.n_turns = n_turns
        self.clear()

    def clear(self) -> None:
        self.turns: dict[str, list[torch.Tensor]] = {name: [] for name in self._TURN}
        self.frames: dict[str, list[torch.Tensor]] = {name: [] for name in self._FRAME}
        self.episodes = 0

    @property
    def n_frames(self) -> int:
        return len(self.frames["done"])

    def add_turn(self, turn: int, **tensors: torch.Tensor) -> None:
        expected = len(self.turns["obs"]) - self.n_frames * self.n_turns
        if turn != expected:
            raise ShapeError(f"recorded turn {turn}, expected turn {expected} of the frame")
        for name in self._TURN:
            self.turns[name].append(tensors[name])

    def add_frame(self, **tensors: torch.Tensor) -> None:
        if len(self.turns["obs"]) != (self.n_frames + 1) * self.n_turns:
            raise ShapeError("a frame's result was recorded before all its M turns")
        for name in self._FRAME:
            self.frames[name].append(tensors[name])
        self.episodes += int(bool(tensors["done"].all()))

    def stacked(self) -> dict[str, torch.Tensor]:
        """obs (F, M, N, D), state (F, M, D_s), mask (F, M, N, S, C), actions (F, M, N, S)
        with F = T B (f = t B + b); reward (T, B, M), cost / active (T, B, N, K), done (T, B)."""
        T, M = self.n_frames, self.n_turns
        if T == 0:
            raise RuntimeError("nothing recorded since the last update")
        out = {}
        for name in self._TURN:
            x = torch.stack(self.turns[name][: T * M])  # (T M, B, ...)
            x = x.unflatten(0, (T, M)).transpose(1, 2)  # (T, B, M, ...)
            out[name] = x.flatten(0, 1)
        out.update({name: torch.stack(values) for name, values in self.frames.items()})
        return out


class MappoAgents:
    """The N M agents of a seed-001 env (MAPPO, IPPO; Lagrangian or not).

    Args:
        spec: the env's sizes (:meth:`EnvSpec.from_env`).
        config: :class:`MappoConfig` (MAPPO-Lagrangian with the paper's values when None).
        device: where networks, rollout and updates live.

    Attributes: ``actor`` (:class:`CategoricalActorGroup`, G = N or 1 networks), ``critic``
    (:class:`~skyshare.rl.common.networks.CriticGroup`: M networks on the state, or G on the
    observation), ``obs_normalizer`` (G groups), ``state_normalizer`` (central critic only),
    ``value_normalizer``, ``actor_optimizer`` / ``critic_optimizer``
    (:class:`~skyshare.rl.common.optim.GroupAdam`), ``multipliers``
    (:class:`~skyshare.rl.common.lagrangian.LagrangeMultipliers`, (N, K_max)), ``generator``
    (sampling and shuffles, seeded with ``config.seed``; the networks are initialised from a CPU
    generator with the same seed, actor first, so MAPPO and IPPO start from the same actor),
    ``n_updates``.
    """

    def __init__(
        self,
        spec: EnvSpec,
        config: MappoConfig | None = None,
        *,
        device: str | torch.device = "cpu",
    ) -> None:
        self.spec = spec
        self.config = cfg = config if config is not None else MappoConfig()
        self.device = torch.device(device)
        N, M, S, C = spec.n_bs, spec.n_turns, spec.block_size, spec.n_choices
        self.n_groups = G = N if cfg.actor_sharing == "bs" else 1
        init = torch.Generator().manual_seed(cfg.seed)
        hidden, act = cfg.hidden_sizes, cfg.activation
        actor_class = (
            SubchannelActorGroup if cfg.actor == "per_subchannel" else CategoricalActorGroup
        )
        self.actor = actor_class(
            G, spec.obs_dim, S, C, hidden, act, cfg.actor_output_gain, init
        ).to(self.device)
        # the only difference between MAPPO and IPPO: what the critic reads
        if cfg.critic == "central":
            self.critic = CriticGroup(M, spec.state_dim, 1, hidden, act, init).to(self.device)
        else:
            self.critic = CriticGroup(G, spec.obs_dim, 1, hidden, act, init).to(self.device)
        self.obs_normalizer = self._normalizer(G, spec.obs_dim)
        self.state_normalizer = self._normalizer(1, spec.state_dim) if self.central else None
        self.value_normalizer = ObservationNormalizer(
            1, 1, transform="none", enabled=cfg.value_normalization, clip=1e6
        ).to(self.device)
        adam = {"eps": cfg.adam_eps, "max_grad_norm": cfg.max_grad_norm}
        self.actor_optimizer = GroupAdam(self.actor.parameters(), cfg.lr_actor, **adam)
        self.critic_optimizer = GroupAdam(self.critic.parameters(), cfg.lr_critic, **adam)
        self.multipliers = LagrangeMultipliers(
            (N, spec.k_max),
            cfg.lambda_lr,
            period=cfg.lambda_period,
            init=cfg.lambda_init if cfg.lagrangian else 0.0,
            upper=cfg.lambda_max,
            cost_limit=cfg.cost_limit,
            average=cfg.lambda_average,
            device=self.device,
        )
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.rollout = _Rollout(M)
        self.n_updates = 0

    @classmethod
    def for_env(cls, env: Any, config: MappoConfig | None = None) -> MappoAgents:
        """Agents sized for ``env`` (its sizes and, if it has one, its ``device``)."""
        return cls(EnvSpec.from_env(env), config, device=getattr(env, "device", "cpu"))

    @classmethod
    def ippo(
        cls, spec: EnvSpec, config: MappoConfig | None = None, *, device: str | torch.device = "cpu"
    ) -> MappoAgents:
        """IPPO: ``config`` (defaults when None) with the local critic (:func:`ippo_config`)."""
        base = config.model_dump() if config is not None else {}
        return cls(spec, ippo_config(**base), device=device)

    @property
    def central(self) -> bool:
        return self.config.critic == "central"

    def _normalizer(self, n_groups: int, dim: int) -> ObservationNormalizer:
        cfg = self.config
        return ObservationNormalizer(
            n_groups,
            dim,
            transform=cfg.observation_transform,
            enabled=cfg.normalize_observations,
            clip=cfg.observation_clip,
        ).to(self.device)

    # -----------------------------------------------------------------------------------------
    # Layouts: decisions (F, M, N, ...) <-> networks (G, X, ...)
    # -----------------------------------------------------------------------------------------

    def _actor_layout(self, x: torch.Tensor) -> torch.Tensor:
        """(F, M, N, ...) -> (G, F M N / G, ...), frame-major inside every network's rows."""
        if self.n_groups == 1:
            return x.flatten(0, 2).unsqueeze(0)
        return x.movedim(2, 0).flatten(1, 2)

    def _from_actor_layout(self, y: torch.Tensor, n_frames: int) -> torch.Tensor:
        """The inverse of :meth:`_actor_layout` (any number of turns per frame)."""
        if self.n_groups == 1:
            return y[0].unflatten(0, (n_frames, -1, self.spec.n_bs))
        return y.unflatten(1, (n_frames, -1)).movedim(0, 2)

    def _critic_layout(self, x: torch.Tensor) -> torch.Tensor:
        """Central: (F, M, ...) -> (M, F, ...); local: as the actor's."""
        return x.transpose(0, 1) if self.central else self._actor_layout(x)

    def _from_critic_layout(self, y: torch.Tensor, n_frames: int) -> torch.Tensor:
        return y.transpose(0, 1) if self.central else self._from_actor_layout(y, n_frames)

    def _critic_input(self, z_obs: torch.Tensor, states: torch.Tensor | None) -> torch.Tensor:
        """What the critic reads, in its layout: the normalised states (M, F, D_s) (MAPPO) or
        the normalised observations in the actor's layout (IPPO)."""
        if not self.central:
            return z_obs
        z = self.state_normalizer(states.flatten(0, 1).unsqueeze(0))[0]  # (F M, D_s)
        return self._critic_layout(z.unflatten(0, states.shape[:2]))

    def _denormalize(self, v: torch.Tensor) -> torch.Tensor:
        norm = self.value_normalizer
        if not norm.enabled:
            return v
        return v * torch.sqrt(norm.var[0, 0] + 1e-8) + norm.mean[0, 0]

    def _normalize_values(self, v: torch.Tensor) -> torch.Tensor:
        return self.value_normalizer(v.reshape(1, -1, 1)).reshape(v.shape)

    # -----------------------------------------------------------------------------------------
    # Acting and recording
    # -----------------------------------------------------------------------------------------

    @torch.no_grad()
    def act(
        self,
        turn: Any,
        *,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
        update_statistics: bool | None = None,
        with_values: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The decisions of the N agents of ``turn`` (a ``TnNtnTurn``) in the B environments.

        Args:
            turn: ``obs (B, N, D)``, ``state (B, D_s)``, ``action_mask (B, N, S, C)``, ``turn``.
            deterministic: the most probable allowed choice per subchannel (evaluation).
            generator: sampling generator (the agents' own when None).
            update_statistics: merge the inputs into the running normalisers; default
                ``not deterministic``.
            with_values: also return the critic's values.

        Returns:
            actions (B, N, S) long, their log-probabilities (B, N), values (B, N) or None.
        """
        obs, mask = self._checked_turn(turn)
        update = update_statistics if update_statistics is not None else not deterministic
        x = self._actor_layout(obs.unsqueeze(1))  # (G, B N / G, D)
        z = self.obs_normalizer.update_and_normalize(x) if update else self.obs_normalizer(x)
        if update and self.central:
            self.state_normalizer.update(turn.state.to(self.device).unsqueeze(0))
        dist = self.actor(z, self._actor_layout(mask.unsqueeze(1)))
        if deterministic:
            actions = dist.mode()
        else:
            actions = dist.sample(generator if generator is not None else self.generator)
        B = obs.shape[0]
        log_prob = self._from_actor_layout(dist.log_prob(actions), B)[:, 0]
        actions = self._from_actor_layout(actions, B)[:, 0]
        values = self._turn_values(z, turn) if with_values else None
        return actions, log_prob, values

    def _turn_values(self, z: torch.Tensor, turn: Any) -> torch.Tensor:
        """(B, N) values of the turn's agents: V_m(s) shared by G_m, or V_n(o_n)."""
        B, N, m = turn.obs.shape[0], self.spec.n_bs, int(turn.turn)
        if self.central:
            states = turn.state.to(self.device).unsqueeze(1).expand(B, self.spec.n_turns, -1)
            out = self.critic(self._critic_input(z, states))[m, :, 0]  # (B,)
            return self._denormalize(out)[:, None].expand(B, N)
        out = self.critic(z)[..., 0]
        return self._denormalize(self._from_actor_layout(out, B)[:, 0])

    def _checked_turn(self, turn: Any) -> tuple[torch.Tensor, torch.Tensor]:
        spec = self.spec
        obs, mask = turn.obs.to(self.device), turn.action_mask.to(self.device)
        B = obs.shape[0]
        expected = {
            "obs": (obs, (B, spec.n_bs, spec.obs_dim)),
            "state": (turn.state, (B, spec.state_dim)),
            "action_mask": (mask, (B, spec.n_bs, spec.block_size, spec.n_choices)),
        }
        for name, (value, shape) in expected.items():
            if tuple(value.shape) != shape:
                raise ShapeError(f"turn.{name} must be {shape}, got {tuple(value.shape)}")
        if not 0 <= int(turn.turn) < spec.n_turns:
            raise ShapeError(f"turn.turn must be in [0, {spec.n_turns}), got {turn.turn}")
        return obs, mask.bool()

    def record(self, turn: Any, actions: torch.Tensor, result: Any = None) -> None:
        """Store turn m's decisions, and the frame's outcome with its last turn.

        Args:
            turn: what :meth:`act` decided on (turn.turn must follow the previous record).
            actions: (B, N, S) long, as played.
            result: the env's ``TnNtnStepResult`` after the frame's last turn, else None:
                ``reward (B, M)``, ``cost (B, N, K_max)``, ``active``, ``done (B,)``.

        Copies are stored (an env may reuse its buffers). The log-probabilities are not: the
        update recomputes them with the normalisers frozen.
        """

        def copy_of(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
            return x.detach().to(self.device, dtype, copy=True)

        self.rollout.add_turn(
            int(turn.turn),
            obs=copy_of(turn.obs, torch.float32),
            state=copy_of(turn.state, torch.float32),
            mask=copy_of(turn.action_mask, torch.bool),
            actions=copy_of(actions, torch.long),
        )
        if result is not None:
            self.rollout.add_frame(
                reward=copy_of(result.reward, torch.float32),
                cost=copy_of(result.cost, torch.float32),
                active=copy_of(result.active, torch.bool),
                done=copy_of(result.done, torch.bool),
            )

    @property
    def ready(self) -> bool:
        """Whether ``episodes_per_update`` whole episodes have been recorded."""
        return self.rollout.episodes >= self.config.episodes_per_update

    # -----------------------------------------------------------------------------------------
    # The update
    # -----------------------------------------------------------------------------------------

    @torch.enable_grad()  # a learner step needs autograd even inside a no_grad caller
    def update(self) -> dict[str, Any]:
        """One MAPPO update on the recorded rollout (module docstring, steps 1-4); clears it.

        Returns:
            ``policy_loss``, ``value_loss``, ``entropy`` (per head), ``approx_kl`` (Schulman's
            k3 estimate of KL(old || new)), ``clip_fraction`` (means over the gradient steps);
            ``reward_mean`` (sum_m r_m per frame), ``shaped_reward_mean`` (sum_m r^_m per frame),
            ``cost_mean`` (sum over slots per frame), ``cost_per_slot`` (N, K_max) CPU,
            ``lambda_mean``, ``lambda_max``, ``multipliers`` (N, K_max) CPU after the step,
            ``lambda_stepped``, ``frames`` (T B).
        """
        cfg = self.config
        data = self.rollout.stacked()
        self.rollout.clear()
        T, B = data["done"].shape
        batch = self._prepare(data)
        sums = self._epochs(batch, T * B)
        stepped = False
        if cfg.lagrangian:  # 4. the multipliers' step (17)-(18), every lambda_period updates
            self.multipliers.observe(data["cost"], data["active"])
            stepped = self.multipliers.step()
        self.n_updates += 1
        lam = self.multipliers.value
        steps = max(sums.pop("steps"), 1.0)
        return {
            **{name: value / steps for name, value in sums.items()},
            "reward_mean": float(data["reward"].sum(-1).mean()),
            "shaped_reward_mean": float(batch["shaped"].sum(-1).mean()),
            "cost_mean": float(data["cost"].sum((-2, -1)).mean()),
            "cost_per_slot": data["cost"].mean((0, 1)).cpu(),
            "lambda_mean": float(lam.mean()),
            "lambda_max": float(lam.max()),
            "multipliers": lam.clone().cpu(),
            "lambda_stepped": stepped,
            "frames": T * B,
        }

    @torch.no_grad()
    def _prepare(self, data: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Steps 1-2 with frozen networks and normalisers: normalised inputs, the collecting
        policy's log-probabilities, shaped rewards, GAE, normalised value targets."""
        cfg = self.config
        T, B = data["done"].shape
        n_frames = T * B
        z = self.obs_normalizer(self._actor_layout(data["obs"]))  # (G, X, D)
        masks = self._actor_layout(data["mask"])
        actions = self._actor_layout(data["actions"])
        old_dist = self.actor(z, masks)
        old_log_prob = (  # (G, X), or (G, X, S) per head
            old_dist.head_log_prob(actions)
            if cfg.ratio == "per_head"
            else old_dist.log_prob(actions)
        )
        critic_input = self._critic_input(z, data["state"])
        old_values = self._denormalize(self.critic(critic_input)[..., 0])  # (Gc, Xc)
        values = self._from_critic_layout(old_values, n_frames).unflatten(0, (T, B))
        # 1. shaped rewards (16), one per group and frame
        shaped = shaped_reward(  # (T, B, M); without the Lagrangian the multipliers stay 0
            data["reward"], data["cost"], self.multipliers.value, cfg.gamma, cfg.penalty_sharing
        )
        rewards = shaped if self.central else shaped.unsqueeze(-1).expand_as(values)
        # 2. GAE per sub-game over frames, targets, advantages per decision
        advantages, targets = frame_advantages(
            rewards, values, data["done"], cfg.gamma, cfg.gae_lambda
        )
        targets = self._critic_layout(targets.flatten(0, 1))
        if cfg.value_normalization:  # then old values and targets in the updated statistics
            self.value_normalizer.update(targets.reshape(1, -1, 1))
        advantages = advantages.flatten(0, 1)  # (F, M[, N])
        if self.central:
            advantages = advantages.unsqueeze(-1).expand(*advantages.shape, self.spec.n_bs)
        advantages = self._actor_layout(advantages)
        if cfg.standardize_advantages:
            advantages = standardized(advantages.reshape(1, -1)).reshape(advantages.shape)
        return {
            "z": z,
            "masks": masks,
            "actions": actions,
            "old_log_prob": old_log_prob,
            "advantages": advantages,
            "critic_input": critic_input,
            "old_values": self._normalize_values(old_values),
            "targets": self._normalize_values(targets),
            "shaped": shaped,
        }

    def _epochs(self, batch: dict[str, torch.Tensor], n_frames: int) -> dict[str, float]:
        """Step 3: ``epochs`` passes over shuffled minibatches of frames."""
        cfg = self.config
        per_frame_actor = batch["z"].shape[1] // n_frames  # decisions of a frame per network
        per_frame_critic = batch["critic_input"].shape[1] // n_frames
        sums: dict[str, float] = {"steps": 0.0}
        for _ in range(cfg.epochs):
            perm = torch.randperm(n_frames, generator=self.generator, device=self.device)
            for frames in perm.split(cfg.minibatch_size):
                rows = _frame_rows(frames, per_frame_actor)
                critic_rows = _frame_rows(frames, per_frame_critic)
                stats = self._minibatch_step(batch, rows, critic_rows)
                for name, value in stats.items():
                    sums[name] = sums.get(name, 0.0) + value
                sums["steps"] += 1.0
        return sums

    def _minibatch_step(
        self, batch: dict[str, torch.Tensor], rows: torch.Tensor, critic_rows: torch.Tensor
    ) -> dict[str, float]:
        """One gradient step of actor and critic on the decisions ``rows`` (actor layout) and
        the values ``critic_rows`` (critic layout)."""
        cfg = self.config
        dist = self.actor(batch["z"][:, rows], batch["masks"][:, rows])
        old_log_prob = batch["old_log_prob"][:, rows]
        advantages = batch["advantages"][:, rows]
        if cfg.ratio == "per_head":  # every head its own ratio, the agent's advantage each
            log_prob = dist.head_log_prob(batch["actions"][:, rows]).flatten(1)  # (G, x S)
            old_log_prob = old_log_prob.flatten(1)
            advantages = advantages.repeat_interleave(self.spec.block_size, dim=1)
        else:
            log_prob = dist.log_prob(batch["actions"][:, rows])  # (G, x)
        policy = clipped_surrogate_loss(log_prob, old_log_prob, advantages, cfg.clip_ratio)
        entropy = dist.entropy().mean(1) / self.spec.block_size  # (G,) per head
        values = self.critic(batch["critic_input"][:, critic_rows])[..., 0]
        critic = value_loss(
            values,
            batch["old_values"][:, critic_rows],
            batch["targets"][:, critic_rows],
            cfg.value_clip,
            cfg.huber_delta,
        )  # (Gc,)
        total = (policy - cfg.entropy_coef * entropy).sum() + cfg.value_loss_coef * critic.sum()
        self.actor_optimizer.zero_grad()
        self.critic_optimizer.zero_grad()
        total.backward()
        self.actor_optimizer.step()
        self.critic_optimizer.step()
        with torch.no_grad():
            log_ratio = log_prob - old_log_prob
            ratio = log_ratio.exp()
            return {
                "policy_loss": float(policy.mean()),
                "value_loss": float(critic.mean()),
                "entropy": float(entropy.mean()),
                "approx_kl": float(((ratio - 1.0) - log_ratio).mean()),
                "clip_fraction": float(((ratio - 1.0).abs() > cfg.clip_ratio).float().mean()),
            }

    # -----------------------------------------------------------------------------------------
    # Training loop
    # -----------------------------------------------------------------------------------------

    def train(
        self,
        env: Any,
        frames: int,
        *,
        seed: int | None = None,
        progress: bool = False,
        callback: Callable[[int, MappoTrainingLog], None] | None = None,
    ) -> MappoTrainingLog:
        """Play at least ``frames`` frames in the env's B environments, whole episodes, and
        update after every ``episodes_per_update`` episodes.

        A frame: for every turn m, ``env.observe()``, :meth:`act` (sampled), ``env.act``,
        :meth:`record`. The env is reset with ``seed`` first and with ``None`` (its own stream
        continues) after every episode (``done.all()``, the env's episodes end together).
        ``callback(episode, log)`` is called after every episode.
        """
        from tqdm.auto import tqdm

        if isinstance(frames, bool) or int(frames) != frames or frames < 1:
            raise ConfigError(f"frames must be an integer >= 1, got {frames}")
        log, start = MappoTrainingLog(), time.perf_counter()
        env.reset(seed)
        self.rollout.clear()
        episode: dict[str, Any] = {}
        with tqdm(total=int(frames), disable=not progress, desc="mappo") as bar:
            while True:
                result = self._play_frame(env)
                log.frames += 1
                bar.update(1)
                _accumulate(episode, result)
                if not bool(result.done.all()):
                    continue
                self._end_episode(log, episode)
                if self.ready:
                    log.updates.append(self.update())
                if callback is not None:
                    callback(len(log.reward) - 1, log)
                if log.frames >= frames:
                    break
                env.reset(None)
        log.wall_time_s = time.perf_counter() - start
        return log

    def _play_frame(self, env: Any) -> Any:
        """The M turns of one frame (sampled decisions), recorded; returns the env's result."""
        result = None
        for _ in range(self.spec.n_turns):
            turn = env.observe()
            actions, _, _ = self.act(turn)
            result = env.act(actions)
            self.record(turn, actions, result)
        if result is None:
            raise ShapeError("the env returned no step result after the frame's last turn")
        return result

    def _end_episode(self, log: MappoTrainingLog, episode: dict[str, Any]) -> None:
        n = episode.pop("frames")
        for name in ("reward", "cost", "throughput", "qos_miss"):
            getattr(log, name).append(float(episode.pop(name)) / n)
        lam = self.multipliers.value
        log.lambda_mean.append(float(lam.mean()))
        log.lambda_max.append(float(lam.max()))
        log.multipliers.append(lam.clone().cpu())

    # -----------------------------------------------------------------------------------------
    # Checkpoints
    # -----------------------------------------------------------------------------------------

    _checkpointed = (
        "actor",
        "critic",
        "obs_normalizer",
        "value_normalizer",
        "actor_optimizer",
        "critic_optimizer",
        "multipliers",
    )

    def state_dict(self) -> dict[str, Any]:
        """Networks, normalisers, optimisers, multipliers, ``generator`` (ByteTensor),
        ``n_updates``, ``dims`` (the :class:`EnvSpec` as a list) and ``config`` (a plain dict):
        tensors, numbers, strings and lists/dicts only (``torch.load(weights_only=True)``).
        A rollout in progress is not saved (checkpoint between updates). ``state_gain_order``
        records the order of the state's gain block the critic was trained on."""
        state = {name: getattr(self, name).state_dict() for name in self._checkpointed}
        if self.state_normalizer is not None:
            state["state_normalizer"] = self.state_normalizer.state_dict()
        state.update(
            config=plain(self.config.model_dump()),
            dims=self.spec.as_list(),
            generator=self.generator.get_state(),
            n_updates=self.n_updates,
            state_gain_order=STATE_GAIN_ORDER,
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` of agents with the same sizes and critic kind (a
        checkpoint of the earlier ``[s, p, l]`` state order is converted: see
        :meth:`_convert_state_gain_order`)."""
        order = state.get("state_gain_order", _LEGACY_STATE_GAIN_ORDER)
        if order not in (STATE_GAIN_ORDER, _LEGACY_STATE_GAIN_ORDER):
            raise ConfigError(
                f"checkpoint has state_gain_order={order!r}; these agents read "
                f"{STATE_GAIN_ORDER!r} (or convert {_LEGACY_STATE_GAIN_ORDER!r})"
            )
        if list(state["dims"]) != self.spec.as_list():
            raise ShapeError(
                f"checkpoint has env sizes {list(state['dims'])}, these agents "
                f"{self.spec.as_list()} (N, M, S, C, D, D_s)"
            )
        if state["config"]["critic"] != self.config.critic:
            raise ConfigError(
                f"checkpoint has a {state['config']['critic']} critic, these agents "
                f"{self.config.critic}"
            )
        for name in self._checkpointed:  # optimiser states copied: torch's load aliases them
            value = state[name]
            getattr(self, name).load_state_dict(
                copy.deepcopy(value) if name.endswith("optimizer") else value
            )
        if self.state_normalizer is not None:
            self.state_normalizer.load_state_dict(state["state_normalizer"])
        self.generator.set_state(state["generator"].cpu())
        self.n_updates = int(state["n_updates"])
        if order == _LEGACY_STATE_GAIN_ORDER and self.central:
            self._convert_state_gain_order()

    @torch.no_grad()
    def _convert_state_gain_order(self) -> None:
        """Make a critic trained on ``[s, p, l]`` states read ``[p, l, s]`` ones, exactly.

        The state's first P N S inputs are the block's gains; input ``(p, l, s)`` of the new
        order is input ``(s, p, l)`` of the old one. Permuting the critic's first-layer input
        rows (its weight is (A, in, out)), their Adam moments and the state normaliser's
        moments the same way gives the same values and the same training from here on.
        """
        spec = self.spec
        S, N, P = spec.block_size, spec.n_bs, spec.n_bs * spec.k_max
        gains = torch.arange(S * P * N, device=self.device).view(S, P, N).permute(1, 2, 0)
        rest = torch.arange(S * P * N, spec.state_dim, device=self.device)
        index = torch.cat([gains.flatten(), rest])  # new input i reads old input index[i]
        first = next(m for m in self.critic.modules() if isinstance(m, GroupLinear))
        tensors = [first.weight]
        tensors += [v for v in self.critic_optimizer.state.get(first.weight, {}).values()
                    if isinstance(v, torch.Tensor) and v.shape == first.weight.shape]  # fmt: skip
        tensors += [self.state_normalizer.mean, self.state_normalizer.var]
        for tensor in tensors:
            tensor.copy_(tensor.index_select(1, index))


def _frame_rows(frames: torch.Tensor, per_frame: int) -> torch.Tensor:
    """Row indices of the frames ``frames`` in a frame-major layout of ``per_frame`` rows each."""
    offsets = torch.arange(per_frame, device=frames.device)
    return (frames[:, None] * per_frame + offsets).reshape(-1)


def _accumulate(episode: dict[str, Any], result: Any) -> None:
    """Add one frame's means over the B environments to the episode's sums (kept where the
    env's tensors live: one host transfer per episode)."""
    frame = {
        "reward": result.reward.float().sum(-1).mean(),
        "cost": result.cost.float().sum((-2, -1)).mean(),
        "throughput": result.throughput.float().mean(),
        "qos_miss": result.qos_miss.float().mean(),
    }
    for name, value in frame.items():
        episode[name] = episode.get(name, 0.0) + value.detach()
    episode["frames"] = episode.get("frames", 0) + 1
