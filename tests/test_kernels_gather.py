"""The gathered (K^2 M) gain kernels equal the all-BS (N K^2 M) formulas they replace.

The reference is written out here: every BS's gain to every receiver for every beam by
``einsum``, then the serving BS picked by advanced indexing. Each faster path is compared with
it, and every caller's output is compared between the two paths (the shape rule
``gather_pays`` forced either way).
"""

import math

import pytest
import torch

from skyshare import metrics
from skyshare.solvers import wstep_eta
from skyshare.solvers.problem import BeamformingProblem
from skyshare.solvers.wmmse_lite import _ServedGains, wmmse_lite
from skyshare.solvers.wstep import bs_covariances, solve_w_step

SHAPES = [  # (B, R, N, M, J)
    (3, 5, 1, 1, 5),  # one BS, SISO
    (2, 4, 3, 1, 6),  # SISO, J != R
    (2, 6, 5, 1, 6),
    (2, 4, 3, 5, 2),  # J < R
    (1, 7, 1, 3, 7),  # one BS, MISO
    (2, 9, 7, 16, 7),  # seed-000-like, J != R
    (2, 3, 13, 4, 5),
]
DTYPES = [torch.complex64, torch.complex128]


def crandn(*shape, generator, dtype):
    real = torch.float32 if dtype == torch.complex64 else torch.float64
    parts = torch.randn(*shape, 2, generator=generator, dtype=real)
    return torch.view_as_complex(parts) / math.sqrt(2.0)


def instance(B, R, N, M, J, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    H = crandn(B, R, N, M, generator=g, dtype=dtype)
    w = crandn(B, J, M, generator=g, dtype=dtype)
    serving = torch.randint(0, N, (B, J), generator=g)
    return H, w, serving


def reference_gains(H, w, serving):
    """Every BS's gain to every receiver for every beam, then keep n = serving_j: (B, R, J)."""
    B, R, _, _ = H.shape
    J = w.shape[1]
    every = torch.einsum("brnm,bjm->brnj", H.conj(), w)
    b = torch.arange(B)[:, None, None]
    r = torch.arange(R)[None, :, None]
    j = torch.arange(J)[None, None, :]
    return every[b, r, serving[:, None, :], j]


def tolerance(dtype):
    return {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.complex64 else {}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("method", metrics.GAIN_METHODS)
def test_associated_gains_every_method_equals_reference(shape, dtype, method):
    H, w, serving = instance(*shape, dtype)
    A = metrics.associated_gains(H, w, serving, method=method)
    assert A.shape == (shape[0], shape[1], shape[4]) and A.dtype == dtype
    assert A.is_contiguous() and not A.is_conj()
    torch.testing.assert_close(A, reference_gains(H, w, serving), **tolerance(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_served_channels_pick_the_serving_bs(shape, dtype):
    H, _, serving = instance(*shape, dtype)
    B, R, _, M = H.shape
    Hs = metrics.served_channels(H, serving)
    assert Hs.shape == (B, shape[4], R, M)
    expected = H[torch.arange(B)[:, None, None], torch.arange(R)[None, None, :], serving[..., None]]
    assert torch.equal(Hs, expected)


def test_associated_gains_gradients_agree():
    H, w, serving = instance(2, 4, 6, 3, 5, torch.complex128)
    grads = []
    for method in ("gather", "all_bs"):
        wr = w.clone().requires_grad_(True)
        metrics.associated_gains(H, wr, serving, method=method).abs().square().sum().backward()
        grads.append(wr.grad)
    torch.testing.assert_close(grads[0], grads[1])


def test_associated_gains_rejects_unknown_method():
    H, w, serving = instance(1, 2, 2, 1, 2, torch.complex64)
    with pytest.raises(ValueError):
        metrics.associated_gains(H, w, serving, method="loop")


def test_shape_rule():
    assert metrics.gather_pays(30, 1) and metrics.gather_pays(1, 1)  # SISO: always gather
    assert not metrics.gather_pays(7, 16)  # the seed-000 network: the GEMM
    assert metrics.gather_pays(13, 16) and metrics.gather_pays(61, 256)
    assert metrics.gather_pays(7, 16, reused=True) and not metrics.gather_pays(3, 16, reused=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N", [1, 2, 5, 7])
@pytest.mark.parametrize("M", [1, 4])
def test_wmmse_lite_served_gains_equal_reference(N, M, dtype, monkeypatch):
    H, w, serving = instance(2, 8, N, M, 6, dtype, seed=N + M)
    for forced in (True, False):
        monkeypatch.setattr(metrics, "gather_pays", lambda *a, forced=forced, **k: forced)
        gains = _ServedGains(H, serving)
        assert gains.gather == forced
        torch.testing.assert_close(gains(w), reference_gains(H, w, serving), **tolerance(dtype))


def random_problem(B=2, K=6, N=3, M=4, L=1, seed=0, i_max=1e30):
    g = torch.Generator().manual_seed(seed)
    H = crandn(B, K, N, M, generator=g, dtype=torch.complex128) * 3.0
    G = crandn(B, L, N, M, generator=g, dtype=torch.complex128)
    serving = torch.randint(0, N, (B, K), generator=g)
    return BeamformingProblem(H=H, G=G, serving=serving, p_max=10.0, i_max=i_max)


@pytest.mark.parametrize(
    ("N", "M", "L", "i_max"), [(3, 4, 1, 1e30), (5, 1, 0, 1e30), (1, 3, 2, 0.5)]
)
def test_wmmse_lite_unchanged_by_path(N, M, L, i_max, monkeypatch):
    problem = random_problem(N=N, M=M, L=L, i_max=i_max, seed=N)
    results = []
    for forced in (True, False):
        monkeypatch.setattr(metrics, "gather_pays", lambda *a, forced=forced, **k: forced)
        results.append(wmmse_lite(problem, max_iter=15))
    torch.testing.assert_close(results[0].w, results[1].w)
    torch.testing.assert_close(results[0].objective_trace, results[1].objective_trace)


@pytest.mark.parametrize("mu_update", ["bisection", "subgradient"])
@pytest.mark.parametrize(("N", "M"), [(1, 3), (3, 4), (4, 1)])
def test_w_step_unchanged_by_path(N, M, mu_update, monkeypatch):
    problem = random_problem(N=N, M=M, L=2, i_max=0.3, seed=10 + N)
    g = torch.Generator().manual_seed(1)
    alpha = torch.rand(2, 6, generator=g, dtype=torch.float64)
    b = crandn(2, 6, M, generator=g, dtype=torch.complex128)
    Q = bs_covariances(problem.H, alpha)
    results = []
    for forced in (True, False):
        monkeypatch.setattr(wstep_eta, "gather_pays", lambda *a, forced=forced, **k: forced)
        results.append(solve_w_step(problem, Q, b, shared_by_bs=True, mu_update=mu_update))
    for name in ("w", "eta", "mu", "bs_power", "au_interference"):
        torch.testing.assert_close(getattr(results[0], name), getattr(results[1], name))


def test_metrics_callers_unchanged_by_path(monkeypatch):
    """primary_interference and sinr through associated_gains, SISO and MISO."""
    for N, M in [(4, 1), (3, 4)]:
        H, w, serving = instance(2, 6, N, M, 6, torch.complex128, seed=N)
        G = instance(2, 2, N, M, 1, torch.complex128, seed=N + 1)[0]
        out = []
        for forced in (True, False):
            monkeypatch.setattr(metrics, "gather_pays", lambda *a, forced=forced, **k: forced)
            rate = metrics.sinr(metrics.associated_gains(H, w, serving)).rate
            out.append((rate, metrics.primary_interference(G, w, serving)))
        torch.testing.assert_close(out[0], out[1])
