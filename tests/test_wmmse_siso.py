"""Batched SISO WMMSE with an active set (skyshare.solvers.wmmse_siso).

References are computed here independently: a scalar WMMSE in plain Python floats (the updates
of Shi et al. 2011 for one antenna per node), closed forms (K = 1), a brute-force grid (K = 2),
and the general seed-000 ``wmmse`` on the same instances as M = 1, N = K problems.
"""

from __future__ import annotations

import math

import pytest
import torch

from skyshare.errors import ConfigError, ShapeError
from skyshare.solvers import wmmse_siso
from skyshare.solvers.problem import BeamformingProblem
from skyshare.solvers.wmmse import wmmse
from skyshare.solvers.wmmse_siso import siso_sum_rate

torch.set_num_threads(1)


def rayleigh(B: int, K: int, seed: int) -> torch.Tensor:
    """(B, K, K) complex128 CN(0, 1) channels."""
    g = torch.Generator().manual_seed(seed)
    return torch.view_as_complex(torch.randn(B, K, K, 2, generator=g, dtype=torch.float64)) / (
        math.sqrt(2.0)
    )


def scalar_wmmse(h, p_max, noise, max_iter, tol):
    """One instance in Python floats. h[k][j]: amplitude receiver k <- transmitter j."""
    K = len(h)
    v = [math.sqrt(p_max)] * K

    def receive(v):
        u, w = [0.0] * K, [0.0] * K
        for k in range(K):
            total = sum(h[k][j] ** 2 * v[j] ** 2 for j in range(K)) + noise
            u[k] = h[k][k] * v[k] / total
            w[k] = 1.0 / (1.0 - u[k] * h[k][k] * v[k])
        return u, w, sum(math.log2(x) for x in w)

    u, w, rate = receive(v)
    for it in range(1, max_iter + 1):
        v = [
            min(
                max(
                    w[k] * u[k] * h[k][k] / sum(w[j] * u[j] ** 2 * h[j][k] ** 2 for j in range(K)),
                    0.0,
                ),
                math.sqrt(p_max),
            )
            for k in range(K)
        ]
        u, w, new = receive(v)
        if new - rate <= tol:
            return [x * x for x in v], new, it
        rate = new
    return [x * x for x in v], rate, max_iter


def test_matches_an_independent_scalar_implementation():
    H = rayleigh(5, 4, seed=1)
    result = wmmse_siso(H, p_max=2.0, noise=0.5, tol=1e-4)
    for b in range(5):
        power, rate, iterations = scalar_wmmse(H[b].abs().tolist(), 2.0, 0.5, 100, 1e-4)
        assert int(result.iterations[b]) == iterations
        assert torch.allclose(
            result.power[b], torch.tensor(power, dtype=torch.float64), rtol=1e-9, atol=1e-12
        )
        assert float(result.sum_rate[b]) == pytest.approx(rate, rel=1e-10)
    assert bool(result.converged.all())


def test_objective_trace_is_monotone_and_ends_at_the_sum_rate():
    H = rayleigh(20, 8, seed=2)
    result = wmmse_siso(H, tol=1e-6, trace=True)
    trace = result.objective_trace
    assert trace.shape == (20, int(result.iterations.max()) + 1)
    assert bool((trace.diff(dim=1) >= -1e-12).all())
    assert torch.allclose(trace[:, -1], result.sum_rate, rtol=1e-12)
    assert torch.allclose(result.rates, siso_sum_rate(H, result.power), rtol=1e-12)


def test_single_pair_transmits_at_full_power():
    H = torch.tensor([[[0.7]], [[2.0]]], dtype=torch.float64)
    p_max = torch.tensor([[3.0], [0.5]], dtype=torch.float64)
    result = wmmse_siso(H, p_max=p_max, noise=0.2)
    assert torch.allclose(result.power, p_max)
    expected = torch.log2(1.0 + H[:, 0, 0] ** 2 * p_max[:, 0] / 0.2)
    assert torch.allclose(result.sum_rate, expected)


def test_two_pairs_with_strong_cross_gains_switch_one_off():
    """Strong interference: the optimum (brute-force grid) is one pair on at full power."""
    H = torch.tensor([[[2.0, 3.0], [3.0, 1.0]]], dtype=torch.float64)
    result = wmmse_siso(H, p_max=10.0, tol=1e-9, max_iter=1000)
    grid = torch.linspace(0.0, 10.0, 201, dtype=torch.float64)
    powers = torch.cartesian_prod(grid, grid)
    best = siso_sum_rate(H.expand(len(powers), 2, 2), powers).sum(-1).max()
    assert float(result.sum_rate[0]) == pytest.approx(float(best), rel=1e-6)
    assert float(result.power[0, 0]) == pytest.approx(10.0)
    assert float(result.power[0, 1]) < 1e-6


def test_active_set_returns_what_each_instance_returns_alone():
    H = rayleigh(12, 6, seed=3)
    p_max = torch.rand(12, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    batch = wmmse_siso(H, p_max=p_max + 0.1, trace=True)
    assert int(batch.iterations.min()) < int(batch.iterations.max())  # instances leave early
    assert batch.batch_iterations == int(batch.iterations.max())
    assert batch.instance_iterations_run == int(batch.iterations.sum())
    for b in range(12):
        alone = wmmse_siso(H[b : b + 1], p_max=p_max[b : b + 1] + 0.1, trace=True)
        assert int(alone.iterations[0]) == int(batch.iterations[b])
        assert torch.allclose(alone.power[0], batch.power[b], rtol=1e-12, atol=1e-15)
        T = alone.objective_trace.shape[1]
        assert torch.allclose(alone.objective_trace[0], batch.objective_trace[b, :T])


def test_matches_the_general_wmmse_iterate_by_iterate():
    """The existing path (seed 000 wmmse with M = 1, N = K BSs, no AUs) gives the same powers."""
    B, K = 4, 5
    H = rayleigh(B, K, seed=5)
    problem = BeamformingProblem(
        H=H[..., None],
        G=torch.zeros(B, 0, K, 1, dtype=torch.complex128),
        serving=torch.arange(K).expand(B, K).clone(),
        p_max=1.5,
        i_max=math.inf,
    )
    for iterations in (1, 4, 15):
        general = wmmse(problem, max_iter=iterations, tol=0.0)
        fast = wmmse_siso(H, p_max=1.5, max_iter=iterations, tol=0.0)
        assert torch.allclose(general.w[..., 0].abs().square(), fast.power, rtol=1e-7, atol=1e-9)
        assert torch.allclose(general.sum_rate, fast.sum_rate, rtol=1e-8)
        # tol = 0 still stops an instance at an exact fixed point (change <= 0), as the peer
        assert bool((fast.iterations <= iterations).all())
        assert bool((fast.converged | (fast.iterations == iterations)).all())


def test_complex_and_amplitude_inputs_agree_and_float32_is_close():
    H = rayleigh(6, 5, seed=6)
    complex_result = wmmse_siso(H)
    amplitude_result = wmmse_siso(H.abs())
    assert torch.equal(complex_result.power, amplitude_result.power)
    single = wmmse_siso(H, dtype=torch.float32)
    assert single.power.dtype == torch.float32
    assert torch.allclose(single.sum_rate.double(), complex_result.sum_rate, rtol=1e-3)


def test_weights_and_tolerances():
    H = rayleigh(8, 4, seed=7)
    weights = torch.tensor([1.0, 2.0, 0.5, 1.0], dtype=torch.float64)
    result = wmmse_siso(H, weights=weights, trace=True)
    assert torch.allclose(result.objective, (result.rates * weights).sum(-1))
    assert bool((result.objective_trace.diff(dim=1) >= -1e-12).all())
    loose = wmmse_siso(H, tol=0.0, rtol=1e-2)
    tight = wmmse_siso(H, tol=1e-8)
    assert bool((loose.iterations <= tight.iterations).all())
    capped = wmmse_siso(H, tol=0.0, max_iter=3)  # tol = 0: only exact fixed points stop
    assert bool((capped.iterations <= 3).all()) and int(capped.iterations.max()) == 3
    assert bool((capped.converged | (capped.iterations == 3)).all())


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"H": torch.ones(2, 3, 4)}, ShapeError, "H"),
        ({"H": torch.ones(3, 3)}, ShapeError, "H"),
        ({"H": torch.tensor([[[1.0, float("nan")], [1.0, 1.0]]])}, ConfigError, "H"),
        ({"H": torch.tensor([[[1.0, float("inf")], [1.0, 1.0]]])}, ConfigError, "H"),
        ({"H": -torch.ones(1, 2, 2)}, ConfigError, "H"),
        ({"p_max": -1.0}, ConfigError, "p_max"),
        ({"p_max": torch.tensor([1.0, 0.0])}, ConfigError, "p_max"),
        ({"p_max": torch.ones(3)}, ShapeError, "p_max"),
        ({"noise": 0.0}, ConfigError, "noise"),
        ({"noise": float("nan")}, ConfigError, "noise"),
        ({"weights": torch.tensor([1.0, -1.0])}, ConfigError, "weights"),
        ({"p0": torch.ones(2)}, ShapeError, "p0"),
        ({"p0": torch.full((1, 2), 2.0)}, ConfigError, "p0"),
        ({"max_iter": 0}, ConfigError, "max_iter"),
        ({"tol": -1e-3}, ConfigError, "tol"),
        ({"rtol": float("nan")}, ConfigError, "rtol"),
        ({"dtype": torch.float16}, ConfigError, "dtype"),
    ],
)
def test_bad_input_names_the_field(kwargs, error, field):
    args = {"H": torch.ones(1, 2, 2)}
    args.update(kwargs)
    H = args.pop("H")
    with pytest.raises(error, match=field):
        wmmse_siso(H, **args)
