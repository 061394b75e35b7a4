"""TD3-MIX and TD3-MIX+FLWF (seed 004 §IV-B, §IV-C, Algorithm 1, §V).

Multi-agent TD3 (Fujimoto, van Hoof, Meger, ICML 2018) whose per-BS critics are merged by QMIX
mixing networks (Rashid et al., ICML 2018) into the network value ``Q_tot``, on the batched
:class:`~skyshare.envs.multiband.MultibandEnv`:

* actor ``pi_phi``: one MLP, **the same for all BSs** (§IV-C), observation ``S_b`` (17) ->
  policy output ``x_b in [0, 1]^{U F}``, mapped to powers by the environment: a softmax over
  each user's F channels for the environment's "simplex" mapping (which uses only the
  proportions; a sigmoid there has a free scale that we saw drift to saturation, i.e. equal
  power), a sigmoid for "box";
* twin per-BS critics ``Q_theta_i(S_b, x_b)``, i = 1, 2: each BS has its own pair
  (``share_critics=False``, Fig. 4 draws a critic per BS), held as one GroupMLP of 2C networks;
  ``share_critics=True`` uses one pair for all BSs;
* twin mixers ``Q_tot,Theta_i(Q_theta_i(S_1, x_1), ..., Q_theta_i(S_C, x_C); S)``
  (:class:`~skyshare.rl.mixing.QMixer`, non-negative hypernetwork weights), conditioned on the
  global state ``S = (S_1, ..., S_C)`` of eq. (20);
* target copies of all five, soft-updated with rate tau; clipped target-policy noise; the actor
  and the targets updated every ``policy_delay`` (d) critic updates.

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

Eq. (22), ``G0(S_t, P_t) = R_total(S_t, P_{t+k}) + gamma R_total(S_{t+k}, P_{t+2k})``, maps to
this target as follows: ``r`` is ``R_total(S_t, P_{t+k})``, the network capacity (19) of the
allocation reached after the k FLWF iterations started from the stored action; the second term,
the capacity of the next block (``S_{t+k}`` is the next block's state under time-varying
channels) under the target policy followed by FLWF, is estimated by the twin target mixers
(Algorithm 1 line 12 replaces it with ``min_i Q_tot,Theta_i'``). ``done`` is 1 after the last
of the T blocks that share the power budget (eq. (5)); there is no next block to bootstrap.

Plain TD3-MIX (§V): "for the Q function of TD3-MIX, we applied nothing but the mean users'
capacity at each time slot, i.e., the reward divided by the number of users, as the global Q
function". Our reading (defaults of ``scheme="td3_mix"``, each a separate field): the reward is
``R_total / (C U)`` (``reward="mean_user"``) and the mixed critic regresses on it alone, with no
forward-looking term (``bootstrap=False``: ``y = r``). Blocks are independent and the simplex
action mapping spends ``P_b(t)`` every block, so the action reaches the next block only through
its ``c`` features (the interference the current powers leave); the per-slot target ignores
that link and the variance of the future terms.

The critics and mixers are trained on ``sum_i mean (y - Q_tot,Theta_i(Q_theta_i(S, x); S))^2``
with the *stored* action ``x`` (Algorithm 1 line 13 writes ``x~``, the target-policy action, a
typo with respect to TD3, which uses the stored one); the actor ascends
``Q_tot,Theta_1(Q_theta_1(S_b, pi_phi(S_b)); S)`` (line 15 through the mixer, as the global
value is what the BSs cooperate on).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from skyshare.checks import read_checkpoint
from skyshare.errors import ConfigError, ShapeError
from skyshare.rl.mixing import QMixer
from skyshare.rl.networks import GroupMLP

__all__ = [
    "ReplayBuffer",
    "TD3Mix",
    "TD3MixConfig",
    "TD3MixDecision",
    "TD3MixTrainLog",
    "smoothed_target_actions",
    "soft_update_",
    "twin_td_target",
]


@dataclass
class TD3MixConfig:
    """Hyper-parameters of TD3-MIX / TD3-MIX+FLWF.

    Paper values (seed 004 §V): 2 hidden layers of 128 in every MLP, Adam, learning rate 1e-3,
    discount 0.99, mini-batch 16. TD3's own values (Fujimoto et al. 2018, Table 3) for what the
    seed leaves out: tau = 0.005, policy delay d = 2, exploration sigma 0.1, target noise 0.2
    clipped to 0.5, all *relative to the half-width of the action range*; our actions live in
    [0, 1] (half-width 0.5), so the defaults are half of TD3's. QMIX's mixer (Rashid et al.
    2018): embedding 32, hypernetworks with one hidden layer of 64 (pymarl).

    Attributes:
        scheme: "td3_mix_flwf" (Algorithm 1) or "td3_mix" (the §V benchmark, no FLWF).
        hidden_sizes: hidden widths of the actor and of each critic (paper: (128, 128)).
        actor_lr, critic_lr: Adam learning rates (paper: 1e-3); critic_lr also trains the
            mixers.
        gamma: discount of eq. (21)/(22) (paper: 0.99).
        batch_size: N, mini-batch of experience replay (paper: 16).
        tau: soft target update rate (TD3: 0.005).
        policy_delay: d, critic updates per actor/target update (TD3: 2).
        exploration_noise: sigma of line 7 on the [0, 1] policy output (TD3 0.1 -> 0.05).
        target_noise, target_noise_clip: sigma and c of line 11 (TD3 0.2, 0.5 -> 0.1, 0.25).
        buffer_size: replay capacity in transitions (one transition = one environment of the
            batch for one block; it holds 2 C D + C U F + 2 floats).
        learning_starts: transitions played with uniform random actions before learning.
        updates_per_step: gradient updates per environment step (B transitions).
        share_critics: one critic pair for all BSs instead of one pair per BS.
        mixing_embed_dim, hypernet_hidden, mixing_weight_activation: QMixer arguments.
        mixer_state: what the mixers' hypernetworks read: "observations", the global state
            ``S_t = (S_1(t), ..., S_C(t))`` of eq. (20) (C D features), or "interference", only
            the ``log10 c`` features of every BS (C U F; choice, far fewer parameters at the
            paper's sizes, where C D = 37152).
        flwf_iterations: k, FLWF iterations between two updates in training (choice: 20, seed
            004 Fig. 9 shows convergence within 20 iterations at SIR 0 dB).
        online_flwf_max_iter, online_flwf_tol: FLWF "until convergence" in online use (§IV-C).
        reward: "total" (R_total, eq. (19)) or "mean_user" (R_total / (C U)); None: the
            scheme's default ("total" for td3_mix_flwf, "mean_user" for td3_mix).
        bootstrap: use the target critics (y = r + gamma (1 - done) min Q') or not (y = r);
            None: the scheme's default (True for td3_mix_flwf, False for td3_mix).
        reward_scale: multiplies the reward before it is stored (1: as defined above).
    """

    scheme: Literal["td3_mix_flwf", "td3_mix"] = "td3_mix_flwf"
    hidden_sizes: tuple[int, ...] = (128, 128)
    actor_lr: float = 1e-3
    critic_lr: float = 1e-3
    gamma: float = 0.99
    batch_size: int = 16
    tau: float = 0.005
    policy_delay: int = 2
    exploration_noise: float = 0.05
    target_noise: float = 0.1
    target_noise_clip: float = 0.25
    buffer_size: int = 4096
    learning_starts: int = 128
    updates_per_step: int = 1
    share_critics: bool = False
    mixing_embed_dim: int = 32
    hypernet_hidden: tuple[int, ...] = (64,)
    mixing_weight_activation: Literal["abs", "softplus"] = "abs"
    mixer_state: Literal["observations", "interference"] = "observations"
    flwf_iterations: int = 20
    online_flwf_max_iter: int = 200
    online_flwf_tol: float = 1e-6
    reward: Literal["total", "mean_user"] | None = None
    bootstrap: bool | None = None
    reward_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.scheme not in ("td3_mix_flwf", "td3_mix"):
            raise ConfigError(f"scheme must be 'td3_mix_flwf' or 'td3_mix', got {self.scheme!r}")
        if self.reward is None:
            self.reward = "total" if self.scheme == "td3_mix_flwf" else "mean_user"
        if self.bootstrap is None:
            self.bootstrap = self.scheme == "td3_mix_flwf"
        if self.mixer_state not in ("observations", "interference"):
            raise ConfigError(
                f"mixer_state must be 'observations' or 'interference', got {self.mixer_state!r}"
            )
        if self.reward not in ("total", "mean_user"):
            raise ConfigError(f"reward must be 'total' or 'mean_user', got {self.reward!r}")
        self.hidden_sizes = tuple(int(h) for h in self.hidden_sizes)
        self.hypernet_hidden = tuple(int(h) for h in self.hypernet_hidden)
        if not self.hidden_sizes or any(h < 1 for h in (*self.hidden_sizes, *self.hypernet_hidden)):
            raise ConfigError(
                f"hidden_sizes needs >= 1 layer and all widths >= 1, got {self.hidden_sizes} "
                f"and hypernet_hidden {self.hypernet_hidden}"
            )
        for name in (
            "batch_size",
            "policy_delay",
            "buffer_size",
            "updates_per_step",
            "mixing_embed_dim",
            "flwf_iterations",
            "online_flwf_max_iter",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value}")
        if self.learning_starts < 0:
            raise ConfigError(f"learning_starts must be >= 0, got {self.learning_starts}")
        if not (0.0 <= self.gamma <= 1.0):
            raise ConfigError(f"gamma must be in [0, 1], got {self.gamma}")
        if not (0.0 < self.tau <= 1.0):
            raise ConfigError(f"tau must be in (0, 1], got {self.tau}")
        for name in ("actor_lr", "critic_lr", "reward_scale", "online_flwf_tol"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("exploration_noise", "target_noise", "target_noise_clip"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")

    @property
    def uses_flwf(self) -> bool:
        return self.scheme == "td3_mix_flwf"


# --------------------------------------------------------------------------------------------
# TD3 building blocks (pure functions, tested on fixed tensors)
# --------------------------------------------------------------------------------------------


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
    """Polyak averaging in place (Algorithm 1 line 16): ``theta' <- tau theta + (1-tau) theta'``."""
    targets, onlines = list(target.parameters()), list(online.parameters())
    if len(targets) != len(onlines):
        raise ShapeError(f"target has {len(targets)} parameters, online {len(onlines)}")
    torch._foreach_lerp_(targets, onlines, tau)


class ReplayBuffer:
    """Ring buffer of transitions ``(S, x, r, S', done)`` held as preallocated tensors.

    Args:
        capacity: transitions kept (the oldest are overwritten).
        n_agents, obs_dim, action_dim: C, D, U F.
        device, dtype: where the tensors live.

    ``add`` takes B transitions at once: ``obs (B, C, D)``, ``actions (B, C, A)``,
    ``reward (B,)``, ``next_obs (B, C, D)``, ``done`` (bool, or (B,)). ``sample(n, generator)``
    returns a dict of the same keys with n rows drawn uniformly with replacement.
    """

    def __init__(
        self,
        capacity: int,
        n_agents: int,
        obs_dim: int,
        action_dim: int,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if capacity < 1:
            raise ConfigError(f"capacity must be >= 1, got {capacity}")
        kw = {"device": device, "dtype": dtype}
        self.capacity = capacity
        self.obs = torch.zeros(capacity, n_agents, obs_dim, **kw)
        self.actions = torch.zeros(capacity, n_agents, action_dim, **kw)
        self.reward = torch.zeros(capacity, **kw)
        self.next_obs = torch.zeros(capacity, n_agents, obs_dim, **kw)
        self.done = torch.zeros(capacity, **kw)
        self.position = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        reward: torch.Tensor,
        next_obs: torch.Tensor,
        done: bool | torch.Tensor,
    ) -> None:
        n = obs.shape[0]
        if n > self.capacity:
            raise ShapeError(f"adding {n} transitions to a buffer of capacity {self.capacity}")
        rows = (self.position + torch.arange(n, device=self.obs.device)) % self.capacity
        self.obs[rows] = obs.detach()
        self.actions[rows] = actions.detach()
        self.reward[rows] = reward.detach()
        self.next_obs[rows] = next_obs.detach()
        self.done[rows] = torch.as_tensor(done, dtype=self.done.dtype, device=self.done.device)
        self.position = (self.position + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        if self.size == 0:
            raise RuntimeError("the replay buffer is empty")
        rows = torch.randint(0, self.size, (n,), generator=generator, device=self.obs.device)
        return {
            "obs": self.obs[rows],
            "actions": self.actions[rows],
            "reward": self.reward[rows],
            "next_obs": self.next_obs[rows],
            "done": self.done[rows],
        }


# --------------------------------------------------------------------------------------------
# The learner
# --------------------------------------------------------------------------------------------


@dataclass
class TD3MixTrainLog:
    """What :meth:`TD3Mix.train` records (one entry per environment step unless stated).

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


@dataclass
class TD3MixDecision:
    """An online decision for the current block of B environments (§IV-C).

    Attributes:
        power: (B, C*U, F) float, the allocation to play (after FLWF for td3_mix_flwf).
        initial_power: (B, C*U, F) float, the actor's allocation (FLWF's starting point).
        flwf: the FlwfResult (iterations, convergence, equilibrium gap), None for td3_mix.
        wall_time_s: time of the whole decision (actor + FLWF).
    """

    power: torch.Tensor
    initial_power: torch.Tensor
    flwf: Any
    wall_time_s: float


class TD3Mix:
    """TD3-MIX / TD3-MIX+FLWF learner for a :class:`~skyshare.envs.multiband.MultibandEnv`.

    Args:
        env: the batched environment to train on (its B environments give B transitions per
            step). Only its sizes are read at construction.
        config: :class:`TD3MixConfig` (paper defaults, scheme td3_mix_flwf).
        generator: drives network initialisation, exploration and target noise and replay
            sampling (the channels come from the environment's own generator). A generator
            seeded with 0 on the env's device when omitted.

    Networks (attributes): ``actor`` (GroupMLP, 1 network, D -> U F, sigmoid), ``critics``
    (GroupMLP of 2C networks, ``[i C + b]`` is ``Q_theta_{i+1}`` of BS b; 2 with
    ``share_critics``), ``mixers`` (QMixer with 2 mixers), and ``actor_target``,
    ``critics_target``, ``mixers_target``.
    """

    def __init__(
        self,
        env: Any,
        config: TD3MixConfig | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        self.config = config if config is not None else TD3MixConfig()
        cfg = self.config
        self.n_agents, self.obs_dim, self.action_dim = env.n_agents, env.obs_dim, env.action_dim
        self.n_users = env.n_agents * env.users_per_cell
        self.users_per_cell, self.n_freq = env.users_per_cell, env.n_freq
        # "simplex": the actor ends in a softmax over each user's F channels (the environment's
        # mapping only uses the proportions, so a sigmoid output would have a free scale that
        # drifts to saturation); "box": a sigmoid in [0, 1]^{U F}.
        self.simplex = env.config.action_mapping == "simplex"
        self.device, self.dtype = env.device, env.dtype
        if generator is None:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(0)
        self.generator = generator

        C, D, A = self.n_agents, self.obs_dim, self.action_dim
        self.interference_features = env.interference_features
        hidden = cfg.hidden_sizes
        # nn.init draws from the global RNG: seed a forked copy from our generator instead.
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
        self.buffer = ReplayBuffer(cfg.buffer_size, C, D, A, device=self.device, dtype=self.dtype)
        self.n_critic_updates = 0
        self.n_actor_updates = 0
        self.n_transitions = 0

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

    @torch.no_grad()
    def td_target(
        self,
        reward: torch.Tensor,
        next_obs: torch.Tensor,
        done: torch.Tensor,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``y`` of Algorithm 1 line 12 / eq. (22) for a mini-batch: (N,).

        Args:
            reward: (N,). next_obs: (N, C, D). done: (N,).
            noise: (N, C, A) unclipped target-policy noise; drawn from N(0, target_noise^2)
                with the learner's generator when omitted.
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
        update and soft target update (lines 14-16). Samples from the buffer when ``batch``
        is omitted. Returns the losses computed."""
        cfg = self.config
        if batch is None:
            batch = self.buffer.sample(cfg.batch_size, self.generator)
        y = self.td_target(batch["reward"], batch["next_obs"], batch["done"])
        q = self.q_total(batch["obs"], batch["actions"])  # (2, N)
        critic_loss = (q - y).square().mean(dim=1).sum()
        self.critic_optimizer.zero_grad()
        critic_loss.backward()
        self.critic_optimizer.step()
        self.n_critic_updates += 1
        losses = {"critic_loss": float(critic_loss.detach())}

        if self.n_critic_updates % cfg.policy_delay == 0:
            obs = batch["obs"]
            actor_loss = -self.q_total(obs, self.policy(obs))[0].mean()
            self.actor_optimizer.zero_grad()
            actor_loss.backward()
            self.actor_optimizer.step()
            self.n_actor_updates += 1
            soft_update_(self.critics_target, self.critics, cfg.tau)
            soft_update_(self.mixers_target, self.mixers, cfg.tau)
            soft_update_(self.actor_target, self.actor, cfg.tau)
            losses["actor_loss"] = float(actor_loss.detach())
        return losses

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

    @torch.no_grad()
    def decide(
        self, env: Any, *, max_iter: int | None = None, tol: float | None = None
    ) -> TD3MixDecision:
        """Online use (§IV-C) on the env's current block: the actor's allocation, then (for
        td3_mix_flwf) FLWF from it until convergence (``online_flwf_max_iter``/``_tol`` unless
        given). Returns a :class:`TD3MixDecision`."""
        start = time.perf_counter()
        initial = env.action_to_power(self.act(env.observe()))
        result = None
        power = initial
        if self.config.uses_flwf:
            from skyshare.solvers.flwf import flwf

            result = flwf(
                env.scenario,
                env.state,
                initial,
                max_iter=self.config.online_flwf_max_iter if max_iter is None else max_iter,
                tol=self.config.online_flwf_tol if tol is None else tol,
            )
            power = result.power
        return TD3MixDecision(power, initial, result, time.perf_counter() - start)

    def allocate(self, env: Any) -> torch.Tensor:
        """The online allocation for the env's current block: (B, C*U, F) (see decide)."""
        return self.decide(env).power

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

        The environment is reset when its episode ends (after T blocks) or if it has not been
        started; training can be resumed with further calls. ``callback(step, log)`` is called
        after every step.
        """
        from tqdm.auto import tqdm

        cfg = self.config
        if cfg.uses_flwf:
            from skyshare.solvers.flwf import flwf
        if isinstance(n_steps, bool) or int(n_steps) != n_steps or n_steps < 0:
            raise ConfigError(f"n_steps must be an integer >= 0, got {n_steps}")
        log = TD3MixTrainLog()
        start = time.perf_counter()
        obs = env.reset() if env.done else env.observe()
        reward_factor = cfg.reward_scale * (1.0 if cfg.reward == "total" else 1.0 / self.n_users)
        for step in tqdm(range(int(n_steps)), disable=not progress, desc=cfg.scheme):
            if self.n_transitions < cfg.learning_starts:
                actions = self.project(env.random_actions(self.generator))
            else:
                actions = self.act(obs, explore=True)
            power = env.action_to_power(actions)
            if cfg.uses_flwf:
                result = flwf(env.scenario, env.state, power, max_iter=cfg.flwf_iterations)
                power = result.power
                log.flwf_iterations.append(float(result.iterations))
            out = env.step_power(power)
            reward = out.reward_total * reward_factor
            self.buffer.add(obs, actions, reward, out.obs, out.done)
            self.n_transitions += obs.shape[0]
            log.n_transitions += obs.shape[0]
            log.capacity_per_cell.append(float(out.reward.mean()))
            log.reward.append(float(reward.mean()))
            obs = env.reset() if out.done else out.obs

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

    # ---------------------------------------------------------------------------------------
    # Checkpoints
    # ---------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Networks, targets, optimisers and counters (not the replay buffer)."""
        return {
            "config": asdict(self.config),
            "actor": self.actor.state_dict(),
            "critics": self.critics.state_dict(),
            "mixers": self.mixers.state_dict(),
            "actor_target": self.actor_target.state_dict(),
            "critics_target": self.critics_target.state_dict(),
            "mixers_target": self.mixers_target.state_dict(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "counters": {
                "n_critic_updates": self.n_critic_updates,
                "n_actor_updates": self.n_actor_updates,
                "n_transitions": self.n_transitions,
            },
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in (
            "actor",
            "critics",
            "mixers",
            "actor_target",
            "critics_target",
            "mixers_target",
            "actor_optimizer",
            "critic_optimizer",
        ):
            getattr(self, name).load_state_dict(state[name])
        for key, value in state["counters"].items():
            setattr(self, key, int(value))
        self.generator.set_state(state["generator"])

    def save(self, path: str | Path) -> Path:
        """Write :meth:`state_dict` to ``path`` (torch.save); return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), path)
        return path

    def load(self, path: str | Path) -> None:
        """Restore a checkpoint written by :meth:`save` (same environment sizes and config)."""
        self.load_state_dict(read_checkpoint(path, map_location=self.device))
