"""The schemes of seed 000 (CATN): association rules x beamforming rules, by name.

A CATN slot has two turns (Algorithm 4): the terrestrial users associate, then the base
stations beamform on the new association. A scheme is therefore a pair of components, each
registered by name:

* :data:`ASSOCIATIONS`: ``d3qn`` (D3QN agents, §V-D), ``sc`` (strongest channel, §VI),
  ``dcd`` (dual coordinate descent with power control, §IV-A);
* :data:`BEAMFORMERS`: ``cup`` (CUP agents, §V-C), ``ppo`` (PPO with a cost penalty, §VI),
  ``wmmse`` (full WMMSE), ``wmmse-lite`` (low-complexity WMMSE, the paper's WMMSE benchmark),
  ``fp`` (direct FP, the DFP upper bound, §IV-B);
* :data:`SCHEMES`: the paper's named pairs of §VI (``D3QN-CUP``, ``SC-WMMSE``, ...).

Every component has ``decide``, ``learn`` (a no-op for rules and solvers), ``state_dict`` and
``load_state_dict``; the online loop :func:`skyshare.schemes.catn_online.run_online` runs any
pair. A registry entry's tags say what the component needs from the environment
(``env``: :class:`~skyshare.envs.catn.CatnEnvConfig` fields such as what the ledger counts) and
whether it learns.

Adding a beamforming rule, e.g. maximum-ratio transmission at full power::

    from skyshare.schemes.base import Stateless
    from skyshare.schemes.catn import BEAMFORMERS, SCHEMES, BeamformDecision

    class Mrt(Stateless):
        def decide(self, env, obs, *, explore):
            w = mrt_equal_power(env.state.H, env.serving, p_total=env.p_max)
            return BeamformDecision(w=w)

    BEAMFORMERS.register("mrt", lambda env, options: Mrt(), env={"bs_information": "global_csi"})
    SCHEMES.register("SC-MRT", ("sc", "mrt"))        # skyshare run catn-fig4 --schemes SC-MRT
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from pydantic import Field

from skyshare import metrics
from skyshare.checks import MAX_SEED
from skyshare.config import StrictModel
from skyshare.envs.catn import CatnEnv, CatnEnvConfig
from skyshare.errors import ConfigError
from skyshare.rl import (
    CupAgents,
    CupConfig,
    D3QNAgents,
    D3QNConfig,
    PpoPenaltyAgents,
    PpoPenaltyConfig,
    TrajectoryCollector,
)
from skyshare.rl.common.compact import CompactPolicy, CompactWeights, compact_version
from skyshare.scenarios.catn import CatnConfig
from skyshare.schemes.base import Registry, Stateless
from skyshare.solvers.problem import BeamformingProblem, BeamformingResult

__all__ = [
    "ASSOCIATIONS",
    "BEAMFORMERS",
    "PAPER_TABLE1_SECONDS",
    "SCHEMES",
    "BeamformDecision",
    "CatnScheme",
    "CatnSchemeOptions",
    "D3QNAssociation",
    "DcdAssociation",
    "LearnedBeamforming",
    "SolverBeamforming",
    "StrongestChannel",
    "bs_obs_baseline",
    "build_catn_env",
    "build_scheme",
    "scheme_env_config",
]


class CatnSchemeOptions(StrictModel):
    """Settings of a CATN scheme's components (each reads the ones it uses).

    Attributes:
        seed: seeds the learners' initialisation and sampling.
        hidden_sizes: the BS actor and critics of CUP / PPO (§VI: 512, 128, 64); the TU D3QN
            keeps its own §VI defaults.
        ppo_penalty: zeta, the cost penalty of PPO (D3QN-PPO, §VI).
        warm_start: solver beamformers start each slot from the previous slot's beamformers
            (users who changed BS restart from MRT) and multipliers (§VI's dynamic setting);
            False solves every slot from scratch.
        max_iter: per-slot iteration budget of a solver beamformer (None: the solver's own).
        compact_inference: CUP / PPO evaluation decisions (``explore=False``) through
            :class:`~skyshare.rl.common.compact.CompactPolicy` (sparse first layer; training
            and exploration keep the float32 networks). Off by default (docs/rl/compact.md).
        compact_weights: the compact first layer's storage, "fp32" (exact up to summation
            order) or "int8" (row-wise quantised, CPU).
        skip_unconstrained_projection: CUP skips step 2 for agents whose nu is all 0
            (:class:`~skyshare.rl.cup.CupConfig`; False: the literal loop of Algorithm 3).
    """

    seed: int = Field(0, ge=0, le=MAX_SEED)
    hidden_sizes: tuple[int, ...] = (512, 128, 64)
    ppo_penalty: float = Field(10.0, ge=0)
    warm_start: bool = True
    max_iter: int | None = Field(None, ge=1, le=10_000)
    compact_inference: bool = False
    compact_weights: Literal["fp32", "int8"] = "fp32"
    skip_unconstrained_projection: bool = True


@dataclass
class BeamformDecision:
    """What a beamforming component decides for the slot: BS actions (9) ``actions (B, N,
    2K+L+2)`` in [0, 1] for ``env.beamform``, or beamformers ``w (B, K, M)`` in sqrt(W) for
    ``env.beamform_with``; ``iterations``: solver iterations (0 for a policy)."""

    actions: torch.Tensor | None = None
    w: torch.Tensor | None = None
    iterations: int = 0


ASSOCIATIONS: Registry[Any] = Registry("catn association")
BEAMFORMERS: Registry[Any] = Registry("catn beamforming")
SCHEMES: Registry[tuple[str, str]] = Registry("catn scheme")


# -------------------------------------------------------------------------------------------
# Association (turn 1)
# -------------------------------------------------------------------------------------------


class StrongestChannel(Stateless):
    """SC (§VI): TU k joins ``argmax_n ||h_{n,k}||^2``, measured locally (no exchange)."""

    def decide(self, env: CatnEnv, obs: torch.Tensor, *, explore: bool) -> torch.Tensor:
        """(B, K) long serving BSs."""
        return metrics.strongest_transmitter(env.state.H)


class DcdAssociation(Stateless):
    """DCD (§IV-A, Algorithm 1): association by dual coordinate descent with power control,
    from every TU's channel strengths (the ledger counts N (K-1) strengths per TU)."""

    def decide(self, env: CatnEnv, obs: torch.Tensor, *, explore: bool) -> torch.Tensor:
        """(B, K) long serving BSs."""
        from skyshare.solvers.association_dcd import associate_dcd

        return associate_dcd(env.state.H, p_max=env.p_max, n_antennas=env.M).serving


class D3QNAssociation:
    """The K D3QN TU agents (§V-D): epsilon-greedy on their observations (14) while
    training, greedy otherwise; one replay step per slot (Algorithm 4 lines 9-19)."""

    learns = True

    def __init__(self, agents: D3QNAgents) -> None:
        self.agents = agents

    def decide(self, env: CatnEnv, obs: torch.Tensor, *, explore: bool) -> torch.Tensor:
        """(B, K) long serving BSs chosen by the agents from ``obs (B, K, 3N+4)``."""
        return self.agents.act(obs, explore=explore)

    def learn(
        self, obs: torch.Tensor, actions: torch.Tensor, reward: torch.Tensor, next_obs: torch.Tensor
    ) -> dict[str, float]:
        """Store the slot's transitions (B per agent) and take one gradient step."""
        self.agents.observe(obs, actions, reward, next_obs)
        return self.agents.update()

    def state_dict(self) -> dict[str, Any]:
        """Networks, optimiser, epsilon, replay memory and the sampling generator."""
        return {"agents": self.agents.state_dict(include_memory=True)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.agents.load_state_dict(state["agents"])


def _d3qn(env: CatnEnv, options: CatnSchemeOptions) -> D3QNAssociation:
    config = D3QNConfig(seed=options.seed)
    return D3QNAssociation(D3QNAgents(env.tu_obs_dim, env.N, env.K, config, device=env.device))


ASSOCIATIONS.register(
    "d3qn",
    _d3qn,
    description="D3QN TU agents (seed 000 §V-D)",
    learns=True,
    # the agents learn on normalised observations (14) (envs.catn.normalized_tu_observation)
    env={"tu_information": "d3qn", "tu_observation": "normalized"},
)
ASSOCIATIONS.register(
    "sc",
    lambda env, options: StrongestChannel(),
    description="strongest channel (seed 000 §VI)",
    learns=False,
    env={"tu_information": "sc"},
)
ASSOCIATIONS.register(
    "dcd",
    lambda env, options: DcdAssociation(),
    description="dual coordinate descent with power control (seed 000 §IV-A)",
    learns=False,
    env={"tu_information": "dcd"},
)


# -------------------------------------------------------------------------------------------
# Beamforming (turn 2)
# -------------------------------------------------------------------------------------------


class LearnedBeamforming:
    """BS agents (CUP or PPO-penalty) on the exchanged observations (8).

    ``learn`` stores the experience ``<o(t-1), a(t-1), r(t-1), c(t-1), o(t)>`` of the previous
    slot in the trajectory collector and, when it is full, runs one update of Algorithm 3 and
    clears it (Algorithm 4 lines 22-25).

    ``compact``: None (float32 networks for every decision), or the weights of a
    :class:`~skyshare.rl.common.compact.CompactPolicy` used for the Beta-mean decisions
    (``explore=False``); it is rebuilt when the agents have learned since (updates, normaliser
    statistics) or were loaded.
    """

    learns = True

    def __init__(
        self,
        agents: CupAgents | PpoPenaltyAgents,
        collector_size: int | None = None,
        compact: CompactWeights | None = None,
    ) -> None:
        self.agents = agents
        self.collector = TrajectoryCollector(collector_size or agents.config.collector_size)
        self.compact = compact
        self._compact_policy: CompactPolicy | None = None

    def decide(self, env: CatnEnv, obs: torch.Tensor, *, explore: bool) -> BeamformDecision:
        """Sampled Beta actions while training, the Beta means otherwise (Algorithm 4 l. 26)."""
        if not explore and self.compact is not None:
            return BeamformDecision(actions=self.compact_policy(env).act(obs))
        actions, _, _ = self.agents.act(obs, deterministic=not explore, with_values=False)
        return BeamformDecision(actions=actions)

    def compact_policy(self, env: CatnEnv) -> CompactPolicy:
        """The compact policy of the agents as they are now (built on first use)."""
        policy = self._compact_policy
        if policy is None or policy.version != compact_version(self.agents):
            policy = CompactPolicy(
                self.agents, weights=self.compact or "fp32", baseline=bs_obs_baseline(env)
            )
            self._compact_policy = policy
        return policy

    def learn(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        reward: torch.Tensor,
        cost: torch.Tensor,
        next_obs: torch.Tensor,
    ) -> dict[str, Any]:
        """Collect one slot (B environments); update when the collector is full."""
        self.collector.add(obs, actions, reward, cost, next_obs)
        if not self.collector.full:
            return {}
        return self.agents.update(self.collector.pop())

    def state_dict(self) -> dict[str, Any]:
        """The agents' state (networks, optimisers, nu, generator) and the collector."""
        return {"agents": self.agents.state_dict(), "collector": self.collector.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.agents.load_state_dict(state["agents"])
        self.collector.load_state_dict(state["collector"])
        self._compact_policy = None


def _compact(options: CatnSchemeOptions) -> CompactWeights | None:
    return options.compact_weights if options.compact_inference else None


def _cup(env: CatnEnv, options: CatnSchemeOptions) -> LearnedBeamforming:
    config = CupConfig(
        hidden_sizes=options.hidden_sizes,
        seed=options.seed,
        skip_unconstrained_projection=options.skip_unconstrained_projection,
    )
    agents = CupAgents(*_bs_dims(env), config, device=env.device)
    return LearnedBeamforming(agents, compact=_compact(options))


def _ppo(env: CatnEnv, options: CatnSchemeOptions) -> LearnedBeamforming:
    config = PpoPenaltyConfig(
        hidden_sizes=options.hidden_sizes, penalty=options.ppo_penalty, seed=options.seed
    )
    agents = PpoPenaltyAgents(*_bs_dims(env), config, device=env.device)
    return LearnedBeamforming(agents, compact=_compact(options))


def _bs_dims(env: CatnEnv) -> tuple[int, int, int, int]:
    return env.bs_obs_dim, env.action_dim, env.N, env.L


def bs_obs_baseline(env: CatnEnv) -> torch.Tensor:
    """(D,) the structurally constant entries of the BS observation (8), zero elsewhere: the
    AU index l + 1 that opens each AU's entry of ``o_out_pri``. With the network's other
    inputs at zero it is the baseline of :class:`~skyshare.rl.common.compact.CompactPolicy`
    (no input of (8) is structurally zero: any TU may join any BS under D3QN association)."""
    baseline = torch.zeros(env.bs_obs_dim, dtype=env.dtype, device=env.device)
    start = 0
    for name, size in env.bs_obs_blocks().items():
        if name == "o_out_pri" and env.L:
            baseline[start : start + size : 4] = torch.arange(1, env.L + 1, dtype=env.dtype)
        start += size
    return baseline


Solve = Callable[..., BeamformingResult]  # solve(problem, *, w0, mu0, eta0, **options)


class SolverBeamforming:
    """A coordinated-beamforming solver with global CSI (two-stage benchmarks, §IV-B, §VI).

    Each slot solves :class:`~skyshare.solvers.problem.BeamformingProblem` for the current
    association. With ``warm_start`` the solver starts from the previous slot's beamformers
    where a user kept its BS (MRT for the others) and from the previous multipliers; the
    warm-start point is the component's state.
    """

    learns = False

    def __init__(
        self, solve: Solve, multipliers: tuple[str, ...], warm_start: bool, options: dict
    ) -> None:
        self.solve, self.multipliers = solve, multipliers
        self.warm_start, self.options = warm_start, options
        self.previous: dict[str, torch.Tensor] = {}

    def decide(self, env: CatnEnv, obs: torch.Tensor, *, explore: bool) -> BeamformDecision:
        """Solve the slot's problem; ``w (B, K, M)``."""
        problem = BeamformingProblem(env.state.H, env.state.G, env.serving, env.p_max, env.i_max)
        start: dict[str, torch.Tensor] = {}
        if self.warm_start and self.previous:
            kept = (env.serving == self.previous["serving"])[..., None]
            w_prev = self.previous["w"]
            start["w0"] = torch.where(kept, w_prev, torch.zeros_like(w_prev))
            for name in self.multipliers:
                if f"multiplier_{name}" in self.previous:
                    start[f"{name}0"] = self.previous[f"multiplier_{name}"]
        result = self.solve(problem, **start, **self.options)
        if self.warm_start:
            self.previous = {"w": result.w, "serving": env.serving.clone()}
            for name in self.multipliers:
                if name in result.multipliers:
                    self.previous[f"multiplier_{name}"] = result.multipliers[name]
        return BeamformDecision(w=result.w, iterations=int(result.iterations))

    def learn(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        """Solvers do not learn: ``{}``."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """The warm-start point (previous beamformers, association and multipliers)."""
        return {"previous": dict(self.previous)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.previous = dict(state["previous"])


def _solver(name: str, multipliers: tuple[str, ...]) -> Callable[..., SolverBeamforming]:
    def build(env: CatnEnv, options: CatnSchemeOptions) -> SolverBeamforming:
        from importlib import import_module

        module = import_module(f"skyshare.solvers.{name.replace('-', '_')}")
        solve = getattr(module, name.replace("-", "_"))
        budget = {} if options.max_iter is None else {"max_iter": options.max_iter}
        return SolverBeamforming(solve, multipliers, options.warm_start, budget)

    return build


_EXCHANGE = {"bs_information": "exchange"}
_GLOBAL_CSI = {"bs_information": "global_csi"}
BEAMFORMERS.register(
    "cup", _cup, description="CUP safe-RL BS agents (seed 000 §V-C)", learns=True, env=_EXCHANGE
)
BEAMFORMERS.register(
    "ppo", _ppo, description="PPO with a cost penalty (seed 000 §VI)", learns=True, env=_EXCHANGE
)
BEAMFORMERS.register(
    "wmmse",
    _solver("wmmse", ("mu", "eta")),
    description="WMMSE with interference constraints (seed 000 §IV-B)",
    learns=False,
    env=_GLOBAL_CSI,
)
BEAMFORMERS.register(
    "wmmse-lite",
    _solver("wmmse-lite", ("mu",)),
    description="low-complexity WMMSE, the paper's WMMSE benchmark (seed 000 §VI)",
    learns=False,
    env=_GLOBAL_CSI,
)
BEAMFORMERS.register(
    "fp",
    _solver("fp", ("mu", "eta")),
    description="direct fractional programming, the DFP upper bound (seed 000 §IV-B)",
    learns=False,
    env=_GLOBAL_CSI,
)

# seed 000 Table I, average computation time per slot (L=2, N=7, K=21, M=16), i7-11700K
PAPER_TABLE1_SECONDS: dict[str, tuple[float, str]] = {
    "fp": (78.78, "DCD-DFP, MATLAB"),
    # the paper timed its low-complexity WMMSE (wmmse-lite here); full WMMSE is compared with
    # that figure too, and its label says so
    "wmmse": (1.257, "D3QN-WMMSE, the paper's low-complexity WMMSE (here wmmse-lite), Python"),
    "wmmse-lite": (1.257, "D3QN-WMMSE (low-complexity WMMSE), Python"),
}


# -------------------------------------------------------------------------------------------
# Named schemes (§VI) and building them
# -------------------------------------------------------------------------------------------

# the paper's WMMSE benchmark is its low-complexity variant (§VI); DFP is the direct FP bound
for _name, _pair in {
    "D3QN-CUP": ("d3qn", "cup"),
    "DCD-CUP": ("dcd", "cup"),
    "SC-CUP": ("sc", "cup"),
    "D3QN-PPO": ("d3qn", "ppo"),
    "D3QN-WMMSE": ("d3qn", "wmmse-lite"),
    "SC-WMMSE": ("sc", "wmmse-lite"),
    "DCD-WMMSE": ("dcd", "wmmse-lite"),
    "DCD-DFP": ("dcd", "fp"),
}.items():
    SCHEMES.register(_name, _pair, description=f"{_pair[0]} association, {_pair[1]} beamforming")


@dataclass
class CatnScheme:
    """A built scheme: its name, the two components and the options they were built with."""

    name: str
    association: Any
    beamforming: Any
    options: CatnSchemeOptions = field(default_factory=CatnSchemeOptions)

    @property
    def pair(self) -> tuple[str, str]:
        """(association name, beamforming name)."""
        return split_scheme(self.name)

    @property
    def learns(self) -> bool:
        return bool(self.association.learns or self.beamforming.learns)

    def state_dict(self) -> dict[str, Any]:
        return {
            "association": self.association.state_dict(),
            "beamforming": self.beamforming.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.association.load_state_dict(state["association"])
        self.beamforming.load_state_dict(state["beamforming"])


def split_scheme(name: str) -> tuple[str, str]:
    """(association, beamforming) of a registered scheme name, or of ``"assoc+beam"``."""
    if "+" in name:
        association, beamforming = name.split("+", 1)
        ASSOCIATIONS.entry(association)
        BEAMFORMERS.entry(beamforming)
        return association, beamforming
    return SCHEMES.entry(name).factory


def scheme_env_config(name: str, base: CatnEnvConfig | dict | None = None) -> CatnEnvConfig:
    """The env config a scheme runs on: ``base`` (a config, or a dict of overrides of the
    defaults) with the fields its components require (what the ledger counts, Table I)."""
    association, beamforming = split_scheme(name)
    data = base.model_dump() if isinstance(base, CatnEnvConfig) else dict(base or {})
    for entry in (ASSOCIATIONS.entry(association), BEAMFORMERS.entry(beamforming)):
        data.update(entry.tags.get("env", {}))
    return CatnEnvConfig.from_dict(data, what="catn env")


def build_catn_env(
    name: str,
    scenario: CatnConfig,
    env: CatnEnvConfig | dict | None = None,
    *,
    batch_size: int = 1,
    device: str | torch.device = "cpu",
) -> CatnEnv:
    """The CATN game for scheme ``name`` (see :func:`scheme_env_config`)."""
    return CatnEnv(scenario, scheme_env_config(name, env), batch_size=batch_size, device=device)


def build_scheme(
    name: str, env: CatnEnv, options: CatnSchemeOptions | dict | None = None
) -> CatnScheme:
    """Fresh components of scheme ``name`` (a registered name or ``"assoc+beam"``) on ``env``.

    The env must carry the information the components need (:func:`build_catn_env`).
    """
    association, beamforming = split_scheme(name)
    if not isinstance(options, CatnSchemeOptions):
        options = CatnSchemeOptions.from_dict(dict(options or {}), what="scheme options")
    required = scheme_env_config(name, env.config)
    if required != env.config:
        raise ConfigError(
            f"scheme {name!r} needs the env config {required.model_dump()}, the env has "
            f"{env.config.model_dump()}; build it with build_catn_env"
        )
    return CatnScheme(
        name,
        ASSOCIATIONS.build(association, env, options),
        BEAMFORMERS.build(beamforming, env, options),
        options,
    )
