"""PettingZoo AEC adapter of the seed-001 TN-NTN game (§III, Fig. 2).

One realization of :class:`~skyshare.envs.tn_ntn.TnNtnEnv` (the batched core with B = 1) with
named agents: ``bs{n}_srb{m}`` (agent A_{n,m}, formulation ``"decomposed"``) or ``bs{n}``
(``"per_bs"``). The agent-environment cycle is turn-major: ``bs0_srb0, bs1_srb0, .., bs{N-1}_srb0,
bs0_srb1, ..``; when the last BS of turn m has acted, the core transmits SRB m and the agents of
turn m+1 receive their observations (with the accumulated rates Psi of the SRBs already
decided); when the last turn is done the frame is scored, every agent receives its group's
reward (10) (the per-BS agents reward (9)) and ``infos[agent]["cost"]``, and the next frame
begins. Truncation at the episode end (``horizon_slots`` frames).

Usage::

    env = make_tn_ntn_aec("quick")
    env.reset(seed=0)
    for agent in env.agent_iter():
        obs, reward, terminated, truncated, info = env.last()
        action = None if terminated or truncated else env.action_space(agent).sample(
            obs["action_mask"]
        )
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
from skyshare.envs.tn_ntn import TnNtnEnv, TnNtnStepResult
from skyshare.errors import ConfigError, ShapeError
from skyshare.scenarios.tn_ntn import TnNtnConfig, TnNtnScenario

__all__ = ["MaskedMultiDiscrete", "TnNtnAECEnv", "make_tn_ntn_aec"]


class MaskedMultiDiscrete(gymnasium.spaces.MultiDiscrete):
    """``MultiDiscrete`` whose ``sample(mask)`` also takes PettingZoo's array form of the action
    mask: one ``(S, n)`` int8 array (row s = the allowed choices of subchannel s) instead of
    Gymnasium's tuple of S rows."""

    def sample(self, mask: Any = None, probability: Any = None) -> np.ndarray:
        if isinstance(mask, np.ndarray) and mask.ndim == 2:
            mask = tuple(np.ascontiguousarray(row, dtype=np.int8) for row in mask)
        return super().sample(mask=mask, probability=probability)


class TnNtnAECEnv(CoreAECEnv):
    """The TN-NTN game as a PettingZoo ``AECEnv`` (one realization, turn-major agents).

    Args:
        scenario_config: :class:`TnNtnConfig` (the ``paper`` preset when omitted); its
            ``horizon_slots`` is the episode length in frames.
        formulation: ``"decomposed"`` (agents ``bs{n}_srb{m}``) or ``"per_bs"`` (``bs{n}``).
        inactive_action: ``"error"`` (choosing an inactive user slot raises) or ``"off"``.
        device, dtype: where and in which precision the core computes; observations, states and
            costs are float32 NumPy arrays.
        render_mode: only None.

    Spaces: action ``MaskedMultiDiscrete([K_max + 1] * S)`` (per subchannel of the agent's
    block: 0 off, k user slot k-1 of its BS); observation ``Dict(observation=Box(-inf, inf,
    (obs_dim,), float32), action_mask=Box(0, 1, (S, K_max + 1), int8))`` (PettingZoo's masking
    convention; the mask has one row per subchannel); ``state_space = Box(-inf, inf,
    (state_dim,), float32)``.

    Observations: an agent's observation and mask are those it received at the start of its
    latest turn (:meth:`TnNtnEnv.observe`); before its first turn of an episode, zeros and a
    mask allowing only 0 (so that ``reset(seed)`` alone fixes every observation).

    Rewards and infos: when a frame completes, ``bs{n}_srb{m}`` gets the reward (10) of its
    group G_m (``bs{n}`` the reward (9)); ``infos[agent]["cost"]`` is the sum of the costs (11)
    of its BS's users (Mbit/s, float) and ``infos[agent]["user_cost"]`` the (K_max,) float32
    costs per user slot; both are zero after ``reset``. ``last_result`` keeps the core's full
    :class:`TnNtnStepResult` of the latest frame.

    Seeding: ``reset(seed=s)`` resets the core with seed ``s``; ``reset()`` continues the
    core's random stream (new users every episode, see :meth:`TnNtnEnv.reset`).
    """

    metadata: ClassVar[dict[str, Any]] = {
        "name": "tn_ntn_aec_v0",
        "render_modes": [],
        "is_parallelizable": False,
    }

    def __init__(
        self,
        scenario_config: TnNtnConfig | None = None,
        *,
        formulation: str = "decomposed",
        inactive_action: str = "error",
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        render_mode: str | None = None,
    ) -> None:
        super().__init__("tn_ntn", render_mode)
        scenario = TnNtnScenario(scenario_config, batch_size=1, device=device, dtype=dtype)
        self.core = core = TnNtnEnv(
            scenario, formulation=formulation, inactive_action=inactive_action
        )
        N, M = core.n_bs, core.n_turns
        self._agent_positions = {core.agent_name(n, m): (n, m) for m in range(M) for n in range(N)}
        self.possible_agents = list(self._agent_positions)  # turn-major
        S, C = core.block_size, core.n_choices
        self.observation_spaces = {
            a: gymnasium.spaces.Dict(
                {
                    "observation": gymnasium.spaces.Box(
                        -np.inf, np.inf, (core.obs_dim,), np.float32
                    ),
                    "action_mask": gymnasium.spaces.Box(0, 1, (S, C), np.int8),
                }
            )
            for a in self.possible_agents
        }
        self.action_spaces = {a: MaskedMultiDiscrete([C] * S) for a in self.possible_agents}
        self.state_space = gymnasium.spaces.Box(-np.inf, np.inf, (core.state_dim,), np.float32)
        self.last_result: TnNtnStepResult | None = None

    # ---------------------------------------------------------------------------------------
    # Episode control
    # ---------------------------------------------------------------------------------------

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        """Start an episode at frame 0; ``bs0_srb0`` (or ``bs0``) acts first. ``options`` is
        unused."""
        core = self.core
        core.reset(seed)
        zero_cost = np.zeros(core.k_max, np.float32)
        self._start_episode({a: self._info(0.0, zero_cost.copy()) for a in self.possible_agents})
        S, C = core.block_size, core.n_choices
        off_only = np.zeros((S, C), dtype=np.int8)
        off_only[:, 0] = 1
        self._observations = {
            a: (np.zeros(core.obs_dim, dtype=np.float32), off_only.copy()) for a in self.agents
        }
        self._actions = torch.zeros(1, core.n_bs, S, dtype=torch.long, device=core.device)
        self.last_result = None
        self._store_turn_observations()
        self._start_turns()

    def step(self, action: Any) -> None:
        """Record the action of ``agent_selection``; after the last BS of a turn, the core
        transmits the turn's SRB (and, after the last turn, scores the frame).

        A wrong action raises (ShapeError for a wrong shape or a non-integer dtype, ConfigError
        for a value out of [0, K_max] or an inactive slot with ``inactive_action="error"``),
        naming the agent; the environment is left as it was, so the agent may act again.
        """
        agent = self._acting_agent(action)
        if agent is None:
            return
        n, _ = self._locate(agent)
        self._actions[0, n] = self._checked_action(agent, n, action)
        self._cumulative_rewards[agent] = 0.0
        if n == self.core.n_bs - 1:  # the turn's last agent: the core acts for the group
            result = self.core.act(self._actions.clone())
            if result is None:
                self._clear_rewards()
                self._store_turn_observations()
            else:
                self._finish_frame(result)
        else:
            self._clear_rewards()
        self._next_agent()

    def _finish_frame(self, result: TnNtnStepResult) -> None:
        self.last_result = result
        reward = result.reward[0].tolist()  # (M,) or (1,)
        cost = _to_numpy(result.cost[0])  # (N, K_max)
        for agent, (n, m) in self._agent_positions.items():
            self.rewards[agent] = float(reward[m])
            self.infos[agent] = self._info(float(cost[n].sum()), cost[n].copy())
        if bool(result.done[0]):
            self.truncations = {a: True for a in self.agents}
        else:
            self._store_turn_observations()

    @staticmethod
    def _info(cost: float, user_cost: np.ndarray) -> dict[str, Any]:
        return {"cost": cost, "user_cost": user_cost}

    def _store_turn_observations(self) -> None:
        """The observations and masks of the agents of the core's current turn."""
        turn = self.core.observe()
        obs = _to_numpy(turn.obs[0])  # (N, obs_dim)
        mask = turn.action_mask[0].to(device="cpu", dtype=torch.int8).numpy()  # (N, S, C)
        for n in range(self.core.n_bs):
            agent = self.core.agent_name(n, turn.turn)
            self._observations[agent] = (obs[n].copy(), mask[n].copy())

    def _checked_action(self, agent: str, n: int, action: Any) -> torch.Tensor:
        """The agent's action (S,) as a long tensor, checked by the core."""
        core = self.core
        if action is None:
            raise ShapeError(f"{agent} is alive: its action must not be None")
        value = np.asarray(action)
        if value.dtype.kind not in "iu":
            raise ShapeError(
                f"{agent}: the action must be integers in [0, K_max={core.k_max}] "
                f"(0 = off, k = user slot k-1), got dtype {value.dtype}"
            )
        if value.shape != (core.block_size,):
            raise ShapeError(
                f"{agent}: the action must have shape (S,) = ({core.block_size},), "
                f"got {value.shape}"
            )
        bad = np.flatnonzero((value < 0) | (value > core.k_max))
        if bad.size:  # checked here too: a huge unsigned value would not survive int64
            s = int(bad[0])
            raise ConfigError(
                f"{agent}: action[{s}] = {value[s]} (subchannel "
                f"{core.turn * core.block_size + s}): allowed range [0, K_max={core.k_max}] "
                f"(0 = off, k = user slot k-1)"
            )
        trial = torch.zeros(1, core.n_bs, core.block_size, dtype=torch.long, device=core.device)
        trial[0, n] = torch.as_tensor(value.astype(np.int64), device=core.device)
        return core.check_actions(trial)[0, n]

    # ---------------------------------------------------------------------------------------
    # Observations, state, rendering
    # ---------------------------------------------------------------------------------------

    def observe(self, agent: str) -> dict[str, np.ndarray]:
        """``{"observation": (obs_dim,) float32, "action_mask": (S, K_max + 1) int8}``."""
        self._locate(agent)
        self._require_reset("observe")
        obs, mask = self._observations[agent]
        return {"observation": obs.copy(), "action_mask": mask.copy()}

    def state(self) -> np.ndarray:
        """Global state of the current turn, ``core.observe().state[0]``: (state_dim,)
        float32."""
        self._require_reset("state")
        return _to_numpy(self.core.observe().state[0])


def make_tn_ntn_aec(
    preset: str | None = "quick",
    overrides: list[str] | dict[str, Any] | None = None,
    **kwargs: Any,
) -> TnNtnAECEnv:
    """The TN-NTN AEC environment from a scenario preset and ``key=value`` overrides.

    Args:
        preset: a ``tn_ntn`` preset (``"quick"``, ``"paper"``) or None for the config defaults.
        overrides: scenario overrides, e.g. ``{"horizon_slots": 10}``.
        **kwargs: passed to :class:`TnNtnAECEnv` (``formulation``, ``inactive_action``,
            ``device``, ``dtype``).
    """
    config = build_config(TnNtnConfig, "tn_ntn", preset=preset, overrides=overrides)
    return TnNtnAECEnv(config, **kwargs)
