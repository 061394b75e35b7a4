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

    A fixed-layout message gives every receiver the same count, so :meth:`receive` keeps it as
    one number per (kind, category) and builds no tensor; counts become (B, n) tensors only
    when a per-agent count (:meth:`receive_count`) joins them, or when they are read
    (:meth:`close_slot`'s result, :meth:`state_dict`). A CATN slot thereby dispatches no tensor
    operation for its five fixed-layout messages.
    """

    def __init__(self, agents: dict[str, int], batch_size: int) -> None:
        self.agents = dict(agents)
        self.batch_size = batch_size
        # (kind, category) -> a count for every receiver (float) or per receiver (B, n) float64
        self._current: dict[tuple[str, str], float | torch.Tensor] = {}
        self._totals: dict[tuple[str, str], float | torch.Tensor] = {}
        self._shapes: dict[tuple[str, str], tuple[int, int]] = {}
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
        self._add_current((kind, category), float(per_agent), (self.batch_size, n))

    def receive_count(self, kind: str, category: str, counts: torch.Tensor) -> None:
        """Add per-agent scalar counts ``counts (B, n_agents)`` directly."""
        counts = counts.to(torch.float64).cpu()
        if counts.ndim != 2:
            raise ValueError(f"counts must be (B, n_agents), got {tuple(counts.shape)}")
        self._add_current((kind, category), counts, (counts.shape[0], counts.shape[1]))

    def close_slot(self) -> dict[tuple[str, str], torch.Tensor]:
        """End the slot: return its counts ``{(kind, category): (B, n)}`` and add them up."""
        current, self._current = self._current, {}
        for key, counts in current.items():
            total = self._totals.get(key)
            self._totals[key] = counts if total is None else _plus(total, counts)
        self.slots += 1
        return {key: self._tensor(key, counts) for key, counts in current.items()}

    def per_agent_per_slot(self) -> dict[tuple[str, str], float]:
        """Mean real scalars received per agent and slot, per (kind, category), over all slots."""
        if self.slots == 0:
            return {}
        return {
            key: (total if isinstance(total, float) else float(total.mean())) / self.slots
            for key, total in self._totals.items()
        }

    def per_kind_per_slot(self) -> dict[str, float]:
        """Mean real scalars received per agent and slot, summed over categories, per kind."""
        out: dict[str, float] = defaultdict(float)
        for (kind, _), value in self.per_agent_per_slot().items():
            out[kind] += value
        return dict(out)

    def state_dict(self) -> dict[str, Any]:
        """Counts so far: ``{"slots", "current", "totals"}`` with (kind, category) keys
        written as ``"kind/category"`` ((B, n) float64 tensors, numbers and strings only)."""
        return {
            "slots": self.slots,
            "current": {"/".join(key): self._tensor(key, v) for key, v in self._current.items()},
            "totals": {"/".join(key): self._tensor(key, v) for key, v in self._totals.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.reset()
        self.slots = int(state["slots"])
        for name, target in (("current", self._current), ("totals", self._totals)):
            for key, value in state[name].items():
                kind, category = key.split("/", 1)
                counts = value.to(torch.float64).cpu()
                if counts.ndim != 2:
                    raise ValueError(
                        f"ledger {name} counts of {key!r} must be (B, n), got {tuple(counts.shape)}"
                    )
                target[(kind, category)] = counts
                self._shapes[(kind, category)] = (counts.shape[0], counts.shape[1])

    def reset(self) -> None:
        """Forget all counts."""
        self._current.clear()
        self._totals.clear()
        self._shapes.clear()
        self.slots = 0

    def _add_current(
        self, key: tuple[str, str], counts: float | torch.Tensor, shape: tuple[int, int]
    ) -> None:
        known = self._shapes.setdefault(key, shape)
        if known != shape:
            raise ValueError(
                f"{key[0]}/{key[1]} counts were recorded for (B, n) = {known}, now {shape}"
            )
        current = self._current.get(key)
        self._current[key] = counts if current is None else _plus(current, counts)

    def _tensor(self, key: tuple[str, str], counts: float | torch.Tensor) -> torch.Tensor:
        """``counts`` as a (B, n) float64 tensor (a fresh one for a uniform count)."""
        if isinstance(counts, float):
            return torch.full(self._shapes[key], counts, dtype=torch.float64)
        return counts


def _plus(a: float | torch.Tensor, b: float | torch.Tensor) -> float | torch.Tensor:
    """Sum of two counts; two uniform counts stay a number (no tensor operation)."""
    return a + b
