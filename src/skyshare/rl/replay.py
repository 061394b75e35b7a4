"""FIFO experience replay memory for a group of independent agents (seed 000 Algorithm 4).

Every agent ``a`` owns a FIFO queue xi_a of ``capacity`` transitions
``<o_j, a_j, r_j, o_{j+1}, d_j>`` (Algorithm 4 line 2: "experience replay memory xi_k^TU with a
FIFO queue of size B_m^TU"). All agents store a transition in every slot, so the queues of the
group fill in lock step and are held as one set of tensors with the agent axis first:

* ``obs``, ``next_obs``: (A, capacity, obs_dim) float
* ``actions``: (A, capacity) long
* ``rewards``: (A, capacity) float
* ``terminated``: (A, capacity) bool

Writing B transitions per agent (B parallel environments) fills B consecutive rows per agent;
once the queue is full the oldest rows are overwritten first (ring buffer, FIFO). Sampling
draws, independently for each agent, ``batch_size`` rows uniformly from the filled part (uniform
experience replay, Mnih et al. 2015; "samples a batch of B_b^TU experiences", Algorithm 4 line
11), with replacement by default or as distinct rows on request.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from skyshare.errors import ConfigError, ShapeError

__all__ = ["ReplayBatch", "ReplayMemory"]


@dataclass
class ReplayBatch:
    """A sampled batch, agent axis first.

    Attributes:
        obs: (A, batch, obs_dim) float.
        actions: (A, batch) long.
        rewards: (A, batch) float.
        next_obs: (A, batch, obs_dim) float.
        terminated: (A, batch) bool (true: no bootstrapping from ``next_obs``).
    """

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor


class ReplayMemory:
    """A FIFO replay queue per agent, for A agents at once.

    Args:
        n_agents: A.
        capacity: transitions kept per agent (B_m^TU = 2000 in seed 000 §VI).
        obs_dim: length of one observation.
        device: where the memory lives.
        dtype: observation and reward precision (float32).
    """

    def __init__(
        self,
        n_agents: int,
        capacity: int,
        obs_dim: int,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        for name, value in (("n_agents", n_agents), ("capacity", capacity), ("obs_dim", obs_dim)):
            if int(value) < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        self.n_agents, self.capacity, self.obs_dim = int(n_agents), int(capacity), int(obs_dim)
        self.device, self.dtype = torch.device(device), dtype
        A, C, D = self.n_agents, self.capacity, self.obs_dim
        self.obs = torch.zeros(A, C, D, device=self.device, dtype=dtype)
        self.next_obs = torch.zeros(A, C, D, device=self.device, dtype=dtype)
        self.actions = torch.zeros(A, C, device=self.device, dtype=torch.long)
        self.rewards = torch.zeros(A, C, device=self.device, dtype=dtype)
        self.terminated = torch.zeros(A, C, device=self.device, dtype=torch.bool)
        self.position = 0  # next row to write
        self.size = 0  # filled rows per agent
        self.n_added = 0  # transitions ever written per agent

    def __len__(self) -> int:
        """Transitions currently stored per agent."""
        return self.size

    def add(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        next_obs: torch.Tensor,
        terminated: torch.Tensor | None = None,
    ) -> None:
        """Store B transitions per agent, environment axis first (as the env returns them).

        Args:
            obs: (B, A, obs_dim) observation o_j.
            actions: (B, A) integer action.
            rewards: (B, A) reward r_j.
            next_obs: (B, A, obs_dim) observation o_{j+1}.
            terminated: (B, A) bool, or None for a continuing task (all False).
        """
        A, D = self.n_agents, self.obs_dim
        if obs.ndim != 3 or obs.shape[1:] != (A, D):
            raise ShapeError(f"obs must be (B, A={A}, obs_dim={D}), got {tuple(obs.shape)}")
        B = obs.shape[0]
        if next_obs.shape != obs.shape:
            raise ShapeError(f"next_obs must be {tuple(obs.shape)}, got {tuple(next_obs.shape)}")
        for name, value in (("actions", actions), ("rewards", rewards)):
            if value.shape != (B, A):
                raise ShapeError(f"{name} must be (B, A) = {(B, A)}, got {tuple(value.shape)}")
        if terminated is None:
            terminated = torch.zeros(B, A, dtype=torch.bool, device=self.device)
        elif terminated.shape != (B, A):
            raise ShapeError(f"terminated must be (B, A) = {(B, A)}, got {tuple(terminated.shape)}")
        # A FIFO of this size keeps only the newest `capacity` of the B new transitions.
        skipped = max(0, B - self.capacity)
        obs, actions, rewards = obs[skipped:], actions[skipped:], rewards[skipped:]
        next_obs, terminated = next_obs[skipped:], terminated[skipped:]
        B -= skipped
        self.position = (self.position + skipped) % self.capacity
        rows = (self.position + torch.arange(B, device=self.device)) % self.capacity  # (B,)
        self.obs[:, rows] = obs.to(self.device, self.dtype).transpose(0, 1)
        self.next_obs[:, rows] = next_obs.to(self.device, self.dtype).transpose(0, 1)
        self.actions[:, rows] = actions.to(self.device, torch.long).transpose(0, 1)
        self.rewards[:, rows] = rewards.to(self.device, self.dtype).transpose(0, 1)
        self.terminated[:, rows] = terminated.to(self.device, torch.bool).transpose(0, 1)
        self.position = (self.position + B) % self.capacity
        self.size = min(self.size + B, self.capacity)
        self.n_added += B + skipped

    def sample(
        self, batch_size: int, generator: torch.Generator, *, replacement: bool = True
    ) -> ReplayBatch:
        """``batch_size`` stored transitions per agent, uniformly and independently per agent.

        Args:
            batch_size: rows per agent, at most the number stored.
            generator: source of the draw.
            replacement: True (default): independent uniform rows, as in the usual DQN replay
                buffers (Mnih et al. 2015; Stable-Baselines3 / CleanRL ``ReplayBuffer``), one
                cheap ``randint``. False: distinct rows (sampling without replacement).

        Returns a :class:`ReplayBatch` with tensors shaped (A, batch_size, ...).
        """
        if not 1 <= batch_size <= self.size:
            raise ConfigError(
                f"batch_size must be in [1, {self.size}] (transitions stored), got {batch_size}"
            )
        shape = (self.n_agents, batch_size)
        if replacement:
            rows = torch.randint(0, self.size, shape, generator=generator, device=generator.device)
        else:  # the batch_size smallest of iid uniform keys: a uniform subset, per agent
            keys = torch.rand(
                self.n_agents, self.size, generator=generator, device=generator.device
            )
            rows = keys.topk(batch_size, dim=-1, largest=False, sorted=False).indices
        rows = rows.to(self.device)  # (A, batch)
        # flat row numbers a * capacity + row: one index_select per field (a gather with an
        # index expanded over obs_dim is several times slower)
        flat = rows + self.capacity * torch.arange(self.n_agents, device=self.device)[:, None]
        flat = flat.reshape(-1)
        A, C, D = self.n_agents, self.capacity, self.obs_dim
        return ReplayBatch(
            obs=self.obs.view(A * C, D).index_select(0, flat).view(*shape, D),
            actions=self.actions.view(-1).index_select(0, flat).view(shape),
            rewards=self.rewards.view(-1).index_select(0, flat).view(shape),
            next_obs=self.next_obs.view(A * C, D).index_select(0, flat).view(*shape, D),
            terminated=self.terminated.view(-1).index_select(0, flat).view(shape),
        )

    def state_dict(self) -> dict:
        """Contents and write position, for checkpoints."""
        return {
            "obs": self.obs.clone(),
            "next_obs": self.next_obs.clone(),
            "actions": self.actions.clone(),
            "rewards": self.rewards.clone(),
            "terminated": self.terminated.clone(),
            "position": self.position,
            "size": self.size,
            "n_added": self.n_added,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` saved (same A, capacity and obs_dim)."""
        if tuple(state["obs"].shape) != tuple(self.obs.shape):
            raise ShapeError(
                f"replay state holds {tuple(state['obs'].shape)}, this memory is "
                f"{tuple(self.obs.shape)} (A, capacity, obs_dim)"
            )
        for name in ("obs", "next_obs", "actions", "rewards", "terminated"):
            getattr(self, name).copy_(state[name])
        self.position, self.size = int(state["position"]), int(state["size"])
        self.n_added = int(state.get("n_added", self.size))
