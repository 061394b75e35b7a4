"""Forward-looking water-filling (seed 004 §III-B, eqs. (7), (14)-(16))."""

from __future__ import annotations

import math

import pytest
import torch

from multiband_cases import hand_water_filling, tiny
from skyshare.errors import ConfigError, ShapeError
from skyshare.scenarios.multiband import MultibandScenario
from skyshare.solvers.flwf import (
    equilibrium_gap,
    flwf,
    flwf_random_starts,
    flwf_update,
    forward_looking_floor,
    interference_derivative,
)
from skyshare.solvers.multiband_problem import MultibandProblem
from skyshare.solvers.waterfilling import random_power, sswf


def hand_floor(c: float, p: float) -> float:
    """The floor of (15) with phi of (16), on Python floats."""
    phi = -math.sqrt(c / (2 * c + p))
    return (c * c + phi * p * p) / (c - phi * p)


def uncoupled(direct: list[list[float]], budget: float) -> MultibandProblem:
    """A hand-built problem: one realization of 2 cells x 1 user x 2 channels with the given
    direct gains and no inter-cell coupling at all (cross gains exactly 0), so
    c = sigma^2 / gain = 1 / gain, and each user's budget ``budget`` (U = 1)."""
    gains = torch.tensor([direct], dtype=torch.float64)  # (1, K=2, F=2)
    gain_power = torch.diag_embed(gains.transpose(1, 2)).permute(0, 2, 3, 1)  # (1, K, K, F)
    return MultibandProblem(
        gain_power=gain_power,
        direct_gain=gains,
        user_budget=torch.full((1, 2), budget, dtype=torch.float64),
        noise=1.0,
        n_cells=2,
        users_per_cell=1,
    )


def realization(problem: MultibandProblem, b: int, repeats: int = 1) -> MultibandProblem:
    """Realization b of a batched problem (repeated ``repeats`` times on the batch axis)."""
    return problem.subset([b] * repeats)


# ------------------------------------------------------------------------------------------------
# The update (15)-(16) on fixed inputs
# ------------------------------------------------------------------------------------------------


def test_update_against_hand_values():
    c = torch.tensor([[1.0, 2.0], [0.5, 3.0]], dtype=torch.float64)
    p_prev = torch.tensor([[3.0, 1.0], [0.0, 2.0]], dtype=torch.float64)
    budget = torch.tensor([4.0, 1.0], dtype=torch.float64)

    phi = [
        [-math.sqrt(1 / (2 + 3)), -math.sqrt(2 / (4 + 1))],
        [-math.sqrt(0.5 / 1), -math.sqrt(3 / (6 + 2))],
    ]
    assert interference_derivative(c, p_prev).tolist() == [
        pytest.approx(row, rel=1e-14) for row in phi
    ]
    # row 0: g1 = (1 + phi1 9) / (1 - phi1 3), g2 = (4 + phi2) / (2 - phi2)
    g1 = (1 + phi[0][0] * 9) / (1 - phi[0][0] * 3)
    g2 = (4 + phi[0][1] * 1) / (2 - phi[0][1] * 1)
    # row 1: p_prev = 0 on channel 1 gives g = c = 0.5; g2 = (9 + phi 4) / (3 - phi 2)
    h1 = 0.5
    h2 = (9 + phi[1][1] * 4) / (3 - phi[1][1] * 2)
    floors = forward_looking_floor(c, p_prev)
    assert floors.flatten().tolist() == pytest.approx([g1, g2, h1, h2], rel=1e-14)
    assert g1 < 0 < g2  # the forward-looking floor can be negative

    # water level so that the budget holds: row 0 both active, level (4 + g1 + g2) / 2;
    # row 1: level = min(1 + 0.5, (1 + 0.5 + h2) / 2) = 1.5 (h2 > 1.5): channel 2 is dry
    level0 = min(4 + g1, (4 + g1 + g2) / 2)
    assert level0 == pytest.approx((4 + g1 + g2) / 2)
    assert h2 > 1.5
    expected = [level0 - g1, level0 - g2, 1.0, 0.0]
    power = flwf_update(c, p_prev, budget)
    assert power.flatten().tolist() == pytest.approx(expected, rel=1e-12, abs=1e-12)
    # phi = 0 is classic iterative water-filling: floors c
    assert torch.equal(forward_looking_floor(c, p_prev, forward_looking=False), c)
    iwf = flwf_update(c, p_prev, budget, forward_looking=False)
    assert iwf[0].tolist() == pytest.approx([2.5, 1.5], rel=1e-12)


def test_update_rejects_mismatched_shapes():
    with pytest.raises(ShapeError):
        flwf_update(torch.ones(2, 3), torch.ones(2, 2), torch.ones(2))
    with pytest.raises(ShapeError):
        flwf_update(torch.ones(2, 3), torch.ones(2, 3), torch.ones(3))


def test_one_iteration_uses_the_scenario_environmental_function():
    scenario = tiny()
    state = scenario.reset(seed=2)
    problem = scenario.problem(state)
    power0 = random_power(problem, torch.Generator().manual_seed(0))
    result = flwf(problem, power0, max_iter=1)
    c = scenario.interference_plus_noise_ratio(state, power0)  # eq. (7)
    per_user = scenario.user_power_budget(state.budget)  # eq. (14)
    assert torch.allclose(result.power, flwf_update(c, power0, per_user), atol=1e-12)
    assert result.iterations == 1 and result.scalars_exchanged == 0


# ------------------------------------------------------------------------------------------------
# The game
# ------------------------------------------------------------------------------------------------


def test_converges_on_small_cases():
    scenario = tiny(batch_size=4, users_per_cell=1)
    state = scenario.reset(seed=3)
    problem = scenario.problem(state)
    power0 = random_power(problem, torch.Generator().manual_seed(1))
    result = flwf(problem, power0, max_iter=2000, tol=1e-6)
    assert bool(result.converged.all())
    assert result.iterations < 2000
    assert bool((result.instance_iterations <= result.iterations).all())
    assert bool((result.equilibrium_gap <= 1e-6).all())
    assert torch.allclose(
        equilibrium_gap(problem, result.power), result.equilibrium_gap, atol=1e-15
    )
    # at the equilibrium every user's best response (15) leaves its rate unchanged (1e-6)
    c = scenario.interference_plus_noise_ratio(state, result.power)
    response = flwf_update(c, result.power, scenario.user_power_budget(state.budget))
    rate = torch.log2(1 + result.power / c).sum(-1)
    moved = torch.log2(1 + response / c).sum(-1)
    assert bool(((moved - rate).abs() <= 1e-6 * rate).all())
    # ... and the game raised the capacity well above the random start
    assert bool((result.capacity_trace[:, -1] > result.capacity_trace[:, 0]).all())


def test_equilibrium_gap_against_hand_computation():
    scenario = tiny(batch_size=2)
    state = scenario.reset(seed=4)
    problem = scenario.problem(state)
    power = random_power(problem, torch.Generator().manual_seed(2))
    gap = equilibrium_gap(problem, power)
    c = scenario.interference_plus_noise_ratio(state, power)
    U = scenario.config.users_per_cell
    for b in range(2):
        worst = 0.0
        for k in range(scenario.config.n_users):
            cs, ps = c[b, k].tolist(), power[b, k].tolist()
            response = hand_water_filling(
                [hand_floor(ci, pi) for ci, pi in zip(cs, ps, strict=True)],
                float(state.budget[b, k // U]) / U,
            )
            now = sum(math.log2(1 + p / ci) for p, ci in zip(ps, cs, strict=True))
            then = sum(math.log2(1 + p / ci) for p, ci in zip(response, cs, strict=True))
            worst = max(worst, abs(then - now) / now)
        assert float(gap[b]) == pytest.approx(worst, rel=1e-9)
        assert worst > 1e-3  # a random allocation is far from an equilibrium


def test_per_user_budget_holds_at_every_iterate_and_trace_is_consistent():
    scenario = tiny(batch_size=2)
    state = scenario.reset(seed=5)
    problem = scenario.problem(state)
    power0 = random_power(problem, torch.Generator().manual_seed(3)) * 0.3
    per_user = scenario.user_power_budget(state.budget)
    long = flwf(problem, power0, max_iter=8, tol=0.0)
    assert long.iterations == 8 and long.capacity_trace.shape == (2, 9)
    for k in range(1, 9):
        short = flwf(problem, power0, max_iter=k, tol=0.0)
        assert torch.allclose(short.power.sum(-1), per_user, rtol=1e-12)  # eq. (14)
        assert bool((short.power >= 0).all())
        assert torch.allclose(short.capacity_trace, long.capacity_trace[:, : k + 1])
    expected = scenario.cell_capacity(scenario.rates(state, long.power)).mean(-1)
    assert torch.allclose(long.capacity_trace[:, -1], expected, rtol=1e-9)
    assert torch.allclose(long.rates, scenario.rates(state, long.power), rtol=1e-9, atol=1e-12)
    assert torch.allclose(long.cell_capacity, scenario.cell_capacity(long.rates))
    start = scenario.cell_capacity(scenario.rates(state, power0)).mean(-1)
    assert torch.allclose(long.capacity_trace[:, 0], start, rtol=1e-9)


def test_max_iter_zero_evaluates_the_start():
    scenario = tiny(batch_size=2)
    problem = scenario.problem(scenario.reset(seed=6))
    power0 = random_power(problem, torch.Generator().manual_seed(4))
    result = flwf(problem, power0, max_iter=0)
    assert torch.equal(result.power, power0)
    assert result.iterations == 0 and not bool(result.converged.any())
    assert result.capacity_trace.shape == (2, 1)


def test_first_iterate_from_silence_is_sswf():
    # p^0 = 0: c^1 is noise over gain and phi^1 p^0 = 0, so (15) is SSWF, whatever the ICI.
    scenario = tiny(sir_db=0.0)
    state = scenario.reset(seed=7)
    zero = torch.zeros(3, scenario.config.n_users, scenario.config.n_freq, dtype=torch.float64)
    problem = scenario.problem(state)
    first = flwf(problem, zero, max_iter=1)
    assert torch.allclose(first.power, sswf(problem).power, atol=1e-12)


def test_without_coupling_iterative_water_filling_is_sswf():
    problem = uncoupled([[1.0, 0.5], [0.25, 1.0]], budget=4.0)
    expected = sswf(problem).power
    # by hand: user 0 floors (1, 2), P = 4: level 3.5; user 1 floors (4, 1): level 4.5
    assert expected.flatten().tolist() == pytest.approx([2.5, 1.5, 0.5, 3.5], abs=1e-12)
    power0 = torch.full_like(expected, 2.0)
    iwf = flwf(problem, power0, forward_looking=False)
    assert torch.allclose(iwf.power, expected, atol=1e-12)
    assert bool(iwf.converged.all()) and iwf.instance_iterations.tolist() == [1]
    assert float(iwf.equilibrium_gap[0]) <= 1e-12


def test_without_coupling_forward_looking_concentrates_power():
    # Without coupling c = 1 / gain is fixed, but phi of (16) is not 0: FLWF is not SSWF.
    # User 0 (c = (1, 2), P = 4): at p = (4, 0) the floors of (15) are g1 = hand_floor(1, 4)
    # and c2 = 2; the level min(4 + g1, (4 + g1 + 2) / 2) = 4 + g1 < 2 keeps channel 2 dry,
    # so (4, 0) is a fixed point. User 1 (c = (4, 1)) likewise settles on (0, 4).
    g1 = hand_floor(1.0, 4.0)
    assert 4 + g1 < 2.0 and 4 + g1 < (4 + g1 + 2) / 2
    problem = uncoupled([[1.0, 0.5], [0.25, 1.0]], budget=4.0)
    power0 = torch.full((1, 2, 2), 2.0, dtype=torch.float64)
    result = flwf(problem, power0, max_iter=500, tol=1e-9)
    assert bool(result.converged.all())
    assert result.power.flatten().tolist() == pytest.approx([4.0, 0.0, 0.0, 4.0], abs=1e-7)
    # water-filling is optimal without coupling, so SSWF's rate is higher here
    flwf_rate = math.log2(1 + 4 / 1)
    sswf_rate = math.log2(1 + 2.5 / 1) + math.log2(1 + 1.5 / 2)
    assert float(result.rates[0, 0].sum()) == pytest.approx(flwf_rate, rel=1e-7)
    assert sswf(problem).power[0, 0].tolist() == pytest.approx([2.5, 1.5], abs=1e-12)
    assert flwf_rate < sswf_rate


def test_batch_equals_one_realization_at_a_time():
    scenario = tiny(batch_size=3)
    problem = scenario.problem(scenario.reset(seed=8))
    power0 = random_power(problem, torch.Generator().manual_seed(5))
    batched = flwf(problem, power0, max_iter=400, tol=1e-5)
    assert len(set(batched.instance_iterations.tolist())) > 1  # instances stop at different i
    for b in range(3):
        alone = flwf(realization(problem, b), power0[b : b + 1], max_iter=400, tol=1e-5)
        assert torch.allclose(alone.power, batched.power[b : b + 1], rtol=1e-10, atol=1e-12)
        assert alone.instance_iterations.tolist() == batched.instance_iterations[b : b + 1].tolist()
        assert alone.converged.tolist() == batched.converged[b : b + 1].tolist()
        T = alone.capacity_trace.shape[1]
        assert torch.allclose(alone.capacity_trace, batched.capacity_trace[b : b + 1, :T])
        assert torch.allclose(alone.equilibrium_gap, batched.equilibrium_gap[b : b + 1])


def test_random_starts_equal_flwf_on_repeated_realizations():
    scenario = tiny(batch_size=2)
    state = scenario.reset(seed=9)
    problem = scenario.problem(state)
    S = 4
    starts = flwf_random_starts(problem, S, torch.Generator().manual_seed(6), max_iter=50, tol=1e-5)
    assert starts.result.power.shape == (2 * S, 4, 3) and starts.capacity.shape == (2, S)
    for b in range(2):
        repeated = realization(problem, b, repeats=S)
        alone = flwf(repeated, starts.power0[b * S : (b + 1) * S], max_iter=50, tol=1e-5)
        assert torch.allclose(alone.power, starts.result.power[b * S : (b + 1) * S], atol=1e-12)
        final = alone.cell_capacity.mean(-1)
        assert torch.allclose(starts.capacity[b], final, rtol=1e-10)
        assert float(starts.capacity_mean[b]) == pytest.approx(float(final.mean()), rel=1e-10)
        assert float(starts.capacity_std[b]) == pytest.approx(float(final.std()), rel=1e-8)
        assert float(starts.capacity_max[b]) == pytest.approx(float(final.max()), rel=1e-10)
    per_user = scenario.user_power_budget(state.budget).repeat_interleave(S, dim=0)
    assert torch.allclose(starts.power0.sum(-1), per_user, rtol=1e-12)
    assert starts.result.scalars_exchanged == 0


def test_flwf_beats_sswf_and_random_on_the_quick_preset():
    # (M, U) = (8, 4), N_f = 6, SIR 0 dB: the cells learn to share the channels.
    scenario = MultibandScenario.from_preset("quick", batch_size=2)
    state = scenario.reset(seed=0)
    problem = scenario.problem(state)
    g = torch.Generator().manual_seed(0)
    starts = flwf_random_starts(problem, 4, g, max_iter=150)
    selfish = sswf(problem).cell_capacity.mean(-1)
    random = scenario.cell_capacity(scenario.rates(state, random_power(problem, g)))
    assert bool((starts.capacity_mean > 2.5 * selfish).all())
    assert bool((starts.capacity_mean > 2.5 * random.mean(-1)).all())


def test_rejects_bad_arguments():
    scenario = tiny(batch_size=1)
    problem = scenario.problem(scenario.reset(seed=0))
    good = random_power(problem, torch.Generator().manual_seed(0))
    with pytest.raises(ShapeError, match="power0"):
        flwf(problem, good[..., :2])
    with pytest.raises(ConfigError, match="power0"):
        flwf(problem, -good)
    with pytest.raises(ConfigError, match="power0"):
        flwf(problem, good * math.nan)
    with pytest.raises(ConfigError, match="max_iter"):
        flwf(problem, good, max_iter=-1)
    with pytest.raises(ConfigError, match="tol"):
        flwf(problem, good, tol=-1e-3)
    with pytest.raises(ConfigError, match="n_starts"):
        flwf_random_starts(problem, 0, torch.Generator())
    with pytest.raises(ShapeError, match="power"):
        equilibrium_gap(problem, good[0])


# ------------------------------------------------------------------------------------------------
# Active set: converged instances leave the batch
# ------------------------------------------------------------------------------------------------


def frozen_flwf(problem: MultibandProblem, power0: torch.Tensor, max_iter: int, tol: float):
    """The loop that freezes converged instances in the batch (the solver before its active
    set), from the public pieces: (power, instance iterations, converged)."""
    power = power0.clone()
    B = power.shape[0]
    active = torch.ones(B, dtype=torch.bool)
    converged = torch.zeros(B, dtype=torch.bool)
    iterations = torch.zeros(B, dtype=torch.long)
    for i in range(1, max_iter + 1):
        c = problem.interference_plus_noise_ratio(power)
        response = flwf_update(c, power, problem.user_budget.to(power.dtype))
        if i > 1:
            settled = active & (equilibrium_gap(problem, power) <= tol)
            converged |= settled
            active &= ~settled
            if not bool(active.any()):
                break
        power = torch.where(active[:, None, None], response, power)
        iterations += active
    converged |= (equilibrium_gap(problem, power) <= tol) & (iterations > 0)
    return power, iterations, converged


def test_active_set_equals_the_frozen_loop():
    scenario = tiny(batch_size=6)
    problem = scenario.problem(scenario.reset(seed=3))
    power0 = random_power(problem, torch.Generator().manual_seed(4))
    result = flwf(problem, power0, max_iter=400, tol=1e-5)
    power, iterations, converged = frozen_flwf(problem, power0, 400, 1e-5)
    assert len(set(result.instance_iterations.tolist())) > 2
    assert result.instance_iterations.tolist() == iterations.tolist()
    assert result.converged.tolist() == converged.tolist()
    assert torch.allclose(result.power, power, rtol=1e-10, atol=1e-12)


def test_random_starts_active_set_equals_each_start_alone():
    """The packed (realization, start) active set: every start of every realization gets the
    allocation, trace and iteration count it gets alone."""
    scenario = tiny(batch_size=3)
    problem = scenario.problem(scenario.reset(seed=9))
    S = 4
    starts = flwf_random_starts(problem, S, torch.Generator().manual_seed(2), max_iter=80, tol=1e-4)
    result = starts.result
    assert len(set(result.instance_iterations.tolist())) > 2
    for n in range(3 * S):
        alone = flwf(realization(problem, n // S), starts.power0[n : n + 1], max_iter=80, tol=1e-4)
        assert alone.instance_iterations.tolist() == [int(result.instance_iterations[n])]
        assert alone.converged.tolist() == [bool(result.converged[n])]
        assert torch.allclose(alone.power[0], result.power[n], rtol=1e-10, atol=1e-12)
        assert torch.allclose(alone.equilibrium_gap[0], result.equilibrium_gap[n])
        T = alone.capacity_trace.shape[1]
        assert torch.allclose(alone.capacity_trace[0], result.capacity_trace[n, :T])
        assert bool((result.capacity_trace[n, T:] == result.capacity_trace[n, T - 1]).all())


def test_start_at_an_equilibrium_reports_one_iteration():
    scenario = tiny(batch_size=2)
    problem = scenario.problem(scenario.reset(seed=5))
    power0 = random_power(problem, torch.Generator().manual_seed(6))
    settled = flwf(problem, power0, max_iter=2000, tol=1e-9).power
    power0[0] = settled[0]
    result = flwf(problem, power0, max_iter=200, tol=1e-6)
    assert result.instance_iterations[0] == 1 and result.instance_iterations[1] > 1
    assert bool(result.converged.all())
