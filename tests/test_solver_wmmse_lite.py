"""Low-complexity WMMSE (seed 000 §VI): prox-linear w-steps, sub-gradient mu, no inversion.

Reference values are computed here independently of the solver: the w-subproblem's Hessians
D_n are built term by term, its minimiser with torch.linalg.solve, eigenvalues with eigvalsh,
rates of the single-link case with ``math``.
"""

import math

import pytest
import torch

from skyshare import metrics
from skyshare.errors import ConfigError, ShapeError
from skyshare.scenarios import CatnScenario
from skyshare.solvers.problem import BeamformingProblem, evaluate, initial_beamformers
from skyshare.solvers.wmmse import wmmse
from skyshare.solvers.wmmse_lite import WSubproblem, prox_linear_step, wmmse_lite

C128 = torch.complex128


def crandn(*shape, generator, scale=1.0):
    """CN(0, scale^2) samples, complex128."""
    parts = torch.randn(*shape, 2, generator=generator, dtype=torch.float64)
    return torch.view_as_complex(parts) * (scale / math.sqrt(2.0))


INACTIVE = 1e30  # an I_max no beam can reach: (2c) inactive


def random_problem(
    B=3, K=5, N=2, M=4, L=1, *, seed=0, p_max=10.0, i_max=INACTIVE, au_scale=1.0
) -> BeamformingProblem:
    g = torch.Generator().manual_seed(seed)
    H = crandn(B, K, N, M, generator=g)
    G = crandn(B, L, N, M, generator=g, scale=au_scale)
    serving = torch.randint(0, N, (B, K), generator=g)
    return BeamformingProblem(H=H, G=G, serving=serving, p_max=p_max, i_max=i_max)


def hessians_by_hand(problem, alpha, mu):
    """D_n = sum_i alpha_i h_{n,i} h_{n,i}^H + sum_l mu_l g_{n,l} g_{n,l}^H, term by term."""
    B, K, N, M, L = problem.shape
    D = torch.zeros(B, N, M, M, dtype=C128)
    for i in range(K):
        h = problem.H[:, i]  # (B, N, M)
        D += alpha[:, i, None, None, None] * h[..., :, None] * h.conj()[..., None, :]
    for l in range(L):
        gl = problem.G[:, l]
        D += mu[:, l, None, None, None] * gl[..., :, None] * gl.conj()[..., None, :]
    return D


def random_subproblem(problem, seed):
    B, K, _, M, L = problem.shape
    g = torch.Generator().manual_seed(seed)
    alpha = torch.rand(B, K, generator=g, dtype=torch.float64) + 0.5
    mu = torch.rand(B, L, generator=g, dtype=torch.float64)
    b = crandn(B, K, M, generator=g)
    return alpha, mu, b


def objective_by_hand(D, b, w, serving, constant):
    B = w.shape[0]
    Dk = D[torch.arange(B)[:, None], serving]  # (B, K, M, M)
    quadratic = torch.einsum("bkm,bkmn,bkn->b", w.conj(), Dk, w).real
    return quadratic - 2.0 * (b.conj() * w).sum((-1, -2)).real - constant


# ------------------------------------------------------------------------------------------------
# The prox-linear step on a fixed convex w-subproblem
# ------------------------------------------------------------------------------------------------


def test_lipschitz_bounds_are_upper_bounds_of_lambda_max():
    problem = random_problem(B=4, K=6, N=3, M=4, L=2, seed=1)
    alpha, mu, b = random_subproblem(problem, seed=2)
    sub = WSubproblem.from_weights(problem, alpha, mu, b)
    D = hessians_by_hand(problem, alpha, mu)
    torch.testing.assert_close(sub.hessian, D)
    lambda_max = torch.linalg.eigvalsh(D)[..., -1]
    frobenius, trace = sub.lipschitz("frobenius"), sub.lipschitz("trace")
    assert bool((lambda_max <= frobenius * (1 + 1e-12)).all())
    assert bool((frobenius <= trace * (1 + 1e-12)).all())
    # ||D||_F <= sqrt(rank) lambda_max with rank <= M
    assert bool((frobenius <= math.sqrt(4) * lambda_max * (1 + 1e-12)).all())


def test_prox_linear_steps_decrease_f_and_converge_to_the_closed_form_minimiser():
    # P_max large: the power balls are inactive, the minimiser is w_k* = D_{rho_k}^{-1} b_k.
    problem = random_problem(B=3, K=6, N=2, M=3, L=1, seed=3, p_max=1e6)
    alpha, mu, b = random_subproblem(problem, seed=4)
    sub = WSubproblem.from_weights(problem, alpha, mu, b)
    D = hessians_by_hand(problem, alpha, mu)
    constant = mu.sum(-1) * INACTIVE  # sum_l mu_l I_max,l
    Dk = D[torch.arange(3)[:, None], problem.serving]
    w_star = torch.linalg.solve(Dk, b[..., None]).squeeze(-1)
    bs_power = metrics.split_by_transmitter(
        w_star.abs().square().sum(-1)[:, None, :], problem.serving, 2
    ).squeeze(-1)
    assert bool((bs_power < 1e6).all())  # the constraint is indeed inactive

    lipschitz = sub.lipschitz()
    w = initial_beamformers(problem)
    f = objective_by_hand(D, b, w, problem.serving, constant)
    torch.testing.assert_close(sub.objective(w), f)
    for _ in range(3000):
        w, eta = prox_linear_step(sub, w, lipschitz)
        f_next = objective_by_hand(D, b, w, problem.serving, constant)
        assert bool((f_next <= f + 1e-10 * f.abs()).all()), "f increased"
        f = f_next
    assert bool((eta == 0).all())
    torch.testing.assert_close(w, w_star, rtol=1e-6, atol=1e-8)
    # the conjugate gradient D w - b vanishes at the minimiser
    assert float(sub.gradient(w_star).abs().max()) < 1e-10


def test_prox_linear_fixed_point_with_active_power_ball_satisfies_line_5_with_eta():
    # Small P_max: the projections bind; the fixed point solves (D_n + eta_n I) w_k = b_k.
    problem = random_problem(B=2, K=4, N=2, M=3, L=1, seed=5, p_max=1e-2)
    alpha, mu, b = random_subproblem(problem, seed=6)
    sub = WSubproblem.from_weights(problem, alpha, mu, b)
    D = hessians_by_hand(problem, alpha, mu)
    lipschitz = sub.lipschitz()
    w = initial_beamformers(problem)
    for _ in range(3000):
        w, eta = prox_linear_step(sub, w, lipschitz)
    batch = torch.arange(2)[:, None]
    loaded = torch.zeros(2, 2, dtype=torch.bool)
    loaded[batch, problem.serving] = True
    assert bool((eta[loaded] > 0).all())
    eta_k = eta[batch, problem.serving]  # (B, K)
    shifted = D[batch, problem.serving] + eta_k[..., None, None] * torch.eye(3, dtype=C128)
    torch.testing.assert_close(torch.linalg.solve(shifted, b[..., None]).squeeze(-1), w)
    power = evaluate(problem, w).bs_power
    torch.testing.assert_close(power[loaded], torch.full_like(power[loaded], 1e-2))


# ------------------------------------------------------------------------------------------------
# The solver
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sum_rate_beats_mrt_and_never_decreases_with_inactive_au_constraints(seed):
    problem = random_problem(B=4, K=6, N=3, M=4, L=1, seed=seed, p_max=100.0)
    mrt = initial_beamformers(problem)
    mrt_rate = evaluate(problem, mrt).sum_rate
    # per-user phase rotations leave every rate unchanged but expose a wrong conjugation of v
    phases = torch.rand(4, 6, 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    w0 = mrt * torch.exp(2j * math.pi * phases)
    torch.testing.assert_close(evaluate(problem, w0).sum_rate, mrt_rate)
    result = wmmse_lite(problem, w0=w0, max_iter=30, tol=0.0)
    trace = torch.cat([mrt_rate[:, None], result.objective_trace], 1)
    assert bool((trace.diff(dim=1) >= -1e-9 * trace[:, 1:]).all()), "sum rate decreased"
    assert bool((result.sum_rate > mrt_rate).all())
    assert bool(result.feasible.all())
    assert not bool(result.multipliers["scaled"].any())
    assert bool((result.multipliers["mu"] == 0).all())  # an inactive (2c) is never priced
    # complementary slackness of the power multipliers: eta_n > 0 only at full power
    eta, power = result.multipliers["eta"], result.bs_power
    assert bool((eta >= 0).all())
    assert bool((power[eta > 1e-9] >= 100.0 * (1 - 1e-9)).all())


def test_infinite_i_max_disables_the_au_constraint():
    finite = random_problem(B=2, K=5, N=2, M=4, L=1, seed=3, p_max=100.0)
    infinite = BeamformingProblem(finite.H, finite.G, finite.serving, 100.0, math.inf)
    a = wmmse_lite(finite, max_iter=10)
    b = wmmse_lite(infinite, max_iter=10)
    torch.testing.assert_close(a.w, b.w)
    assert bool((b.multipliers["mu"] == 0).all())
    assert not bool(b.multipliers["scaled"].any())


def test_plain_prox_linear_steps_are_monotone_too():
    problem = random_problem(B=3, K=5, N=2, M=4, L=1, seed=7, p_max=100.0)
    result = wmmse_lite(problem, max_iter=25, inner_steps=1, extrapolation=0.0, tol=0.0)
    trace = result.objective_trace
    assert bool((trace.diff(dim=1) >= -1e-9 * trace[:, 1:]).all())


def test_one_bs_one_user_is_mrt_at_full_power():
    g = torch.Generator().manual_seed(11)
    H = crandn(1, 1, 1, 4, generator=g)
    problem = BeamformingProblem(
        H=H,
        G=torch.zeros(1, 0, 1, 4, dtype=C128),
        serving=torch.zeros(1, 1, dtype=torch.long),
        p_max=3.0,
        i_max=math.inf,
    )
    result = wmmse_lite(problem)
    h = [complex(x) for x in H[0, 0, 0]]
    gain = sum(abs(x) ** 2 for x in h)
    assert float(result.sum_rate[0]) == pytest.approx(math.log2(1.0 + 3.0 * gain), rel=1e-9)
    w = [complex(x) for x in result.w[0, 0]]
    assert sum(abs(x) ** 2 for x in w) == pytest.approx(3.0, rel=1e-9)
    alignment = abs(sum(a.conjugate() * c for a, c in zip(h, w, strict=True)))
    assert alignment == pytest.approx(math.sqrt(3.0 * gain), rel=1e-9)  # w parallel to h
    assert bool(result.converged.all()) and bool(result.feasible.all())


def au_limited_problem(i_max_fraction: float):
    """One BS, two users, one AU whose channel is close to user 0's: MRT violates I_max."""
    g = torch.Generator().manual_seed(21)
    H = crandn(1, 2, 1, 4, generator=g)
    G = (0.8 * H[:, :1] + 0.2 * crandn(1, 1, 1, 4, generator=g)).clone()
    serving = torch.zeros(1, 2, dtype=torch.long)
    base = BeamformingProblem(H=H, G=G, serving=serving, p_max=10.0, i_max=math.inf)
    rho_mrt = float(evaluate(base, initial_beamformers(base)).au_interference[0, 0])
    i_max = i_max_fraction * rho_mrt
    return BeamformingProblem(H=H, G=G, serving=serving, p_max=10.0, i_max=i_max), i_max


def test_au_constraint_is_met_when_mrt_violates_it():
    problem, i_max = au_limited_problem(0.05)
    result = wmmse_lite(problem, max_iter=300, tol=1e-4)
    rho = float(result.au_interference[0, 0])
    assert rho <= i_max * (1 + 1e-3)
    assert bool(result.feasible.all())
    assert float(result.multipliers["mu"][0, 0]) > 0.0  # the constraint was priced
    assert float(result.evaluation.power_violation[0]) <= 1e-12
    # converged, not merely feasible: the sum rate is the (exact-inversion) WMMSE optimum's
    # (measured 6.71470 against 6.71456, 2e-5 relative; one iteration gives 2.77), reached by
    # the multipliers rather than by the safeguard's scaling
    assert not bool(result.multipliers["scaled"].any())
    reference = wmmse(problem, max_iter=500, tol=1e-10)
    assert bool(reference.feasible.all())
    torch.testing.assert_close(result.sum_rate, reference.sum_rate, rtol=1e-3, atol=0.0)
    # at that optimum (2c) binds and the BS transmits at full power (measured rho / I_max
    # 1.0003 here, 1 + 5e-9 for the reference; P = P_max = 10 for both)
    assert float(reference.au_interference[0, 0]) / i_max == pytest.approx(1.0, abs=1e-6)
    assert rho / i_max == pytest.approx(1.0, abs=1e-3)
    assert float(result.bs_power[0, 0]) == pytest.approx(10.0, rel=1e-6)


def test_safeguard_scales_beams_onto_the_interference_limit():
    problem, i_max = au_limited_problem(0.05)
    result = wmmse_lite(problem, max_iter=1)  # far too short for the multiplier to act
    assert bool(result.multipliers["scaled"].all())
    assert float(result.au_interference[0, 0]) == pytest.approx(i_max, rel=1e-9)
    assert bool(result.feasible.all())


def test_returned_solutions_are_feasible_or_flagged_on_the_catn_network():
    scenario = CatnScenario.from_preset("paper", batch_size=3)
    state = scenario.reset(seed=4)
    serving = metrics.strongest_transmitter(state.H)
    problem = BeamformingProblem(
        state.H, state.G, serving, scenario.config.p_max_w, scenario.i_max_normalized
    )
    start = evaluate(problem, initial_beamformers(problem))
    assert bool((start.interference_violation > 0).all())  # MRT violates (2c) here
    result = wmmse_lite(problem)
    evaluation = evaluate(problem, result.w)
    assert bool((evaluation.power_violation <= 1e-5).all())
    torch.testing.assert_close(result.feasible, evaluation.feasible(1e-3))
    assert bool(result.feasible.all())
    assert bool((result.sum_rate > 2.0 * start.sum_rate).all())
    assert result.iterations <= 10 and result.objective_trace.shape == (3, result.iterations)


def test_batch_of_b_equals_b_batches_of_one():
    problem = random_problem(B=4, K=5, N=2, M=4, L=2, seed=8, p_max=50.0, i_max=2.0)
    together = wmmse_lite(problem, max_iter=15, tol=1e-3)
    assert 0 < int(together.converged.sum()) < 4  # instances stop at different iterations
    for b in range(4):
        alone = wmmse_lite(problem.subset(slice(b, b + 1)), max_iter=15, tol=1e-3)
        torch.testing.assert_close(alone.w[0], together.w[b])
        T = alone.objective_trace.shape[1]
        torch.testing.assert_close(alone.objective_trace[0], together.objective_trace[b, :T])
        assert bool(alone.converged[0] == together.converged[b])
        for name in ("mu", "eta", "lipschitz", "scaled"):
            torch.testing.assert_close(alone.multipliers[name][0], together.multipliers[name][b])


def test_no_matrix_inversion_is_used(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("matrix inversion / factorisation called")

    for name in (
        "inv",
        "inv_ex",
        "solve",
        "solve_ex",
        "eigh",
        "eigvalsh",
        "eig",
        "eigvals",
        "cholesky",
        "cholesky_ex",
        "pinv",
        "lstsq",
        "svd",
        "svdvals",
        "lu",
        "lu_factor",
        "ldl_factor",
    ):
        monkeypatch.setattr(torch.linalg, name, forbidden)
    for name in ("inverse", "cholesky_solve", "cholesky_inverse", "pinverse", "svd"):
        monkeypatch.setattr(torch, name, forbidden)
    problem = random_problem(B=2, K=5, N=2, M=4, L=1, seed=9, i_max=1.0)
    result = wmmse_lite(problem, max_iter=5)
    assert result.iterations >= 1
    with pytest.raises(AssertionError):
        torch.linalg.solve(torch.eye(2), torch.ones(2))  # the patch is active


def test_multiplier_step_is_unit_free():
    # Scaling the AU channels by c and I_max by c^2 leaves (2c) unchanged: same beams.
    problem = random_problem(B=2, K=5, N=2, M=4, L=1, seed=10, p_max=50.0, i_max=0.5)
    c = 1e3
    scaled = BeamformingProblem(problem.H, c * problem.G, problem.serving, 50.0, 0.5 * c * c)
    a = wmmse_lite(problem, max_iter=20)
    b = wmmse_lite(scaled, max_iter=20)
    torch.testing.assert_close(a.w, b.w)
    torch.testing.assert_close(a.multipliers["mu"], b.multipliers["mu"] * c * c)


def test_warm_start_and_multiplier_warm_start_are_used():
    problem = random_problem(B=2, K=5, N=2, M=4, L=1, seed=12, p_max=50.0, i_max=0.5)
    first = wmmse_lite(problem, max_iter=40, tol=1e-4)
    again = wmmse_lite(problem, w0=first.w, mu0=first.multipliers["mu"], max_iter=1, tol=0.0)
    # one more iteration from the (full-power) warm start stays near the previous sum rate
    assert bool((again.sum_rate > 0.9 * first.sum_rate).all())
    cold = wmmse_lite(problem, max_iter=1, tol=0.0)
    assert bool((again.sum_rate > cold.sum_rate).all())


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"max_iter": 0}, ConfigError),
        ({"inner_steps": 0}, ConfigError),
        ({"tol": -1.0}, ConfigError),
        ({"lipschitz": "spectral"}, ConfigError),
        ({"extrapolation": 1.0}, ConfigError),
        ({"mu_step": 0.0}, ConfigError),
        ({"mu_step_decay": 2.0}, ConfigError),
        ({"feasibility_tol": -1e-3}, ConfigError),
        ({"mu0": torch.zeros(2, 3)}, ShapeError),
        ({"w0": torch.zeros(2, 5, 3, dtype=C128)}, ShapeError),
    ],
)
def test_bad_arguments_are_rejected(kwargs, error):
    problem = random_problem(B=2, K=5, N=2, M=4, L=1, seed=13)
    with pytest.raises(error):
        wmmse_lite(problem, **kwargs)


def test_subproblem_validates_shapes():
    problem = random_problem(B=2, K=5, N=2, M=4, L=1, seed=14)
    alpha, mu, b = random_subproblem(problem, seed=15)
    with pytest.raises(ShapeError):
        WSubproblem.from_weights(problem, alpha[:, :3], mu, b)
    with pytest.raises(ValueError):
        WSubproblem.from_weights(problem, -alpha, mu, b)
    sub = WSubproblem.from_weights(problem, alpha, mu, b)
    with pytest.raises(ValueError):
        prox_linear_step(sub, b, torch.zeros(2, 2, dtype=torch.float64))


def test_very_low_snr_in_float32_stays_finite_and_feasible():
    """Issue 12 item 5: at -110 dB SNR (noise 0 dBm/MHz, 20 km cells) the Frobenius
    Lipschitz bound underflowed in float32 (squares of 1e-24), the step became 1e38 and the
    beams NaN. Now finite, feasible, and at the float64 solution's (float32-invisible) rates."""
    import torch

    from skyshare import metrics
    from skyshare.scenarios import CatnScenario
    from skyshare.solvers.problem import BeamformingProblem
    from skyshare.solvers.wmmse_lite import wmmse_lite

    overrides = {"noise_dbm_per_mhz": 0.0, "isd_m": 20000.0}
    scenario = CatnScenario.from_preset("paper", batch_size=4, overrides=overrides)
    state = scenario.reset(seed=0)
    serving = metrics.strongest_transmitter(state.H)
    results = {}
    for dtype in (torch.complex64, torch.complex128):
        problem = BeamformingProblem(
            state.H.to(dtype), state.G.to(dtype), serving, 20.0, scenario.i_max_normalized
        )
        results[dtype] = result = wmmse_lite(problem)
        assert bool(torch.isfinite(torch.view_as_real(result.w)).all())
        assert bool(result.feasible.all()) and bool(torch.isfinite(result.sum_rate).all())
    assert float(results[torch.complex128].sum_rate.max()) < 1e-9  # far below float32's 1 ulp
    # the float32 beams, evaluated in float64, reach the float64 solution's rates (measured
    # within 2.8e-4 relative) and are feasible there too; atol=0: the rates are ~1e-11
    exact = BeamformingProblem(
        state.H.to(torch.complex128),
        state.G.to(torch.complex128),
        serving,
        20.0,
        scenario.i_max_normalized,
    )
    single = evaluate(exact, results[torch.complex64].w.to(torch.complex128))
    assert bool((single.sum_rate > 0).all())
    torch.testing.assert_close(
        single.sum_rate, results[torch.complex128].sum_rate, rtol=1e-3, atol=0.0
    )
    assert bool(single.feasible(1e-3).all())


def test_very_high_snr_in_float32_stays_finite_and_matches_float64():
    """Regression (fuzzer): at SNRs of ~1e24 in noise units (noise -200 dBm/MHz over a
    sub-hertz band) alpha_k = S_k / (D_k (D_k - S_k)) overflowed in its float32 denominator
    (~1e49), alpha became 0, the Lipschitz bound the 1e-38 floor and the beams NaN. Now
    finite, within the budgets, and at the float64 solution's rates."""
    problem = random_problem(B=2, K=6, N=1, M=4, L=0, seed=4, p_max=1.0)
    loud = BeamformingProblem(
        H=problem.H * 1e12, G=problem.G, serving=problem.serving, p_max=1.0, i_max=INACTIVE
    )
    sum_rates = {}
    for dtype in (torch.complex64, C128):
        cast = BeamformingProblem(loud.H.to(dtype), loud.G.to(dtype), loud.serving, 1.0, INACTIVE)
        result = wmmse_lite(cast, max_iter=3)
        assert bool(torch.isfinite(torch.view_as_real(result.w)).all())
        assert bool(result.feasible.all()) and bool(torch.isfinite(result.sum_rate).all())
        sum_rates[dtype] = result.sum_rate.double()
    assert torch.allclose(sum_rates[torch.complex64], sum_rates[C128], rtol=1e-3)


def test_frobenius_bound_of_a_huge_hessian_in_float32_is_finite():
    """Regression (fuzzer): a lone user at an SNR of ~1e25 has alpha ~ 1 and D = h h^H with
    entries ~1e26, whose float32 squares overflow: ||D||_F read inf, the steps 0 * inf and the
    multipliers NaN. The norm is now recomputed on scaled entries there, as at very low SNR."""
    problem = random_problem(B=2, K=2, N=2, M=4, L=0, seed=6, p_max=1e-3)
    serving = torch.arange(2).expand(2, 2).clone()  # one user per BS, no interference
    H = problem.H * torch.eye(2, dtype=torch.float64)[None, :, :, None] * 1e13
    sum_rates = {}
    for dtype in (torch.complex64, C128):
        cast = BeamformingProblem(H.to(dtype), problem.G.to(dtype), serving, 1e-3, INACTIVE)
        result = wmmse_lite(cast, max_iter=3)
        for value in (torch.view_as_real(result.w), result.sum_rate, *result.multipliers.values()):
            assert bool(torch.isfinite(value.double()).all())
        sum_rates[dtype] = result.sum_rate.double()
    assert torch.allclose(sum_rates[torch.complex64], sum_rates[C128], rtol=1e-4)


# ------------------------------------------------------------------------------------------------
# Active set: converged instances leave the batch
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, i_max",
    [((6, 5, 2, 4, 2), 2.0), ((6, 6, 4, 2, 1), INACTIVE), ((6, 5, 2, 1, 2), 0.5)],
)
def test_active_set_batch_equals_each_instance_alone(shape, i_max):
    """Each instance of a batch gets the beams, multipliers, trace and iteration count it gets
    alone (a batch of one never compacts: it is the frozen loop). Equal to float round-off:
    complex element-wise kernels may round a value differently at another position."""
    B, K, N, M, L = shape
    problem = random_problem(B, K, N, M, L, seed=11, p_max=20.0, i_max=i_max)
    together = wmmse_lite(problem, max_iter=40, tol=1e-3)
    assert len(set(together.instance_iterations.tolist())) > 2  # a real active set
    assert together.iterations == int(together.instance_iterations.max())
    for b in range(B):
        alone = wmmse_lite(problem.subset(slice(b, b + 1)), max_iter=40, tol=1e-3)
        assert alone.instance_iterations.tolist() == [int(together.instance_iterations[b])]
        assert bool(alone.converged[0] == together.converged[b])
        torch.testing.assert_close(alone.w[0], together.w[b], rtol=1e-12, atol=1e-13)
        for name in ("mu", "eta", "lipschitz", "scaled"):
            torch.testing.assert_close(
                alone.multipliers[name][0], together.multipliers[name][b], rtol=1e-12, atol=1e-13
            )
        T = alone.objective_trace.shape[1]
        torch.testing.assert_close(
            alone.objective_trace[0], together.objective_trace[b, :T], rtol=1e-12, atol=0.0
        )
        # after it left the batch its trace keeps its final rate
        assert bool((together.objective_trace[b, T:] == together.objective_trace[b, T - 1]).all())


def test_instance_iterations_follow_the_stopping_rule():
    """Without AUs an instance stops at the first iteration whose relative change of the sum
    rate is <= tol; one warm-started at its solution stops at iteration 1."""
    problem = random_problem(B=4, K=5, N=2, M=4, L=1, seed=12, p_max=20.0)
    tight = wmmse_lite(problem, max_iter=300, tol=1e-9)
    w0 = torch.zeros_like(tight.w)
    w0[0] = tight.w[0]  # instance 0 starts at its solution, the others from MRT
    tol = 1e-3
    result = wmmse_lite(problem, w0=w0, max_iter=60, tol=tol)
    iterations = result.instance_iterations.tolist()
    assert iterations[0] == 1 and min(iterations[1:]) > 1
    trace = result.objective_trace
    for b in range(1, 4):
        settled = (trace[b, 1:] - trace[b, :-1]).abs() <= tol * trace[b, 1:]
        assert int(settled.nonzero()[0, 0]) + 2 == iterations[b]  # trace column t is iteration t+1
    assert bool(result.converged.all())
