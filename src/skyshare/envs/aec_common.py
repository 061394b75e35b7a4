"""What the PettingZoo AEC adapters of the batched game cores share (CATN, TN-NTN).

Each adapter wraps one realization (B = 1) of a tensor core with named agents. This base holds
the parts that do not depend on the game: the space lookups by agent name, the episode
bookkeeping PettingZoo expects after ``reset``, the opening of ``step`` (no episode, dead
agents), rendering and closing. An adapter sets ``possible_agents``, ``observation_spaces``,
``action_spaces`` and ``_agent_positions`` (agent name -> its position in the core, e.g.
``("tu", 3)`` or ``(n, m)``) and describes its agents in :meth:`_agent_names`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pettingzoo import AECEnv
from pettingzoo.utils import AgentSelector

from skyshare.errors import ConfigError, UnknownNameError

__all__ = ["CoreAECEnv", "to_numpy"]


class CoreAECEnv(AECEnv):
    """AEC environment over one realization of a batched core (see the module docstring).

    Args:
        what: the game's name for messages (e.g. ``"CATN"``).
        render_mode: only None (the cores draw nothing).
    """

    possible_agents: list[str]
    observation_spaces: dict[str, Any]
    action_spaces: dict[str, Any]
    _agent_positions: dict[str, Any]

    def __init__(self, what: str, render_mode: str | None = None) -> None:
        super().__init__()
        if render_mode is not None:
            raise ConfigError(
                f"render_mode must be None ({what} draws nothing), got {render_mode!r}"
            )
        self.render_mode = render_mode
        self.agents: list[str] = []
        self._agent_selector = AgentSelector([])  # filled with possible_agents at each reset
        self._has_reset = False

    def _agent_names(self) -> str:
        """The agents for an error message, e.g. ``"tu_0..tu_6 and bs_0..bs_2"``."""
        return f"{self.possible_agents[0]} .. {self.possible_agents[-1]}"

    def _locate(self, agent: str) -> Any:
        """The position of a named agent in the core; :class:`UnknownNameError` otherwise."""
        try:
            return self._agent_positions[agent]
        except (KeyError, TypeError):
            raise UnknownNameError(
                f"unknown agent {agent!r}; agents are {self._agent_names()}"
            ) from None

    def observation_space(self, agent: str) -> Any:
        self._locate(agent)
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> Any:
        self._locate(agent)
        return self.action_spaces[agent]

    def _start_episode(self, infos: dict[str, dict[str, Any]]) -> None:
        """Every agent alive with zero rewards and the given infos (PettingZoo's episode
        bookkeeping after a core reset)."""
        self._has_reset = True
        self.agents = list(self.possible_agents)
        self.rewards = {a: 0.0 for a in self.agents}
        self._cumulative_rewards = {a: 0.0 for a in self.agents}
        self.terminations = {a: False for a in self.agents}
        self.truncations = {a: False for a in self.agents}
        self.infos = infos
        self._skip_agent_selection = None

    def _start_turns(self) -> None:
        """The first agent of the episode is up (after the adapter has set its buffers)."""
        self._agent_selector.reinit(self.possible_agents)
        self.agent_selection = self._agent_selector.reset()

    def _acting_agent(self, action: Any) -> str | None:
        """The opening of ``step``: the agent whose action this is, or None when the agent is
        dead (PettingZoo's ``_was_dead_step`` has then handled the call). The adapter checks the
        action, then zeroes the agent's cumulative reward (so a refused action leaves it)."""
        if not self.agents:
            raise RuntimeError(
                "no episode is running (not started, or all agents are done): call reset()"
            )
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return None
        return agent

    def _next_agent(self) -> None:
        """The closing of ``step``: pass on to the next agent and accumulate its rewards."""
        self.agent_selection = self._agent_selector.next()
        self._accumulate_rewards()

    def _require_reset(self, what: str) -> None:
        if not self._has_reset:
            raise RuntimeError(f"call reset() before {what}()")

    def render(self) -> None:
        """Nothing to draw (render_mode is None)."""
        return None

    def close(self) -> None:
        """Nothing to release (the core holds only tensors)."""


def to_numpy(x: torch.Tensor) -> np.ndarray:
    """A real tensor as a float32 NumPy array on the CPU."""
    return x.detach().to(device="cpu", dtype=torch.float32).numpy()
