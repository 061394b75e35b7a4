"""The exact AU multiplier search of the w-step (``mu_update="bisection"``).

Part of :mod:`skyshare.solvers.wstep` (its module docstring describes both phases): projected
Newton on rho_l(mu)^(-1/2) = I_max,l^(-1/2) over the active AUs with the Jacobian of
:func:`_rho_jacobian`, then, if needed, a cyclic safeguarded-Newton bisection per AU
(:func:`_exact_multipliers`).
"""

from __future__ import annotations

import math

import torch

from skyshare.solvers.wstep_eta import _Point, per_bs_sum


def _small_inverse(A: torch.Tensor) -> torch.Tensor:
    """Inverse of a batch of small (L, L) matrices; closed form for L <= 2 (cheaper than LAPACK).

    A singular matrix (the Jacobian has rank <= M, e.g. one antenna and several AUs) gives
    non-finite entries instead of an exception, so that its Newton step is dropped as unusable
    and the per-AU bisection takes over."""
    L = A.shape[-1]
    if L == 1:
        return 1.0 / A
    if L == 2:
        a, b, c, d = A[..., 0, 0], A[..., 0, 1], A[..., 1, 0], A[..., 1, 1]
        adjugate = torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2)
        return adjugate / (a * d - b * c)[..., None, None]
    inverse, info = torch.linalg.inv_ex(A)
    return torch.where((info != 0)[..., None, None], math.nan, inverse)


def _rho_jacobian(point: _Point) -> torch.Tensor:
    """J_lj = d rho_l / d mu_j along the path eta(mu) that keeps active (2b) tight: (B, L, L).

    J is the Hessian of the reduced dual (symmetric, negative semidefinite). In the eigenbasis of
    D_k = A_k + eta I, dx_k/dmu_j = -Delta gamma_j a_kj and dx_k/deta = -Delta x_k, hence

        d rho_l/d mu_j (eta fixed) = -2 Re sum_k conj(a_kl) R_k,lj a_kj,
        X_nl = d rho_l/d eta_n = d P_n/d mu_l = -2 Re sum_{k in K_n} conj(a_kl) q_kl,

    and where (2b) is active at BS n, eta_n moves by -(dP_n/dmu_j)/(dP_n/deta_n), which adds
    X_nl X_nj / |dP_n/deta_n| to J_lj.
    """
    a, basis = point.a, point.basis
    partial = -2.0 * (a.conj()[..., :, None] * point.R * a[..., None, :]).real.sum(1)
    cross = -2.0 * per_bs_sum((a.conj() * point.q).real, basis.serving, basis.n_bs)  # (B, N, L)
    slope = (-point.trial.dpower_deta).clamp_min(torch.finfo(point.eta.dtype).tiny)
    weight = torch.where(point.eta > point.floor, 1.0 / slope, 0.0)  # (B, N)
    return partial + (cross * weight[..., None]).transpose(1, 2) @ cross


def _kkt_interference(rho, mu, i_max, constrained, tol):
    """(B, L) bool: complementary slackness of (2c) within ``tol`` (relative)."""
    tight = (rho - i_max).abs() <= tol * i_max
    slack_unpriced = (mu == 0) & (rho <= i_max * (1 + tol))
    return tight | slack_unpriced | ~constrained


def _exact_multipliers(
    evaluate,
    point: _Point,
    i_max: torch.Tensor,
    constrained: torch.Tensor,
    mu_ref: torch.Tensor,
    *,
    interference_tol: float,
    max_joint: int,
    max_sweeps: int,
    max_trials: int,
    bracket_growth: float,
) -> tuple[_Point, int]:
    """The ``"bisection"`` mu search (module docstring). Returns the final point and #trials."""
    B, L = point.mu.shape
    mu = point.mu
    trials = 1
    tiny = torch.finfo(mu.dtype).tiny
    eye = torch.eye(L, dtype=mu.dtype, device=mu.device)
    # Phase 1: projected Newton on F = rho^(-1/2) - I_max^(-1/2) over the active AUs.
    for _ in range(max_joint):
        ok = _kkt_interference(point.rho, mu, i_max, constrained, interference_tol)
        if bool(ok.all()):
            return point, trials
        rho = point.rho.clamp_min(tiny)
        jacobian = -0.5 * rho.pow(-1.5)[..., None] * _rho_jacobian(point)
        active = constrained & ((mu > 0) | (rho > i_max))
        system = torch.where(active[..., :, None] & active[..., None, :], jacobian, eye)
        rhs = torch.where(active, i_max.rsqrt() - rho.rsqrt(), 0.0)
        step = (_small_inverse(system) @ rhs[..., None]).squeeze(-1)
        usable = torch.isfinite(step).all(-1, keepdim=True) & ~ok.all(-1, keepdim=True)
        mu = torch.where(usable, (mu + step.nan_to_num(0.0)).clamp_min(0.0), mu)
        point = evaluate(mu, point.eta)
        trials += 1
    # Phase 2 (fallback): cyclic safeguarded-Newton bisection, one AU at a time.
    inf = torch.full((B,), math.inf, dtype=mu.dtype, device=mu.device)
    for _ in range(max_sweeps):
        if bool(_kkt_interference(point.rho, mu, i_max, constrained, interference_tol).all()):
            break
        for l in range(L):
            limit = i_max[:, l]
            m = mu[:, l]
            above = point.rho[:, l] > limit
            lo = torch.where(above, m, torch.zeros_like(m))  # largest mu_l known with rho > I
            hi = torch.where(above, inf, m)  # smallest mu_l known with rho <= I
            zero_known = above | (m == 0)  # rho_l(0) > I_max is known, or we are at 0
            last_step = torch.full_like(m, math.inf)
            for _ in range(max_trials):
                rho = point.rho[:, l].clamp_min(tiny)
                done = _kkt_interference(rho, m, limit, constrained[:, l], interference_tol)
                done = done | (torch.isfinite(hi) & (hi - lo <= 1e-13 * hi))
                if bool(done.all()):
                    break
                # Newton on f(mu_l) = rho_l^(-1/2) - I_max^(-1/2) (increasing), kept when it
                # falls inside the bracket and at least halves the step before last.
                slope = _rho_jacobian(point)[:, l, l].clamp_max(0.0)
                newton = m - (rho.rsqrt() - limit.rsqrt()) / (-0.5 * rho.pow(-1.5) * slope)
                useful = (
                    torch.isfinite(newton)
                    & (newton > lo)
                    & (newton < hi)
                    & ((newton - m).abs() <= 0.5 * last_step)
                )
                expand = torch.maximum(lo, mu_ref[:, l]) * bracket_growth
                down = torch.where(zero_known, hi / bracket_growth, torch.zeros_like(hi))
                bisect = torch.where(lo > 0, torch.sqrt(lo * hi), down)
                candidate = torch.where(
                    useful, newton, torch.where(torch.isinf(hi), expand, bisect)
                )
                candidate = torch.where(done, m, candidate)
                last_step = torch.where(useful, (candidate - m).abs(), last_step)
                zero_known = zero_known | (candidate == 0)
                mu = torch.cat([mu[:, :l], candidate[:, None], mu[:, l + 1 :]], 1)
                point = evaluate(mu, point.eta)
                trials += 1
                m = candidate
                above = point.rho[:, l] > limit
                lo = torch.where(above & ~done, torch.maximum(lo, m), lo)
                hi = torch.where(~above & ~done, torch.minimum(hi, m), hi)
    return point, trials
