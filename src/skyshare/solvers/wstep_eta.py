"""The w-step at one trial mu: eigenbasis of A(mu) and the per-BS eta search.

Part of :mod:`skyshare.solvers.wstep` (its module docstring has the formulas): the covariance
terms of A_k = Q_k + sum_l mu_l g g^H, the eigendecomposition of A_k per BS or per user
(:class:`_Eigenbasis`), the secular function P_n(eta) (:func:`_trial`), the safeguarded Newton
search of eta (:func:`_solve_eta`) and everything known at one trial mu (:func:`_evaluate`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from skyshare.errors import ShapeError
from skyshare.metrics import gather_pays

__all__ = ["au_covariances", "bs_covariances", "per_bs_sum"]


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


class _Eigenbasis:
    """A_k = Q_k + sum_l mu_l g g^H at one trial mu, in its eigenbasis, per user.

    Attributes:
        lam: (B, K, M) eigenvalues of A_k (clamped at 0). c: (B, K, M) = U_k^H b_k.
        f0: (B, K, M) = |c|^2. gamma: (B, K, M, L) = U_k^H g_{rho_k, l} (None without AUs).
        lam_bs, f0_bs: (B, N, M) per-BS eigenvalues and summed |c|^2 (shared layout only).
        lam_max_bs: (B, N) largest eigenvalue of A at each BS.
        U_users: (B, K, M, M) eigenvectors of each user's serving BS (shared layout, only where
            :func:`skyshare.metrics.gather_pays`; else None and the per-BS GEMMs are used).
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
        self.U_users = None
        if shared_by_bs:
            # One decomposition per BS. Map b_k into its serving BS's eigenbasis either through
            # each user's own U_{rho_k} gathered (B, K, M, M), K M^2 work, or by applying every
            # U_n^H to all users' b in one GEMM (B, N, M, K), N K M^2 work, and keeping
            # n = rho_k; the shape picks (metrics.gather_pays). beams() maps back the same way.
            self.lam_bs = lam
            self.lam = torch.gather(lam, 1, serving[..., None].expand(B, K, M))
            if gather_pays(n_bs, M):
                self.U_users = torch.gather(U, 1, serving[..., None, None].expand(B, K, M, M))
                self.c = (self.U_users.mH @ b[..., None]).squeeze(-1)  # (B, K, M)
            else:
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
        if self.U_users is not None:  # U_{rho_k} x_k per user: K M^2
            return (self.U_users @ x[..., None]).squeeze(-1)
        if self.shared_by_bs:  # columns of BS n's users only, one matmul per BS: N K M^2
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
