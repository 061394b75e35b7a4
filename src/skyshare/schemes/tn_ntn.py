"""The seed 001 TN-NTN schemes, one registry, and the env kind's one online loop.

A TN-NTN scheme plays :class:`~skyshare.envs.tn_ntn.TnNtnEnv` turn by turn:
``decide(env, turn) -> actions (B, N, S)`` long (0 = off, k = user slot k - 1) for the N agents
of the current turn. ``formulation`` says which game it plays: ``"decomposed"`` (RL2, one
agent per SRB, M turns per frame) or ``"per_bs"`` (RL1, one agent per BS, one turn). Registered
in :data:`TN_NTN_SCHEMES`:

* ``decomposed MAPPO-L`` (learns): the proposed method, MAPPO with a centralised critic and
  per-user Lagrange multipliers on (RL2) (:mod:`skyshare.rl.mappo`);
* ``MAPPO-L`` (learns): the same learner on (RL1) (one agent per BS over all F subchannels);
* ``IPPO-L`` (learns): (RL1) with each agent's critic on its own observation;
* ``random`` (no): every subchannel to a uniformly random active user of its BS;
* ``round-robin`` (no): subchannel f of BS n to its (f mod A_n)-th active user;
* ``greedy-BR`` (no): the centralized full-CSI reference, QoS-first greedy then best response
  (:func:`~skyshare.solvers.ofdm_allocation.greedy_best_response`), computed at the frame's
  first turn from every channel and played SRB by SRB.

The learners train with their own loop (:meth:`LearnedScheme.train`, MAPPO's collection loop
over turns and frames); :func:`run_tn_ntn` plays any scheme (learned ones as
``TnNtnSchemeOptions.play`` says, without learning) for a number of frames and records the
per-frame outcome, which is what the dynamic test (Fig. 4) and the reference lines of Fig. 3
need. Factories are called as
``factory(env, options)`` with a :class:`TnNtnSchemeOptions`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from skyshare.errors import ConfigError
from skyshare.schemes.base import Registry, Stateless

__all__ = [
    "TN_NTN_SCHEMES",
    "FrameRule",
    "LearnedScheme",
    "TnNtnRun",
    "TnNtnSchemeOptions",
    "run_tn_ntn",
]

TN_NTN_SCHEMES: Registry[Any] = Registry("tn-ntn scheme")
PLAY_MODES = ("sample", "greedy")
"""How a trained learner plays (:class:`TnNtnSchemeOptions`)."""


@dataclass(frozen=True)
class TnNtnSchemeOptions:
    """What a TN-NTN scheme factory receives.

    Attributes:
        seed: seeds the scheme's own generator (sampling, network initialisation).
        learner: :class:`~skyshare.rl.mappo.MappoConfig` overrides for the learned schemes.
        reference: keyword arguments of :func:`greedy_best_response` for ``greedy-BR``.
        play: how the learned schemes play once trained: ``"sample"`` draws from the trained
            stochastic policy (the policy PPO optimised and the multipliers constrained), or
            ``"greedy"`` the most probable allowed choice of every subchannel head (MAPPO's
            deterministic evaluation). See docs/experiments/tn_ntn.md for why they differ.
    """

    seed: int = 0
    learner: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)
    play: str = "sample"

    def __post_init__(self) -> None:
        if self.play not in PLAY_MODES:
            raise ConfigError(f"play must be one of {', '.join(PLAY_MODES)}, got {self.play!r}")


def _block_actions(env: Any, assignment: torch.Tensor) -> torch.Tensor:
    """The current turn's slice of a full-frame assignment (B, N, F) (-1 off) as actions."""
    return assignment[..., env.block(env.turn)] + 1


class FrameRule(Stateless):
    """A rule that fixes the whole frame's assignment at the first turn, then plays it SRB by
    SRB (it sees every channel, so it needs no Psi).

    Args:
        env: the env it plays. allocate: ``allocate(env) -> (B, N, F)`` long, -1 off.
    """

    learns = False

    def __init__(self, env: Any, allocate: Any) -> None:
        self.formulation = env.formulation
        self.allocate = allocate
        self._assignment: torch.Tensor | None = None

    def decide(self, env: Any, turn: Any) -> torch.Tensor:
        if turn.turn == 0 or self._assignment is None:
            self._assignment = self.allocate(env)
        return _block_actions(env, self._assignment)


@TN_NTN_SCHEMES.register("random", learns=False, description="uniform random active user")
class RandomRule(Stateless):
    """Every subchannel to a uniformly random active user of its BS (seeded)."""

    learns = False

    def __init__(self, env: Any, options: TnNtnSchemeOptions | None = None) -> None:
        self.formulation = env.formulation
        self.generator = torch.Generator(device=env.device)
        self.generator.manual_seed(int((options or TnNtnSchemeOptions()).seed))

    def decide(self, env: Any, turn: Any) -> torch.Tensor:
        return env.random_actions(self.generator)


@TN_NTN_SCHEMES.register("round-robin", learns=False, description="f mod A_n-th active user")
def _round_robin(env: Any, options: TnNtnSchemeOptions | None = None) -> FrameRule:
    from skyshare.solvers.ofdm_allocation import round_robin_allocation

    return FrameRule(env, lambda e: round_robin_allocation(e.state.active, e.n_subchannels))


def check_reference_options(reference: dict[str, Any]) -> None:
    """A ConfigError for a keyword that greedy-BR's solver
    (:func:`~skyshare.solvers.ofdm_allocation.greedy_best_response`) does not take."""
    from skyshare.solvers.ofdm_allocation import greedy_best_response

    allowed = set(greedy_best_response.__kwdefaults__ or {}) - {"generator"}
    unknown = sorted(set(reference) - allowed)
    if unknown:
        raise ConfigError(
            f"greedy-BR (reference): unknown option(s) {', '.join(unknown)}; allowed: "
            f"{', '.join(sorted(allowed))}"
        )


@TN_NTN_SCHEMES.register(
    "greedy-BR", learns=False, description="centralized full-CSI greedy + best response"
)
def _greedy_best_response(env: Any, options: TnNtnSchemeOptions | None = None) -> FrameRule:
    """:func:`~skyshare.solvers.ofdm_allocation.greedy_best_response` on the frame's channels,
    with ``options.reference`` as its keyword arguments (checked here)."""
    from skyshare.solvers.ofdm_allocation import OfdmAllocationProblem, greedy_best_response

    options = options or TnNtnSchemeOptions()
    check_reference_options(options.reference)
    generator = torch.Generator(device=env.device)
    generator.manual_seed(int(options.seed))

    def allocate(e: Any) -> torch.Tensor:
        scenario, state = e.scenario, e.state
        problem = OfdmAllocationProblem(
            gain=state.gain,
            active=state.active,
            p_max_w=scenario.p_max_w,
            srb_size=scenario.config.srb_size,
            min_rate_bps=scenario.min_rate_bps,
            subchannel_bandwidth_hz=scenario.subchannel_bandwidth_hz,
        )
        return greedy_best_response(problem, **options.reference, generator=generator).assignment

    return FrameRule(env, allocate)


class LearnedScheme:
    """A MAPPO-family learner as a scheme (:mod:`skyshare.rl.mappo`).

    Args:
        env: the env it plays (its formulation must be the scheme's).
        critic: ``"central"`` (MAPPO) or ``"local"`` (IPPO).
        options: ``learner`` overrides of :class:`~skyshare.rl.mappo.MappoConfig`; ``seed``.
    """

    learns = True

    def __init__(
        self, env: Any, critic: str, formulation: str, options: TnNtnSchemeOptions | None = None
    ) -> None:
        from skyshare.rl.mappo import MappoAgents, MappoConfig

        if env.formulation != formulation:
            raise ConfigError(
                f"this scheme plays the {formulation!r} game; the env is {env.formulation!r} "
                f"(TnNtnEnv(..., formulation={formulation!r}))"
            )
        options = options or TnNtnSchemeOptions()
        self.formulation = formulation
        self.deterministic = options.play == "greedy"
        config = MappoConfig(**{"seed": int(options.seed), **options.learner, "critic": critic})
        self.agents = MappoAgents.for_env(env, config)

    def train(self, env: Any, frames: int, **kwargs: Any) -> Any:
        """MAPPO's training loop (:meth:`MappoAgents.train`): per-episode curves."""
        return self.agents.train(env, frames, **kwargs)

    def decide(self, env: Any, turn: Any) -> torch.Tensor:
        """A draw of the trained policy, or its most probable allowed choice per subchannel
        (``options.play``); evaluation: the normalisers' statistics are not updated."""
        actions, _, _ = self.agents.act(
            turn, deterministic=self.deterministic, update_statistics=False
        )
        return actions

    def learn(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        """Learning happens in :meth:`train`; the online loop only evaluates."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return self.agents.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.agents.load_state_dict(state)


def _learned(critic: str, formulation: str):
    def factory(env: Any, options: TnNtnSchemeOptions | None = None) -> LearnedScheme:
        return LearnedScheme(env, critic, formulation, options)

    return factory


TN_NTN_SCHEMES.register(
    "decomposed MAPPO-L",
    learns=True,
    formulation="decomposed",
    description="proposed: MAPPO-Lagrangian on the SRB-decomposed game (RL2)",
)(_learned("central", "decomposed"))
TN_NTN_SCHEMES.register(
    "MAPPO-L",
    learns=True,
    formulation="per_bs",
    description="MAPPO-Lagrangian on (RL1), one agent per BS",
)(_learned("central", "per_bs"))
TN_NTN_SCHEMES.register(
    "IPPO-L",
    learns=True,
    formulation="per_bs",
    description="IPPO-Lagrangian on (RL1), local critics",
)(_learned("local", "per_bs"))


def scheme_formulation(name: str) -> str:
    """The game a registered scheme plays: ``"decomposed"`` for the rules (any game works for
    them; the decomposed one is the proposed method's), else its registered formulation."""
    return TN_NTN_SCHEMES.entry(name).tags.get("formulation", "decomposed")


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------


@dataclass
class TnNtnRun:
    """Per-frame outcome of :func:`run_tn_ntn`, (T, B) each (T frames, B environments).

    Attributes:
        reward: sum_m r_m of the frame ((9) = sum of the group rewards (10)), Mbit/s per user.
        cost: sum over user slots of cost (11), Mbit/s.
        throughput: system sum rate, bit/s. qos_miss: active users below eta.
        active_users: active users in the system.
        decision_time_s: (T,) wall time of the scheme's decisions per frame (all turns, all B).
        wall_time_s: the whole run.
    """

    reward: torch.Tensor
    cost: torch.Tensor
    throughput: torch.Tensor
    qos_miss: torch.Tensor
    active_users: torch.Tensor
    decision_time_s: torch.Tensor
    wall_time_s: float


def run_tn_ntn(
    env: Any,
    scheme: Any,
    frames: int | None = None,
    *,
    seed: int | None = None,
    progress: bool = False,
) -> TnNtnRun:
    """Play ``scheme`` on ``env`` from ``env.reset(seed)`` for ``frames`` frames (default: one
    episode, the scenario's ``horizon_slots``), resetting at every episode end.

    Args:
        env: a :class:`~skyshare.envs.tn_ntn.TnNtnEnv` of the scheme's formulation.
        scheme: a registered scheme (``decide(env, turn)``).
        frames: frames to play (>= 1). seed: the first reset's seed.
        progress: a progress bar over frames.
    """
    from tqdm.auto import tqdm

    if getattr(scheme, "formulation", env.formulation) != env.formulation and scheme.learns:
        raise ConfigError(f"scheme plays {scheme.formulation!r}, env is {env.formulation!r}")
    horizon = env.scenario.config.horizon_slots
    frames = horizon if frames is None else frames
    if isinstance(frames, bool) or int(frames) != frames or frames < 1:
        raise ConfigError(f"frames must be an integer >= 1, got {frames!r}")
    start = time.perf_counter()
    env.reset(seed)
    rows: dict[str, list[torch.Tensor]] = {
        name: [] for name in ("reward", "cost", "throughput", "qos_miss", "active_users")
    }
    decision = []
    with torch.no_grad():
        for _ in tqdm(range(int(frames)), disable=not progress, desc="frames"):
            if env.done:
                env.reset(None)
            result, spent = None, 0.0
            for _ in range(env.n_turns):
                turn = env.observe()
                tick = time.perf_counter()
                actions = scheme.decide(env, turn)
                spent += time.perf_counter() - tick
                result = env.act(actions)
            rows["reward"].append(result.reward.sum(-1).double())
            rows["cost"].append(result.cost.sum((-2, -1)).double())
            rows["throughput"].append(result.throughput.double())
            rows["qos_miss"].append(result.qos_miss.double())
            rows["active_users"].append(result.active.sum((-2, -1)).double())
            decision.append(spent)
    stacked = {name: torch.stack(values) for name, values in rows.items()}
    return TnNtnRun(
        **stacked,
        decision_time_s=torch.tensor(decision, dtype=torch.float64),
        wall_time_s=time.perf_counter() - start,
    )
