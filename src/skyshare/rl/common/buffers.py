"""Experience storage: one FIFO replay buffer (off-policy) and the on-policy trajectory collector.

:class:`ReplayBuffer` serves both off-policy learners:

* D3QN (seed 000 Algorithm 4 line 2): every TU agent k owns a FIFO replay memory xi_k of
  B_m^TU transitions ``<o_j, a_j, r_j, o_{j+1}, d_j>``. All agents store a transition in every
  slot, so the A queues fill in lock step and are held as one set of tensors with the agent axis
  first (``n_queues = A``); a sample draws rows independently per agent.
* TD3-MIX (seed 004 Algorithm 1): one joint queue of transitions ``(S, x, r, S', done)`` that
  hold all C BSs at once (``n_queues = None``); a sample draws whole transitions.

Fields are declared at construction (name -> shape of one entry and dtype) and stored as
``(Q, capacity, *shape)`` tensors (Q = A, or 1 for the joint queue). Writing B transitions (B
parallel environments) fills B consecutive rows per queue; once full the oldest rows are
overwritten first (ring buffer). Sampling is uniform over the filled part (uniform experience
replay, Mnih et al. 2015), with replacement by default or as distinct rows on request.

:class:`TrajectoryCollector` is the on-policy collector xi^BS of B_m^BS slots (seed 000
Algorithm 4 lines 22-24) that yields a time-first :class:`Trajectory`.

Layout conventions: environment tensors are batch first ``(B, N, ...)``; a collector stacks T
slots time first ``(T, B, N, ...)``; group networks see agent first ``(N, T*B, ...)``
(:func:`to_agent_major`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from typing import Any

import torch

from skyshare.errors import ConfigError, ShapeError

__all__ = [
    "ReplayBuffer",
    "Trajectory",
    "TrajectoryCollector",
    "from_agent_major",
    "to_agent_major",
]

FieldSpec = tuple[tuple[int, ...], torch.dtype]
"""(shape of one entry, dtype) of a replay field, e.g. ``((obs_dim,), torch.float32)``."""


class ReplayBuffer:
    """A FIFO ring buffer of transitions: one queue per agent, or one joint queue.

    Args:
        capacity: transitions kept per queue (B_m^TU = 2000 in seed 000 §VI).
        fields: name -> (shape of one entry, dtype), in the order ``add`` documents them.
        n_queues: A independent per-agent queues, or None for one joint queue.
        device: where the tensors live.

    Shapes: ``add(**values)`` takes every field as ``(B, A, *shape)`` (per-agent queues) or
    ``(B, *shape)`` (joint queue), environment axis first as an env returns them; a 0-d value
    is broadcast. ``sample`` returns a dict of ``(A, batch, *shape)`` or ``(batch, *shape)``.
    The storage is ``storage[name]``, ``(Q, capacity, *shape)``.
    """

    def __init__(
        self,
        capacity: int,
        fields: Mapping[str, FieldSpec],
        *,
        n_queues: int | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        if int(capacity) < 1:
            raise ConfigError(f"capacity must be >= 1, got {capacity}")
        if n_queues is not None and int(n_queues) < 1:
            raise ConfigError(f"n_queues must be >= 1 or None, got {n_queues}")
        if not fields:
            raise ConfigError("a replay buffer needs at least one field")
        self.capacity = int(capacity)
        self.n_queues = None if n_queues is None else int(n_queues)
        self.device = torch.device(device)
        self.specs = {
            name: (tuple(int(s) for s in shape), dtype) for name, (shape, dtype) in fields.items()
        }
        Q = self.n_queues or 1
        self.storage = {
            name: torch.zeros(Q, self.capacity, *shape, device=self.device, dtype=dtype)
            for name, (shape, dtype) in self.specs.items()
        }
        self.position = 0  # next row to write
        self.size = 0  # filled rows per queue
        self.n_added = 0  # transitions ever written per queue

    def __len__(self) -> int:
        """Transitions currently stored per queue."""
        return self.size

    def _leading(self, batch: int) -> tuple[int, ...]:
        return (batch,) if self.n_queues is None else (batch, self.n_queues)

    def _checked(self, name: str, value: Any, batch: int) -> torch.Tensor:
        shape, dtype = self.specs[name]
        value = torch.as_tensor(value, device=self.device).detach().to(dtype)
        expected = (*self._leading(batch), *shape)
        if value.ndim == 0:
            return value.expand(expected)
        if tuple(value.shape) != expected:
            raise ShapeError(f"{name} must be {expected}, got {tuple(value.shape)}")
        return value

    def add(self, **values: Any) -> None:
        """Store B transitions per queue (every declared field, see the class docstring).

        A FIFO of this size keeps only the newest ``capacity`` of the B new transitions.
        """
        missing, unknown = self.specs.keys() - values.keys(), values.keys() - self.specs.keys()
        if missing or unknown:
            raise ShapeError(f"add needs the fields {list(self.specs)}, got {sorted(values)}")
        first = torch.as_tensor(values[next(iter(self.specs))])
        batch = first.shape[0] if first.ndim else 1
        checked = {name: self._checked(name, values[name], batch) for name in self.specs}
        skipped = max(0, batch - self.capacity)
        batch -= skipped
        self.position = (self.position + skipped) % self.capacity
        rows = (self.position + torch.arange(batch, device=self.device)) % self.capacity
        for name, value in checked.items():
            value = value[skipped:]
            if self.n_queues is None:
                self.storage[name][0, rows] = value
            else:
                self.storage[name][:, rows] = value.transpose(0, 1)
        self.position = (self.position + batch) % self.capacity
        self.size = min(self.size + batch, self.capacity)
        self.n_added += batch + skipped

    def sample(
        self, batch_size: int, generator: torch.Generator, *, replacement: bool = True
    ) -> dict[str, torch.Tensor]:
        """``batch_size`` stored transitions per queue, uniformly and independently per queue.

        Args:
            batch_size: rows per queue (at most the number stored without replacement).
            generator: source of the draw (its device draws the rows).
            replacement: True (default): independent uniform rows, as in the usual DQN replay
                buffers (Mnih et al. 2015; Stable-Baselines3 / CleanRL ``ReplayBuffer``), one
                cheap ``randint``. False: distinct rows (sampling without replacement).

        Returns:
            name -> ``(A, batch_size, *shape)`` (per-agent queues) or ``(batch_size, *shape)``.
        """
        if self.size == 0 or batch_size < 1 or (not replacement and batch_size > self.size):
            most = "" if replacement else f", at most {self.size} without replacement"
            raise ConfigError(
                f"cannot sample {batch_size} rows from {self.size} stored transitions (need >= 1 "
                f"stored and batch_size >= 1{most})"
            )
        Q = self.n_queues or 1
        if replacement:
            rows = torch.randint(
                0, self.size, (Q, batch_size), generator=generator, device=generator.device
            )
        else:  # the batch_size smallest of iid uniform keys: a uniform subset, per queue
            keys = torch.rand(Q, self.size, generator=generator, device=generator.device)
            rows = keys.topk(batch_size, dim=-1, largest=False, sorted=False).indices
        # flat row numbers q * capacity + row: one index_select per field (a gather with an
        # index expanded over the entry's shape is several times slower)
        flat = rows.to(self.device) + self.capacity * torch.arange(Q, device=self.device)[:, None]
        flat = flat.reshape(-1)
        batch = {}
        for name, (shape, _) in self.specs.items():
            data = self.storage[name].view(Q * self.capacity, *shape).index_select(0, flat)
            data = data.view(Q, batch_size, *shape)
            batch[name] = data[0] if self.n_queues is None else data
        return batch

    def state_dict(self) -> dict[str, Any]:
        """Contents (tensors) and write position (ints), for checkpoints."""
        return {
            **{name: value.clone() for name, value in self.storage.items()},
            "position": self.position,
            "size": self.size,
            "n_added": self.n_added,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (same fields, queues and capacity)."""
        for name, value in self.storage.items():
            if name not in state or tuple(state[name].shape) != tuple(value.shape):
                saved = None if name not in state else tuple(state[name].shape)
                raise ShapeError(
                    f"replay state holds {name} {saved}, this buffer {tuple(value.shape)} "
                    "(queues, capacity, *shape)"
                )
        for name, value in self.storage.items():
            value.copy_(state[name])
        self.position, self.size = int(state["position"]), int(state["size"])
        self.n_added = int(state.get("n_added", self.size))


# ---------------------------------------------------------------------------------------------
# On-policy trajectories (Algorithm 4's collector xi_n^BS)
# ---------------------------------------------------------------------------------------------
@dataclass
class Trajectory:
    """T slots of experience <o_i, a_i, r_i, o_{i+1}, c_i> for all N agents in B environments.

    Attributes:
        obs: (T, B, N, D) float o_i.
        actions: (T, B, N, d) float a_i in [0, 1].
        rewards: (T, B, N) float r_i.
        costs: (T, B, N, L) float c_i.
        next_obs: (T, B, N, D) float o_{i+1}.
        terminated: optional (T, B) bool, o_{i+1} is terminal (its value is 0).
        truncated: optional (T, B) bool, the episode was cut after slot i (o_{i+1} is still
            bootstrapped; GAE does not chain across the cut).
    """

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    costs: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor | None = None
    truncated: torch.Tensor | None = None

    @property
    def n_slots(self) -> int:
        return self.obs.shape[0]

    @property
    def n_envs(self) -> int:
        return self.obs.shape[1]

    def check(self, n_agents: int, obs_dim: int, act_dim: int, n_costs: int) -> None:
        """Raise :class:`ShapeError` unless the shapes match the documented layout."""
        if self.obs.ndim != 4:
            raise ShapeError(f"obs must be (T, B, N, D), got {tuple(self.obs.shape)}")
        T, B = self.obs.shape[:2]
        expected = {
            "obs": (T, B, n_agents, obs_dim),
            "actions": (T, B, n_agents, act_dim),
            "rewards": (T, B, n_agents),
            "costs": (T, B, n_agents, n_costs),
            "next_obs": (T, B, n_agents, obs_dim),
            "terminated": (T, B),
            "truncated": (T, B),
        }
        for name, shape in expected.items():
            value = getattr(self, name)
            if value is not None and tuple(value.shape) != shape:
                raise ShapeError(f"trajectory {name} must be {shape}, got {tuple(value.shape)}")

    def episode_ends(self) -> torch.Tensor | None:
        """(T, B) bool: terminated or truncated, or None when neither is given."""
        ends = [x.bool() for x in (self.terminated, self.truncated) if x is not None]
        if not ends:
            return None
        return ends[0] | ends[1] if len(ends) == 2 else ends[0]

    def to(self, device: torch.device | str) -> Trajectory:
        return Trajectory(
            **{
                f.name: None if getattr(self, f.name) is None else getattr(self, f.name).to(device)
                for f in dataclass_fields(self)
            }
        )


class TrajectoryCollector:
    """The trajectory collector xi^BS of size B_m^BS (Algorithm 4 lines 22-24), all agents at once.

    ``add`` stores one slot (batch-first tensors as the env gives them); once ``full``,
    ``pop()`` returns the stacked :class:`Trajectory` and empties the collector.
    """

    _FIELDS = ("obs", "actions", "rewards", "costs", "next_obs", "terminated", "truncated")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ConfigError(f"collector capacity (B_m^BS) must be >= 1, got {capacity}")
        self.capacity = capacity
        self._slots: list[dict[str, torch.Tensor | None]] = []

    def __len__(self) -> int:
        return len(self._slots)

    @property
    def full(self) -> bool:
        return len(self._slots) >= self.capacity

    def add(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        costs: torch.Tensor,
        next_obs: torch.Tensor,
        terminated: torch.Tensor | None = None,
        truncated: torch.Tensor | None = None,
    ) -> None:
        """Store slot i: obs (B, N, D), actions (B, N, d), rewards (B, N), costs (B, N, L),
        next_obs (B, N, D), terminated/truncated (B,) bool or None."""
        if self.full:
            raise RuntimeError(f"collector is full ({self.capacity} slots); call pop() first")
        slot = {
            "obs": obs,
            "actions": actions,
            "rewards": rewards,
            "costs": costs,
            "next_obs": next_obs,
            "terminated": terminated,
            "truncated": truncated,
        }
        if self._slots:
            for name, value in slot.items():
                if (value is None) != (self._slots[0][name] is None):
                    raise ShapeError(f"collector field {name} given in some slots only")
        self._slots.append({k: None if v is None else v.detach().clone() for k, v in slot.items()})

    def trajectory(self) -> Trajectory:
        """The stored slots stacked time first (without emptying the collector)."""
        if not self._slots:
            raise RuntimeError("collector is empty")
        return Trajectory(
            **{
                name: None
                if self._slots[0][name] is None
                else torch.stack([slot[name] for slot in self._slots])
                for name in self._FIELDS
            }
        )

    def pop(self) -> Trajectory:
        trajectory = self.trajectory()
        self.clear()
        return trajectory

    def clear(self) -> None:
        self._slots = []

    def state_dict(self) -> dict[str, Any]:
        """Stored slots (stacked) for checkpoints."""
        if not self._slots:
            return {"capacity": self.capacity, "trajectory": None}
        return {"capacity": self.capacity, "trajectory": vars(self.trajectory())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.capacity = int(state["capacity"])
        self.clear()
        stacked = state["trajectory"]
        if stacked is None:
            return
        if stacked["obs"].shape[0] > self.capacity:
            raise ValueError(
                f"the saved trajectory holds {stacked['obs'].shape[0]} slots, more than the "
                f"collector's capacity {self.capacity}"
            )
        for i in range(stacked["obs"].shape[0]):
            self._slots.append({k: None if v is None else v[i] for k, v in stacked.items()})


def to_agent_major(x: torch.Tensor) -> torch.Tensor:
    """(T, B, N, ...) -> (N, T*B, ...), sample s = t*B + b."""
    T, B, N = x.shape[:3]
    return x.movedim(2, 0).reshape(N, T * B, *x.shape[3:])


def from_agent_major(x: torch.Tensor, n_slots: int, n_envs: int) -> torch.Tensor:
    """(N, T*B, ...) -> (T, B, N, ...), the inverse of :func:`to_agent_major`."""
    return x.reshape(x.shape[0], n_slots, n_envs, *x.shape[2:]).movedim(0, 2)
