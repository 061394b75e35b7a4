"""Tests of skyshare.geometry.mobility: trajectories and arrival processes.

Expected values come from the model definitions, computed here with ``math``: straight-line
kinematics, the OU turn-rate statistics, the random-walk mean squared displacement, the Poisson
arrival count, Little's law and the Erlang-B blocking probability of an M/M/c/c system.
"""

from __future__ import annotations

import math

import pytest
import torch

from skyshare.errors import ConfigError, ShapeError
from skyshare.geometry import (
    active_mask,
    poisson_arrivals,
    poisson_population,
    random_walk,
    slot_count,
    smooth_random_trajectories,
    straight_flight,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def ground_users(batch: int, n: int, dtype=torch.float32, spread: float = 50.0) -> torch.Tensor:
    start = torch.rand(batch, n, 3, generator=gen(99), dtype=dtype) * spread - spread / 2
    start[..., 2] = 1.5
    return start


def step_vectors(positions: torch.Tensor) -> torch.Tensor:
    return positions[:, 1:, :, :2] - positions[:, :-1, :, :2]


def turn_angles(positions: torch.Tensor) -> torch.Tensor:
    """Absolute heading change between consecutive steps, in [0, pi]."""
    steps = step_vectors(positions)
    heading = torch.atan2(steps[..., 1], steps[..., 0])
    change = heading[:, 1:] - heading[:, :-1]
    return torch.remainder(change + math.pi, 2 * math.pi).sub(math.pi).abs()


# ----------------------------------------------------------------------------- straight flight


def test_straight_flight_endpoint_and_altitude():
    # Seed 000 §VI: airplanes at 10 km, 250 m/s, 6000 slots of 0.02 s.
    start = torch.tensor([[[-3000.0, 1000.0, 10000.0], [2000.0, -500.0, 10000.0]]] * 2)
    heading = torch.tensor([math.radians(30.0), math.radians(-120.0)])  # (n,)
    path = straight_flight(start, heading, 250.0, 6000, 0.02)
    assert path.shape == (2, 6000, 2, 3)
    travelled = 5999 * 0.02 * 250.0  # slot S-1 is (S-1) slots after the start
    for node, angle in enumerate((30.0, -120.0)):
        x0, y0, _ = start[0, node].tolist()
        end = path[1, -1, node].tolist()
        assert end[0] == pytest.approx(x0 + travelled * math.cos(math.radians(angle)), abs=0.05)
        assert end[1] == pytest.approx(y0 + travelled * math.sin(math.radians(angle)), abs=0.05)
    assert bool((path[..., 2] == 10000.0).all())
    assert torch.equal(path[:, 0], start)
    step = step_vectors(path).norm(dim=-1)
    assert torch.allclose(step, torch.full_like(step, 5.0), atol=1e-2)


def test_straight_flight_per_node_heading_and_speed():
    start = torch.zeros(3, 2, 3, dtype=torch.float64)
    heading = torch.zeros(3, 2, dtype=torch.float64)
    speed = torch.tensor([10.0, 20.0], dtype=torch.float64)
    path = straight_flight(start, heading, speed, 11, 0.5)
    assert path[:, -1, :, 0].tolist() == [[50.0, 100.0]] * 3


# ----------------------------------------------------------------------------- smooth paths


def test_smooth_trajectories_constant_step_length():
    start = ground_users(3, 4, dtype=torch.float64)
    path = smooth_random_trajectories(start, 3000, 0.02, 1.5, gen(1))
    assert path.shape == (3, 3000, 4, 3)
    assert torch.equal(path[:, 0], start)
    step = step_vectors(path).norm(dim=-1)
    assert torch.allclose(step, torch.full_like(step, 1.5 * 0.02), rtol=1e-9)
    assert bool((path[..., 2] == 1.5).all())


def test_smooth_trajectories_turn_rate_statistics():
    # Heading change from step s to s + 1 is omega_s * dt, omega stationary OU with std sigma and
    # lag-one correlation a = exp(-dt / tau).
    sigma_deg, tau, dt = 20.0, 2.0, 0.1
    start = ground_users(50, 20, dtype=torch.float64)
    path = smooth_random_trajectories(
        start, 400, dt, 1.0, gen(2), turn_rate_std_deg_s=sigma_deg, heading_correlation_s=tau
    )
    steps = step_vectors(path)
    heading = torch.atan2(steps[..., 1], steps[..., 0])
    turn_rate = torch.remainder(heading[:, 1:] - heading[:, :-1] + math.pi, 2 * math.pi) - math.pi
    turn_rate = turn_rate / dt
    sigma = math.radians(sigma_deg)
    # 1000 paths x 398 correlated samples (correlation time 20 samples): ~20000 effective.
    assert float(turn_rate.std()) == pytest.approx(sigma, rel=0.05)
    lag_one = float((turn_rate[:, 1:] * turn_rate[:, :-1]).mean() / turn_rate.pow(2).mean())
    assert lag_one == pytest.approx(math.exp(-dt / tau), abs=0.01)


def test_smooth_trajectories_smoother_than_random_walk():
    start = ground_users(4, 10)
    smooth = smooth_random_trajectories(start, 500, 0.02, 1.5, gen(3))
    walk = random_walk(start, 500, 0.02, 1.5, gen(3))
    # Smooth: |d heading| per slot ~ sigma dt = 5 deg/s * 0.02 s = 0.0017 rad.
    # Random walk: |d heading| uniform on [0, pi], mean pi / 2.
    assert float(turn_angles(smooth).mean()) < 0.01
    assert float(turn_angles(walk).mean()) == pytest.approx(math.pi / 2, abs=0.05)


def test_smooth_trajectories_stay_within_bounds():
    bounds = (-25.0, 25.0, -10.0, 40.0)
    start = ground_users(4, 8, spread=20.0)
    path = smooth_random_trajectories(
        start, 2000, 0.1, 5.0, gen(4), bounds=bounds, turn_rate_std_deg_s=30.0
    )
    x, y = path[..., 0], path[..., 1]
    assert float(x.min()) >= bounds[0] and float(x.max()) <= bounds[1]
    assert float(y.min()) >= bounds[2] and float(y.max()) <= bounds[3]
    # The walls were hit (1 km travelled in a 50 m box), and a chord never exceeds the path.
    assert float(x.max()) > 24.0 and float(x.min()) < -24.0
    assert float(step_vectors(path).norm(dim=-1).max()) <= 0.5 + 1e-4
    with pytest.raises(ConfigError, match="inside bounds"):
        smooth_random_trajectories(start + 100.0, 10, 0.1, 1.0, gen(), bounds=bounds)


def test_smooth_trajectories_given_initial_heading_and_single_slot():
    start = torch.zeros(2, 3, 3)
    path = smooth_random_trajectories(
        start, 50, 0.02, 2.0, gen(5), initial_heading_rad=math.pi / 2, turn_rate_std_deg_s=0.0
    )
    # No turning: straight north at 2 m/s for 49 slots.
    assert torch.allclose(path[:, -1, :, 1], torch.full((2, 3), 49 * 0.04), atol=1e-5)
    assert torch.allclose(path[:, -1, :, 0], torch.zeros(2, 3), atol=1e-5)
    assert smooth_random_trajectories(start, 1, 0.02, 2.0, gen()).shape == (2, 1, 3, 3)


# ----------------------------------------------------------------------------- random walk


def test_random_walk_step_length_and_mean_squared_displacement():
    # Seed 001 §IV: 1 m/s; here slots of 1 s, so each step is 1 m.
    start = ground_users(100, 40, dtype=torch.float64)
    path = random_walk(start, 51, 1.0, 1.0, gen(6))
    step = step_vectors(path).norm(dim=-1)
    assert torch.allclose(step, torch.ones_like(step))
    displacement = (path[:, -1, :, :2] - start[..., :2]).pow(2).sum(dim=-1)
    # E|d|^2 = k step^2 = 50; 4000 walkers -> relative sd of the mean about 1.6 %.
    assert float(displacement.mean()) == pytest.approx(50.0, rel=0.06)
    assert bool((path[..., 2] == 1.5).all())


def test_random_walk_bounds_and_determinism():
    bounds = (0.0, 10.0, 0.0, 10.0)
    start = torch.full((2, 5, 3), 5.0)
    a = random_walk(start, 300, 1.0, 1.0, gen(7), bounds=bounds)
    b = random_walk(start, 300, 1.0, 1.0, gen(7), bounds=bounds)
    c = random_walk(start, 300, 1.0, 1.0, gen(8), bounds=bounds)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert float(a[..., :2].min()) >= 0.0 and float(a[..., :2].max()) <= 10.0


def test_smooth_trajectories_deterministic():
    start = ground_users(2, 3)
    a = smooth_random_trajectories(start, 100, 0.02, 1.0, gen(9))
    b = smooth_random_trajectories(start, 100, 0.02, 1.0, gen(9))
    c = smooth_random_trajectories(start, 100, 0.02, 1.0, gen(10))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"speed_m_s": -1.0}, "speed_m_s"),
        ({"slot_s": 0.0}, "slot_s"),
        ({"n_slots": 0}, "n_slots"),
    ],
)
def test_trajectory_argument_validation(kwargs, match):
    arguments = {"n_slots": 10, "slot_s": 0.1, "speed_m_s": 1.0} | kwargs
    start = torch.zeros(1, 2, 3)
    with pytest.raises(ConfigError, match=match):
        random_walk(start, generator=gen(), **arguments)
    with pytest.raises(ConfigError, match=match):
        smooth_random_trajectories(start, generator=gen(), **arguments)
    with pytest.raises(ConfigError, match=match):
        straight_flight(start, 0.0, **arguments)


def test_trajectory_shape_validation():
    with pytest.raises(ShapeError, match="start_m"):
        random_walk(torch.zeros(2, 3), 5, 1.0, 1.0, gen())
    with pytest.raises(ShapeError, match="heading_rad"):
        straight_flight(torch.zeros(2, 3, 3), torch.zeros(4), 1.0, 5, 1.0)


# ----------------------------------------------------------------------------- arrivals


@pytest.fixture(scope="module")
def uncapped_trace():
    # lambda = 3 / min, mean holding 3 min: offered load rho = 9 users; cap 100 never reached.
    return poisson_arrivals(64, 3600.0, 1.0, 3 / 60, 180.0, 100, gen(11))


def test_arrival_count_matches_rate(uncapped_trace):
    trace = uncapped_trace
    assert trace.active.shape == (64, 3600, 100)
    assert trace.arrivals.shape == trace.departures.shape == trace.blocked.shape == (64, 3600)
    assert int(trace.blocked.sum()) == 0
    # E[arrivals] = lambda * horizon = 180 per realization; 64 realizations -> sd 1.2 %.
    assert float(trace.arrivals.sum(dim=1).double().mean()) == pytest.approx(180.0, rel=0.04)


def test_littles_law_in_steady_state(uncapped_trace):
    # Little's law: mean population = lambda * mean holding = 9 (after a 5-holding-time warm-up).
    population = uncapped_trace.population[:, 900:].double()
    assert float(population.mean()) == pytest.approx(9.0, rel=0.06)


def test_arrival_bookkeeping_is_consistent(uncapped_trace):
    trace = uncapped_trace
    net = (trace.arrivals - trace.departures).cumsum(dim=1)
    assert torch.equal(net, trace.population)


def test_lowest_free_slot_taken_first():
    # Nobody leaves (holding time ~ 1e9 s): the occupied slots are always a prefix 0..k-1.
    trace = poisson_arrivals(8, 600.0, 1.0, 0.05, 1e9, 50, gen(12))
    population = trace.population
    prefix = torch.arange(50) < population[..., None]
    assert torch.equal(trace.active, prefix)


def test_cap_and_erlang_b_blocking():
    # M/M/c/c with c = 2 and rho = lambda * mean = 3: Erlang-B blocking probability
    # B(rho, c) = (rho^c / c!) / sum_{k <= c} rho^k / k!.
    rho, cap = 3.0, 2
    erlang_b = (rho**cap / math.factorial(cap)) / sum(
        rho**k / math.factorial(k) for k in range(cap + 1)
    )
    trace = poisson_arrivals(64, 3600.0, 1.0, 1 / 60, 180.0, cap, gen(13))
    assert int(trace.population.max()) <= cap
    assert int(trace.blocked.sum()) > 0
    offered = trace.arrivals[:, 900:] + trace.blocked[:, 900:]
    blocking = float(trace.blocked[:, 900:].sum() / offered.sum())
    assert blocking == pytest.approx(erlang_b, abs=0.04)


def test_arrivals_deterministic_per_seed():
    a = poisson_arrivals(2, 120.0, 1.0, 0.2, 30.0, 5, gen(14))
    b = poisson_arrivals(2, 120.0, 1.0, 0.2, 30.0, 5, gen(14))
    c = poisson_arrivals(2, 120.0, 1.0, 0.2, 30.0, 5, gen(15))
    assert torch.equal(a.active, b.active) and torch.equal(a.blocked, b.blocked)
    assert not torch.equal(a.active, c.active)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"arrival_rate_per_s": -0.1}, "arrival_rate_per_s"),
        ({"max_population": 0}, "max_population"),
        ({"slot_s": 0.0}, "slot_s"),
        ({"horizon_s": -1.0}, "horizon_s"),
        ({"mean_holding_s": 0.0}, "mean_holding_s"),
    ],
)
def test_arrival_argument_validation(kwargs, match):
    arguments = {
        "batch": 1,
        "horizon_s": 10.0,
        "slot_s": 1.0,
        "arrival_rate_per_s": 0.1,
        "mean_holding_s": 5.0,
        "max_population": 3,
    } | kwargs
    with pytest.raises(ConfigError, match=match):
        poisson_arrivals(generator=gen(), **arguments)


def test_poisson_population_capped_mean():
    # Seed 001 training draw: min(Poisson(0.5 K_max), K_max) with K_max = 20.
    n_max, mean = 20, 10.0
    pmf = [math.exp(-mean) * mean**k / math.factorial(k) for k in range(n_max)]
    expected = sum(k * p for k, p in enumerate(pmf)) + n_max * (1.0 - sum(pmf))
    counts = poisson_population(20000, n_max, mean, gen(16), extra_shape=(2,))
    assert counts.shape == (20000, 2) and counts.dtype == torch.long
    assert int(counts.max()) <= n_max and int(counts.min()) >= 0
    # sd of the mean over 40000 draws ~ 0.016.
    assert float(counts.double().mean()) == pytest.approx(expected, abs=0.07)
    # Heavy cap: min(Poisson(10), 3) is 3 unless Poisson(10) < 3 (probability 0.0028).
    assert float(poisson_population(5000, 3, mean, gen(17)).double().mean()) > 2.98


def test_active_mask():
    mask = active_mask(torch.tensor([0, 2, 4]), 4)
    assert mask.tolist() == [
        [False, False, False, False],
        [True, True, False, False],
        [True, True, True, True],
    ]
    with pytest.raises(ConfigError, match="n_max"):
        active_mask(torch.tensor([5]), 4)


def test_admitted_marks_every_new_occupant_including_refills():
    """A slot emptied and refilled in one time slot is a new user: admitted says so."""
    from skyshare.geometry import poisson_arrivals

    g = torch.Generator().manual_seed(5)
    trace = poisson_arrivals(64, 600.0, 5.0, 0.5, 6.0, 3, g)
    # admitted users are active at the end of their slot, and their count is the arrival count
    # minus those who left within the same slot
    assert not bool((trace.admitted & ~trace.active).any())
    assert bool((trace.admitted.sum(-1) <= trace.arrivals).all())
    was_active = torch.cat([torch.zeros_like(trace.active[:, :1]), trace.active[:, :-1]], 1)
    refills = trace.admitted & was_active
    assert int(refills.sum()) > 0  # short stays (mean 6 s) in 5 s slots: refills happen
    newly_active = trace.active & ~was_active
    assert bool((newly_active <= trace.admitted).all())


def test_arrival_slots_cover_the_horizon_and_memory_is_checked(monkeypatch):
    # ceil(horizon / slot) slots, at least one, with 1800 s / 0.1 s giving 18000 (not 18001)
    assert slot_count(1800.0, 0.1) == 18000
    assert slot_count(10.0, 3.0) == 4
    assert slot_count(1e-12, 1.0) == 1
    assert poisson_arrivals(2, 1e-12, 1.0, 0.1, 5.0, 3, gen(16)).active.shape == (2, 1, 3)
    # a trace of 1e15 slots is refused before anything is allocated
    monkeypatch.setenv("SKYSHARE_MEMORY_LIMIT_GB", "1")
    with pytest.raises(ConfigError, match="poisson_arrivals needs about"):
        poisson_arrivals(1, 1e9, 1e-6, 0.1, 5.0, 3, gen(17))
