"""WMMSE beamforming (seed 000 Algorithm 2) and the shared constrained w-step.

Known optima are computed here by hand with ``math`` (water-filling, single-user MRT, the
geometry of one AU constraint); the solver is never used to produce a reference.
"""

from __future__ import annotations

import math

import pytest
import torch

from skyshare.solvers.problem import BeamformingProblem, evaluate
from skyshare.solvers.wmmse import wmmse
from skyshare.solvers.wstep import (
    au_covariances,
    bs_covariances,
    scale_to_interference_limit,
    solve_w_step,
)
from solver_cases import C128, LOOSE, catn_problem, crandn, random_problem, water_filling

# ------------------------------------------------------------------------------------------
# Shared w-step
# ------------------------------------------------------------------------------------------


def test_covariances_match_outer_products():
    g = torch.Generator().manual_seed(1)
    H = crandn(2, 3, 2, 4, generator=g)
    alpha = torch.rand(2, 3, generator=g, dtype=torch.float64)
    C = bs_covariances(H, alpha)
    h = H[1, 2, 1]  # user 2 at BS 1, instance 1
    expected = sum(alpha[1, i] * torch.outer(H[1, i, 1], H[1, i, 1].conj()) for i in range(3))
    assert torch.allclose(C[1, 1], expected)
    mu = torch.rand(2, 2, generator=g, dtype=torch.float64)
    G = crandn(2, 2, 2, 4, generator=g)
    A = au_covariances(G, mu)
    expected = sum(mu[0, l] * torch.outer(G[0, l, 1], G[0, l, 1].conj()) for l in range(2))
    assert torch.allclose(A[0, 1], expected)
    assert torch.allclose(C, C.mH) and h.shape == (4,)


@pytest.mark.parametrize("mu_update", ["bisection", "subgradient"])
def test_w_step_satisfies_kkt_of_the_weighted_problem(mu_update):
    """w_k = D^{-1} b_k, eta_n >= 0 and P_n = P_max where eta_n > 0 (complementary slackness)."""
    problem = random_problem(3, 4, 2, 3, 0, p_max=0.5, i_max=LOOSE, seed=2)
    g = torch.Generator().manual_seed(3)
    alpha = torch.rand(3, 4, generator=g, dtype=torch.float64)
    b = crandn(3, 4, 3, generator=g)
    Q = bs_covariances(problem.H, alpha)
    step = solve_w_step(problem, Q, b, shared_by_bs=True, mu_update=mu_update)
    for bi in range(3):
        for k in range(4):
            n = int(problem.serving[bi, k])
            D = Q[bi, n] + step.eta[bi, n] * torch.eye(3, dtype=C128)
            assert torch.allclose(D @ step.w[bi, k], b[bi, k], rtol=1e-6, atol=1e-9)
    power = evaluate(problem, step.w.to(C128)).bs_power
    assert bool((power <= 0.5 * (1 + 1e-9)).all())
    binding = step.eta > 1e-8
    assert torch.allclose(power[binding], torch.full_like(power[binding], 0.5), rtol=1e-6)


def test_w_step_with_binding_au_constraints_satisfies_kkt():
    """Bisection: D_k w_k = b_k with the AU terms, rho_l = I_max where mu_l > 0, else rho <= I."""
    problem = random_problem(2, 4, 2, 4, 2, p_max=1.0, i_max=0.02, seed=12)
    g = torch.Generator().manual_seed(13)
    alpha = torch.rand(2, 4, generator=g, dtype=torch.float64)
    b = crandn(2, 4, 4, generator=g)
    Q = bs_covariances(problem.H, alpha)
    step = solve_w_step(problem, Q, b, shared_by_bs=True, mu_update="bisection")
    D = Q + au_covariances(problem.G, step.mu) + step.eta[..., None, None] * torch.eye(4)
    for bi in range(2):
        for k in range(4):
            n = int(problem.serving[bi, k])
            assert torch.allclose(D[bi, n] @ step.w[bi, k], b[bi, k], rtol=1e-6, atol=1e-9)
    check = evaluate(problem, step.w)
    assert torch.allclose(check.au_interference, step.au_interference)
    assert bool((step.mu > 0).any())
    priced = step.mu > 0
    assert torch.allclose(
        check.au_interference[priced],
        torch.full_like(check.au_interference[priced], 0.02),
        rtol=1e-5,
    )
    assert bool((check.au_interference <= 0.02 * (1 + 1e-5)).all())
    assert bool((check.bs_power <= 1.0 + 1e-9).all())


def test_scale_to_interference_limit_restores_2c_and_keeps_2b():
    problem = random_problem(4, 3, 2, 4, 2, p_max=1.0, i_max=0.05, seed=4)
    w = crandn(4, 3, 4, generator=torch.Generator().manual_seed(5)) * 0.4
    before = evaluate(problem, w)
    scaled_w, scaled = scale_to_interference_limit(problem, w, 1e-3)
    after = evaluate(problem, scaled_w)
    assert bool((scaled == (before.interference_violation > 1e-3)).all())
    assert bool((after.interference_violation <= 1e-9).all())
    assert bool((after.bs_power <= before.bs_power + 1e-12).all())


# ------------------------------------------------------------------------------------------
# WMMSE properties
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mu_update", ["subgradient", "bisection"])
def test_objective_non_decreasing_with_inactive_au_constraints(mu_update):
    problem = random_problem(6, 6, 3, 4, 2, p_max=10.0, i_max=LOOSE, seed=6)
    result = wmmse(problem, max_iter=60, tol=0.0, mu_update=mu_update)
    trace = result.objective_trace.double()
    steps = trace[:, 1:] - trace[:, :-1]
    assert bool((steps >= -1e-9 * trace[:, 1:]).all()), steps.min()
    assert bool((trace[:, -1] > trace[:, 0] + 0.1).all())  # and it did move
    assert bool((result.multipliers["mu"] == 0).all())


@pytest.mark.parametrize("mu_update", ["subgradient", "bisection"])
def test_solutions_are_feasible_or_reported(mu_update):
    problem = catn_problem(4)
    tol = 1e-3
    result = wmmse(problem, max_iter=40, mu_update=mu_update, feasibility_tol=tol)
    check = evaluate(problem, result.w)
    independent = (check.power_violation <= tol) & (check.interference_violation <= tol)
    assert bool((result.feasible == independent).all())
    assert bool(result.feasible.all())  # the final rescaling makes (2c) hold
    assert result.w.dtype == problem.H.dtype


def test_single_user_gets_mrt_at_full_power():
    g = torch.Generator().manual_seed(7)
    H = crandn(3, 1, 1, 4, generator=g)
    problem = BeamformingProblem(
        H=H,
        G=torch.zeros(3, 0, 1, 4, dtype=C128),
        serving=torch.zeros(3, 1, dtype=torch.long),
        p_max=2.5,
        i_max=LOOSE,
    )
    result = wmmse(problem, tol=1e-12)
    for b in range(3):
        h = [complex(z) for z in H[b, 0, 0]]
        gain = sum(abs(z) ** 2 for z in h)
        assert float(result.sum_rate[b]) == pytest.approx(math.log2(1 + 2.5 * gain), rel=1e-9)
        w = result.w[b, 0]
        alignment = abs(complex(torch.vdot(H[b, 0, 0], w))) ** 2
        assert alignment == pytest.approx(gain * float(w.abs().square().sum()), rel=1e-9)
        assert float(w.abs().square().sum()) == pytest.approx(2.5, rel=1e-9)


def _orthogonal_cell(gains: list[float], M: int, phases: list[float]) -> torch.Tensor:
    """Channels (K, M) of users on distinct unit vectors e_k with |h_k|^2 = gains[k]."""
    H = torch.zeros(len(gains), M, dtype=C128)
    for k, (gain, phase) in enumerate(zip(gains, phases, strict=True)):
        H[k, k] = math.sqrt(gain) * complex(math.cos(phase), math.sin(phase))
    return H


def test_orthogonal_users_reach_water_filling():
    gains, p_max = [4.0, 1.0, 0.4], 2.0
    H = _orthogonal_cell(gains, 4, [0.3, -1.1, 2.0])[None, :, None, :]  # B=1, N=1, M=4
    problem = BeamformingProblem(
        H=H,
        G=torch.zeros(1, 0, 1, 4, dtype=C128),
        serving=torch.zeros(1, 3, dtype=torch.long),
        p_max=p_max,
        i_max=LOOSE,
    )
    powers = water_filling(gains, p_max)
    assert powers[2] == 0.0 and powers[1] > 0  # the third user is left out at this budget
    optimum = sum(math.log2(1 + g * p) for g, p in zip(gains, powers, strict=True))
    result = wmmse(problem, max_iter=400, tol=1e-13)
    assert float(result.sum_rate[0]) == pytest.approx(optimum, abs=1e-5)
    user_power = result.w[0].abs().square().sum(-1)
    assert user_power.tolist() == pytest.approx(powers, abs=1e-3)


def test_interference_free_network_sums_single_cell_optima():
    # BS 0 serves user 0 (gain 3); BS 1 serves users 1, 2 on orthogonal directions (gains 2, 0.5);
    # no BS reaches the other BS's users.
    M, p_max = 3, 1.5
    H = torch.zeros(1, 3, 2, M, dtype=C128)
    H[0, 0, 0] = torch.tensor([1.0, 1.0j, 1.0], dtype=C128)  # |h|^2 = 3
    H[0, 1, 1, 0] = math.sqrt(2.0)
    H[0, 2, 1, 2] = math.sqrt(0.5) * 1j
    problem = BeamformingProblem(
        H=H,
        G=torch.zeros(1, 0, 2, M, dtype=C128),
        serving=torch.tensor([[0, 1, 1]]),
        p_max=p_max,
        i_max=LOOSE,
    )
    cell_0 = math.log2(1 + 3.0 * p_max)
    powers = water_filling([2.0, 0.5], p_max)
    cell_1 = sum(math.log2(1 + g * p) for g, p in zip([2.0, 0.5], powers, strict=True))
    result = wmmse(problem, max_iter=400, tol=1e-13)  # within 1e-5 after ~100 iterations
    assert float(result.sum_rate[0]) == pytest.approx(cell_0 + cell_1, abs=1e-5)


def _one_au_instance(i_max: float) -> tuple[BeamformingProblem, float]:
    """One BS (M=2), one user h = 10 e_1, one AU g at 60 degrees, P_max = 1: (problem, optimum).

    Optimum by hand: maximise |h^T w| on the disc ||w||^2 <= P intersected with the slab
    |g^T w| <= sqrt(I_max). When MRT violates the slab, the optimum is where the line
    g^T w = sqrt(I_max) meets the circle: angle phi = theta - arccos(sqrt(I_max / P) / |g|).
    """
    theta, p_max, h_gain = math.radians(60.0), 1.0, 100.0
    H = torch.zeros(1, 1, 1, 2, dtype=C128)
    H[0, 0, 0, 0] = 10.0
    G = torch.tensor([[[[math.cos(theta), math.sin(theta)]]]], dtype=C128)  # |g| = 1
    problem = BeamformingProblem(
        H=H, G=G, serving=torch.zeros(1, 1, dtype=torch.long), p_max=p_max, i_max=i_max
    )
    mrt_interference = p_max * math.cos(theta) ** 2
    if mrt_interference <= i_max:
        return problem, math.log2(1 + h_gain * p_max)
    phi = theta - math.acos(math.sqrt(i_max / p_max))
    return problem, math.log2(1 + h_gain * p_max * math.cos(phi) ** 2)


@pytest.mark.parametrize("mu_update", ["bisection", "subgradient"])
def test_binding_au_constraint_is_met_with_equality(mu_update):
    problem, optimum = _one_au_instance(i_max=0.05)  # MRT gives 0.25
    result = wmmse(problem, max_iter=500, tol=1e-12, mu_update=mu_update)
    rho = float(result.au_interference[0, 0])
    assert rho == pytest.approx(0.05, rel=1e-3)
    assert float(result.multipliers["mu"][0, 0]) > 0
    assert float(result.sum_rate[0]) == pytest.approx(optimum, abs=1e-3)
    assert bool(result.feasible.all())


def test_loose_au_constraint_has_zero_multiplier():
    problem, optimum = _one_au_instance(i_max=1.0)
    result = wmmse(problem, max_iter=200, tol=1e-12, mu_update="bisection")
    assert float(result.multipliers["mu"][0, 0]) == 0.0
    assert float(result.sum_rate[0]) == pytest.approx(optimum, rel=1e-9)


def test_siso_interference_channel_power_control_beats_full_power():
    """K = 4 pairs, M = 1, CN(0, 1) channels, SNR 20 dB (Shi et al. 2011, Fig. 1 setting)."""
    B, K, snr = 200, 4, 100.0
    g = torch.Generator().manual_seed(8)
    H = crandn(B, K, K, 1, generator=g)
    problem = BeamformingProblem(
        H=H,
        G=torch.zeros(B, 0, K, 1, dtype=C128),
        serving=torch.arange(K).expand(B, K).clone(),
        p_max=snr,
        i_max=LOOSE,
    )
    own = torch.diagonal(H[..., 0], dim1=1, dim2=2)  # h_{k,k}: (B, K)
    full_power = evaluate(problem, (math.sqrt(snr) * own / own.abs())[..., None]).sum_rate
    result = wmmse(problem, max_iter=100)
    # Interference-limited at full power (about 1.9 bit/s/Hz here); switching pairs off and
    # balancing powers gives several times more (about 7.2).
    assert float(result.sum_rate.mean()) > 2.0 * float(full_power.mean())
    assert float((result.sum_rate >= full_power - 1e-9).double().mean()) > 0.95


def test_warm_start_from_converged_solution_stops_at_once():
    problem = random_problem(3, 4, 2, 3, 1, p_max=5.0, i_max=LOOSE, seed=9)
    cold = wmmse(problem, max_iter=2000, tol=1e-11)
    assert bool(cold.converged.all())
    warm = wmmse(problem, w0=cold.w, tol=1e-5)
    assert warm.iterations <= 2
    assert torch.allclose(warm.sum_rate, cold.sum_rate, rtol=1e-8)


@pytest.mark.parametrize("mu_update", ["subgradient", "bisection"])
def test_batch_equals_separate_runs(mu_update):
    problem = random_problem(3, 4, 2, 3, 2, p_max=5.0, i_max=0.5, seed=10)
    batched = wmmse(problem, max_iter=50, mu_update=mu_update)
    for b in range(3):
        single = wmmse(problem.subset(slice(b, b + 1)), max_iter=50, mu_update=mu_update)
        assert torch.allclose(single.w[0], batched.w[b], rtol=1e-7, atol=1e-9)
        assert torch.allclose(single.multipliers["mu"][0], batched.multipliers["mu"][b], rtol=1e-6)


def test_bad_arguments_are_rejected():
    problem = random_problem(1, 2, 1, 2, 0, p_max=1.0, i_max=LOOSE, seed=11)
    with pytest.raises(ValueError, match="max_iter"):
        wmmse(problem, max_iter=0)
    with pytest.raises(ValueError, match="mu_update"):
        wmmse(problem, mu_update="newton")
    with pytest.raises(ValueError, match="tol"):
        wmmse(problem, tol=-1.0)
    with pytest.raises(ValueError, match="w0"):
        wmmse(problem, w0=torch.zeros(1, 3, 2, dtype=C128))


@pytest.mark.parametrize("solver", ["wmmse", "fp"])
def test_float32_beams_meet_deep_au_nulls_as_returned(solver):
    """Regression (fuzzer): the (2c) safeguard acted on the complex128 beams, then they were
    rounded to the problem's complex64, which moves g^H w by ~eps ||g|| ||w||: with I_max
    1e-6 noise powers against |g|^2 ~ 1e6 the returned beams overshot I_max by up to 4.5 %
    (some flagged feasible). The safeguard now acts on the rounded beams, with a margin."""
    from skyshare import metrics
    from skyshare.solvers.fp import fp

    solve = {"wmmse": wmmse, "fp": fp}[solver]
    g = torch.Generator().manual_seed(0)
    H = crandn(4, 6, 1, 8, generator=g) * 10
    G = crandn(4, 3, 1, 8, generator=g) * 1e3
    serving = torch.zeros(4, 6, dtype=torch.long)
    problem = BeamformingProblem(
        H.to(torch.complex64), G.to(torch.complex64), serving, p_max=1.0, i_max=1e-6
    )
    result = solve(problem, max_iter=20)
    assert result.w.dtype == torch.complex64
    rho = metrics.primary_interference(G, result.w.to(C128), serving)  # exact, float64
    assert float(rho.max()) <= 1e-6 * (1 + 1e-3)
    assert bool(result.feasible.all())
    # float64 problems are left as they were: the same beams with or without the margin code
    exact = BeamformingProblem(H, G, serving, p_max=1.0, i_max=1e-6)
    again = solve(exact, max_iter=20)
    assert float(metrics.primary_interference(G, again.w, serving).max()) <= 1e-6 * (1 + 1e-3)
