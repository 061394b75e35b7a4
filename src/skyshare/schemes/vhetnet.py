"""The beamforming schemes of seed 003 (HAPS vHetNet, PFBWD), one registry, and the one loop.

A vHetNet scheme designs the cell-free beamformers of a batch of independent realizations,
``decide(problem) -> CellFreeResult`` on a
:class:`~skyshare.solvers.cellfree_problem.CellFreeProblem`. Registered in
:data:`VHETNET_SCHEMES` (factory ``factory(options)``, ``options`` = the solver's keyword
arguments, unknown keys refused with their names):

* ``centralized``: the paper's upper bound, SCA over all variables with CVXPY (Clarabel by
  default) (:func:`~skyshare.solvers.pf_sca.sca_centralized`);
* ``distributed``: the two-level PFBWD, ALM outside, 3-block ADMM inside, one local convex
  problem per BS (:func:`~skyshare.solvers.pfbwd.pfbwd`); option ``executor="ray"`` puts every
  BS in its own Ray actor (:mod:`skyshare.solvers.pf_ray`), ``"local"`` (default) runs the
  same agents as plain objects;
* ``pf-wmmse``: PF-weighted WMMSE for cell-free joint transmission, the fast optimisation
  reference (:func:`~skyshare.solvers.pf_wmmse.pf_wmmse`);
* ``mrt``: every BS sends an MRT beam to every UE with ``P_t / K`` each (no optimisation).

:func:`run_vhetnet` plays any scheme on ``n_realizations`` independent realizations of a
:class:`~skyshare.scenarios.vhetnet.VhetnetScenario` (the env kind's one loop, used by every
``vhetnet-*`` experiment). The solver modules are imported when a scheme is built, so that
``import skyshare`` does not pay for CVXPY.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from skyshare.errors import ConfigError
from skyshare.schemes.base import Registry, Stateless
from skyshare.solvers.cellfree_problem import CellFreeProblem, CellFreeResult

if TYPE_CHECKING:
    from skyshare.scenarios.vhetnet import VhetnetScenario

__all__ = [
    "OBJECT_OPTIONS",
    "VHETNET_SCHEMES",
    "OptionError",
    "SolverScheme",
    "VhetnetRealizations",
    "check_preset_options",
    "mrt_beamformers",
    "run_vhetnet",
]

VHETNET_SCHEMES: Registry[Any] = Registry("vhetnet scheme")

OBJECT_OPTIONS = {
    "agents": "an agent group (InProcessAgents, ray_agents(...), a SignalingProxy)",
    "ledger": "a SignalingLedger",
    "W0": "a tensor of initial beamformers",
}
"""Solver options that take Python objects: passed in Python, never from a preset."""


class OptionError(ConfigError):
    """A scheme option with a bad value. ``option`` is its name and ``problem`` what is wrong,
    so that a caller can name its full path (:meth:`at`, e.g. ``options.distributed.executor``).
    """

    def __init__(self, scheme: str, option: str, problem: str) -> None:
        self.scheme, self.option, self.problem = scheme, option, problem
        super().__init__(f"{scheme}: option {option}: {problem}")

    def __reduce__(self):  # picklable (raised in worker processes and Ray tasks)
        return (type(self), (self.scheme, self.option, self.problem))

    def at(self, path: str) -> ConfigError:
        """The same error naming the option by ``path`` (its dotted path in the preset)."""
        return ConfigError(f"{path}: {self.problem}")


def check_preset_options(scheme: str, options: dict[str, Any]) -> None:
    """Refuse the options that take Python objects (:data:`OBJECT_OPTIONS`) from a preset:
    a plain value there (``--set options.distributed.agents=3``) would only fail inside the
    solver. An :class:`OptionError` naming the option."""
    for option in options:
        if option in OBJECT_OPTIONS:
            raise OptionError(
                scheme,
                option,
                f"takes {OBJECT_OPTIONS[option]}, a Python object, not a preset value; leave "
                f"it out (pass {option}= to the solver in Python instead)",
            )


def _clean(message: str, option: str) -> str:
    """A solver's message without its prefix and leading option name (the path replaces it)."""
    for prefix in ("pfbwd: ", f"{option} "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    return message


def _progress(option: str, value: Any) -> None:
    """``progress`` (a progress bar) is a boolean: ``abc`` would otherwise pass as true."""
    if option == "progress" and not isinstance(value, bool):
        raise ConfigError(f"must be true or false, got {value!r}")


def _with_defaults(check: Callable[..., Any], solve: Callable[..., Any]) -> Callable:
    """``check_value(option, value)``: the solver's own argument check ``check(**arguments)``
    with ``option`` set to ``value`` and its other arguments at the solver's defaults (an
    option ``check`` does not take is left alone)."""
    takes = set(inspect.signature(check).parameters)
    defaults = {
        parameter.name: parameter.default
        for parameter in inspect.signature(solve).parameters.values()
        if parameter.name in takes
    }

    def check_value(option: str, value: Any) -> None:
        if option in defaults:
            check(**{**defaults, option: value})

    return check_value


def mrt_beamformers(problem: CellFreeProblem) -> torch.Tensor:
    """MRT joint transmission: ``w_{t,k} = sqrt(P_t / K) h_{t,k} / ||h_{t,k}||``.

    Every BS spends its whole budget, split equally; the desired terms add coherently. A zero
    channel gets a zero beam.

    Returns:
        W: (B, T, K, M_max) complex.
    """
    K = problem.shape[1]
    H = problem.H * problem.antenna_mask[None, None]  # (B, K, T, M)
    norm = torch.linalg.vector_norm(H, dim=-1, keepdim=True)  # (B, K, T, 1)
    direction = torch.where(norm > 0, H / norm.clamp_min(torch.finfo(norm.dtype).tiny), 0)
    scale = torch.sqrt(problem.p_max.to(norm.dtype) / K)[None, None, :, None]  # (1, 1, T, 1)
    return (direction * scale).permute(0, 2, 1, 3).contiguous()


class SolverScheme(Stateless):
    """A seed 003 solver as a scheme: ``decide(problem) -> CellFreeResult``.

    Args:
        solve: ``solve(problem, **options) -> CellFreeResult``.
        options: the solver's keyword arguments; a key the solver does not take is refused
            with the names it does take.
        name: the scheme's registered name (for messages).
        more_options: names the solver takes through ``**options`` (e.g. PfbwdConfig fields).
        checks: ``check(option, value)`` functions raising a :class:`ConfigError` for a bad
            value, run on every option but the Python objects (:data:`OBJECT_OPTIONS`) when the
            scheme is built, so that a bad value fails before any solve: an
            :class:`OptionError` naming the option.
    """

    def __init__(
        self,
        solve: Callable[..., CellFreeResult],
        options: dict[str, Any] | None,
        name: str,
        *,
        more_options: tuple[str, ...] = (),
        checks: tuple[Callable[[str, Any], None], ...] = (),
    ) -> None:
        self.solve, self.name = solve, name
        self.options = dict(options or {})
        accepted = [
            parameter.name
            for parameter in inspect.signature(solve).parameters.values()
            if parameter.kind is inspect.Parameter.KEYWORD_ONLY
        ]
        accepted += [option for option in more_options if option not in accepted]
        unknown = sorted(set(self.options) - set(accepted))
        if unknown:
            raise ConfigError(
                f"{name}: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(accepted)}"
            )
        if "progress" in accepted:
            checks = (*checks, _progress)
        for option, value in self.options.items():
            if option in OBJECT_OPTIONS:
                continue
            for check in checks:
                try:
                    check(option, value)
                except OptionError:
                    raise
                except ConfigError as exc:
                    raise OptionError(name, option, _clean(str(exc), option)) from None
                except TypeError:  # a solver check comparing a value of the wrong type
                    raise OptionError(name, option, f"wrong type: {value!r}") from None

    def decide(self, problem: CellFreeProblem) -> CellFreeResult:
        """The beamformers of every instance of ``problem``."""
        return self.solve(problem, **self.options)


def _mrt(problem: CellFreeProblem) -> CellFreeResult:
    start = time.perf_counter()
    W = mrt_beamformers(problem)
    evaluation = problem.evaluate(W)
    B = problem.shape[0]
    return CellFreeResult(
        W=W,
        evaluation=evaluation,
        objective_trace=evaluation.pf_objective[:, None],
        iterations=torch.zeros(B, dtype=torch.long),
        converged=torch.ones(B, dtype=torch.bool),
        infeasible=~evaluation.meets_gamma_min().all(-1),
        wall_time_s=time.perf_counter() - start,
        solver="mrt",
        traces={},
        info={},
    )


@VHETNET_SCHEMES.register(
    "centralized", distributed=False, description="SCA over all BSs at once (CVXPY, Clarabel)"
)
def _centralized(options: dict[str, Any] | None = None) -> SolverScheme:
    return _sca_scheme(options, "centralized")


def _sca_scheme(options: dict[str, Any] | None, name: str) -> SolverScheme:
    """``sca_centralized`` with its option values checked when built (max_iter, tol,
    interference, log_form, soc_squarings, solver: installed, solver_options: a mapping)."""
    from skyshare.solvers.pf_sca import _check_arguments, _check_solver, sca_centralized

    def solver(option: str, value: Any) -> None:
        if option == "solver":
            _check_solver(value)
        elif option == "solver_options" and value is not None and not isinstance(value, dict):
            raise ConfigError(f"must be a mapping of cvxpy solve() arguments, got {value!r}")

    checks = (_with_defaults(_check_arguments, sca_centralized), solver)
    return SolverScheme(sca_centralized, options, name, checks=checks)


@VHETNET_SCHEMES.register(
    "centralized-jensen",
    distributed=False,
    description="centralized SCA with the distributed algorithm's per-BS Jensen bound",
)
def _centralized_jensen(options: dict[str, Any] | None = None) -> SolverScheme:
    """The centralized SCA on the problem the distributed PFBWD solves (``interference=
    "jensen"``): its gap to ``distributed`` is the price of distribution alone, its gap to
    ``centralized`` the price of the per-BS interference bound."""
    return _sca_scheme({"interference": "jensen", **(options or {})}, "centralized-jensen")


@VHETNET_SCHEMES.register(
    "distributed", distributed=True, description="two-level PFBWD: ALM + 3-block ADMM per BS"
)
def _distributed(options: dict[str, Any] | None = None) -> SolverScheme:
    from dataclasses import fields

    from skyshare.solvers.pf_agents import EXECUTORS
    from skyshare.solvers.pfbwd import PfbwdConfig, pfbwd

    extra = tuple(f.name for f in fields(PfbwdConfig))  # pfbwd's **options

    def check(option: str, value: Any) -> None:
        if option in extra:
            try:
                PfbwdConfig(**{option: value})  # one field at a time: the message names it
            except TypeError:  # e.g. omega = "abc" compared with numbers
                raise ConfigError(f"must be a number, got {value!r}") from None
        elif option == "executor" and (not isinstance(value, str) or value not in EXECUTORS):
            raise ConfigError(f"must be one of {', '.join(EXECUTORS)}, got {value!r}")

    scheme = SolverScheme(pfbwd, options, "distributed", more_options=extra, checks=(check,))
    PfbwdConfig(**{k: v for k, v in scheme.options.items() if k in extra})  # values checked now
    return scheme


@VHETNET_SCHEMES.register(
    "pf-wmmse", distributed=False, description="PF-weighted WMMSE, per-BS power (reference)"
)
def _pf_wmmse(options: dict[str, Any] | None = None) -> SolverScheme:
    from skyshare.solvers.pf_wmmse import _check_arguments, pf_wmmse

    checks = (_with_defaults(_check_arguments, pf_wmmse),)
    return SolverScheme(pf_wmmse, options, "pf-wmmse", checks=checks)


@VHETNET_SCHEMES.register(
    "mrt", distributed=True, description="MRT joint transmission, P_t/K per UE (no optimisation)"
)
def _mrt_scheme(options: dict[str, Any] | None = None) -> SolverScheme:
    return SolverScheme(_mrt, options, "mrt")


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------


@dataclass
class VhetnetRealizations:
    """Per-realization outcomes of :func:`run_vhetnet` (R realizations, K UEs, T BSs).

    Attributes:
        se: (R, K) SE per UE, bit/s/Hz. pf_objective: (R,) ``sum_k ln SE_k``.
        sinr: (R, K). power: (R, T) W. iterations: (R,) (outer) iterations.
        converged, infeasible: (R,) bool. time_s: (R,) wall time per realization (a batch's
            time split equally over its realizations).
        traces: per name, a list with one (R_chunk, I) tensor per chunk (e.g. residuals).
        info: per chunk, the solver's ``info`` dict.
    """

    se: torch.Tensor
    pf_objective: torch.Tensor
    sinr: torch.Tensor
    power: torch.Tensor
    iterations: torch.Tensor
    converged: torch.Tensor
    infeasible: torch.Tensor
    time_s: torch.Tensor
    traces: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    info: list[dict[str, Any]] = field(default_factory=list)


def run_vhetnet(
    scenario: VhetnetScenario,
    scheme: Any,
    n_realizations: int,
    *,
    seed: int | None = None,
    progress: bool | None = False,
) -> VhetnetRealizations:
    """Play ``scheme`` on ``n_realizations`` independent realizations (the vHetNet loop).

    The scenario's batch is the chunk size: realizations ``0..B-1`` come from
    ``scenario.reset(seed)``, the next B from ``scenario.step()`` and so on (the last chunk
    is cut to ``n_realizations``), so two schemes run with the same seed and batch see the
    same channels.

    Args:
        scenario: the vHetNet process (its ``batch_size`` = realizations per solver call).
        scheme: anything with ``decide(problem) -> CellFreeResult``.
        n_realizations: R >= 1.
        seed: seed of the scenario's reset.
        progress: a progress bar over realizations (None: only on a terminal).
    """
    from tqdm.auto import tqdm

    if isinstance(n_realizations, bool) or int(n_realizations) != n_realizations:
        raise ConfigError(f"n_realizations must be an integer >= 1, got {n_realizations!r}")
    if n_realizations < 1:
        raise ConfigError(f"n_realizations must be an integer >= 1, got {n_realizations}")
    chunks: list[tuple[CellFreeResult, int]] = []
    done = 0
    with tqdm(
        total=int(n_realizations),
        desc=getattr(scheme, "name", type(scheme).__name__),
        disable=None if progress is None else not progress,
        leave=False,
    ) as bar:
        while done < n_realizations:
            state = scenario.reset(seed) if done == 0 else scenario.step()
            take = min(scenario.batch_size, int(n_realizations) - done)
            problem = state.problem()
            if take < scenario.batch_size:
                problem = problem.subset(slice(0, take))
            chunks.append((scheme.decide(problem), take))
            done += take
            bar.update(take)
    return _collect(chunks)


def _collect(chunks: list[tuple[CellFreeResult, int]]) -> VhetnetRealizations:
    def cat(get: Callable[[CellFreeResult], torch.Tensor]) -> torch.Tensor:
        return torch.cat([get(result).detach().cpu() for result, _ in chunks])

    traces: dict[str, list[torch.Tensor]] = {}
    for result, _ in chunks:
        for name, trace in result.traces.items():
            traces.setdefault(name, []).append(trace.detach().cpu())
        traces.setdefault("objective", []).append(result.objective_trace.detach().cpu())
    time_s = torch.cat(
        [
            torch.full((take,), result.wall_time_s / take, dtype=torch.float64)
            for result, take in chunks
        ]
    )
    return VhetnetRealizations(
        se=cat(lambda r: r.evaluation.se),
        pf_objective=cat(lambda r: r.evaluation.pf_objective),
        sinr=cat(lambda r: r.evaluation.sinr),
        power=cat(lambda r: r.evaluation.power),
        iterations=cat(lambda r: r.iterations),
        converged=cat(lambda r: r.converged),
        infeasible=cat(lambda r: r.infeasible),
        time_s=time_s,
        traces=traces,
        info=[result.info for result, _ in chunks],
    )
