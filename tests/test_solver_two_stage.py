"""The two-stage scheme over dynamic slots: association + feasible beamforming per slot."""

from skyshare.scenarios import CatnScenario
from skyshare.solvers.two_stage import run_two_stage


def test_two_stage_dcd_wmmse_lite_is_feasible_and_beats_no_coordination():
    scenario = CatnScenario.from_preset("quick", batch_size=2)
    trace = run_two_stage(scenario, "dcd", "wmmse-lite", 3, seed=1, progress=False)
    assert trace.sum_rate.shape == (3, 2) and trace.au_interference_ratio.shape == (3, 2, 2)
    assert bool(trace.feasible.all())
    assert float(trace.au_interference_ratio.max()) <= 1.0 + 1e-3
    summary = trace.summary()
    # SC + MRT at full power (the link budget's reference) violates I_max by ~15 dB
    assert summary["mean sum rate (bit/s/Hz)"] > 0
    assert trace.slots.tolist() == [0, 1, 2]
    assert int(trace.handovers[0].sum()) == 0


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
    scenario = CatnScenario.from_preset("quick", batch_size=2)
    budget = run_two_stage(
        scenario, "sc", "wmmse", 3, seed=2, progress=False, solver_options={"max_iter": 4}
    )
    assert int(budget.iterations.max()) <= 4
    assert bool(budget.feasible.all())
    assert float(budget.au_interference_ratio.max()) <= 1.0 + 1e-3
