"""Water-filling, SSWF and random power allocation (seed 004 §V benchmarks)."""

from __future__ import annotations

import math

import pytest
import torch

from multiband_cases import hand_water_filling, tiny
from skyshare.errors import ConfigError, ShapeError
from skyshare.solvers.multiband_problem import MultibandProblem
from skyshare.solvers.waterfilling import (
    random_power,
    random_split,
    sswf,
    water_filling,
    water_level,
)


def log_rate(power: torch.Tensor, floors: torch.Tensor) -> torch.Tensor:
    return torch.log2(1 + power / floors).sum(-1)


# ------------------------------------------------------------------------------------------------
# water_filling
# ------------------------------------------------------------------------------------------------


def test_two_channels_closed_form():
    # n = (1, 3): below P = n2 - n1 = 2 all power goes to channel 1; above, p = (P +- 2) / 2.
    floors = torch.tensor([[1.0, 3.0], [1.0, 3.0], [1.0, 3.0]], dtype=torch.float64)
    budget = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    power = water_filling(floors, budget)
    expected = [[1.0, 0.0], [2.0, 0.0], [(4.0 + 2.0) / 2, (4.0 - 2.0) / 2]]
    assert power.tolist() == [pytest.approx(row, abs=1e-12) for row in expected]
    assert water_level(floors, budget).tolist() == pytest.approx([2.0, 3.0, 4.0], abs=1e-12)


def test_three_channels_closed_form_with_one_channel_dry():
    # n = (0.5, 1, 4), P = 2: level (2 + 0.5 + 1) / 2 = 1.75 < 4, so channel 3 gets nothing.
    floors = torch.tensor([4.0, 0.5, 1.0], dtype=torch.float64)
    power = water_filling(floors, torch.tensor(2.0, dtype=torch.float64))
    level = (2.0 + 0.5 + 1.0) / 2
    assert power.tolist() == pytest.approx([0.0, level - 0.5, level - 1.0], abs=1e-12)


def test_budget_met_with_equality_and_equal_level_on_active_channels():
    g = torch.Generator().manual_seed(0)
    floors = torch.rand(64, 5, 8, generator=g, dtype=torch.float64) * 3 + 0.01
    budget = torch.rand(64, 5, generator=g, dtype=torch.float64) * 4
    power = water_filling(floors, budget)
    level = water_level(floors, budget)[..., None]
    assert torch.allclose(power.sum(-1), budget, rtol=0, atol=1e-12)
    active = power > 0
    assert torch.allclose((power + floors)[active], level.expand_as(power)[active], atol=1e-12)
    # channels whose floor is at or above the level get nothing
    assert bool((power[floors >= level] == 0).all())
    assert bool((floors[~active] >= level.expand_as(power)[~active] - 1e-12).all())
    assert bool(active.any(-1).all())


def test_matches_textbook_loop():
    g = torch.Generator().manual_seed(1)
    floors = torch.rand(20, 6, generator=g, dtype=torch.float64) * 2
    budget = torch.rand(20, generator=g, dtype=torch.float64) * 3
    power = water_filling(floors, budget)
    for row in range(20):
        expected = hand_water_filling(floors[row].tolist(), float(budget[row]))
        assert power[row].tolist() == pytest.approx(expected, abs=1e-12)


def test_is_optimal_against_random_feasible_allocations():
    g = torch.Generator().manual_seed(2)
    floors = torch.rand(200, 4, generator=g, dtype=torch.float64) + 0.1
    budget = torch.full((200,), 2.0, dtype=torch.float64)
    best = log_rate(water_filling(floors, budget), floors)
    for _ in range(20):
        other = random_split(budget, 4, g)
        assert bool((log_rate(other, floors) <= best + 1e-12).all())


def test_negative_and_infinite_floors_zero_budget_and_channel_order():
    floors = torch.tensor([[-1.0, 0.5, math.inf], [2.0, 2.0, 2.0]], dtype=torch.float64)
    power = water_filling(floors, torch.tensor([3.0, 0.0], dtype=torch.float64))
    # level = min(3 - 1, (3 - 1 + 0.5) / 2) = 1.25: p = (2.25, 0.75, 0)
    expected = [2.25, 0.75, 0.0, 0.0, 0.0, 0.0]
    assert power.flatten().tolist() == pytest.approx(expected, abs=1e-12)
    g = torch.Generator().manual_seed(3)
    floors = torch.rand(10, 7, generator=g, dtype=torch.float64)
    budget = torch.rand(10, generator=g, dtype=torch.float64)
    perm = torch.randperm(7, generator=g)
    assert torch.allclose(
        water_filling(floors[:, perm], budget), water_filling(floors, budget)[:, perm]
    )


def test_float32_budget_to_rounding():
    g = torch.Generator().manual_seed(4)
    floors = torch.rand(1000, 6, generator=g) * 0.01
    budget = torch.full((1000,), 6.0)
    assert torch.allclose(water_filling(floors, budget).sum(-1), budget, rtol=1e-6)


def test_float32_budget_when_floors_dwarf_the_budget():
    """Regression (fuzzer): with floors 1e5 times the budget (SNR -50 dB) the float32 level
    (P + n_(1) + ... + n_(k)) / k lost the budget to cancellation: up to 5 % overspent."""
    g = torch.Generator().manual_seed(5)
    floors = 1e5 * (1 + torch.rand(1000, 6, generator=g))
    budget = torch.full((1000,), 6.0)
    power = water_filling(floors, budget)
    assert bool((power >= 0).all())
    assert torch.allclose(power.sum(-1), budget, rtol=1e-5)
    exact = water_filling(floors.double(), budget.double())
    assert torch.allclose(power.double(), exact, rtol=1e-4, atol=1e-5)


def test_water_filling_rejects_bad_arguments():
    floors = torch.ones(4, 3)
    with pytest.raises(ShapeError, match="budget"):
        water_filling(floors, torch.ones(3))
    with pytest.raises(ShapeError, match="budget"):
        water_filling(floors, 1.0)
    with pytest.raises(ConfigError, match="budget"):
        water_filling(floors, -torch.ones(4))
    with pytest.raises(ConfigError, match="inverse_gains"):
        water_filling(torch.full((4, 3), math.nan), torch.ones(4))
    with pytest.raises(ShapeError, match="inverse_gains"):
        water_filling(torch.ones(4, 0), torch.ones(4))


# ------------------------------------------------------------------------------------------------
# SSWF
# ------------------------------------------------------------------------------------------------


def test_sswf_is_per_user_water_filling_on_the_noise_floor():
    scenario = tiny()
    state = scenario.reset(seed=0)
    result = sswf(scenario.problem(state))
    U = scenario.config.users_per_cell
    for b in range(state.direct_gain.shape[0]):
        for k in range(scenario.config.n_users):
            floors = [1.0 / g for g in state.direct_gain[b, k].tolist()]  # sigma^2 = 1
            per_user = float(state.budget[b, k // U]) / U  # eq. (14)
            expected = hand_water_filling(floors, per_user)
            assert result.power[b, k].tolist() == pytest.approx(expected, rel=1e-10, abs=1e-12)
            assert float(result.power[b, k].sum()) == pytest.approx(per_user, rel=1e-12)
    assert result.scalars_exchanged == 0


def test_sswf_meets_the_budget_in_float32_at_low_snr():
    """Regression (issue 12 item 5): SSWF overspent its budget in float32 at SNR <= -33 dB
    (floors ~1e3 and more times the per-user budget), so the scenario refused its output."""
    from skyshare.scenarios.multiband import MultibandConfig, MultibandScenario

    config = MultibandConfig(n_cells=3, n_antennas=8, users_per_cell=4, n_freq=6, snr_db=-40)
    scenario = MultibandScenario(config, batch_size=16, dtype=torch.float32)
    state = scenario.reset(seed=0)
    result = sswf(scenario.problem(state))
    per_user = result.power.sum(-1) / scenario.problem(state).user_budget - 1.0
    assert float(per_user.abs().max()) <= 16 * 6 * torch.finfo(torch.float32).eps  # was 5 %
    scenario.step(result.power)  # accepted: within P_b(t)


def test_sswf_on_a_hand_built_two_band_problem_is_the_closed_form():
    # 2 cells x 1 user x 2 bands, no channels (H, W): SSWF reads only the direct gains, the
    # noise and the per-user budgets. User 0: floors sigma^2 / g = (0.5, 1.5), P = 3, both
    # bands active: level (3 + 0.5 + 1.5) / 2 = 2.5, p = (2, 1). User 1: floors (0.5, 4),
    # P = 1 < 4 - 0.5: everything on band 0, p = (1, 0). Cross gain 0.25 on both bands.
    noise = 0.5
    direct = torch.tensor([[[1.0, 1 / 3], [1.0, 0.125]]], dtype=torch.float64)  # (1, 2, 2)
    cross = 0.25
    gain_power = torch.full((1, 2, 2, 2), cross, dtype=torch.float64)
    gain_power[0, 0, 0], gain_power[0, 1, 1] = direct[0, 0], direct[0, 1]
    problem = MultibandProblem(
        gain_power=gain_power,
        direct_gain=direct,
        user_budget=torch.tensor([[3.0, 1.0]], dtype=torch.float64),
        noise=noise,
        n_cells=2,
        users_per_cell=1,
    )
    result = sswf(problem)
    assert result.power.flatten().tolist() == pytest.approx([2.0, 1.0, 1.0, 0.0], abs=1e-12)
    assert result.water_level.flatten().tolist() == pytest.approx([2.5, 1.5], abs=1e-12)
    # the rates carry the ICI the other cell's powers cause: SINR = p g / (p~ cross + noise)
    sinr = [2.0 * 1.0 / (1.0 * cross + noise), 1.0 / 3 / (0.0 * cross + noise)]
    sinr += [1.0 * 1.0 / (2.0 * cross + noise), 0.0]
    assert result.rates.flatten().tolist() == pytest.approx(
        [math.log2(1 + x) for x in sinr], rel=1e-12
    )
    assert result.cell_capacity.flatten().tolist() == pytest.approx(
        [math.log2(1 + sinr[0]) + math.log2(1 + sinr[1]), math.log2(1 + sinr[2])], rel=1e-12
    )
    # the random benchmark spends exactly the hand-given budgets
    split = random_power(problem, torch.Generator().manual_seed(0))
    assert split.sum(-1).flatten().tolist() == pytest.approx([3.0, 1.0], rel=1e-12)


def test_sswf_reports_rates_with_the_actual_ici():
    scenario = tiny(sir_db=0.0)
    state = scenario.reset(seed=1)
    result = sswf(scenario.problem(state))
    assert torch.allclose(result.rates, scenario.rates(state, result.power))
    assert torch.allclose(result.cell_capacity, scenario.cell_capacity(result.rates))
    c = scenario.interference_plus_noise_ratio(state, result.power)
    assert torch.allclose(result.rates, torch.log2(1 + result.power / c), atol=1e-9)
    # the ICI is real at SIR 0 dB: the interference-free rates it was optimised for are higher
    no_ici = torch.log2(1 + result.power * state.direct_gain)
    assert bool((no_ici.sum((1, 2)) > result.rates.sum((1, 2)) * 1.5).all())


def test_sswf_ignores_cross_gains():
    near = tiny(sir_db=0.0)
    far = tiny(sir_db=60.0)
    state_near = near.reset(seed=5)
    state_far = far.reset(seed=5)
    # same draws, scaled: direct gains are identical, only the ICI differs
    assert torch.allclose(state_near.direct_gain, state_far.direct_gain)
    assert torch.allclose(sswf(near.problem(state_near)).power, sswf(far.problem(state_far)).power)


# ------------------------------------------------------------------------------------------------
# Random power allocation
# ------------------------------------------------------------------------------------------------


def test_random_power_spends_every_user_budget_and_is_reproducible():
    scenario = tiny()
    state = scenario.reset(seed=0)
    problem = scenario.problem(state)
    a = random_power(problem, torch.Generator().manual_seed(9))
    b = random_power(problem, torch.Generator().manual_seed(9))
    c = random_power(problem, torch.Generator().manual_seed(10))
    assert a.shape == (3, 4, 3) and bool((a >= 0).all())
    assert torch.equal(a, b) and not torch.equal(a, c)
    per_user = scenario.user_power_budget(state.budget)
    assert torch.allclose(a.sum(-1), per_user, rtol=1e-12)
    u = random_power(problem, torch.Generator().manual_seed(9), distribution="uniform")
    assert torch.allclose(u.sum(-1), per_user, rtol=1e-12)
    with pytest.raises(ConfigError, match="distribution"):
        random_power(problem, torch.Generator(), distribution="gaussian")


def test_dirichlet_split_is_uniform_on_the_simplex():
    # A Dirichlet(1, ..., 1) component over F = 6 is Beta(1, 5): mean 1/6,
    # variance 5 / (36 * 7), P(w > 1/2) = (1/2)^5 = 1/32.
    g = torch.Generator().manual_seed(11)
    n = 40_000
    weights = random_split(torch.ones(n, dtype=torch.float64), 6, g)
    w = weights[:, 0]
    mean_se = math.sqrt(5 / 252 / n)
    assert float(w.mean()) == pytest.approx(1 / 6, abs=4 * mean_se)
    assert float(w.var()) == pytest.approx(5 / 252, rel=0.03)
    p_half = 1 / 32
    assert float((w > 0.5).double().mean()) == pytest.approx(
        p_half, abs=4 * math.sqrt(p_half * (1 - p_half) / n)
    )
    # the uniform-weights alternative is more concentrated around equal power
    u = random_split(torch.ones(n, dtype=torch.float64), 6, g, distribution="uniform")[:, 0]
    assert float(u.mean()) == pytest.approx(1 / 6, abs=4 * mean_se)
    assert float(u.var()) < 0.6 * float(w.var())
