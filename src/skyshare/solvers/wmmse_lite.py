"""Low-complexity WMMSE beamforming without matrix inversion (seed 000 §VI, "WMMSE" baseline).

Seed 000 §VI describes its WMMSE benchmark as "a low-complexity modified version of Algorithm 2
[...] the high-complexity matrix inversion operation in line 5 is replaced by updating w_k's and
eta_n's by the prox-linear method [48] and updating mu_l's by the sub-gradient method"; [48] is
Y. Xu and W. Yin, "A block coordinate descent method for regularized multiconvex optimization
with applications to nonnegative tensor factorization and completion", SIAM J. Imaging Sci. 6(3),
2013. This module implements that algorithm, batched over the B instances of a
:class:`~skyshare.solvers.problem.BeamformingProblem` (noise power 1, single-BS association).

Outer iteration t = one cycle of block coordinate descent (Xu & Yin's Algorithm 1) on the
quadratic-transform surrogate of the Lagrangian of (2a)-(2c) (Shen & Yu 2018, the seed's ref.
[12]; for the sum rate it is the WMMSE surrogate of ref. [11]) with the AU multipliers mu fixed:

1. (u, v) exactly, Algorithm 2 lines 3-4 (Lagrangian dual transform, quadratic transform)::

       a_ik = h_{rho_k,i}^H w_k,   D_i = sum_k |a_ik|^2 + 1,   S_k = |a_kk|^2
       u_k = S_k / (D_k - S_k)                        (the SINR of TU k)
       v_k = sqrt(1 + u_k) a_kk / D_k,   alpha_k = |v_k|^2 = S_k / (D_k (D_k - S_k))

   ``v_k`` maximises ``2 sqrt(1 + u_k) Re(v_k^* a_kk) - |v_k|^2 D_k``, which puts the conjugate
   on v in the linear term below: ``b_k = sqrt(1 + u_k) v_k h_{rho_k,k} = a_kk h_{rho_k,k} /
   (D_k - S_k)``.
2. w by ``inner_steps`` block prox-linear steps (Xu & Yin's update (1.3c), one block per BS; the
   blocks are decoupled given (u, v, mu), so all BSs step at once) on the convex w-subproblem of
   Algorithm 2 line 5::

       f(w) = sum_k [ w_k^H A_{rho_k} w_k - 2 Re(b_k^H w_k) ]
              + sum_l mu_l ( sum_k |g_{rho_k,l}^H w_k|^2 - I_max,l )
            = sum_k [ w_k^H D_{rho_k} w_k - 2 Re(b_k^H w_k) ] - sum_l mu_l I_max,l
       A_n = sum_i alpha_i h_{n,i} h_{n,i}^H,   D_n = A_n + sum_l mu_l g_{n,l} g_{n,l}^H

       w_k <- s_n z_k,  z_k = w^_k - (D_n w^_k - b_k) / L_n,
       s_n = min(1, sqrt(P_max,n / sum_{k in K_n} ||z_k||^2))          (projection on (2b))

   ``D_n w - b`` is the conjugate (Wirtinger) gradient of f; the real gradient is twice it with
   Lipschitz constant ``2 lambda_max(D_n)``, so ``L_n >= lambda_max(D_n)`` makes every plain step
   a descent step. ``L_n = ||D_n||_F`` (default, about 1.2 lambda_max on the seed-000 network) or
   ``tr D_n``: no eigenvalue, no inverse. ``w^`` is Xu & Yin's extrapolated point
   ``w + omega (w - w_prev)``, ``omega = min(omega^_j, delta sqrt(L_prev / L))`` with the
   Nesterov weights ``omega^_j = (t_{j-1} - 1) / t_j``, ``t_j = (1 + sqrt(1 + 4 t_{j-1}^2)) / 2``
   (delta = ``extrapolation``, 0.9999 as in Xu & Yin's experiments): the first step of an outer
   iteration extrapolates across outer iterations, the following inner steps within the
   subproblem (weights restarted at every outer iteration). When the Lagrangian
   ``sum rate - sum_l mu_l (rho_l - I_max,l)`` of the result is lower than before, the outer
   iteration is redone without extrapolation and the weights restart (Xu & Yin's Algorithm 1
   "re-update"). Plain steps never increase f, and (u, v) maximise the surrogate, so the
   Lagrangian never decreases within an outer iteration; with (2c) inactive (mu = 0) the sum
   rate is non-decreasing over the iterations.

   The rescaling ``s_n`` is the prox-linear update of the power multiplier eta_n: ``w = s_n z``
   solves ``(D_n w^ - b) + L_n (w - w^) + eta_n w = 0`` with ``eta_n = L_n (1 / s_n - 1) >= 0``
   (complementary slackness holds: eta_n > 0 only on the sphere), so a fixed point satisfies
   ``(D_n + eta_n I) w_k = b_k``, Algorithm 2 line 5 with its eta_n, reached without inverting.
3. mu by one projected sub-gradient step on the dual (B. T. Polyak, "Introduction to
   Optimization", 1987, §5.3), in the unit-free scaled form ``nu_l = mu_l I_max,l`` (nats per
   unit relative violation; invariant to any scaling of channels, powers and I_max)::

       nu_l <- max(0, nu_l + s_t min(c, (rho_l - I_max,l) / I_max,l)),
       s_t = mu_step / t^mu_step_decay        (0.5: diminishing, non-summable; 0: constant)

   The relative violation is clipped at ``c = violation_clip`` (gradient clipping; inf gives the
   plain sub-gradient). Without it the first step from MRT, which exceeds I_max by ~15 dB on the
   seed-000 network, prices the AUs so high that the diminishing steps cannot lower nu within
   the run: the AUs end up at a few % of I_max (median rho/I_max 0.05 instead of 0.94 with
   c = 1 over 64 paper-network instances, and a 2 % lower sum rate).

Stopping rule: an instance has converged when its sum rate changed by at most ``tol``
(relative) in the last outer iteration and (2c) holds within ``feasibility_tol``; converged
instances leave the batch (active set: every per-instance tensor is compacted, so a batch costs
what its unconverged instances need; ``instance_iterations`` reports each instance's count, and
the results are those of solving each instance alone). After the loop, an instance whose (2c)
is still violated beyond ``feasibility_tol`` has all its beams scaled by
``min_l sqrt(I_max,l / rho_l)`` (< 1, so (2b) still holds), flagged in ``multipliers["scaled"]``.

Cost: per outer iteration the gains, ``O((K + L) K M)`` from the served channels gathered once
(N >= 4 or M = 1; else one GEMM over all BSs, ``O(N (K + L) K M)``, see :class:`_ServedGains`),
and the matrices D_n, ``O(N (K + L) M^2)``; per inner step one M x M matrix-vector product per
user, ``O(K M^2)``. No matrix is inverted, factorised or eigen-decomposed.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import torch

from skyshare import metrics
from skyshare.errors import ConfigError, ShapeError
from skyshare.solvers.problem import (
    ActiveSet,
    BeamformingProblem,
    BeamformingResult,
    evaluate,
    initial_beamformers,
)

__all__ = [
    "LIPSCHITZ_BOUNDS",
    "WSubproblem",
    "prox_linear_step",
    "wmmse_lite",
]

LIPSCHITZ_BOUNDS = ("frobenius", "trace")


# ------------------------------------------------------------------------------------------------
# Building blocks
# ------------------------------------------------------------------------------------------------


class _ServedGains:
    """``a[p, k] = x_{rho_k, p}^H w_k`` for every receiver p (TUs then AUs) and stream k.

    H and the association are fixed during the solve, so the contraction is chosen once
    (:func:`skyshare.metrics.gather_pays` with ``reused=True``):

    - gather (M = 1 or N >= 4): the served channels ``conj(x_{rho_k, p})`` (B K, P, M) are
      copied once; each call is one batched matrix-vector product, ``P K M`` work;
    - all BSs (N <= 3, M > 1): one batched GEMM of all N BSs' channels with the beams
      (B, P N, K), then a gather of the serving BS, ``N P K M`` work.

    Args of ``__init__``: X: (B, P, N, M) complex channels; serving: (B, K) long.
    ``__call__``: w (B, K, M) complex -> (B, P, K) complex, contiguous.
    """

    def __init__(self, X: torch.Tensor, serving: torch.Tensor) -> None:
        B, P, N, M = X.shape
        K = serving.shape[1]
        self.gather = metrics.gather_pays(N, M, reused=True)
        if self.gather:
            served = metrics.served_channels(X, serving)  # (B, K, P, M)
            self.rows_conj = served.conj().resolve_conj().view(B * K, P, M)
            self.view = (B, K, P)
        else:
            self.view = (B, P, N, K)
            self.X_conj_rows = X.conj().resolve_conj().reshape(B, P * N, M)  # row (p, n)
            self.index = serving[:, None, None, :].expand(B, P, 1, K)

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        if self.gather:
            B, K, P = self.view
            out = torch.bmm(self.rows_conj, w.reshape(B * K, -1, 1)).view(B, K, P)
            return out.transpose(1, 2).contiguous()
        every_bs = torch.bmm(self.X_conj_rows, w.transpose(1, 2)).view(self.view)
        return torch.gather(every_bs, 2, self.index).squeeze(2)  # (B, P, K)

    def subset(self, keep: torch.Tensor) -> _ServedGains:
        """The same contraction for the instances ``keep`` (n,) long of the batch."""
        out = copy.copy(self)
        if self.gather:
            B, K, P = self.view
            rows = self.rows_conj.view(B, K, P, -1).index_select(0, keep)
            out.rows_conj = rows.view(keep.numel() * K, P, -1)
            out.view = (keep.numel(), K, P)
        else:
            out.X_conj_rows = self.X_conj_rows.index_select(0, keep)
            out.index = self.index.index_select(0, keep)
            out.view = (keep.numel(), *self.view[1:])
        return out


def _link_metrics(gains: torch.Tensor, K: int) -> tuple[torch.Tensor, ...]:
    """Sum rate (B,), D_k = received power + noise, S_k = |a_kk|^2, D_k - S_k (B, K) and the AU
    interference rho (B, L) from the gains (B, K + L, K).

    The interference-plus-noise power is floored at the noise power 1, which it cannot be
    below, so that float32 rounding of ``D_k - S_k`` at high SINR never divides by zero.
    """
    power = torch.view_as_real(gains).square().sum(-1)  # (B, K + L, K)
    total = power[:, :K].sum(2) + 1.0
    signal = torch.diagonal(power, dim1=1, dim2=2)  # the TU rows only: (B, K)
    interference_noise = (total - signal).clamp_min(1.0)
    rate = torch.log2(total / interference_noise).sum(-1)
    return rate, total, signal, interference_noise, power[:, K:].sum(2)


# below these Frobenius norms a sum of squares may have lost entries to underflow
_UNDERFLOW_SAFE_NORM = {torch.float32: 1e-15, torch.float64: 1e-150}


def _lipschitz(hessian: torch.Tensor, method: str) -> torch.Tensor:
    """(B, N, M, M) PSD -> (B, N) upper bound on lambda_max: ||D||_F or tr D."""
    if method == "frobenius":
        norm = torch.view_as_real(hessian).square().sum((-1, -2, -3)).sqrt()
        # At very low SNR (entries ~1e-24 in noise units) the squares underflow in float32 and
        # the norm reads 0, at very high SNR (entries ~1e20) they overflow and it reads inf;
        # there the norm is recomputed with the entries scaled to O(1). Elsewhere the plain
        # sum of squares is exact enough and is kept (same numbers).
        small = (norm < _UNDERFLOW_SAFE_NORM[hessian.real.dtype]) | torch.isinf(norm)
        if bool(small.any()):
            entries = torch.view_as_real(hessian).flatten(-3)  # (B, N, 2 M^2)
            scale = entries.abs().amax(-1).clamp_min(torch.finfo(norm.dtype).tiny)
            scaled = scale * (entries / scale[..., None]).square().sum(-1).sqrt()
            norm = torch.where(small, scaled, norm)
        return norm
    if method == "trace":
        return torch.diagonal(hessian, dim1=-2, dim2=-1).real.sum(-1)
    raise ConfigError(f"lipschitz must be one of {LIPSCHITZ_BOUNDS}, got {method!r}")


def _project_power(z: torch.Tensor, load_matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean projection onto the power balls (2b): (s z (B, K, M), s (B, K, 1)).

    ``s = min(1, sqrt(P_max,n / sum_{k in K_n} ||z_k||^2))`` for the BS n of each user.
    ``load_matrix`` (B, K, K) is ``1[rho_k = rho_j] / P_max,rho_k`` (:func:`_load_matrix`), so
    that one product gives every user's BS power relative to its budget.
    """
    user_power = torch.view_as_real(z).square().sum((-1, -2))  # (B, K)
    load = torch.bmm(load_matrix, user_power[..., None])  # P_n / P_max,n for the BS of each user
    scale = load.clamp(min=1.0).rsqrt()
    return z * scale, scale


def _user_to_bs(per_user: torch.Tensor, serving: torch.Tensor, n_bs: int) -> torch.Tensor:
    """(B, K, 1) value shared by the users of a BS -> (B, N), 1 for BSs without users."""
    out = torch.ones(serving.shape[0], n_bs, dtype=per_user.dtype, device=per_user.device)
    return out.scatter(1, serving, per_user.squeeze(-1))


def _load_matrix(serving: torch.Tensor, p_max: torch.Tensor) -> torch.Tensor:
    """(B, K, K): ``1[rho_k = rho_j] / P_max,rho_k`` (users k and j share a BS)."""
    owner = torch.nn.functional.one_hot(serving, p_max.shape[1]).to(p_max.dtype)  # (B, K, N)
    same_bs = torch.bmm(owner, owner.transpose(1, 2))
    return same_bs / torch.gather(p_max, 1, serving)[..., None]


@dataclass(frozen=True)
class WSubproblem:
    """The convex w-subproblem of Algorithm 2 line 5 for fixed (u, v, alpha, mu).

    ``f(w) = sum_k [w_k^H D_{rho_k} w_k - 2 Re(b_k^H w_k)] - sum_l mu_l I_max,l`` over the
    power balls (2b), with ``D_n = sum_i alpha_i h_{n,i} h_{n,i}^H + sum_l mu_l g_{n,l}
    g_{n,l}^H`` (the seed's D_n without eta_n I). Build it with :meth:`from_weights`.

    Attributes:
        hessian: (B, N, M, M) complex, D_n.
        b: (B, K, M) complex, ``sqrt(1 + u_k) v_k h_{rho_k,k}``.
        serving: (B, K) long. p_max: (B, N) real, watts.
        constant: (B,) real, ``sum_l mu_l I_max,l`` (0 where I_max is infinite).
    """

    hessian: torch.Tensor
    b: torch.Tensor
    serving: torch.Tensor
    p_max: torch.Tensor
    constant: torch.Tensor

    @classmethod
    def from_weights(
        cls,
        problem: BeamformingProblem,
        alpha: torch.Tensor,
        mu: torch.Tensor,
        b: torch.Tensor,
    ) -> WSubproblem:
        """Form D_n from ``alpha`` (B, K) >= 0, ``mu`` (B, L) >= 0 and take ``b`` (B, K, M)."""
        B, K, _, M, L = problem.shape
        for name, value, shape in (
            ("alpha", alpha, (B, K)),
            ("mu", mu, (B, L)),
            ("b", b, (B, K, M)),
        ):
            if tuple(value.shape) != shape:
                raise ShapeError(f"{name} must be {shape}, got {tuple(value.shape)}")
        if bool((alpha < 0).any()) or bool((mu < 0).any()):
            raise ValueError("alpha and mu must be >= 0")
        X = torch.cat([problem.H, problem.G.to(problem.H.dtype)], 1)
        columns, rows_conj = _hessian_factors(X)
        weights = torch.cat([alpha, mu], -1).to(X.real.dtype)
        i_max = problem.i_max_per_au()
        constant = (mu * torch.where(torch.isinf(i_max), 0.0, i_max)).sum(-1)
        return cls(
            hessian=_hessians(columns, rows_conj, weights),
            b=b.to(X.dtype),
            serving=problem.serving,
            p_max=problem.p_max_per_bs(),
            constant=constant,
        )

    def per_user_hessian(self) -> torch.Tensor:
        """(B, K, M, M): D_{rho_k} for every user."""
        batch = torch.arange(self.serving.shape[0], device=self.serving.device)[:, None]
        return self.hessian[batch, self.serving]

    def gradient(self, w: torch.Tensor) -> torch.Tensor:
        """Conjugate (Wirtinger) gradient ``D_{rho_k} w_k - b_k``: (B, K, M) -> (B, K, M)."""
        return torch.matmul(self.per_user_hessian(), w[..., None]).squeeze(-1) - self.b

    def objective(self, w: torch.Tensor) -> torch.Tensor:
        """f(w): (B, K, M) -> (B,) real."""
        Dw = torch.matmul(self.per_user_hessian(), w[..., None]).squeeze(-1)
        quadratic = (w.conj() * Dw).real.sum((-1, -2))
        linear = (self.b.conj() * w).real.sum((-1, -2))
        return quadratic - 2.0 * linear - self.constant

    def lipschitz(self, method: str = "frobenius") -> torch.Tensor:
        """(B, N) upper bound ``L_n >= lambda_max(D_n)`` without eigen-decomposition.

        ``"frobenius"``: ``||D_n||_F`` (at most sqrt(rank) above lambda_max; about 1.2 x on the
        seed-000 network); ``"trace"``: ``tr D_n`` (up to rank x lambda_max).
        """
        return _lipschitz(self.hessian, method)


def _hessian_factors(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, P, N, M) -> columns (B, N, M, P) and conjugate rows (B, N, P, M) of the channels."""
    Xn = X.transpose(1, 2)  # (B, N, P, M)
    return Xn.transpose(-1, -2).contiguous(), Xn.conj().resolve_conj().contiguous()


def _hessians(columns: torch.Tensor, rows_conj: torch.Tensor, weights: torch.Tensor):
    """``D_n = sum_p c_p x_{n,p} x_{n,p}^H`` = columns diag(c) rows^*: (B, N, M, M)."""
    return torch.matmul(columns * weights[:, None, None, :], rows_conj)


def prox_linear_step(
    subproblem: WSubproblem, w: torch.Tensor, lipschitz: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One block prox-linear step (Xu & Yin 2013, update (1.3c)) on the w-subproblem.

    ``w_k <- s_n (w_k - (D_n w_k - b_k) / L_n)`` for every user k of BS n, with the per-BS
    rescaling ``s_n = min(1, sqrt(P_max / sum_{k in K_n} ||z_k||^2))`` (Euclidean projection onto
    the power ball (2b)) and the implied power multiplier ``eta_n = L_n (1 / s_n - 1)``.
    With ``L_n >= lambda_max(D_n)`` the step never increases f (descent lemma).

    Args:
        subproblem: the w-subproblem. w: (B, K, M) complex, feasible or not.
        lipschitz: (B, N) real > 0, e.g. ``subproblem.lipschitz()``.

    Returns:
        (w_next (B, K, M) complex, eta (B, N) real >= 0).
    """
    serving = subproblem.serving
    B, K = serving.shape
    N, M = subproblem.hessian.shape[1:3]
    if w.shape != (B, K, M):
        raise ShapeError(f"w must be (B, K, M) = {(B, K, M)}, got {tuple(w.shape)}")
    if lipschitz.shape != (B, N) or bool((lipschitz <= 0).any()):
        raise ValueError(f"lipschitz must be a (B, N) = {(B, N)} tensor of values > 0")
    step = torch.gather(lipschitz, 1, serving)[..., None]
    load_matrix = _load_matrix(serving, subproblem.p_max.to(lipschitz.dtype))
    w_next, scale = _project_power(w - subproblem.gradient(w) / step, load_matrix)
    return w_next, lipschitz * (1.0 / _user_to_bs(scale, serving, N) - 1.0)


# ------------------------------------------------------------------------------------------------
# The solver
# ------------------------------------------------------------------------------------------------


def _prox_linear_steps(
    step_matrix: torch.Tensor,
    step_offset: torch.Tensor,
    load_matrix: torch.Tensor,
    w_start: torch.Tensor,
    w_first: torch.Tensor,
    omegas: list[float],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prox-linear steps on one w-subproblem: ``1 + len(omegas)`` of them.

    The gradient step is one affine map per user, ``z = T_k w + c_k`` with ``T_k = I - D_n / L_n``
    ``(B K, M, M)`` and ``c_k = b_k / L_n`` (B, K, M), followed by the projection on (2b). The
    first step starts from ``w_first`` (``w_start`` or a point extrapolated from it), step j from
    ``w_j + omegas[j] (w_j - w_{j-1})`` (Xu & Yin's extrapolation; 0 = none).

    Returns:
        (w (B, K, M), s (B, K, 1)) after the last step.
    """
    B, K, M = w_start.shape
    offset = step_offset.reshape(B * K, M, 1)

    def step(point: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.baddbmm(offset, step_matrix, point.reshape(B * K, M, 1)).view(B, K, M)
        return _project_power(z, load_matrix)

    w_new, scale = step(w_first)
    w_old = w_start
    for omega in omegas:
        w_hat = torch.lerp(w_old, w_new, 1.0 + omega) if omega > 0.0 else w_new
        w_old = w_new
        w_new, scale = step(w_hat)
    return w_new, scale


def _check_arguments(
    max_iter: int,
    inner_steps: int,
    tol: float,
    lipschitz: str,
    extrapolation: float,
    mu_step: float,
    mu_step_decay: float,
    violation_clip: float,
    feasibility_tol: float,
) -> None:
    for name, value in (("max_iter", max_iter), ("inner_steps", inner_steps)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value}")
    if not tol >= 0:
        raise ConfigError(f"tol must be >= 0, got {tol}")
    if lipschitz not in LIPSCHITZ_BOUNDS:
        raise ConfigError(f"lipschitz must be one of {LIPSCHITZ_BOUNDS}, got {lipschitz!r}")
    if not 0.0 <= extrapolation < 1.0:
        raise ConfigError(f"extrapolation (delta_omega) must lie in [0, 1), got {extrapolation}")
    if not mu_step > 0:
        raise ConfigError(f"mu_step must be > 0 (nats), got {mu_step}")
    if not 0.0 <= mu_step_decay <= 1.0:
        raise ConfigError(f"mu_step_decay must lie in [0, 1], got {mu_step_decay}")
    if not violation_clip > 0:
        raise ConfigError(f"violation_clip must be > 0 (or inf), got {violation_clip}")
    if not feasibility_tol >= 0:
        raise ConfigError(f"feasibility_tol must be >= 0, got {feasibility_tol}")


def _nesterov_weights(n: int) -> list[float]:
    """``omega_j = (t_{j-1} - 1) / t_j``, ``t_0 = 1``, ``t_j = (1 + sqrt(1 + 4 t_{j-1}^2)) / 2``
    (Xu & Yin 2013 eq. (2.2), after Nesterov / Beck & Teboulle), for j = 0 .. n."""
    weights, t = [0.0], 1.0
    for _ in range(n):
        t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        weights.append((t - 1.0) / t_next)
        t = t_next
    return weights


def _alpha(signal: torch.Tensor, total: torch.Tensor, interference_noise: torch.Tensor):
    """``alpha_k = S_k / (D_k (D_k - S_k))`` (B, K). Where the product in the denominator
    overflows (float32 at SNRs of ~1e19 and more in noise units: it is ~SNR^2) the divisions
    are done one at a time, ``(S_k / D_k) / (D_k - S_k)``; elsewhere the numbers are as before.
    """
    alpha = signal / (interference_noise * total)
    overflow = torch.isinf(interference_noise * total)
    if bool(overflow.any()):
        alpha = torch.where(overflow, signal / total / interference_noise, alpha)
    return alpha


def _initial_nu(
    mu0: torch.Tensor | None, i_max: torch.Tensor, B: int, L: int, real: torch.dtype
) -> torch.Tensor:
    """(B, L) starting multipliers nu = mu I_max of the scaled AU constraints (0 without mu0
    and where (2c) is disabled)."""
    if mu0 is None:
        return torch.zeros(B, L, dtype=real, device=i_max.device)
    if mu0.shape != (B, L) or bool((mu0 < 0).any()):
        raise ShapeError(f"mu0 must be a (B, L) = {(B, L)} tensor of values >= 0")
    return torch.where(torch.isinf(i_max), 0.0, mu0.to(real) * i_max)


def wmmse_lite(
    problem: BeamformingProblem,
    *,
    w0: torch.Tensor | None = None,
    mu0: torch.Tensor | None = None,
    max_iter: int = 10,
    inner_steps: int = 32,
    tol: float = 1e-2,
    lipschitz: str = "frobenius",
    extrapolation: float = 0.9999,
    mu_step: float = 1.0,
    mu_step_decay: float = 0.5,
    violation_clip: float = 1.0,
    feasibility_tol: float = 1e-3,
) -> BeamformingResult:
    """Low-complexity WMMSE of seed 000 §VI (module docstring: updates, choices, sources).

    Args:
        problem: B instances of (2a)-(2c), noise-normalised.
        w0: (B, K, M) complex warm start (e.g. the previous slot's beams), completed with MRT and
            rescaled to full power by :func:`~skyshare.solvers.problem.initial_beamformers`;
            MRT at full power when None (Algorithm 2 line 1).
        mu0: (B, L) real >= 0 warm start of the AU multipliers in natural units (as returned in
            ``multipliers["mu"]``); zeros when None.
        max_iter: outer iterations at most (u/v update, ``inner_steps`` w-steps, one mu step).
        inner_steps: prox-linear steps on each w-subproblem (1 = Xu & Yin's plain cycle).
        tol: relative sum-rate change per outer iteration below which an instance has converged
            (together with (2c) within ``feasibility_tol``).
        lipschitz: ``"frobenius"`` (``L_n = ||D_n||_F``) or ``"trace"`` (``tr D_n``).
        extrapolation: Xu & Yin's ``delta_omega`` in [0, 1) capping the extrapolation weight;
            0 gives plain (monotone) prox-linear steps.
        mu_step: first sub-gradient step ``s_1`` on ``nu_l = mu_l I_max,l`` (nats).
        mu_step_decay: ``s_t = mu_step / t^mu_step_decay``; 0.5 = the classic diminishing
            non-summable step, 0 = constant.
        violation_clip: cap on the relative violation ``(rho_l - I_max,l) / I_max,l`` in the
            sub-gradient step (> 0; ``math.inf`` = no clipping).
        feasibility_tol: relative tolerance on (2b)-(2c) for convergence, the safeguard and
            ``feasible``.

    Returns:
        :class:`~skyshare.solvers.problem.BeamformingResult`: ``objective_trace`` (B, T) is the
        sum rate after each outer iteration (before the safeguard); ``multipliers`` holds
        ``"mu"`` (B, L) the AU multipliers, ``"eta"`` (B, N) the power multipliers implied by the
        last projection, ``"lipschitz"`` (B, N) the last L_n, and ``"scaled"`` (B,) bool where
        the safeguard rescaled the beams. ``instance_iterations`` (B,) long: the outer
        iterations each instance ran (``max_iter`` for those that did not converge);
        ``iterations`` is their maximum.

    Defaults: 10 outer x 32 inner iterations with tol 1e-2 fit the seed-000 network (L=2, N=7,
    K=21, M=16) in ~15-30 ms per instance on a 2-core CPU at B=1 (the seed's Table I: 1.257 s);
    ``max_iter=100, tol=1e-3`` runs to a tighter convergence (see docs/solvers/wmmse_lite.md).
    """
    start = time.perf_counter()
    _check_arguments(
        max_iter,
        inner_steps,
        tol,
        lipschitz,
        extrapolation,
        mu_step,
        mu_step_decay,
        violation_clip,
        feasibility_tol,
    )
    B, K, N, M, L = problem.shape
    serving = problem.serving
    X = torch.cat([problem.H, problem.G.to(problem.H.dtype)], 1)  # (B, K + L, N, M)
    real = X.real.dtype
    gains_of = _ServedGains(X, serving)
    columns, rows_conj = _hessian_factors(X)
    batch = torch.arange(B, device=X.device)[:, None]
    own_channel = problem.H[batch, torch.arange(K, device=X.device), serving]  # h_{rho_k,k}
    load_matrix = _load_matrix(serving, problem.p_max_per_bs())  # (B, K, K)
    eye = torch.eye(M, dtype=X.dtype, device=X.device)
    i_max = problem.i_max_per_au()
    inv_i_max_all = 1.0 / i_max  # 0 where (2c) is disabled
    inv_i_max = inv_i_max_all
    nu = _initial_nu(mu0, i_max, B, L, real)
    ln2 = math.log(2.0)

    w = initial_beamformers(problem, w0)
    gains = gains_of(w)
    rate, total, signal, interference_noise, rho = _link_metrics(gains, K)

    momentum = extrapolation > 0.0
    nesterov = _nesterov_weights(max(max_iter, inner_steps))
    nesterov_weight = torch.tensor(nesterov, dtype=real, device=X.device)
    inner_omegas = [min(nesterov[j], extrapolation) for j in range(1, inner_steps)]
    plain_omegas = [0.0] * (inner_steps - 1)
    since_restart = torch.zeros(B, dtype=torch.long, device=X.device)
    w_prev, lip_prev = w, None
    scale = torch.ones(B, K, 1, dtype=real, device=X.device)  # s of the last accepted step
    lip_used = torch.ones(B, N, dtype=real, device=X.device)  # L_n of the last accepted step
    # Active set: an instance that has converged leaves the batch (every per-instance tensor
    # is compacted with index_select) and its iterates are written out here, so an iteration
    # costs what the unconverged instances need. No step couples the instances, so each one
    # gets the numbers it would get alone.
    active = ActiveSet(max_iter, w=w, nu=nu, rho=rho, scale=scale, lip=lip_used, rate=rate)
    trace = []
    iterations = 0
    for iteration in range(1, max_iter + 1):
        iterations = iteration
        n = active.index.numel()
        # Algorithm 2 lines 3-4: u_k = S_k / (D_k - S_k), v_k = sqrt(1 + u_k) a_kk / D_k, so
        # alpha_k = |v_k|^2 = S_k / (D_k (D_k - S_k)) and sqrt(1 + u_k) v_k = a_kk / (D_k - S_k).
        desired = torch.diagonal(gains, dim1=1, dim2=2)  # a_kk (TU rows), (n, K)
        alpha = _alpha(signal, total, interference_noise)
        b = (desired / interference_noise)[..., None] * own_channel  # sqrt(1+u_k) v_k h_{rho_k,k}
        mu = nu * inv_i_max
        hessian = _hessians(columns, rows_conj, torch.cat([alpha, mu], -1))  # D_n (n, N, M, M)
        lip = _lipschitz(hessian, lipschitz).clamp_min(torch.finfo(real).tiny)
        inv_step = 1.0 / torch.gather(lip, 1, serving)[..., None, None]  # 1 / L_{rho_k}
        # Gradient step as one affine map per user: z = (I - D_n / L_n) w + b / L_n.
        step_matrix = (eye - hessian[batch, serving] * inv_step).view(n * K, M, M)
        step_offset = b * inv_step[..., 0]

        subproblem = (step_matrix, step_offset, load_matrix)

        # Block prox-linear w-steps (Xu & Yin (1.3c)), the first from the extrapolated point.
        w_first = w
        if momentum and lip_prev is not None:
            omega = torch.minimum(
                nesterov_weight[since_restart][:, None],
                extrapolation * torch.sqrt(lip_prev / lip),
            )
            omega_k = torch.gather(omega, 1, serving)[..., None]  # (n, K, 1)
            w_first = w + omega_k * (w - w_prev)
        w_new, scale_new = _prox_linear_steps(*subproblem, w, w_first, inner_omegas)
        gains_new = gains_of(w_new)
        metrics_new = _link_metrics(gains_new, K)
        if momentum:
            # Xu & Yin's re-update: no extrapolation where the Lagrangian
            # sum rate - sum_l mu_l (rho_l - I_max,l) got worse (compared in bits).
            worse = metrics_new[0] - rate < ((metrics_new[4] - rho) * mu).sum(-1) / ln2
            since_restart = (since_restart + 1) * ~worse
            if bool(worse.any()):
                w_plain, scale_plain = _prox_linear_steps(*subproblem, w, w, plain_omegas)
                w_new = torch.where(worse[:, None, None], w_plain, w_new)
                scale_new = torch.where(worse[:, None, None], scale_plain, scale_new)
                gains_new = gains_of(w_new)
                metrics_new = _link_metrics(gains_new, K)

        w_prev, lip_prev = w, lip
        rate_old = rate
        w, gains, scale, lip_used = w_new, gains_new, scale_new, lip
        rate, total, signal, interference_noise, rho = metrics_new
        active.out["rate"][active.index] = rate
        trace.append(active.out["rate"].clone())  # a finished instance keeps its final rate

        # Projected sub-gradient step on the scaled AU multipliers nu_l = mu_l I_max,l.
        violation = rho * inv_i_max - 1.0  # (n, L), -1 where I_max is infinite
        step = mu_step / iteration**mu_step_decay
        nu = (nu + step * violation.clamp(max=violation_clip)).clamp_min(0.0)

        # Stopping rule; the instances that meet it leave the batch.
        settled = (rate - rate_old).abs() <= tol * rate
        if L > 0:
            settled = settled & (violation.amax(-1) <= feasibility_tol)
        if bool(settled.any()):
            keep = active.retire(settled, iteration, w=w, nu=nu, rho=rho, scale=scale, lip=lip_used)
            if keep.numel() == 0:
                break
            gains_of = gains_of.subset(keep)
            (
                columns,
                rows_conj,
                own_channel,
                load_matrix,
                serving,
                inv_i_max,
                nu,
                w,
                w_prev,
                lip_prev,
                gains,
                scale,
                lip_used,
                rate,
                total,
                signal,
                interference_noise,
                rho,
                since_restart,
            ) = (
                x.index_select(0, keep)
                for x in (
                    columns,
                    rows_conj,
                    own_channel,
                    load_matrix,
                    serving,
                    inv_i_max,
                    nu,
                    w,
                    w_prev,
                    lip_prev,
                    gains,
                    scale,
                    lip_used,
                    rate,
                    total,
                    signal,
                    interference_noise,
                    rho,
                    since_restart,
                )
            )
            batch = torch.arange(keep.numel(), device=X.device)[:, None]
    active.close(w=w, nu=nu, rho=rho, scale=scale, lip=lip_used)  # ran max_iter iterations
    out = active.out
    w, nu, rho, scale, lip_used = out["w"], out["nu"], out["rho"], out["scale"], out["lip"]
    serving, inv_i_max = problem.serving, inv_i_max_all
    eta = lip_used * (1.0 / _user_to_bs(scale, serving, N) - 1.0)  # of the last projection

    # Feasibility safeguard: scale every beam of an instance still violating (2c).
    if L > 0:
        worst = (rho * inv_i_max).amax(-1)  # (B,)
        scaled = worst > 1.0 + feasibility_tol
        factor = torch.where(scaled, torch.rsqrt(worst), torch.ones_like(worst))
        w = w * factor[:, None, None].to(w.dtype)
    else:
        scaled = torch.zeros(B, dtype=torch.bool, device=X.device)

    evaluation = evaluate(problem, w)
    return BeamformingResult(
        w=w,
        evaluation=evaluation,
        objective_trace=torch.stack(trace, 1),
        iterations=iterations,
        converged=active.converged,
        feasible=evaluation.feasible(feasibility_tol),
        wall_time_s=time.perf_counter() - start,
        multipliers={"mu": nu * inv_i_max, "eta": eta, "lipschitz": lip_used, "scaled": scaled},
        instance_iterations=active.iterations,
    )
