"""Warm starts of the beamforming solvers (seed 000 §VI's dynamic setting), alone and as the
two-stage schemes of the online loop."""

import torch

from skyshare.scenarios import CatnScenario
from skyshare.schemes.catn import build_catn_env, build_scheme
from skyshare.schemes.catn_online import run_online
from skyshare.solvers.association_dcd import associate_dcd
from skyshare.solvers.problem import BeamformingProblem
from skyshare.solvers.wmmse_lite import wmmse_lite


def _two_stage(name, slots, batch=2, seed=1, **options):
    return _recorded(name, slots, batch, seed, **options)[1]


def _recorded(name, slots, batch=2, seed=1, **options):
    """(env, log, calls): ``calls`` holds, per slot, the problem the scheme's solver received
    (channels cloned), the keyword arguments it was passed and its result."""
    env = build_catn_env(name, CatnScenario.config_from("quick"), batch_size=batch)
    scheme = build_scheme(name, env, options)
    solve, calls = scheme.beamforming.solve, []

    def recording(problem, **kwargs):
        result = solve(problem, **kwargs)
        kept = BeamformingProblem(
            problem.H.clone(), problem.G.clone(), problem.serving.clone(), env.p_max, env.i_max
        )
        calls.append((kept, dict(kwargs), result))
        return result

    scheme.beamforming.solve = recording
    log = run_online(env, scheme, slots, train=False, seed=seed)
    assert len(calls) == slots
    return env, log, calls


def test_two_stage_dcd_wmmse_lite_is_feasible_every_slot():
    env, log, calls = _recorded("DCD-WMMSE", 3)
    assert log.stacked("sum_rate").shape == (3, 2)
    assert log.stacked("au_interference_ratio").shape == (3, 2, 2)
    assert bool(log.stacked("feasible").all())
    assert float(log.stacked("au_interference_ratio").max()) <= 1.0 + 1e-3
    assert float(log.stacked("sum_rate").min()) > 0
    assert log.slots == [0, 1, 2]
    # Replay each slot from its channels alone: DCD's association (with power control, as the
    # scheme runs it), then wmmse_lite warm-started by hand (previous beams where the user kept
    # its BS, zeros otherwise; previous mu). The played sum rates are those of the replay.
    previous, handed_over = None, 0
    for t, (problem, _, _) in enumerate(calls):
        serving = associate_dcd(problem.H, p_max=env.p_max, n_antennas=env.M).serving
        assert torch.equal(serving, problem.serving), f"slot {t}: not DCD's association"
        rebuilt = BeamformingProblem(problem.H, problem.G, serving, env.p_max, env.i_max)
        start = {}
        if previous is not None:
            kept = serving == previous[1]
            handed_over += int((~kept).sum())
            start = {
                "w0": previous[0].w * kept[..., None],
                "mu0": previous[0].multipliers["mu"],
            }
        replay = wmmse_lite(rebuilt, **start)
        torch.testing.assert_close(log.sum_rate[t], replay.sum_rate, rtol=1e-6, atol=0.0)
        torch.testing.assert_close(
            log.au_interference_ratio[t], replay.au_interference / env.i_max, rtol=1e-6, atol=0.0
        )
        previous = (replay, serving)
    assert handed_over > 0  # the replay exercises the zeroing of handed-over users' beams


def test_warm_start_keeps_slack_and_only_scales_down():
    import torch

    from skyshare.solvers.problem import initial_beamformers
    from solver_cases import catn_problem

    problem = catn_problem(2)
    _B, K, N, _M, _ = problem.shape
    cold = initial_beamformers(problem)
    owner = torch.nn.functional.one_hot(problem.serving, N).double()
    bs_power = lambda w: torch.einsum("bk,bkn->bn", w.abs().square().sum(-1).double(), owner)  # noqa: E731
    loaded = owner.sum(1) > 0
    p_max = problem.p_max_per_bs().double()
    assert torch.allclose(bs_power(cold)[loaded], p_max[loaded], rtol=1e-5)  # MRT at P_max
    half = cold * 0.5  # a previous solution at a quarter of P_max: kept, not scaled up
    assert torch.allclose(initial_beamformers(problem, half), half)
    double = cold * 2.0  # above P_max: scaled down onto P_max exactly
    assert torch.allclose(bs_power(initial_beamformers(problem, double))[loaded], p_max[loaded])
    fresh = half.clone()
    fresh[:, 0] = 0  # user 0 handed over: MRT at its BS's equal share (= cold[:, 0])
    candidate = torch.where(torch.arange(K)[None, :, None] == 0, cold, half)
    n0 = problem.serving[:, :1]
    bs0_power = bs_power(candidate).gather(1, n0)[:, 0]
    scale = (p_max.gather(1, n0)[:, 0] / bs0_power).clamp(max=1.0)  # scaled down only
    expected = cold[:, 0].abs().square().sum(-1).double() * scale
    got = initial_beamformers(problem, fresh)[:, 0].abs().square().sum(-1).double()
    assert torch.allclose(got, expected, rtol=1e-4)


def test_warm_multipliers_and_budget_reach_the_cold_solution_in_few_iterations():
    import pytest
    import torch

    from skyshare.errors import ConfigError, ShapeError
    from skyshare.solvers.wmmse import wmmse
    from solver_cases import catn_problem

    problem = catn_problem(2)
    cold = wmmse(problem)
    again = wmmse(
        problem,
        w0=cold.w,
        mu0=cold.multipliers["mu"],
        eta0=cold.multipliers["eta"],
        max_iter=3,
    )
    short = wmmse(problem, max_iter=3)
    assert again.iterations <= 3
    # restarting at the solution stays there (within 1 %); a cold start with 3 iterations does not
    assert bool((again.sum_rate >= 0.99 * cold.sum_rate).all())
    assert float((cold.sum_rate - short.sum_rate).min()) > 0.02 * float(cold.sum_rate.min())
    assert bool(again.feasible.all())
    with pytest.raises(ConfigError, match="mu0"):
        wmmse(problem, mu0=-torch.ones(2, problem.G.shape[1]))
    with pytest.raises(ShapeError, match="eta0"):
        wmmse(problem, eta0=torch.zeros(3))


def test_two_stage_passes_the_budget_and_warm_multipliers():
    budget = _two_stage("sc+wmmse", 3, seed=2, max_iter=4)
    assert max(budget.iterations) <= 4
    assert bool(budget.stacked("feasible").all())
    assert float(budget.stacked("au_interference_ratio").max()) <= 1.0 + 1e-3
    # What the scheme hands its solver: the budget every slot; from slot 1 on the previous
    # slot's beams (zeroed for users that changed BS) and multipliers mu, eta. Seed 2 has no
    # handover, seed 3 has some at slots 1 and 2 (SC follows the fading).
    handed_over = 0
    for seed in (2, 3):
        _, log, calls = _recorded("sc+wmmse", 3, seed=seed, max_iter=4)
        assert bool(log.stacked("feasible").all())
        assert calls[0][1] == {"max_iter": 4}  # slot 0: cold start (MRT, zero multipliers)
        for t in (1, 2):
            (before, _, result), (problem, kwargs, _) = calls[t - 1], calls[t]
            assert sorted(kwargs) == ["eta0", "max_iter", "mu0", "w0"]
            assert kwargs["max_iter"] == 4
            kept = problem.serving == before.serving
            handed_over += int((~kept).sum())
            expected = torch.where(kept[..., None], result.w, torch.zeros_like(result.w))
            assert torch.equal(kwargs["w0"], expected)
            assert bool((kwargs["w0"].abs().sum(-1)[kept] > 0).all())
            assert torch.equal(kwargs["mu0"], result.multipliers["mu"])
            assert torch.equal(kwargs["eta0"], result.multipliers["eta"])
            assert float(kwargs["mu0"].max()) > 0  # priced AUs: a non-trivial warm start
    assert handed_over > 0
