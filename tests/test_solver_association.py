"""User association (SC, DCD = seed 000 Algorithm 1) and the Newton power control of Shen & Yu.

References computed independently here: explicit loops for SC and the dual objective, a
brute-force grid scan of line 6, the primal objective of [16] and weak duality, KKT conditions
of the power control with autograd on a utility written out in this file.
"""

import math

import pytest
import torch

from skyshare.errors import ConfigError, ShapeError
from skyshare.scenarios import CatnScenario
from skyshare.solvers.association_dcd import (
    associate_dcd,
    dcd_price_update,
    dcd_utility,
    dual_coordinate_descent,
    dual_objective,
    optimal_nu,
    price_association,
)
from skyshare.solvers.association_sc import associate_sc
from skyshare.solvers.power_control import (
    network_utility,
    newton_power_control,
    utility_derivatives,
)

F64 = torch.float64


def _cn(g, *shape):
    return torch.randn(*shape, generator=g, dtype=torch.complex128)


def _strength_loop(H):
    """||h_{n,k}||^2 by explicit loops: (B, K, N, M) -> nested lists."""
    B, K, N, M = H.shape
    return [
        [
            [sum(abs(complex(H[b, k, n, m])) ** 2 for m in range(M)) for n in range(N)]
            for k in range(K)
        ]
        for b in range(B)
    ]


def _primal(utility, serving):
    """Objective of [16] with equal time sharing: sum_k u_{rho_k,k} - sum_n |K_n| log |K_n|."""
    B, K, N = utility.shape
    out = []
    for b in range(B):
        total = sum(float(utility[b, k, serving[b, k]]) for k in range(K))
        for n in range(N):
            load = int((serving[b] == n).sum())
            total -= load * math.log(load) if load > 0 else 0.0
        out.append(total)
    return torch.tensor(out, dtype=F64)


def _crowded_channels(seed=0, B=4, per_pico=3, n_pico=3, macro=4.0, pico=2.0, leak=0.05):
    """(B, K, N, 1) channels of a crowded macro cell with N - 1 = ``n_pico`` small BSs.

    Strengths in noise units, each times 1 + U(0, 0.2): ``macro`` from BS 0 to every user,
    ``pico`` from small BS 1 + (k mod n_pico) to user k and ``leak`` from the other small BSs.
    With macro > pico, SC puts every user on BS 0.
    """
    g = torch.Generator().manual_seed(seed)
    K, N = per_pico * n_pico, n_pico + 1
    strength = torch.full((B, K, N), leak, dtype=F64)
    strength[:, :, 0] = macro
    strength[:, torch.arange(K), 1 + torch.arange(K) % n_pico] = pico
    strength = strength * (1 + 0.2 * torch.rand(B, K, N, generator=g, dtype=F64))
    phase = torch.exp(2j * math.pi * torch.rand(B, K, N, generator=g, dtype=F64))
    return (strength.sqrt() * phase)[..., None]


# ------------------------------------------------------------------------------------------------
# SC
# ------------------------------------------------------------------------------------------------


def test_sc_picks_the_strongest_channel_like_a_loop():
    g = torch.Generator().manual_seed(1)
    B, K, N, M = 3, 6, 4, 3
    H = _cn(g, B, K, N, M)
    result = associate_sc(H, p_max=20.0)
    strength = _strength_loop(H)
    for b in range(B):
        for k in range(K):
            best = max(range(N), key=lambda n, b=b, k=k: strength[b][k][n])
            assert int(result.serving[b, k]) == best
        for n in range(N):
            assert int(result.loads[b, n]) == sum(int(result.serving[b, k]) == n for k in range(K))
    assert result.loads.sum(-1).tolist() == [K] * B
    assert torch.equal(result.bs_power, torch.full((B, N), 20.0, dtype=F64))
    assert result.dual_trace.shape == (B, 0) and bool(result.converged.all())


def test_sc_rejects_bad_arguments():
    H = torch.zeros(1, 2, 3, 4, dtype=torch.complex64)
    with pytest.raises(ShapeError):
        associate_sc(H.real, p_max=1.0)
    with pytest.raises(ConfigError):
        associate_sc(H, p_max=0.0)
    with pytest.raises(ShapeError):
        associate_sc(H, p_max=torch.ones(5))


# ------------------------------------------------------------------------------------------------
# DCD building blocks
# ------------------------------------------------------------------------------------------------


def test_dcd_utility_matches_formula():
    g = torch.Generator().manual_seed(2)
    strength = torch.rand(1, 3, 3, generator=g, dtype=F64) * 10
    power = torch.tensor([[2.0, 0.5, 1.0]], dtype=F64)
    u = dcd_utility(strength, power, 16)
    for k in range(3):
        for n in range(3):
            s = strength[0, k].tolist()
            interference = sum(s[m] * power[0, m].item() for m in range(3) if m != n)
            sinr = s[n] * power[0, n].item() / (interference + 1.0)
            assert float(u[0, k, n]) == pytest.approx(math.log(16 * math.log2(1 + sinr)), rel=1e-12)


def test_dual_objective_matches_loop():
    g = torch.Generator().manual_seed(3)
    B, K, N = 2, 5, 3
    u = torch.randn(B, K, N, generator=g, dtype=F64)
    mu = torch.randn(B, N, generator=g, dtype=F64)
    nu = torch.randn(B, generator=g, dtype=F64)
    value = dual_objective(u, mu, nu)
    for b in range(B):
        expected = sum(max(float(u[b, k, n] - mu[b, n]) for n in range(N)) for k in range(K))
        expected += sum(math.exp(float(mu[b, n] - nu[b]) - 1) for n in range(N)) + float(nu[b]) * K
        assert float(value[b]) == pytest.approx(expected, rel=1e-12)
    # line 8: nu minimises g for fixed mu (derivative K - sum exp(mu - nu - 1) = 0)
    best_nu = optimal_nu(mu, K)
    assert torch.allclose(
        torch.exp(mu - best_nu[:, None] - 1).sum(-1), torch.full((B,), K, dtype=F64)
    )


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_line6_closed_form_matches_grid_scan(seed):
    """sup{mu : exp(mu - nu - 1) <= |U_n(mu)|} by scanning mu on a fine grid."""
    g = torch.Generator().manual_seed(seed)
    K, N = 4, 3
    u = torch.randn(1, K, N, generator=g, dtype=F64)
    mu = torch.randn(1, N, generator=g, dtype=F64) * 0.5
    nu = torch.randn(1, generator=g, dtype=F64) * 0.5 - 1.0
    step = 1e-3
    grid = torch.arange(-8.0, 8.0, step, dtype=F64)  # (G,)
    for n in range(N):
        closed = float(dcd_price_update(u, mu, nu, n)[0])
        # |U_n(mu)| straight from its definition: u_{n,k} - mu = max_m (u_{m,k} - mu_m).
        prices = mu[0].expand(len(grid), N).clone()
        prices[:, n] = grid
        adjusted = u[0][None] - prices[:, None, :]  # (G, K, N)
        count = (adjusted[:, :, n] >= adjusted.amax(-1)).sum(-1)  # (G,)
        feasible = torch.exp(grid - nu[0] - 1) <= count
        sup_on_grid = float(grid[feasible].max())
        assert sup_on_grid <= closed + 1e-12
        assert closed - sup_on_grid <= step
        # and it minimises g over mu_n (exact coordinate descent)
        nus = nu.expand(len(grid))
        g_grid = adjusted.amax(-1).sum(-1) + torch.exp(prices - nus[:, None] - 1).sum(-1) + nus * K
        at_closed = mu.clone()
        at_closed[0, n] = closed
        assert float(dual_objective(u, at_closed, nu)[0]) <= float(g_grid.min()) + 1e-12


def test_line6_single_bs_takes_everyone():
    u = torch.randn(2, 5, 1, generator=torch.Generator().manual_seed(4), dtype=F64)
    nu = torch.tensor([0.3, -1.0], dtype=F64)
    price = dcd_price_update(u, torch.zeros(2, 1, dtype=F64), nu, 0)
    assert torch.allclose(price, nu + 1 + math.log(5))  # exp(mu - nu - 1) = K


# ------------------------------------------------------------------------------------------------
# DCD
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dual_objective_never_increases(seed):
    g = torch.Generator().manual_seed(seed)
    B, K, N = 6, 10, 4
    u = torch.randn(B, K, N, generator=g, dtype=F64) + torch.rand(1, 1, N, generator=g, dtype=F64)
    result = dual_coordinate_descent(u, tol=1e-12, max_iter=200)
    start = dual_objective(u, torch.zeros(B, N, dtype=F64), optimal_nu(torch.zeros(B, N), K))
    trace = torch.cat([start[:, None], result.dual_trace], -1)
    assert bool((trace.diff(dim=-1) <= 1e-12).all())
    assert result.iterations >= 2 and bool(result.converged.all())
    # a fixed point of the sweep: line 8 holds and line 6 no longer moves any price
    assert torch.allclose(result.nu, optimal_nu(result.mu, K), atol=1e-12)
    for n in range(N):
        assert torch.allclose(
            dcd_price_update(u, result.mu, result.nu, n), result.mu[:, n], atol=1e-6
        )
    # weak duality: the (relaxed) dual bounds the primal objective of any association
    assert bool((result.dual_trace[:, -1] >= _primal(u, result.serving) - 1e-9).all())


def test_crowded_cell_is_balanced_versus_sc():
    H = _crowded_channels()
    B, K, N, _ = H.shape
    sc = associate_sc(H, p_max=1.0)
    assert bool((sc.loads[:, 0] == K).all())  # SC: everyone on the strong BS
    for power_control in (False, True):
        dcd = associate_dcd(H, p_max=1.0, power_control=power_control)
        assert bool((dcd.loads.amax(-1) < sc.loads.amax(-1)).all())
        assert bool(((dcd.loads > 0).sum(-1) > (sc.loads > 0).sum(-1)).all())
        assert dcd.loads.sum(-1).tolist() == [K] * B and bool(dcd.converged.all())
    # ... and reaches the larger proportional-fair objective of [16]
    strength = H.abs().square().sum(-1)
    full_power = torch.ones(B, N, dtype=F64)
    u_sc = dcd_utility(strength, full_power, 1)
    dcd = associate_dcd(H, p_max=1.0, power_control=False)
    assert bool((_primal(u_sc, dcd.serving) > _primal(u_sc, sc.serving)).all())
    joint = associate_dcd(H, p_max=1.0)
    u_joint = dcd_utility(strength, joint.bs_power, 1)
    assert bool((_primal(u_joint, joint.serving) >= _primal(u_sc, dcd.serving) - 1e-9).all())


def test_identical_bss_with_evenly_spread_users_are_balanced():
    """Each of 3 identical BSs is the strongest for 4 of the 12 users."""
    g = torch.Generator().manual_seed(5)
    B, N, per = 3, 3, 4
    K = N * per
    strength = torch.ones(B, K, N, dtype=F64)
    strength[:, torch.arange(K), torch.arange(K) % N] = 30.0
    strength = strength * (1 + 0.05 * torch.rand(B, K, N, generator=g, dtype=F64))
    H = strength.sqrt().to(torch.complex128)[..., None]  # M = 1
    for power_control in (False, True):
        result = associate_dcd(H, p_max=1.0, power_control=power_control)
        assert result.loads.tolist() == [[per] * N] * B


def test_final_association_is_argmax_of_utility_minus_price():
    g = torch.Generator().manual_seed(6)
    u = torch.randn(5, 9, 4, generator=g, dtype=F64)
    u[:, :, 1] += 1.5  # a popular BS, so that prices matter
    result = dual_coordinate_descent(u, tol=1e-12)
    adjusted = u - result.mu[:, None, :]
    chosen = adjusted.gather(2, result.serving[..., None]).squeeze(-1)
    assert bool((chosen >= adjusted.amax(-1) - 1e-5).all())
    assert torch.equal(result.serving, price_association(u, result.mu))


def test_zero_prices_and_single_user_reduce_to_sc():
    g = torch.Generator().manual_seed(7)
    H = _cn(g, 20, 6, 5, 2)
    B, _, N, M = H.shape
    # with all prices zero, argmax_n (u - mu) = argmax_n SINR = argmax_n ||h||^2 at equal powers
    u = dcd_utility(H.abs().square().sum(-1), torch.full((B, N), 3.0, dtype=F64), M)
    sc = associate_sc(H, p_max=3.0)
    assert torch.equal(price_association(u, torch.zeros(B, N, dtype=F64)), sc.serving)
    # K = 1: DCD equals SC (with and without power control)
    single = H[:, :1]
    sc = associate_sc(single, p_max=3.0)
    for power_control in (False, True):
        assert torch.equal(
            associate_dcd(single, p_max=3.0, power_control=power_control).serving, sc.serving
        )


def test_paper_network_dcd_with_power_control():
    scenario = CatnScenario.from_preset("paper", batch_size=2)
    H = scenario.reset(seed=0).H
    result = associate_dcd(H, p_max=20.0, n_antennas=16)
    B, K, _, _ = H.shape
    assert result.serving.shape == (B, K) and result.loads.sum(-1).tolist() == [K] * B
    assert bool(result.converged.all())
    assert bool(((result.bs_power > 0) & (result.bs_power <= 20.0 * (1 + 1e-6))).all())
    assert result.dual_trace.shape == (B, result.iterations)
    assert result.wall_time_s > 0
    # The returned pair is a fixed point of the joint scheme. (i) DCD run once at the returned
    # powers gives the returned association.
    fixed = associate_dcd(H, p_max=20.0, n_antennas=16, bs_power=result.bs_power,
                          power_control=False)  # fmt: skip
    assert torch.equal(fixed.serving, result.serving)
    # (ii) The powers are a KKT point of the utility of that association on [q_min, P_max]^N,
    # the gradient from autograd on the utility written out in this file (measured: gradient
    # 3.6e-5 and 5.6e-5 at the two BSs at P_max, |q dU/dq| <= 2.2e-7 at the 12 interior ones;
    # the powers are float32).
    strength = H.abs().square().sum(-1).double()
    q = result.bs_power.double().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(_utility_by_hand(strength, result.serving, q).sum(), q)
    q = q.detach()
    at_top = q >= 20.0 * (1 - 1e-6)
    interior = ~at_top & (q > 20.0 * 1e-6 * (1 + 1e-3))
    assert int(interior.sum()) >= B  # the stationarity check below is not vacuous
    assert bool((grad[at_top] >= -1e-8).all())
    assert bool(((q * grad).abs()[interior] <= 5e-6).all()), (q * grad)[interior]
    # (iii) Weak duality for the final DCD run: its dual value bounds the primal objective of
    # [16] at the returned powers (measured equal to float32 rounding: no duality gap here).
    u = dcd_utility(strength, q, 16)
    primal = _primal(u, result.serving)
    assert bool((result.dual_trace[:, -1].double() >= primal * (1 - 1e-6)).all())
    # ... and that objective is above SC's at full power (measured 62.24, 62.01 against 61.04,
    # 60.68 nats; DCD keeps SC's association on these drops, the gain is the power control's).
    sc = associate_sc(H, p_max=20.0)
    u_sc = dcd_utility(strength, torch.full((B, strength.shape[-1]), 20.0, dtype=F64), 16)
    assert bool((primal > _primal(u_sc, sc.serving) + 0.5).all())


def test_batch_equals_instances_and_is_deterministic():
    H = _crowded_channels(seed=8, B=5, pico=3.0)
    for power_control in (False, True):
        batch = associate_dcd(H, p_max=1.0, power_control=power_control)
        again = associate_dcd(H, p_max=1.0, power_control=power_control)
        assert torch.equal(batch.serving, again.serving)
        assert torch.equal(batch.bs_power, again.bs_power)
        assert torch.equal(batch.dual_trace, again.dual_trace)
        for b in range(H.shape[0]):
            one = associate_dcd(H[b : b + 1], p_max=1.0, power_control=power_control)
            assert torch.equal(one.serving, batch.serving[b : b + 1])
            assert torch.allclose(one.bs_power, batch.bs_power[b : b + 1], rtol=1e-9)
            if not power_control:
                T = one.dual_trace.shape[1]
                assert torch.allclose(one.dual_trace, batch.dual_trace[b : b + 1, :T], rtol=1e-12)


def test_dcd_rejects_bad_arguments():
    H = torch.ones(1, 2, 3, 1, dtype=torch.complex64)
    with pytest.raises(ShapeError):
        associate_dcd(H.real, p_max=1.0)
    with pytest.raises(ConfigError):
        associate_dcd(H, p_max=-1.0)
    with pytest.raises(ConfigError):
        associate_dcd(H, p_max=1.0, outer_iter=0)
    with pytest.raises(ShapeError):
        associate_dcd(H, p_max=1.0, bs_power=torch.ones(2, 3))
    with pytest.raises(ConfigError):
        dual_coordinate_descent(torch.zeros(1, 2, 3), tol=0.0)


# ------------------------------------------------------------------------------------------------
# Power control
# ------------------------------------------------------------------------------------------------


def _utility_by_hand(strength, serving, power):
    """sum_k log(log2(1 + SINR_k)) written out with plain tensor operations (autograd-able)."""
    B, K, N = strength.shape
    total = []
    for b in range(B):
        value = 0.0
        for k in range(K):
            n = int(serving[b, k])
            others = [m for m in range(N) if m != n]
            signal = strength[b, k, n] * power[b, n]
            interference = (strength[b, k, others] * power[b, others]).sum()
            value = value + torch.log(torch.log2(1 + signal / (interference + 1.0)))
        total.append(value)
    return torch.stack(total)


def _random_instance(seed, B=3, K=8, N=3):
    g = torch.Generator().manual_seed(seed)
    strength = torch.rand(B, K, N, generator=g, dtype=F64) * 20
    serving = torch.randint(0, N, (B, K), generator=g)
    serving[:, :N] = torch.arange(N)  # every BS serves someone
    return strength, serving


def test_single_bs_transmits_at_full_power():
    strength, serving = _random_instance(9, N=1)
    result = newton_power_control(
        strength, serving, 5.0, power0=torch.full((3, 1), 0.01), full_output=True
    )
    assert torch.allclose(result.power, torch.full((3, 1), 5.0, dtype=F64))
    assert bool(result.converged.all())


def test_derivatives_match_autograd():
    strength, serving = _random_instance(10, B=2, K=6, N=3)
    power = torch.tensor([[1.0, 0.3, 2.0], [0.2, 0.7, 1.5]], dtype=F64)
    utility, gradient, hessian = utility_derivatives(strength, serving, power)

    def by_log_power(x):
        return _utility_by_hand(strength, serving, x.exp()).sum()

    x = power.log()
    assert torch.allclose(utility, _utility_by_hand(strength, serving, power), rtol=1e-12)
    assert torch.allclose(network_utility(strength, serving, power), utility, rtol=1e-12)
    x_var = x.clone().requires_grad_(True)
    (autograd_gradient,) = torch.autograd.grad(by_log_power(x_var), x_var)
    assert torch.allclose(gradient, autograd_gradient, rtol=1e-9, atol=1e-12)
    for b in range(2):

        def one(xb, b=b):
            return _utility_by_hand(strength[b : b + 1], serving[b : b + 1], xb.exp()[None])[0]

        full = torch.autograd.functional.hessian(one, x[b])
        assert torch.allclose(hessian[b], full, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("variable", ["log_power", "power"])
def test_newton_reaches_a_kkt_point_monotonically(variable):
    strength, serving = _random_instance(11, B=4, K=8, N=3)
    p_max, floor = 2.0, 1e-6
    serving[0] = 0  # instance 0: BSs 1 and 2 serve nobody and should switch off
    result = newton_power_control(
        strength, serving, p_max, tol=1e-10, max_iter=100, variable=variable,
        min_power_fraction=floor, full_output=True,
    )  # fmt: skip
    q = result.power
    assert bool(result.converged.all())
    assert bool((result.utility_trace.diff(dim=-1) >= -1e-12).all())
    assert bool(((q >= p_max * floor * (1 - 1e-9)) & (q <= p_max * (1 + 1e-12))).all())
    assert torch.allclose(q[0, 1:], torch.full((2,), p_max * floor, dtype=F64))
    # KKT of max U(q) on [q_min, P_max]^N with the gradient from autograd
    q_var = q.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(_utility_by_hand(strength, serving, q_var).sum(), q_var)
    at_top = q >= p_max * (1 - 1e-9)
    at_bottom = q <= p_max * floor * (1 + 1e-6)
    interior = ~(at_top | at_bottom)
    assert bool((grad[at_top] >= -1e-8).all())
    assert bool((grad[at_bottom] <= 1e-8).all())
    assert bool(((q * grad).abs()[interior] <= 1e-6).all())
    assert torch.allclose(result.utility_trace[:, -1], _utility_by_hand(strength, serving, q))


def test_power_control_batch_equals_instances():
    strength, serving = _random_instance(12, B=4, K=7, N=3)
    batch = newton_power_control(strength, serving, 1.0)
    for b in range(4):
        one = newton_power_control(strength[b : b + 1], serving[b : b + 1], 1.0)
        assert torch.allclose(one, batch[b : b + 1], rtol=1e-9)


def test_power_control_rejects_bad_arguments():
    strength, serving = _random_instance(13)
    with pytest.raises(ConfigError):
        newton_power_control(strength, serving, 1.0, variable="dB")
    with pytest.raises(ConfigError):
        newton_power_control(strength, serving, 1.0, min_power_fraction=1.5)
    with pytest.raises(ShapeError):
        newton_power_control(strength, serving[:, :2], 1.0)
    with pytest.raises(ShapeError):
        newton_power_control(strength, serving + 5, 1.0)
