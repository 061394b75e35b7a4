"""A seeded config fuzzer over every scenario, solver and environment.

A case is ``(target, config, options, batch size, dtype, seed)``: the config is drawn from the
declared ranges of the target's config model (pydantic ``ge``/``gt``/``le``/``lt``), with edge
values drawn often (minimum sizes, one antenna, co-located nodes, extreme distances, tiny and
huge powers, ``inf`` where a field allows it). Every case must end in one of

* ``ok``: finite outputs that meet their constraints (per-BS power budgets, interference
  limits where a solver claims feasibility, probabilities in [0, 1], rates >= 0), or
* ``rejected``: a clean :class:`~skyshare.errors.SkyshareError` (the config model refused the
  config, or a later step refused it with a message),

and anything else is a ``failure`` (NaN/Inf, another exception, a violated constraint, or an
environment refusing what a solver or its own action mapping produced), reported with the
case as JSON: ``python -m benchmarks.fuzz --replay '<json>'`` runs it again. Sizes are capped
(:data:`MAX_ELEMENTS` tensor elements, the fuzzer's caps on size fields) so that a case runs
in well under a second and never allocates large tensors. Usage::

    report = run_fuzz(200, seed=0)
    assert not report.failures, report.render()
"""

from __future__ import annotations

import json
import math
import random
import re
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types as at
import torch

from skyshare.config import StrictModel
from skyshare.errors import SkyshareError

__all__ = [
    "MAX_ELEMENTS",
    "TARGETS",
    "FuzzCase",
    "FuzzReport",
    "Outcome",
    "generate_case",
    "run_case",
    "run_fuzz",
]

MAX_ELEMENTS = 3_000_000  # cap on the estimated elements of a case's dominant tensors
MAX_BATCH = 4
STEPS = 3  # slots / blocks / realizations stepped per case
EDGE = 0.5  # probability that a drawn number is an edge value
DRAW = 0.4  # probability that a field other than a size is drawn (else its default)
FEASIBILITY_TOL = 1e-3  # the beamforming solvers' default feasibility_tol
DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class FuzzCase:
    """One case; ``config`` is the raw scenario config (it may be one the model rejects),
    ``options`` the solver options or the environment config of the target."""

    target: str
    config: dict[str, Any]
    options: dict[str, Any]
    batch_size: int
    dtype: str
    seed: int

    def reproduction(self) -> str:
        """The case as one JSON line (``python -m benchmarks.fuzz --replay '<this>'``)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FuzzCase:
        return cls(**json.loads(text))


@dataclass
class Outcome:
    """``status``: "ok", "rejected" or "failure"; ``stage``: "config" (the model refused),
    "run" (a later clean refusal or a failure); ``message`` says what happened."""

    case: FuzzCase
    status: str
    stage: str = ""
    message: str = ""
    seconds: float = 0.0


# ------------------------------------------------------------------------------------------
# Drawing configs from the declared field ranges
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Range:
    lo: float | None = None
    lo_open: bool = False
    hi: float | None = None
    hi_open: bool = False
    allow_inf: bool = False


def _field_range(metadata: list[Any]) -> _Range:
    bounds: dict[str, Any] = {}
    for item in metadata:
        if isinstance(item, at.Ge):
            bounds.update(lo=item.ge)
        elif isinstance(item, at.Gt):
            bounds.update(lo=item.gt, lo_open=True)
        elif isinstance(item, at.Le):
            bounds.update(hi=item.le)
        elif isinstance(item, at.Lt):
            bounds.update(hi=item.lt, hi_open=True)
        elif getattr(item, "allow_inf_nan", False):
            bounds.update(allow_inf=True)
    return _Range(**bounds)


def _near(value: float, scale: float, rng: random.Random, sign: float) -> float:
    """A value just inside an open bound (3 to 12 orders of magnitude below ``scale``)."""
    return value + sign * scale * 10.0 ** -rng.uniform(3, 12)


def _draw_int(rng: random.Random, r: _Range, cap: float | None) -> int:
    lo = int(r.lo if r.lo is not None else 0) + int(r.lo_open)
    hi = r.hi - int(r.hi_open) if r.hi is not None else lo + 64
    hi = int(max(lo, min(hi, cap))) if cap is not None else int(hi)
    if rng.random() < EDGE:
        return rng.choice([lo, lo, min(lo + 1, hi), hi])
    return rng.randint(lo, hi)


def _float_ends(rng: random.Random, r: _Range, scale: float, cap: float | None):
    lo = -scale * 1e3 if r.lo is None else r.lo
    lo = _near(lo, scale, rng, +1) if r.lo_open else lo
    if r.hi is None:
        hi = scale * 10.0 ** rng.uniform(3, 9)  # huge
    else:
        hi = _near(r.hi, scale, rng, -1) if r.hi_open else r.hi
    return lo, (hi if cap is None else min(hi, cap))


def _draw_float(rng: random.Random, r: _Range, default: Any, cap: float | None) -> float:
    if r.allow_inf and rng.random() < 0.2:
        return math.inf
    scale = abs(float(default)) if isinstance(default, int | float) and default else 1.0
    lo, hi = _float_ends(rng, r, scale, cap)
    if rng.random() < EDGE:
        return rng.choice([lo, hi])
    if lo > 0 and hi / lo > 1e3:
        return math.exp(rng.uniform(math.log(lo), math.log(hi)))
    return rng.uniform(lo, hi)


def _draw_field(rng: random.Random, info: Any, cap: float | None) -> Any:
    """A value for one field (``_KEEP`` where the fuzzer has no rule: the default stays)."""
    annotation = info.annotation
    options = get_args(annotation) if get_origin(annotation) in (Union, type(int | None)) else ()
    if type(None) in options:
        if rng.random() < 0.3:
            return None
        annotation = next(a for a in options if a is not type(None))
    if annotation is bool:
        return rng.random() < 0.5
    if get_origin(annotation) is Literal:
        return rng.choice(get_args(annotation))
    r = _field_range(info.metadata)
    if annotation is int:
        return _draw_int(rng, r, cap)
    if annotation is float:
        return _draw_float(rng, r, info.default, cap)
    return _KEEP


_KEEP = object()


def draw_config(
    rng: random.Random, model: type[StrictModel], caps: dict[str, float]
) -> dict[str, Any]:
    """Raw field values for ``model``: every capped field (the sizes) is drawn within its cap,
    every other field with probability :data:`DRAW` (else its default stays)."""
    data: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name not in caps and rng.random() >= DRAW:
            continue
        value = _draw_field(rng, info, caps.get(name))
        if value is not _KEEP:
            data[name] = value
    return data


# ------------------------------------------------------------------------------------------
# Checks
# ------------------------------------------------------------------------------------------


class _Checks:
    """Collects constraint violations of one case (messages name the output)."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def finite(self, name: str, x: torch.Tensor | float) -> None:
        x = torch.as_tensor(x)
        if x.is_floating_point() or x.is_complex():
            bad = int((~torch.isfinite(x)).sum())
            if bad:
                self.problems.append(f"{name}: {bad} of {x.numel()} values are NaN/Inf")

    def at_least(self, name: str, x: torch.Tensor, low: float) -> None:
        self.finite(name, x)
        if x.numel() and bool((x < low).any()):
            self.problems.append(f"{name}: min {float(x.min()):.6g} < {low:g}")

    def within(self, name: str, used: torch.Tensor, limit: torch.Tensor, rtol: float) -> None:
        """``used <= limit (1 + rtol)`` element-wise (a budget)."""
        self.finite(name, used)
        excess = used.double() - limit.double() * (1 + rtol)
        if used.numel() and bool((excess > 0).any()):
            i = int(excess.flatten().argmax())
            u, lim = float(used.flatten()[i]), float(limit.expand_as(used).flatten()[i])
            self.problems.append(f"{name}: {u:.9g} exceeds its limit {lim:.9g} (rtol {rtol:g})")

    def probability(self, name: str, x: torch.Tensor) -> None:
        self.at_least(name, x, 0.0)
        if x.numel() and bool((x > 1).any()):
            self.problems.append(f"{name}: max {float(x.max()):.9g} > 1")

    def link_budget(self, budget: Any) -> None:
        """No NaN in a link budget; +-inf only in dB rows (the dB of 0 or of inf)."""
        for row in budget.rows:
            if math.isnan(row.value) or (math.isinf(row.value) and "dB" not in row.unit):
                self.problems.append(f"link budget {row.quantity!r} = {row.value}")


class _Refused(Exception):
    """A consumer refused what the case produced (a failure, not a clean rejection)."""


@contextmanager
def _must_accept(what: str) -> Iterator[None]:
    """A SkyshareError inside is a failure: ``what`` should have been accepted."""
    try:
        yield
    except SkyshareError as exc:
        raise _Refused(f"{what} was refused: {exc}") from exc


Run = Callable[["FuzzCase", Any, _Checks], None]


def _rng_tensor(case: FuzzCase) -> torch.Generator:
    return torch.Generator().manual_seed(case.seed + 1)


# ------------------------------------------------------------------------------------------
# Targets: CATN (seed 000)
# ------------------------------------------------------------------------------------------


def _catn_scenario(case: FuzzCase, config: Any):
    from skyshare.scenarios.catn import CatnScenario

    scenario = CatnScenario(config, batch_size=case.batch_size, dtype=DTYPES[case.dtype])
    return scenario, scenario.reset(case.seed)


def _catn_steps(case: FuzzCase, config: Any, checks: _Checks) -> None:
    scenario, state = _catn_scenario(case, config)
    for t in range(min(STEPS, config.n_slots - 1) + 1):
        if t:
            state = scenario.step()
        for name in ("H", "G", "pathloss_tu_db", "pathloss_au_db", "au_distance_m"):
            checks.finite(f"slot {t} {name}", getattr(state, name))
    checks.link_budget(scenario.link_budget())


def _beamforming_problem(scenario: Any, state: Any, serving: torch.Tensor | None = None):
    from skyshare.metrics import strongest_transmitter
    from skyshare.solvers.problem import BeamformingProblem

    serving = strongest_transmitter(state.H) if serving is None else serving
    return BeamformingProblem(
        state.H, state.G, serving, scenario.config.p_max_w, scenario.i_max_normalized
    )


def _check_beamforming(problem: Any, result: Any, checks: _Checks, slot: int) -> None:
    """Recompute the result's metrics in float64 and check (2b) always, (2c) where claimed."""
    from skyshare.solvers.problem import BeamformingProblem, evaluate

    c128 = torch.complex128
    exact = BeamformingProblem(
        problem.H.to(c128), problem.G.to(c128), problem.serving, problem.p_max, problem.i_max
    )
    checks.finite(f"slot {slot} w", result.w)
    checks.finite(f"slot {slot} objective_trace", result.objective_trace)
    for name, value in result.multipliers.items():
        checks.finite(f"slot {slot} multiplier {name}", value)
    ev = evaluate(exact, result.w.to(c128))
    checks.at_least(f"slot {slot} rates", ev.rates, 0.0)
    checks.at_least(f"slot {slot} reported rates", result.rates, 0.0)
    checks.within(f"slot {slot} BS power", ev.bs_power, exact.p_max_per_bs(), FEASIBILITY_TOL)
    if exact.G.shape[1]:
        claimed = result.feasible
        limit = exact.i_max_per_au()[claimed]
        checks.within(
            f"slot {slot} AU interference (claimed feasible)",
            ev.au_interference[claimed],
            limit,
            FEASIBILITY_TOL,
        )


def _catn_beamforming(name: str) -> Run:
    """Solve two slots, the second warm-started as the online loop does (previous beams where
    a TU kept its BS, previous multipliers)."""
    keys = ("mu",) if name == "wmmse-lite" else ("mu", "eta")
    module = f"skyshare.solvers.{name.replace('-', '_')}"

    def run(case: FuzzCase, config: Any, checks: _Checks) -> None:
        from importlib import import_module

        solve = getattr(import_module(module), name.replace("-", "_"))
        scenario, state = _catn_scenario(case, config)
        start: dict[str, torch.Tensor] = {}
        previous = None
        for slot in range(min(2, config.n_slots)):
            state = scenario.step() if slot else state
            problem = _beamforming_problem(scenario, state)
            if previous is not None:
                kept = (problem.serving == previous[0])[..., None]
                start["w0"] = torch.where(kept, previous[1], torch.zeros_like(previous[1]))
            result = solve(problem, **start, **case.options)
            _check_beamforming(problem, result, checks, slot)
            previous = (problem.serving, result.w)
            start = {f"{k}0": result.multipliers[k] for k in keys if k in result.multipliers}

    return run


def _catn_association(name: str) -> Run:
    def run(case: FuzzCase, config: Any, checks: _Checks) -> None:
        from skyshare.beamforming import mrt_equal_power
        from skyshare.solvers import associate_dcd, associate_sc
        from skyshare.solvers.problem import evaluate

        scenario, state = _catn_scenario(case, config)
        p_max = config.p_max_w
        if name == "sc":
            result = associate_sc(state.H, p_max=p_max)
        else:
            result = associate_dcd(
                state.H, p_max=p_max, n_antennas=config.n_antennas, **case.options
            )
        serving = result.serving
        if bool(((serving < 0) | (serving >= config.n_bs)).any()):
            checks.problems.append("serving index outside [0, N)")
        checks.at_least("bs_power", result.bs_power, 0.0)
        checks.within("bs_power", result.bs_power, torch.tensor(p_max), 1e-6)
        checks.finite("dual_trace", result.dual_trace)
        if int(result.loads.sum()) != case.batch_size * config.n_tu:
            checks.problems.append("loads do not add up to B K")
        problem = _beamforming_problem(scenario, state, serving)
        w = mrt_equal_power(problem.H, serving, p_max)
        checks.at_least("MRT rates on the association", evaluate(problem, w).rates, 0.0)

    return run


def _catn_env(case: FuzzCase, config: Any, checks: _Checks) -> None:
    from skyshare.envs.catn import CatnEnv, CatnEnvConfig

    env_config = CatnEnvConfig.from_dict(case.options, what="catn env")
    env = CatnEnv(config, env_config, batch_size=case.batch_size, dtype=DTYPES[case.dtype])
    g = _rng_tensor(case)
    checks.finite("tu_obs after reset", env.reset(case.seed))
    owner = None
    for slot in range(STEPS):
        tu = torch.randint(0, env.N, (env.B, env.K), generator=g)
        with _must_accept(f"slot {slot}: valid TU actions"):
            bs_obs = env.associate(tu)
        checks.finite(f"slot {slot} bs_obs", bs_obs)
        actions = _unit_actions((env.B, env.N, env.action_dim), g, env.dtype)
        with _must_accept(f"slot {slot}: valid BS actions"):
            out = env.beamform(actions)
        for name in ("tu_obs", "tu_reward", "bs_reward", "cost"):
            checks.finite(f"slot {slot} {name}", getattr(out, name))
        checks.at_least(f"slot {slot} rates", out.rates, 0.0)
        checks.at_least(f"slot {slot} au_interference", out.au_interference, 0.0)
        w = env.last_beamformers
        owner = torch.nn.functional.one_hot(tu, env.N).to(w.real.dtype)
        power = torch.einsum("bk,bkn->bn", w.abs().square().sum(-1), owner)
        checks.within(f"slot {slot} BS power", power, torch.tensor(env.p_max), 1e-4)
        if out.truncated:
            break


def _unit_actions(shape: tuple[int, ...], g: torch.Generator, dtype: torch.dtype):
    """Random actions in [0, 1] with exact 0s and 1s mixed in (the ends of the range)."""
    x = torch.rand(shape, generator=g, dtype=dtype)
    ends = torch.rand(shape, generator=g) < 0.2
    return torch.where(ends, (torch.rand(shape, generator=g) < 0.5).to(dtype), x)


# ------------------------------------------------------------------------------------------
# Targets: TN-NTN (seed 001), vHetNet (seed 003)
# ------------------------------------------------------------------------------------------


def _tn_ntn_steps(case: FuzzCase, config: Any, checks: _Checks) -> None:
    from skyshare.scenarios.tn_ntn import TnNtnScenario

    scenario = TnNtnScenario(config, batch_size=case.batch_size, dtype=DTYPES[case.dtype])
    state = scenario.reset(case.seed)
    for t in range(min(STEPS, config.horizon_slots - 1) + 1):
        if t:
            state = scenario.step()
        checks.finite(f"frame {t} H", state.H)
        checks.finite(f"frame {t} pathloss_db", state.pathloss_db)
        assignment = scenario.round_robin_assignment(state.active)
        power = scenario.equal_power(assignment)
        checks.within(f"frame {t} BS power", power.sum(-1), torch.tensor(scenario.p_max_w), 1e-5)
        checks.at_least(f"frame {t} rates", scenario.user_rates(state, assignment, power), 0.0)
    checks.link_budget(scenario.link_budget())


def _vhetnet(with_rates: bool) -> Run:
    def run(case: FuzzCase, config: Any, checks: _Checks) -> None:
        from skyshare.scenarios import vhetnet

        scenario = vhetnet.VhetnetScenario(
            config, batch_size=case.batch_size, dtype=DTYPES[case.dtype]
        )
        state = scenario.reset(case.seed)
        for t in range(STEPS):
            state = scenario.step() if t else state
            H, _ = state.padded()
            checks.finite(f"realization {t} channels", H)
            if not with_rates:
                continue
            W = vhetnet.mrt_joint_transmission(state, **case.options)
            power = vhetnet.transmit_power_w(W)
            checks.within(f"realization {t} transmit power", power, state.p_max_w, 1e-5)
            rates = vhetnet.cell_free_rates(state, W)
            checks.at_least(f"realization {t} SINR", rates.sinr, 0.0)
            checks.at_least(f"realization {t} SE", rates.se, 0.0)
            checks.finite(f"realization {t} PF objective", rates.pf_objective)
        checks.link_budget(scenario.link_budget())

    return run


# ------------------------------------------------------------------------------------------
# Targets: multiband (seed 004)
# ------------------------------------------------------------------------------------------


def _multiband_scenario(case: FuzzCase, config: Any):
    from skyshare.scenarios.multiband import MultibandScenario

    scenario = MultibandScenario(config, batch_size=case.batch_size, dtype=DTYPES[case.dtype])
    return scenario, scenario.reset(case.seed)


def _multiband_steps(case: FuzzCase, config: Any, checks: _Checks) -> None:
    scenario, state = _multiband_scenario(case, config)
    for t in range(min(STEPS, config.n_blocks - 1) + 1):
        state = scenario.step() if t else state
        checks.at_least(f"block {t} gain_power", state.gain_power, 0.0)
        checks.at_least(f"block {t} budget", state.budget, 0.0)
    checks.link_budget(scenario.link_budget())


def _multiband_power(name: str) -> Run:
    def run(case: FuzzCase, config: Any, checks: _Checks) -> None:
        from importlib import import_module

        flwf = import_module("skyshare.solvers.flwf")  # the package exports the function
        waterfilling = import_module("skyshare.solvers.waterfilling")

        scenario, state = _multiband_scenario(case, config)
        g = _rng_tensor(case)
        for t in range(min(STEPS, config.n_blocks)):
            problem = scenario.problem(state)
            if name == "random":
                power = waterfilling.random_power(problem, g, **case.options)
            elif name == "sswf":
                result = waterfilling.sswf(problem)
                power, rates = result.power, result.rates
            else:
                start = waterfilling.random_power(problem, g)
                result = flwf.flwf(problem, start, **case.options)
                power, rates = result.power, result.rates
                checks.finite(f"block {t} equilibrium_gap", result.equilibrium_gap)
            if name != "random":
                checks.at_least(f"block {t} reported rates", rates, 0.0)
            checks.at_least(f"block {t} power", power, 0.0)
            checks.within(f"block {t} BS power", scenario.bs_power(power), state.budget, 1e-4)
            checks.at_least(f"block {t} rates", scenario.rates(state, power), 0.0)
            if t + 1 < config.n_blocks:
                with _must_accept(f"block {t}: the {name} allocation"):
                    state = scenario.step(power)

    return run


def _multiband_env(case: FuzzCase, config: Any, checks: _Checks) -> None:
    from skyshare.envs.multiband import MultibandEnv

    env = MultibandEnv(
        config, dict(case.options), batch_size=case.batch_size, dtype=DTYPES[case.dtype]
    )
    g = _rng_tensor(case)
    checks.finite("obs after reset", env.reset(case.seed))
    for t in range(min(STEPS, env.horizon)):
        actions = _unit_actions((env.B, env.n_agents, env.action_dim), g, env.dtype)
        with _must_accept(f"block {t}: valid actions"):
            out = env.step(actions)
        checks.finite(f"block {t} obs", out.obs)
        checks.finite(f"block {t} reward", out.reward)
        checks.at_least(f"block {t} rates", out.rates, 0.0)
        checks.within(f"block {t} BS power", env.scenario.bs_power(out.power), out.budget, 1e-4)


# ------------------------------------------------------------------------------------------
# Scenario families: config model, size caps, repairs (valid combinations), size estimate
# ------------------------------------------------------------------------------------------


def _repair_catn(rng: random.Random, data: dict[str, Any]) -> None:
    """Mostly whole hexagonal rings and a TU exclusion zone inside the cell; often co-located
    nodes (an AU hovering at BS height over BS 0, TUs at the site) and no I_max."""
    if rng.random() < 0.9:
        data["n_bs"] = rng.choice([1, 1, 7, 7, 19])
    isd = data.get("isd_m", 500.0)
    if data.get("min_distance_m", 35.0) >= isd / math.sqrt(3) and rng.random() < 0.8:
        data["min_distance_m"] = rng.choice([0.0, rng.uniform(0, isd / math.sqrt(3))])
    if rng.random() < 0.15:  # AU l = 0 of an odd L sits still above BS 0 at its height
        data.update(au_speed_m_s=0.0, au_track_spacing_m=0.0)
        data["au_altitude_m"] = data.get("bs_height_m", 30.0)


def _drop_candidates(isd_m: float, min_distance_m: float, per_cell: int) -> float:
    """Candidates per cell of one rejection round of ``drop_in_hexagon`` (~1 / acceptance)."""
    from skyshare.geometry.layouts import _hexagon_annulus_area

    radius = isd_m / math.sqrt(3)
    accept = _hexagon_annulus_area(radius, min_distance_m) / (2 * radius * radius * math.sqrt(3))
    return (per_cell + 4 * math.sqrt(per_cell) + 4) / max(accept, 1e-300)


def _catn_elements(cfg: Any, batch: int) -> float:
    K, N, L, M = cfg.n_tu, cfg.n_bs, cfg.n_au, cfg.n_antennas
    knots = math.ceil(cfg.n_slots * cfg.slot_s / cfg.trajectory_step_s) + 2
    drops = N * 8 * _drop_candidates(cfg.isd_m, cfg.min_distance_m, -(-K // N))
    per_batch = knots * K * 3 + drops + 4 * (K + 2 * L) * N * M + N * M * M + K * K * N
    return batch * per_batch + knots * 100  # knots: also a Python-level loop length


def _repair_tn_ntn(rng: random.Random, data: dict[str, Any]) -> None:
    """BS positions inside the area (often co-located), SRBs dividing F, taps <= F."""
    half = data.get("area_side_m", 1000.0) / 2
    radius = data.setdefault("tbs_user_radius_m", rng.choice([1e-3, half / 4, half / 2]))
    if radius >= half and rng.random() < 0.8:
        data["tbs_user_radius_m"] = radius = half * rng.choice([0.0001, 0.5, 0.999])
    room = max(half - radius, 0.0)

    def spot() -> list[float]:  # lists: the JSON of a case reads back equal
        return rng.choice([[0.0, 0.0], [room, -room], [rng.uniform(-room, room), 0.0]])

    tbs = [spot() for _ in range(rng.choice([0, 1, 2, 3]))]
    uav = [
        rng.choice(tbs) if tbs and rng.random() < 0.3 else spot()
        for _ in range(rng.choice([0, 1, 2]))
    ]
    data["tbs_xy_m"], data["uav_xy_m"] = (
        tbs,
        uav if tbs or rng.random() < 0.1 else uav or [[0.0, 0.0]],
    )
    F = data.get("n_subchannels", 160)
    if rng.random() < 0.9:
        data["srb_size"] = rng.choice([d for d in range(1, F + 1) if F % d == 0])
    if data.get("n_taps") is not None and data["n_taps"] > F and rng.random() < 0.9:
        data["n_taps"] = rng.randint(1, F)
    if data.get("trace_step_s", 1.0) < data.get("frame_s", 0.01) and rng.random() < 0.9:
        data["trace_step_s"] = data.get("frame_s", 0.01)


def _tn_ntn_elements(cfg: Any, batch: int) -> float:
    N, K, F = cfg.n_bs, cfg.k_max, cfg.n_subchannels
    P = N * K
    traces = math.ceil(cfg.horizon_s / cfg.trace_step_s) + 2 if cfg.dynamic_users else 1
    return batch * (6 * P * N * F + 2 * P * P * F + traces * P * (2 * N + 6)) + traces * 100


def _repair_vhetnet(rng: random.Random, data: dict[str, Any]) -> None:
    """Often no MBS (the HAPS alone), heights that differ, a HAPS above the UEs."""
    if rng.random() < 0.3:
        data.update(n_mbs=0, with_haps=rng.random() < 0.95)
    if data.get("mbs_height_m", 25.0) == data.get("ue_height_m", 1.5):
        data["mbs_height_m"] = data.get("ue_height_m", 1.5) + rng.choice([1e-6, 1.0])
    if data.get("haps_altitude_m", 2e4) <= data.get("ue_height_m", 1.5) and rng.random() < 0.9:
        data["haps_altitude_m"] = data.get("ue_height_m", 1.5) + rng.choice([1e-6, 1.0, 2e4])


def _vhetnet_elements(cfg: Any, batch: int) -> float:
    K, T = cfg.n_ue, cfg.n_tx
    m_max = max(cfg.m_haps * cfg.with_haps, cfg.m_mbs)
    return batch * (4 * K * (cfg.n_mbs * cfg.m_mbs + cfg.m_haps) + 3 * T * K * m_max + 2 * K * K)


def _repair_multiband(rng: random.Random, data: dict[str, Any]) -> None:
    if data.get("users_per_cell", 16) > data.get("n_antennas", 32) and rng.random() < 0.9:
        data["users_per_cell"] = rng.randint(1, data.get("n_antennas", 32))


def _multiband_elements(cfg: Any, batch: int) -> float:
    K, C, F, M = cfg.n_users, cfg.n_cells, cfg.n_freq, cfg.n_antennas
    return batch * (4 * K * C * F * M + 4 * K * K * F)


@dataclass(frozen=True)
class Family:
    """How the configs of one scenario are drawn and sized."""

    model: str  # "module:Class" of the config model
    caps: dict[str, float]
    repair: Callable[[random.Random, dict[str, Any]], None]
    elements: Callable[[Any, int], float]

    def config_model(self) -> type[StrictModel]:
        from importlib import import_module

        module, name = self.model.split(":")
        return getattr(import_module(module), name)


FAMILIES: dict[str, Family] = {
    "catn": Family(
        "skyshare.scenarios.catn:CatnConfig",
        {"n_au": 4, "n_bs": 19, "n_tu": 24, "ura_rows": 4, "ura_cols": 4, "n_slots": 40},
        _repair_catn,
        _catn_elements,
    ),
    "tn_ntn": Family(
        "skyshare.scenarios.tn_ntn_config:TnNtnConfig",
        {"n_subchannels": 16, "k_max": 4, "srb_size": 16, "horizon_slots": 30, "n_taps": 16},
        _repair_tn_ntn,
        _tn_ntn_elements,
    ),
    "vhetnet": Family(
        "skyshare.scenarios.vhetnet_config:VhetnetConfig",
        {"n_ue": 12, "n_mbs": 6, "mbs_n_h": 4, "mbs_n_v": 4, "haps_n_h": 8, "haps_n_v": 8},
        _repair_vhetnet,
        _vhetnet_elements,
    ),
    "multiband": Family(
        "skyshare.scenarios.multiband:MultibandConfig",
        {"n_cells": 4, "n_antennas": 12, "users_per_cell": 6, "n_freq": 12, "n_blocks": 6},
        _repair_multiband,
        _multiband_elements,
    ),
}


# ------------------------------------------------------------------------------------------
# Targets
# ------------------------------------------------------------------------------------------


def _no_options(rng: random.Random) -> dict[str, Any]:
    return {}


def _catn_env_options(rng: random.Random) -> dict[str, Any]:
    from skyshare.envs.catn import CatnEnvConfig

    caps = {"n_codewords": 64, "n_compress": 8, "b_in": 8, "b_in_pri": 8, "k_in": 8, "k_out": 8}
    data = draw_config(rng, CatnEnvConfig, caps)
    if data["n_compress"] > data["n_codewords"] and rng.random() < 0.9:
        data["n_compress"] = rng.randint(1, data["n_codewords"])
    low, high = data.get("eta_min", 1e-3), data.get("eta_max", 10.0)
    if low >= high and rng.random() < 0.9:
        data["eta_min"], data["eta_max"] = (high, low) if low > high else (low, 2 * low)
    return data


def _multiband_env_options(rng: random.Random) -> dict[str, Any]:
    from skyshare.envs.multiband import MultibandEnvConfig

    return draw_config(rng, MultibandEnvConfig, {})


@dataclass(frozen=True)
class Target:
    """A fuzz target: its scenario family, what a case runs, how its options are drawn."""

    family: str
    run: Run
    options: Callable[[random.Random], dict[str, Any]] = _no_options


TARGETS: dict[str, Target] = {
    "catn": Target("catn", _catn_steps),
    "catn/sc": Target("catn", _catn_association("sc")),
    "catn/dcd": Target(
        "catn", _catn_association("dcd"), lambda rng: {"power_control": rng.random() < 0.7}
    ),
    "catn/wmmse": Target(
        "catn",
        _catn_beamforming("wmmse"),
        lambda rng: {
            "max_iter": rng.choice([1, 5, 20, 100]),
            "mu_update": rng.choice(["subgradient", "bisection"]),
        },
    ),
    "catn/wmmse-lite": Target(
        "catn",
        _catn_beamforming("wmmse-lite"),
        lambda rng: {
            "max_iter": rng.choice([1, 3, 10]),
            "lipschitz": rng.choice(["frobenius", "trace"]),
        },
    ),
    "catn/fp": Target(
        "catn",
        _catn_beamforming("fp"),
        lambda rng: {
            "max_iter": rng.choice([1, 5, 20]),
            "init": rng.choice(["mrt"] * 4 + ["wmmse"]),
        },
    ),
    "catn/env": Target("catn", _catn_env, _catn_env_options),
    "tn_ntn": Target("tn_ntn", _tn_ntn_steps),
    "vhetnet": Target("vhetnet", _vhetnet(with_rates=False)),
    "vhetnet/mrt": Target(
        "vhetnet", _vhetnet(with_rates=True), lambda rng: {"haps_on": rng.random() < 0.8}
    ),
    "multiband": Target("multiband", _multiband_steps),
    "multiband/random": Target(
        "multiband",
        _multiband_power("random"),
        lambda rng: {"distribution": rng.choice(["dirichlet", "uniform"])},
    ),
    "multiband/sswf": Target("multiband", _multiband_power("sswf")),
    "multiband/flwf": Target(
        "multiband",
        _multiband_power("flwf"),
        lambda rng: {
            "max_iter": rng.choice([0, 1, 10, 100]),
            "forward_looking": rng.random() < 0.8,
        },
    ),
    "multiband/env": Target("multiband", _multiband_env, _multiband_env_options),
}


# ------------------------------------------------------------------------------------------
# Generating and running cases
# ------------------------------------------------------------------------------------------


def generate_case(index: int, seed: int = 0, targets: list[str] | None = None) -> FuzzCase:
    """Case ``index`` of the run seeded ``seed`` (targets in turn; reproducible one by one).

    A config the model accepts but whose estimated tensors exceed :data:`MAX_ELEMENTS` is
    drawn again (up to 100 times, then the smallest sizes are used).
    """
    names = targets or list(TARGETS)
    name = names[index % len(names)]
    target = TARGETS[name]
    family = FAMILIES[target.family]
    model = family.config_model()
    for attempt in range(100):
        rng = random.Random(f"{seed}:{index}:{attempt}")
        data = draw_config(rng, model, family.caps)
        family.repair(rng, data)
        batch = rng.choice([1, 1, 2, 3, MAX_BATCH])
        case = FuzzCase(
            name, data, target.options(rng), batch, rng.choice(list(DTYPES)), rng.randrange(2**31)
        )
        try:
            config = model.from_dict(data)
        except SkyshareError:
            return case
        if family.elements(config, batch) <= MAX_ELEMENTS:
            return case
    return FuzzCase(name, {k: 1 for k in family.caps}, {}, 1, "float64", 0)


def _describe_exception(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = (
        f" at {frames[-1].filename.rsplit('/src/', 1)[-1]}:{frames[-1].lineno}" if frames else ""
    )
    return f"{type(exc).__name__}{where}: {exc}"


def run_case(case: FuzzCase) -> Outcome:
    """Run one case: "rejected" if the config (or a later step) is refused cleanly, "ok" if
    every check holds, "failure" (with what went wrong) otherwise."""
    start = time.perf_counter()
    target = TARGETS[case.target]
    try:
        config = FAMILIES[target.family].config_model().from_dict(case.config)
    except SkyshareError as exc:
        return Outcome(case, "rejected", "config", str(exc), time.perf_counter() - start)
    checks = _Checks()
    status, message = "ok", ""
    try:
        with torch.no_grad():
            target.run(case, config, checks)
    except _Refused as exc:
        status, message = "failure", str(exc)
    except SkyshareError as exc:
        status, message = "rejected", str(exc)
    except Exception as exc:  # the point of a fuzzer: any other exception is a failure
        status, message = "failure", _describe_exception(exc)
    if checks.problems:  # violations found before a refusal or an error count too
        status, message = "failure", "; ".join([*checks.problems[:5], message][:6]).strip("; ")
    return Outcome(case, status, "run", message, time.perf_counter() - start)


_NUMBER = re.compile(r"-?\d+(\.\d*)?(e[-+]?\d+)?")  # numbers in messages, for grouping


@dataclass
class FuzzReport:
    """Counts per target and status, the failures, and the distinct run-time refusals."""

    counts: dict[str, Counter] = field(default_factory=dict)
    seconds: Counter = field(default_factory=Counter)
    failures: list[Outcome] = field(default_factory=list)
    refusals: Counter = field(default_factory=Counter)
    refusal_examples: dict[str, FuzzCase] = field(default_factory=dict)

    def add(self, outcome: Outcome) -> None:
        name = outcome.case.target
        self.counts.setdefault(name, Counter())[outcome.status] += 1
        self.seconds[name] += outcome.seconds
        if outcome.status == "failure":
            self.failures.append(outcome)
        elif outcome.status == "rejected" and outcome.stage == "run":
            self.counts[name]["rejected at run time"] += 1
            key = f"{name}: {_NUMBER.sub('#', outcome.message.splitlines()[0])[:150]}"
            self.refusals[key] += 1
            self.refusal_examples.setdefault(key, outcome.case)

    @property
    def n_cases(self) -> int:
        return sum(c["ok"] + c["rejected"] + c["failure"] for c in self.counts.values())

    def render(self, *, max_failures: int = 20) -> str:
        """A table of counts, then each failure's message and reproduction."""
        lines = [f"{'target':<18} {'cases':>6} {'ok':>6} {'rejected':>9} {'(at run)':>9} "
                 f"{'failures':>9} {'s/case':>7}"]  # fmt: skip
        for name in sorted(self.counts):
            c = self.counts[name]
            n = c["ok"] + c["rejected"] + c["failure"]
            lines.append(
                f"{name:<18} {n:>6} {c['ok']:>6} {c['rejected']:>9} "
                f"{c['rejected at run time']:>9} {c['failure']:>9} {self.seconds[name] / n:>7.3f}"
            )
        if self.refusals:
            lines.append("\nclean refusals after the config was accepted (count: first line):")
            lines += [f"  {n}: {m}" for m, n in self.refusals.most_common(15)]
        for outcome in self.failures[:max_failures]:
            lines.append(f"\nFAILURE {outcome.case.target}: {outcome.message}")
            lines.append(
                f"  reproduce: python -m benchmarks.fuzz --replay '{outcome.case.reproduction()}'"
            )
        if len(self.failures) > max_failures:
            lines.append(f"\n... and {len(self.failures) - max_failures} more failures")
        return "\n".join(lines)


def run_fuzz(
    n_cases: int,
    *,
    seed: int = 0,
    targets: list[str] | None = None,
    progress: Callable[[int, Outcome], None] | None = None,
) -> FuzzReport:
    """Generate and run ``n_cases`` cases (targets in turn); :class:`FuzzReport`."""
    unknown = sorted(set(targets or []) - set(TARGETS))
    if unknown:
        from skyshare.errors import UnknownNameError

        raise UnknownNameError(f"unknown fuzz targets {unknown}; available: {', '.join(TARGETS)}")
    report = FuzzReport()
    for index in range(n_cases):
        outcome = run_case(generate_case(index, seed, targets))
        report.add(outcome)
        if progress is not None:
            progress(index, outcome)
    return report
