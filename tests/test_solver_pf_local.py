"""PFBWD block 2 (the per-BS subproblem) and block 3: fast solver vs CVXPY, closed forms."""

import pytest
import torch

from skyshare.errors import ConfigError, ShapeError
from skyshare.solvers.pf_local import (
    LocalChannel,
    local_objective,
    local_step,
    local_step_cvxpy,
    reduce_channel,
    slack_step,
)

TIGHT = {"tol_gap_abs": 1e-11, "tol_gap_rel": 1e-11, "tol_feas": 1e-11, "tol_ktratio": 1e-9}


def random_subproblems(N, K, M, seed, scale_range=(1e-3, 1.0), d_mean=0.5):
    """Channels with ||g_k|| <= 1, targets around the reachable set, iota scales over decades."""
    gen = torch.Generator().manual_seed(seed)
    G = torch.randn(N, K, M, dtype=torch.complex128, generator=gen) / M**0.5
    G = G * torch.rand(N, K, 1, dtype=torch.float64, generator=gen)
    lo, hi = torch.log10(torch.tensor(scale_range, dtype=torch.float64))
    s = 10 ** (lo + (hi - lo) * torch.rand(N, K, dtype=torch.float64, generator=gen))
    c = 0.3 * torch.randn(N, K, dtype=torch.complex128, generator=gen)
    d = d_mean + 0.5 * torch.randn(N, K, dtype=torch.float64, generator=gen)
    return G, s, c, d


def gains(G, V):
    """E[n, k, j] = g_k^H v_j."""
    return torch.einsum("nkm,njm->nkj", G.conj(), V)


@pytest.mark.parametrize(("K", "M", "seed"), [(4, 6, 0), (5, 3, 1), (6, 6, 2)])
def test_local_step_matches_cvxpy(K, M, seed):
    G, s, c, d = random_subproblems(4, K, M, seed)
    fast = local_step(reduce_channel(G, s), c, d)
    ref = local_step_cvxpy(G, c, d, iota_scale=s, **TIGHT)
    assert bool(fast.converged.all()) and bool(ref.converged.all())
    scale = 1.0 + ref.objective.abs()
    assert torch.allclose(fast.objective, ref.objective, rtol=1e-5, atol=1e-7)
    assert ((fast.objective - ref.objective) / scale).abs().max() < 1e-5
    assert torch.allclose(fast.u, ref.u, atol=1e-5)
    assert torch.allclose(fast.iota * s, ref.iota * s, atol=1e-5)  # g units, as solved
    binding = ref.nu > 1e-6  # there the power is pinned at 1 (else u and iota still are unique)
    power = fast.V.abs().square().sum((-2, -1))
    assert torch.allclose(power[binding], torch.ones_like(power[binding]), atol=1e-6)
    assert torch.allclose(fast.nu, ref.nu, atol=1e-4 * (1 + ref.nu.abs().max()))


def test_local_step_solution_is_feasible_and_consistent():
    G, s, c, d = random_subproblems(6, 5, 8, 3, d_mean=-0.2)  # negative targets force iota >= I
    res = local_step(reduce_channel(G, s), c, d)
    E = gains(G, res.V)
    off = E - torch.diag_embed(E.diagonal(dim1=1, dim2=2))
    interference = off.abs().square().sum(-1)
    assert bool((interference <= s * res.iota * (1 + 1e-9) + 1e-15).all())
    power = res.V.abs().square().sum((-2, -1))
    assert bool((power <= 1 + 1e-9).all())
    assert torch.allclose(res.u, E.diagonal(dim1=1, dim2=2))
    assert torch.allclose(res.objective, local_objective(res.u, res.iota, c, d))


def test_reduced_form_is_exact_for_many_antennas():
    """A 64-antenna BS and its K x K reduced problem give the same answer; a zero-padded
    reduced dimension changes nothing."""
    G, s, c, d = random_subproblems(3, 4, 64, 4)
    channel = reduce_channel(G, s)
    assert channel.gains.shape == (3, 4, 4)
    full = local_step(channel, c, d)
    padded = local_step(channel.padded(7), c, d)
    assert padded.V is None
    assert torch.allclose(full.u, padded.u, atol=1e-10)
    assert torch.allclose(full.iota, padded.iota, atol=1e-10)
    assert padded.q[..., 4:].abs().max() < 1e-10  # nothing in the padded directions
    budget = full.nu > 1e-6  # q is unique where the budget binds
    assert bool(budget.any())
    assert torch.allclose(full.q[budget], padded.q[budget][..., :4], atol=1e-8)
    # the full beamformers lie in the span of the channels
    basis = channel.basis
    projected = torch.einsum("nmr,nsr,njs->njm", basis, basis.conj(), full.V)
    assert torch.allclose(projected, full.V, atol=1e-12)


def test_warm_start_reaches_the_same_point_faster():
    G, s, c, d = random_subproblems(5, 6, 6, 5)
    channel = reduce_channel(G, s)
    cold = local_step(channel, c, d)
    moved = c * (1 + 0.01j)
    warm = local_step(channel, moved, d, mu0=cold.mu, nu0=cold.nu)
    again = local_step(channel, moved, d)
    assert torch.allclose(warm.u, again.u, atol=1e-8)
    assert torch.allclose(warm.iota * s, again.iota * s, atol=1e-8)
    assert warm.iterations.sum() < again.iterations.sum()


def test_batched_problems_are_independent():
    G, s, c, d = random_subproblems(4, 4, 5, 6)
    batch = local_step(reduce_channel(G, s), c, d)
    one = local_step(reduce_channel(G[2:3], s[2:3]), c[2:3], d[2:3])
    assert torch.allclose(batch.u[2:3], one.u, atol=1e-12)
    assert torch.allclose(batch.iota[2:3], one.iota, atol=1e-12)


def test_vhetnet_scales_match_cvxpy():
    """UE units of the vHetNet (iota_scale ~ 1e-7: interference nulled to the noise floor) with
    targets asking for less interference than reachable: the fast solver converges, is
    feasible, and matches CVXPY (whose interference rows are rescaled: unscaled, Clarabel
    returned points violating them many times over)."""
    G, _, c, _ = random_subproblems(3, 4, 6, 7)
    s = 10 ** (-8 + 2 * torch.rand(3, 4, dtype=torch.float64, generator=torch.Generator()))
    d = torch.full((3, 4), -1e-2, dtype=torch.float64)
    fast = local_step(reduce_channel(G, s), c, d)
    ref = local_step_cvxpy(G, c, d, iota_scale=s, **TIGHT)
    assert bool(fast.converged.all()) and bool(ref.converged.all())
    assert ((fast.objective - ref.objective) / ref.objective).abs().max() < 1e-5
    for res, slack in ((fast, 1e-12), (ref, 1e-6)):  # CVXPY: within its absolute tolerance
        E = gains(G, res.V)
        off = E - torch.diag_embed(E.diagonal(dim1=1, dim2=2))
        interference = off.abs().square().sum(-1) / s  # iota units
        assert bool((interference <= res.iota * (1 + 1e-6) + slack).all())
    assert torch.allclose(fast.u, ref.u, atol=1e-5)


def test_slack_step_is_the_minimiser():
    """z = -(lam + y + rho gap)/(beta + rho) zeroes the gradient of
    <lam + y, z> + beta/2 |z|^2 + rho/2 |gap + z|^2, and matches CVXPY."""
    import cvxpy as cp

    gen = torch.Generator().manual_seed(8)
    lam, y, gap = (torch.randn(2, 3, 4, 3, dtype=torch.float64, generator=gen) for _ in range(3))
    beta = torch.tensor([0.7, 3.0], dtype=torch.float64)[:, None, None, None]
    rho = 2 * beta
    z = slack_step(lam, y, gap, beta, rho)
    gradient = lam + y + beta * z + rho * (gap + z)
    assert gradient.abs().max() < 1e-12
    zc = cp.Variable(z[0].numel())
    b, r = float(beta[0]), float(rho[0])
    objective = (
        (lam[0] + y[0]).flatten().numpy() @ zc
        + b / 2 * cp.sum_squares(zc)
        + r / 2 * cp.sum_squares(gap[0].flatten().numpy() + zc)
    )
    cp.Problem(cp.Minimize(objective)).solve(solver="CLARABEL")
    assert torch.allclose(z[0].flatten(), torch.as_tensor(zc.value), atol=1e-7)


def test_argument_errors():
    G, s, c, d = random_subproblems(2, 3, 4, 9)
    with pytest.raises(ShapeError):
        reduce_channel(G.real)
    with pytest.raises(ShapeError):
        reduce_channel(G, -s)
    with pytest.raises(ShapeError):
        local_step(reduce_channel(G), c[:, :2], d)
    with pytest.raises(ShapeError):
        local_step(reduce_channel(G), c, d.to(torch.complex128))
    with pytest.raises(ConfigError):
        local_step(reduce_channel(G), c, d, tol=0.0)
    with pytest.raises(ShapeError):
        LocalChannel(None, reduce_channel(G).gains, s).beamformers(torch.zeros(2, 3, 3))
