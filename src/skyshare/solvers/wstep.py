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
* ``"bisection"``: exact multipliers for this step. Phase 1: projected Newton on F_l(mu) =
  rho_l(mu)^(-1/2) - I_max,l^(-1/2) over the AUs whose constraint is active, all AUs jointly (the
  AUs are coupled through the shared beams), with the exact Jacobian d rho / d mu along the path
  eta(mu) (the Hessian of the reduced dual, formulas in
  :func:`skyshare.solvers.wstep_mu._rho_jacobian`). With one BS, one AU and (2b) inactive,
  rho^(-1/2) is affine in mu and Newton is exact; in practice 1-3 steps from a warm start. Phase 2,
  only if phase 1 has not met the tolerance after ``max_joint`` steps: cyclic coordinate search,
  each AU bracketed on a log-spaced bracket that grows by ``bracket_growth`` until rho_l <= I_max
  (rho_l is non-increasing in mu_l: it is minus a partial derivative of the concave dual) and shrunk
  by bisection in log space, with Newton steps on rho_l^(-1/2) accepted when they stay inside the
  bracket. mu_l = 0 when the constraint is slack at mu_l = 0. Every trial mu costs one
  eigendecomposition and one eta search.

Layout: this module holds the entry point :func:`solve_w_step` and the solvers' shared
helpers; :mod:`skyshare.solvers.wstep_eta` the covariances, the eigenbasis and the eta search;
:mod:`skyshare.solvers.wstep_mu` the exact mu search.

Shapes: B instances, K TUs, N BSs, M antennas, L AUs. Use complex128 (the solvers do by default):
noise-normalised SNRs reach 1e8 in the CATN and the nulling directions sit at eigenvalues far
below the largest.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from skyshare.errors import ConfigError, ShapeError
from skyshare.solvers.problem import BeamformingProblem, scale_to_interference_limit
from skyshare.solvers.wstep_eta import (
    _abs2,
    _evaluate,
    au_covariances,
    bs_covariances,
    per_bs_sum,
)
from skyshare.solvers.wstep_mu import _exact_multipliers

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
