"""TD3-MIX and TD3-MIX+FLWF (seed 004 §IV-B, §IV-C, Algorithm 1, §V).

Multi-agent TD3 (Fujimoto, van Hoof, Meger, ICML 2018) on the batched
:class:`~skyshare.envs.multiband.MultibandEnv`: an actor ``pi_phi`` shared by all BSs (§IV-C),
twin critics ``Q_theta_i(S_b, x_b)`` per BS (Fig. 4) merged by twin QMIX mixers (Rashid et al.,
ICML 2018; :class:`~skyshare.rl.common.mixing.QMixer`) into
``Q_tot,Theta_i(Q_theta_i(S_1, x_1), ..., Q_theta_i(S_C, x_C); S)`` given the global state ``S``
of eq. (20), and target copies of all five, soft-updated with rate tau every ``policy_delay``
critic updates (architecture and choices: :class:`TD3MixAgents`, docs/rl/td3_mix.md).

One environment step (Algorithm 1 lines 7-10) for B parallel environments:

1. ``x = clip(pi_phi(S_b) + eps, 0, 1)``, ``eps ~ N(0, sigma^2)``, renormalised per user for the
   simplex mapping (uniform random ``x`` for the first ``learning_starts`` transitions, as TD3
   does);
2. **TD3-MIX+FLWF**: the powers ``p = env.action_to_power(x)`` start FLWF (eqs. (15)-(16)),
   which runs k iterations (``flwf(..., max_iter=k)``); the block is played with the FLWF
   result. **TD3-MIX**: the block is played with ``p`` directly;
3. the transition ``(S, x, r, S', done)`` is stored (the *actor's* action ``x``, line 9, so the
   critic learns the value of starting FLWF from ``x``);
4. ``updates_per_step`` gradient updates (lines 11-17).

Targets (line 12 and eq. (22)), for a sampled mini-batch::

    x~' = clip(pi_phi'(S'_b) + clip(N(0, sigma_t^2), -c, c), 0, 1)
    y   = r + gamma (1 - done) min_i Q_tot,Theta_i'(Q_theta_i'(S'_b, x~'_b); S')

Eq. (22), ``G0(S_t, P_t) = R_total(S_t, P_{t+k}) + gamma R_total(S_{t+k}, P_{t+2k})``: ``r`` is
the capacity (19) reached after the k FLWF iterations from the stored action, the second term
(the next block under the target policy + FLWF) is what the twin target mixers estimate;
``done`` is 1 after the last of the T blocks that share the budget (eq. (5)). Plain TD3-MIX
(§V, ``scheme="td3_mix"``): reward ``R_total / (C U)`` and ``y = r`` (``bootstrap=False``).
Both readings are argued in docs/rl/td3_mix.md.

The critics and mixers are trained on ``sum_i mean (y - Q_tot,Theta_i(Q_theta_i(S, x); S))^2``
with the *stored* action ``x`` (Algorithm 1 line 13 writes ``x~``, the target-policy action, a
typo with respect to TD3, which uses the stored one); the actor ascends
``Q_tot,Theta_1(Q_theta_1(S_b, pi_phi(S_b)); S)`` (line 15 through the mixer, as the global
value is what the BSs cooperate on).

Usage (sizes from a :class:`~skyshare.envs.multiband.MultibandEnv`)::

    agents = TD3MixAgents.for_env(env, TD3MixConfig(scheme="td3_mix_flwf", seed=0))
    log = agents.train(env, n_steps=1000)          # Algorithm 1
    # online use (§IV-C): skyshare.schemes.multiband.TD3MixScheme around the trained agents
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, PositiveInt, model_validator

from skyshare.checks import read_checkpoint
from skyshare.errors import ConfigError, ShapeError
from skyshare.rl.common.buffers import ReplayBuffer
from skyshare.rl.common.config import LearnerConfig, plain
from skyshare.rl.common.mixing import QMixer
from skyshare.rl.common.networks import GroupMLP
from skyshare.rl.common.td3 import smoothed_target_actions, soft_update_, twin_td_target

__all__ = [
    "TD3MixAgents",
    "TD3MixConfig",
    "TD3MixTrainLog",
    "smoothed_target_actions",
    "soft_update_",
    "twin_td_target",
]


class TD3MixConfig(LearnerConfig):
    """Hyper-parameters of TD3-MIX / TD3-MIX+FLWF.

    Paper values (seed 004 §V): 2 hidden layers of 128 in every MLP, Adam, learning rate 1e-3,
    discount 0.99, mini-batch 16. TD3's own values (Fujimoto et al. 2018, Table 3) for what the
    seed leaves out: tau = 0.005, policy delay d = 2, exploration sigma 0.1, target noise 0.2
    clipped to 0.5, all *relative to the half-width of the action range*; our actions live in
    [0, 1] (half-width 0.5), so the defaults are half of TD3's. QMIX's mixer (Rashid et al.
    2018): embedding 32, hypernetworks with one hidden layer of 64 (pymarl). ``reward`` and
    ``bootstrap`` left at None take the scheme's defaults when the config is built.
    """

    scheme: Literal["td3_mix_flwf", "td3_mix"] = Field(
        "td3_mix_flwf", description="td3_mix_flwf (Algorithm 1) or td3_mix (§V, no FLWF)"
    )
    hidden_sizes: tuple[PositiveInt, ...] = Field(
        (128, 128), min_length=1, description="hidden widths of the actor and each critic (§V)"
    )
    actor_lr: float = Field(1e-3, gt=0.0, description="actor's Adam learning rate (§V)")
    critic_lr: float = Field(1e-3, gt=0.0, description="critics' and mixers' learning rate (§V)")
    gamma: float = Field(0.99, ge=0.0, le=1.0, description="discount of eqs. (21)/(22) (§V)")
    batch_size: int = Field(16, ge=1, description="N, replay mini-batch (§V)")
    tau: float = Field(0.005, gt=0.0, le=1.0, description="soft target update rate (TD3)")
    policy_delay: int = Field(2, ge=1, description="d, critic updates per actor update (TD3)")
    exploration_noise: float = Field(
        0.05, ge=0.0, description="sigma of line 7 on the [0, 1] output (TD3 0.1 -> 0.05)"
    )
    target_noise: float = Field(0.1, ge=0.0, description="sigma of line 11 (TD3 0.2 -> 0.1)")
    target_noise_clip: float = Field(0.25, ge=0.0, description="c of line 11 (TD3 0.5 -> 0.25)")
    buffer_size: int = Field(
        4096,
        ge=1,
        description="replay capacity in transitions (one environment of the batch for one "
        "block: 2 C D + C U F + 2 floats)",
    )
    learning_starts: int = Field(
        128, ge=0, description="transitions played with uniform random actions first"
    )
    updates_per_step: int = Field(1, ge=1, description="updates per step (B transitions)")
    share_critics: bool = Field(False, description="one critic pair for all BSs")
    mixing_embed_dim: int = Field(32, ge=1, description="QMixer embedding E (QMIX: 32)")
    hypernet_hidden: tuple[PositiveInt, ...] = Field(
        (64,), description="QMixer hypernetworks' hidden widths (pymarl: (64,))"
    )
    mixing_weight_activation: Literal["abs", "softplus"] = Field(
        "abs", description="non-negative mixing weights: abs (QMIX) or softplus"
    )
    mixer_state: Literal["observations", "interference"] = Field(
        "observations",
        description="what the hypernetworks read: the global state S_t of eq. (20) (C D "
        "features) or only every BS's log10 c features (C U F; choice)",
    )
    flwf_iterations: int = Field(
        20, ge=1, description="k, FLWF iterations per training step (choice; Fig. 9)"
    )
    reward: Literal["total", "mean_user"] | None = Field(
        None,
        description="R_total (eq. (19)) or R_total / (C U); None: the scheme's (total for "
        "td3_mix_flwf, mean_user for td3_mix)",
    )
    bootstrap: bool | None = Field(
        None,
        description="y = r + gamma (1 - done) min Q' (True) or y = r; None: the scheme's "
        "(True for td3_mix_flwf, False for td3_mix)",
    )
    reward_scale: float = Field(1.0, gt=0.0, description="multiplies the stored reward")

    @model_validator(mode="before")
    @classmethod
    def _scheme_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            flwf = data.get("scheme", "td3_mix_flwf") == "td3_mix_flwf"
            if data.get("reward") is None:
                data["reward"] = "total" if flwf else "mean_user"
            if data.get("bootstrap") is None:
                data["bootstrap"] = flwf
        return data

    @property
    def uses_flwf(self) -> bool:
        return self.scheme == "td3_mix_flwf"


@dataclass
class TD3MixTrainLog:
    """What :meth:`TD3MixAgents.train` records (one entry per environment step unless stated).

    Attributes:
        capacity_per_cell: mean cell capacity (bit/s/Hz, sum over users and channels) of the
            blocks played, over the batch and cells, with the training (noisy) actions.
        reward: mean stored reward r (after the scheme's normalisation and reward_scale).
        critic_loss, actor_loss: one entry per critic update / per actor update.
        flwf_iterations: mean FLWF iterations actually run per step (td3_mix_flwf only).
        n_transitions, n_critic_updates, n_actor_updates, wall_time_s: totals of this call.
    """

    capacity_per_cell: list[float] = field(default_factory=list)
    reward: list[float] = field(default_factory=list)
    critic_loss: list[float] = field(default_factory=list)
    actor_loss: list[float] = field(default_factory=list)
    flwf_iterations: list[float] = field(default_factory=list)
    n_transitions: int = 0
    n_critic_updates: int = 0
    n_actor_updates: int = 0
    wall_time_s: float = 0.0


# --------------------------------------------------------------------------------------------
# The agents
# --------------------------------------------------------------------------------------------


class TD3MixAgents:
    """TD3-MIX / TD3-MIX+FLWF agents: the C BSs of a multiband network (seed 004).

    Args:
        n_agents: C, the BSs (cells).
        obs_dim: D, the length of a BS observation S_b (17).
        users_per_cell: U. n_freq: F (an action is the U F policy outputs of one BS).
        config: :class:`TD3MixConfig` (paper defaults, scheme td3_mix_flwf, when None).
        device, dtype: where and in which precision the networks and the replay live.
        action_mapping: the env's mapping of policy outputs to powers: "simplex" (the actor
            ends in a softmax over each user's F channels; the mapping uses only proportions,
            so a sigmoid would have a free scale that drifts to saturation) or "box" (sigmoid).
        interference_features: the slice of the U F ``log10 c`` features within S_b (needed
            for ``mixer_state="interference"``).

    :meth:`for_env` reads all of these from a :class:`~skyshare.envs.multiband.MultibandEnv`.
    The agents own ``generator`` (on ``device``, seeded with ``config.seed``): network
    initialisation, exploration and target noise, replay sampling (the channels come from the
    environment's own generator).

    Networks (attributes): ``actor`` (GroupMLP, 1 network, D -> U F), ``critics`` (GroupMLP of
    2C networks, ``[i C + b]`` is ``Q_theta_{i+1}`` of BS b; 2 with ``share_critics``),
    ``mixers`` (QMixer with 2 mixers), and ``actor_target``, ``critics_target``,
    ``mixers_target``. ``memory``: the replay buffer (one joint queue; fields ``obs`` (C, D),
    ``actions`` (C, U F), ``reward`` (), ``next_obs`` (C, D), ``done`` ()).
    """

    def __init__(
        self,
        n_agents: int,
        obs_dim: int,
        users_per_cell: int,
        n_freq: int,
        config: TD3MixConfig | None = None,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        action_mapping: Literal["simplex", "box"] = "simplex",
        interference_features: slice | None = None,
    ) -> None:
        self.config = cfg = config if config is not None else TD3MixConfig()
        for name, value in (("n_agents", n_agents), ("obs_dim", obs_dim),
                            ("users_per_cell", users_per_cell), ("n_freq", n_freq)):  # fmt: skip
            if int(value) < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if action_mapping not in ("simplex", "box"):
            raise ConfigError(f"action_mapping must be 'simplex' or 'box', got {action_mapping!r}")
        if cfg.mixer_state == "interference" and interference_features is None:
            raise ConfigError("mixer_state='interference' needs interference_features")
        self.n_agents, self.obs_dim = int(n_agents), int(obs_dim)
        self.users_per_cell, self.n_freq = int(users_per_cell), int(n_freq)
        self.action_dim = self.users_per_cell * self.n_freq
        self.n_users = self.n_agents * self.users_per_cell
        self.simplex = action_mapping == "simplex"
        self.interference_features = interference_features
        self.device, self.dtype = torch.device(device), dtype
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self._build_networks()
        C, D, A = self.n_agents, self.obs_dim, self.action_dim
        fields = {"obs": (C, D), "actions": (C, A), "reward": (), "next_obs": (C, D), "done": ()}
        self.memory = ReplayBuffer(
            cfg.buffer_size,
            {name: (shape, dtype) for name, shape in fields.items()},
            device=self.device,
        )
        self.n_critic_updates = 0
        self.n_actor_updates = 0
        self.n_transitions = 0

    @classmethod
    def for_env(cls, env: Any, config: TD3MixConfig | None = None) -> TD3MixAgents:
        """Agents sized for ``env`` (a MultibandEnv): its C, D, U, F, device, dtype, action
        mapping and interference features."""
        return cls(
            env.n_agents,
            env.obs_dim,
            env.users_per_cell,
            env.n_freq,
            config,
            device=env.device,
            dtype=env.dtype,
            action_mapping=env.config.action_mapping,
            interference_features=env.interference_features,
        )

    def _build_networks(self) -> None:
        """Actor, twin critics, twin mixers, their targets and the two Adam optimisers."""
        cfg = self.config
        C, D, A = self.n_agents, self.obs_dim, self.action_dim
        hidden = cfg.hidden_sizes
        # nn.init draws from the global RNG: seed a forked copy from our generator instead.
        generator = self.generator
        init_seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=self.device))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            self.actor = GroupMLP(
                1, (D, *hidden, A), output_activation="identity" if self.simplex else "sigmoid"
            )
            self.n_critic_nets = 2 if cfg.share_critics else 2 * C
            self.critics = GroupMLP(self.n_critic_nets, (D + A, *hidden, 1))
            state_dim = C * D if cfg.mixer_state == "observations" else C * A  # c: U F = A
            self.mixers = QMixer(
                C,
                state_dim,
                n_mixers=2,
                embed_dim=cfg.mixing_embed_dim,
                hypernet_hidden=cfg.hypernet_hidden,
                weight_activation=cfg.mixing_weight_activation,
            )
        for net in (self.actor, self.critics, self.mixers):
            net.to(device=self.device, dtype=self.dtype)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critics_target = copy.deepcopy(self.critics).requires_grad_(False)
        self.mixers_target = copy.deepcopy(self.mixers).requires_grad_(False)
        # foreach: one multi-tensor kernel per step instead of one per parameter (CPU default
        # is per parameter); same arithmetic.
        self.actor_optimizer = torch.optim.Adam(
            self.actor.parameters(), lr=cfg.actor_lr, foreach=True
        )
        self.critic_optimizer = torch.optim.Adam(
            [*self.critics.parameters(), *self.mixers.parameters()], lr=cfg.critic_lr, foreach=True
        )

    # ---------------------------------------------------------------------------------------
    # Networks
    # ---------------------------------------------------------------------------------------

    def policy(self, obs: torch.Tensor, *, target: bool = False) -> torch.Tensor:
        """The shared actor on every BS: ``obs (N, C, D)`` -> policy outputs ``(N, C, U F)``
        in [0, 1] (``target=True``: pi_phi')."""
        N, C = obs.shape[0], self.n_agents
        actor = self.actor_target if target else self.actor
        out = actor(obs.reshape(1, N * C, self.obs_dim))
        if self.simplex:  # per-user softmax over the channels
            out = out.reshape(N, C, self.users_per_cell, self.n_freq).softmax(dim=-1)
        return out.reshape(N, C, self.action_dim)

    def project(self, actions: torch.Tensor) -> torch.Tensor:
        """Back into the action set after adding noise: clip to [0, 1] and, for the simplex
        mapping, renormalise every user's F entries to sum 1 (uniform if all are 0).
        (N, C, U F) -> (N, C, U F)."""
        actions = actions.clamp(0.0, 1.0)
        if not self.simplex:
            return actions
        shape = actions.shape
        x = actions.reshape(*shape[:-1], self.users_per_cell, self.n_freq)
        total = x.sum(-1, keepdim=True)
        x = torch.where(total > 0, x / total.clamp_min(1e-30), 1.0 / self.n_freq)
        return x.reshape(shape)

    def agent_values(
        self, obs: torch.Tensor, actions: torch.Tensor, *, target: bool = False
    ) -> torch.Tensor:
        """Twin per-BS critics ``Q_theta_i(S_b, x_b)``: (N, C, D), (N, C, A) -> (2, N, C)."""
        N, C = obs.shape[0], self.n_agents
        x = torch.cat([obs, actions], dim=-1)  # (N, C, D + A)
        critics = self.critics_target if target else self.critics
        if self.config.share_critics:
            q = critics(x.reshape(1, N * C, -1).expand(2, -1, -1))  # (2, N C, 1)
            return q.reshape(2, N, C)
        per_agent = x.transpose(0, 1).repeat(2, 1, 1)  # (2 C, N, D + A), row i C + b
        q = critics(per_agent)  # (2 C, N, 1)
        return q.reshape(2, C, N).transpose(1, 2)

    def global_state(self, obs: torch.Tensor) -> torch.Tensor:
        """What the mixers read (``mixer_state``): (N, C, D) -> (N, C D) for
        "observations" (S_t of eq. (20)), (N, C U F) for "interference"."""
        if self.config.mixer_state == "interference":
            obs = obs[..., self.interference_features]
        return obs.reshape(obs.shape[0], -1)

    def q_total(
        self, obs: torch.Tensor, actions: torch.Tensor, *, target: bool = False
    ) -> torch.Tensor:
        """Twin mixed values ``Q_tot,Theta_i(Q_theta_i(S_b, x_b); S)``: -> (2, N)."""
        state = self.global_state(obs)
        mixers = self.mixers_target if target else self.mixers
        return mixers(self.agent_values(obs, actions, target=target), state)

    # ---------------------------------------------------------------------------------------
    # Learning (Algorithm 1 lines 11-17)
    # ---------------------------------------------------------------------------------------

    @torch.no_grad()
    def td_target(
        self,
        reward: torch.Tensor,
        next_obs: torch.Tensor,
        done: torch.Tensor,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``y`` of Algorithm 1 line 12 / eq. (22) for a mini-batch: (N,).

        ``x~' = project(clip(pi_phi'(S') + clip(noise, -c, c), 0, 1))`` from the *target*
        actor, then ``y = r + gamma (1 - done) min_i Q_tot,Theta_i'(Q_theta_i'(S'_b, x~'_b);
        S')`` with the *target* critics and mixers (``y = r`` without bootstrap).

        Args:
            reward: (N,). next_obs: (N, C, D). done: (N,).
            noise: (N, C, A) unclipped target-policy noise; drawn from N(0, target_noise^2)
                with the agents' generator when omitted.
        """
        cfg = self.config
        if not cfg.bootstrap:
            return reward
        next_actions = self.policy(next_obs, target=True)
        if noise is None:
            noise = cfg.target_noise * torch.randn(
                next_actions.shape, generator=self.generator, device=self.device, dtype=self.dtype
            )
        next_actions = self.project(
            smoothed_target_actions(next_actions, noise, cfg.target_noise_clip)
        )
        next_q = self.q_total(next_obs, next_actions, target=True)
        return twin_td_target(reward, next_q, done, cfg.gamma)

    @torch.enable_grad()  # a learner step needs autograd even inside a no_grad caller
    def update(self, batch: dict[str, torch.Tensor] | None = None) -> dict[str, float]:
        """One critic update (lines 11-13) and, every ``policy_delay``-th call, one actor
        update and soft target update (lines 14-16).

        Args:
            batch: ``obs`` (N, C, D), ``actions`` (N, C, U F), ``reward`` (N,), ``next_obs``
                (N, C, D), ``done`` (N,); sampled from the replay memory when omitted.

        Returns:
            ``critic_loss`` ``sum_i mean_j (y_j - Q_tot,Theta_i(...))^2`` and, on actor
            updates, ``actor_loss`` ``-mean_j Q_tot,Theta_1(Q_theta_1(S_b, pi_phi(S_b)); S)``.
        """
        cfg = self.config
        if batch is None:
            batch = self.memory.sample(cfg.batch_size, self.generator)
        y = self.td_target(batch["reward"], batch["next_obs"], batch["done"])
        q = self.q_total(batch["obs"], batch["actions"])  # (2, N)
        critic_loss = (q - y).square().mean(dim=1).sum()
        self.critic_optimizer.zero_grad()
        critic_loss.backward()
        self.critic_optimizer.step()
        self.n_critic_updates += 1
        stats = {"critic_loss": float(critic_loss.detach())}
        if self.n_critic_updates % cfg.policy_delay == 0:
            stats["actor_loss"] = self._actor_and_target_update(batch["obs"])
        return stats

    def _actor_and_target_update(self, obs: torch.Tensor) -> float:
        """Lines 14-16: the actor ascends the first mixed value; Polyak-averaged targets."""
        cfg = self.config
        actor_loss = -self.q_total(obs, self.policy(obs))[0].mean()
        self.actor_optimizer.zero_grad()
        actor_loss.backward()
        self.actor_optimizer.step()
        self.n_actor_updates += 1
        soft_update_(self.critics_target, self.critics, cfg.tau)
        soft_update_(self.mixers_target, self.mixers, cfg.tau)
        soft_update_(self.actor_target, self.actor, cfg.tau)
        return float(actor_loss.detach())

    # ---------------------------------------------------------------------------------------
    # Acting
    # ---------------------------------------------------------------------------------------

    @torch.no_grad()
    def act(self, obs: torch.Tensor, *, explore: bool = False) -> torch.Tensor:
        """Policy outputs for ``obs (B, C, D)``: (B, C, U F) in [0, 1]; ``explore`` adds
        N(0, exploration_noise^2) and clips (Algorithm 1 line 7)."""
        x = self.policy(obs)
        if explore and self.config.exploration_noise > 0:
            noise = torch.randn(
                x.shape, generator=self.generator, device=self.device, dtype=x.dtype
            )
            x = self.project(x + self.config.exploration_noise * noise)
        return x

    # ---------------------------------------------------------------------------------------
    # Training (Algorithm 1)
    # ---------------------------------------------------------------------------------------

    def train(
        self,
        env: Any,
        n_steps: int,
        *,
        progress: bool = False,
        callback: Callable[[int, TD3MixTrainLog], None] | None = None,
    ) -> TD3MixTrainLog:
        """Run ``n_steps`` environment steps of Algorithm 1 on ``env`` (B transitions each).

        Every step plays one block in the B environments (lines 7-10, :meth:`_play`) and, once
        the memory holds ``max(learning_starts, batch_size)`` transitions, makes
        ``updates_per_step`` updates (lines 11-17, :meth:`update`). The environment is reset
        when its episode ends (after T blocks) or if it has not been started; training can be
        resumed with further calls. ``callback(step, log)`` is called after every step.
        """
        from tqdm.auto import tqdm

        cfg = self.config
        if isinstance(n_steps, bool) or int(n_steps) != n_steps or n_steps < 0:
            raise ConfigError(f"n_steps must be an integer >= 0, got {n_steps}")
        log = TD3MixTrainLog()
        start = time.perf_counter()
        obs = env.reset() if env.done else env.observe()
        for step in tqdm(range(int(n_steps)), disable=not progress, desc=cfg.scheme):
            obs = self._play(env, obs, log)
            if self.n_transitions >= max(cfg.learning_starts, cfg.batch_size):
                for _ in range(cfg.updates_per_step):
                    losses = self.update()
                    log.critic_loss.append(losses["critic_loss"])
                    log.n_critic_updates += 1
                    if "actor_loss" in losses:
                        log.actor_loss.append(losses["actor_loss"])
                        log.n_actor_updates += 1
            if callback is not None:
                callback(step, log)
        log.wall_time_s = time.perf_counter() - start
        return log

    def _play(self, env: Any, obs: torch.Tensor, log: TD3MixTrainLog) -> torch.Tensor:
        """Lines 7-10 in the B environments: the actor's noisy action x (uniform random for the
        first ``learning_starts`` transitions), k FLWF iterations from its powers
        (td3_mix_flwf), the block played, ``(S, x, r, S', done)`` stored. Returns the next
        observation (of a new episode after the last block)."""
        cfg = self.config
        if self.n_transitions < cfg.learning_starts:
            actions = self.project(env.random_actions(self.generator))
        else:
            actions = self.act(obs, explore=True)
        power = env.action_to_power(actions)
        if cfg.uses_flwf:
            from skyshare.solvers.flwf import flwf

            result = flwf(env.problem(), power, max_iter=cfg.flwf_iterations)
            power = result.power
            log.flwf_iterations.append(float(result.iterations))
        out = env.step_power(power)
        reward_factor = cfg.reward_scale * (1.0 if cfg.reward == "total" else 1.0 / self.n_users)
        reward = out.reward_total * reward_factor
        self.memory.add(obs=obs, actions=actions, reward=reward, next_obs=out.obs, done=out.done)
        self.n_transitions += obs.shape[0]
        log.n_transitions += obs.shape[0]
        log.capacity_per_cell.append(float(out.reward.mean()))
        log.reward.append(float(reward.mean()))
        return env.reset() if out.done else out.obs

    # ---------------------------------------------------------------------------------------
    # Checkpoints
    # ---------------------------------------------------------------------------------------

    _checkpointed = (  # modules and optimisers in state_dict()
        *("actor", "critics", "mixers", "actor_target", "critics_target", "mixers_target"),
        *("actor_optimizer", "critic_optimizer"),
    )

    def state_dict(self, include_memory: bool = True) -> dict[str, Any]:
        """Networks, targets, optimisers, ``counters``, ``generator`` (ByteTensor), ``dims``
        [C, D, U, F], ``config`` (a plain dict) and, with ``include_memory``, the replay
        ``memory`` (then a resumed run continues exactly; it holds ``buffer_size`` x (2 C D +
        C U F + 2) floats). Tensors, numbers, strings, lists and dicts only
        (``torch.load(weights_only=True)`` reads it)."""
        state: dict[str, Any] = {
            name: getattr(self, name).state_dict() for name in self._checkpointed
        }
        state.update(
            config=plain(self.config.model_dump()),
            dims=[self.n_agents, self.obs_dim, self.users_per_cell, self.n_freq],
            counters={
                "n_critic_updates": self.n_critic_updates,
                "n_actor_updates": self.n_actor_updates,
                "n_transitions": self.n_transitions,
            },
            generator=self.generator.get_state(),
        )
        if include_memory:
            state["memory"] = self.memory.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (same sizes and config); a state without ``memory``
        leaves the current replay memory as it is."""
        dims = (self.n_agents, self.obs_dim, self.users_per_cell, self.n_freq)
        if tuple(state["dims"]) != dims:
            raise ShapeError(
                f"checkpoint has (C, D, U, F) = {tuple(state['dims'])}, these agents {dims}"
            )
        for name in self._checkpointed:  # optimiser states copied: torch's load aliases them
            value = state[name]
            getattr(self, name).load_state_dict(
                copy.deepcopy(value) if name.endswith("optimizer") else value
            )
        for key, value in state["counters"].items():
            setattr(self, key, int(value))
        self.generator.set_state(state["generator"].cpu())
        if "memory" in state:
            self.memory.load_state_dict(state["memory"])

    def save(self, path: str | Path, *, include_memory: bool = True) -> Path:
        """Write :meth:`state_dict` to ``path`` (torch.save); return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(include_memory=include_memory), path)
        return path

    def load(self, path: str | Path) -> None:
        """Restore a checkpoint written by :meth:`save` (same environment sizes and config)."""
        self.load_state_dict(read_checkpoint(path, map_location=self.device))
