"""D3QN: dueling double deep Q-learning for the TU (user-association) agents (seed 000 §V-D).

Every terrestrial user k is an independent agent with its own online network Q_omega, target
network Q_omega^- and FIFO replay memory xi_k (Algorithm 4 lines 1-2). The K agents are held as
one batched group: one :class:`~skyshare.rl.common.networks.GroupMLP` with A = K independent
trunks, per-agent dueling heads, one optimizer whose per-parameter (Adam) updates never mix
agents, one :class:`~skyshare.rl.common.buffers.ReplayBuffer` with a queue per agent. B
parallel environments share each agent's networks and memory (B transitions per agent per
slot). For independent runs (e.g. seeds) use A = B K agents and pass observations as
(1, B K, obs_dim).

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

Observations are used as given (any layout of length ``obs_dim``). The CATN TU observation (14)
spans many decades; the env normalises it when asked, ``CatnEnvConfig(tu_observation=
"normalized")`` (:func:`skyshare.envs.catn.normalized_tu_observation`), which is how the
seed-000 schemes feed their D3QN agents.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from pydantic import Field, PositiveInt, model_validator
from torch import nn

from skyshare.errors import ConfigError, ShapeError
from skyshare.rl.common.buffers import ReplayBuffer
from skyshare.rl.common.config import LearnerConfig, plain
from skyshare.rl.common.networks import ActivationName, GroupLinear, GroupMLP, init_uniform

__all__ = [
    "D3QNAgents",
    "D3QNConfig",
    "DuelingQNetwork",
    "d3qn_loss",
    "double_q_target",
    "dueling_q_values",
]


class D3QNConfig(LearnerConfig):
    """Hyper-parameters of the TU agents; defaults are seed 000 §VI unless the description says
    otherwise. ``seed`` seeds the agents' CPU generator (initialisation, exploration, replay
    sampling)."""

    hidden_sizes: tuple[PositiveInt, ...] = Field(
        (64, 32),
        min_length=1,
        description="Q-network hidden layers (§VI); the value and advantage streams are linear "
        "heads on the last hidden layer (choice, docs/rl/d3qn.md)",
    )
    activation: ActivationName = Field("relu", description="hidden activation (§VI)")
    gamma: float = Field(
        0.5,
        ge=0.0,
        lt=1.0,
        description="discount factor (§VI: the parameters of Algorithm 4 ... gamma = 0.5)",
    )
    learning_rate: float = Field(
        1e-3,
        gt=0.0,
        description="alpha_omega of Algorithm 4 line 12 with Adam; not given by the seed "
        "(choice: Kingma & Ba's default, the usual DQN-on-vector-observations value)",
    )
    adam_eps: float = Field(1e-8, gt=0.0, description="Adam epsilon (PyTorch default)")
    target_update_interval: int = Field(
        50, ge=1, description="T^-, updates between target copies (§VI)"
    )
    memory_size: int = Field(2000, ge=1, description="B_m^TU, FIFO transitions per agent (§VI)")
    batch_size: int = Field(200, ge=1, description="B_b^TU, transitions per agent and update (§VI)")
    learning_starts: int | None = Field(
        None,
        ge=1,
        description="transitions per agent before updates and epsilon-greedy start "
        "(Algorithm 4 line 10: t - 1 >= B_b^TU); None: batch_size",
    )
    sample_with_replacement: bool = Field(
        True, description="draw a batch's rows with replacement (usual DQN replay; choice)"
    )
    epsilon_start: float = Field(0.3, ge=0.0, le=1.0, description="epsilon_0 (§VI)")
    epsilon_min: float = Field(0.005, ge=0.0, le=1.0, description="epsilon floor (§VI)")
    epsilon_decay: float = Field(0.995, ge=0.0, le=1.0, description="epsilon factor (§VI)")

    @model_validator(mode="after")
    def _batch_fits_the_memory(self) -> D3QNConfig:
        if self.batch_size > self.memory_size:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be <= memory_size ({self.memory_size})"
            )
        if not self.batch_size <= self.starts <= self.memory_size:
            raise ValueError(
                f"learning_starts must be in [batch_size, memory_size] = "
                f"[{self.batch_size}, {self.memory_size}], got {self.starts}"
            )
        return self

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


# -------------------------------------------------------------------------------------------
# The agents
# -------------------------------------------------------------------------------------------


class D3QNAgents:
    """K independent D3QN agents (seed 000 §V-D, Algorithm 4 TU side), batched.

    Args:
        obs_dim: observation length (3N + 4 for CATN TUs).
        n_actions: number of discrete actions (N BSs).
        n_agents: A (K TUs).
        config: :class:`D3QNConfig` (seed 000 §VI defaults when None).
        device: where networks and memory live.

    Attributes:
        generator: the only source of randomness (initialisation, exploration, sampling), a CPU
            generator seeded with ``config.seed`` whatever the device (draws are moved).
        online, target: :class:`DuelingQNetwork` with A agents.
        memory: :class:`~skyshare.rl.common.buffers.ReplayBuffer` with A queues: ``obs``,
            ``next_obs`` (D,) float32, ``actions`` () long, ``rewards`` () float32,
            ``terminated`` () bool.
        epsilon: current exploration rate. n_updates: gradient steps taken.
        last_agent_loss: (A,) loss (13) of each agent at the last update.
    """

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        n_agents: int,
        config: D3QNConfig | None = None,
        *,
        device: str | torch.device = "cpu",
    ) -> None:
        for name, value in (("obs_dim", obs_dim), ("n_actions", n_actions), ("n_agents", n_agents)):
            if int(value) < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        self.config = cfg = config or D3QNConfig()
        self.obs_dim, self.n_actions, self.n_agents = int(obs_dim), int(n_actions), int(n_agents)
        self.device = torch.device(device)
        self.generator = torch.Generator().manual_seed(cfg.seed)

        self.online = DuelingQNetwork(
            n_agents, obs_dim, n_actions, cfg.hidden_sizes, cfg.activation
        ).to(self.device)
        init_uniform(self.online, self.generator)
        self.target = copy.deepcopy(self.online)  # Algorithm 4 line 1: omega^- <- omega
        self.target.requires_grad_(False)
        # fused: one kernel over all parameters instead of ~10 small ops per tensor (same rule)
        fused = self.device.type in ("cpu", "cuda")
        self.optimizer = torch.optim.Adam(
            self.online.parameters(), lr=cfg.learning_rate, eps=cfg.adam_eps, fused=fused or None
        )
        fields = {
            "obs": ((obs_dim,), torch.float32),
            "actions": ((), torch.long),
            "rewards": ((), torch.float32),
            "next_obs": ((obs_dim,), torch.float32),
            "terminated": ((), torch.bool),
        }
        self.memory = ReplayBuffer(cfg.memory_size, fields, n_queues=n_agents, device=self.device)
        self.epsilon = float(cfg.epsilon_start)
        self.n_updates = 0
        self.last_agent_loss = torch.zeros(n_agents, device=self.device)

    # --- acting -------------------------------------------------------------------------------

    @property
    def learning(self) -> bool:
        """Whether the memory holds enough transitions (Algorithm 4 line 10: t - 1 >= B_b^TU)."""
        return len(self.memory) >= self.config.starts

    def _inputs(self, obs: torch.Tensor) -> torch.Tensor:
        """Observations (..., obs_dim) -> network input (..., obs_dim) float32 on the device."""
        return obs.to(self.device, torch.float32)

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
        return self.online(self._inputs(obs.transpose(0, 1))).transpose(0, 1)

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

        Args:
            obs, next_obs: (B, K, obs_dim) observations.
            actions: (B, K) long. rewards: (B, K) float.
            terminated: (B, K) bool or None. CATN is continuing: pass None, also at the
                horizon truncation (the target then bootstraps from ``next_obs``).
        """
        self._check_obs(obs)
        self._check_obs(next_obs, "next_obs")
        self.memory.add(
            obs=self._inputs(obs),
            actions=actions,
            rewards=rewards,
            next_obs=self._inputs(next_obs),
            terminated=False if terminated is None else terminated,
        )

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
        batch = self.memory.sample(  # (A, B_b, ...)
            cfg.batch_size, self.generator, replacement=cfg.sample_with_replacement
        )
        with torch.no_grad():
            next_obs = batch["next_obs"]
            q_target = double_q_target(
                batch["rewards"],
                self.online(next_obs),
                self.target(next_obs),
                cfg.gamma,
                batch["terminated"],
            )
        q_taken = self.online(batch["obs"]).gather(-1, batch["actions"][..., None]).squeeze(-1)
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

    def state_dict(self, include_memory: bool = True) -> dict[str, Any]:
        """Networks, optimizer, ``generator`` (ByteTensor), ``epsilon``, ``n_updates``, ``dims``
        [obs_dim, n_actions, n_agents], ``config`` (a plain dict) and, with
        ``include_memory``, the replay ``memory``: tensors, numbers, strings, lists and dicts
        only (``torch.load(weights_only=True)`` reads it)."""
        state = {
            "config": plain(self.config.model_dump()),
            "dims": [self.obs_dim, self.n_actions, self.n_agents],
            "online": self.online.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "epsilon": self.epsilon,
            "n_updates": self.n_updates,
        }
        if include_memory:
            state["memory"] = self.memory.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (same sizes). A checkpoint without memory leaves the
        current memory as it is."""
        dims = (self.obs_dim, self.n_actions, self.n_agents)
        if tuple(state["dims"]) != dims:
            raise ShapeError(
                f"checkpoint has (obs_dim, n_actions, n_agents) = {tuple(state['dims'])}, "
                f"these agents {dims}"
            )
        self.online.load_state_dict(state["online"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))  # torch's load aliases
        self.generator.set_state(state["generator"].cpu())
        self.epsilon = float(state["epsilon"])
        self.n_updates = int(state["n_updates"])
        if "memory" in state:
            self.memory.load_state_dict(state["memory"])
