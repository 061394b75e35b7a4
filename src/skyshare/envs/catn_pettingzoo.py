"""PettingZoo AEC adapter of the CATN game (seed 000 §V-B to §V-E, Algorithm 4).

One realization of :class:`~skyshare.envs.catn.CatnEnv` (the batched core with B = 1) with named
agents ``tu_0 .. tu_{K-1}`` and ``bs_0 .. bs_{N-1}``. The paper's two turns per slot are kept as
the agent-environment cycle (AEC): in every slot all TUs act first, in index order, then all BSs
(Algorithm 4, lines 16 and 26):

* when ``tu_{K-1}`` has acted, the core's ``associate`` runs with the K collected BS choices and
  the BS observations (8) of the slot become available;
* when ``bs_{N-1}`` has acted, the core's ``beamform`` runs with the N collected actions (9): the
  TU rewards (15) go to the ``tu`` agents, the BS rewards (10) to the ``bs`` agents (each agent
  sees its reward at its next turn, through ``last()``), the costs (11) go to
  ``infos[bs_n]["cost"]`` and the TU observations (14) of the next slot become available.

Usage::

    env = make_catn_aec("quick", overrides={"n_slots": 100})
    env.reset(seed=0)
    for agent in env.agent_iter():
        obs, reward, terminated, truncated, info = env.last()
        action = None if terminated or truncated else env.action_space(agent).sample()
        env.step(action)
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium
import numpy as np
import torch

from skyshare.config import build_config
from skyshare.envs.aec_common import CoreAECEnv
from skyshare.envs.aec_common import to_numpy as _to_numpy
from skyshare.envs.catn import CatnEnv, CatnEnvConfig, SlotOutcome
from skyshare.errors import ShapeError
from skyshare.scenarios.catn import CatnConfig

__all__ = ["CatnAECEnv", "make_catn_aec"]


class CatnAECEnv(CoreAECEnv):
    """The CATN game as a PettingZoo ``AECEnv`` (one realization, two turns per slot).

    Args:
        scenario_config: :class:`CatnConfig` of the network; its ``n_slots`` is the episode
            horizon (slot 0 is played with random actions inside ``reset``, so an episode has
            ``n_slots - 1`` slots in which the agents act). The ``paper`` preset when omitted.
        config: :class:`CatnEnvConfig` of the game (or a mapping of its fields).
        device, dtype: where and in which precision the core computes. Observations, states
            and costs are returned as float32 NumPy arrays whatever ``dtype`` is.
        render_mode: only ``None`` (the environment draws nothing).

    Spaces (the paper's dimensions):
        ``tu_k``: action ``Discrete(N)`` (the BS index, §V-D-3); observation
        ``Box(-inf, inf, (3N+4,), float32)`` (14).
        ``bs_n``: action ``Box(0, 1, (2K+L+2,), float32)`` (9), mapped to the beamformer
        parameters by the core; observation ``Box(-inf, inf, (D,), float32)`` (8) with
        ``D = core.bs_obs_dim``.
        ``state_space``: ``Box(-inf, inf, (2KN+LN+3K,), float32)``, see :meth:`state`.

    Observations: ``observe(tu_k)`` is the TU's observation of the current slot (after the last
    slot of an episode, the observation of the final state). ``observe(bs_n)`` is the
    observation of the latest association; between ``reset`` and the first association of an
    episode it is all zeros (not the previous episode's, so that ``reset(seed)`` alone fixes
    every observation).

    Infos: ``infos[bs_n]["cost"]``: (L,) float32, the costs c_{n,l} = rho_l / I_max - 1 (11) of
    the latest slot (zeros after ``reset``, like the reward). TU agents carry no constraint in
    the paper, so ``infos[tu_k]["cost"]`` is an empty (0,) array (the key exists for every
    agent); after a slot the TU infos also hold ``rate`` (R_k, bit/s/Hz), ``effective_rate``
    (R~_k of (16)) and ``handover`` (bool). ``last_outcome`` keeps the core's full
    :class:`SlotOutcome` of the latest slot.

    Seeding: ``reset(seed=s)`` resets the core with seed ``s``. ``reset()`` without a seed uses
    the scenario's ``seed`` the first time, then draws a fresh episode seed from the core's
    generator, so that successive episodes differ and the whole sequence is reproducible
    (Gymnasium's convention: ``seed=None`` continues the random stream).
    """

    metadata: ClassVar[dict[str, Any]] = {
        "name": "catn_aec_v0",
        "render_modes": [],
        "is_parallelizable": False,
    }

    def __init__(
        self,
        scenario_config: CatnConfig | None = None,
        config: CatnEnvConfig | dict[str, Any] | None = None,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        render_mode: str | None = None,
    ) -> None:
        super().__init__("CATN", render_mode)
        if isinstance(config, dict):
            config = CatnEnvConfig.from_dict(config, what="catn env")
        self.core = CatnEnv(scenario_config, config, batch_size=1, device=device, dtype=dtype)
        K, N, core = self.core.K, self.core.N, self.core
        self.tu_agents = [f"tu_{k}" for k in range(K)]
        self.bs_agents = [f"bs_{n}" for n in range(N)]
        self.possible_agents = self.tu_agents + self.bs_agents
        self._agent_positions = {name: ("tu", k) for k, name in enumerate(self.tu_agents)}
        self._agent_positions.update({name: ("bs", n) for n, name in enumerate(self.bs_agents)})

        # One space object per agent, so that seeding one agent's space leaves the others alone.
        def unbounded(dim: int) -> gymnasium.spaces.Box:
            return gymnasium.spaces.Box(-np.inf, np.inf, (dim,), np.float32)

        self.observation_spaces = {a: unbounded(core.tu_obs_dim) for a in self.tu_agents}
        self.observation_spaces.update({a: unbounded(core.bs_obs_dim) for a in self.bs_agents})
        self.action_spaces = {a: gymnasium.spaces.Discrete(N) for a in self.tu_agents}
        self.action_spaces.update(
            {
                a: gymnasium.spaces.Box(0.0, 1.0, (core.action_dim,), np.float32)
                for a in self.bs_agents
            }
        )
        self.state_space = gymnasium.spaces.Box(-np.inf, np.inf, (core.state_dim,), np.float32)

        self.last_outcome: SlotOutcome | None = None

    def _agent_names(self) -> str:
        return f"tu_0..tu_{self.core.K - 1} and bs_0..bs_{self.core.N - 1}"

    # ---------------------------------------------------------------------------------------
    # Episode control
    # ---------------------------------------------------------------------------------------

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        """Start an episode: slot 0 is played with random actions by the core (Algorithm 4
        lines 5-6), then ``tu_0`` is the first to act in slot 1. ``options`` is unused."""
        tu_obs = self.core.reset(seed)  # seed None: the core continues its random stream
        core = self.core
        infos = {a: {"cost": np.zeros(0, dtype=np.float32)} for a in self.tu_agents}
        infos.update({a: {"cost": np.zeros(core.L, dtype=np.float32)} for a in self.bs_agents})
        self._start_episode(infos)

        self._tu_observations = _to_numpy(tu_obs[0])  # (K, 3N+4)
        self._bs_observations = np.zeros((core.N, core.bs_obs_dim), dtype=np.float32)
        self._tu_actions = torch.zeros(1, core.K, dtype=torch.long, device=core.device)
        self._bs_actions = torch.zeros(
            1, core.N, core.action_dim, dtype=core.dtype, device=core.device
        )
        self.last_outcome = None
        self._start_turns()

    def step(self, action: Any) -> None:
        """Record the action of ``agent_selection``; close the turn when it is the last TU
        (association) or the last BS (transmission, rewards, costs); pass on to the next agent.

        Raises ValueError naming the agent (and, for a BS, the action field) for a NaN or
        out-of-range action, and ShapeError for a wrongly shaped one; the environment is left
        as it was, so the agent may act again.
        """
        agent = self._acting_agent(action)
        if agent is None:
            return
        kind, index = self._locate(agent)
        if kind == "tu":
            self._tu_actions[0, index] = self._checked_tu_action(agent, index, action)
        else:
            self._bs_actions[0, index] = self._checked_bs_action(agent, index, action)
        self._cumulative_rewards[agent] = 0.0

        # The core keeps the association tensor it is given (as slot t-1's record in the next
        # slot), so it gets copies of the action buffers, which are refilled every slot.
        if agent == self.tu_agents[-1]:
            bs_obs = self.core.associate(self._tu_actions.clone())
            self._bs_observations = _to_numpy(bs_obs[0])
            self._clear_rewards()
        elif agent == self.bs_agents[-1]:
            self._finish_slot(self.core.beamform(self._bs_actions.clone()))
        else:
            self._clear_rewards()
        self._next_agent()

    def _finish_slot(self, outcome: SlotOutcome) -> None:
        """Hand out rewards (15), (10), costs (11) and the TU observations of the next slot."""
        self.last_outcome = outcome
        tu_reward = outcome.tu_reward[0].tolist()
        bs_reward = outcome.bs_reward[0].tolist()
        cost = _to_numpy(outcome.cost[0])  # (N, L)
        rate = outcome.rates[0].tolist()
        effective = outcome.effective_rates[0].tolist()
        changed = [bool(x) for x in self.core.handover[0].tolist()]  # set by associate()
        for k, name in enumerate(self.tu_agents):
            self.rewards[name] = tu_reward[k]
            self.infos[name] = {
                "cost": np.zeros(0, dtype=np.float32),
                "rate": rate[k],
                "effective_rate": effective[k],
                "handover": changed[k],
            }
        for n, name in enumerate(self.bs_agents):
            self.rewards[name] = bs_reward[n]
            self.infos[name] = {"cost": cost[n].copy()}
        self._tu_observations = _to_numpy(outcome.tu_obs[0])
        if outcome.truncated:
            self.truncations = {a: True for a in self.agents}

    # ---------------------------------------------------------------------------------------
    # Actions: the core's own checks, applied as soon as the agent acts
    # ---------------------------------------------------------------------------------------

    def _checked_tu_action(self, agent: str, index: int, action: Any) -> int:
        """A TU action as a BS index; the core's check names ``tu_k`` if it is invalid."""
        value = _numeric_array(agent, action)
        if value.size != 1 or value.ndim > 1:
            raise ShapeError(
                f"{agent}: the action must be one BS index in [0, {self.core.N - 1}], "
                f"got an array of shape {value.shape}"
            )
        trial_dtype = torch.float64 if value.dtype.kind == "f" else torch.long
        trial = torch.zeros(1, self.core.K, dtype=trial_dtype, device=self.core.device)
        trial[0, index] = torch.as_tensor(value.reshape(()).item(), dtype=trial_dtype)
        return int(self.core.check_tu_actions(trial)[0, index])

    def _checked_bs_action(self, agent: str, index: int, action: Any) -> torch.Tensor:
        """A BS action (2K+L+2,) in [0, 1]; the core's check names ``bs_n`` and the field
        (q_total, q_k, alpha_k, eta, mu_l) if it is NaN or out of range."""
        value = _numeric_array(agent, action)
        if value.shape != (self.core.action_dim,):
            raise ShapeError(
                f"{agent}: the action must have shape (2K+L+2,) = ({self.core.action_dim},), "
                f"got {value.shape}"
            )
        core = self.core
        trial = torch.zeros(1, core.N, core.action_dim, dtype=core.dtype, device=core.device)
        trial[0, index] = torch.as_tensor(value, dtype=core.dtype)
        return core.check_bs_actions(trial)[0, index]

    # ---------------------------------------------------------------------------------------
    # Observations, state, rendering
    # ---------------------------------------------------------------------------------------

    def observe(self, agent: str) -> np.ndarray:
        """The agent's latest observation: (3N+4,) for a TU, (D,) for a BS, float32."""
        kind, index = self._locate(agent)
        self._require_reset("observe")
        source = self._tu_observations if kind == "tu" else self._bs_observations
        return source[index].copy()

    def state(self) -> np.ndarray:
        """Global state for centralised critics, ``core.global_state()[0]``: (2KN+LN+3K,)
        float32 (channel strengths to TUs and AUs, association, last slot's powers, rates and
        interference plus noise)."""
        self._require_reset("state")
        return _to_numpy(self.core.global_state()[0])


def make_catn_aec(
    preset: str | None = "quick",
    overrides: list[str] | dict[str, Any] | None = None,
    **core_kwargs: Any,
) -> CatnAECEnv:
    """The CATN AEC environment from a scenario preset and ``key=value`` overrides.

    Args:
        preset: a ``catn`` preset (``"quick"``, ``"paper"``) or None for the config defaults.
        overrides: scenario overrides, e.g. ``{"n_slots": 50}`` or ``["n_tu=7", "ura_rows=2"]``.
        **core_kwargs: passed to :class:`CatnAECEnv` (``config``, ``device``, ``dtype``).
    """
    scenario_config = build_config(CatnConfig, "catn", preset=preset, overrides=overrides)
    return CatnAECEnv(scenario_config, **core_kwargs)


def _numeric_array(agent: str, action: Any) -> np.ndarray:
    """``action`` as a NumPy array of numbers, or a ShapeError naming the agent."""
    if action is None:
        raise ShapeError(f"{agent} is alive: its action must not be None")
    value = np.asarray(action)
    if value.dtype.kind not in "biuf":
        raise ShapeError(f"{agent}: the action must be numeric, got dtype {value.dtype}")
    return value
