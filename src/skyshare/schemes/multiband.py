"""The five power-allocation schemes of seed 004 §V, one registry, and the one online loop.

A multiband scheme decides the power of every user on every channel for the environment's
current block, ``decide(env) -> MultibandDecision`` with ``power: (B, C*U, F)``, from
:meth:`MultibandEnv.problem` (the block's
:class:`~skyshare.solvers.multiband_problem.MultibandProblem`) and, for the learned ones, the
observations ``S_b(t)`` (17). Registered in :data:`MULTIBAND_SCHEMES` (registration order is
the order of the paper's figures):

* ``random`` (learns no): each user's budget ``P_b(t)/U`` (eq. (14)) split at random,
  Dirichlet(1) (:func:`~skyshare.solvers.waterfilling.random_power`);
* ``SSWF`` (no): selfish single-user water-filling on the noise floors, eq. (7) without ICI
  (:func:`~skyshare.solvers.waterfilling.sswf`);
* ``FLWF`` (no): the forward-looking game (15)-(16) to convergence from ``flwf_starts`` random
  starts (:func:`~skyshare.solvers.flwf.flwf_random_starts`); the first start is played, the
  reported value is the **mean over the starts** (§V);
* ``TD3-MIX`` (yes): the trained shared actor's allocation (§IV-B, §V);
* ``TD3-MIX+FLWF`` (yes): the actor's allocation starts FLWF, run to convergence (§IV-C,
  Algorithm 1).

Every factory is called as ``factory(env, options)`` with a :class:`MultibandSchemeOptions`
(``MULTIBAND_SCHEMES.build(name, env, options)``). Adding a scheme is one registration::

    @MULTIBAND_SCHEMES.register("equal power", learns=False, description="P_b(t)/(U N_f)")
    class EqualPower(Stateless):
        def __init__(self, env, options=None):
            pass

        def decide(self, env):
            return MultibandDecision(env.scenario.equal_power(env.state))

:func:`run_multiband` plays whole episodes of any scheme (the env kind's one online loop,
used by ``skyshare run multiband-fig5/6/7``). Learned schemes are trained by their agents' own
loop (Algorithm 1, :meth:`TD3MixScheme.train`); their ``learn`` is a no-op, so the online loop
only evaluates.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from skyshare.errors import ConfigError
from skyshare.schemes.base import Registry, Stateless
from skyshare.solvers.flwf import flwf, flwf_random_starts
from skyshare.solvers.waterfilling import RANDOM_POWER_DISTRIBUTIONS, random_power, sswf

if TYPE_CHECKING:
    from skyshare.envs.multiband import MultibandEnv

__all__ = [
    "MULTIBAND_SCHEMES",
    "FlwfStarts",
    "MultibandBlock",
    "MultibandDecision",
    "MultibandRun",
    "MultibandSchemeOptions",
    "PowerRule",
    "RandomPower",
    "SelfishWaterFilling",
    "TD3MixScheme",
    "run_multiband",
    "td3_mix_config",
]

MULTIBAND_SCHEMES: Registry[Any] = Registry("multiband scheme")


@dataclass(frozen=True)
class MultibandSchemeOptions:
    """What the multiband scheme factories read (each reads only its own fields).

    Attributes:
        seed: seed of the scheme's own generator (random splits, FLWF starts, TD3-MIX
            initialisation and noise), separate from the environment's channel generator.
        distribution: of the random splits (``random`` and the FLWF starts): "dirichlet"
            (default, uniform on the simplex) or "uniform".
        flwf_starts: S, random initialisations of ``FLWF`` (§V: 100).
        flwf_max_iter, flwf_tol: FLWF "until convergence" (``FLWF`` and online
            ``TD3-MIX+FLWF``): most iterations and the equilibrium-gap threshold.
        td3: :class:`~skyshare.rl.td3_mix.TD3MixConfig` fields for new TD3-MIX agents (the
            ``scheme`` field is set by the registered name).
        agents: trained TD3-MIX agents to wrap instead of new ones (the experiment trains
            them, with checkpoints, and then builds the scheme around them).
    """

    seed: int = 0
    distribution: str = "dirichlet"
    flwf_starts: int = 100
    flwf_max_iter: int = 3000
    flwf_tol: float = 1e-4
    td3: dict[str, Any] = field(default_factory=dict)
    agents: Any = None

    def __post_init__(self) -> None:
        if self.distribution not in RANDOM_POWER_DISTRIBUTIONS:
            raise ConfigError(
                f"distribution must be one of {RANDOM_POWER_DISTRIBUTIONS}, got "
                f"{self.distribution!r}"
            )
        for name, least in (("seed", 0), ("flwf_starts", 1), ("flwf_max_iter", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < least:
                raise ConfigError(f"{name} must be an integer >= {least}, got {value!r}")
        if not (math.isfinite(self.flwf_tol) and self.flwf_tol >= 0):
            raise ConfigError(f"flwf_tol must be a finite number >= 0, got {self.flwf_tol}")


@dataclass
class MultibandDecision:
    """What a scheme plays in one block.

    Attributes:
        power: (B, C*U, F) float >= 0, within each user's budget ``P_b(t) / U`` (eq. (14)).
        diagnostics: per-block tensors with a leading B axis, e.g. for ``FLWF``
            ``start_capacity (B, S)`` (average capacity per cell of every start, bit/s/Hz),
            ``capacity_mean``, ``capacity_std``, ``capacity_best`` (B,), ``iterations`` and
            ``converged`` (B, S); for ``TD3-MIX+FLWF`` ``iterations``, ``converged`` (B, 1).
    """

    power: torch.Tensor
    diagnostics: dict[str, torch.Tensor] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# The schemes
# ---------------------------------------------------------------------------------------------


class PowerRule(Stateless):
    """Any allocation rule as an (unregistered) scheme: ``allocate(env) -> power (B, C*U, F)``
    for the env's current block, e.g. ``lambda e: e.action_to_power(e.random_actions(g))``.
    No diagnostics, no state of its own (a generator it closes over is the caller's)."""

    def __init__(self, allocate: Callable[[MultibandEnv], torch.Tensor]) -> None:
        self.allocate = allocate

    def decide(self, env: MultibandEnv) -> MultibandDecision:
        return MultibandDecision(self.allocate(env))


class _Seeded(Stateless):
    """A rule with its own generator: no learning, the generator state is the whole state."""

    def __init__(self, env: MultibandEnv, options: MultibandSchemeOptions | None) -> None:
        self.options = options if options is not None else MultibandSchemeOptions()
        self.generator = torch.Generator(device=env.device).manual_seed(int(self.options.seed))

    def state_dict(self) -> dict[str, Any]:
        """``{"generator": ByteTensor}``: the next decisions follow exactly after a load."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"].cpu())


@MULTIBAND_SCHEMES.register(
    "random", learns=False, description="random split of each user's budget (Dirichlet(1))"
)
class RandomPower(_Seeded):
    """The random, unoptimised benchmark of §V: every user spends ``P_b(t) / U`` (eq. (14)),
    split at random over the N_f channels (options.distribution)."""

    def decide(self, env: MultibandEnv) -> MultibandDecision:
        power = random_power(env.problem(), self.generator, distribution=self.options.distribution)
        return MultibandDecision(power)


@MULTIBAND_SCHEMES.register(
    "SSWF", learns=False, description="selfish single-user water-filling (ICI ignored)"
)
class SelfishWaterFilling(Stateless):
    """Selfish single-user water-filling (§V): each user water-fills ``P_b(t) / U`` over its
    noise floors ``sigma^2 / |w^H h|^2`` (eq. (7) without the ICI term). Deterministic."""

    def __init__(
        self, env: MultibandEnv | None = None, options: MultibandSchemeOptions | None = None
    ) -> None:
        self.options = options

    def decide(self, env: MultibandEnv) -> MultibandDecision:
        return MultibandDecision(sswf(env.problem()).power)


@MULTIBAND_SCHEMES.register(
    "FLWF", learns=False, description="forward-looking water-filling, mean over random starts"
)
class FlwfStarts(_Seeded):
    """The FLWF game (eqs. (7), (14)-(16)) to convergence (``flwf_max_iter``, ``flwf_tol``)
    from ``flwf_starts`` random starts per realization, all in one batch.

    The block is played with the first start's allocation (the next block needs one); the
    figure reports the mean over the starts (§V, "mean performance of FLWF over 100 random
    initializations"), in the diagnostics: ``start_capacity (B, S)``, ``capacity_mean``,
    ``capacity_std`` (n - 1; 0 for one start), ``capacity_best`` (B,), ``iterations`` and
    ``converged`` (B, S).
    """

    def decide(self, env: MultibandEnv) -> MultibandDecision:
        opts = self.options
        starts = flwf_random_starts(
            env.problem(),
            int(opts.flwf_starts),
            self.generator,
            max_iter=int(opts.flwf_max_iter),
            tol=float(opts.flwf_tol),
            distribution=opts.distribution,
        )
        B, S = starts.capacity.shape
        result = starts.result
        power = result.power.reshape(B, S, *result.power.shape[1:])[:, 0]
        return MultibandDecision(
            power,
            {
                "start_capacity": starts.capacity.contiguous(),
                "capacity_mean": starts.capacity_mean,
                "capacity_std": starts.capacity_std,
                "capacity_best": starts.capacity_max,
                "iterations": result.instance_iterations.reshape(B, S),
                "converged": result.converged.reshape(B, S),
            },
        )


def td3_mix_config(name: str, td3: dict[str, Any] | None = None) -> Any:
    """The TD3MixConfig of the learned scheme ``name`` (its ``td3_scheme`` tag) with the
    fields of ``td3``: what the experiment trains and records."""
    from skyshare.rl.td3_mix import TD3MixConfig

    tags = MULTIBAND_SCHEMES.entry(name).tags
    if "td3_scheme" not in tags:
        raise ConfigError(f"multiband scheme {name!r} is not a TD3-MIX scheme")
    return TD3MixConfig(scheme=tags["td3_scheme"], **dict(td3 or {}))


def _new_agents(env: MultibandEnv, name: str, options: MultibandSchemeOptions) -> Any:
    """Untrained TD3-MIX agents of scheme ``name`` sized for ``env``, with the config fields of
    ``options.td3`` and the agents' generator seeded with ``options.seed``."""
    from skyshare.rl.td3_mix import TD3MixAgents

    config = td3_mix_config(name, {**options.td3, "seed": int(options.seed)})
    return TD3MixAgents.for_env(env, config)


class TD3MixScheme:
    """TD3-MIX (§V) or TD3-MIX+FLWF (§IV-C) in online use: the shared actor's allocation
    ``p = env.action_to_power(pi_phi(S_b))`` is played as is (``use_flwf=False``), or starts
    FLWF, which runs until convergence (``max_iter``, ``tol``).

    Args:
        agents: the TD3-MIX agents (``act``, ``train``, ``state_dict``, ``load_state_dict``).
        use_flwf: run FLWF from the actor's allocation.
        max_iter, tol: FLWF's stopping rule online.

    ``learn`` is a no-op: Algorithm 1 interleaves FLWF, replay and updates in the agents' own
    loop, reached through :meth:`train`. The state is the agents' (networks, targets,
    optimisers, counters, generator).
    """

    learns = True

    def __init__(self, agents: Any, *, use_flwf: bool, max_iter: int, tol: float) -> None:
        self.agents = agents
        self.use_flwf = bool(use_flwf)
        self.max_iter, self.tol = int(max_iter), float(tol)

    @torch.no_grad()
    def decide(self, env: MultibandEnv) -> MultibandDecision:
        initial = env.action_to_power(self.agents.act(env.observe()))
        if not self.use_flwf:
            return MultibandDecision(initial)
        result = flwf(env.problem(), initial, max_iter=self.max_iter, tol=self.tol)
        return MultibandDecision(
            result.power,
            {
                "iterations": result.instance_iterations[:, None],
                "converged": result.converged[:, None],
            },
        )

    def learn(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        """Nothing per block: training is :meth:`train` (Algorithm 1). ``{}``."""
        return {}

    def train(self, env: MultibandEnv, n_steps: int, **kwargs: Any) -> Any:
        """``n_steps`` environment steps of Algorithm 1 on ``env`` (the agents' own loop);
        returns its training log."""
        return self.agents.train(env, n_steps, **kwargs)

    def state_dict(self) -> dict[str, Any]:
        return {"agents": self.agents.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.agents.load_state_dict(state["agents"])


def _td3_factory(name: str, use_flwf: bool):
    def build(env: MultibandEnv, options: MultibandSchemeOptions | None = None) -> TD3MixScheme:
        opts = options if options is not None else MultibandSchemeOptions()
        agents = opts.agents
        if agents is None:
            agents = _new_agents(env, name, opts)
        elif agents.config.uses_flwf != use_flwf:
            raise ConfigError(f"{name} needs agents trained for it, got {agents.config.scheme!r}")
        return TD3MixScheme(
            agents, use_flwf=use_flwf, max_iter=opts.flwf_max_iter, tol=opts.flwf_tol
        )

    return build


MULTIBAND_SCHEMES.register(
    "TD3-MIX",
    _td3_factory("TD3-MIX", use_flwf=False),
    learns=True,
    td3_scheme="td3_mix",
    description="trained TD3 + QMIX-style mixing actor, no FLWF",
)
MULTIBAND_SCHEMES.register(
    "TD3-MIX+FLWF",
    _td3_factory("TD3-MIX+FLWF", use_flwf=True),
    learns=True,
    td3_scheme="td3_mix_flwf",
    description="the actor's allocation starts FLWF (Algorithm 1)",
)


# ---------------------------------------------------------------------------------------------
# The online loop
# ---------------------------------------------------------------------------------------------


@dataclass
class MultibandBlock:
    """One played block of :func:`run_multiband` (B parallel environments).

    Attributes:
        episode: 0-based episode. t: 0-based block within the episode.
        capacity: (B, C) float, ``R_b`` (18) in bit/s/Hz, the rate each cell achieved
            (``env.step_power(...).reward``).
        power_ratio: (B, C) float, each BS's power over its block budget ``P_b(t)`` (<= 1 by
            eq. (6b); 1 for a scheme that spends the whole budget).
        decision_time_s: seconds ``scheme.decide`` took for the B environments.
        diagnostics: the decision's diagnostics (:class:`MultibandDecision`).
    """

    episode: int
    t: int
    capacity: torch.Tensor
    power_ratio: torch.Tensor
    decision_time_s: float
    diagnostics: dict[str, torch.Tensor]


@dataclass
class MultibandRun:
    """What :func:`run_multiband` returns: every block in play order.

    Attributes:
        blocks: ``n_episodes * T`` :class:`MultibandBlock`, episode-major.
        n_episodes: episodes played. batch_size: B.
    """

    blocks: list[MultibandBlock]
    n_episodes: int
    batch_size: int

    @property
    def capacity(self) -> torch.Tensor:
        """(n_episodes, T, B, C) float: ``R_b`` (18) of every block, bit/s/Hz."""
        stacked = torch.stack([block.capacity for block in self.blocks])
        return stacked.reshape(self.n_episodes, -1, *stacked.shape[1:])

    @property
    def power_ratio(self) -> torch.Tensor:
        """(n_episodes, T, B, C) float: BS power over ``P_b(t)`` in every block."""
        stacked = torch.stack([block.power_ratio for block in self.blocks])
        return stacked.reshape(self.n_episodes, -1, *stacked.shape[1:])

    @property
    def decision_time_s(self) -> list[float]:
        """Decision time of every block, seconds."""
        return [block.decision_time_s for block in self.blocks]


def _play_block(env: MultibandEnv, scheme: Any, episode: int) -> MultibandBlock:
    t = env.t
    start = time.perf_counter()
    decision = scheme.decide(env)
    elapsed = time.perf_counter() - start
    out = env.step_power(decision.power)
    return MultibandBlock(
        episode=episode,
        t=t,
        capacity=out.reward,
        power_ratio=env.scenario.bs_power(out.power) / out.budget,
        decision_time_s=elapsed,
        diagnostics=dict(decision.diagnostics),
    )


def run_multiband(
    env: MultibandEnv,
    scheme: Any,
    *,
    n_episodes: int = 1,
    seed: int | None = None,
    progress: bool | None = False,
) -> MultibandRun:
    """Play whole episodes of ``scheme`` on ``env`` (the multiband online loop).

    Every block: ``scheme.decide(env)`` (timed), ``env.step_power(decision.power)``, record
    the cells' capacities (18), the power over the budget and the diagnostics.

    Args:
        env: the batched :class:`~skyshare.envs.multiband.MultibandEnv` (B episodes at once).
        scheme: anything with ``decide(env) -> MultibandDecision`` (a registered scheme).
        n_episodes: episodes of T blocks, played one after the other.
        seed: seed of the first episode's reset (the later resets continue the env's stream),
            so two schemes run with the same seed see the same channels block by block (the
            schemes draw from their own generators, never the env's).
        progress: a progress bar (None: only on a terminal).

    Returns:
        :class:`MultibandRun`; ``run.capacity`` is ``(n_episodes, T, B, C)``.
    """
    from tqdm.auto import tqdm

    if isinstance(n_episodes, bool) or int(n_episodes) != n_episodes or n_episodes < 1:
        raise ConfigError(f"n_episodes must be an integer >= 1, got {n_episodes}")
    blocks: list[MultibandBlock] = []
    with (
        torch.no_grad(),
        tqdm(
            total=int(n_episodes) * env.horizon,
            desc=type(scheme).__name__,
            disable=None if progress is None else not progress,
            leave=False,
        ) as bar,
    ):
        for episode in range(int(n_episodes)):
            env.reset(seed if episode == 0 else None)
            while not env.done:
                blocks.append(_play_block(env, scheme, episode))
                bar.update(1)
    return MultibandRun(blocks=blocks, n_episodes=int(n_episodes), batch_size=env.B)
