"""The multicell multiband MIMO power-allocation game of seed 004 §IV-A, batched and PettingZoo.

Every BS is an agent. In block t (``t`` 0-based here, the paper's t + 1) BS b observes its
local state ``S_b(t)`` (eq. (17)) and chooses the power ``p_{b,u}[t, f]`` of its U users on the
N_f = F channels; it is rewarded with its cell's sum rate (eq. (18)) and the network with the
sum over cells (eq. (19)). Channels are block fading: every step closes the current block and
draws a new, independent one (§II-C and §IV-A "State transition" with time-varying channels,
the one-step MMDP of eq. (22)); the power budget rolls over the T blocks of an episode (eq. (5)),
after which the episode ends.

Two layers, as everywhere in skyshare:

* :class:`MultibandEnv`, the batched core: B parallel environments advanced together, all C
  BSs as one tensor group (``obs: (B, C, D)``, ``actions: (B, C, U*F)``), so a learner acts for
  every BS of every environment in one call. ``step_power`` also accepts an allocation computed
  elsewhere (FLWF, SSWF, TD3-MIX+FLWF) on ``problem()``, the current block's
  :class:`~skyshare.solvers.multiband_problem.MultibandProblem`. Whole episodes of a named
  scheme are played by :func:`skyshare.schemes.multiband.run_multiband`.
* :class:`MultibandParallelEnv`, a PettingZoo ``ParallelEnv`` over one realization with agents
  ``bs_0 .. bs_{C-1}`` (all BSs act simultaneously, as in the paper).

Observation ``S_b(t)`` (17) as real features (choices, documented in docs/envs/multiband.md),
flattened in this order:

1. ``H_b[f]``, the BS's own channels ``h_{b,(b,u)}[f]`` (local CSI): the complex array
   ``(F, U, M)`` divided by ``sqrt(a_bb)`` (unit average power per entry), real and imaginary
   parts interleaved (``torch.view_as_real``): feature ``((f U + u) M + m) 2 + {0: Re, 1: Im}``.
   ``2 F U M`` features (omitted with ``observe_channels=False``).
2. ``w_{b,u}[f]``, the unit-norm ZF beams (eqs. (3)-(4)): ``(F, U, M)`` complex times
   ``sqrt(M)`` (unit average power per entry), same layout. ``2 F U M`` features (omitted with
   ``observe_beams=False``).
3. ``c_{b,u}[t, f]`` of eq. (7) as ``log10(c)`` (i.e. dB / 10), ``(U, F)`` row-major. ``c`` is the
   interference pattern the users measure at the start of the block: the other cells' powers
   of the *previous* block through the *new* block's channels ("influenced only by the power
   allocation from the previous time slot", §IV-A). In the first block there is no previous
   block; ``first_block_power`` picks equal power ``P_b(1) / (U N_f)`` (default) or none.
4. Only with ``observe_budget=True`` (not in (17)): ``P_b(t) / (P_bar / T)`` and
   ``(T - t) / T``, the budget left and the blocks left.

Action (§IV-A, "the power allocation over all the frequency channels for all its users"): the
policy output ``x in [0, 1]^{U F}`` of BS b, row-major ``(U, F)``, mapped to powers within the
per-user budget ``P_b(t) / U`` of eq. (14) (a choice, ``action_mapping``):

* ``"simplex"`` (default): ``p_{b,u}[f] = (P_b(t) / U) x_{u,f} / sum_f' x_{u,f'}``, the user's
  whole share split in proportion to ``x`` (uniform if ``sum_f x_{u,f} = 0``). Every BS spends
  exactly ``P_b(t)``, as the water-filling solutions (SSWF, FLWF) do, so ``P_b(t) = P_bar / T``.
* ``"box"``: ``p_{b,u}[f] = (P_b(t) / U) x_{u,f} / F``; a BS may spend less than ``P_b(t)`` and
  carry the rest over (eq. (5)).

Reward: eq. (18) writes ``log2(1 + p / c^B)`` with the FLWF belief ``c^B`` of eq. (9), which
is a forecast; the environment pays the rate actually achieved,
``R_b = sum_{u,f} log2(1 + SINR_{b,u}[f])`` with the SINR of eq. (1) under the allocation of
every cell (the scenario's SINR kernel; equal to ``log2(1 + p / c)`` with the actual ``c`` of
eq. (7), since ZF nulls the intra-cell term). ``R_total = sum_b R_b`` (19).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import gymnasium
import numpy as np
import torch
from pettingzoo import ParallelEnv
from pydantic import Field

from skyshare.config import StrictModel, build_config
from skyshare.errors import ConfigError, ShapeError, UnknownNameError
from skyshare.scenarios.multiband import MultibandConfig, MultibandScenario, MultibandState
from skyshare.solvers.multiband_problem import MultibandProblem

__all__ = [
    "MultibandEnv",
    "MultibandEnvConfig",
    "MultibandParallelEnv",
    "MultibandStep",
    "make_multiband_parallel",
]

# Relative slack when checking an allocation against P_b(t) (the scenario uses the same).
_BUDGET_TOLERANCE = 1e-4


class MultibandEnvConfig(StrictModel):
    """How the game is presented to the agents; every field is a choice (seed 004 is silent)."""

    action_mapping: Literal["simplex", "box"] = Field(
        "simplex", description="policy output in [0, 1]^(U F) -> powers (module docstring)"
    )
    first_block_power: Literal["equal", "zero"] = Field(
        "equal", description="other-cell powers assumed for c in the first block's observation"
    )
    observe_channels: bool = Field(True, description="include H_b[f] in S_b(t) (17)")
    observe_beams: bool = Field(True, description="include w_{b,u}[f] in S_b(t) (17)")
    observe_budget: bool = Field(
        False, description="append P_b(t) / (P_bar / T) and (T - t) / T (not in (17))"
    )


@dataclass
class MultibandStep:
    """What a step returns for B environments (block ``t`` has just been played).

    Attributes:
        obs: (B, C, D) float, ``S_b(t+1)`` (17) of the next block; after the last block, the
            observation of the final block with ``c`` under the allocation just played.
        reward: (B, C) float, ``R_b`` (18) in bit/s/Hz, the rate achieved in cell b.
        reward_total: (B,) float, ``R_total`` (19).
        power: (B, C*U, F) float, the allocation that was played.
        rates: (B, C*U, F) float, ``log2(1 + SINR_{b,u}[f])``.
        budget: (B, C) float, ``P_b(t)`` of the block that was played.
        t: the 0-based index of the block that was played.
        done: True after the last block (t = T - 1): the budget horizon of eq. (5) is over and
            the environment must be reset. All B environments move in lockstep.
    """

    obs: torch.Tensor
    reward: torch.Tensor
    reward_total: torch.Tensor
    power: torch.Tensor
    rates: torch.Tensor
    budget: torch.Tensor
    t: int
    done: bool


class MultibandEnv:
    """Batched core of the seed 004 game: B environments, C BS agents as one tensor group.

    Args:
        scenario_config: :class:`MultibandConfig` (the ``paper`` preset when omitted); its
            ``n_blocks`` T is the episode length.
        config: :class:`MultibandEnvConfig` (or a mapping of its fields).
        batch_size: B parallel environments.
        device, dtype: where and in which precision everything is computed.

    Attributes:
        scenario: the :class:`MultibandScenario` (channels, budgets, SINR kernel).
        state: the current block's :class:`MultibandState`; ``problem()`` turns it into what
            FLWF and SSWF take.
        n_agents: C. users_per_cell: U. n_freq: F. n_antennas: M. horizon: T.
        obs_dim: D, action_dim: U F, state_dim: C D (the global state is all observations).
        interference_features: the slice of the ``log10 c`` features (U F) in an observation.

    Usage::

        env = MultibandEnv(MultibandScenario.config_from("quick"), batch_size=64)
        obs = env.reset(seed=0)                     # (64, C, D)
        out = env.step(torch.rand(64, C, U * F))    # policy outputs in [0, 1]
        out.reward, out.reward_total, out.obs       # (64, C), (64,), (64, C, D)
        out = env.step_power(power)                 # or any allocation (B, C*U, F)
    """

    def __init__(
        self,
        scenario_config: MultibandConfig | None = None,
        config: MultibandEnvConfig | dict[str, Any] | None = None,
        *,
        batch_size: int = 1,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if isinstance(config, dict):
            config = MultibandEnvConfig.from_dict(config, what="multiband env")
        self.config = config if config is not None else MultibandEnvConfig()
        if not isinstance(self.config, MultibandEnvConfig):
            raise ConfigError(
                f"config must be a MultibandEnvConfig or a dict, got {type(config).__name__}"
            )
        self.scenario = MultibandScenario(
            scenario_config, batch_size=batch_size, device=device, dtype=dtype
        )
        cfg = self.scenario.config
        self.B = batch_size
        self.n_agents = cfg.n_cells
        self.users_per_cell = cfg.users_per_cell
        self.n_freq = cfg.n_freq
        self.n_antennas = cfg.n_antennas
        self.horizon = cfg.n_blocks
        self.device = self.scenario.device
        self.dtype = dtype
        self.generator = self.scenario.generator

        C, U, F, M = self.n_agents, self.users_per_cell, self.n_freq, self.n_antennas
        csi = 2 * F * U * M
        self.obs_dim = (
            csi * self.config.observe_channels
            + csi * self.config.observe_beams
            + U * F
            + 2 * self.config.observe_budget
        )
        self.action_dim = U * F
        self.state_dim = C * self.obs_dim
        start = csi * self.config.observe_channels + csi * self.config.observe_beams
        self.interference_features = slice(start, start + U * F)  # log10 c within S_b(t)
        self._serving_gain = torch.diagonal(self.scenario.gains)  # (C,) a_bb
        self.state: MultibandState | None = None
        self._previous_power: torch.Tensor | None = None
        self._obs: torch.Tensor | None = None
        self._done = True
        self._episodes = 0

    # ---------------------------------------------------------------------------------------
    # Episode control
    # ---------------------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Start B new episodes (block 0, nothing spent); return ``S(0)``: (B, C, D).

        ``seed=None`` uses the scenario's seed the first time and then continues the random
        stream (Gymnasium's convention), so that successive episodes differ reproducibly.
        """
        if seed is None and self._episodes > 0:
            seed = int(
                torch.randint(0, 2**31 - 1, (1,), generator=self.generator, device=self.device)
            )
        self._episodes += 1
        self.state = self.scenario.reset(seed=seed)
        if self.config.first_block_power == "equal":
            self._previous_power = self.scenario.equal_power(self.state)
        else:
            self._previous_power = torch.zeros(
                self.B, self.n_agents * self.users_per_cell, self.n_freq,
                device=self.device, dtype=self.dtype,
            )  # fmt: skip
        self._done = False
        self._obs = self._observe(self.state, self._previous_power)
        return self._obs

    @property
    def t(self) -> int:
        """The 0-based index of the current block."""
        if self.state is None:
            raise RuntimeError("call reset() first")
        return self.state.t

    def problem(self) -> MultibandProblem:
        """The current block's power-allocation problem (what FLWF, SSWF and the random
        benchmark take): ``self.scenario.problem(self.state)``, budgets ``P_b(t) / U``."""
        if self.state is None:
            raise RuntimeError("call reset() first")
        return self.scenario.problem(self.state)

    def observe(self) -> torch.Tensor:
        """The current observations ``S_b(t)`` (17) of every BS: (B, C, D) float."""
        if self._obs is None:
            raise RuntimeError("call reset() before observe()")
        return self._obs

    def global_state(self) -> torch.Tensor:
        """The global state ``S_t`` of eq. (20), all BSs' observations concatenated in BS order:
        (B, C D) float (what the mixing network is conditioned on)."""
        return self.observe().reshape(self.B, self.state_dim)

    def step(self, actions: torch.Tensor) -> MultibandStep:
        """Play the current block with policy outputs ``actions: (B, C, U F)`` in [0, 1]."""
        return self.step_power(self.action_to_power(actions))

    def step_power(self, power: torch.Tensor) -> MultibandStep:
        """Play the current block with the allocation ``power: (B, C*U, F)`` (user k = b U + u),
        within eq. (6b)/(14): ``sum_{u,f} p_{b,u}[f] <= P_b(t)``; draw the next block.

        Raises ShapeError for a wrong shape, ConfigError for negative or NaN powers or a BS
        above its budget, RuntimeError if the episode is over (call reset()).
        """
        if self.state is None or self._done:
            raise RuntimeError("the episode is over (or not started): call reset()")
        state = self.state
        power = self.check_power(power)
        rates = self.scenario.rates(state, power)  # (B, C*U, F)
        reward = self.scenario.cell_capacity(rates)  # (B, C), eq. (18) with the actual c
        played = state.t
        if played + 1 < self.horizon:
            self.state = self.scenario.step(power)  # charges the budget, eq. (5)
            self._previous_power = power
            self._obs = self._observe(self.state, power)
        else:
            self._done = True
            self._obs = self._observe(state, power)
        return MultibandStep(
            obs=self._obs,
            reward=reward,
            reward_total=reward.sum(-1),
            power=power,
            rates=rates,
            budget=state.budget,
            t=played,
            done=self._done,
        )

    @property
    def done(self) -> bool:
        """True when the episode is over (after T blocks, or before the first reset)."""
        return self._done

    # ---------------------------------------------------------------------------------------
    # Actions
    # ---------------------------------------------------------------------------------------

    def action_to_power(self, actions: torch.Tensor) -> torch.Tensor:
        """Map policy outputs to powers of the current block (``action_mapping``).

        Args:
            actions: (B, C, U F) float in [0, 1], BS b's row-major ``(U, F)`` outputs.

        Returns:
            (B, C*U, F) float, ``sum_f p_{b,u}[f] <= P_b(t) / U`` (equality for "simplex").
        """
        if self.state is None:
            raise RuntimeError("call reset() before mapping actions")
        x = self.check_actions(actions)
        B, C, U, F = self.B, self.n_agents, self.users_per_cell, self.n_freq
        x = x.reshape(B, C * U, F)
        share = self.scenario.user_power_budget(self.state.budget)[..., None]  # (B, C*U, 1)
        if self.config.action_mapping == "simplex":
            total = x.sum(-1, keepdim=True)
            fraction = torch.where(total > 0, x / total.clamp_min(1e-30), 1.0 / F)
        else:
            fraction = x / F
        return share * fraction

    def power_to_action(self, power: torch.Tensor) -> torch.Tensor:
        """Policy outputs that ``action_to_power`` maps back to ``power`` (current block).

        Args:
            power: (B, C*U, F) float >= 0 within the per-user budget ``P_b(t) / U``.

        Returns:
            (B, C, U F) float in [0, 1]: ``p / max_f p`` per user for "simplex" (any positive
            multiple maps to the same powers), ``F p / (P_b(t) / U)`` for "box".
        """
        if self.state is None:
            raise RuntimeError("call reset() first")
        power = self.check_power(power)
        if self.config.action_mapping == "simplex":
            peak = power.amax(-1, keepdim=True)
            x = torch.where(peak > 0, power / peak.clamp_min(1e-30), 1.0)
        else:
            share = self.scenario.user_power_budget(self.state.budget)[..., None]
            x = self.n_freq * power / share.clamp_min(1e-30)
        return x.clamp(0.0, 1.0).reshape(self.B, self.n_agents, self.action_dim)

    def random_actions(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Uniform policy outputs in [0, 1]: (B, C, U F) (the "random power allocation" of §V
        with the default mapping; draws from ``generator`` or the environment's)."""
        return torch.rand(
            self.B, self.n_agents, self.action_dim,
            generator=generator if generator is not None else self.generator,
            device=self.device, dtype=self.dtype,
        )  # fmt: skip

    def check_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """``actions`` as a (B, C, U F) tensor of this env's dtype, or ShapeError/ConfigError."""
        expected = (self.B, self.n_agents, self.action_dim)
        if not isinstance(actions, torch.Tensor) or actions.is_complex():
            raise ShapeError(f"actions must be a real tensor of shape (B, C, U*F) = {expected}")
        if tuple(actions.shape) != expected:
            raise ShapeError(
                f"actions must be (B, C, U*F) = {expected}, got {tuple(actions.shape)}"
            )
        actions = actions.to(device=self.device, dtype=self.dtype)
        bad = torch.isnan(actions) | (actions < 0) | (actions > 1)
        if bool(bad.any()):
            env, bs, entry = (int(i) for i in bad.nonzero()[0])
            raise ConfigError(
                f"actions must lie in [0, 1]: environment {env}, bs_{bs}, entry {entry} "
                f"(user {entry // self.n_freq}, channel {entry % self.n_freq}) is "
                f"{float(actions[env, bs, entry])}"
            )
        return actions

    def check_power(self, power: torch.Tensor) -> torch.Tensor:
        """``power`` as (B, C*U, F) of this env's dtype, >= 0 and within ``P_b(t)`` per BS."""
        if self.state is None:
            raise RuntimeError("call reset() first")
        expected = (self.B, self.n_agents * self.users_per_cell, self.n_freq)
        if not isinstance(power, torch.Tensor) or power.is_complex():
            raise ShapeError(f"power must be a real tensor of shape (B, C*U, F) = {expected}")
        if tuple(power.shape) != expected:
            raise ShapeError(f"power must be (B, C*U, F) = {expected}, got {tuple(power.shape)}")
        power = power.to(device=self.device, dtype=self.dtype)
        if bool((torch.isnan(power) | (power < 0)).any()):
            raise ConfigError("power must be >= 0 (and not NaN) on every user and channel")
        used = self.scenario.bs_power(power)
        budget = self.state.budget
        if bool((used > budget * (1 + _BUDGET_TOLERANCE) + _BUDGET_TOLERANCE).any()):
            env, bs = divmod(int((used - budget).flatten().argmax()), self.n_agents)
            raise ConfigError(
                f"power exceeds the block budget P_b(t) of eq. (5)/(6b): environment {env}, "
                f"bs_{bs} uses {float(used[env, bs]):.6g} > {float(budget[env, bs]):.6g}"
            )
        return power

    # ---------------------------------------------------------------------------------------
    # Observations (17)
    # ---------------------------------------------------------------------------------------

    def _observe(self, state: MultibandState, other_power: torch.Tensor) -> torch.Tensor:
        """``S_b(t)`` for all BSs: (B, C, D), with ``c`` under ``other_power`` (B, C*U, F)."""
        B, C, U, F, M = self.B, self.n_agents, self.users_per_cell, self.n_freq, self.n_antennas
        parts = []
        if self.config.observe_channels:
            # H: (B, C*U, C, F, M) -> own-cell channels h_{b,(b,u)}[f]: (B, C, F, U, M)
            H = state.H.reshape(B, C, U, C, F, M)
            own = torch.diagonal(H, dim1=1, dim2=3).permute(0, 4, 2, 1, 3)
            own = own / self._serving_gain.sqrt().to(own.dtype)[None, :, None, None, None]
            parts.append(torch.view_as_real(own.contiguous()).reshape(B, C, -1))
        if self.config.observe_beams:
            # W: (B, C, C*U, F, M), zero outside the serving cell -> (B, C, F, U, M)
            W = state.W.reshape(B, C, C, U, F, M)
            beams = torch.diagonal(W, dim1=1, dim2=2).permute(0, 4, 2, 1, 3) * math.sqrt(M)
            parts.append(torch.view_as_real(beams.contiguous()).reshape(B, C, -1))
        c = self.scenario.interference_plus_noise_ratio(state, other_power)  # (B, C*U, F)
        parts.append(torch.log10(c).reshape(B, C, U * F))
        if self.config.observe_budget:
            per_block = self.scenario.power_budget_total / self.horizon
            left = torch.full_like(state.budget, (self.horizon - state.t) / self.horizon)
            parts.append(torch.stack([state.budget / per_block, left], dim=-1))
        return torch.cat([p.to(self.dtype) for p in parts], dim=-1)


class MultibandParallelEnv(ParallelEnv):
    """The seed 004 game as a PettingZoo ``ParallelEnv``: one realization, agents ``bs_0 ..
    bs_{C-1}`` acting simultaneously every block.

    Args:
        scenario_config: :class:`MultibandConfig` (``paper`` preset when omitted); an episode
            has ``n_blocks`` steps.
        config: :class:`MultibandEnvConfig` (or a mapping of its fields).
        device, dtype: where and in which precision the core computes; observations and states
            are returned as float32 NumPy arrays.
        render_mode: only None.

    Spaces: action ``Box(0, 1, (U F,), float32)`` (mapped to powers by the core's
    ``action_mapping``), observation ``Box(-inf, inf, (D,), float32)`` (17), global state
    ``Box(-inf, inf, (C D,), float32)``.

    Rewards: ``R_b`` (18) per BS; ``infos[bs_b]`` holds ``reward_total`` (19), ``power``
    ((U, F) float32, the powers BS b used), ``rates`` ((U, F)) and ``budget`` (``P_b(t)``).
    After the T-th block every agent is terminated (the budget of eq. (5) is spent).
    Seeding follows the core: ``reset(seed=None)`` continues the random stream.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "name": "multiband_parallel_v0",
        "render_modes": [],
        "is_parallelizable": True,
    }

    def __init__(
        self,
        scenario_config: MultibandConfig | None = None,
        config: MultibandEnvConfig | dict[str, Any] | None = None,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None:
            raise ConfigError(f"render_mode must be None (nothing to draw), got {render_mode!r}")
        self.render_mode = render_mode
        self.core = MultibandEnv(scenario_config, config, batch_size=1, device=device, dtype=dtype)
        core = self.core
        self.possible_agents = [f"bs_{b}" for b in range(core.n_agents)]
        self._index = {name: b for b, name in enumerate(self.possible_agents)}
        self.agents: list[str] = []
        # One space object per agent, so that seeding one agent's space leaves the others alone.
        self.observation_spaces = {
            a: gymnasium.spaces.Box(-np.inf, np.inf, (core.obs_dim,), np.float32)
            for a in self.possible_agents
        }
        self.action_spaces = {
            a: gymnasium.spaces.Box(0.0, 1.0, (core.action_dim,), np.float32)
            for a in self.possible_agents
        }
        self.state_space = gymnasium.spaces.Box(-np.inf, np.inf, (core.state_dim,), np.float32)
        self.last_step: MultibandStep | None = None

    def observation_space(self, agent: str) -> gymnasium.spaces.Box:
        return self.observation_spaces[self._agent(agent)]

    def action_space(self, agent: str) -> gymnasium.spaces.Box:
        return self.action_spaces[self._agent(agent)]

    def _agent(self, agent: str) -> str:
        if agent not in self._index:
            raise UnknownNameError(
                f"unknown agent {agent!r}; agents are bs_0..bs_{self.core.n_agents - 1}"
            )
        return agent

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        """Start an episode; return the observations (17) of block 0 and empty infos."""
        obs = _to_numpy(self.core.reset(seed)[0])
        self.agents = list(self.possible_agents)
        self.last_step = None
        return (
            {a: obs[b].copy() for b, a in enumerate(self.agents)},
            {a: {} for a in self.agents},
        )

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        """Play one block with every live agent's action ``(U F,)`` in [0, 1].

        Raises ShapeError for a missing, unknown or wrongly shaped action and ConfigError for
        a value outside [0, 1]; the environment is unchanged and the step may be retried.
        """
        if not self.agents:
            raise RuntimeError("no episode is running: call reset()")
        missing = [a for a in self.agents if a not in actions]
        unknown = [a for a in actions if a not in self._index]
        if missing or unknown:
            raise ShapeError(
                f"step needs one action per live agent: missing {missing}, unknown {unknown}"
            )
        core = self.core
        batch = torch.zeros(1, core.n_agents, core.action_dim, dtype=core.dtype, device=core.device)
        for agent in self.agents:
            value = np.asarray(actions[agent])
            if value.dtype.kind not in "biuf" or value.shape != (core.action_dim,):
                raise ShapeError(
                    f"{agent}: the action must be a numeric array of shape "
                    f"({core.action_dim},), got dtype {value.dtype}, shape {value.shape}"
                )
            batch[0, self._index[agent]] = torch.as_tensor(value, dtype=core.dtype)
        out = core.step(batch)
        self.last_step = out

        U = core.users_per_cell
        obs = _to_numpy(out.obs[0])
        reward = out.reward[0].tolist()
        total = float(out.reward_total[0])
        power = _to_numpy(out.power[0]).reshape(core.n_agents, U, core.n_freq)
        rates = _to_numpy(out.rates[0]).reshape(core.n_agents, U, core.n_freq)
        budget = out.budget[0].tolist()
        agents = self.agents
        observations = {a: obs[self._index[a]].copy() for a in agents}
        rewards = {a: reward[self._index[a]] for a in agents}
        terminations = {a: out.done for a in agents}
        truncations = {a: False for a in agents}
        infos = {
            a: {
                "reward_total": total,
                "power": power[self._index[a]].copy(),
                "rates": rates[self._index[a]].copy(),
                "budget": budget[self._index[a]],
            }
            for a in agents
        }
        if out.done:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        """The global state ``S_t`` (20): every BS's observation concatenated, (C D,) float32."""
        return _to_numpy(self.core.global_state()[0])

    def render(self) -> None:
        """Nothing to draw."""
        return None

    def close(self) -> None:
        """Nothing to release."""


def make_multiband_parallel(
    preset: str | None = "quick",
    overrides: list[str] | dict[str, Any] | None = None,
    **kwargs: Any,
) -> MultibandParallelEnv:
    """The PettingZoo parallel environment from a ``multiband`` preset and overrides, e.g.
    ``make_multiband_parallel("quick", {"n_freq": 2})``; ``kwargs`` go to the constructor."""
    scenario_config = build_config(MultibandConfig, "multiband", preset=preset, overrides=overrides)
    return MultibandParallelEnv(scenario_config, **kwargs)


def _to_numpy(x: torch.Tensor) -> np.ndarray:
    """A real tensor as a float32 NumPy array on the CPU."""
    return x.detach().to(device="cpu", dtype=torch.float32).numpy()
