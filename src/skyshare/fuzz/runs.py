"""What each fuzz target runs on a case, and the checks of its outputs.

A run builds the scenario of the case's (validated) config, steps it a few slots, blocks or
realizations, feeds it to the target's solver or environment, and records in
:class:`~skyshare.fuzz.cases.Checks` every output that is not finite or breaks a constraint.
A clean :class:`~skyshare.errors.SkyshareError` ends a run as a rejection, except inside
:func:`~skyshare.fuzz.cases.must_accept`, where the consumer should have accepted the input.
"""

from __future__ import annotations

from typing import Any

import torch

from skyshare.fuzz.cases import DTYPES, Checks, FuzzCase, Run, must_accept

STEPS = 3  # slots / blocks / realizations stepped per case
FEASIBILITY_TOL = 1e-3  # the beamforming solvers' default feasibility_tol


def _rng_tensor(case: FuzzCase) -> torch.Generator:
    """The generator of a case's random actions and starts (apart from the scenario's seed)."""
    return torch.Generator().manual_seed(case.seed + 1)


# ------------------------------------------------------------------------------------------
# CATN (seed 000)
# ------------------------------------------------------------------------------------------


def _catn_scenario(case: FuzzCase, config: Any):
    from skyshare.scenarios.catn import CatnScenario

    scenario = CatnScenario(config, batch_size=case.batch_size, dtype=DTYPES[case.dtype])
    return scenario, scenario.reset(case.seed)


def catn_steps(case: FuzzCase, config: Any, checks: Checks) -> None:
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


def _check_beamforming(problem: Any, result: Any, checks: Checks, slot: int) -> None:
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


def catn_beamforming(name: str) -> Run:
    """Solve two slots, the second warm-started as the online loop does (previous beams where
    a TU kept its BS, previous multipliers)."""
    keys = ("mu",) if name == "wmmse-lite" else ("mu", "eta")
    module = f"skyshare.solvers.{name.replace('-', '_')}"

    def run(case: FuzzCase, config: Any, checks: Checks) -> None:
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


def catn_association(name: str) -> Run:
    def run(case: FuzzCase, config: Any, checks: Checks) -> None:
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


def catn_env(case: FuzzCase, config: Any, checks: Checks) -> None:
    from skyshare.envs.catn import CatnEnv, CatnEnvConfig

    env_config = CatnEnvConfig.from_dict(case.options, what="catn env")
    env = CatnEnv(config, env_config, batch_size=case.batch_size, dtype=DTYPES[case.dtype])
    _play_catn_env(case, env, checks)


def catn_sharded_env(case: FuzzCase, config: Any, checks: Checks) -> None:
    """The env as 1-3 shards stepped on threads (:class:`ShardedCatnEnv`), the same checks."""
    from skyshare.envs.catn import CatnEnvConfig
    from skyshare.envs.catn_sharded import ShardedCatnEnv

    env_config = CatnEnvConfig.from_dict(case.options, what="catn env")
    shards = min(case.batch_size, 1 + case.seed % 3)
    env = ShardedCatnEnv(
        config, env_config, batch_size=case.batch_size, shards=shards, dtype=DTYPES[case.dtype]
    )
    _play_catn_env(case, env, checks)


def _play_catn_env(case: FuzzCase, env: Any, checks: Checks) -> None:
    """Random valid turns until the horizon or STEPS slots: finite outputs, non-negative rates
    and interference, every BS within its power budget."""
    g = _rng_tensor(case)
    checks.finite("tu_obs after reset", env.reset(case.seed))
    owner = None
    for slot in range(STEPS):
        tu = torch.randint(0, env.N, (env.B, env.K), generator=g)
        with must_accept(f"slot {slot}: valid TU actions"):
            bs_obs = env.associate(tu)
        checks.finite(f"slot {slot} bs_obs", bs_obs)
        actions = _unit_actions((env.B, env.N, env.action_dim), g, env.dtype)
        with must_accept(f"slot {slot}: valid BS actions"):
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
# TN-NTN (seed 001), vHetNet (seed 003)
# ------------------------------------------------------------------------------------------


def tn_ntn_steps(case: FuzzCase, config: Any, checks: Checks) -> None:
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


def vhetnet_steps(with_rates: bool) -> Run:
    def run(case: FuzzCase, config: Any, checks: Checks) -> None:
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


def vhetnet_pf(name: str) -> Run:
    """A seed 003 PF solver on the realization's problem: every budget kept, SINRs and SEs
    finite and >= 0, a finite PF objective wherever the instance is not flagged infeasible."""

    def run(case: FuzzCase, config: Any, checks: Checks) -> None:
        from skyshare.scenarios import vhetnet
        from skyshare.solvers.pf_wmmse import pf_wmmse
        from skyshare.solvers.pfbwd import pfbwd

        scenario = vhetnet.VhetnetScenario(
            config, batch_size=case.batch_size, dtype=DTYPES[case.dtype]
        )
        problem = scenario.reset(case.seed).problem()
        solve = pf_wmmse if name == "pf-wmmse" else pfbwd
        result = solve(problem, **case.options)
        evaluation = result.evaluation
        checks.within("transmit power", evaluation.power, problem.p_max, 1e-4)
        checks.at_least("SINR", evaluation.sinr, 0.0)
        checks.at_least("SE", evaluation.se, 0.0)
        checks.finite("PF objective (feasible)", evaluation.pf_objective[~result.infeasible])

    return run


def tn_ntn_env(case: FuzzCase, config: Any, checks: Checks) -> None:
    """The seed 001 game with uniformly random allowed actions: finite observations and
    states, masks that keep "off" open, rewards, costs and throughput >= 0."""
    from skyshare.envs.tn_ntn import TnNtnEnv
    from skyshare.scenarios.tn_ntn import TnNtnScenario

    scenario = TnNtnScenario(config, batch_size=case.batch_size, dtype=DTYPES[case.dtype])
    env = TnNtnEnv(scenario, **case.options)
    env.reset(case.seed)
    g = _rng_tensor(case)
    for t in range(min(STEPS, config.horizon_slots)):
        result = None
        for m in range(env.n_turns):
            turn = env.observe()
            checks.finite(f"frame {t} turn {m} obs", turn.obs)
            checks.finite(f"frame {t} turn {m} state", turn.state)
            if not bool(turn.action_mask[..., 0].all()):
                checks.problems.append(f"frame {t} turn {m}: 'off' masked out")
            result = env.act(env.random_actions(g))
        checks.at_least(f"frame {t} reward", result.reward, 0.0)
        checks.at_least(f"frame {t} cost", result.cost, 0.0)
        checks.at_least(f"frame {t} throughput", result.throughput, 0.0)


# ------------------------------------------------------------------------------------------
# multiband (seed 004)
# ------------------------------------------------------------------------------------------


def _multiband_scenario(case: FuzzCase, config: Any):
    from skyshare.scenarios.multiband import MultibandScenario

    scenario = MultibandScenario(config, batch_size=case.batch_size, dtype=DTYPES[case.dtype])
    return scenario, scenario.reset(case.seed)


def multiband_steps(case: FuzzCase, config: Any, checks: Checks) -> None:
    scenario, state = _multiband_scenario(case, config)
    for t in range(min(STEPS, config.n_blocks - 1) + 1):
        state = scenario.step() if t else state
        checks.at_least(f"block {t} gain_power", state.gain_power, 0.0)
        checks.at_least(f"block {t} budget", state.budget, 0.0)
    checks.link_budget(scenario.link_budget())


def multiband_power(name: str) -> Run:
    def run(case: FuzzCase, config: Any, checks: Checks) -> None:
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
                with must_accept(f"block {t}: the {name} allocation"):
                    state = scenario.step(power)

    return run


def multiband_env(case: FuzzCase, config: Any, checks: Checks) -> None:
    from skyshare.envs.multiband import MultibandEnv

    env = MultibandEnv(
        config, dict(case.options), batch_size=case.batch_size, dtype=DTYPES[case.dtype]
    )
    g = _rng_tensor(case)
    checks.finite("obs after reset", env.reset(case.seed))
    for t in range(min(STEPS, env.horizon)):
        actions = _unit_actions((env.B, env.n_agents, env.action_dim), g, env.dtype)
        with must_accept(f"block {t}: valid actions"):
            out = env.step(actions)
        checks.finite(f"block {t} obs", out.obs)
        checks.finite(f"block {t} reward", out.reward)
        checks.at_least(f"block {t} rates", out.rates, 0.0)
        checks.within(f"block {t} BS power", env.scenario.bs_power(out.power), out.budget, 1e-4)
