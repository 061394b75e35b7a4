"""The constrained beamformer update shared by WMMSE and direct FP (seed 000 Algorithm 2, line 5).

For fixed per-user weights and linear terms both solvers need the minimiser of the convex QCQP

    min_w  sum_k [ w_k^H Q_k w_k - 2 Re(b_k^H w_k) ]
    s.t.   sum_{k in K_n} ||w_k||^2 <= P_max,n          (2b)   (multiplier eta_n)
           sum_k |g_{rho_k,l}^H w_k|^2 <= I_max,l       (2c)   (multiplier mu_l)

with Q_k Hermitian positive semidefinite. WMMSE uses Q_k = sum_i alpha_i h_{rho_k,i} h_{rho_k,i}^H
(one matrix per BS, :func:`bs_covariances`); direct FP uses the same sum without user k's own
term (one matrix per user). The KKT conditions give (Algorithm 2, line 5)

    w_k = D_k^{-1} b_k,   D_k = A_k + eta_{rho_k} I,
    A_k = Q_k + sum_l mu_l g_{rho_k,l} g_{rho_k,l}^H,

with eta, mu >= 0 chosen so that the constraints hold with complementary slackness.

Closed forms (no generic solver). For a trial mu, one batched eigendecomposition
A_k = U_k diag(lambda_k) U_k^H (``torch.linalg.eigh``; one per BS for WMMSE, one per user for
FP). With c_k = U_k^H b_k, x_k = c_k / (lambda_k + eta) (elementwise) and w_k = U_k x_k:

    P_n(eta) = sum_{k in K_n} sum_m |c_km|^2 / (lambda_km + eta_n)^2,
    a_kl = g_{rho_k,l}^H w_k = gamma_kl^H x_k (gamma_kl = U_k^H g_{rho_k,l}),
    rho_l = sum_k |a_kl|^2.

eta search (per BS, all BSs and instances at once). P_n(eta)^(-1/2) is increasing and concave
(Moré & Sorensen, "Computing a trust region step", SIAM J. Sci. Stat. Comput. 4(3), 1983;
Nocedal & Wright, Numerical Optimization, §4.3), so Newton's method on P_n^(-1/2) =
P_max^(-1/2) converges monotonically and quadratically from the left of the root; a start on the
right (a warm start) is moved to the left by its first step. This is the safeguarded-Newton
variant of the bisection the issue asks for: it never leaves the bracket [floor, root].
eta_n stays at a floor ``eta_floor_rel * lambda_max(A_n)`` when P_n(floor) <= P_max
(complementary slackness: (2b) inactive); the floor also regularises BSs whose A is singular
(more antennas than effective users). The eta search stops within ``power_tol`` of P_max from
above; the beams are then pulled back onto P_max exactly, so (2b) holds to rounding.

mu search, two choices (``mu_update``):

* ``"subgradient"``: one projected dual step per call (the low-complexity WMMSE of seed 000 §VI
  updates mu_l by a sub-gradient step; the dual gradient of mu_l is rho_l - I_max,l):

      mu_l <- max(0, mu_l + mu_step * s_l * (sqrt(rho_l / I_max,l) - 1)),
      s_l  = 2 rho_l / |d rho_l / d mu_l|,   d rho_l / d mu_l = -2 sum_k |a_kl|^2 g^H D_k^{-1} g
                                             (eta fixed).

  The violation is measured relative to I_max (unit-free); ``sqrt(rho/I) - 1`` equals
  (rho - I)/(2 I) near the limit and stays bounded far from it. s_l carries the unit of mu: it is
  the multiplier scale at which rho_l changes by its own size (with one BS, one AU and eta fixed,
  rho(mu) = rho(0) / (1 + mu g^H A^{-1} g)^2 and mu_step = 1 lands exactly on rho = I_max).
  Cost: one eigendecomposition per call. The step is taken after the beams, so (2c) is met
  only as the outer iterations converge (the solvers rescale at the end if it is not).
* ``"bisection"``: exact multipliers for this step. Phase 1: projected Newton on
  F_l(mu) = rho_l(mu)^(-1/2) - I_max,l^(-1/2) over the AUs whose constraint is active, all AUs
  jointly (the AUs are coupled through the shared beams), with the exact Jacobian
  d rho / d mu along the path eta(mu) (the Hessian of the reduced dual, formulas in
  :func:`_rho_jacobian`). With one BS, one AU and (2b) inactive, rho^(-1/2) is affine in mu and
  Newton is exact; in practice 1-3 steps from a warm start. Phase 2, only if phase 1 has not met
  the tolerance after ``max_joint`` steps: cyclic coordinate search, each AU bracketed on a
  log-spaced bracket that grows by ``bracket_growth`` until rho_l <= I_max (rho_l is
  non-increasing in mu_l: it is minus a partial derivative of the concave dual) and shrunk by
  bisection in log space, with Newton steps on rho_l^(-1/2) accepted when they stay inside the
  bracket. mu_l = 0 when the constraint is slack at mu_l = 0. Every trial mu costs one
  eigendecomposition and one eta search.

Shapes: B instances, K TUs, N BSs, M antennas, L AUs. Use complex128 (the solvers do by default):
noise-normalised SNRs reach 1e8 in the CATN and the nulling directions sit at eigenvalues far
below the largest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from skyshare.errors import ConfigError, ShapeError
from skyshare.solvers.problem import BeamformingProblem

__all__ = [
    "MU_UPDATES",
    "WStepResult",
    "au_covariances",
    "bs_covariances",
    "own_channels",
    "per_bs_sum",
    "scale_to_interference_limit",
    "solve_w_step",
    "warm_multiplier",
    "with_dtype",
]

MU_UPDATES = ("subgradient", "bisection")


def bs_covariances(H: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Weighted TU covariances at every BS, ``C_n = sum_i alpha_i h_{n,i} h_{n,i}^H``.

    One batched matmul ``X X^H`` with ``X = [sqrt(alpha_i) h_{n,i}]_i`` (faster than the
    equivalent einsum on CPU).

    Args:
        H: (B, K, N, M) complex channels BS n -> TU i.
        alpha: (B, K) real, non-negative weights alpha_i (WMMSE: |v_i|^2).

    Returns:
        (B, N, M, M) complex Hermitian positive semidefinite.
    """
    if H.ndim != 4 or alpha.shape != H.shape[:2] or bool((alpha < 0).any()):
        raise ShapeError(
            f"expected H (B, K, N, M) and alpha (B, K) >= 0; got {tuple(H.shape)}, "
            f"{tuple(alpha.shape)}"
        )
    X = (H * alpha.sqrt().to(H.dtype)[..., None, None]).permute(0, 2, 3, 1)  # (B, N, M, K)
    return X @ X.mH


def au_covariances(G: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """AU interference term at every BS, ``sum_l mu_l g_{n,l} g_{n,l}^H``.

    Args:
        G: (B, L, N, M) complex channels BS n -> AU l.
        mu: (B, L) real, non-negative multipliers of (2c).

    Returns:
        (B, N, M, M) complex Hermitian positive semidefinite.
    """
    if G.ndim != 4 or mu.shape != G.shape[:2] or bool((mu < 0).any()):
        raise ShapeError(
            f"expected G (B, L, N, M) and mu (B, L) >= 0; got {tuple(G.shape)}, {tuple(mu.shape)}"
        )
    X = (G * mu.sqrt().to(G.dtype)[..., None, None]).permute(0, 2, 3, 1)  # (B, N, M, L)
    return X @ X.mH


def per_bs_sum(x: torch.Tensor, serving: torch.Tensor, n_bs: int) -> torch.Tensor:
    """Sum a per-user quantity over the users of each BS: (B, K[, ...]) -> (B, N[, ...])."""
    index = serving.reshape(serving.shape + (1,) * (x.ndim - 2)).expand_as(x)
    out = torch.zeros(x.shape[0], n_bs, *x.shape[2:], dtype=x.dtype, device=x.device)
    return out.scatter_add(1, index, x)


def _abs2(x: torch.Tensor) -> torch.Tensor:
    return x.real.square() + x.imag.square()


def _small_inverse(A: torch.Tensor) -> torch.Tensor:
    """Inverse of a batch of small (L, L) matrices; closed form for L <= 2 (cheaper than LAPACK)."""
    L = A.shape[-1]
    if L == 1:
        return 1.0 / A
    if L == 2:
        a, b, c, d = A[..., 0, 0], A[..., 0, 1], A[..., 1, 0], A[..., 1, 1]
        adjugate = torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2)
        return adjugate / (a * d - b * c)[..., None, None]
    return torch.linalg.inv(A)


@dataclass
class WStepResult:
    """Output of :func:`solve_w_step`.

    Attributes:
        w: (B, K, M) complex beamformers w_k = D_k^{-1} b_k (pulled back onto P_max where the
            eta search stopped a hair above it).
        eta: (B, N) power multipliers used (the floor where (2b) is inactive).
        mu: (B, L) AU multipliers: the ones used (bisection) or the next value after the
            subgradient step (subgradient).
        bs_power: (B, N) watts. au_interference: (B, L) noise units (of the returned w).
        decompositions: eigendecompositions (trial mu values) used, a cost measure.
    """

    w: torch.Tensor
    eta: torch.Tensor
    mu: torch.Tensor
    bs_power: torch.Tensor
    au_interference: torch.Tensor
    decompositions: int


class _Eigenbasis:
    """A_k = Q_k + sum_l mu_l g g^H at one trial mu, in its eigenbasis, per user.

    Attributes:
        lam: (B, K, M) eigenvalues of A_k (clamped at 0). c: (B, K, M) = U_k^H b_k.
        f0: (B, K, M) = |c|^2. gamma: (B, K, M, L) = U_k^H g_{rho_k, l} (None without AUs).
        lam_bs, f0_bs: (B, N, M) per-BS eigenvalues and summed |c|^2 (shared layout only).
        lam_max_bs: (B, N) largest eigenvalue of A at each BS.
    """

    def __init__(
        self,
        Q: torch.Tensor,
        shared_by_bs: bool,
        mu: torch.Tensor | None,
        G: torch.Tensor | None,
        b: torch.Tensor,
        serving: torch.Tensor,
        n_bs: int,
    ) -> None:
        B, K, M = b.shape
        A = Q
        if G is not None and mu is not None:
            au = au_covariances(G, mu)
            if not shared_by_bs:
                au = torch.gather(au, 1, serving[..., None, None].expand(B, K, M, M))
            A = Q + au
        lam, U = torch.linalg.eigh(A)
        lam = lam.clamp_min(0.0)  # PSD up to rounding
        self.serving = serving
        self.n_bs = n_bs
        self.shared_by_bs = shared_by_bs
        self.U = U
        self.gamma = None
        L = 0 if G is None else G.shape[1]
        if shared_by_bs:
            # One decomposition per BS: apply every U_n^H to all users' b in one matmul and
            # keep n = rho_k; beams() maps back per BS.
            self.lam_bs = lam
            self.lam = torch.gather(lam, 1, serving[..., None].expand(B, K, M))
            self.owner = torch.nn.functional.one_hot(serving, n_bs).transpose(1, 2)[:, :, None]
            c_all = U.mH @ b.transpose(1, 2)[:, None]  # (B, N, M, K)
            index = serving[:, None, None, :].expand(B, 1, M, K)
            self.c = torch.gather(c_all, 1, index)[:, 0].transpose(1, 2)  # (B, K, M)
            if G is not None:
                gamma_bs = U.mH @ G.permute(0, 2, 3, 1)  # (B, N, M, L)
                index = serving[..., None, None].expand(B, K, M, L)
                self.gamma = torch.gather(gamma_bs, 1, index)
            self.lam_max_bs = lam[..., -1]
        else:
            self.lam_bs = None
            self.lam = lam
            self.c = (U.mH @ b[..., None]).squeeze(-1)
            if G is not None:
                index = serving[..., None, None].expand(B, K, M, L)
                g_own = torch.gather(G.permute(0, 2, 3, 1), 1, index)  # (B, K, M, L)
                self.gamma = U.mH @ g_own
            self.lam_max_bs = torch.zeros(B, n_bs, dtype=lam.dtype, device=lam.device)
            self.lam_max_bs = self.lam_max_bs.scatter_reduce(
                1, serving, lam[..., -1], reduce="amax"
            )
        self.f0 = _abs2(self.c)
        self.f0_bs = per_bs_sum(self.f0, serving, n_bs) if shared_by_bs else None

    def beams(self, x: torch.Tensor) -> torch.Tensor:
        """Map eigen-coordinates x_k back to w_k = U_k x_k: (B, K, M)."""
        if self.shared_by_bs:  # columns of BS n's users only, one matmul per BS
            X = x.transpose(1, 2)[:, None] * self.owner.to(x.dtype)  # (B, N, M, K)
            return (self.U @ X).sum(1).transpose(1, 2)
        return (self.U @ x[..., None]).squeeze(-1)


@dataclass
class _Trial:
    """Secular function of every BS at one eta.

    inv_d: 1/(lambda + eta), (B, N, M) per BS (shared layout) or (B, K, M) per user.
    power: (B, N) P_n(eta). dpower_deta: (B, N) its derivative (<= 0).
    """

    inv_d: torch.Tensor
    power: torch.Tensor
    dpower_deta: torch.Tensor

    def x(self, basis: _Eigenbasis) -> torch.Tensor:
        """Eigen-coordinates x_k = c_k / (lambda_k + eta_{rho_k}): (B, K, M)."""
        return self.inv_d_users(basis) * basis.c

    def inv_d_users(self, basis: _Eigenbasis) -> torch.Tensor:
        if basis.lam_bs is None:
            return self.inv_d
        B, K, M = basis.c.shape
        return torch.gather(self.inv_d, 1, basis.serving[..., None].expand(B, K, M))


def _trial(basis: _Eigenbasis, eta: torch.Tensor) -> _Trial:
    """P_n(eta) and dP_n/deta = -2 sum_{k in K_n} sum_m |c_km|^2 / (lambda_km + eta_n)^3."""
    if basis.lam_bs is not None:  # per BS, no gathers
        inv_d = 1.0 / (basis.lam_bs + eta[..., None])  # (B, N, M)
        weighted = basis.f0_bs * inv_d.square()
        return _Trial(inv_d, weighted.sum(-1), -2.0 * (weighted * inv_d).sum(-1))
    inv_d = 1.0 / (basis.lam + torch.gather(eta, 1, basis.serving)[..., None])  # (B, K, M)
    weighted = basis.f0 * inv_d.square()
    power = per_bs_sum(weighted.sum(-1), basis.serving, basis.n_bs)
    dpower = -2.0 * per_bs_sum((weighted * inv_d).sum(-1), basis.serving, basis.n_bs)
    return _Trial(inv_d, power, dpower)


def _eta_floor(basis: _Eigenbasis, rel: float) -> torch.Tensor:
    """(B, N) smallest eta used: ``rel`` times the largest eigenvalue of A_n (or ``rel``)."""
    scale = basis.lam_max_bs
    return rel * torch.where(scale > 0, scale, torch.ones_like(scale))


def _solve_eta(
    basis: _Eigenbasis,
    eta0: torch.Tensor,
    p_max: torch.Tensor,
    floor: torch.Tensor,
    *,
    power_tol: float,
    max_newton: int,
) -> tuple[torch.Tensor, _Trial]:
    """Per-BS eta by Newton on P_n(eta)^(-1/2) = P_max^(-1/2) (module docstring); (B, N)."""
    eta = torch.maximum(eta0, floor)
    target = p_max.rsqrt()
    tiny = torch.finfo(p_max.dtype).tiny
    for _ in range(max_newton):
        trial = _trial(basis, eta)
        power = trial.power
        done = ((power - p_max).abs() <= power_tol * p_max) | ((eta <= floor) & (power <= p_max))
        if bool(done.all()):
            return eta, trial
        # Newton step on phi = P^(-1/2): (target - phi) / phi', phi' = -P^(-3/2) P'(eta) / 2.
        ratio = (target * power.sqrt() - 1.0) * power / (-0.5 * trial.dpower_deta).clamp_min(tiny)
        new_eta = torch.where(power > 0, (eta + ratio).nan_to_num(0.0), floor)  # idle BS
        eta = torch.where(done, eta, torch.maximum(new_eta, floor))
    return eta, _trial(basis, eta)


@dataclass
class _Point:
    """Everything known at one trial mu: eigenbasis, eta, beams and AU terms.

    x: (B, K, M) eigen-coordinates. a: (B, K, L) = g_{rho_k,l}^H w_k. rho: (B, L).
    R: (B, K, L, L) = gamma_k^H Delta_k gamma_k. q: (B, K, L) = gamma_k^H Delta_k x_k.
    """

    mu: torch.Tensor
    basis: _Eigenbasis
    eta: torch.Tensor
    floor: torch.Tensor
    trial: _Trial
    x: torch.Tensor
    a: torch.Tensor | None = None
    rho: torch.Tensor | None = None
    R: torch.Tensor | None = None
    q: torch.Tensor | None = None
    R_diag: torch.Tensor | None = None  # (B, K, L), when only the diagonal of R is formed


def _evaluate(
    Q: torch.Tensor,
    shared_by_bs: bool,
    mu: torch.Tensor | None,
    G: torch.Tensor | None,
    b: torch.Tensor,
    serving: torch.Tensor,
    p_max: torch.Tensor,
    eta0: torch.Tensor,
    *,
    eta_floor_rel: float,
    eta_options: dict,
    derivatives: bool,
) -> _Point:
    """Decompose A(mu), solve eta, and form the beams and AU terms at ``mu``."""
    basis = _Eigenbasis(Q, shared_by_bs, mu, G, b, serving, p_max.shape[1])
    floor = _eta_floor(basis, eta_floor_rel)
    eta, trial = _solve_eta(basis, eta0, p_max, floor, **eta_options)
    x = trial.x(basis)
    point = _Point(mu, basis, eta, floor, trial, x)
    if basis.gamma is not None:
        gamma = basis.gamma
        point.a = (gamma.mH @ x[..., None]).squeeze(-1)
        point.rho = _abs2(point.a).sum(1)
        if derivatives:
            d_gamma = trial.inv_d_users(basis)[..., None] * gamma  # Delta gamma
            point.R = gamma.mH @ d_gamma
            point.q = (d_gamma.mH @ x[..., None]).squeeze(-1)
        else:  # diagonal only: R_k,ll = g^H D_k^{-1} g
            point.R_diag = (trial.inv_d_users(basis)[..., None] * _abs2(gamma)).sum(-2)
    return point


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


def solve_w_step(
    problem: BeamformingProblem,
    Q: torch.Tensor,
    b: torch.Tensor,
    *,
    shared_by_bs: bool,
    mu: torch.Tensor | None = None,
    eta: torch.Tensor | None = None,
    mu_update: str = "bisection",
    mu_step: float = 1.0,
    power_tol: float = 1e-9,
    interference_tol: float = 1e-6,
    eta_floor_rel: float = 1e-13,
    max_newton: int = 60,
    max_joint: int = 20,
    max_sweeps: int = 4,
    max_trials: int = 30,
    bracket_growth: float = 10.0,
) -> WStepResult:
    """Solve the weighted, constrained beamformer update (module docstring).

    Args:
        problem: the instances (G, serving, P_max and I_max are used here).
        Q: quadratic matrices without the multiplier terms, complex Hermitian PSD:
            (B, N, M, M) shared by the users of each BS (``shared_by_bs=True``, WMMSE's
            :func:`bs_covariances`), or (B, K, M, M) one per user (direct FP).
        b: (B, K, M) complex linear terms b_k.
        shared_by_bs: layout of ``Q`` (see above).
        mu: (B, L) warm start of the AU multipliers (zeros if None).
        eta: (B, N) warm start of the power multipliers (zeros if None).
        mu_update: ``"bisection"`` (exact multipliers) or ``"subgradient"`` (one dual step).
        mu_step: dimensionless subgradient step (module docstring).
        power_tol: relative tolerance on P_n = P_max for BSs whose (2b) binds (raised to
            100 eps of the dtype).
        interference_tol: relative tolerance on rho_l = I_max for AUs whose (2c) binds
            (bisection; raised to 1000 eps of the dtype).
        eta_floor_rel: eta floor relative to the largest eigenvalue of A_n.
        max_newton: Newton steps per eta search. max_joint: joint Newton steps on mu.
        max_sweeps: cyclic sweeps over the AUs in the fallback. max_trials: trial points per
            AU per sweep. bracket_growth: bracket expansion factor of the fallback.

    Returns:
        :class:`WStepResult`.
    """
    B, K, N, M, L = problem.shape
    if mu_update not in MU_UPDATES:
        raise ValueError(f"mu_update must be one of {MU_UPDATES}, got {mu_update!r}")
    groups = N if shared_by_bs else K
    if Q.shape != (B, groups, M, M):
        raise ShapeError(
            f"Q must be (B, {'N' if shared_by_bs else 'K'}, M, M) = {(B, groups, M, M)}, "
            f"got {tuple(Q.shape)}"
        )
    if b.shape != (B, K, M):
        raise ShapeError(f"b must be (B, K, M) = {(B, K, M)}, got {tuple(b.shape)}")
    real = Q.real.dtype
    device = Q.device
    # Tolerances below what the dtype resolves would stall the searches (complex64).
    eps = torch.finfo(real).eps
    power_tol = max(power_tol, 100.0 * eps)
    interference_tol = max(interference_tol, 1000.0 * eps)
    p_max = problem.p_max_per_bs().to(real)
    i_max = problem.i_max_per_au().to(real)
    eta = torch.zeros(B, N, dtype=real, device=device) if eta is None else eta.to(real)
    mu = torch.zeros(B, L, dtype=real, device=device) if mu is None else mu.to(real)
    constrained = torch.isfinite(i_max)  # (B, L); AUs with I_max = inf keep mu = 0
    mu = torch.where(constrained, mu, torch.zeros_like(mu))
    use_mu = L > 0 and bool(constrained.any())
    G = problem.G.to(Q.dtype) if use_mu else None

    exact = use_mu and mu_update == "bisection"

    def evaluate_at(trial_mu, eta0, derivatives=exact):
        return _evaluate(
            Q,
            shared_by_bs,
            trial_mu,
            G,
            b,
            problem.serving,
            p_max,
            eta0,
            eta_floor_rel=eta_floor_rel,
            eta_options={"power_tol": power_tol, "max_newton": max_newton},
            derivatives=derivatives,
        )

    point = evaluate_at(mu if use_mu else None, eta)
    decompositions = 1
    if exact:
        gamma_norm = _abs2(point.basis.gamma).sum(-2).mean(1)  # (B, L) mean ||g||^2 per user
        mu_ref = point.basis.lam.mean((-1, -2))[:, None] / gamma_norm.clamp_min(
            torch.finfo(real).tiny
        )
        mu_ref = torch.where(mu_ref > 0, mu_ref, torch.ones_like(mu_ref))
        point, decompositions = _exact_multipliers(
            evaluate_at,
            point,
            i_max,
            constrained,
            mu_ref,
            interference_tol=interference_tol,
            max_joint=max_joint,
            max_sweeps=max_sweeps,
            max_trials=max_trials,
            bracket_growth=bracket_growth,
        )
    # The eta search stops a hair above P_max when it approaches from the left: pull back.
    power = point.trial.power
    shrink = torch.sqrt(p_max / power.clamp_min(torch.finfo(real).tiny)).clamp_max(1.0)
    shrink_k = torch.gather(shrink, 1, problem.serving)[..., None]  # (B, K, 1)
    w = point.basis.beams(point.x * shrink_k)
    if use_mu:
        rho = _abs2(point.a * shrink_k).sum(1)
    else:
        rho = torch.zeros(B, L, dtype=real, device=device)
    next_mu = point.mu if use_mu else mu
    if use_mu and mu_update == "subgradient":
        # |d rho_l / d mu_l| at fixed eta = 2 sum_k |a_kl|^2 g^H D_k^{-1} g.
        slope = 2.0 * (_abs2(point.a) * point.R_diag).sum(1)
        scale = 2.0 * point.rho / slope.clamp_min(torch.finfo(real).tiny)
        violation = torch.sqrt(rho / i_max) - 1.0
        next_mu = (mu + mu_step * scale * violation).clamp_min(0.0)
        next_mu = torch.where(constrained, next_mu, torch.zeros_like(next_mu))
    return WStepResult(
        w=w,
        eta=point.eta,
        mu=next_mu,
        bs_power=power * shrink.square(),
        au_interference=rho,
        decompositions=decompositions,
    )


def warm_multiplier(
    value: torch.Tensor | None,
    shape: tuple[int, int],
    dtype: torch.dtype,
    device: torch.device,
    name: str,
) -> torch.Tensor:
    """A checked warm start of a multiplier vector: ``value`` as (B, n) real >= 0, zeros if None."""
    if value is None:
        return torch.zeros(shape, dtype=dtype, device=device)
    if tuple(value.shape) != tuple(shape):
        raise ShapeError(f"{name} must have shape {tuple(shape)}, got {tuple(value.shape)}")
    value = value.to(device=device, dtype=dtype)
    if not bool(torch.isfinite(value).all()) or bool((value < 0).any()):
        raise ConfigError(f"{name} must be finite and >= 0 (multipliers of (2b)-(2c))")
    return value


def own_channels(problem: BeamformingProblem) -> torch.Tensor:
    """Each TU's channel from its serving BS, h_{rho_k, k}: (B, K, M)."""
    B, K, _N, M, _ = problem.shape
    index = problem.serving[:, :, None, None].expand(B, K, 1, M)
    return torch.gather(problem.H, 2, index).squeeze(2)


def with_dtype(problem: BeamformingProblem, dtype: torch.dtype) -> BeamformingProblem:
    """The same instances with H, G in complex ``dtype`` and the limits as tensors."""
    if problem.H.dtype == dtype:
        return problem
    real = torch.empty(0, dtype=dtype).real.dtype
    return BeamformingProblem(
        H=problem.H.to(dtype),
        G=problem.G.to(dtype),
        serving=problem.serving,
        p_max=problem.p_max_per_bs().to(real),
        i_max=problem.i_max_per_au().to(real),
    )


def scale_to_interference_limit(
    problem: BeamformingProblem, w: torch.Tensor, tol: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Final feasibility safeguard for (2c).

    Where some AU sees more than ``(1 + tol) I_max``, every beam of that instance is multiplied
    by ``min(1, min_l sqrt(I_max,l / rho_l))``: the interference then meets (2c) exactly and
    the BS powers only shrink, so (2b) keeps holding.

    Args:
        problem: the instances. w: (B, K, M) complex beamformers. tol: relative tolerance.

    Returns:
        (w (B, K, M), scaled (B,) bool: whether the instance was rescaled).
    """
    B, L = w.shape[0], problem.G.shape[1]
    if L == 0:
        return w, torch.zeros(B, dtype=torch.bool, device=w.device)
    from skyshare import metrics

    rho = metrics.primary_interference(problem.G, w, problem.serving)  # (B, L)
    i_max = problem.i_max_per_au().to(rho.dtype)
    ratio = (i_max / rho.clamp_min(torch.finfo(rho.dtype).tiny)).amin(-1)  # (B,)
    scaled = ratio < 1.0 / (1.0 + tol)
    factor = torch.where(scaled, ratio.sqrt(), torch.ones_like(ratio))
    return w * factor[:, None, None].to(w.dtype), scaled
