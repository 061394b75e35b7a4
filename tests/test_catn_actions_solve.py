"""The CATN beamformer solve (`skyshare.envs.catn_actions`): each BS's D~ factored once and
solved for its own users (grouped by load for large batches, per-user factor gather for small
ones) equals the per-user formula ``w_k = sqrt(p_k) D~^{-1} h / ||D~^{-1} h||`` written out
with one ``torch.linalg.solve`` per user, including BSs with no users, a BS serving every
user, D~ built in batch chunks, and the complex128 re-solve of systems whose complex64 LU
factorisation fails."""

import math

import pytest
import torch

from skyshare.envs import CatnEnv, CatnEnvConfig, catn_actions
from skyshare.envs.catn_actions import _solve_own, action_parameters, beamformers
from skyshare.scenarios import CatnScenario

N, K, L, M = 7, 21, 2, 16  # the paper network's shapes


@pytest.fixture(params=["grouped", "per-user"])
def solve_path(request, monkeypatch):
    """Force either path of ``_solve_own`` whatever the instance size."""
    threshold = 0 if request.param == "grouped" else 10**9
    monkeypatch.setattr(catn_actions, "GROUPED_SOLVE_MIN_USERS", threshold)
    return request.param


def _serving(B: int, g: torch.Generator) -> torch.Tensor:
    """(B, K) associations: entry 0 puts every user on BS 3 (six BSs without users), entry 1
    leaves BSs 0 and 6 without users, the others are random (loads 0 .. ~8)."""
    serving = torch.randint(0, N, (B, K), generator=g)
    serving[0] = 3
    serving[1] = torch.randint(1, N - 1, (K,), generator=g)
    return serving


def _per_user_beamformers(par, H, G, serving, p_max):
    """The formula user by user: D~ of the serving BS summed term by term, one solve each."""
    B = H.shape[0]
    w = torch.zeros(B, K, M, dtype=H.dtype)
    eye = torch.eye(M, dtype=H.dtype)
    for b in range(B):
        for k in range(K):
            n = int(serving[b, k])
            D = par["eta"][b, n] * eye
            for i in range(K):
                h = H[b, i, n]
                D = D + par["alpha"][b, n, i] * torch.outer(h, h.conj()) / h.norm() ** 2
            for l in range(L):
                g = G[b, l, n]
                D = D + par["mu"][b, n, l] * torch.outer(g, g.conj()) / g.norm() ** 2
            x = torch.linalg.solve(D, H[b, k, n])
            power = p_max * par["q_total"][b, n] * par["q"][b, n, k]
            w[b, k] = math.sqrt(power) * x / x.norm()
    return w


@pytest.mark.parametrize("gram_chunk", [64, 2])
def test_beamformers_equal_the_per_user_formula(solve_path, gram_chunk, monkeypatch):
    """float64, random channels of spread strengths and random actions (the full range of
    alpha, mu and eta), B = 5 (D~ built in chunks of 2: a short last chunk)."""
    monkeypatch.setattr(catn_actions, "GRAM_CHUNK", gram_chunk)
    g = torch.Generator().manual_seed(0)
    B = 5
    scale = 10.0 ** torch.empty(B, K, N, 1, dtype=torch.float64).uniform_(-4, 0, generator=g)
    H = torch.randn(B, K, N, M, generator=g, dtype=torch.complex128) * scale
    G = torch.randn(B, L, N, M, generator=g, dtype=torch.complex128) * 1e-3
    serving = _serving(B, g)
    actions = torch.rand(B, N, 2 * K + L + 2, generator=g, dtype=torch.float64)
    par = action_parameters(actions, serving, CatnEnvConfig(), n_bs=N, n_au=L)
    w = beamformers(par, H, G, serving, 10.0, cdtype=torch.complex128)
    want = _per_user_beamformers(par, H, G, serving, 10.0)
    torch.testing.assert_close(w, want, rtol=1e-9, atol=1e-9)


def _hpd(S: int, g: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    A = torch.randn(S, M, 2 * M, generator=g, dtype=torch.complex128)
    return (A @ A.mH / M + 0.1 * torch.eye(M)).to(dtype)


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_solve_own_equals_one_solve_per_user(solve_path, dtype):
    """``_solve_own`` on random Hermitian positive definite systems: the same solutions as
    ``torch.linalg.solve`` of each user's own system, in both precisions (to rounding)."""
    g = torch.Generator().manual_seed(1)
    B = 6
    D = _hpd(B * N, g, dtype)
    system = (torch.arange(B)[:, None] * N + _serving(B, g)).flatten()
    rhs = torch.randn(B * K, M, generator=g, dtype=torch.complex128).to(dtype)
    got = _solve_own(D, system, rhs)
    want = torch.stack([torch.linalg.solve(D[s], r) for s, r in zip(system, rhs, strict=True)])
    assert got.shape == (B * K, M) and got.dtype == dtype
    tolerance = 1e-5 if dtype == torch.complex64 else 1e-12
    torch.testing.assert_close(got, want, rtol=tolerance, atol=tolerance)


def test_solve_own_resolves_failed_factorisations_in_complex128(solve_path):
    """Systems whose complex64 LU hits an exact zero pivot although they are positive definite
    ([[3, 1], [1, fl(1/3)]] in a 2 x 2 block: fl(1/3) - fl(1/3) * 1 = 0) are solved again in
    complex128; the other users keep their complex64 solutions."""
    g = torch.Generator().manual_seed(2)
    B = 3
    D = _hpd(B * N, g, torch.complex64)
    third = torch.tensor(1 / 3, dtype=torch.float32).item()
    for s, (i, j) in {2: (0, 1), 9: (3, 5)}.items():  # system 9 serves every user of entry 1
        D[s] = torch.eye(M)
        D[s, i, i], D[s, i, j], D[s, j, i], D[s, j, j] = 3.0, 1.0, 1.0, third
    serving = _serving(B, g)
    serving[1] = 2
    serving[0, :4] = 2
    system = (torch.arange(B)[:, None] * N + serving).flatten()
    rhs = torch.randn(B * K, M, generator=g, dtype=torch.complex64)
    info = torch.linalg.lu_factor_ex(D)[2]
    assert info.nonzero().flatten().tolist() == [2, 9]  # the precondition of the test
    failed = (system == 2) | (system == 9)
    got = _solve_own(D, system, rhs)
    wide = torch.linalg.solve(D[system].to(torch.complex128), rhs.to(torch.complex128))
    narrow = torch.linalg.solve(D[system[~failed]], rhs[~failed])
    torch.testing.assert_close(got[failed], wide[failed].to(torch.complex64))
    torch.testing.assert_close(got[~failed], narrow, rtol=1e-5, atol=1e-5)
    assert torch.isfinite(got).all()


def test_grouped_solve_env_episode_equals_the_reference(monkeypatch):
    """The env with the grouped solve forced (float64, quick network): the beamformers and
    rates of random BS actions equal the pre-optimisation implementation's."""
    from catn_reference import ReferenceCatnEnv

    monkeypatch.setattr(catn_actions, "GROUPED_SOLVE_MIN_USERS", 0)
    config = CatnScenario.config_from("quick", overrides={"n_slots": 4})
    envs = [cls(config, batch_size=3, dtype=torch.float64) for cls in (CatnEnv, ReferenceCatnEnv)]
    new, ref = envs
    torch.testing.assert_close(new.reset(seed=0), ref.reset(seed=0))
    g = torch.Generator().manual_seed(4)
    for _ in range(3):
        tu = torch.randint(0, new.N, (3, new.K), generator=g)
        tu[0] = 1  # one BS serves every user of entry 0
        torch.testing.assert_close(new.associate(tu), ref.associate(tu))
        actions = torch.rand(3, new.N, new.action_dim, generator=g, dtype=torch.float64)
        outs = [env.beamform(actions) for env in envs]
        torch.testing.assert_close(new.last_beamformers, ref.last_beamformers, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(outs[0].rates, outs[1].rates, rtol=1e-9, atol=1e-9)
