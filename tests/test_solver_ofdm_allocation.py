"""Reference subchannel allocations for seed 001 (skyshare.solvers.ofdm_allocation).

Independent checks: the scenario's power rule and round robin, eq. (3) recomputed by explicit
loops, the exact move gains of the best response recomputed by re-evaluating J, and brute-force
optima of tiny instances.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from skyshare.errors import ConfigError, ShapeError
from skyshare.scenarios.tn_ntn import TnNtnScenario
from skyshare.solvers import ofdm_allocation as oa
from skyshare.solvers.ofdm_allocation import (
    OfdmAllocationProblem,
    best_response,
    equal_power,
    evaluate_allocation,
    greedy_best_response,
    qos_greedy,
    random_allocation,
    round_robin_allocation,
)


def _scenario(batch: int, n_bs: int = 3, dtype=torch.float32, **overrides) -> TnNtnScenario:
    tbs = ((-250.0, 0.0), (250.0, 0.0))[: n_bs - 1]
    overrides = {"seed": 3, "tbs_xy_m": tbs, **overrides}
    return TnNtnScenario.from_preset("quick", overrides=overrides, batch_size=batch, dtype=dtype)


def _problem(scenario: TnNtnScenario, min_rate_bps: float | None = None) -> OfdmAllocationProblem:
    state = scenario.state if scenario.state is not None else scenario.reset()
    return OfdmAllocationProblem(
        gain=state.H.abs().square(),
        active=state.active,
        p_max_w=scenario.p_max_w,
        srb_size=scenario.config.srb_size,
        min_rate_bps=scenario.min_rate_bps if min_rate_bps is None else min_rate_bps,
        subchannel_bandwidth_hz=scenario.subchannel_bandwidth_hz,
    )


def _tiny(n_bs: int, n_subchannels: int, srb_size: int, batch: int = 10, seed: int = 3):
    """Tiny instances from the scenario (K_max = 2, most slots active), float64."""
    scenario = _scenario(
        batch,
        n_bs=n_bs,
        dtype=torch.float64,
        n_subchannels=n_subchannels,
        srb_size=srb_size,
        k_max=2,
        active_mean_fraction=1.0,
        seed=seed,
    )
    return _problem(scenario)


def _brute_force(problem: OfdmAllocationProblem, qos_weight: float) -> torch.Tensor:
    """(B,) the largest J over every schedule (each (BS, subchannel) off or an active user)."""
    B, _, N, F = problem.gain.shape
    best = []
    for b in range(B):
        choices = [
            [-1] + [k for k in range(problem.k_max) if problem.active[b, n, k]]
            for n in range(N)
            for f in range(F)
        ]
        schedules = torch.tensor(list(itertools.product(*choices))).view(-1, N, F)
        C = schedules.shape[0]
        one = OfdmAllocationProblem(
            problem.gain[b : b + 1].expand(C, -1, -1, -1),
            problem.active[b : b + 1].expand(C, -1, -1),
            problem.p_max_w,
            problem.srb_size,
            problem.min_rate_bps,
            problem.subchannel_bandwidth_hz,
        )
        best.append(evaluate_allocation(one, schedules).objective(qos_weight).max())
    return torch.stack(best)


# ------------------------------------------------------------------------------------------------
# Rules: power, round robin, random
# ------------------------------------------------------------------------------------------------


def test_equal_power_is_the_scenarios_and_within_budget():
    scenario = _scenario(4, n_subchannels=80, k_max=5)  # M = 2 SRBs of 40
    g = torch.Generator().manual_seed(1)
    assignment = torch.randint(-1, 5, (4, 3, 80), generator=g)
    assignment[0, 1, :40] = -1  # a whole SRB off
    assignment[1, 2] = -1  # a whole BS off
    ours = equal_power(assignment, scenario.p_max_w, 40)
    assert torch.equal(ours, scenario.equal_power(assignment))
    as_tensor = equal_power(assignment, torch.full((3,), scenario.p_max_w), 40)
    torch.testing.assert_close(as_tensor, ours)
    # by hand: p_max / (M * on count of the SRB) on every on subchannel, 0 elsewhere
    for b, n, m in itertools.product(range(4), range(3), range(2)):
        block = assignment[b, n, 40 * m : 40 * (m + 1)]
        count = int((block >= 0).sum())
        expected = [scenario.p_max_w / (2 * count) if a >= 0 else 0.0 for a in block.tolist()]
        assert ours[b, n, 40 * m : 40 * (m + 1)].tolist() == pytest.approx(expected, rel=1e-6)
    total = ours.sum(-1)
    assert bool((total <= scenario.p_max_w * (1 + 1e-6)).all())
    assert total[0, 1].item() == pytest.approx(scenario.p_max_w / 2, rel=1e-6)
    assert total[1, 2].item() == 0.0
    # a per-BS p_max
    p_max = torch.tensor([1.0, 2.0, 4.0])
    torch.testing.assert_close(equal_power(assignment, p_max, 40).sum(-1).amax(0), p_max)


def test_round_robin_by_hand_and_as_the_scenario():
    active = torch.tensor(
        [[[True, False, True, True], [False] * 4], [[False, True, False, False], [True] * 4]]
    )
    assignment = round_robin_allocation(active, 6)
    for b, n in itertools.product(range(2), range(2)):
        users = [k for k in range(4) if active[b, n, k]]
        expected = [users[f % len(users)] if users else -1 for f in range(6)]
        assert assignment[b, n].tolist() == expected
    scenario = _scenario(3, n_subchannels=80, k_max=6)
    state = scenario.reset()
    assert torch.equal(
        round_robin_allocation(state.active, 80), scenario.round_robin_assignment(state.active)
    )


def test_random_allocation_uniform_over_active_users_and_seeded():
    active = torch.tensor([[[True, False, True, True], [False] * 4, [False, True, False, False]]])
    active = active.expand(500, -1, -1).contiguous()
    draw = random_allocation(active, 20, torch.Generator().manual_seed(5))
    again = random_allocation(active, 20, torch.Generator().manual_seed(5))
    assert torch.equal(draw, again)
    assert bool((draw[:, 1] == -1).all())
    assert bool((draw[:, 2] == 1).all())
    counts = torch.bincount(draw[:, 0].flatten(), minlength=4).tolist()
    n = 500 * 20
    assert counts[1] == 0
    for k in (0, 2, 3):  # 1/3 each: binomial std sqrt(n/3 * 2/3) ~ 47
        assert abs(counts[k] - n / 3) < 5 * math.sqrt(n * 2 / 9)


def test_no_rule_gives_an_inactive_user_a_subchannel():
    scenario = _scenario(4, n_subchannels=80, k_max=8, active_mean_fraction=0.4)
    problem = _problem(scenario)
    active = problem.active
    assert bool((~active).any()) and bool(active.any())
    schedules = {
        "random": random_allocation(active, 80, torch.Generator().manual_seed(0)),
        "round robin": round_robin_allocation(active, 80),
        "qos_greedy": qos_greedy(problem),
        "greedy_best_response": greedy_best_response(problem, n_starts=3).assignment,
    }
    for name, assignment in schedules.items():
        on = assignment >= 0
        served_active = torch.gather(active, 2, assignment.clamp_min(0))
        assert bool(served_active[on].all()), name
        assert bool((on.any(-1) <= active.any(-1)).all()), name


# ------------------------------------------------------------------------------------------------
# Evaluation: eq. (3), QoS (4), cost (11)
# ------------------------------------------------------------------------------------------------


def test_evaluation_by_explicit_loops():
    g = torch.Generator().manual_seed(2)
    B, N, K, F, S = 2, 3, 2, 4, 2
    gain = torch.rand(B, N * K, N, F, generator=g, dtype=torch.float64) * 50
    active = torch.tensor([[[True, True], [True, False], [False, True]]] * B)
    p_max = [2.0, 1.0, 3.0]
    W, eta = 1e6, 4e6
    problem = OfdmAllocationProblem(gain, active, torch.tensor(p_max), S, eta, W)
    assignment = torch.tensor(
        [[[0, 1, -1, 0], [0, 1, 0, -1], [-1, -1, 1, 1]], [[1, 1, 1, 1], [-1] * 4, [0, 1, 1, 0]]]
    )  # BS 1 of realization 0 serves its inactive slot 1 (no rate, but it interferes)
    result = evaluate_allocation(problem, assignment)
    for b in range(B):
        power = [[0.0] * F for _ in range(N)]
        for n, m in itertools.product(range(N), range(F // S)):
            on = [f for f in range(m * S, (m + 1) * S) if assignment[b, n, f] >= 0]
            for f in on:
                power[n][f] = p_max[n] / (F // S) / len(on)
        rates = [0.0] * (N * K)
        for n, f in itertools.product(range(N), range(F)):
            k = int(assignment[b, n, f])
            if k < 0 or not active[b, n, k]:
                continue
            p = n * K + k
            interference = sum(gain[b, p, l, f].item() * power[l][f] for l in range(N) if l != n)
            rates[p] += W * math.log2(
                1 + gain[b, p, n, f].item() * power[n][f] / (1 + interference)
            )
        assert result.power[b].tolist() == [pytest.approx(row) for row in power]
        assert result.user_rates[b].tolist() == pytest.approx(rates, rel=1e-12)
        assert result.throughput[b].item() == pytest.approx(sum(rates), rel=1e-12)
        flags = active[b].flatten().tolist()
        cost = [max(eta - r, 0.0) if a else 0.0 for r, a in zip(rates, flags, strict=True)]
        assert result.cost[b].tolist() == pytest.approx(cost, rel=1e-12)
        assert int(result.qos_miss[b]) == sum(
            r < eta and a for r, a in zip(rates, flags, strict=True)
        )
        assert result.objective(3.0)[b].item() == pytest.approx(sum(rates) - 3 * sum(cost))


# ------------------------------------------------------------------------------------------------
# The heuristic
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("miss_penalty", [0.0, 2e6])
def test_move_gains_are_exact(miss_penalty):
    """Every unilateral move's and every swap's predicted gain equals J recomputed after it."""
    g = torch.Generator().manual_seed(4)
    B, N, K, F, S = 2, 3, 3, 6, 3
    gain = torch.rand(B, N * K, N, F, generator=g, dtype=torch.float64) ** 3 * 20
    active = torch.rand(B, N, K, generator=g) < 0.7
    problem = OfdmAllocationProblem(gain, active, 2.0, S, 3e6, 1e6)
    work = oa._Work(problem, 3.0, miss_penalty)
    assignment = torch.randint(-1, K, (B, N, F), generator=g)  # inactive users too
    links = oa._links(work, assignment)
    moves, swaps = oa._move_values(work, links), oa._swap_values(work, links)
    J = work.objective(assignment)
    for b, n, f in itertools.product(range(B), range(N), range(F)):
        for value in range(-1, K):
            trial = assignment.clone()
            trial[b, n, f] = value
            predicted = moves[b, n, f, value + 1].item()
            if value == assignment[b, n, f] or (value >= 0 and not active[b, n, value]):
                assert predicted == -math.inf
                continue
            assert predicted == pytest.approx((work.objective(trial) - J)[b].item(), abs=1e-9)
        for f2 in range(F):
            u1, u2 = int(assignment[b, n, f]), int(assignment[b, n, f2])
            if f2 <= f or u1 < 0 or u2 < 0 or u1 == u2:
                assert swaps[b, n, f, f2].item() == -math.inf
                continue
            trial = assignment.clone()
            trial[b, n, f], trial[b, n, f2] = u2, u1
            change = (work.objective(trial) - J)[b].item()
            assert swaps[b, n, f, f2].item() == pytest.approx(change, abs=1e-9)


TINY = [(2, 4, 2), (3, 3, 3), (3, 2, 1)]  # (N, F, S); K_max = 2: 3^8, 3^9, 3^6 schedules


def _gaps(problem: OfdmAllocationProblem, result, qos_weight: float) -> torch.Tensor:
    """(optimum - J) / max(|optimum|, 1 Mbit/s) per instance."""
    optimum = _brute_force(problem, qos_weight)
    gap = (optimum - result.objective) / optimum.abs().clamp_min(1e6)
    assert bool((gap >= -1e-9).all())  # never above the optimum
    return gap


@pytest.mark.parametrize(("n_bs", "n_subchannels", "srb_size"), TINY)
def test_soft_penalty_near_brute_force(n_bs, n_subchannels, srb_size):
    """w = 4, one start: the optimum on most of 20 tiny instances, close on average.
    Measured (N, F, S) = (2, 4, 2), (3, 3, 3), (3, 2, 1): optimum on 18, 15, 16 of 20; mean gap
    0.6 %, 0.6 %, 1.4 %; largest 10.9 %, 6.6 %, 16.2 %."""
    problem = _tiny(n_bs, n_subchannels, srb_size, batch=20)
    result = greedy_best_response(problem, qos_weight=4.0)
    assert bool(result.converged.all())
    gap = _gaps(problem, result, 4.0)
    assert int((gap < 1e-9).sum()) >= 13
    assert gap.mean().item() < 0.03
    assert gap.max().item() < 0.25


@pytest.mark.parametrize(("n_bs", "n_subchannels", "srb_size"), TINY)
def test_strict_penalty_with_starts_near_brute_force(n_bs, n_subchannels, srb_size):
    """w = 100 (QoS first) makes the landscape rugged; 6 starts. Measured: optimum on 17, 16,
    19 of 20; mean gap 0.2 %, 1.3 %, 0.1 %; largest 1.5 %, 22.7 %, 2.0 %."""
    problem = _tiny(n_bs, n_subchannels, srb_size, batch=20)
    result = greedy_best_response(problem, n_starts=6)
    gap = _gaps(problem, result, 100.0)
    assert int((gap < 1e-9).sum()) >= 14
    assert gap.mean().item() < 0.03
    assert gap.max().item() < 0.3


def test_starts_never_hurt():
    problem = _tiny(3, 3, 3, batch=20)
    one = greedy_best_response(problem, n_starts=1)
    six = greedy_best_response(problem, n_starts=6)
    assert bool((six.objective >= one.objective).all())
    assert bool((six.objective > one.objective).any())


def test_best_response_never_lowers_its_objective():
    problem = _problem(_scenario(3, n_subchannels=80, k_max=6))
    starts = [
        round_robin_allocation(problem.active, 80),
        random_allocation(problem.active, 80, torch.Generator().manual_seed(0)),
    ]
    for start in starts:
        for weight in (4.0, 100.0):
            result = best_response(problem, start, qos_weight=weight)
            trace = result.objective_trace.double()
            assert trace.shape == (result.iterations + 1, 3)
            assert result.iterations > 5
            steps = trace[1:] - trace[:-1]
            assert bool((steps >= -1e-9 * trace[:-1].abs()).all())
            assert bool((trace[-1] > trace[0]).all())
            torch.testing.assert_close(trace[-1], result.objective.double(), rtol=1e-5, atol=1.0)
            assert bool(result.converged.all())


def test_beats_random_and_round_robin():
    problem = _problem(_scenario(4, n_subchannels=80, k_max=10))
    random_rate = evaluate_allocation(
        problem, random_allocation(problem.active, 80, torch.Generator().manual_seed(0))
    )
    rr = evaluate_allocation(problem, round_robin_allocation(problem.active, 80))
    result = greedy_best_response(problem)
    assert result.throughput.mean() > 1.5 * random_rate.throughput.mean()
    assert result.throughput.mean() > 1.5 * rr.throughput.mean()
    assert result.qos_miss.sum() < rr.qos_miss.sum()
    assert result.qos_miss.sum() < random_rate.qos_miss.sum()
    assert result.wall_time_s > 0


def test_batched_equals_one_by_one():
    problem = _problem(_scenario(3, n_subchannels=40, k_max=4, srb_size=20))
    batched = greedy_best_response(problem, n_starts=2)
    for b in range(3):
        one = OfdmAllocationProblem(
            problem.gain[b : b + 1],
            problem.active[b : b + 1],
            problem.p_max_w,
            problem.srb_size,
            problem.min_rate_bps,
            problem.subchannel_bandwidth_hz,
        )
        single = greedy_best_response(one, n_starts=2)
        assert torch.equal(batched.assignment[b : b + 1], single.assignment)
        torch.testing.assert_close(batched.user_rates[b : b + 1], single.user_rates)
        assert torch.equal(batched.qos_miss[b : b + 1], single.qos_miss)


def test_zero_rounds_keeps_the_start_and_eta_zero_is_the_sum_rate():
    problem = _problem(_scenario(2, n_subchannels=40, k_max=4, srb_size=20), min_rate_bps=0.0)
    start = round_robin_allocation(problem.active, 40)
    still = best_response(problem, start, max_rounds=0)
    assert torch.equal(still.assignment, start) and still.iterations == 0
    result = best_response(problem, start)
    torch.testing.assert_close(result.objective, result.throughput)
    assert int(result.qos_miss.sum()) == 0


# ------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------


def _args(**changes):
    g = torch.Generator().manual_seed(0)
    args = {
        "gain": torch.rand(2, 6, 3, 4, generator=g),
        "active": torch.ones(2, 3, 2, dtype=torch.bool),
        "p_max_w": 1.0,
        "srb_size": 2,
        "min_rate_bps": 1e6,
        "subchannel_bandwidth_hz": 1e5,
    }
    args.update(changes)
    return args


@pytest.mark.parametrize(
    ("changes", "error", "field"),
    [
        ({"gain": torch.rand(2, 6, 3)}, ShapeError, "gain"),
        ({"gain": torch.rand(2, 6, 3, 4, dtype=torch.complex64)}, ShapeError, "gain"),
        ({"gain": torch.full((2, 6, 3, 4), math.nan)}, ConfigError, "gain"),
        ({"gain": -torch.ones(2, 6, 3, 4)}, ConfigError, "gain"),
        ({"active": torch.ones(2, 3, 2, dtype=torch.long)}, ShapeError, "active"),
        ({"active": torch.ones(2, 3, 3, dtype=torch.bool)}, ShapeError, "active"),
        ({"active": torch.ones(2, 2, 3, dtype=torch.bool)}, ShapeError, "active"),
        ({"p_max_w": -1.0}, ConfigError, "p_max_w"),
        ({"p_max_w": torch.tensor([1.0, -1.0, 1.0])}, ConfigError, "p_max_w"),
        ({"p_max_w": torch.ones(2)}, ShapeError, "p_max_w"),
        ({"p_max_w": math.nan}, ConfigError, "p_max_w"),
        ({"srb_size": 3}, ConfigError, "srb_size"),
        ({"srb_size": 0}, ConfigError, "srb_size"),
        ({"min_rate_bps": -1.0}, ConfigError, "min_rate_bps"),
        ({"subchannel_bandwidth_hz": 0.0}, ConfigError, "subchannel_bandwidth_hz"),
    ],
)
def test_bad_problem_raises_naming_the_field(changes, error, field):
    with pytest.raises(error, match=field):
        OfdmAllocationProblem(**_args(**changes))


def test_bad_arguments_raise_naming_the_field():
    problem = OfdmAllocationProblem(**_args())
    good = torch.zeros(2, 3, 4, dtype=torch.long)
    for bad, error in [
        (torch.zeros(2, 3, 5, dtype=torch.long), ShapeError),
        (torch.zeros(2, 3, 4), ShapeError),
        (torch.full((2, 3, 4), 2), ConfigError),
        (torch.full((2, 3, 4), -2), ConfigError),
    ]:
        with pytest.raises(error, match="assignment"):
            evaluate_allocation(problem, bad)
        with pytest.raises(error, match="assignment"):
            best_response(problem, bad)
    with pytest.raises(ShapeError, match="assignment"):
        equal_power(torch.zeros(2, 3), 1.0, 1)
    with pytest.raises(ConfigError, match="p_max_w"):
        equal_power(good, -1.0, 2)
    with pytest.raises(ConfigError, match="qos_weight"):
        greedy_best_response(problem, qos_weight=-1.0)
    with pytest.raises(ConfigError, match="miss_penalty"):
        best_response(problem, good, miss_penalty=math.inf)
    with pytest.raises(ConfigError, match="max_rounds"):
        best_response(problem, good, max_rounds=-1)
    with pytest.raises(ConfigError, match="n_starts"):
        greedy_best_response(problem, n_starts=0)
    with pytest.raises(ShapeError, match="active"):
        round_robin_allocation(torch.ones(2, 3, 2), 4)
    with pytest.raises(ShapeError, match="active"):
        random_allocation(torch.ones(2, 3), 4, torch.Generator())
    with pytest.raises(ConfigError, match="n_subchannels"):
        round_robin_allocation(torch.ones(2, 3, 2, dtype=torch.bool), 0)
    with pytest.raises(ConfigError, match="generator"):
        random_allocation(torch.ones(2, 3, 2, dtype=torch.bool), 4, 0)
