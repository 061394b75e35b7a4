"""Seed 003 proportional-fair WMMSE (``skyshare.solvers.pf_wmmse``): the stacked reduced layout
against the SINR kernel, the per-BS w-step against CVXPY, monotone WMMSE rounds, feasibility,
batching, the K = 1 closed form, agreement with the SCA upper bound, infeasibility, bad input."""

import dataclasses

import cvxpy as cp
import numpy as np
import pytest
import torch

from skyshare import metrics
from skyshare.errors import ConfigError, ShapeError
from skyshare.scenarios.vhetnet import VhetnetConfig, VhetnetScenario
from skyshare.solvers import pf_wmmse, sca_centralized
from skyshare.solvers.pf_wmmse import (
    bs_power,
    coherent_mrt,
    fill_budgets,
    model_sinr,
    pf_of_sinr,
    solve_w_step,
    stack_channels,
    stacked_beamformers,
    unstack_beamformers,
    wmmse_round,
)

SMALL = {"n_mbs": 2, "haps_n_h": 2, "haps_n_v": 2, "mbs_n_h": 2, "mbs_n_v": 2}


def small_problem(n_ue=4, batch=2, seed=0, **overrides):
    """1 HAPS + 2 MBS (T = 3), complex128."""
    config = VhetnetConfig(n_ue=n_ue, **{**SMALL, **overrides})
    return VhetnetScenario(config, batch_size=batch).reset(seed).problem().to(torch.complex128)


def random_beams(problem, seed=0, scale=1.0):
    B, K, T, M = problem.shape
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(B, T, K, M, dtype=torch.complex128, generator=g)
    return scale * W * problem.antenna_mask[:, None, :]


def weighted_sum_rate(st, V, alpha):
    return (alpha * torch.log2(1.0 + model_sinr(st, V)[2])).sum(-1)


# --------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------


def test_stacked_layout_matches_the_sinr_kernel():
    """HAPS 3x3 with K = 2 < M: the reduced coordinates (r_t = min(M_t, K)) lose nothing."""
    problem = small_problem(n_ue=2, haps_n_h=3, haps_n_v=3)
    st = stack_channels(problem)
    assert st.G.shape == (2, 2, 6) and st.select.sum(-1).tolist() == [2.0, 2.0, 2.0]
    W = random_beams(problem, seed=1)
    V = stacked_beamformers(problem, st, W)  # the part of W inside the channel spans
    W_span = unstack_beamformers(problem, st, V)
    A = metrics.effective_gains(problem.H, W)
    assert torch.allclose(metrics.effective_gains(problem.H, W_span), A, rtol=1e-10, atol=1e-9)
    assert torch.allclose(torch.einsum("bkn,bjn->bkj", st.G.conj(), V), A, rtol=1e-10, atol=1e-9)
    assert bool((problem.power(W_span) <= problem.power(W) + 1e-9).all())
    assert torch.allclose(stacked_beamformers(problem, st, W_span), V, atol=1e-12)
    assert torch.allclose(problem.power(W_span), bs_power(V, st.select) * problem.p_max)
    # coherent MRT: w_{t,k} = sqrt(P_t / K) h_{t,k} / ||h_{t,k}||, every BS at its budget
    W_mrt = unstack_beamformers(problem, st, coherent_mrt(st))
    h = problem.H.permute(0, 2, 1, 3)  # (B, T, K, M)
    expected = (problem.p_max[:, None, None] / 2).sqrt() * h / h.norm(dim=-1, keepdim=True)
    assert torch.allclose(W_mrt, expected, atol=1e-9)
    assert torch.allclose(problem.power(W_mrt), problem.p_max.expand(2, 3))


# --------------------------------------------------------------------------------------------
# The w-step and the rounds
# --------------------------------------------------------------------------------------------


def cvxpy_w_step(C, Bm, select):
    """min sum_k v_k^H C v_k - 2 Re(b_k^H v_k) s.t. per-BS power <= 1, solved by CVXPY."""
    N, K = Bm.shape
    V = cp.Variable((N, K), complex=True)
    L = np.linalg.cholesky(C)  # C = L L^H
    objective = cp.sum_squares(L.conj().T @ V) - 2 * cp.real(cp.trace(Bm.conj().T @ V))
    budgets = [cp.sum_squares(V[row > 0]) <= 1 for row in select]
    problem = cp.Problem(cp.Minimize(objective), budgets)
    problem.solve(solver=cp.CLARABEL)
    return problem.value


@pytest.mark.parametrize("b_scale", [0.3, 0.5, 0.6, 1e3])
def test_w_step_matches_cvxpy_with_active_and_slack_budgets(b_scale):
    """BS 2 weak: 0.3 leaves every budget slack, 0.5 and 0.6 mix active and slack budgets,
    1e3 makes them all active."""
    g = torch.Generator().manual_seed(2)
    N, K, T = 6, 3, 3
    select = torch.kron(torch.eye(T, dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64))
    G = torch.randn(2, K, N, dtype=torch.complex128, generator=g)
    G[..., 4:] *= 0.2
    gram = torch.einsum("bkn,bkm->bnm", G, G.conj())
    C = gram + 1e-3 * torch.eye(N)  # positive definite, as with WMMSE's proximal term
    Bm = gram @ (b_scale * torch.randn(2, N, K, dtype=torch.complex128, generator=g))
    Vc, mu = solve_w_step(C, Bm, select)
    power = (Vc.abs().square().sum(-1)) @ select.T
    assert bool((power <= 1 + 1e-7).all())
    for b in range(2):
        quadratic = torch.einsum("nk,nm,mk->", Vc[b].conj(), C[b], Vc[b]).real
        ours = float(quadratic - 2 * (Bm[b].conj() * Vc[b]).sum().real)
        reference = cvxpy_w_step(C[b].numpy(), Bm[b].numpy(), select.numpy())
        assert ours == pytest.approx(reference, rel=1e-6, abs=1e-7)
    slack = power < 1 - 1e-6  # complementary slackness: mu = 0 exactly where slack
    assert bool((mu == 0).eq(slack).all()) and bool((mu >= 0).all())
    assert bool(slack.any()) == (b_scale < 1) and bool(slack.all()) == (b_scale == 0.3)


def test_wmmse_rounds_never_lower_the_weighted_sum_rate():
    problem = small_problem(n_ue=4)
    st = stack_channels(problem)
    alpha = torch.rand(2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    V, mu = coherent_mrt(st), None
    values = [weighted_sum_rate(st, V, alpha)]
    for _ in range(15):
        V, mu = wmmse_round(st.G, V, alpha, st.select, mu)
        assert bool((bs_power(V, st.select) <= 1 + 1e-7).all())  # the w-step's tolerance
        values.append(weighted_sum_rate(st, V, alpha))
        before, after = (pf_of_sinr(model_sinr(st, x)[2]) for x in (V, fill_budgets(st, V)))
        assert bool((after >= before - 1e-9 * before.abs()).all())  # the fill never hurts
    values = torch.stack(values, 1)
    assert bool((torch.diff(values, dim=1) >= -1e-9 * values[:, 1:].abs()).all())
    assert bool((values[:, -1] > values[:, 0] + 1.0).all())


# --------------------------------------------------------------------------------------------
# The solver
# --------------------------------------------------------------------------------------------


def test_pf_wmmse_is_feasible_improves_and_batches_independently():
    problem = small_problem(n_ue=4, batch=3, seed=1)
    result = pf_wmmse(problem)
    e = result.evaluation
    assert result.solver == "pf-wmmse"
    assert bool((e.power <= problem.p_max * (1 + 1e-9)).all())
    assert bool(torch.isfinite(result.pf_objective).all())
    assert bool((result.pf_objective > result.info["initial_objective"] + 1.0).all())
    assert not bool(result.infeasible.any()) and bool(result.converged.all())
    assert result.objective_trace.shape == (3, int(result.iterations.max()))
    alone = pf_wmmse(problem.subset(slice(2, 3)))
    assert torch.allclose(alone.W, result.W[2:], atol=1e-8)


def test_single_ue_reaches_coherent_mrt_closed_form():
    problem = small_problem(n_ue=1)
    norms = problem.H[:, 0].abs().square().sum(-1).sqrt()  # (B, T)
    closed = torch.log2(1.0 + (problem.p_max.double().sqrt() * norms).sum(-1).square())
    for W0 in (None, random_beams(problem, seed=4), random_beams(problem, seed=5, scale=1e-3)):
        result = pf_wmmse(problem, W0=W0, tol=1e-10)
        assert torch.allclose(result.evaluation.se[:, 0], closed, rtol=1e-8)


def test_pf_wmmse_is_close_to_and_below_the_sca_solution():
    """Both are local methods. On these seeded drops WMMSE stops 0.03-0.13 % below SCA (its
    rounds creep at 30-70 dB SINR; on K = 6 drops with a starved UE the gap reaches 16 % at 100
    rounds, see the module docstring). It may exceed SCA only by SCA's own tolerance (1e-4):
    SCA started from WMMSE's beams (feasible, and SCA never decreases the objective) improves
    on them, so WMMSE's end point is not stationary."""
    problem = small_problem(n_ue=3, batch=4, seed=1)
    wmmse = pf_wmmse(problem)
    sca = sca_centralized(problem)
    gap = (sca.pf_objective - wmmse.pf_objective) / sca.pf_objective.abs()
    # measured gaps 1.31e-3, 3.5e-4, 5.4e-4, 4.3e-4: bound at ~2x the largest
    assert bool((gap >= -1e-4).all()) and bool((gap <= 3e-3).all())
    polished = sca_centralized(problem, W0=wmmse.W, max_iter=3)
    assert bool((polished.pf_objective > wmmse.pf_objective + 1e-4).all())


def test_gamma_min_is_not_optimised_but_flagged():
    base = small_problem(n_ue=4)
    problem = dataclasses.replace(base, gamma_min=1e3, p_max=base.p_max * 1e-6)
    result = pf_wmmse(problem)
    assert bool(result.infeasible.all()) and "infeasible" in result.message
    assert bool(torch.isfinite(result.pf_objective).all())
    assert bool((result.evaluation.power <= problem.p_max * (1 + 1e-9)).all())
    ok = pf_wmmse(dataclasses.replace(base, gamma_min=1.0))
    assert not bool(ok.infeasible.any())


def test_bad_input_raises():
    problem = small_problem(n_ue=2)
    for bad in (0, -1, 1.5, False):
        with pytest.raises(ConfigError, match="max_iter"):
            pf_wmmse(problem, max_iter=bad)
    with pytest.raises(ConfigError, match="tol"):
        pf_wmmse(problem, tol=2.0)
    with pytest.raises(ShapeError):
        pf_wmmse(problem, W0=torch.zeros(2, 3, 2, 5, dtype=torch.complex128))


# --------------------------------------------------------------------------------------------
# Per-instance stopping and the active set
# --------------------------------------------------------------------------------------------


def test_w_step_stops_per_instance():
    """An instance whose budgets already hold stops at once: its beams and multipliers are
    those it gets alone, whatever the other instances still need (float rounding at most)."""
    g = torch.Generator().manual_seed(3)
    N, K, T, B = 6, 3, 3, 4
    select = torch.kron(torch.eye(T, dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64))
    G = torch.randn(B, K, N, dtype=torch.complex128, generator=g)
    gram = torch.einsum("bkn,bkm->bnm", G, G.conj())
    C = gram + 1e-3 * torch.eye(N)
    scale = torch.tensor([0.3, 1e3, 0.5, 1e2], dtype=torch.float64)[:, None, None]
    Bm = gram @ (scale * torch.randn(B, N, K, dtype=torch.complex128, generator=g))
    Vc, mu = solve_w_step(C, Bm, select)
    for b in range(B):
        V1, mu1 = solve_w_step(C[b : b + 1], Bm[b : b + 1], select)
        torch.testing.assert_close(V1[0], Vc[b], rtol=1e-12, atol=1e-13)
        torch.testing.assert_close(mu1[0], mu[b], rtol=1e-12, atol=1e-13)
    # a warm start at the answer: no Newton step, the multipliers come back unchanged
    _, mu2 = solve_w_step(C, Bm, select, mu)
    torch.testing.assert_close(mu2, mu, rtol=0, atol=0)


@pytest.mark.parametrize(("n_ue", "seed", "options"), [(4, 0, {}), (6, 1, {"max_iter": 40})])
def test_active_set_batch_equals_each_instance_alone(n_ue, seed, options):
    """Converged instances leave the batch: each instance gets the beams, multipliers, trace
    and round count it gets alone (a batch of one never compacts)."""
    problem = small_problem(n_ue=n_ue, batch=6, seed=seed)
    batched = pf_wmmse(problem, **options)
    assert len(set(batched.iterations.tolist())) > 2  # the instances stop at different rounds
    assert batched.objective_trace.shape == (6, int(batched.iterations.max()))
    for b in range(6):
        alone = pf_wmmse(problem.subset(slice(b, b + 1)), **options)
        assert alone.iterations.tolist() == [int(batched.iterations[b])]
        assert alone.converged.tolist() == [bool(batched.converged[b])]
        torch.testing.assert_close(alone.W[0], batched.W[b], rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(alone.info["mu"][0], batched.info["mu"][b], rtol=1e-9, atol=0)
        rounds = int(alone.iterations[0])
        trace = batched.objective_trace[b]
        torch.testing.assert_close(alone.objective_trace[0], trace[:rounds], rtol=1e-12, atol=0)
        assert bool(trace[rounds:].isnan().all())
        torch.testing.assert_close(
            alone.info["best_objective"][0], batched.info["best_objective"][b], rtol=1e-12, atol=0
        )


def test_round_counts_follow_the_stopping_rule():
    problem = small_problem(n_ue=4, batch=6, seed=0)
    result = pf_wmmse(problem, tol=1e-5)
    trace = torch.cat([result.info["initial_objective"][:, None], result.objective_trace], 1)
    for b in range(6):
        settled = (trace[b, 1:] - trace[b, :-1]).abs() <= 1e-5 * trace[b, :-1].abs().clamp_min(1)
        first = int(settled.nonzero()[0, 0]) + 1 if bool(settled.any()) else 100
        assert first == int(result.iterations[b])
        assert bool(result.converged[b]) == bool(settled.any())
