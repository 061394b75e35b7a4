"""D3QN: dueling double deep Q-learning for the TU (user-association) agents (seed 000 §V-D).

Every terrestrial user k is an independent agent with its own online network Q_omega, target
network Q_omega^- and FIFO replay memory xi_k (Algorithm 4 lines 1-2). The K agents are held as
one batched group: one :class:`~skyshare.rl.networks.GroupMLP` with A = K independent trunks,
per-agent dueling heads, one optimizer whose per-parameter (Adam) updates never mix agents, one
:class:`~skyshare.rl.replay.ReplayMemory` with a queue per agent. B parallel environments share
each agent's networks and memory (B transitions per agent per slot). For independent runs (e.g.
seeds) use A = B K agents and pass observations as (1, B K, obs_dim).

Equations (seed 000 §V-D-1, [45] van Hasselt et al. 2016, [46] Wang et al. 2016):

* Dueling aggregation [46, eq. (9)]:
  ``Q(o, a) = V(o) + A(o, a) - (1/|A|) sum_a' A(o, a')``.
* Double-Q target (seed 000 below (13)):
  ``Q_target = r + gamma (1 - d) Q_omega^-(o', argmax_a' Q_omega(o', a'))``; the online network
  selects the action, the target network evaluates it. ``d`` marks a true termination; CATN is a
  continuing game, so d = 0 always and a horizon truncation still bootstraps from o'.
* Loss (13): ``L_Q(omega) = 1/(2 B_b) sum_j (Q_omega(o_j, a_j) - Q_target_j)^2`` per agent.
* Target copy ``omega^- <- omega`` every T^- updates (Algorithm 4 line 13).
* Exploration (§VI): epsilon-greedy, epsilon_0 = 0.3, ``epsilon <- max(0.005, 0.995 epsilon)``
  each time the agents act epsilon-greedily; before the memory holds B_b^TU transitions the
  actions are uniformly random and no update is made (Algorithm 4 lines 10-19).

A typical slot of Algorithm 4 (TU side)::

    agents.observe(obs_prev, actions_prev, rewards_prev, obs)   # line 9
    stats = agents.update()                                     # lines 10-14
    actions = agents.act(obs, explore=True)                     # lines 15-19
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn

from skyshare.errors import ConfigError, ShapeError
from skyshare.rl.networks import GroupLinear, GroupMLP
from skyshare.rl.replay import ReplayMemory

__all__ = [
    "D3QNAgents",
    "D3QNConfig",
    "DuelingQNetwork",
    "catn_tu_observation_transform",
    "d3qn_loss",
    "double_q_target",
    "dueling_q_values",
]


@dataclass
class D3QNConfig:
    """Hyper-parameters of the TU agents; defaults are seed 000 §VI unless marked as a choice.

    Attributes:
        hidden_sizes: Q-network hidden layers (64, 32) (§VI); the value and advantage streams
            are linear heads on the last hidden layer (choice, see docs/rl/d3qn.md).
        activation: hidden activation, ReLU (§VI).
        gamma: discount factor 0.5 (§VI: "the parameters of Algorithm 4 ... gamma = 0.5";
            Algorithm 4 line 2 gives the TU agents a discount factor, one value is listed).
        learning_rate: alpha_omega of Algorithm 4 line 12; not given by the seed. Choice: 1e-3
            with Adam (Kingma & Ba 2015 default; the usual DQN-on-vector-observations value).
        adam_eps: Adam epsilon (PyTorch default).
        target_update_interval: T^- = 50 updates between target copies (§VI).
        memory_size: B_m^TU = 2000 transitions per agent, FIFO (§VI).
        batch_size: B_b^TU = 200 transitions per agent and update (§VI).
        learning_starts: transitions per agent before updates and epsilon-greedy start
            (Algorithm 4 line 10: t - 1 >= B_b^TU); None means ``batch_size``.
        sample_with_replacement: draw the B_b^TU rows of a batch with replacement (True, the
            usual DQN replay; the seed does not say) or as distinct rows (False).
        epsilon_start, epsilon_min, epsilon_decay: 0.3, 0.005, 0.995 (§VI).
        observation_transform: "catn_tu" (fixed transform of observation (14), see
            :func:`catn_tu_observation_transform`; requires obs_dim = 3 n_actions + 4) or
            "none" (observations used as given).
    """

    hidden_sizes: tuple[int, ...] = (64, 32)
    activation: str = "relu"
    gamma: float = 0.5
    learning_rate: float = 1e-3
    adam_eps: float = 1e-8
    target_update_interval: int = 50
    memory_size: int = 2000
    batch_size: int = 200
    learning_starts: int | None = None
    sample_with_replacement: bool = True
    epsilon_start: float = 0.3
    epsilon_min: float = 0.005
    epsilon_decay: float = 0.995
    observation_transform: Literal["catn_tu", "none"] = "catn_tu"

    def __post_init__(self) -> None:
        self.hidden_sizes = tuple(int(h) for h in self.hidden_sizes)
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise ConfigError(
                f"hidden_sizes must be non-empty widths >= 1, got {self.hidden_sizes}"
            )
        if not 0.0 <= self.gamma < 1.0:
            raise ConfigError(f"gamma must be in [0, 1), got {self.gamma}")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}")
        for name in ("target_update_interval", "memory_size", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size > self.memory_size:
            raise ConfigError(
                f"batch_size ({self.batch_size}) must be <= memory_size ({self.memory_size})"
            )
        starts = self.starts
        if not self.batch_size <= starts <= self.memory_size:
            raise ConfigError(
                f"learning_starts must be in [batch_size, memory_size] = "
                f"[{self.batch_size}, {self.memory_size}], got {starts}"
            )
        for name in ("epsilon_start", "epsilon_min", "epsilon_decay"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.observation_transform not in ("catn_tu", "none"):
            raise ConfigError(
                "observation_transform must be 'catn_tu' or 'none', "
                f"got {self.observation_transform!r}"
            )

    @property
    def starts(self) -> int:
        """Transitions per agent needed before learning (``learning_starts`` or ``batch_size``)."""
        return self.batch_size if self.learning_starts is None else int(self.learning_starts)


# -------------------------------------------------------------------------------------------
# The pieces of the algorithm as pure functions (tested on fixed tensors)
# -------------------------------------------------------------------------------------------


def dueling_q_values(value: torch.Tensor, advantage: torch.Tensor) -> torch.Tensor:
    """Dueling aggregation [46, eq. (9)]: ``Q = V + A - mean_a A``.

    Args:
        value: (..., 1) state value V(o).
        advantage: (..., n_actions) advantages A(o, a).

    Returns:
        (..., n_actions) Q(o, a). Subtracting the mean makes V and A identifiable: the mean
        of Q over actions equals V.
    """
    if value.shape[-1] != 1 or value.shape[:-1] != advantage.shape[:-1]:
        raise ShapeError(
            f"value must be (..., 1) matching advantage (..., n_actions); got "
            f"{tuple(value.shape)} and {tuple(advantage.shape)}"
        )
    return value + advantage - advantage.mean(dim=-1, keepdim=True)


def double_q_target(
    rewards: torch.Tensor,
    next_q_online: torch.Tensor,
    next_q_target: torch.Tensor,
    gamma: float,
    terminated: torch.Tensor | None = None,
) -> torch.Tensor:
    """Double-Q target of seed 000 (13) [45]:
    ``r + gamma (1 - d) Q_omega^-(o', argmax_a' Q_omega(o', a'))``.

    Args:
        rewards: (...,) r_j.
        next_q_online: (..., n_actions) Q_omega(o_{j+1}, .), selects the action.
        next_q_target: (..., n_actions) Q_omega^-(o_{j+1}, .), evaluates it.
        gamma: discount factor in [0, 1).
        terminated: (...,) bool, true where o_{j+1} is terminal (no bootstrap); None = none.

    Returns:
        (...,) Q_target_j (no gradient is taken through it by the caller).
    """
    if next_q_online.shape != next_q_target.shape or next_q_online.shape[:-1] != rewards.shape:
        raise ShapeError(
            f"expected rewards (...,) and Q values (..., n_actions) of the same leading shape; got "
            f"{tuple(rewards.shape)}, {tuple(next_q_online.shape)}, {tuple(next_q_target.shape)}"
        )
    best_next = next_q_online.argmax(dim=-1, keepdim=True)  # selection: online network
    next_value = next_q_target.gather(-1, best_next).squeeze(-1)  # evaluation: target network
    if terminated is not None:
        next_value = torch.where(terminated, torch.zeros_like(next_value), next_value)
    return rewards + gamma * next_value


def d3qn_loss(q_taken: torch.Tensor, q_target: torch.Tensor) -> torch.Tensor:
    """Loss (13) per agent: ``1/(2 B_b) sum_j (Q_omega(o_j, a_j) - Q_target_j)^2``.

    Args:
        q_taken: (A, B_b) Q_omega(o_j, a_j).
        q_target: (A, B_b) Q_target_j (treated as a constant).

    Returns:
        (A,) one loss per agent.
    """
    if q_taken.shape != q_target.shape or q_taken.ndim != 2:
        raise ShapeError(
            f"q_taken and q_target must both be (A, B_b); got {tuple(q_taken.shape)} and "
            f"{tuple(q_target.shape)}"
        )
    return 0.5 * (q_taken - q_target.detach()).square().mean(dim=-1)


def catn_tu_observation_transform(obs: torch.Tensor, n_bs: int) -> torch.Tensor:
    """Fixed input normalisation of the CATN TU observation (14), length 3N + 4.

    Layout of (14) (skyshare.envs.catn) and the transform applied to each field:

    ==============  =============================  ==========================================
    indices          field                          transform
    ==============  =============================  ==========================================
    [0, N)           |K_n(t-1)| (BS loads)          ``N |K_n| / sum_n |K_n|`` (1 = average load)
    [N, 2N)          chi_k(t-1) (one-hot)           unchanged
    [2N, 3N)         ||h_{n,k}(t)||^2 / sigma^2     ``log10(1 + x)``
    3N               p_k(t-1) in W                  ``log10(1 + x / 1 mW)``
    3N + 1           R_k(t-1) in bit/s/Hz           unchanged
    3N + 2           p^r_k(t-1) / sigma^2           ``log10(1 + x)``
    3N + 3           beta_k(t-1) / sigma^2          ``log10(1 + x)``
    ==============  =============================  ==========================================

    Args:
        obs: (..., 3N + 4) raw observations.
        n_bs: N.

    Returns:
        (..., 3N + 4) transformed observations (a new tensor).
    """
    N = int(n_bs)
    if obs.shape[-1] != 3 * N + 4:
        raise ShapeError(
            f"CATN TU observations have 3N + 4 = {3 * N + 4} entries, got {obs.shape[-1]}"
        )
    load = obs[..., :N]
    relative_load = N * load / load.sum(dim=-1, keepdim=True).clamp_min(1.0)
    one_hot = obs[..., N : 2 * N]
    strength = torch.log10(1.0 + obs[..., 2 * N : 3 * N].clamp_min(0.0))
    power = torch.log10(1.0 + obs[..., 3 * N : 3 * N + 1].clamp_min(0.0) / 1e-3)
    rate = obs[..., 3 * N + 1 : 3 * N + 2]
    received_and_beta = torch.log10(1.0 + obs[..., 3 * N + 2 :].clamp_min(0.0))
    return torch.cat([relative_load, one_hot, strength, power, rate, received_and_beta], dim=-1)


# -------------------------------------------------------------------------------------------
# Networks
# -------------------------------------------------------------------------------------------


class DuelingQNetwork(nn.Module):
    """A independent dueling Q networks: trunk ``obs_dim -> hidden...`` (ReLU after every hidden
    layer), then linear value (1) and advantage (n_actions) streams, combined by
    :func:`dueling_q_values`.

    Shapes: input (A, batch, obs_dim) -> output (A, batch, n_actions).
    """

    def __init__(
        self,
        n_agents: int,
        obs_dim: int,
        n_actions: int,
        hidden_sizes: Sequence[int] = (64, 32),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        hidden = tuple(hidden_sizes)
        self.trunk = GroupMLP(
            n_agents, (obs_dim, *hidden), activations=activation, output_activation=activation
        )
        self.value = GroupLinear(n_agents, hidden[-1], 1)
        self.advantage = GroupLinear(n_agents, hidden[-1], n_actions)
        self.n_agents, self.obs_dim, self.n_actions = n_agents, obs_dim, n_actions

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        features = self.trunk(obs)
        return dueling_q_values(self.value(features), self.advantage(features))


def _initialise(network: nn.Module, generator: torch.Generator) -> None:
    """nn.Linear's default initialisation U(-1/sqrt(in), 1/sqrt(in)) for every GroupLinear,
    drawn from ``generator`` (no global random state)."""
    with torch.no_grad():
        for layer in network.modules():
            if isinstance(layer, GroupLinear):
                bound = 1.0 / math.sqrt(layer.in_features)
                for parameter in (layer.weight, layer.bias):
                    draw = torch.empty(parameter.shape, device=generator.device)
                    draw.uniform_(-bound, bound, generator=generator)
                    parameter.copy_(draw)


# -------------------------------------------------------------------------------------------
# The agents
# -------------------------------------------------------------------------------------------


class D3QNAgents:
    """K independent D3QN agents (seed 000 §V-D, Algorithm 4 TU side), batched.

    Args:
        obs_dim: observation length (3N + 4 for CATN TUs).
        n_actions: number of discrete actions (N BSs).
        n_agents: A (K TUs).
        config: :class:`D3QNConfig` (seed 000 §VI defaults).
        device: where networks and memory live.
        generator: the only source of randomness (initialisation, exploration, sampling); must
            live on ``device``'s type or on the CPU. None: a CPU generator seeded with 0.

    Attributes:
        online, target: :class:`DuelingQNetwork` with A agents.
        memory: :class:`ReplayMemory`.
        epsilon: current exploration rate. n_updates: gradient steps taken.
        last_agent_loss: (A,) loss (13) of each agent at the last update.
    """

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        n_agents: int,
        config: D3QNConfig | None = None,
        device: str | torch.device = "cpu",
        generator: torch.Generator | None = None,
    ) -> None:
        for name, value in (("obs_dim", obs_dim), ("n_actions", n_actions), ("n_agents", n_agents)):
            if int(value) < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        self.config = config or D3QNConfig()
        cfg = self.config
        if cfg.observation_transform == "catn_tu" and obs_dim != 3 * n_actions + 4:
            raise ConfigError(
                f"observation_transform='catn_tu' needs obs_dim = 3 n_actions + 4 = "
                f"{3 * n_actions + 4}, got {obs_dim}; use observation_transform='none'"
            )
        self.obs_dim, self.n_actions, self.n_agents = int(obs_dim), int(n_actions), int(n_agents)
        self.device = torch.device(device)
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)

        self.online = DuelingQNetwork(
            n_agents, obs_dim, n_actions, cfg.hidden_sizes, cfg.activation
        ).to(self.device)
        _initialise(self.online, self.generator)
        self.target = copy.deepcopy(self.online)  # Algorithm 4 line 1: omega^- <- omega
        self.target.requires_grad_(False)
        # fused: one kernel over all parameters instead of ~10 small ops per tensor (same rule)
        fused = self.device.type in ("cpu", "cuda")
        self.optimizer = torch.optim.Adam(
            self.online.parameters(), lr=cfg.learning_rate, eps=cfg.adam_eps, fused=fused or None
        )
        self.memory = ReplayMemory(n_agents, cfg.memory_size, obs_dim, device=self.device)
        self.epsilon = float(cfg.epsilon_start)
        self.n_updates = 0
        self.last_agent_loss = torch.zeros(n_agents, device=self.device)

    # --- acting -------------------------------------------------------------------------------

    @property
    def learning(self) -> bool:
        """Whether the memory holds enough transitions (Algorithm 4 line 10: t - 1 >= B_b^TU)."""
        return len(self.memory) >= self.config.starts

    def _prepare(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw observations (..., obs_dim) -> network input (..., obs_dim) float32."""
        obs = obs.to(self.device, torch.float32)
        if self.config.observation_transform == "catn_tu":
            return catn_tu_observation_transform(obs, self.n_actions)
        return obs

    def _check_obs(self, obs: torch.Tensor, name: str = "obs") -> None:
        if obs.ndim != 3 or obs.shape[1:] != (self.n_agents, self.obs_dim):
            raise ShapeError(
                f"{name} must be (B, K={self.n_agents}, obs_dim={self.obs_dim}), "
                f"got {tuple(obs.shape)}"
            )

    @torch.no_grad()
    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        """Online Q values: obs (B, K, obs_dim) -> (B, K, n_actions)."""
        self._check_obs(obs)
        return self.online(self._prepare(obs.transpose(0, 1))).transpose(0, 1)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, explore: bool = True) -> torch.Tensor:
        """Actions of all agents in B environments: obs (B, K, obs_dim) -> (B, K) long.

        ``explore=False``: greedy ``argmax_a Q_omega(o, a)`` (evaluation). ``explore=True``:
        uniformly random while :attr:`learning` is false (Algorithm 4 lines 5, 18); otherwise
        epsilon-greedy, drawn independently per agent and environment, after which epsilon
        decays once (one decay per call, i.e. per slot, whatever B is).
        """
        self._check_obs(obs)
        if not explore:
            return self.q_values(obs).argmax(dim=-1)  # (B, K)
        B, K, N = obs.shape[0], self.n_agents, self.n_actions
        gen_device = self.generator.device
        random_actions = torch.randint(0, N, (B, K), generator=self.generator, device=gen_device)
        random_actions = random_actions.to(self.device)
        if not self.learning:
            return random_actions
        greedy = self.q_values(obs).argmax(dim=-1)  # (B, K)
        explore_mask = torch.rand(B, K, generator=self.generator, device=gen_device) < self.epsilon
        self.epsilon = max(self.config.epsilon_min, self.config.epsilon_decay * self.epsilon)
        return torch.where(explore_mask.to(self.device), random_actions, greedy)

    # --- learning -----------------------------------------------------------------------------

    def observe(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        next_obs: torch.Tensor,
        terminated: torch.Tensor | None = None,
    ) -> None:
        """Store ``<o(t-1), rho(t-1), r(t-1), o(t)>`` for every agent (Algorithm 4 line 9).

        The memory keeps the network inputs, i.e. the observations after the fixed
        ``observation_transform`` (computed once per transition instead of once per sample).

        Args:
            obs, next_obs: (B, K, obs_dim) raw observations.
            actions: (B, K) long. rewards: (B, K) float.
            terminated: (B, K) bool or None. CATN is continuing: pass None, also at the
                horizon truncation (the target then bootstraps from ``next_obs``).
        """
        self._check_obs(obs)
        self._check_obs(next_obs, "next_obs")
        self.memory.add(self._prepare(obs), actions, rewards, self._prepare(next_obs), terminated)

    @torch.enable_grad()  # a learner step needs autograd even inside a no_grad caller
    def update(self) -> dict[str, float]:
        """One gradient step of (13) for every agent, batched (Algorithm 4 lines 10-14).

        Returns an empty dict while the memory holds fewer than ``learning_starts``
        transitions; otherwise ``loss`` (mean over agents of (13)), ``q_mean`` (mean
        Q_omega(o_j, a_j)), ``target_mean`` (mean Q_target), ``epsilon``, ``updates`` (steps so
        far) and ``target_synced`` (1.0 when this step copied omega -> omega^-).
        """
        if not self.learning:
            return {}
        cfg = self.config
        batch = self.memory.sample(  # (A, B_b, ...), observations already transformed
            cfg.batch_size, self.generator, replacement=cfg.sample_with_replacement
        )
        obs, next_obs = batch.obs, batch.next_obs

        with torch.no_grad():
            q_target = double_q_target(
                batch.rewards,
                self.online(next_obs),
                self.target(next_obs),
                cfg.gamma,
                batch.terminated,
            )
        q_taken = self.online(obs).gather(-1, batch.actions[..., None]).squeeze(-1)
        agent_loss = d3qn_loss(q_taken, q_target)  # (A,)

        # Agents share no parameters, so the gradient of the sum w.r.t. agent k's weights is
        # the gradient of agent k's own loss; Adam acts per parameter, so each agent's step is
        # the one it would take alone.
        self.optimizer.zero_grad(set_to_none=True)
        agent_loss.sum().backward()
        self.optimizer.step()
        self.n_updates += 1

        synced = self.n_updates % cfg.target_update_interval == 0
        if synced:
            self.sync_target()
        self.last_agent_loss = agent_loss.detach()
        return {
            "loss": float(agent_loss.detach().mean()),
            "q_mean": float(q_taken.detach().mean()),
            "target_mean": float(q_target.mean()),
            "epsilon": self.epsilon,
            "updates": float(self.n_updates),
            "target_synced": float(synced),
        }

    def sync_target(self) -> None:
        """omega^- <- omega for every agent (Algorithm 4 line 13)."""
        self.target.load_state_dict(self.online.state_dict())

    # --- checkpoints --------------------------------------------------------------------------

    def state_dict(self, include_memory: bool = True) -> dict:
        """Networks, optimizer, epsilon, update count, config and (optionally) the memory."""
        state = {
            "config": asdict(self.config),
            "online": self.online.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epsilon": self.epsilon,
            "n_updates": self.n_updates,
        }
        if include_memory:
            state["memory"] = self.memory.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` (same sizes). A checkpoint without memory leaves the
        current memory as it is."""
        self.online.load_state_dict(state["online"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epsilon = float(state["epsilon"])
        self.n_updates = int(state["n_updates"])
        if "memory" in state:
            self.memory.load_state_dict(state["memory"])
