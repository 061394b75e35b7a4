"""A ledger of the real scalars that agents receive from other agents.

Every non-local value that enters an observation (or a solver's input) is handed to the ledger
as the tensor that is actually delivered, ``(B, n_receivers, ...)``; the ledger counts its real
scalars per receiver (complex entries count twice). The information-exchange overhead that the
papers tabulate (seed 000 Table I) is therefore measured from the data moved, not recomputed from
a formula.

Messages have a fixed layout: an entry that a sender has nothing for (zero padding of a set
smaller than its nominal size) is still transmitted, as in Table I. The ledger is a leaf utility
(it depends on torch only), so environments, solvers and experiments can all use it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch

__all__ = ["SignalingLedger"]


class SignalingLedger:
    """Counts received real scalars per agent, per slot and per category.

    Args:
        agents: number of agents of each kind, e.g. ``{"bs": 7, "tu": 21}``.
        batch_size: B parallel environments (counts are kept per environment).

    Usage::

        ledger.receive("bs", "o_in", delivered)   # delivered: (B, N, ...) tensor
        counts = ledger.close_slot()              # {(kind, category): (B, n) counts}
        ledger.per_agent_per_slot()               # mean scalars per agent and slot
    """

    def __init__(self, agents: dict[str, int], batch_size: int) -> None:
        self.agents = dict(agents)
        self.batch_size = batch_size
        self._current: dict[tuple[str, str], torch.Tensor] = {}
        self._totals: dict[tuple[str, str], torch.Tensor] = defaultdict(
            lambda: torch.zeros(0, dtype=torch.float64)
        )
        self.slots = 0

    def receive(
        self, kind: str, category: str, delivered: torch.Tensor, *, receivers: int | None = None
    ) -> None:
        """Record that every agent of ``kind`` received ``delivered[b, agent, ...]``.

        Args:
            kind: agent kind (a key of ``agents``).
            category: what the scalars are for, e.g. ``"o_in"``, ``"global_csi"``.
            delivered: (B, n_agents, ...) tensor, the data delivered to each agent; its trailing
                numel (x2 if complex) is the count per agent.
        """
        if kind not in self.agents:
            raise KeyError(f"unknown agent kind {kind!r}; known: {', '.join(self.agents)}")
        n = self.agents[kind] if receivers is None else receivers
        if delivered.ndim < 2 or delivered.shape[:2] != (self.batch_size, n):
            raise ValueError(
                f"delivered must be (B={self.batch_size}, {kind} agents={n}, ...), "
                f"got {tuple(delivered.shape)}"
            )
        per_agent = delivered[0, 0].numel() * (2 if delivered.is_complex() else 1)
        self.receive_count(kind, category, torch.full((self.batch_size, n), float(per_agent)))

    def receive_count(self, kind: str, category: str, counts: torch.Tensor) -> None:
        """Add per-agent scalar counts ``counts (B, n_agents)`` directly."""
        key = (kind, category)
        counts = counts.to(torch.float64).cpu()
        self._current[key] = self._current.get(key, torch.zeros_like(counts)) + counts

    def close_slot(self) -> dict[tuple[str, str], torch.Tensor]:
        """End the slot: return its counts ``{(kind, category): (B, n)}`` and add them up."""
        current, self._current = self._current, {}
        for key, counts in current.items():
            total = self._totals[key]
            self._totals[key] = counts.clone() if total.numel() == 0 else total + counts
        self.slots += 1
        return current

    def per_agent_per_slot(self) -> dict[tuple[str, str], float]:
        """Mean real scalars received per agent and slot, per (kind, category), over all slots."""
        if self.slots == 0:
            return {}
        return {key: float(total.mean()) / self.slots for key, total in self._totals.items()}

    def per_kind_per_slot(self) -> dict[str, float]:
        """Mean real scalars received per agent and slot, summed over categories, per kind."""
        out: dict[str, float] = defaultdict(float)
        for (kind, _), value in self.per_agent_per_slot().items():
            out[kind] += value
        return dict(out)

    def state_dict(self) -> dict[str, Any]:
        """Counts so far: ``{"slots", "current", "totals"}`` with (kind, category) keys
        written as ``"kind/category"`` (tensors, numbers and strings only)."""
        return {
            "slots": self.slots,
            "current": {"/".join(key): value for key, value in self._current.items()},
            "totals": {"/".join(key): value for key, value in self._totals.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.reset()
        self.slots = int(state["slots"])
        for name, target in (("current", self._current), ("totals", self._totals)):
            for key, value in state[name].items():
                kind, category = key.split("/", 1)
                target[(kind, category)] = value.to(torch.float64).cpu()

    def reset(self) -> None:
        """Forget all counts."""
        self._current.clear()
        self._totals.clear()
        self.slots = 0
